"""Status-message edits: coalesced, at most one per interval per message, only when changed,
under a global bound; the final edit drops the preview."""

from __future__ import annotations

import asyncio
import itertools
import time

from bot.progress import MessageGone, ProgressPublisher, Update


class Recorder:
    """An edit function that records (time, key, update)."""

    def __init__(self, gone: set[int] | None = None) -> None:
        self.edits: list[tuple[float, int, Update]] = []
        self.gone = gone or set()

    async def __call__(self, key: int, update: Update) -> None:
        if key in self.gone:
            raise MessageGone
        self.edits.append((time.monotonic(), key, update))

    def of(self, key: int) -> list[Update]:
        return [update for _, k, update in self.edits if k == key]


async def test_updates_coalesce_and_are_spaced() -> None:
    """Many updates in a burst become few edits, the newest last, interval apart."""
    edits = Recorder()
    publisher = ProgressPublisher(edits, interval=0.2, global_edits=100, global_period=1.0)
    for step in range(30):
        publisher.show(1, f"step {step}")
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)
    sent = [u.content for u in edits.of(1)]
    assert sent[0] == "step 0" and sent[-1] == "step 29" and len(sent) <= 4
    times = [t for t, _, _ in edits.edits]
    assert all(b - a >= 0.15 for a, b in itertools.pairwise(times))
    await publisher.close()


async def test_unchanged_content_is_not_sent_again() -> None:
    edits = Recorder()
    publisher = ProgressPublisher(edits, interval=0.05)
    publisher.show(1, "same")
    await asyncio.sleep(0.1)
    publisher.show(1, "same")
    await asyncio.sleep(0.1)
    assert [u.content for u in edits.of(1)] == ["same"]
    await publisher.close()


async def test_preview_is_attached_once_and_final_drops_it() -> None:
    edits = Recorder()
    publisher = ProgressPublisher(edits, interval=0.05)
    publisher.show(1, "10%", preview=b"png")
    await asyncio.sleep(0.1)
    publisher.show(1, "20%")
    await asyncio.sleep(0.1)
    await publisher.finish(1, "done")
    assert [(u.content, u.preview, u.final) for u in edits.of(1)] == [
        ("10%", b"png", False),
        ("20%", None, False),
        ("done", None, True),
    ]
    await publisher.close()


async def test_global_bound_across_messages() -> None:
    """Ten messages updated at once get at most `global_edits` edits per period."""
    edits = Recorder()
    publisher = ProgressPublisher(edits, interval=0.01, global_edits=3, global_period=0.3)
    started = time.monotonic()
    for key in range(10):
        publisher.show(key, "hello")
    await asyncio.sleep(1.2)
    assert sorted(k for _, k, _ in edits.edits) == list(range(10))
    times = sorted(t - started for t, _, _ in edits.edits)
    assert all(b - a >= 0.25 for a, b in zip(times, times[3:], strict=False))  # 3 per 0.3 s
    await publisher.close()


async def test_gone_message_is_left_alone() -> None:
    edits = Recorder(gone={1})
    publisher = ProgressPublisher(edits, interval=0.01)
    publisher.show(1, "a")
    await asyncio.sleep(0.05)
    publisher.show(1, "b")
    publisher.show(2, "c")
    await asyncio.sleep(0.05)
    assert [k for _, k, _ in edits.edits] == [2]
    await publisher.close()

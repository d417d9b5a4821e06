"""What people read: a person's words echoed literally, the status before the first
iteration, the size that is painted."""

from __future__ import annotations

from pathlib import Path

from bot import messages
from bot.store import Job, NewJob, Store
from engine.prompts import Prompt
from engine.request import Request


async def queued(tmp_path: Path, prompt: str, size: tuple[int, int] = (96, 48)) -> Job:
    """Job #1, queued in a real store."""
    prompts = tuple(Prompt(part.strip()) for part in prompt.split("|"))
    request = Request(prompts=prompts, size=size, iterations=8, seed=3)
    store = await Store.open(tmp_path / "jobs.sqlite3")
    try:
        return await store.add(NewJob("imagine", 1, 2, 3, request))
    finally:
        await store.close()


async def test_a_prompt_is_echoed_literally(tmp_path: Path) -> None:
    """Asterisks, backticks, underscores, tildes and bars in a prompt are escaped for Discord,
    so they show as typed; a long prompt is cut before escaping (no half an escape)."""
    job = await queued(tmp_path, "heaven *bright* `x` a_b_c | ~~hell~~")
    assert messages.headline(job) == (
        "**#1** · heaven \\*bright\\* \\`x\\` a\\_b\\_c \\| \\~\\~hell\\~\\~"
    )
    assert messages.prompt_text(job, limit=10) == "heaven \\*b…"
    assert messages.code("by *Moebius*") == "`by *Moebius*`"
    assert messages.code("by `x`") == "by \\`x\\`"


async def test_the_status_says_loading_only_when_loading(tmp_path: Path) -> None:
    job = await queued(tmp_path, "a door")
    painting = messages.running_text(job)
    assert painting.endswith("Painting…") and "loading" not in painting
    loading = messages.running_text(job, loading_models=True)
    assert loading.endswith("Painting… (loading models)")


async def test_the_acknowledgement_names_the_size_painted(tmp_path: Path) -> None:
    job = await queued(tmp_path, "a door", size=(176, 80))
    text = messages.queued_text(job, 2, 66)
    assert "#2 in line, ready in about 1 min · 176×80, 8 iterations, seed 3" in text

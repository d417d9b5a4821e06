"""A restart: stop the bot (and its worker) mid-job with jobs queued, start a new bot on the
same database and the same FakeDiscord, and see every job posted exactly once."""

from __future__ import annotations

from pathlib import Path

from bot.fakediscord import FakeDiscord, point_discord_py_at
from bot.messages import RESUMED_NOTE
from bot.store import Store
from tests.bot.running import command, job_id_of, result_of, running_bot, tiny_settings


async def test_restart_resumes_the_interrupted_job_and_runs_the_queue(tmp_path: Path) -> None:
    """The job that was painting resumes first with a visible note; the queued ones follow;
    each is posted once."""
    settings = tiny_settings(tmp_path, max_pending=5, max_iterations=100)
    async with FakeDiscord() as fake:
        restore = point_discord_py_at(fake.base_url)
        try:
            first, second = fake.create_user("first"), fake.create_user("second")
            square = {"width": 64, "height": 64}
            async with running_bot(fake, settings) as bot:
                long = await command(
                    fake, first, "imagine", {"prompt": "a long door", "iterations": 16, **square}
                )
                queued = [
                    await command(fake, first, "imagine", {"prompt": "a", "iterations": 2}),
                    await command(fake, second, "imagine", {"prompt": "b", "iterations": 2}),
                ]
                status = long.original
                assert status is not None
                await fake.wait_until(lambda: "█" in status.content or None, timeout=60)
                assert bot.scheduler.running_job_ids == (job_id_of(status),)
            await fake.wait_for_bot(connected=False)

            store = await Store.open(settings.database)
            jobs = {job.id: job for job in await store.jobs()}
            await store.close()
            assert jobs[job_id_of(status)].status == "running"  # interrupted, as after a crash
            assert [jobs[job_id_of(h.original)].status for h in queued] == ["queued", "queued"]  # type: ignore[arg-type]

            async with running_bot(fake, settings, wait_for_worker=False):
                await fake.wait_until(lambda: RESUMED_NOTE in status.content or None)
                results = [await result_of(fake, h, timeout=90) for h in (long, *queued)]
            assert RESUMED_NOTE in results[0].content
            assert all(RESUMED_NOTE not in r.content for r in results[1:])
            assert results[0].id < min(r.id for r in results[1:])  # the resumed job went first
            for handle in (long, *queued):
                assert handle.original is not None
                replies = [
                    m for m in fake.messages(fake.channel) if m.reference_id == handle.original.id
                ]
                assert len(replies) == 1, "each job is posted exactly once"
        finally:
            restore()

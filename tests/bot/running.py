"""Running the real Doorways bot against a FakeDiscord in tests: settings for tiny models,
and a context manager that starts the bot (with a real worker process) and stops it."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

from bot.bot import DoorwaysBot
from bot.fakediscord import Channel, FakeDiscord, Message, User
from bot.fakediscord.interactions import Interaction
from bot.settings import Settings
from bot.store import Job, NewJob, Store, insert_job
from engine.worker.pool import Pool, local_pool

T = TypeVar("T")


def tiny_settings(tmp_path: Path, **changes: Any) -> Settings:
    """Tiny models on the CPU at 64×64, two cutouts, quick edits and previews."""
    settings = Settings(
        database=tmp_path / "doorways.sqlite3",
        outputs=tmp_path / "outputs",
        vqgan="tiny",
        clip="tiny",
        device="cpu",
        cutn=2,
        threads=1,
        guild_ready_timeout=0.05,
        max_size=(64, 64),
        max_iterations=8,
        edit_interval=0.3,
        global_edits=20,
        global_period=1.0,
        preview_every=2,
        seconds_per_iteration=0.1,
    )
    return settings.replace(**changes)


def tiny_pool(workers: int = 1) -> Pool:
    """`workers` CPU worker processes with the tiny models loaded."""
    return local_pool(["cpu"] * workers, threads=1, progress_interval=0.1, preload=("tiny", "tiny"))


@contextlib.asynccontextmanager
async def running_bot(
    fake: FakeDiscord, settings: Settings, *, wait_for_worker: bool = True,
    pool: Pool | None = None,
) -> AsyncIterator[DoorwaysBot]:  # fmt: skip
    """A DoorwaysBot connected to `fake` (discord.py must already point at it), with its own
    store and workers (tiny_pool(), one per engine.devices entry, unless given); closed
    (workers stopped, store closed) on exit."""
    store = await Store.open(settings.database)
    bot = DoorwaysBot(settings, store, pool or tiny_pool(max(1, len(settings.devices))))
    ready = asyncio.Event()

    async def on_ready() -> None:
        ready.set()

    bot.add_listener(on_ready, "on_ready")
    task = asyncio.create_task(bot.start(fake.token), name="doorways-test-bot")
    try:
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait({task, waiter}, timeout=15, return_when="FIRST_COMPLETED")
        waiter.cancel()
        if task in done:
            task.result()
            raise RuntimeError("the bot stopped before on_ready")
        if not ready.is_set():
            raise TimeoutError("the bot was not ready within 15 s")
        if wait_for_worker:
            await wait_for_worker_ready(bot)
        yield bot
    finally:
        await bot.close()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(task, 15)
        await store.close()


async def wait_idle(bot: DoorwaysBot, timeout: float = 60.0) -> None:
    """Until no job waits or runs and every outcome has been posted."""
    async with asyncio.timeout(timeout):
        while await bot.store.jobs(["queued", "running"]) or await bot.store.undelivered():
            await asyncio.sleep(0.05)


async def add_done(store: Store, new: NewJob, **columns: object) -> Job:
    """Record `new` as a job already painted (status done, and `columns`), in one
    transaction: a job added queued and then marked done can be claimed by the scheduler in
    between, and keep the worker busy behind the next test's back."""
    async with store.transaction() as db:
        job_id = await insert_job(db, new, store.clock())
        values = {"status": "done", **columns}
        assignments = ", ".join(f"{name} = ?" for name in values)
        await db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*values.values(), job_id))
    job = await store.get(job_id)
    assert job is not None
    return job


async def wait_for_worker_ready(bot: DoorwaysBot, timeout: float = 90.0) -> None:
    async with asyncio.timeout(timeout):
        while not bot.scheduler.worker_ready:
            if bot.scheduler.worker_error:
                raise RuntimeError(bot.scheduler.worker_error)
            await asyncio.sleep(0.05)


async def command(
    fake: FakeDiscord,
    user: User,
    name: str,
    options: dict[str, Any],
    channel: Channel | None = None,
) -> Interaction:
    """Run /name as `user` and wait for the bot's first answer (Discord allows 3 s)."""
    handle = await fake.slash(user, channel or fake.channel, name, options)
    await handle.wait_response(timeout=3.0)
    return handle


async def answer_of(fake: FakeDiscord, handle: Interaction, timeout: float = 30.0) -> Message:
    """The first answer's message once it is there — a deferred "thinking…" filled in."""

    def answered() -> Message | None:
        message = handle.original
        return message if message is not None and not message.loading else None

    return await fake.wait_until(answered, timeout=timeout, what="the answer")


async def result_of(fake: FakeDiscord, handle: Interaction, timeout: float = 60.0) -> Message:
    """The message the bot posts for the job that `handle` queued: a reply to its status."""
    status = handle.original
    assert status is not None, "the command was not answered with a message"
    return await fake.wait_for_message(
        fake.world.channel(status.channel_id),
        lambda m: m.reference_id == status.id and m.author is fake.bot_user,
        timeout=timeout,
    )


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 10.0) -> T:
    """`await check()` until it returns something other than None (polls the bot's state)."""
    async with asyncio.timeout(timeout):
        while (result := await check()) is None:
            await asyncio.sleep(0.02)
    return result


def png_size(message: Message) -> tuple[int, int]:
    """The size of the PNG attached to `message` (which must have exactly one)."""
    [png] = [a for a in message.attachments if a.filename.endswith(".png")]
    with Image.open(io.BytesIO(png.data)) as image:
        assert image.format == "PNG"
        return image.size


def job_id_of(status: Message) -> int:
    """The job id a status message starts with (`**#12** · …`)."""
    head = status.content.split("**", 2)[1]
    assert head.startswith("#"), status.content
    return int(head[1:])

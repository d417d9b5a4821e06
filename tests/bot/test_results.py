"""Posting results: the reporter against a FakeDiscord and a real store (no worker): the
posted PNG is named as the bot saved it where that name means something to people."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import discord
import pytest
from discord.ext import commands

from bot.fakediscord import FakeDiscord, Message
from bot.results import DiscordReporter
from bot.scheduler import TASK_KIND
from bot.store import NewJob, Store
from engine.prompts import Prompt
from engine.request import Request

StartBot = Callable[[commands.Bot], Awaitable[commands.Bot]]  # the start_bot fixture


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "jobs.sqlite3")
    yield opened
    await opened.close()


async def post_done(
    fake: FakeDiscord,
    client: commands.Bot,
    store: Store,
    kind: str,
    png: Path,
    call_string: str = "doorways generate 'a lighthouse'",
    pictures: tuple[Path, ...] = (),
) -> Message:
    """Queue, finish (its picture at `png`, or a batch's grid with its `pictures`) and
    deliver one job; the message posted."""
    request = Request(prompts=(Prompt("a lighthouse"),), size=(64, 64), iterations=2, seed=1)
    channel = fake.channel
    await store.add(NewJob(kind, fake.owner.id, channel.guild_id, channel.id, request))
    claimed = await store.claim_next()
    assert claimed is not None
    job = await store.finish(
        claimed.id, output_path=str(png), seed=1, call_string=call_string,
        load_s=0.1, first_step_s=0.1, total_s=1.0, picture_paths=[str(p) for p in pictures],
    )  # fmt: skip
    assert job is not None
    reporter = DiscordReporter(client, store)
    try:
        await reporter.deliver(job)
    finally:
        await reporter.close()
    return fake.messages(channel)[-1]


async def test_a_task_picture_is_posted_under_its_saved_name(
    fake_discord: FakeDiscord, start_bot: StartBot, store: Store, tmp_path: Path
) -> None:
    """A /task picture is posted as the file kept in the person's task folder
    (`lighthouse_3.png`), so the download matches the folder; other jobs as
    `doorways-<id>.png`, and so is a /task picture that kept its hidden temporary name."""
    client = await start_bot(
        commands.Bot(
            command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.05
        )
    )
    folder = tmp_path / "tasks" / "42" / "output"
    folder.mkdir(parents=True)
    saved, hidden = folder / "lighthouse_3.png", folder / ".lighthouse.job-9.partial.png"
    other = tmp_path / "job-2.png"
    for path in (saved, hidden, other):
        path.write_bytes(b"\x89PNG " + path.name.encode())

    cases = [(TASK_KIND, saved, "lighthouse_3.png"), ("imagine", other, "doorways-{id}.png"),
             (TASK_KIND, hidden, "doorways-{id}.png")]  # fmt: skip
    for kind, png, expected in cases:
        message = await post_done(fake_discord, client, store, kind, png)
        job_id = max(job.id for job in await store.jobs())
        [attachment] = message.attachments
        assert attachment.filename == expected.format(id=job_id), kind
        assert attachment.data == png.read_bytes()


async def test_a_long_call_string_of_a_task_picture_is_named_like_it(
    fake_discord: FakeDiscord, start_bot: StartBot, store: Store, tmp_path: Path
) -> None:
    """A call string too long for the message is attached under the picture's saved name
    (`lighthouse_3.txt`, as the folder's .txt beside the PNG); other jobs' as job-<id>.txt."""
    client = await start_bot(
        commands.Bot(
            command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.05
        )
    )
    saved, other = tmp_path / "lighthouse_3.png", tmp_path / "job-2.png"
    for path in (saved, other):
        path.write_bytes(b"\x89PNG")
    long_call = "doorways generate '" + "a lighthouse, " * 200 + "'"
    for kind, png, expected in [(TASK_KIND, saved, "lighthouse_3.txt"), ("imagine", other, "")]:
        message = await post_done(fake_discord, client, store, kind, png, long_call)
        job_id = max(job.id for job in await store.jobs())
        expected = expected or f"job-{job_id}.txt"
        [text] = [a for a in message.attachments if a.filename.endswith(".txt")]
        assert text.filename == expected and text.data.decode() == long_call
        assert f"attached ({expected})" in message.content


async def test_a_task_batchs_grid_is_posted_as_the_range_of_its_pictures(
    fake_discord: FakeDiscord, start_bot: StartBot, store: Store, tmp_path: Path
) -> None:
    """A /task batch's grid (kept as job-<id>.png) is posted as `lighthouse_3-4.png`, the
    pictures it shows in the task folder, its long call string as `lighthouse_3-4.txt`; a
    batch whose pictures kept their hidden names as `doorways-<id>.png`."""
    client = await start_bot(
        commands.Bot(
            command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.05
        )
    )
    grid = tmp_path / "job-5.png"
    grid.write_bytes(b"\x89PNG a grid")
    named = (tmp_path / "lighthouse_3.png", tmp_path / "lighthouse_4.png")
    hidden = (tmp_path / ".lighthouse.job-6.partial-1.png", tmp_path / ".l.partial-2.png")
    long_call = "doorways generate '" + "a lighthouse, " * 200 + "'"
    cases = [
        (named, "lighthouse_3-4.png", "lighthouse_3-4.txt"),
        (hidden, "doorways-{id}.png", "job-{id}.txt"),
    ]
    for pictures, png, txt in cases:
        message = await post_done(fake_discord, client, store, TASK_KIND, grid, long_call, pictures)
        job_id = max(job.id for job in await store.jobs())
        assert [a.filename for a in message.attachments] == [
            png.format(id=job_id),
            txt.format(id=job_id),
        ]

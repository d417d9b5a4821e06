"""Channels where the bot lacks a permission, end to end: a FakeDiscord that computes and
enforces Discord's channel permissions, the real bot, a real worker process with tiny models.

A command, button or reaction where the bot cannot deliver is refused privately, naming what
is missing, with nothing queued or counted. A permission lost while a job paints stops the
status edits at the first 403 (never retried) and sends the picture by DM; if the DM is
refused too the job stays findable and the log says so once.

One fake, one bot and one worker serve the module.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.bot import DoorwaysBot
from bot.fakediscord import (
    ChangeKind,
    Channel,
    FakeDiscord,
    Message,
    Permission,
    Upload,
    User,
    point_discord_py_at,
)
from bot.store import Job
from bot.views import job_custom_id
from tests.bot.running import (
    answer_of,
    command,
    eventually,
    job_id_of,
    result_of,
    running_bot,
    tiny_settings,
)

module_loop = pytest.mark.asyncio(loop_scope="module")
P = Permission
EDIT = "/channels/{channel_id}/messages/{message_id}"
POST = "/channels/{channel_id}/messages"
QUICK = {"prompt": "a door", "iterations": 2, "width": 64, "height": 64}
# Slow enough, on a fast machine too, that the status message is edited again after the
# permission is taken (the edit interval is 0.3 s).
SLOW = {"prompt": "a slow door", "iterations": 120, "width": 64, "height": 64}


class World:
    """The module's fake Discord and the running bot."""

    def __init__(self, fake: FakeDiscord, bot: DoorwaysBot) -> None:
        self.fake = fake
        self.bot = bot
        self.count = 0

    def user(self) -> User:
        self.count += 1
        return self.fake.create_user(f"person{self.count}")

    def channel(self) -> Channel:
        self.count += 1
        return self.fake.create_channel(f"room{self.count}")

    async def jobs(self) -> int:
        return sum((await self.bot.store.count_since(0)).values())

    async def quota(self, user: User) -> str:
        handle = await command(self.fake, user, "quota", {})
        assert handle.response is not None
        return handle.response.content

    async def job(self, job_id: int) -> Job:
        job = await self.bot.store.get(job_id)
        assert job is not None
        return job

    async def delivered(self, job_id: int) -> Job:
        async def check() -> Job | None:
            job = await self.bot.store.get(job_id)
            return job if job is not None and job.delivered else None

        return await eventually(check, timeout=60)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    settings = tiny_settings(
        tmp_path_factory.mktemp("permissions"), daily_images=5, max_iterations=120
    )
    async with FakeDiscord() as fake:
        restore = point_discord_py_at(fake.base_url)
        try:
            async with running_bot(fake, settings) as bot:
                yield World(fake, bot)
        finally:
            restore()


def named(text: str) -> list[str]:
    """The permission names a refusal gives in bold."""
    return re.findall(r"\*\*([A-Za-z ]+)\*\*", text)


# Refused before anything is queued ----------------------------------------------------------------


@module_loop
@pytest.mark.parametrize(
    ("denied", "missing"),
    [
        (P.VIEW_CHANNEL, ["View Channel", "Send Messages", "Attach Files", "Read Message History"]),
        (P.SEND_MESSAGES, ["Send Messages", "Attach Files"]),  # no sending, no files (Discord)
        (P.ATTACH_FILES, ["Attach Files"]),
        (P.READ_MESSAGE_HISTORY, ["Read Message History"]),
    ],
)
async def test_a_denied_permission_is_refused_privately_and_costs_nothing(
    world: World, denied: Permission, missing: list[str]
) -> None:
    """/entrance, /imagine and /task in a channel whose overwrites deny the bot a permission it
    needs: a private answer naming it and who can grant it; no job, no quota used, no
    request to the channel."""
    fake, person, room = world.fake, world.user(), world.channel()
    fake.set_overwrite(room, fake.bot_user, deny=denied)
    quota, jobs = await world.quota(person), await world.jobs()
    calls = len(fake.calls())
    task = Upload("doors.json", b'{"prompts": ["a door"], "iterations": 2}')
    for name, options in (
        ("entrance", {"realms": "heaven | hell"}),
        ("imagine", QUICK),
        ("task", {"file": task}),
    ):
        handle = await command(fake, person, name, options, room)
        assert handle.response is not None and handle.response.ephemeral
        text = handle.response.content
        assert named(text) == missing, text
        assert "server admin can grant" in text and "Nothing was queued" in text
    new_calls = [c for c in fake.calls()[calls:] if c.route.startswith("/channels/")]
    assert new_calls == []
    assert await world.jobs() == jobs and await world.quota(person) == quota


@module_loop
async def test_a_thread_needs_send_messages_in_threads(world: World) -> None:
    """In a thread the bot needs Send Messages in Threads (from the parent's overwrites), not
    Send Messages: denied, /imagine is refused naming it; allowed while Send Messages is
    denied, the picture is painted and posted in the thread."""
    fake, person, room = world.fake, world.user(), world.channel()
    thread = fake.create_thread(room, "ideas")
    fake.set_overwrite(room, fake.bot_user, deny=P.SEND_MESSAGES_IN_THREADS)
    jobs = await world.jobs()
    handle = await command(fake, person, "imagine", QUICK, thread)
    assert handle.response is not None and handle.response.ephemeral
    assert named(handle.response.content) == ["Send Messages in Threads", "Attach Files"]
    assert await world.jobs() == jobs

    fake.set_overwrite(room, fake.bot_user, deny=P.SEND_MESSAGES)
    handle = await command(fake, person, "imagine", QUICK, thread)
    result = await result_of(fake, handle)
    assert result.channel_id == thread.id and result.attachments


@module_loop
async def test_reroll_button_and_reaction_are_refused_too(world: World) -> None:
    """After the bot loses Attach Files where a result was posted, 🎲 (button) is refused
    privately and 🎲 (reaction, no interaction: from discord.py's cache) by DM; neither
    queues anything."""
    fake, owner, other, room = world.fake, world.user(), world.user(), world.channel()
    handle = await command(fake, owner, "imagine", QUICK, room)
    result = await result_of(fake, handle)
    assert handle.original is not None
    job_id = job_id_of(handle.original)
    await world.delivered(job_id)
    fake.set_overwrite(room, fake.guild.everyone, deny=P.ATTACH_FILES)
    jobs = await world.jobs()

    click = await fake.click(other, result, job_custom_id(job_id, "reroll"))
    response = await click.wait_response()
    assert response.ephemeral and named(response.content) == ["Attach Files"]

    async def cache_updated() -> bool | None:  # CHANNEL_UPDATE reached discord.py
        channel = world.bot.get_channel(room.id)
        guild = world.bot.get_guild(fake.guild.id)
        assert channel is not None and guild is not None
        return True if not channel.permissions_for(guild.me).attach_files else None  # type: ignore[union-attr]

    await eventually(cache_updated)
    await fake.react(other, result, "🎲")
    dm = await fake.wait_for_message(fake.dm_channel(other), lambda m: "refused" in m.content)
    assert f"reroll of job #{job_id}" in dm.content and named(dm.content) == ["Attach Files"]
    assert f"<#{room.id}>" in dm.content
    await asyncio.sleep(0.3)  # nothing else comes of it
    assert await world.jobs() == jobs


# Lost while painting --------------------------------------------------------------------------


async def start_and_lose(
    world: World, person: User, room: Channel, denied: Permission = P.VIEW_CHANNEL
) -> tuple[Message, int]:
    """Queue a slow job in `room`; once its status message has been edited, deny the bot
    `denied` there. Returns (status message, the call index from then on)."""
    fake = world.fake
    handle = await command(fake, person, "imagine", SLOW, room)
    status = handle.original
    assert status is not None and not handle.ephemeral
    await fake.wait_for(
        lambda c: c.kind is ChangeKind.MESSAGE_UPDATE and c.message is status, timeout=60
    )
    fake.set_overwrite(room, fake.bot_user, deny=denied)
    return status, len(fake.calls())


@module_loop
async def test_permission_lost_mid_job_sends_one_dm_and_stops_editing(world: World) -> None:
    """View Channel taken away while the job paints: the next edit of the status message
    gets a 403 and is the last one; the result is not even tried in the channel; the person
    gets exactly one DM with the PNG, the call string and why it came by DM; the job is
    recorded as delivered by DM, not to the channel."""
    fake, person, room = world.fake, world.user(), world.channel()
    status, since = await start_and_lose(world, person, room)
    job = await world.delivered(job_id_of(status))
    assert job.status == "done" and job.delivered_to == "dm" and job.result_message_id is None

    await asyncio.sleep(1.0)  # long enough for several more edits, were any still coming
    later = fake.calls()[since:]
    edits = [c for c in later if (c.method, c.route) == ("PATCH", EDIT)]
    assert [(c.status, c.code) for c in edits] == [(403, 50001)]
    assert [c for c in later if c.params.get("channel_id") == str(room.id) and c != edits[0]] == []
    assert sum(c.invalid for c in later) == 1

    [dm] = fake.messages(fake.dm_channel(person))
    assert [a.filename for a in dm.attachments] == [f"doorways-{job.id}.png"]
    assert job.call_string in dm.content and f"Job **#{job.id}**" in dm.content
    [why] = [line for line in dm.content.splitlines() if "came by DM" in line]
    assert f"<#{room.id}>" in why and "View Channel" in why
    history = await command(fake, person, "history", {})
    assert history.response is not None and f"#{job.id} · sent by DM" in history.response.content


@module_loop
async def test_history_lost_mid_job_the_post_is_refused_once_then_dm(world: World) -> None:
    """Read Message History taken away while the job paints: the status message is still
    edited to the end, the result post (a reply) gets one 403 and is not retried, the
    picture comes by DM, and the status message says so (not "posted below"). (Send
    Messages lost would stop the edits too: without it Discord takes Attach Files as well,
    and the previews are files.)"""
    fake, person, room = world.fake, world.user(), world.channel()
    status, since = await start_and_lose(world, person, room, P.READ_MESSAGE_HISTORY)
    job = await world.delivered(job_id_of(status))
    assert job.delivered_to == "dm"
    await fake.wait_until(lambda: "went to its requester by DM" in status.content or None)
    later = fake.calls()[since:]
    posts = [c for c in later if (c.method, c.route) == ("POST", POST)]
    assert [(c.status, c.code, c.params["channel_id"]) for c in posts] == [
        (403, 50013, str(room.id)),
        (200, 0, str(fake.dm_channel(person).id)),
    ]
    assert all(c.status == 200 for c in later if c.method == "PATCH")
    [dm] = fake.messages(fake.dm_channel(person))
    assert dm.attachments and "**Read Message History** permission" in dm.content.splitlines()[-1]


@module_loop
async def test_dm_refused_too_leaves_the_job_findable(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Channel and DM both refuse: the job is not reported as delivered anywhere, /history
    says so, /params still has it, the PNG is on disk, and the log says so once."""
    fake, person, room = world.fake, world.user(), world.channel()
    fake.close_dms(person)
    with caplog.at_level(logging.INFO, logger="bot.results"):
        status, since = await start_and_lose(world, person, room)
        job = await world.delivered(job_id_of(status))
        await asyncio.sleep(0.5)
    assert job.status == "done" and job.delivered_to is None and job.result_message_id is None
    dms = [c for c in fake.calls()[since:] if c.code == 50007]
    assert len(dms) == 1
    [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert f"job {job.id} done: not delivered" in warning.getMessage()
    assert job.output_path is not None and Path(job.output_path).is_file()
    assert job.output_path in warning.getMessage()

    history = await command(fake, person, "history", {})
    assert history.response is not None
    assert f"#{job.id} · not delivered" in history.response.content
    params = await command(fake, person, "params", {"target": str(job.id)})
    assert job.call_string in (await answer_of(fake, params)).content  # a deferred answer

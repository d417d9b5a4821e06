"""/queue, /quota, /history, /cancel, /admin and /settings end to end: a FakeDiscord, the real
bot, a real worker process with tiny models; one of each for the module."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bot.bot import DoorwaysBot
from bot.fakediscord import FakeDiscord, Permission, Role, User, point_discord_py_at
from bot.fakediscord.interactions import Interaction
from bot.store import Job
from tests.bot.running import (
    command,
    job_id_of,
    result_of,
    running_bot,
    tiny_settings,
    wait_idle,
)

module_loop = pytest.mark.asyncio(loop_scope="module")
SQUARE = {"width": 64, "height": 64}


class World:
    def __init__(self, fake: FakeDiscord, bot: DoorwaysBot, roles: dict[str, Role]) -> None:
        self.fake, self.bot, self.roles = fake, bot, roles
        self.users = 0
        self.admin = self.user("Admins")

    def user(self, *roles: str) -> User:
        self.users += 1
        return self.fake.create_user(f"person{self.users}", roles=[self.roles[r] for r in roles])

    async def job(self, handle: Interaction) -> Job:
        assert handle.original is not None
        job = await self.bot.store.get(job_id_of(handle.original))
        assert job is not None
        return job

    async def say(
        self, user: User, name: str, options: dict[str, object] | None = None, **kw: str
    ) -> str:
        """Run a command and return its (ephemeral) answer's text."""
        handle = await self.fake.slash(user, self.fake.channel, name, options or {}, **kw)
        await handle.wait_response(timeout=3.0)
        assert handle.original is not None, handle.errors
        return handle.original.content

    async def idle(self, timeout: float = 60.0) -> None:
        """Until no job waits or runs and every outcome has been posted."""
        await wait_idle(self.bot, timeout)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    settings = tiny_settings(
        tmp_path_factory.mktemp("commands"),
        daily_images=50,
        max_pending=10,
        max_iterations=400,
        admin_roles=("Painting admins",),
    )
    async with FakeDiscord() as fake:
        restore = point_discord_py_at(fake.base_url)
        roles = {
            "Admins": fake.create_role("Admins", int(Permission.MANAGE_GUILD)),
            "Painting admins": fake.create_role("Painting admins"),
            "Patrons": fake.create_role("Patrons"),
        }
        try:
            async with running_bot(fake, settings) as bot:
                yield World(fake, bot, roles)
        finally:
            restore()


async def paint(world: World, user: User, iterations: int = 2, **options: object) -> Interaction:
    return await command(
        world.fake,
        user,
        "imagine",
        {"prompt": "a door", "iterations": iterations, **SQUARE, **options},
    )


# /queue /quota /history /cancel -------------------------------------------------------------


@module_loop
async def test_queue_quota_history_and_cancel(world: World) -> None:
    """Your jobs with their places and totals for everyone; what is left today; your last
    results with links; /cancel of your waiting jobs, then of the painting one by number."""
    me, other = world.user(), world.user()
    done = await paint(world, me)
    result = await result_of(world.fake, done)
    history = await world.say(me, "history")
    assert f"/{result.channel_id}/{result.id}" in history and "#" in history

    long = await paint(world, me, iterations=400)
    assert long.original is not None
    await world.fake.wait_until(lambda: "█" in long.original.content or None, timeout=60)  # type: ignore[union-attr]
    waiting = await paint(world, me)
    theirs = await paint(world, other)
    queue = await world.say(me, "queue")
    assert "1 painting, 2 waiting (2 people)" in queue
    assert f"**#{(await world.job(long)).id}** · painting now" in queue
    assert f"**#{(await world.job(waiting)).id}** · #" in queue
    assert f"#{(await world.job(theirs)).id}" not in queue  # only totals of other people's

    quota = await world.say(me, "quota")  # one done, one painting, one waiting: 3 of 50 used
    assert "You have **47** of 50 images left today" in quota and "<t:" in quota
    assert "Waiting or painting now: 2 (at most" in quota

    cancelled = await world.say(me, "cancel")
    assert cancelled == f"Cancelled #{(await world.job(waiting)).id}."
    running = await world.job(long)
    assert running.status == "running"
    refused = await world.say(other, "cancel", {"job": running.id})
    assert f"You have no job #{running.id}" in refused
    stopped = await world.say(me, "cancel", {"job": running.id})
    assert stopped == f"Cancelled #{running.id}."
    await world.idle()
    assert (await world.job(long)).status == "cancelled"


# /admin -------------------------------------------------------------------------------------


@module_loop
async def test_admin_is_hidden_and_refused_for_non_admins(world: World) -> None:
    """Discord hides /admin from members without Manage Server; where a server shows it to
    everyone anyway, the bot refuses non-admins and accepts the configured admin role."""
    person = world.user()
    with pytest.raises(PermissionError):
        await world.fake.slash(person, world.fake.channel, "admin", subcommand="status")
    [admin] = [c for c in world.fake.commands() if c["name"] == "admin"]
    needed = admin.pop("default_member_permissions")
    try:
        refused = await world.say(person, "admin", subcommand="status")
        assert refused == "Only admins of this server can use /admin."
        by_role = await world.say(world.user("Painting admins"), "admin", subcommand="status")
        assert "**Device:** cpu" in by_role
    finally:
        admin["default_member_permissions"] = needed


@module_loop
async def test_admin_pause_resume_and_status(world: World) -> None:
    """Paused: jobs are queued but none starts; resumed: it runs. Status tells the device,
    models, queue and today's jobs."""
    await world.idle()
    assert "Paused in this server" in await world.say(world.admin, "admin", subcommand="pause")
    handle = await paint(world, world.user())
    assert handle.original is not None
    assert "paused in this server by its admins" in handle.original.content
    status = await world.say(world.admin, "admin", subcommand="status")
    assert "**paused** in this server" in status and "1 waiting" in status
    assert "vqgan:tiny" in status
    await asyncio.sleep(1.0)
    assert (await world.job(handle)).status == "queued"
    assert "Resumed" in await world.say(world.admin, "admin", subcommand="resume")
    assert (await result_of(world.fake, handle)).attachments
    assert "done" in await world.say(world.admin, "admin", subcommand="status")


@module_loop
async def test_admin_caps_quota_ban_and_cancel(world: World) -> None:
    """Caps clamp iterations; a role's quota override applies to its members; a banned member
    cannot paint until unbanned; an admin cancels anyone's job."""
    caps = await world.say(world.admin, "admin", {"iterations": 3}, subcommand="caps")
    assert "at most 3 iterations" in caps
    clamped = await paint(world, world.user(), iterations=8)
    assert (await world.job(clamped)).iterations == 3
    await world.say(world.admin, "admin", {"clear": True}, subcommand="caps")

    patron = world.user("Patrons")
    text = await world.say(
        world.admin,
        "admin",
        {"target": world.roles["Patrons"], "daily_images": 1},
        subcommand="quota",
    )
    assert "1 images a day" in text
    await paint(world, patron)
    assert "used your 1 images" in await world.say(patron, "imagine", {"prompt": "again"})

    banned = world.user()
    await world.say(world.admin, "admin", {"user": banned}, subcommand="ban")
    assert "stopped you from painting" in await world.say(banned, "imagine", {"prompt": "x"})
    await world.say(world.admin, "admin", {"user": banned}, subcommand="unban")
    victim = await paint(world, banned, iterations=400)
    job = await world.job(victim)
    answer = await world.say(world.admin, "admin", {"job": job.id}, subcommand="cancel")
    assert answer == f"Cancelled job #{job.id} (<@{banned.id}>'s)."
    await world.idle()


# /settings ----------------------------------------------------------------------------------


@module_loop
async def test_settings_are_applied_and_results_come_by_dm(world: World) -> None:
    """/settings: style, iterations and size fill in what /imagine is not given; dm sends the
    result by DM too; reset forgets them."""
    person = world.user()
    shown = await world.say(
        person,
        "settings",
        {"style": "by Moebius", "iterations": 3, "width": 64, "height": 64, "dm": True},
    )
    assert "`by Moebius`" in shown and "64×64" in shown
    handle = await command(world.fake, person, "imagine", {"prompt": "a tower"})
    job = await world.job(handle)
    assert job.request.prompts[0].text == "a tower by Moebius"
    assert (job.iterations, job.width, job.height) == (3, 64, 64)
    await result_of(world.fake, handle)
    dm = await world.fake.wait_for_message(world.fake.dm_channel(person), timeout=10)
    assert f"Job **#{job.id}**" in dm.content and dm.attachments
    assert "reset" in await world.say(person, "settings", {"reset": True})
    again = await command(
        world.fake, person, "imagine", {"prompt": "a tower", "iterations": 2, **SQUARE}
    )
    assert (await world.job(again)).request.prompts[0].text == "a tower"
    await world.idle()

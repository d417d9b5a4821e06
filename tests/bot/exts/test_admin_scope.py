"""Servers the operator does not own: a server's admins pause and resume only their own
server's jobs; pausing every server and running the task folder belong to the bot's owner
(the application's owner or its team, as Discord reports it) and the home server's admins."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.fakediscord import Channel, FakeDiscord, Guild, Permission, User
from bot.fakediscord.interactions import Interaction
from tests.bot.running import job_id_of, result_of, running_bot, tiny_settings, wait_idle


async def say(
    fake: FakeDiscord, user: User, channel: Channel, name: str, sub: str, **options: object
) -> str:
    handle = await fake.slash(user, channel, name, options, subcommand=sub)
    response = await handle.wait_response(timeout=3.0)
    assert response.ephemeral, response.content
    return response.content


async def paint(fake: FakeDiscord, user: User, channel: Channel) -> Interaction:
    handle = await fake.slash(user, channel, "imagine", {"prompt": "a door", "iterations": 2})
    await handle.wait_response(timeout=3.0)
    return handle


def admin_of(fake: FakeDiscord, guild: Guild, name: str) -> User:
    """A member with Manage Server in `guild` (not the application's owner)."""
    role = fake.create_role(f"{name} admins", int(Permission.MANAGE_GUILD), guild=guild)
    return fake.create_user(name, guild=guild, roles=[role])


def server(fake: FakeDiscord, name: str) -> tuple[Guild, Channel]:
    guild = fake.create_guild(name, owner=fake.create_user(f"{name} owner"))
    return guild, fake.create_channel("art", guild=guild)


async def test_one_servers_admin_pauses_only_that_server(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    fake = fake_discord
    other, other_channel = server(fake, "other")
    stranger = admin_of(fake, other, "stranger")
    async with running_bot(fake, tiny_settings(tmp_path)) as bot:
        text = await say(fake, stranger, other_channel, "admin", "pause", everywhere=True)
        assert text.startswith("Only the bot's owner (or an admin of its home server)")
        assert not bot.scheduler.paused
        text = await say(fake, stranger, other_channel, "nightly", "run")
        assert text.startswith("Only the bot's owner (or an admin of its home server)")

        assert "Paused in this server" in await say(fake, stranger, other_channel, "admin", "pause")
        held = await paint(fake, fake.create_user("b", guild=other), other_channel)
        assert held.original and "paused in this server by its admins" in held.original.content
        served = await paint(fake, fake.create_user("a"), fake.channel)
        assert served.original and "paused" not in served.original.content
        assert (await result_of(fake, served)).attachments  # the other server's job ran
        await asyncio.sleep(0.5)
        held_job = await bot.store.get(job_id_of(held.original))
        assert held_job is not None and held_job.status == "queued"
        status = await say(fake, fake.owner, fake.channel, "admin", "status")
        assert "paused" not in status and "1 waiting" in status
        assert "**paused** in this server" in await say(
            fake, stranger, other_channel, "admin", "status"
        )

        # The application's owner pauses and resumes every server.
        text = await say(fake, fake.owner, fake.channel, "admin", "pause", everywhere=True)
        assert text.startswith("Paused in every server")
        waiting = await paint(fake, fake.create_user("c"), fake.channel)
        assert waiting.original and "paused by the bot's operator" in waiting.original.content
        text = await say(fake, stranger, other_channel, "admin", "resume")
        assert "still paused in every server" in text
        text = await say(fake, fake.owner, fake.channel, "admin", "resume", everywhere=True)
        assert text.startswith("Resumed in every server")
        assert (await result_of(fake, waiting)).attachments
        assert (await result_of(fake, held)).attachments  # resumed above by its own admin
        await wait_idle(bot)


async def test_team_members_and_home_server_admins_act_everywhere(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    """Team admins and developers count as the owner (read-only members do not); so do the
    home server's admins, there."""
    fake = fake_discord
    home, home_channel = server(fake, "home")
    other, other_channel = server(fake, "other")
    developer, viewer = admin_of(fake, other, "developer"), admin_of(fake, other, "viewer")
    fake.set_team({developer: "developer", viewer: "read_only"})
    host = admin_of(fake, home, "host")
    fake.add_member(other, host, [r for r in other.roles.values() if r.name == "viewer admins"])
    settings = tiny_settings(tmp_path, home_guild=home.id)
    async with running_bot(fake, settings, wait_for_worker=False) as bot:
        for user in (viewer, fake.owner):  # a team owns it now: its owner is not the owner
            channel = other_channel if user is viewer else fake.channel
            text = await say(fake, user, channel, "admin", "pause", everywhere=True)
            assert text.startswith("Only the bot's owner"), user.username
        text = await say(fake, host, other_channel, "admin", "pause", everywhere=True)
        assert text.startswith("Only the bot's owner")  # home admins act from home
        assert not bot.scheduler.paused
        text = await say(fake, developer, other_channel, "admin", "pause", everywhere=True)
        assert text.startswith("Paused in every server")
        text = await say(fake, host, home_channel, "admin", "resume", everywhere=True)
        assert text.startswith("Resumed in every server")
        assert not bot.scheduler.paused

"""The fake's channel permissions, as Discord computes and enforces them: overwrites for
@everyone, roles and members (the bot too), threads under their parent, the implicit rules,
`app_permissions` in interactions, and Discord's 403s (50001, 50013, 50007) on the bot's
requests. The computation is checked against discord.py's own (`permissions_for` on its
cache, kept current by CHANNEL_UPDATE and GUILD_ROLE_UPDATE), an independent implementation
of Discord's documented rules."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from bot.fakediscord import Channel, FakeDiscord, Permission, Role, User
from bot.fakediscord.state import ALL_PERMISSIONS

StartBot = Callable[[commands.Bot], Awaitable[commands.Bot]]  # the start_bot fixture

P = Permission
VIEW, SEND, ATTACH, HISTORY = (
    P.VIEW_CHANNEL,
    P.SEND_MESSAGES,
    P.ATTACH_FILES,
    P.READ_MESSAGE_HISTORY,
)
IN_THREADS = P.SEND_MESSAGES_IN_THREADS
# The bits the fake names (discord.py's "all" has a few newer ones).
KNOWN = sum(P)


class PermsBot(commands.Bot):
    """/perms answers with the app_permissions Discord sent, privately."""

    def __init__(self) -> None:
        super().__init__(
            command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.05
        )

        @app_commands.command(description="What may the bot do here?")
        async def perms(interaction: discord.Interaction) -> None:
            kind = type(interaction.channel).__name__
            value = interaction.app_permissions.value
            await interaction.response.send_message(f"{kind} {value}", ephemeral=True)

        self.tree.add_command(perms)

    async def setup_hook(self) -> None:
        await self.tree.sync()


@pytest.fixture
async def bot(start_bot: StartBot) -> PermsBot:
    started = await start_bot(PermsBot())
    assert isinstance(started, PermsBot)
    return started


def cached_permissions(bot: commands.Bot, fake: FakeDiscord, channel: Channel) -> int | None:
    """What discord.py computes from its cache for itself in `channel` (None: not cached)."""
    guild = bot.get_guild(fake.guild.id)
    assert guild is not None and guild.me is not None
    cached = guild.get_channel_or_thread(channel.id)
    return None if cached is None else cached.permissions_for(guild.me).value & KNOWN


async def cache_agrees(bot: commands.Bot, fake: FakeDiscord, channel: Channel, what: str) -> None:
    """Until discord.py's cache (updated by the gateway events) computes what the fake does."""
    expected = fake.world.permissions(fake.bot_user, channel) & KNOWN
    try:
        async with asyncio.timeout(5):
            while cached_permissions(bot, fake, channel) != expected:
                await asyncio.sleep(0.01)
    except TimeoutError:
        seen = cached_permissions(bot, fake, channel)
        raise AssertionError(f"{what}: discord.py computes {seen}, the fake {expected}") from None


async def app_permissions(fake: FakeDiscord, user: User, channel: Channel) -> tuple[str, int]:
    """(channel class, app_permissions) as the bot saw them in /perms run by `user`."""
    handle = await fake.slash(user, channel, "perms")
    response = await handle.wait_response()
    kind, value = response.content.split()
    return kind, int(value)


def bits(value: int, *wanted: Permission) -> dict[str, bool]:
    """Which of `wanted` are set in `value`, by name (readable assertion failures)."""
    return {w.name or str(w): bool(value & w) for w in wanted}


# The computation --------------------------------------------------------------------------------


async def test_overwrites_apply_in_discords_order(
    fake_discord: FakeDiscord, start_bot: StartBot
) -> None:
    """@everyone's overwrite, then the roles' (a role's allow beats another role's deny), then
    the member's own; Administrator ignores overwrites. discord.py agrees at every step."""
    fake = fake_discord
    art = fake.create_channel("art")
    painters = fake.create_role("Painters")
    quiet = fake.create_role("Quiet")
    me = fake.bot_user
    fake.set_roles(me, [fake.bot_role(), painters, quiet])  # before it connects: in GUILD_CREATE
    bot = await start_bot(PermsBot())
    everyone = fake.guild.everyone
    # (what, overwrites set in this step as (target, allow, deny); none of both clears it,
    # what the bot may then do)
    steps: list[tuple[str, list[tuple[Role | User, int, int]], dict[str, bool]]] = [
        ("roles only", [], {"SEND_MESSAGES": True, "ATTACH_FILES": True}),
        (
            "@everyone denied Attach Files",
            [(everyone, 0, ATTACH)],
            {"SEND_MESSAGES": True, "ATTACH_FILES": False},
        ),
        (
            "one role denies Send Messages, another allows Attach Files",
            [(quiet, 0, SEND), (painters, ATTACH, 0)],
            {"SEND_MESSAGES": False, "ATTACH_FILES": False},  # implicit: cannot send, no files
        ),
        (
            "another role allows Send Messages: allows beat denies among roles",
            [(painters, ATTACH | SEND, 0)],
            {"SEND_MESSAGES": True, "ATTACH_FILES": True},
        ),
        (
            "the bot's own overwrite denies Attach Files",
            [(me, 0, ATTACH)],
            {"SEND_MESSAGES": True, "ATTACH_FILES": False},
        ),
        (
            "@everyone denied View Channel, a role allows it",
            [(me, 0, 0), (everyone, 0, VIEW), (painters, VIEW | SEND, 0)],
            {"VIEW_CHANNEL": True, "SEND_MESSAGES": True, "ATTACH_FILES": True},
        ),
        (
            "no role allows it: no View Channel, so nothing else in the channel either",
            [(painters, 0, 0)],
            {"VIEW_CHANNEL": False, "SEND_MESSAGES": False, "ADD_REACTIONS": False},
        ),
    ]
    for what, overwrites, expected in steps:
        for target, allow, deny in overwrites:
            fake.set_overwrite(art, target, allow=allow, deny=deny)
        computed = fake.world.permissions(me, art)
        assert bits(computed, *(P.__members__[name] for name in expected)) == expected, what
        await cache_agrees(bot, fake, art, what)
        assert (await app_permissions(fake, fake.owner, art))[1] == computed, what

    # Its own member update reaches the bot without the members intent, as on Discord.
    fake.set_overwrite(art, painters, allow=VIEW)
    await cache_agrees(bot, fake, art, "Painters may view")
    fake.set_roles(me, [fake.bot_role(), quiet])
    assert not fake.world.permissions(me, art) & VIEW
    await cache_agrees(bot, fake, art, "the bot is no longer a Painter")

    fake.set_role_permissions(fake.bot_role(), P.ADMINISTRATOR)
    assert fake.world.permissions(me, art) == ALL_PERMISSIONS  # overwrites do not count
    await cache_agrees(bot, fake, art, "Administrator")
    assert (await app_permissions(fake, fake.owner, art))[1] == ALL_PERMISSIONS


async def test_threads_take_the_parent_channels_permissions(
    fake_discord: FakeDiscord, bot: PermsBot
) -> None:
    """A thread has no overwrites: its parent's apply, with Send Messages in Threads in place
    of Send Messages (also for the implicit rule on files)."""
    fake = fake_discord
    announcements = fake.create_channel("announcements")
    thread = fake.create_thread(announcements, "comments")
    fake.set_overwrite(announcements, fake.guild.everyone, deny=SEND)
    in_parent, in_thread = (
        fake.world.permissions(fake.bot_user, c) for c in (announcements, thread)
    )
    assert bits(in_parent, SEND, ATTACH) == {"SEND_MESSAGES": False, "ATTACH_FILES": False}
    assert bits(in_thread, IN_THREADS, ATTACH) == {
        "SEND_MESSAGES_IN_THREADS": True,
        "ATTACH_FILES": True,
    }
    kind, value = await app_permissions(fake, fake.owner, thread)
    assert kind == "Thread" and value == in_thread
    await cache_agrees(bot, fake, thread, "a thread")

    fake.set_overwrite(announcements, fake.bot_user, deny=IN_THREADS)
    now = fake.world.permissions(fake.bot_user, thread)
    assert bits(now, IN_THREADS, ATTACH) == {
        "SEND_MESSAGES_IN_THREADS": False,
        "ATTACH_FILES": False,
    }
    assert (await app_permissions(fake, fake.owner, thread))[1] == now
    await cache_agrees(bot, fake, thread, "a thread without Send Messages in Threads")
    with pytest.raises(ValueError, match="a thread uses its parent's"):
        fake.set_overwrite(thread, fake.guild.everyone, deny=VIEW)


# Enforcement ------------------------------------------------------------------------------------


async def forbidden_code(call: Awaitable[object]) -> int:
    with pytest.raises(discord.Forbidden) as caught:
        await call
    return caught.value.code


async def test_the_bots_requests_meet_discords_403s(
    fake_discord: FakeDiscord, bot: PermsBot
) -> None:
    """50001 Missing Access without View Channel, 50013 Missing Permissions for the rest:
    posting, files (posted or added by an edit), replies without Read Message History, posts
    in a thread; every answer is recorded with its code."""
    fake = fake_discord
    room = fake.create_channel("room")
    channel = await bot.fetch_channel(room.id)
    assert isinstance(channel, discord.TextChannel)
    mine = await channel.send("hello")
    png = discord.File(io.BytesIO(b"\x89PNG\r\n\x1a\n"), filename="a.png")

    fake.set_overwrite(room, fake.bot_user, deny=ATTACH)
    assert await forbidden_code(channel.send("a file", file=png)) == 50013
    assert await forbidden_code(mine.edit(attachments=[png])) == 50013
    await mine.edit(content="edited without files")  # editing one's own text still works

    fake.set_overwrite(room, fake.bot_user, deny=HISTORY)
    assert await forbidden_code(channel.send("re", reference=mine)) == 50013
    await channel.send("no reply, no history needed")

    fake.set_overwrite(room, fake.bot_user, deny=SEND)
    assert await forbidden_code(channel.send("muted")) == 50013
    await mine.edit(content="a muted author may still edit")

    fake.set_overwrite(room, fake.guild.everyone, deny=VIEW)
    fake.clear_overwrite(room, fake.bot_user)
    assert await forbidden_code(channel.send("hidden")) == 50001
    assert await forbidden_code(mine.edit(content="hidden")) == 50001
    assert await forbidden_code(bot.fetch_channel(room.id)) == 50001

    thread = fake.create_thread(fake.channel, "thread")
    fake.set_overwrite(fake.channel, fake.bot_user, allow=SEND, deny=IN_THREADS)
    in_thread = await bot.fetch_channel(thread.id)
    assert isinstance(in_thread, discord.Thread)
    assert await forbidden_code(in_thread.send("in a thread")) == 50013
    fake.set_overwrite(fake.channel, fake.bot_user, deny=SEND)
    await in_thread.send("Send Messages in Threads is enough in a thread")

    edits = fake.calls("PATCH", "/channels/{channel_id}/messages/{message_id}", message_id=mine.id)
    assert [(c.status, c.code) for c in edits] == [
        (403, 50013),
        (200, 0),
        (200, 0),
        (403, 50001),
    ]
    assert fake.invalid_requests == 8


async def test_closed_dms_answer_50007(fake_discord: FakeDiscord, bot: PermsBot) -> None:
    """A person who does not accept DMs: opening the DM works, sending answers 50007."""
    alice = fake_discord.create_user("alice")
    user = await bot.fetch_user(alice.id)
    await user.send("first")
    fake_discord.close_dms(alice)
    assert await forbidden_code(user.send("second")) == 50007
    assert [m.content for m in fake_discord.messages(fake_discord.dm_channel(alice))] == ["first"]


def test_roles_and_members_a_person_and_the_owner() -> None:
    """People's permissions follow the same rules; the owner has every one."""
    fake = FakeDiscord()
    alice = fake.create_user("alice")
    helpers: Role = fake.create_role("Helpers")
    fake.set_roles(alice, [helpers])
    fake.set_overwrite(fake.channel, fake.guild.everyone, deny=SEND)
    assert not fake.world.has(alice, fake.channel, SEND)
    fake.set_overwrite(fake.channel, helpers, allow=SEND)
    assert fake.world.has(alice, fake.channel, SEND | ATTACH)
    fake.set_overwrite(fake.channel, alice, deny=ATTACH)
    assert not fake.world.has(alice, fake.channel, ATTACH)
    fake.set_overwrite(fake.channel, fake.owner, deny=VIEW)
    assert fake.world.has(fake.owner, fake.channel, VIEW | SEND | ATTACH)

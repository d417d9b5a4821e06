"""End-to-end tests of FakeDiscord with the real discord.py client: what a user would see."""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import struct
import time
import zlib
from collections.abc import Awaitable, Callable

import aiohttp
import discord
import discord.gateway
import discord.http
import pytest
from discord import app_commands
from discord.ext import commands

from bot.fakediscord import (
    ChangeKind,
    FakeDiscord,
    Message,
    Permission,
    Upload,
    point_discord_py_at,
)

StartBot = Callable[[commands.Bot], Awaitable[commands.Bot]]  # the start_bot fixture

PRESETS = ["entrance to heaven | entrance to hell", "gate of dawn | gate of dusk", "gateway"]


def tiny_png(width: int = 2, height: int = 1) -> bytes:
    """A valid RGB PNG, built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )


PNG = tiny_png()


class CancelJobButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"doorways:job:(?P<job_id>[0-9]+):cancel",
):
    """A persistent button whose state lives in its custom_id."""

    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Cancel",
                style=discord.ButtonStyle.danger,
                custom_id=f"doorways:job:{job_id}:cancel",
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]
    ) -> CancelJobButton:
        return cls(int(match["job_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"cancelled job {self.job_id}", ephemeral=True)


class TitleModal(discord.ui.Modal, title="Name the painting"):
    name: discord.ui.TextInput[TitleModal] = discord.ui.TextInput(label="Title", max_length=50)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"titled {self.name.value!r}")


class StyleSelect(discord.ui.Select[discord.ui.View]):
    def __init__(self) -> None:
        options = [discord.SelectOption(label=s, value=s) for s in ("oil", "ink")]
        super().__init__(custom_id="doorways:style", options=options)

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.edit_message(content=f"style: {self.values[0]}", view=None)


class PaintBot(commands.Bot):
    """A small bot using what Doorways will: slash commands, a group, a context menu,
    autocomplete, a DynamicItem button, raw reactions, deferral and files."""

    def __init__(self) -> None:
        super().__init__(
            command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.05
        )
        self.reactions: list[tuple[int, str]] = []
        self.seen: asyncio.Queue[discord.Message] = asyncio.Queue()
        self._add_commands()

    async def setup_hook(self) -> None:
        self.add_dynamic_items(CancelJobButton)
        await self.tree.sync()

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        if self.user is not None and payload.user_id == self.user.id:
            return
        self.reactions.append((payload.user_id, str(payload.emoji)))
        channel = self.get_channel(payload.channel_id)
        assert isinstance(channel, discord.TextChannel)
        await channel.get_partial_message(payload.message_id).add_reaction(payload.emoji)

    async def on_message(self, message: discord.Message) -> None:
        if message.author == self.user:
            return
        if isinstance(message.channel, discord.DMChannel):
            await message.author.send(f"hello {message.author.name}, try /paint")
        else:
            self.seen.put_nowait(message)

    def _add_commands(self) -> None:
        @app_commands.command(description="Paint a juxtaposition")
        @app_commands.describe(prompt="left | right", steps="iterations")
        async def paint(
            interaction: discord.Interaction,
            prompt: str,
            steps: app_commands.Range[int, 1, 1000] = 100,
            fast: bool = False,
        ) -> None:
            view = discord.ui.View(timeout=None)
            view.add_item(CancelJobButton(7))
            text = f"painting {prompt!r} for {steps} steps{' (fast)' if fast else ''}"
            await interaction.response.send_message(text, view=view)

        @paint.autocomplete("prompt")
        async def paint_prompt(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            return [app_commands.Choice(name=p, value=p) for p in PRESETS if current in p]

        queue = app_commands.Group(name="queue", description="The painting queue")

        @queue.command(description="Show someone's queue")
        async def show(interaction: discord.Interaction, user: discord.User | None = None) -> None:
            who = user or interaction.user
            await interaction.response.send_message(f"{who.name} has 0 jobs", ephemeral=True)

        @app_commands.context_menu(name="Paint this")
        async def paint_this(interaction: discord.Interaction, message: discord.Message) -> None:
            await interaction.response.send_message(f"painting from: {message.content}")

        @app_commands.command(description="Render with progress")
        async def render(interaction: discord.Interaction, prompt: str) -> None:
            await interaction.response.defer()
            channel = interaction.channel
            assert isinstance(channel, discord.TextChannel)
            status = await channel.send(f"{prompt}: 0%")
            await status.edit(content=f"{prompt}: 100%")
            file = discord.File(io.BytesIO(PNG), filename="render.png")
            done = await interaction.followup.send(f"{prompt} done", file=file, wait=True)
            await channel.get_partial_message(done.id).edit(content=f"{prompt} done, saved")

        @app_commands.command(description="Describe an image")
        async def inspect(interaction: discord.Interaction, image: discord.Attachment) -> None:
            data = await image.read()
            digest = hashlib.sha256(data).hexdigest()[:12]
            await interaction.response.send_message(f"{image.filename}: {len(data)} bytes {digest}")

        @app_commands.command(description="Name a painting")
        async def title(interaction: discord.Interaction) -> None:
            await interaction.response.send_modal(TitleModal())

        @app_commands.command(description="Pick a style")
        async def style(interaction: discord.Interaction) -> None:
            view = discord.ui.View(timeout=None)
            view.add_item(StyleSelect())
            await interaction.response.send_message("pick a style", view=view)

        for command in (paint, queue, paint_this, render, inspect, title, style):
            self.tree.add_command(command)


@pytest.fixture
async def bot(start_bot: StartBot) -> PaintBot:
    started = await start_bot(PaintBot())
    assert isinstance(started, PaintBot)
    return started


async def paint(fake: FakeDiscord, prompt: str = "heaven | hell") -> Message:
    """Run /paint as the owner; return the message the bot answered with."""
    handle = await fake.slash(fake.owner, fake.channel, "paint", {"prompt": prompt, "steps": 20})
    await handle.wait_response()
    assert handle.original is not None
    return handle.original


async def test_sync_registers_commands(fake_discord: FakeDiscord, bot: PaintBot) -> None:
    """tree.sync() stores every command with ids and typed options."""
    registered = {c["name"]: c for c in fake_discord.commands()}
    assert set(registered) == {
        "paint",
        "queue",
        "Paint this",
        "render",
        "inspect",
        "title",
        "style",
    }
    paint_options = {o["name"]: o for o in registered["paint"]["options"]}
    assert paint_options["prompt"]["type"] == 3 and paint_options["prompt"]["autocomplete"]
    assert paint_options["steps"]["type"] == 4 and paint_options["steps"]["max_value"] == 1000
    assert registered["queue"]["options"][0]["type"] == 1  # a subcommand
    assert registered["Paint this"]["type"] == 3
    assert all(c["id"].isdigit() for c in registered.values())
    fetched = await bot.tree.fetch_commands()
    assert {c.name for c in fetched} == set(registered)


async def test_slash_command_replies_within_3_seconds(
    fake_discord: FakeDiscord, bot: PaintBot
) -> None:
    """A slash command with options is answered in time, in the channel, with a button."""
    started = time.monotonic()
    handle = await fake_discord.slash(
        fake_discord.owner, fake_discord.channel, "paint", {"prompt": "heaven | hell", "fast": True}
    )
    response = await handle.wait_response(timeout=3.0)
    assert time.monotonic() - started < 3.0
    assert response.type == 4 and handle.ack_latency is not None and handle.ack_latency < 3.0
    assert response.content == "painting 'heaven | hell' for 100 steps (fast)"
    [message] = fake_discord.messages(fake_discord.channel)
    assert message.content == response.content
    assert message.author is fake_discord.bot_user
    assert message.custom_ids() == ["doorways:job:7:cancel"]
    assert message.interaction_metadata is not None
    assert message.interaction_metadata["name"] == "paint"


async def test_bad_options_fail_loudly(fake_discord: FakeDiscord, bot: PaintBot) -> None:
    """The driver refuses what Discord's client would: unknown options, wrong types, limits."""
    owner, channel = fake_discord.owner, fake_discord.channel
    with pytest.raises(ValueError, match="no option 'colour'"):
        await fake_discord.slash(owner, channel, "paint", {"prompt": "x", "colour": "red"})
    with pytest.raises(ValueError, match="takes an int"):
        await fake_discord.slash(owner, channel, "paint", {"prompt": "x", "steps": "many"})
    with pytest.raises(ValueError, match="outside"):
        await fake_discord.slash(owner, channel, "paint", {"prompt": "x", "steps": 5000})
    with pytest.raises(ValueError, match="missing required"):
        await fake_discord.slash(owner, channel, "paint", {})
    with pytest.raises(ValueError, match="needs a sub_command"):
        await fake_discord.slash(owner, channel, "queue")


async def test_autocomplete_returns_the_bots_choices(
    fake_discord: FakeDiscord, bot: PaintBot
) -> None:
    """Typing into an autocomplete option shows the choices the bot computed."""
    choices = await fake_discord.autocomplete(
        fake_discord.owner, fake_discord.channel, "paint", "prompt", {"prompt": "gate"}
    )
    assert [c["value"] for c in choices] == PRESETS[1:]


async def test_subcommand_reply_is_ephemeral(fake_discord: FakeDiscord, bot: PaintBot) -> None:
    """/queue show answers only the caller: not in channel history, but in their view."""
    alice = fake_discord.create_user("alice")
    cursor = fake_discord.changes.cursor
    handle = await fake_discord.slash(
        alice, fake_discord.channel, "queue", {"user": fake_discord.owner}, subcommand="show"
    )
    response = await handle.wait_response()
    assert response.ephemeral and response.content == "owner has 0 jobs"
    assert fake_discord.messages(fake_discord.channel) == []
    assert [m.content for m in fake_discord.messages(fake_discord.channel, visible_to=alice)] == [
        "owner has 0 jobs"
    ]
    change = await fake_discord.wait_for(
        lambda c: c.kind is ChangeKind.MESSAGE_CREATE, after=cursor
    )
    assert change.visible_to == alice.id


async def test_message_context_menu(fake_discord: FakeDiscord, bot: PaintBot) -> None:
    """Apps > Paint this on a person's message hands the bot that message."""
    alice = fake_discord.create_user("alice")
    posted = await fake_discord.send_message(alice, fake_discord.channel, "a gate of bone")
    handle = await fake_discord.context_menu(alice, posted, "Paint this")
    response = await handle.wait_response()
    assert response.content == "painting from: a gate of bone"


async def test_button_click_reaches_dynamic_item(fake_discord: FakeDiscord, bot: PaintBot) -> None:
    """Clicking the persistent button runs the DynamicItem with the job id from its custom_id."""
    message = await paint(fake_discord)
    click = await fake_discord.click(fake_discord.owner, message, "doorways:job:7:cancel")
    response = await click.wait_response()
    assert response.content == "cancelled job 7" and response.ephemeral
    with pytest.raises(ValueError, match="no component"):
        await fake_discord.click(fake_discord.owner, message, "doorways:job:8:cancel")


async def test_button_still_works_after_bot_restart(
    fake_discord: FakeDiscord, bot: PaintBot, start_bot: StartBot
) -> None:
    """A button posted before a restart reaches the new bot process's DynamicItem."""
    message = await paint(fake_discord)
    await bot.close()
    await fake_discord.wait_for_bot(connected=False)
    with pytest.raises(RuntimeError, match="no bot is connected"):
        await fake_discord.click(fake_discord.owner, message, "doorways:job:7:cancel")

    await start_bot(PaintBot())
    click = await fake_discord.click(fake_discord.owner, message, "doorways:job:7:cancel")
    assert (await click.wait_response()).content == "cancelled job 7"


async def test_reactions_reach_the_bot(fake_discord: FakeDiscord, bot: PaintBot) -> None:
    """A person's reaction reaches on_raw_reaction_add; the bot's own (echo) shows up too."""
    message = await paint(fake_discord)
    alice = fake_discord.create_user("alice")
    await fake_discord.react(alice, message, "🚪")
    await fake_discord.wait_until(lambda: message.reactors("🚪") == [alice.id, bot.user.id] or None)
    assert bot.reactions == [(alice.id, "🚪")]
    await fake_discord.unreact(alice, message, "🚪")
    assert message.reactors("🚪") == [bot.user.id]


async def test_messages_reach_the_bot_without_content_intent(
    fake_discord: FakeDiscord, bot: PaintBot
) -> None:
    """Without the message content intent the bot gets messages emptied, unless mentioned."""
    alice = fake_discord.create_user("alice")
    await fake_discord.send_message(alice, fake_discord.channel, "hello there")
    await fake_discord.send_message(
        alice, fake_discord.channel, f"hi {fake_discord.bot_user.mention}"
    )
    first = await asyncio.wait_for(bot.seen.get(), 3.0)
    second = await asyncio.wait_for(bot.seen.get(), 3.0)
    assert (first.content, first.author.id) == ("", alice.id)
    assert second.content == f"hi {fake_discord.bot_user.mention}"


async def test_direct_messages(fake_discord: FakeDiscord, bot: PaintBot) -> None:
    """A DM reaches the bot with its content, and the bot's DM answer lands in that DM."""
    alice = fake_discord.create_user("alice")
    dm = fake_discord.dm_channel(alice)
    await fake_discord.send_message(alice, dm, "hi bot")
    reply = await fake_discord.wait_for_message(dm, lambda m: m.author is fake_discord.bot_user)
    assert reply.content == "hello alice, try /paint"


async def test_modal_round_trip(fake_discord: FakeDiscord, bot: PaintBot) -> None:
    """A modal answer can be filled in and submitted; the bot reads the typed value."""
    handle = await fake_discord.slash(fake_discord.owner, fake_discord.channel, "title")
    assert (await handle.wait_response()).type == 9
    submitted = await fake_discord.submit_modal(handle, {"Title": "Dawn"})
    assert (await submitted.wait_response()).content == "titled 'Dawn'"


async def test_select_updates_its_message(fake_discord: FakeDiscord, bot: PaintBot) -> None:
    """Picking in a select menu reaches its callback, which edits the message (type 7)."""
    handle = await fake_discord.slash(fake_discord.owner, fake_discord.channel, "style")
    await handle.wait_response()
    assert handle.original is not None
    with pytest.raises(ValueError, match="no option"):
        await fake_discord.select(
            fake_discord.owner, handle.original, "doorways:style", ["gouache"]
        )
    picked = await fake_discord.select(
        fake_discord.owner, handle.original, "doorways:style", ["ink"]
    )
    assert (await picked.wait_response()).type == 7
    assert handle.original.content == "style: ink" and handle.original.components == []


async def test_late_answer_is_refused(fake_discord: FakeDiscord, bot: PaintBot) -> None:
    """An answer after the deadline gets 10062 Unknown interaction, noted on the handle."""
    fake_discord.response_timeout = 0.0
    handle = await fake_discord.slash(
        fake_discord.owner, fake_discord.channel, "paint", {"prompt": "late"}
    )
    await fake_discord.wait_until(lambda: handle.errors or None)
    assert handle.errors[0].startswith("10062 Unknown interaction (callback")
    assert handle.response is None and fake_discord.messages(fake_discord.channel) == []


async def test_wrong_token_is_refused(fake_discord: FakeDiscord) -> None:
    """Logging in with a wrong token fails as on Discord (401 -> LoginFailure)."""
    client = discord.Client(intents=discord.Intents.none())
    with pytest.raises(discord.LoginFailure):
        await client.login("not-the-token")
    await client.close()


async def test_deferred_render_posts_png_and_edits_with_bot_token(
    fake_discord: FakeDiscord, bot: PaintBot
) -> None:
    """Defer, followup with a PNG, and bot-token edits: the user sees the final messages and
    the PNG's bytes round-trip, also when downloaded from the attachment URL."""
    handle = await fake_discord.slash(
        fake_discord.owner, fake_discord.channel, "render", {"prompt": "dawn"}
    )
    assert (await handle.wait_response()).type == 5
    done = await handle.wait_followup()
    await fake_discord.wait_for_message(
        fake_discord.channel, lambda m: m.content == "dawn done, saved"
    )
    final, status = fake_discord.messages(fake_discord.channel)  # the deferral came first
    assert final is done is handle.original and not final.loading
    assert status.content == "dawn: 100%" and status.edited_at is not None
    [attachment] = final.attachments
    assert attachment.filename == "render.png" and attachment.data == PNG
    assert attachment.content_type == "image/png" and attachment.image_size() == (2, 1)
    async with (
        aiohttp.ClientSession() as session,
        session.get(fake_discord.base_url + attachment.path) as response,
    ):
        assert await response.read() == PNG


async def test_attachment_option_is_served_to_the_bot(
    fake_discord: FakeDiscord, bot: PaintBot
) -> None:
    """An attachment option arrives resolved, and the bot can download its bytes."""
    data = tiny_png(3, 3)
    handle = await fake_discord.slash(
        fake_discord.owner,
        fake_discord.channel,
        "inspect",
        {"image": Upload("seed image.png", data)},
    )
    response = await handle.wait_response()
    digest = hashlib.sha256(data).hexdigest()[:12]
    assert response.content == f"seed_image.png: {len(data)} bytes {digest}"


async def test_upload_over_limit_is_refused(fake_discord: FakeDiscord, bot: PaintBot) -> None:
    """A file over the upload limit gets Discord's 413 / 40005."""
    channel = bot.get_channel(fake_discord.channel.id)
    assert isinstance(channel, discord.TextChannel)
    big = discord.File(io.BytesIO(b"x" * (fake_discord.upload_limit + 1)), filename="big.bin")
    with pytest.raises(discord.HTTPException) as caught:
        await channel.send(file=big)
    assert caught.value.status == 413 and caught.value.code == 40005
    assert fake_discord.messages(fake_discord.channel) == []


async def test_errors_have_discords_shape(fake_discord: FakeDiscord, bot: PaintBot) -> None:
    """Unknown messages, channels and interactions answer with Discord's codes."""
    channel = bot.get_channel(fake_discord.channel.id)
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.NotFound) as message_error:
        await channel.fetch_message(1234)
    assert message_error.value.code == 10008
    with pytest.raises(discord.NotFound) as channel_error:
        await bot.fetch_channel(1234)
    assert channel_error.value.code == 10003
    route = discord.http.Route("POST", "/interactions/{i}/{t}/callback", i=1, t="nope")
    with pytest.raises(discord.NotFound) as interaction_error:
        await bot.http.request(route, json={"type": 5})
    assert interaction_error.value.code == 10062


async def test_unknown_route_gives_a_clear_404(fake_discord: FakeDiscord, bot: PaintBot) -> None:
    """A route the fake lacks answers 404 naming it, and is remembered."""
    route = discord.http.Route("GET", "/guilds/{guild_id}/bans", guild_id=fake_discord.guild.id)
    with pytest.raises(discord.NotFound) as caught:
        await bot.http.request(route)
    assert f"GET /api/v10/guilds/{fake_discord.guild.id}/bans" in caught.value.text
    assert fake_discord.unknown_requests == [f"GET /api/v10/guilds/{fake_discord.guild.id}/bans"]


async def test_rate_limited_route_is_retried(fake_discord: FakeDiscord, bot: PaintBot) -> None:
    """A 429 with retry_after makes discord.py wait and retry; the message still arrives."""
    limit = fake_discord.rate_limit(
        "/channels/{channel_id}/messages", limit=1, per=0.2, hidden=True
    )
    channel = bot.get_channel(fake_discord.channel.id)
    assert isinstance(channel, discord.TextChannel)
    started = time.monotonic()
    await channel.send("one")
    await channel.send("two")
    assert limit.refused == 1 and time.monotonic() - started >= 0.15
    assert [m.content for m in fake_discord.messages(fake_discord.channel)] == ["one", "two"]


async def test_announced_rate_limit_is_respected(fake_discord: FakeDiscord, bot: PaintBot) -> None:
    """When the headers say the bucket is empty, discord.py waits instead of meeting a 429."""
    limit = fake_discord.rate_limit("/channels/{channel_id}/messages", limit=1, per=0.2)
    channel = bot.get_channel(fake_discord.channel.id)
    assert isinstance(channel, discord.TextChannel)
    started = time.monotonic()
    await asyncio.gather(channel.send("one"), channel.send("two"))
    assert limit.refused == 0 and time.monotonic() - started >= 0.15
    assert len(fake_discord.messages(fake_discord.channel)) == 2


async def test_resume_after_reconnect_request(fake_discord: FakeDiscord, bot: PaintBot) -> None:
    """After Discord asks for a reconnect (op 7), the bot resumes and keeps working."""
    cursor = fake_discord.changes.cursor
    fake_discord.request_reconnect()
    change = await fake_discord.wait_for(
        lambda c: c.kind is ChangeKind.BOT_CONNECT and c.payload.get("resumed", False),
        after=cursor,
    )
    assert change.payload["resumed"]
    await paint(fake_discord)


async def test_members_need_the_members_intent(fake_discord: FakeDiscord, bot: PaintBot) -> None:
    """Without GUILD_MEMBERS the bot knows only itself among the members, as on Discord."""
    alice = fake_discord.create_user("alice")
    guild = bot.get_guild(fake_discord.guild.id)
    assert guild is not None and bot.user is not None
    assert guild.get_member(bot.user.id) is not None
    assert guild.get_member(fake_discord.owner.id) is None and guild.get_member(alice.id) is None
    assert guild.member_count == 2
    fetched = await guild.fetch_member(alice.id)
    assert fetched.name == "alice"


async def test_permissions_are_enforced(fake_discord: FakeDiscord, bot: PaintBot) -> None:
    """Channel overwrites stop people (PermissionError) and the bot (403 / 50013) alike."""
    readonly = fake_discord.create_channel("gallery")
    fake_discord.set_overwrite(readonly, fake_discord.guild.everyone, deny=Permission.SEND_MESSAGES)
    alice = fake_discord.create_user("alice")
    with pytest.raises(PermissionError, match="alice cannot send messages in #gallery"):
        await fake_discord.send_message(alice, readonly, "hi")
    await fake_discord.send_message(fake_discord.owner, readonly, "the owner may")
    channel = await bot.fetch_channel(readonly.id)
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.Forbidden) as caught:
        await channel.send("the bot may not")
    assert caught.value.code == 50013


async def test_change_stream_for_a_ui(fake_discord: FakeDiscord, bot: PaintBot) -> None:
    """A subscriber sees what happens in order, with ephemeral things marked for one user."""
    alice = fake_discord.create_user("alice")
    async with fake_discord.changes.subscribe() as stream:
        await fake_discord.send_message(alice, fake_discord.channel, "door?")
        handle = await fake_discord.slash(alice, fake_discord.channel, "queue", subcommand="show")
        await handle.wait_response()
        seen = [await asyncio.wait_for(anext(stream), 1.0) for _ in range(4)]
    assert [c.kind for c in seen] == [
        ChangeKind.MESSAGE_CREATE,
        ChangeKind.INTERACTION_CREATE,
        ChangeKind.MESSAGE_CREATE,
        ChangeKind.INTERACTION_RESPONSE,
    ]
    assert seen[0].payload["content"] == "door?" and seen[0].visible_to is None
    assert seen[2].payload["content"] == "alice has 0 jobs" and seen[2].visible_to == alice.id
    assert seen[2].payload["flags"] & 64


def test_point_discord_py_at_restores_globals() -> None:
    """The endpoint helper changes discord.py's globals and puts them back."""
    before = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    restore = point_discord_py_at("http://127.0.0.1:1234")
    assert discord.http.Route.BASE == "http://127.0.0.1:1234/api/v10"
    assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == "ws://127.0.0.1:1234/"
    restore()
    assert before == (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    assert before[0] == "https://discord.com/api/v10"

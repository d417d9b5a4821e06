"""FakeDiscord: the world, the REST API and the gateway on one loopback port, plus the driver a
test (or a playground UI) uses to act as people: run commands, click buttons, react, talk.

    async with FakeDiscord() as fake:
        restore = point_discord_py_at(fake.base_url)
        ...  # start a discord.py bot with fake.token, then drive it:
        reply = await (await fake.slash(fake.owner, fake.channel, "ping")).wait_response()
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from aiohttp import web

from . import commands, errors
from .changes import Change, ChangeFeed
from .commands import CommandType
from .effects import Effects
from .gateway import Gateway, application_flags, content_toggled
from .interactions import Integration, Interaction, Interactions, InteractionType, Resolved
from .ratelimits import Fault, Limit, Traffic
from .rest import Call, RestApi
from .state import (
    DEFAULT_UPLOAD_LIMIT,
    Channel,
    Emoji,
    Guild,
    Member,
    Message,
    Overwrite,
    Permission,
    Role,
    TeamMember,
    Upload,
    User,
    World,
    has_permissions,
    needed_permissions_text,
    walk_components,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_SELECT_TYPES = {3, 5, 6, 7, 8}  # string, user, role, mentionable, channel selects


class FakeDiscord:
    """A local Discord for one bot: REST at ``api_base``, gateway at ``gateway_url``.

    It starts with an owner, the bot, one guild (``guild``) with one text channel
    (``channel``); add more with the ``create_*`` methods (they tell a connected bot). Like a
    new application it has no privileged intents (``privileged_intents``: the Intent bits its
    portal toggles allow), so the bot reads other people's messages without their content.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        bot_name: str = "Doorways",
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        response_timeout: float = 3.0,
        token_ttl: float = 15 * 60.0,
        privileged_intents: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if host not in _LOOPBACK:
            raise ValueError(f"FakeDiscord only listens on loopback ({_LOOPBACK}), not {host!r}")
        self.host = host
        self.port = port
        self.world = World(bot_name=bot_name)
        self.token = token or bot_token(self.world.bot.id)
        self.changes = ChangeFeed()
        self.gateway = Gateway(
            self.world, self.changes, token=self.token, privileged_intents=privileged_intents
        )
        self.effects = Effects(self.world, self.gateway, self.changes)
        self.interactions = Interactions(
            self.world,
            self.effects,
            self.gateway,
            self.changes,
            upload_limit=upload_limit,
            response_timeout=response_timeout,
            token_ttl=token_ttl,
        )
        self.traffic = Traffic()
        self.rest = RestApi(
            self.world,
            self.effects,
            self.interactions,
            self.traffic,
            token=self.token,
            upload_limit=upload_limit,
            application_flags=application_flags(privileged_intents),
            message_content=content_toggled(privileged_intents),
            gateway_url=lambda: self.gateway_url,
        )
        self.upload_limit = upload_limit
        self._runner: web.AppRunner | None = None
        self.guild = self.world.add_guild("Doorways Test", self.world.application.owner)
        self.channel = self.world.add_channel(self.guild, "general")

    # Lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve on ``host`` (loopback) at ``port`` (0: a free one, then stored in ``port``)."""
        if self._runner is not None:
            raise RuntimeError("FakeDiscord is already running")
        app = web.Application(client_max_size=self.upload_limit * 11 + (1 << 20))
        self.rest.install(app)
        app.router.add_get("/", self.gateway.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self.port = runner.addresses[0][1]
        self._runner = runner
        self.world.base_url = self.base_url
        self.gateway.url = self.gateway_url
        log.info("FakeDiscord listening on %s", self.base_url)

    async def stop(self) -> None:
        """Close bot connections (code 1001) and stop serving."""
        if self._runner is None:
            return
        await self.gateway.close_all()
        await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_base(self) -> str:
        """What discord.http.Route.BASE should be (the DISCORD_API_BASE setting)."""
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        """What DiscordWebSocket.DEFAULT_GATEWAY should be (the DISCORD_GATEWAY_URL setting)."""
        return "ws" + self.base_url.removeprefix("http") + "/"

    # The cast ---------------------------------------------------------------------------------

    @property
    def bot_user(self) -> User:
        return self.world.bot

    @property
    def owner(self) -> User:
        """The guild owner (has every permission)."""
        return self.world.application.owner

    @property
    def application_id(self) -> int:
        return self.world.application.id

    @property
    def bot_connected(self) -> bool:
        return self.gateway.connected

    @property
    def response_timeout(self) -> float:
        """Seconds the bot has for its first answer to an interaction (Discord: 3)."""
        return self.interactions.response_timeout

    @response_timeout.setter
    def response_timeout(self, seconds: float) -> None:
        self.interactions.response_timeout = seconds

    def set_team(self, members: Mapping[User, str]) -> None:
        """Let a team own the application: ``{user: role}``, role "admin", "developer" or
        "read_only" (GET /oauth2/applications/@me reports it; ``owner`` becomes the team's
        stand-in user). An empty mapping gives it back to ``owner``."""
        app = self.world.application
        app.team = [TeamMember(user, role) for user, role in members.items()]
        app.team_id = app.team_id or self.world.snowflakes.next()

    def create_user(
        self, username: str, *, guild: Guild | None = None, roles: Sequence[Role] = ()
    ) -> User:
        """A person; joins ``guild`` (default: the default guild) with ``roles``."""
        user = self.world.add_user(username)
        self.add_member(guild or self.guild, user, roles)
        return user

    def create_guild(self, name: str, *, owner: User | None = None, with_bot: bool = True) -> Guild:
        """A guild; with ``with_bot=False`` one that never added the bot (the bot hears
        nothing of it, but a user-installed app's command can still come from there)."""
        guild = self.world.add_guild(name, owner or self.owner, with_bot=with_bot)
        self.effects.guild_created(guild)
        return guild

    def create_channel(
        self, name: str, *, guild: Guild | None = None, topic: str | None = None
    ) -> Channel:
        channel = self.world.add_channel(guild or self.guild, name, topic=topic)
        self.effects.channel_created(channel)
        return channel

    def create_role(self, name: str, permissions: int = 0, *, guild: Guild | None = None) -> Role:
        guild = guild or self.guild
        role = self.world.add_role(guild, name, permissions)
        self.effects.role_created(guild, role)
        return role

    def add_member(self, guild: Guild, user: User, roles: Sequence[Role] = ()) -> Member:
        member = self.world.add_member(guild, user, list(roles))
        self.effects.member_added(guild, member)
        return member

    def set_roles(self, user: User, roles: Sequence[Role], *, guild: Guild | None = None) -> Member:
        guild = guild or self.guild
        member = self.world.member(guild, user.id)
        member.role_ids = [r.id for r in roles]
        self.effects.member_updated(guild, member)
        return member

    def create_thread(self, parent: Channel, name: str, *, owner: User | None = None) -> Channel:
        """A public thread in ``parent``; it takes its permissions from ``parent``."""
        thread = self.world.add_thread(parent, name, owner or self.owner)
        self.effects.thread_created(thread)
        return thread

    def set_overwrite(
        self, channel: Channel, target: Role | User, *, allow: int = 0, deny: int = 0
    ) -> None:
        """Set ``channel``'s permission overwrite for a role (``guild.everyone`` for @everyone)
        or a member (a person, or ``bot_user``), replacing the one it had; the bot is told
        (CHANNEL_UPDATE), and its requests meet the new permissions at once."""
        if channel.is_dm or channel.is_thread:
            raise ValueError(
                "overwrites belong to guild text channels (a thread uses its parent's)"
            )
        kind = 0 if isinstance(target, Role) else 1
        channel.overwrites = [o for o in channel.overwrites if (o.type, o.id) != (kind, target.id)]
        if allow or deny:
            channel.overwrites.append(Overwrite(target.id, kind, int(allow), int(deny)))
        self.effects.channel_updated(channel)

    def overwrite_of(self, channel: Channel, target: Role | User) -> tuple[int, int]:
        """(allow, deny) of ``channel``'s overwrite for ``target``; (0, 0) without one."""
        kind = 0 if isinstance(target, Role) else 1
        found = next((o for o in channel.overwrites if (o.type, o.id) == (kind, target.id)), None)
        return (0, 0) if found is None else (found.allow, found.deny)

    def clear_overwrite(self, channel: Channel, target: Role | User) -> None:
        """Remove ``channel``'s overwrite for ``target`` (its roles' permissions apply again)."""
        self.set_overwrite(channel, target)

    def set_role_permissions(
        self, role: Role, permissions: int, *, guild: Guild | None = None
    ) -> None:
        """Change a role's server-wide permissions (the bot's own role is the one whose
        ``bot_id`` is the bot's id; ``guild.everyone`` is @everyone's)."""
        role.permissions = int(permissions)
        self.effects.role_updated(guild or self.world.guild(role.guild_id), role)

    def bot_role(self, guild: Guild | None = None) -> Role:
        """The bot's managed role in ``guild`` (made when it was invited)."""
        guild = guild or self.guild
        return next(r for r in guild.roles.values() if r.bot_id == self.world.bot.id)

    def close_dms(self, user: User, closed: bool = True) -> None:
        """``user`` no longer accepts DMs from the bot: sending one answers 403 / 50007."""
        user.accepts_dms = not closed

    def dm_channel(self, user: User) -> Channel:
        """The DM channel between ``user`` and the bot."""
        return self.world.dm_with(user)

    # Acting as people -------------------------------------------------------------------------

    async def slash(
        self,
        user: User,
        channel: Channel,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        subcommand: str | None = None,
        group: str | None = None,
        locale: str = "en-US",
        integration: Integration = "guild",
    ) -> Interaction:
        """Run ``/name [group] [subcommand] options...`` as ``user``; options are typed from the
        registered schema (users, roles, channels as objects, files as ``Upload``).
        ``integration="user"``: through a copy of the app ``user`` installed to their account
        (Discord offers that only for commands registered with integration type 1)."""
        command = self._usable_command(user, channel, name, CommandType.CHAT_INPUT, integration)
        resolved = Resolved(self.world, self.effects, user, channel)
        built = commands.build_options(
            command, options or {}, resolved, subcommand=subcommand, group=group
        )
        data = self._command_data(command, options=built, resolved=resolved.payload())
        return self._open(
            InteractionType.APPLICATION_COMMAND,
            user,
            channel,
            data,
            locale=locale,
            integration=integration,
        )

    async def autocomplete(
        self,
        user: User,
        channel: Channel,
        name: str,
        focused: str,
        options: Mapping[str, Any] | None = None,
        *,
        subcommand: str | None = None,
        group: str | None = None,
        timeout: float = 3.0,
        integration: Integration = "guild",
    ) -> list[dict[str, Any]]:
        """Type into option ``focused`` (its text is ``options[focused]``, default empty) and
        return the choices the bot offers."""
        command = self._usable_command(user, channel, name, CommandType.CHAT_INPUT, integration)
        values = {focused: "", **(options or {})}
        resolved = Resolved(self.world, self.effects, user, channel)
        built = commands.build_options(
            command, values, resolved, subcommand=subcommand, group=group, focused=focused
        )
        data = self._command_data(command, options=built, resolved=resolved.payload())
        interaction = self._open(
            InteractionType.AUTOCOMPLETE, user, channel, data, integration=integration
        )
        response = await interaction.wait_response(timeout)
        return response.choices

    async def click(self, user: User, message: Message, custom_id: str) -> Interaction:
        """Press the button ``custom_id`` on ``message``."""
        component = self._component(user, message, custom_id)
        if component.get("type") != 2:
            raise ValueError(
                f"{custom_id!r} is a component of type {component.get('type')}, not a button"
            )
        data = {"custom_id": custom_id, "component_type": 2}
        return self._open(
            InteractionType.MESSAGE_COMPONENT,
            user,
            self._channel_of(message),
            data,
            message=message,
        )

    async def select(
        self, user: User, message: Message, custom_id: str, values: Sequence[Any]
    ) -> Interaction:
        """Pick ``values`` in the select menu ``custom_id`` (option values for a string select;
        users, roles or channels for the others)."""
        component = self._component(user, message, custom_id)
        kind = int(component.get("type", 0))
        if kind not in _SELECT_TYPES:
            raise ValueError(f"{custom_id!r} is a component of type {kind}, not a select menu")
        low, high = component.get("min_values", 1), component.get("max_values", 1)
        if not low <= len(values) <= high:
            raise ValueError(f"select {custom_id!r} takes {low}..{high} values, not {len(values)}")
        channel = self._channel_of(message)
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": kind}
        if kind == 3:
            allowed = [o["value"] for o in component.get("options", [])]
            if unknown := [v for v in values if v not in allowed]:
                raise ValueError(
                    f"select {custom_id!r} has no option(s) {unknown}; it has {allowed}"
                )
            data["values"] = list(values)
        else:
            resolved = Resolved(self.world, self.effects, user, channel)
            pick = {5: resolved.user, 6: resolved.role, 7: resolved.mentionable}.get(kind)
            data["values"] = [pick(v) if pick else resolved.channel(v) for v in values]
            data["resolved"] = resolved.payload()
        return self._open(InteractionType.MESSAGE_COMPONENT, user, channel, data, message=message)

    async def context_menu(self, user: User, message: Message, name: str) -> Interaction:
        """Run the message command ``name`` on ``message`` (Apps > name)."""
        channel = self._channel_of(message)
        command = self._usable_command(user, channel, name, CommandType.MESSAGE)
        resolved = Resolved(self.world, self.effects, user, channel)
        resolved.message(message, user)
        data = self._command_data(command, target_id=str(message.id), resolved=resolved.payload())
        return self._open(InteractionType.APPLICATION_COMMAND, user, channel, data)

    async def user_context_menu(
        self, user: User, channel: Channel, target: User, name: str
    ) -> Interaction:
        """Run the user command ``name`` on ``target`` from ``channel``."""
        command = self._usable_command(user, channel, name, CommandType.USER)
        resolved = Resolved(self.world, self.effects, user, channel)
        resolved.user(target)
        data = self._command_data(command, target_id=str(target.id), resolved=resolved.payload())
        return self._open(InteractionType.APPLICATION_COMMAND, user, channel, data)

    async def submit_modal(
        self, interaction: Interaction, values: Mapping[str, str | Sequence[str]]
    ) -> Interaction:
        """Fill in and submit the modal the bot answered ``interaction`` with. Fields are named
        by their label (what a person sees) or custom_id; a select takes a list of values."""
        modal = interaction.modal
        if modal is None:
            raise ValueError(f"interaction {interaction.id} was not answered with a modal")
        fields = _modal_fields(modal["components"])
        by_custom_id: dict[str, str | Sequence[str]] = {}
        for name, value in values.items():
            field = fields.get(name) or next(
                (f for f in fields.values() if f["custom_id"] == name), None
            )
            if field is None:
                raise ValueError(f"the modal has no field {name!r}; it has {sorted(fields)}")
            by_custom_id[field["custom_id"]] = value
        for label, field in fields.items():
            if field.get("required", True) and not by_custom_id.get(field["custom_id"]):
                raise ValueError(f"the modal field {label!r} is required")
        data = {
            "custom_id": modal["custom_id"],
            "components": _submitted(modal["components"], by_custom_id),
        }
        return self._open(
            InteractionType.MODAL_SUBMIT,
            interaction.user,
            interaction.channel,
            data,
            message=interaction.message,
        )

    async def react(self, user: User, message: Message, emoji: str) -> None:
        """Add ``user``'s reaction (unicode, or ``name:id`` for a custom emoji)."""
        channel = self._channel_of(message)
        self._visible(user, message)
        parsed = Emoji.parse(emoji)
        needed = Permission.READ_MESSAGE_HISTORY
        if message.reaction(parsed) is None:
            needed |= Permission.ADD_REACTIONS
        self._require(user, channel, needed, "react")
        if message.ephemeral:
            raise ValueError("nobody can react to an ephemeral message")
        self.effects.add_reaction(message, user, parsed)

    async def unreact(self, user: User, message: Message, emoji: str) -> None:
        self.effects.remove_reaction(message, user, Emoji.parse(emoji))

    async def send_message(
        self,
        user: User,
        channel: Channel,
        content: str = "",
        *,
        attachments: Sequence[Upload] = (),
        embeds: Sequence[dict[str, Any]] = (),
        reply_to: Message | None = None,
    ) -> Message:
        """Post a message as ``user`` (MESSAGE_CREATE reaches the bot if its intents ask)."""
        needed = channel.send_permission | (Permission.ATTACH_FILES if attachments else 0)
        self._require(user, channel, needed, "send messages")
        for upload in attachments:
            if len(upload.data) > self.upload_limit:
                raise errors.too_large(self.upload_limit)
        body: dict[str, Any] = {"content": content, "embeds": list(embeds)}
        if reply_to is not None:
            body["message_reference"] = {
                "message_id": str(reply_to.id),
                "channel_id": str(reply_to.channel_id),
            }
        return self.effects.post_message(channel, user, body, attachments)

    async def start_typing(self, user: User, channel: Channel) -> None:
        self._require(user, channel, channel.send_permission, "type")
        self.effects.typing(channel, user)

    def request_reconnect(self) -> None:
        """Ask the bot to reconnect and RESUME (Discord's op 7)."""
        self.gateway.request_reconnect()

    # Trouble on purpose -----------------------------------------------------------------------

    def slow_cdn(self, bytes_per_second: float | None) -> None:
        """Serve attachments at ``bytes_per_second`` (a slow link; None: at full speed)."""
        self.rest.cdn_bytes_per_second = bytes_per_second

    def rate_limit(
        self,
        route: str,
        *,
        limit: int,
        per: float = 1.0,
        method: str | None = None,
        hidden: bool = False,
    ) -> Limit:
        """Answer 429 past ``limit`` requests per ``per`` s on ``route`` (a discord.py Route
        path such as ``/channels/{channel_id}/messages``); ``hidden``: don't announce it in the
        headers, so the client meets the 429s (see ``Traffic.limit``)."""
        return self.traffic.limit(route, limit=limit, per=per, method=method, hidden=hidden)

    def fail_next(
        self,
        route: str,
        *,
        status: int = 500,
        code: int = 0,
        message: str = "Internal Server Error",
        method: str | None = None,
        times: int = 1,
    ) -> Fault:
        """Answer the next ``times`` requests to ``route`` with this error."""
        return self.traffic.fail_next(
            route, status=status, code=code, message=message, method=method, times=times
        )

    # Looking ----------------------------------------------------------------------------------

    def messages(self, channel: Channel, *, visible_to: User | None = None) -> list[Message]:
        """The channel's messages, oldest first, plus ``visible_to``'s ephemeral ones."""
        found = self.world.history(channel)
        if visible_to is not None:
            found += [
                m
                for m in self.world.messages.values()
                if m.channel_id == channel.id and m.visible_to == visible_to.id and not m.deleted
            ]
        return sorted(found, key=lambda m: m.id)

    def message(self, message_id: int) -> Message:
        return self.world.messages[message_id]

    def commands(self, guild: Guild | None = None) -> list[dict[str, Any]]:
        """The registered commands: global ones, or ``guild``'s."""
        return list(self.world.commands.get(None if guild is None else guild.id, []))

    def calls(
        self, method: str | None = None, route: str | None = None, **params: object
    ) -> list[Call]:
        """The bot's API requests so far (the last 100,000), oldest first; optionally only
        ``method`` on ``route`` (a discord.py Route path such as
        ``/channels/{channel_id}/messages``) with these path values, e.g.
        ``calls("PATCH", message_id=status.id)``."""
        return [
            call
            for call in self.rest.calls
            if (method is None or call.method == method.upper())
            and (route is None or call.route == route)
            and all(call.params.get(k) == str(v) for k, v in params.items())
        ]

    @property
    def invalid_requests(self) -> int:
        """How many 401, 403 and 429 answers the bot got (Discord bans an IP at 10,000 in
        10 minutes)."""
        return sum(call.invalid for call in self.rest.calls)

    @property
    def unknown_requests(self) -> list[str]:
        """``"METHOD /path"`` of every request that hit a route the fake does not implement."""
        return self.rest.unknown_requests

    async def wait_for(
        self, predicate: Callable[[Change], bool], *, timeout: float = 5.0, after: int | None = None
    ) -> Change:
        """The first change (after cursor ``after``, default now) matching ``predicate``."""
        return await self.changes.wait_for(predicate, timeout=timeout, after=after)

    async def wait_until(
        self, check: Callable[[], T | None], *, timeout: float = 5.0, what: str = "condition"
    ) -> T:
        """``check()`` once it returns something other than None. It is re-run on each change
        of the fake's state, so it should look at the fake, not at the bot's own state."""
        return await self.changes.wait_until(check, timeout=timeout, what=what)

    async def wait_for_message(
        self,
        channel: Channel,
        predicate: Callable[[Message], bool] = lambda m: True,
        *,
        timeout: float = 5.0,
        visible_to: User | None = None,
    ) -> Message:
        """The newest message of ``channel`` matching ``predicate``, already there or to come."""

        def find() -> Message | None:
            return next(
                (
                    m
                    for m in reversed(self.messages(channel, visible_to=visible_to))
                    if predicate(m)
                ),
                None,
            )

        return await self.wait_until(
            find, timeout=timeout, what=f"a matching message in #{channel.name}"
        )

    async def wait_for_bot(self, *, connected: bool = True, timeout: float = 5.0) -> None:
        """Until a bot is connected to the gateway (or, with ``connected=False``, none is)."""
        await self.wait_until(
            lambda: True if self.gateway.connected == connected else None,
            timeout=timeout,
            what="a bot to connect" if connected else "the bot to disconnect",
        )

    # Helpers ----------------------------------------------------------------------------------

    def _open(
        self,
        type: InteractionType,
        user: User,
        channel: Channel,
        data: dict[str, Any],
        *,
        message: Message | None = None,
        locale: str = "en-US",
        integration: Integration = "guild",
    ) -> Interaction:
        if not self.gateway.connected:
            raise RuntimeError("no bot is connected to FakeDiscord's gateway")
        return self.interactions.open(
            type, user, channel, data, message=message, locale=locale, integration=integration
        )

    def _usable_command(
        self,
        user: User,
        channel: Channel,
        name: str,
        kind: CommandType,
        integration: Integration = "guild",
    ) -> dict[str, Any]:
        """The command ``user`` sees under ``name`` in ``channel``, as Discord's client would
        offer it (respecting the install, default_member_permissions and contexts)."""
        guild = self.world.guild_of(channel)
        if integration == "user":
            # Only global commands can be user-installed; unset means the app's configured
            # install types, which for this app is the server install.
            command = commands.find(self.world, None, name, kind)
            installs = command.get("integration_types") or [0]
            if 1 not in installs:
                raise ValueError(
                    f"command {name!r} is registered for integration types {installs}: Discord "
                    "does not offer it to people who installed the app to their account"
                )
        else:
            if guild is not None and self.world.bot.id not in guild.members:
                raise ValueError(f"the bot is not in {guild.name!r}: its commands are not offered")
            command = commands.find(self.world, channel.guild_id, name, kind)
            self._require(user, channel, Permission.USE_APPLICATION_COMMANDS, "use commands")
        contexts: Iterable[int] | None = command.get("contexts")
        context = 1 if channel.is_dm else 0
        if contexts is not None and context not in contexts:
            raise ValueError(f"command {name!r} is not offered in {'DMs' if context else 'guilds'}")
        if channel.is_dm and command.get("dm_permission") is False:
            raise ValueError(f"command {name!r} is not offered in DMs")
        needed = command.get("default_member_permissions")
        if needed is not None and not channel.is_dm:
            perms = self.world.permissions(user, channel)
            if not has_permissions(perms, int(needed)):
                raise PermissionError(
                    f"{user.username} cannot use /{name}: it needs "
                    f"{needed_permissions_text(int(needed))}"
                )
        return command

    def _require(self, user: User, channel: Channel, permission: int, doing: str) -> None:
        """Like ``Effects.require``, but says who cannot do what, where (a PermissionError)."""
        try:
            self.effects.require(user, channel, permission)
        except errors.DiscordError as error:
            where = f"#{channel.name}" if channel.name else f"DM {channel.id}"
            raise PermissionError(
                f"{user.username} cannot {doing} in {where}: {error.message}"
            ) from None

    def _command_data(self, command: dict[str, Any], **fields: Any) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": command["id"],
            "name": command["name"],
            "type": command["type"],
        }
        data.update({k: v for k, v in fields.items() if v})
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        return data

    def _channel_of(self, message: Message) -> Channel:
        return self.world.channel(message.channel_id)

    def _visible(self, user: User, message: Message) -> None:
        if message.deleted or (message.ephemeral and message.visible_to != user.id):
            raise ValueError(f"{user.username} cannot see message {message.id}")

    def _component(self, user: User, message: Message, custom_id: str) -> dict[str, Any]:
        self._visible(user, message)
        if message.loading:
            raise ValueError(f"message {message.id} is still loading")
        component = message.component(custom_id)
        if component is None:
            raise ValueError(
                f"message {message.id} has no component {custom_id!r}; "
                f"it has {message.custom_ids()}"
            )
        if component.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled")
        return component


def bot_token(bot_id: int) -> str:
    """A token shaped like Discord's: the bot's id in base64, a timestamp part, an HMAC part
    (tools such as `doorways-bot --invite` read the application id from the first part)."""
    head = base64.b64encode(str(bot_id).encode()).decode().rstrip("=")
    return f"{head}.{secrets.token_urlsafe(4)}.{secrets.token_urlsafe(27)}"


def _modal_fields(components: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A modal's inputs by label: text inputs carry their own label (in action rows) or sit,
    like selects, in a Label component (type 18)."""
    fields: dict[str, dict[str, Any]] = {}
    for component in walk_components(components):
        if component.get("type") == 18 and isinstance(component.get("component"), dict):
            inner = component["component"]
            if "custom_id" in inner:
                fields[component.get("label") or inner["custom_id"]] = inner
        elif component.get("type") == 4 and component.get("label"):
            fields[component["label"]] = component
    return fields


def _submitted(
    components: list[dict[str, Any]], values: Mapping[str, str | Sequence[str]]
) -> list[dict[str, Any]]:
    """A modal's components as a submission mirrors them: rows and labels around the inputs."""
    result: list[dict[str, Any]] = []
    for component in components:
        kind = component.get("type")
        if kind == 1:
            result.append(
                {"type": 1, "components": _submitted(component.get("components", []), values)}
            )
        elif kind == 18 and isinstance(component.get("component"), dict):
            inner = _submitted([component["component"]], values)
            result.append({"type": 18, "component": inner[0] if inner else {}})
        elif kind == 4:
            value = values.get(component["custom_id"], "")
            result.append({"type": 4, "custom_id": component["custom_id"], "value": str(value)})
        elif kind in _SELECT_TYPES:
            picked = values.get(component["custom_id"], [])
            chosen = [picked] if isinstance(picked, str) else list(picked)
            result.append({"type": kind, "custom_id": component["custom_id"], "values": chosen})
    return result

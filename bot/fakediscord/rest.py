"""Discord's REST API (the parts a bot uses), served by aiohttp under ``/api/v10``.

Every answer carries X-RateLimit-* headers; errors are Discord's JSON; a route the fake does not
know answers 404 with a message naming it, and is logged and remembered, so a missing route is
obvious while developing the bot. Files are served back at ``/attachments/...`` (the "CDN").
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from . import commands, errors, payloads
from .changes import ChangeKind
from .effects import Effects
from .errors import DiscordError
from .interactions import Interactions
from .ratelimits import RateLimited, Traffic
from .state import Channel, Emoji, Message, Permission, Upload, World

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
MAX_CALLS = 100_000
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Routes that authenticate with the interaction token in the path, not the bot token.
_TOKEN_ROUTES = (
    "/interactions/{interaction_id}/{interaction_token}/callback",
    "/webhooks/{webhook_id}/{webhook_token}",
    "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
)


@dataclass(frozen=True)
class Call:
    """One API request the bot made and how it was answered (``code``: Discord's JSON error
    code, 0 for a success)."""

    method: str
    route: str  # discord.py's Route path, e.g. /channels/{channel_id}/messages/{message_id}
    params: dict[str, str]  # the path's values: {"channel_id": "...", "message_id": "..."}
    status: int
    code: int = 0
    at: float = field(default_factory=time.monotonic)

    @property
    def invalid(self) -> bool:
        """What Discord counts toward its invalid-request limit (10,000 per 10 minutes bans
        the IP): 401, 403 and 429 answers."""
        return self.status in (401, 403, 429)


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """JSON with ``Content-Type: application/json`` exactly (discord.py compares the whole header
    and treats ``application/json; charset=utf-8`` as text)."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


def no_content() -> web.Response:
    return web.Response(status=204)


class RestApi:
    """The route handlers; ``install`` adds them (and the middleware) to an aiohttp app."""

    def __init__(
        self,
        world: World,
        effects: Effects,
        interactions: Interactions,
        traffic: Traffic,
        *,
        token: str,
        upload_limit: int,
        application_flags: int,
        message_content: bool,
        gateway_url: Callable[[], str],
    ) -> None:
        self.world = world
        self.effects = effects
        self.interactions = interactions
        self.traffic = traffic
        self.token = token
        self.upload_limit = upload_limit
        self.application_flags = application_flags
        self.gateway_url = gateway_url
        self.unknown_requests: list[str] = []
        # The API requests, in order: the last MAX_CALLS (a long playground session stays small).
        self.calls: deque[Call] = deque(maxlen=MAX_CALLS)
        self.message_content = message_content  # the app's Message Content toggle
        self.cdn_bytes_per_second: float | None = None  # None: attachments as fast as possible

    # Wiring -----------------------------------------------------------------------------------

    def install(self, app: web.Application) -> None:
        app.middlewares.append(self.middleware)
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/gateway", self.get_gateway),
            ("GET", "/gateway/bot", self.get_gateway),
            ("GET", "/users/@me", self.get_me),
            ("POST", "/users/@me/channels", self.create_dm),
            ("GET", "/users/{user_id}", self.get_user),
            ("GET", "/oauth2/applications/@me", self.get_application),
            ("GET", "/applications/@me", self.get_application),
            ("GET", "/applications/{application_id}/commands", self.list_commands),
            ("PUT", "/applications/{application_id}/commands", self.overwrite_commands),
            ("POST", "/applications/{application_id}/commands", self.upsert_command),
            ("GET", "/applications/{application_id}/commands/{command_id}", self.get_command),
            ("PATCH", "/applications/{application_id}/commands/{command_id}", self.edit_command),
            ("DELETE", "/applications/{application_id}/commands/{command_id}", self.delete_command),
            (
                "GET",
                "/applications/{application_id}/guilds/{guild_id}/commands/permissions",
                self.list_command_permissions,
            ),
            (
                "GET",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self.list_commands,
            ),
            (
                "PUT",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self.overwrite_commands,
            ),
            (
                "POST",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self.upsert_command,
            ),
            (
                "GET",
                "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}",
                self.get_command,
            ),
            (
                "PATCH",
                "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}",
                self.edit_command,
            ),
            (
                "DELETE",
                "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}",
                self.delete_command,
            ),
            ("GET", "/channels/{channel_id}", self.get_channel),
            ("GET", "/channels/{channel_id}/messages", self.list_messages),
            ("POST", "/channels/{channel_id}/messages", self.create_message),
            ("POST", "/channels/{channel_id}/messages/bulk-delete", self.bulk_delete),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self.edit_message),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message),
            (
                "PUT",
                "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
                self.add_reaction,
            ),
            (
                "DELETE",
                "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
                self.remove_own_reaction,
            ),
            (
                "DELETE",
                "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{member_id}",
                self.remove_reaction,
            ),
            (
                "GET",
                "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}",
                self.list_reactors,
            ),
            (
                "DELETE",
                "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}",
                self.clear_emoji,
            ),
            (
                "DELETE",
                "/channels/{channel_id}/messages/{message_id}/reactions",
                self.clear_reactions,
            ),
            ("POST", "/channels/{channel_id}/typing", self.typing),
            ("GET", "/guilds/{guild_id}", self.get_guild),
            ("GET", "/guilds/{guild_id}/channels", self.list_guild_channels),
            ("GET", "/guilds/{guild_id}/roles", self.list_roles),
            ("GET", "/guilds/{guild_id}/members", self.list_members),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member),
            ("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", self.add_member_role),
            (
                "DELETE",
                "/guilds/{guild_id}/members/{user_id}/roles/{role_id}",
                self.remove_member_role,
            ),
            ("POST", "/interactions/{interaction_id}/{interaction_token}/callback", self.callback),
            ("POST", "/webhooks/{webhook_id}/{webhook_token}", self.followup),
            (
                "GET",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                self.get_webhook_message,
            ),
            (
                "PATCH",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                self.edit_webhook_message,
            ),
            (
                "DELETE",
                "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
                self.delete_webhook_message,
            ),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, API_PREFIX + path, handler)
        app.router.add_get(
            "/attachments/{channel_id}/{attachment_id}/{filename}", self.get_attachment
        )
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self.unknown_route)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX + "/"):
            return await handler(request)
        route = (
            request.match_info.route.resource.canonical if request.match_info.route.resource else ""
        )
        route = route.removeprefix(API_PREFIX)
        major = next(
            (
                request.match_info[k]
                for k in ("channel_id", "guild_id", "webhook_id")
                if k in request.match_info
            ),
            "",
        )
        headers: dict[str, str] = {}
        code = 0
        try:
            if (
                route not in _TOKEN_ROUTES
                and request.headers.get("Authorization") != f"Bot {self.token}"
            ):
                raise errors.unauthorized()
            headers = self.traffic.admit(request.method, route, major)
            response = await handler(request)
        except RateLimited as limited:
            log.info(
                "fakediscord: 429 for %s %s (retry after %.3f s)",
                request.method,
                route,
                limited.retry_after,
            )
            response = json_response(limited.body(), 429, limited.headers)
        except DiscordError as error:
            response = json_response(error.payload(), error.status)
            code = error.code
        params = {k: v for k, v in request.match_info.items() if k != "tail"}
        self.calls.append(Call(request.method, route, params, response.status, code))
        if response.status != 429:
            response.headers.update(headers)
        return response

    async def unknown_route(self, request: web.Request) -> web.Response:
        where = f"{request.method} {request.path}"
        self.unknown_requests.append(where)
        log.warning("fakediscord: no route for %s — add it to bot/fakediscord/rest.py", where)
        message = f"FakeDiscord does not implement {where} (see bot/fakediscord/rest.py)"
        return json_response({"code": 0, "message": message}, 404)

    # Bodies -----------------------------------------------------------------------------------

    async def read_body(self, request: web.Request) -> tuple[dict[str, Any], list[Upload]]:
        """A JSON body, or multipart ``payload_json`` + ``files[n]`` (each file at most the
        upload limit, else Discord's 413 / 40005 after the whole body is read)."""
        if request.content_type != "multipart/form-data":
            text = await request.text()
            return (_parse_json(text) if text.strip() else {}), []
        body: dict[str, Any] = {}
        files: dict[int, Upload] = {}
        too_large = False
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            name = part.name or ""
            if name == "payload_json":
                body = _parse_json(await part.text())
            elif name.startswith("files[") and name.endswith("]"):
                data = bytearray()
                while chunk := await part.read_chunk(1 << 16):
                    if len(data) + len(chunk) > self.upload_limit:
                        too_large = True
                        data.clear()
                        await part.release()
                        break
                    data.extend(chunk)
                content_type = part.headers.get("Content-Type")
                files[int(name[6:-1])] = Upload(part.filename or "file", bytes(data), content_type)
            else:
                await part.release()
        if too_large:
            raise errors.too_large(self.upload_limit)
        return body, [files[i] for i in sorted(files)]

    # Users, application, gateway --------------------------------------------------------------

    async def get_gateway(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return json_response({"url": self.gateway_url(), "shards": 1, "session_start_limit": limit})

    async def get_me(self, request: web.Request) -> web.Response:
        return json_response(
            {**payloads.user(self.world.bot), "verified": True, "mfa_enabled": False}
        )

    async def get_user(self, request: web.Request) -> web.Response:
        return json_response(payloads.user(self.world.user(request.match_info["user_id"])))

    async def create_dm(self, request: web.Request) -> web.Response:
        body, _ = await self.read_body(request)
        user = self.world.user(body.get("recipient_id", 0))
        return json_response(payloads.channel(self.world, self.world.dm_with(user)))

    async def get_application(self, request: web.Request) -> web.Response:
        return json_response(
            payloads.application(self.world.application, flags=self.application_flags)
        )

    # Application commands ---------------------------------------------------------------------

    def _scope(self, request: web.Request) -> int | None:
        if request.match_info["application_id"] != str(self.world.application.id):
            raise DiscordError(403, 50001, "Missing Access")
        guild_id = request.match_info.get("guild_id")
        return None if guild_id is None else self.world.guild(guild_id).id

    def _commands_changed(self, scope: int | None) -> None:
        self.effects.feed.publish(
            ChangeKind.COMMANDS_UPDATE,
            guild_id=scope,
            payload={"commands": self.world.commands.get(scope, [])},
        )

    async def list_commands(self, request: web.Request) -> web.Response:
        return json_response(self.world.commands.get(self._scope(request), []))

    async def overwrite_commands(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        body = _parse_json(await request.text())
        if not isinstance(body, list):
            raise errors.invalid_form("commands", "Expected a list of commands")
        stored = commands.overwrite(self.world, scope, body)
        log.info("fakediscord: %d commands registered (%s)", len(stored), scope or "global")
        self._commands_changed(scope)
        return json_response(stored)

    async def upsert_command(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        stored = commands.upsert(self.world, scope, _parse_json(await request.text()))
        self._commands_changed(scope)
        return json_response(stored, 201)

    async def get_command(self, request: web.Request) -> web.Response:
        return json_response(
            commands.get(self.world, self._scope(request), request.match_info["command_id"])
        )

    async def edit_command(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        current = commands.get(self.world, scope, request.match_info["command_id"])
        changes = _parse_json(await request.text())
        stored = commands.upsert(self.world, scope, {**current, **changes, "name": current["name"]})
        self._commands_changed(scope)
        return json_response(stored)

    async def delete_command(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        commands.get(self.world, scope, request.match_info["command_id"])
        commands.remove(self.world, scope, request.match_info["command_id"])
        self._commands_changed(scope)
        return no_content()

    async def list_command_permissions(self, request: web.Request) -> web.Response:
        self._scope(request)
        return json_response([])

    # Channels and messages --------------------------------------------------------------------

    def _channel(self, request: web.Request, permission: int = 0) -> Channel:
        """The channel in the path, if the bot can see it (and has ``permission`` there)."""
        channel = self.world.channel(request.match_info["channel_id"])
        self.effects.require(self.world.bot, channel, permission)
        return channel

    def _message(self, request: web.Request, permission: int = 0) -> tuple[Channel, Message]:
        channel = self._channel(request, permission)
        return channel, self.world.message(channel, request.match_info["message_id"])

    async def get_channel(self, request: web.Request) -> web.Response:
        return json_response(payloads.channel(self.world, self._channel(request)))

    async def list_messages(self, request: web.Request) -> web.Response:
        channel = self._channel(request, Permission.READ_MESSAGE_HISTORY)
        query = request.query
        limit = min(max(int(query.get("limit", 50)), 1), 100)
        history = self.world.history(channel)
        if "before" in query:
            chosen = [m for m in history if m.id < int(query["before"])][-limit:]
        elif "after" in query:
            chosen = [m for m in history if m.id > int(query["after"])][:limit]
        elif "around" in query:
            pivot = int(query["around"])
            older = [m for m in history if m.id <= pivot][-(limit - limit // 2) :]
            newer = [m for m in history if m.id > pivot][: limit // 2]
            chosen = older + newer
        else:
            chosen = history[-limit:]
        return json_response([self._as_read(m) for m in reversed(chosen)])

    async def get_message(self, request: web.Request) -> web.Response:
        _, message = self._message(request, Permission.READ_MESSAGE_HISTORY)
        return json_response(self._as_read(message))

    def _as_read(self, message: Message) -> dict[str, Any]:
        """A message as the bot reads it over REST: without the Message Content toggle, its
        content, embeds, attachments and components come empty (``World.content_exempt``
        says when not)."""
        payload = payloads.message(self.world, message)
        if self.message_content or self.world.content_exempt(message):
            return payload
        return {**payload, "content": "", "embeds": [], "attachments": [], "components": []}

    async def create_message(self, request: web.Request) -> web.Response:
        """Posting takes Send Messages (in a thread: Send Messages in Threads), files Attach
        Files, a reply Read Message History; a DM needs the person to accept the bot's DMs."""
        channel = self._channel(request)
        body, uploads = await self.read_body(request)
        needed = channel.send_permission | (Permission.ATTACH_FILES if uploads else 0)
        if body.get("message_reference"):
            needed |= Permission.READ_MESSAGE_HISTORY
        self.effects.require(self.world.bot, channel, needed)
        if channel.is_dm and not all(
            self.world.users[i].accepts_dms for i in channel.recipient_ids
        ):
            raise errors.cannot_dm()
        message = self.effects.post_message(channel, self.world.bot, body, uploads)
        return json_response(payloads.message(self.world, message))

    async def edit_message(self, request: web.Request) -> web.Response:
        """Editing one's own message takes only seeing the channel (people muted by an
        overwrite can still edit theirs), and Attach Files for new files."""
        channel, message = self._message(request)
        if message.author.id != self.world.bot.id:
            raise errors.not_author()
        body, uploads = await self.read_body(request)
        if uploads:
            self.effects.require(self.world.bot, channel, Permission.ATTACH_FILES)
        self.effects.edit_message(message, body, uploads)
        return json_response(payloads.message(self.world, message))

    async def delete_message(self, request: web.Request) -> web.Response:
        channel, message = self._message(request)
        if message.author.id != self.world.bot.id:
            self.effects.require(self.world.bot, channel, Permission.MANAGE_MESSAGES)
        self.effects.delete_message(message)
        return no_content()

    async def bulk_delete(self, request: web.Request) -> web.Response:
        channel = self._channel(request, Permission.MANAGE_MESSAGES)
        body, _ = await self.read_body(request)
        ids = body.get("messages") or []
        if not 2 <= len(ids) <= 100:
            raise errors.invalid_form("messages", "Must be between 2 and 100 in length.")
        for message in [self.world.message(channel, i) for i in ids]:
            self.effects.delete_message(message)
        return no_content()

    # Reactions --------------------------------------------------------------------------------

    async def add_reaction(self, request: web.Request) -> web.Response:
        channel, message = self._message(request, Permission.READ_MESSAGE_HISTORY)
        emoji = Emoji.parse(request.match_info["emoji"])
        if message.reaction(emoji) is None:
            self.effects.require(self.world.bot, channel, Permission.ADD_REACTIONS)
            if len(message.reactions) >= 20:
                raise DiscordError(400, 30010, "Maximum number of reactions reached (20)")
        self.effects.add_reaction(message, self.world.bot, emoji)
        return no_content()

    async def remove_own_reaction(self, request: web.Request) -> web.Response:
        _, message = self._message(request)
        self.effects.remove_reaction(
            message, self.world.bot, Emoji.parse(request.match_info["emoji"])
        )
        return no_content()

    async def remove_reaction(self, request: web.Request) -> web.Response:
        _, message = self._message(request, Permission.MANAGE_MESSAGES)
        user = self.world.user(request.match_info["member_id"])
        self.effects.remove_reaction(message, user, Emoji.parse(request.match_info["emoji"]))
        return no_content()

    async def list_reactors(self, request: web.Request) -> web.Response:
        _, message = self._message(request, Permission.READ_MESSAGE_HISTORY)
        ids = sorted(message.reactors(Emoji.parse(request.match_info["emoji"])))
        if "after" in request.query:
            ids = [i for i in ids if i > int(request.query["after"])]
        ids = ids[: min(max(int(request.query.get("limit", 25)), 1), 100)]
        return json_response([payloads.user(self.world.users[i]) for i in ids])

    async def clear_emoji(self, request: web.Request) -> web.Response:
        _, message = self._message(request, Permission.MANAGE_MESSAGES)
        emoji = Emoji.parse(request.match_info["emoji"])
        for user_id in message.reactors(emoji):
            self.effects.remove_reaction(message, self.world.users[user_id], emoji)
        return no_content()

    async def clear_reactions(self, request: web.Request) -> web.Response:
        _, message = self._message(request, Permission.MANAGE_MESSAGES)
        for reaction in list(message.reactions):
            for user_id in list(reaction.user_ids):
                self.effects.remove_reaction(message, self.world.users[user_id], reaction.emoji)
        return no_content()

    async def typing(self, request: web.Request) -> web.Response:
        channel = self.world.channel(request.match_info["channel_id"])
        self.effects.require(self.world.bot, channel, channel.send_permission)
        self.effects.typing(channel, self.world.bot)
        return no_content()

    # Guilds -----------------------------------------------------------------------------------

    async def get_guild(self, request: web.Request) -> web.Response:
        guild = self.world.guild(request.match_info["guild_id"])
        payload = payloads.guild(guild)
        if request.query.get("with_counts") in ("true", "1"):
            payload.update(
                approximate_member_count=len(guild.members), approximate_presence_count=0
            )
        return json_response(payload)

    async def list_guild_channels(self, request: web.Request) -> web.Response:
        guild = self.world.guild(request.match_info["guild_id"])
        return json_response(
            [payloads.channel(self.world, self.world.channels[c]) for c in guild.channel_ids]
        )

    async def list_roles(self, request: web.Request) -> web.Response:
        guild = self.world.guild(request.match_info["guild_id"])
        return json_response([payloads.role(r) for r in guild.roles.values()])

    async def list_members(self, request: web.Request) -> web.Response:
        guild = self.world.guild(request.match_info["guild_id"])
        after = int(request.query.get("after", 0))
        limit = min(max(int(request.query.get("limit", 1)), 1), 1000)
        members = sorted(
            (m for m in guild.members.values() if m.user.id > after), key=lambda m: m.user.id
        )
        return json_response([payloads.member(m) for m in members[:limit]])

    async def get_member(self, request: web.Request) -> web.Response:
        guild = self.world.guild(request.match_info["guild_id"])
        return json_response(
            payloads.member(self.world.member(guild, request.match_info["user_id"]))
        )

    async def add_member_role(self, request: web.Request) -> web.Response:
        return self._change_role(request, add=True)

    async def remove_member_role(self, request: web.Request) -> web.Response:
        return self._change_role(request, add=False)

    def _change_role(self, request: web.Request, *, add: bool) -> web.Response:
        guild = self.world.guild(request.match_info["guild_id"])
        member = self.world.member(guild, request.match_info["user_id"])
        role = self.world.role(guild, request.match_info["role_id"])
        bot_perms = self.world.permissions(self.world.bot, guild=guild)
        bot_top = max(
            (guild.roles[r].position for r in guild.members[self.world.bot.id].role_ids), default=0
        )
        if not bot_perms & Permission.MANAGE_ROLES or role.position >= bot_top:
            raise errors.missing_permissions()
        if add and role.id not in member.role_ids:
            member.role_ids.append(role.id)
        elif not add and role.id in member.role_ids:
            member.role_ids.remove(role.id)
        self.effects.member_updated(guild, member)
        return no_content()

    # Interactions and their webhook -----------------------------------------------------------

    async def callback(self, request: web.Request) -> web.Response:
        interaction = self.interactions.by_id(
            request.match_info["interaction_id"], request.match_info["interaction_token"]
        )
        body, uploads = await self.read_body(request)
        result = self.interactions.callback(interaction, body, uploads)
        if request.query.get("with_response") in ("1", "true", "True"):
            return json_response(result)
        return no_content()

    async def followup(self, request: web.Request) -> web.Response:
        interaction = self.interactions.by_token(
            request.match_info["webhook_id"], request.match_info["webhook_token"]
        )
        body, uploads = await self.read_body(request)
        message = self.interactions.followup(interaction, body, uploads)
        if request.query.get("wait") in ("1", "true", "True"):
            return json_response(
                payloads.message(self.world, message, viewer_id=interaction.user.id)
            )
        return no_content()

    async def get_webhook_message(self, request: web.Request) -> web.Response:
        interaction = self.interactions.by_token(
            request.match_info["webhook_id"], request.match_info["webhook_token"]
        )
        message = self.interactions.webhook_message(interaction, request.match_info["message_id"])
        return json_response(payloads.message(self.world, message, viewer_id=interaction.user.id))

    async def edit_webhook_message(self, request: web.Request) -> web.Response:
        interaction = self.interactions.by_token(
            request.match_info["webhook_id"], request.match_info["webhook_token"]
        )
        body, uploads = await self.read_body(request)
        message = self.interactions.edit(
            interaction, request.match_info["message_id"], body, uploads
        )
        return json_response(payloads.message(self.world, message, viewer_id=interaction.user.id))

    async def delete_webhook_message(self, request: web.Request) -> web.Response:
        interaction = self.interactions.by_token(
            request.match_info["webhook_id"], request.match_info["webhook_token"]
        )
        self.interactions.delete(interaction, request.match_info["message_id"])
        return no_content()

    # The "CDN" --------------------------------------------------------------------------------

    async def get_attachment(self, request: web.Request) -> web.StreamResponse:
        attachment = self.world.attachments.get(int(request.match_info["attachment_id"]))
        if (
            attachment is None
            or str(attachment.channel_id) != request.match_info["channel_id"]
            or attachment.filename != request.match_info["filename"]
        ):
            return web.Response(status=404, text="Not Found")
        content_type = attachment.content_type or "application/octet-stream"
        rate = self.cdn_bytes_per_second
        if rate is None:
            return web.Response(body=attachment.data, content_type=content_type)
        # A slow link: the body trickles out in 20 pieces a second.
        response = web.StreamResponse(headers={"Content-Length": str(attachment.size)})
        response.content_type = content_type
        await response.prepare(request)
        piece = max(1, int(rate / 20))
        for start in range(0, attachment.size, piece):
            await response.write(attachment.data[start : start + piece])
            await asyncio.sleep(piece / rate)
        await response.write_eof()
        return response


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise DiscordError(400, 50109, "The request body contains invalid JSON.") from None

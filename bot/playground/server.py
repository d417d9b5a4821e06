"""The playground's web app: one page that looks and behaves like a Discord server with one
channel and each person's direct messages, talking to this server over one WebSocket per tab.

Everything the page shows comes from the fake's state and its change stream; everything a
person does goes through the same driver calls the tests use (``slash``, ``autocomplete``,
``click``, ``react``, ``context_menu``, ``submit_modal``), so the real bot answers over the
real gateway and REST protocols. The page never talks to the bot or the engine itself.

    GET  /                       the page (static/index.html, app.js, style.css)
    GET  /api/state?user=NAME    what NAME's page draws: people, commands, channel and DMs
    GET  /api/socket?user=NAME   the page's WebSocket (below)
    GET  /attachments/...        the fake's attachment files, so the page needs one origin

One WebSocket per tab, not a long-lived request: a browser opens at most six HTTP
connections per host, so a seventh tab following a stream would wait forever. On the socket
the server first sends ``{"kind": "state", ...}`` (what /api/state gives), then what changes:
``message``, ``delete``, ``commands``, ``bot``. The page sends requests
``{"id": N, "action": A, ...}`` and gets ``{"kind": "reply", "id": N, "ok": true, ...}`` or
``{"kind": "reply", "id": N, "error": "what went wrong"}``. Actions: ``command`` (name,
group?, subcommand?, options), ``autocomplete`` (the same and ``focused``), ``click``
(message_id, custom_id), ``react`` (message_id, emoji, remove?), ``context`` (message_id,
name), ``modal`` (interaction_id, values), ``bot_permission`` (name, allowed: the admin
allows or denies the bot a permission it needs in the channel; every page then gets
``permissions``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import WSCloseCode, WSMsgType, web

from bot.fakediscord import FakeDiscord, Interaction, Message, Permission, User, payloads
from bot.fakediscord.changes import Change, ChangeKind
from bot.fakediscord.state import Channel, has_permissions, needed_permissions_text
from bot.playground.permissions import bot_permissions, set_bot_permission

log = logging.getLogger(__name__)
T = TypeVar("T")

STATIC = Path(__file__).with_name("static")
RESPONSE_TIMEOUT = 3.5  # Discord gives a bot 3 s for its first answer
# The made-up people of the playground; "mod" has a role with Manage Server.
PEOPLE = ("ada", "ben", "cy", "mod")
ADMIN = "mod"
_SCALARS = {3: "string", 4: "integer", 5: "boolean", 10: "number"}
_SUB_COMMAND, _GROUP, _USER, _ROLE, _MENTIONABLE = 1, 2, 6, 8, 9


@dataclass(frozen=True)
class Banner:
    """What the page says about the models in use (None text: no banner)."""

    tiny_models: bool
    text: str | None = None


class Refused(Exception):
    """A request the page cannot make as that person; the text says why, for a person."""


class Playground:
    """The web side of the playground over a running ``FakeDiscord``.

    Parameters
    ----------
    fake:
        The running fake Discord the bot is connected to (or will connect to).
    banner:
        Whether the tiny stand-in models are in use, and what the page says about it.
    response_timeout:
        Seconds to wait for the bot's first answer before saying it did not respond.
    """

    def __init__(
        self, fake: FakeDiscord, banner: Banner, *, response_timeout: float = RESPONSE_TIMEOUT
    ) -> None:
        self.fake = fake
        self.banner = banner
        self.response_timeout = response_timeout
        self.channel = fake.channel
        admin_role = fake.create_role("Moderators", int(Permission.MANAGE_GUILD))
        self.people: dict[str, User] = {
            name: fake.create_user(name, roles=[admin_role] if name == ADMIN else [])
            for name in PEOPLE
        }
        self.interactions: dict[int, Interaction] = {}  # modals waiting to be submitted
        self.sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self.actions: dict[str, Callable[[User, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "command": self.command,
            "autocomplete": self.autocomplete,
            "click": self.click,
            "react": self.react,
            "context": self.context,
            "modal": self.modal,
            "bot_permission": self.bot_permission,
        }

    # The app ------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.index)
        app.router.add_static("/static/", STATIC, append_version=False)
        app.router.add_get("/api/state", self.state)
        app.router.add_get("/api/socket", self.socket)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self.file)
        app.on_shutdown.append(self._close_sockets)
        return app

    async def serve(self, host: str, port: int) -> web.AppRunner:
        """Serve the app at host:port (0: a free port); the caller cleans the runner up."""
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError:
            await runner.cleanup()
            raise
        return runner

    async def _close_sockets(self, app: web.Application) -> None:
        """Say goodbye to every open page (1001: going away) so none waits on a dead socket."""
        for socket in list(self.sockets):
            with contextlib.suppress(ConnectionError):
                await socket.close(code=WSCloseCode.GOING_AWAY, message=b"the playground stopped")

    # Pages and state --------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def state(self, request: web.Request) -> web.Response:
        try:
            user = self._person(request.query.get("user"))
        except Refused as error:
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response(self.state_of(user))

    def state_of(self, user: User) -> dict[str, Any]:
        """Everything the page needs to draw itself for one person."""
        dm = self.fake.dm_channel(user)
        usable, hidden = self.commands_for(user)
        return {
            "me": self._user_json(user),
            "people": [self._user_json(u) for u in self.people.values()],
            "roles": [r.name for r in self.fake.guild.roles.values() if not r.managed],
            "guild": {"id": str(self.fake.guild.id), "name": self.fake.guild.name},
            "channel": {"id": str(self.channel.id), "name": self.channel.name},
            "dm": {"id": str(dm.id), "name": "Direct messages"},
            "bot": {"name": self.fake.bot_user.username, "connected": self.fake.bot_connected},
            "banner": {"tiny_models": self.banner.tiny_models, "text": self.banner.text},
            "commands": usable,
            "hidden": hidden,
            "bot_permissions": bot_permissions(self.fake, self.channel),
            "timeout_ms": round((self.response_timeout + 5.0) * 1000),
            "messages": [
                self.message_json(m, user)
                for channel in (self.channel, dm)
                for m in self.fake.messages(channel, visible_to=user)
            ],
        }

    def commands(self) -> list[dict[str, Any]]:
        """The commands the bot registered (in the guild, then global), as the page uses them."""
        found: dict[tuple[str, int], dict[str, Any]] = {}
        for command in self.fake.commands() + self.fake.commands(self.fake.guild):
            found[(command["name"], int(command.get("type", 1)))] = command
        return [
            {
                "name": c["name"],
                "type": int(c.get("type", 1)),
                "description": c.get("description", ""),
                "options": c.get("options", []),
                "default_member_permissions": c.get("default_member_permissions"),
            }
            for c in sorted(found.values(), key=lambda c: c["name"])
        ]

    def commands_for(self, user: User) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The commands ``user`` is offered in the channel, and those Discord hides from them
        (default_member_permissions they lack), each with the reason in a person's words."""
        permissions = self.fake.world.permissions(user, self.channel)
        usable, hidden = [], []
        for command in self.commands():
            needed = command["default_member_permissions"]
            if needed is None or has_permissions(permissions, int(needed)):
                usable.append(command)
            else:
                reason = f"/{command['name']} needs {needed_permissions_text(int(needed))}"
                hidden.append({"name": command["name"], "type": command["type"], "reason": reason})
        return usable, hidden

    def message_json(self, message: Message, viewer: User) -> dict[str, Any]:
        """A message as ``viewer`` sees it, with the page's extras (ephemeral, loading)."""
        data = payloads.message(self.fake.world, message, viewer_id=viewer.id)
        data.pop("referenced_message", None)
        for attachment in data["attachments"]:
            # One origin for the page: attachments come through this server.
            attachment["url"] = attachment["proxy_url"] = _path_of(attachment["url"])
        data["ephemeral"] = message.ephemeral
        data["loading"] = message.loading
        data["reference_id"] = str(message.reference_id) if message.reference_id else None
        return data

    async def file(self, request: web.Request) -> web.Response:
        attachment = self.fake.world.attachments.get(int(request.match_info["attachment_id"]))
        if attachment is None or attachment.filename != request.match_info["filename"]:
            raise web.HTTPNotFound()
        return web.Response(
            body=attachment.data,
            content_type=attachment.content_type or "application/octet-stream",
            headers={"Cache-Control": "max-age=3600"},
        )

    # The socket ---------------------------------------------------------------------------------

    async def socket(self, request: web.Request) -> web.StreamResponse:
        """One tab: its state, then what changes, while it sends requests and gets replies.
        A tab closing or reloading is the normal end, not an error."""
        socket = web.WebSocketResponse(heartbeat=20.0, timeout=2.0)
        await socket.prepare(request)
        try:
            user = self._person(request.query.get("user"))
        except Refused as error:  # the page forgets the name and comes back as the first
            await socket.send_json({"kind": "unknown_person", "error": str(error)})
            await socket.close()
            return socket
        self.sockets.add(socket)
        lock = asyncio.Lock()  # one frame at a time from the feed and the replies

        async def send(data: dict[str, Any]) -> None:
            async with lock:
                with contextlib.suppress(ConnectionError):  # the tab is gone
                    await socket.send_str(json.dumps(data))

        answering: set[asyncio.Task[None]] = set()
        # Subscribe before the state is taken, so nothing between the two is missed.
        async with self.fake.changes.subscribe() as changes:
            await send({"kind": "state", **self.state_of(user)})
            feed = asyncio.create_task(self._follow(changes, user, send), name="playground-feed")
            try:
                async for frame in socket:
                    if frame.type == WSMsgType.TEXT:
                        task = asyncio.create_task(self._answer(user, frame.data, send))
                        answering.add(task)
                        task.add_done_callback(answering.discard)
            finally:
                for task in (feed, *answering):
                    task.cancel()
                await asyncio.gather(feed, *answering, return_exceptions=True)
        return socket

    async def _follow(
        self,
        changes: Any,
        user: User,
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        async for change in changes:
            event = self._event(change, user)
            if event is not None:
                await send(event)

    def _event(self, change: Change, user: User) -> dict[str, Any] | None:
        """What the page of ``user`` needs to know about ``change`` (None: nothing)."""
        if change.kind in (ChangeKind.BOT_CONNECT, ChangeKind.BOT_DISCONNECT):
            return {"kind": "bot", "connected": change.kind == ChangeKind.BOT_CONNECT}
        if change.kind == ChangeKind.GUILD_UPDATE and change.payload.get("event") in (
            "CHANNEL_UPDATE",
            "GUILD_ROLE_UPDATE",
        ):
            return {"kind": "permissions", "permissions": bot_permissions(self.fake, self.channel)}
        if change.kind in (ChangeKind.COMMANDS_UPDATE, ChangeKind.GUILD_UPDATE):
            usable, hidden = self.commands_for(user)  # roles may have changed too
            return {"kind": "commands", "commands": usable, "hidden": hidden}
        message = change.message
        if message is None or not self._sees_channel(user, message.channel_id):
            return None
        if message.ephemeral and message.visible_to != user.id:
            return None
        if message.deleted or change.kind == ChangeKind.MESSAGE_DELETE:
            return {"kind": "delete", "id": str(message.id)}
        return {"kind": "message", "message": self.message_json(message, user)}

    async def _answer(
        self, user: User, text: str, send: Callable[[dict[str, Any]], Awaitable[None]]
    ) -> None:
        """Run one request from the page and send its reply (an error in words if refused)."""
        request_id = None
        try:
            body = json.loads(text)
            if not isinstance(body, dict):
                raise Refused("expected a JSON object")
            request_id = body.get("id")
            action = self.actions.get(str(body.get("action")))
            if action is None:
                raise Refused(f"no such action {body.get('action')!r}: one of {list(self.actions)}")
            reply = {"ok": True, **await action(user, body)}
        except Refused as error:
            reply = {"error": str(error)}
        except json.JSONDecodeError:
            reply = {"error": "expected a JSON object"}
        except Exception:
            log.exception("the playground failed on a request from %s's page", user.username)
            reply = {"error": "the playground failed on that; its terminal has the details"}
        await send({"kind": "reply", "id": request_id, **reply})

    # Acting as a person -----------------------------------------------------------------------

    async def command(self, user: User, body: dict[str, Any]) -> dict[str, Any]:
        name, group, subcommand = _path(body)
        options = self._typed_options(user, name, group, subcommand, body.get("options") or {})
        handle = await _driver(
            self.fake.slash(user, self.channel, name, options, subcommand=subcommand, group=group)
        )
        return await self._answered(handle)

    async def autocomplete(self, user: User, body: dict[str, Any]) -> dict[str, Any]:
        name, group, subcommand = _path(body)
        focused = str(body.get("focused", ""))
        raw = dict(body.get("options") or {})
        typed_so_far = str(raw.pop(focused, ""))
        options = self._typed_options(user, name, group, subcommand, raw, lenient=True)
        options[focused] = typed_so_far
        choices = await _driver(
            self.fake.autocomplete(
                user,
                self.channel,
                name,
                focused,
                options,
                subcommand=subcommand,
                group=group,
                timeout=self.response_timeout,
            )
        )
        return {"choices": choices}

    async def click(self, user: User, body: dict[str, Any]) -> dict[str, Any]:
        message = self._message(user, body.get("message_id"))
        handle = await _driver(self.fake.click(user, message, str(body.get("custom_id", ""))))
        return await self._answered(handle)

    async def react(self, user: User, body: dict[str, Any]) -> dict[str, Any]:
        message = self._message(user, body.get("message_id"))
        emoji = str(body.get("emoji", ""))
        if body.get("remove"):
            await _driver(self.fake.unreact(user, message, emoji))
        else:
            await _driver(self.fake.react(user, message, emoji))
        return {}

    async def context(self, user: User, body: dict[str, Any]) -> dict[str, Any]:
        message = self._message(user, body.get("message_id"))
        handle = await _driver(self.fake.context_menu(user, message, str(body.get("name", ""))))
        return await self._answered(handle)

    async def modal(self, user: User, body: dict[str, Any]) -> dict[str, Any]:
        interaction = self.interactions.get(int(body.get("interaction_id") or 0))
        if interaction is None or interaction.user.id != user.id:
            raise Refused("that form has expired")
        del self.interactions[interaction.id]
        values = {str(k): str(v) for k, v in dict(body.get("values") or {}).items()}
        handle = await _driver(self.fake.submit_modal(interaction, values))
        return await self._answered(handle)

    async def bot_permission(self, user: User, body: dict[str, Any]) -> dict[str, Any]:
        """Allow or deny the bot one permission it needs in the channel, as a server admin
        would in the channel's settings (only the admin may)."""
        if user.username != ADMIN:
            raise Refused(f"Only a server admin can change the bot's permissions: act as {ADMIN}.")
        try:
            set_bot_permission(
                self.fake, self.channel, str(body.get("name", "")), bool(body.get("allowed"))
            )
        except ValueError as error:
            raise Refused(str(error)) from None
        return {"permissions": bot_permissions(self.fake, self.channel)}

    async def _answered(self, handle: Interaction) -> dict[str, Any]:
        """Wait for the bot's first answer, as Discord's client does; a modal goes back to
        the page to be filled in."""
        try:
            await handle.wait_response(self.response_timeout)
        except TimeoutError:
            raise Refused(f"{self.fake.bot_user.username} did not respond.") from None
        if handle.modal is not None:
            self.interactions[handle.id] = handle
            return {"modal": handle.modal, "interaction_id": str(handle.id)}
        return {}

    # Helpers ----------------------------------------------------------------------------------

    def _person(self, name: Any) -> User:
        user = self.people.get(str(name or PEOPLE[0]))
        if user is None:
            raise Refused(f"no such person {name!r}: one of {', '.join(PEOPLE)}")
        return user

    def _user_json(self, user: User) -> dict[str, Any]:
        return {"id": str(user.id), "name": user.username, "admin": user.username == ADMIN}

    def _sees_channel(self, user: User, channel_id: int) -> bool:
        """The channel, and the person's own DMs with the bot."""
        if channel_id == self.channel.id:
            return True
        channel: Channel | None = self.fake.world.channels.get(channel_id)
        return channel is not None and channel.is_dm and user.id in channel.recipient_ids

    def _message(self, user: User, message_id: Any) -> Message:
        try:
            message = self.fake.message(int(message_id))
        except (KeyError, TypeError, ValueError):
            raise Refused("that message is gone") from None
        if not self._sees_channel(user, message.channel_id):
            raise Refused("that message is gone")
        return message

    def _typed_options(
        self,
        user: User,
        name: str,
        group: str | None,
        subcommand: str | None,
        raw: dict[str, Any],
        *,
        lenient: bool = False,
    ) -> dict[str, Any]:
        """The page sends what was typed; give each option its schema's type (people and
        roles by name). ``lenient``: leave out what does not parse (autocomplete)."""
        usable, hidden = self.commands_for(user)
        command = next((c for c in usable if c["name"] == name and c["type"] == 1), None)
        if command is None:
            reason = next((h["reason"] for h in hidden if h["name"] == name), None)
            raise Refused(
                f"{reason}; {user.username} does not have it" if reason else f"no command /{name}"
            )
        schema = command["options"]
        for step in (group, subcommand):
            if step is not None:
                nested = next((o for o in schema if o["name"] == step), None)
                if nested is None or nested["type"] not in (_SUB_COMMAND, _GROUP):
                    raise Refused(f"/{name} has no subcommand {step}")
                schema = nested.get("options", [])
        by_name = {o["name"]: o for o in schema}
        typed: dict[str, Any] = {}
        for key, value in raw.items():
            option = by_name.get(key)
            if option is None:
                raise Refused(f"/{name} has no option {key}: it has {', '.join(by_name) or 'none'}")
            try:
                typed[key] = self._typed(option, value)
            except ValueError as error:
                if not lenient:
                    raise Refused(f"{key}: {error}") from None
        return typed

    def _typed(self, option: dict[str, Any], value: Any) -> Any:
        text = str(value).strip()
        kind = int(option["type"])
        if kind in (_USER, _MENTIONABLE) and text.lstrip("@") in self.people:
            return self.people[text.lstrip("@")]
        if kind in (_ROLE, _MENTIONABLE):
            role = next((r for r in self.fake.guild.roles.values() if r.name == text), None)
            if role is not None:
                return role
        if kind in (_USER, _ROLE, _MENTIONABLE):
            raise ValueError(f"expected one of {', '.join(self._names_for(kind))}, not {text!r}")
        return _scalar(_SCALARS.get(kind, "string"), text)

    def _names_for(self, kind: int) -> list[str]:
        people = list(self.people) if kind in (_USER, _MENTIONABLE) else []
        roles = [r.name for r in self.fake.guild.roles.values() if kind in (_ROLE, _MENTIONABLE)]
        return people + roles


def _path(body: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """(command, group, subcommand) of a request; absent parts are None."""
    name = str(body.get("name", ""))
    group, subcommand = body.get("group"), body.get("subcommand")
    return name, str(group) if group else None, str(subcommand) if subcommand else None


def _scalar(kind: str, text: str) -> Any:
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected a whole number, not {text!r}") from None
    if kind == "number":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, not {text!r}") from None
    if kind == "boolean":
        if text.lower() not in ("true", "false"):
            raise ValueError(f"expected true or false, not {text!r}")
        return text.lower() == "true"
    return text


def _path_of(url: str) -> str:
    """The path part of a fake attachment URL (``http://127.0.0.1:PORT/attachments/...``)."""
    return "/" + url.split("://", 1)[-1].split("/", 1)[-1]


async def _driver(call: Awaitable[T]) -> T:
    """Run a driver call; what Discord's client would refuse becomes a Refused with the
    reason (the page shows it like Discord's own notices)."""
    try:
        return await call
    except (PermissionError, ValueError, KeyError, LookupError) as error:
        raise Refused(str(error).strip("'\"")) from None
    except RuntimeError:  # no bot connected
        raise Refused("The bot is not connected; wait until it says online.") from None
    except TimeoutError:
        raise Refused("The bot did not respond.") from None

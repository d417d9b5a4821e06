"""The playground's web app: one page that looks and behaves like one Discord channel, and a
small JSON API that acts as a chosen person through FakeDiscord's driver.

Everything the page shows comes from the fake's state and its change stream; everything a
person does goes through the same driver calls the tests use (``slash``, ``autocomplete``,
``click``, ``react``, ``context_menu``, ``submit_modal``), so the real bot answers over the
real gateway and REST protocols. The page never talks to the bot or the engine itself.

    GET  /                       the page (static/index.html, app.js, style.css)
    GET  /api/state?user=NAME    who is who, the commands, the channel's messages as NAME sees them
    GET  /api/events?user=NAME   Server-Sent Events: messages created, edited, deleted, ...
    POST /api/command            {"user", "name", "options"}: run /name
    POST /api/autocomplete       {"user", "name", "focused", "options"}: the bot's choices
    POST /api/click              {"user", "message_id", "custom_id"}: press a button
    POST /api/react              {"user", "message_id", "emoji", "remove"?}: (un)react
    POST /api/context            {"user", "message_id", "name"}: a message command (Apps > …)
    POST /api/modal              {"user", "interaction_id", "values"}: submit a modal
    GET  /attachments/...        the fake's attachment files, so the page needs one origin
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from bot.fakediscord import FakeDiscord, Interaction, Message, Permission, User, payloads
from bot.fakediscord.changes import Change, ChangeKind

log = logging.getLogger(__name__)
T = TypeVar("T")

STATIC = Path(__file__).with_name("static")
RESPONSE_TIMEOUT = 3.5  # Discord gives a bot 3 s for its first answer
# The made-up people of the playground; "mod" has a role with Manage Server.
PEOPLE = ("ada", "ben", "cy", "mod")
ADMIN = "mod"
_OPTION_TYPES = {3: "string", 4: "integer", 5: "boolean", 10: "number"}


@dataclass(frozen=True)
class Banner:
    """What the page says about the models in use (None text: no banner)."""

    tiny_models: bool
    text: str | None = None


class Playground:
    """The web side of the playground over a running ``FakeDiscord``.

    Parameters
    ----------
    fake:
        The running fake Discord the bot is connected to (or will connect to).
    banner:
        Whether the tiny stand-in models are in use, and what the page says about it.
    """

    def __init__(self, fake: FakeDiscord, banner: Banner) -> None:
        self.fake = fake
        self.banner = banner
        self.channel = fake.channel
        admin_role = fake.create_role("Moderators", int(Permission.MANAGE_GUILD))
        self.people: dict[str, User] = {
            name: fake.create_user(name, roles=[admin_role] if name == ADMIN else [])
            for name in PEOPLE
        }
        self.interactions: dict[int, Interaction] = {}  # modals waiting to be submitted

    # The app ------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_json_errors])
        app.router.add_get("/", self.index)
        app.router.add_static("/static/", STATIC, append_version=False)
        app.router.add_get("/api/state", self.state)
        app.router.add_get("/api/events", self.events)
        app.router.add_post("/api/command", self.command)
        app.router.add_post("/api/autocomplete", self.autocomplete)
        app.router.add_post("/api/click", self.click)
        app.router.add_post("/api/react", self.react)
        app.router.add_post("/api/context", self.context)
        app.router.add_post("/api/modal", self.modal)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self.file)
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

    # Pages and state --------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def state(self, request: web.Request) -> web.Response:
        """Everything the page needs to draw itself for one person."""
        user = self._person(request.query.get("user"))
        return web.json_response(
            {
                "me": self._user_json(user),
                "people": [self._user_json(u) for u in self.people.values()],
                "guild": self.fake.guild.name,
                "channel": {"id": str(self.channel.id), "name": self.channel.name},
                "bot": {"name": self.fake.bot_user.username, "connected": self.fake.bot_connected},
                "banner": {"tiny_models": self.banner.tiny_models, "text": self.banner.text},
                "commands": self.commands(),
                "messages": [
                    self.message_json(m, user)
                    for m in self.fake.messages(self.channel, visible_to=user)
                ],
                "cursor": self.fake.changes.cursor,
            }
        )

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

    async def events(self, request: web.Request) -> web.StreamResponse:
        """A Server-Sent Events stream of what ``user`` can see change in the channel."""
        user = self._person(request.query.get("user"))
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        await response.write(b": hello\n\n")
        async with self.fake.changes.subscribe() as changes:
            while True:
                try:
                    change = await asyncio.wait_for(changes.__anext__(), 15.0)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                event = self._event(change, user)
                if event is not None:
                    await response.write(f"data: {json.dumps(event)}\n\n".encode())
        return response  # unreachable: the loop ends when the client goes away

    def _event(self, change: Change, user: User) -> dict[str, Any] | None:
        """What the page of ``user`` needs to know about ``change`` (None: nothing)."""
        if change.kind in (ChangeKind.BOT_CONNECT, ChangeKind.BOT_DISCONNECT):
            return {"kind": "bot", "connected": change.kind == ChangeKind.BOT_CONNECT}
        if change.kind == ChangeKind.COMMANDS_UPDATE:
            return {"kind": "commands", "commands": self.commands()}
        message = change.message
        if message is None or message.channel_id != self.channel.id:
            return None
        if message.ephemeral and message.visible_to != user.id:
            return None
        if message.deleted or change.kind == ChangeKind.MESSAGE_DELETE:
            return {"kind": "delete", "id": str(message.id)}
        return {"kind": "message", "message": self.message_json(message, user)}

    # Acting as a person -----------------------------------------------------------------------

    async def command(self, request: web.Request) -> web.Response:
        body = await _body(request)
        user = self._person(body.get("user"))
        name = str(body.get("name", ""))
        options = self._typed_options(name, body.get("options") or {})
        handle = await _driver(self.fake.slash(user, self.channel, name, options))
        return await self._answered(handle)

    async def autocomplete(self, request: web.Request) -> web.Response:
        body = await _body(request)
        user = self._person(body.get("user"))
        name, focused = str(body.get("name", "")), str(body.get("focused", ""))
        raw = dict(body.get("options") or {})
        typed_so_far = str(raw.pop(focused, ""))
        options = self._typed_options(name, raw, lenient=True)
        options[focused] = typed_so_far
        choices = await _driver(
            self.fake.autocomplete(user, self.channel, name, focused, options, timeout=3.0)
        )
        return web.json_response({"choices": choices})

    async def click(self, request: web.Request) -> web.Response:
        body = await _body(request)
        user = self._person(body.get("user"))
        message = self._message(body.get("message_id"))
        handle = await _driver(self.fake.click(user, message, str(body.get("custom_id", ""))))
        return await self._answered(handle)

    async def react(self, request: web.Request) -> web.Response:
        body = await _body(request)
        user = self._person(body.get("user"))
        message = self._message(body.get("message_id"))
        emoji = str(body.get("emoji", ""))
        if body.get("remove"):
            await _driver(self.fake.unreact(user, message, emoji))
        else:
            await _driver(self.fake.react(user, message, emoji))
        return web.json_response({"ok": True})

    async def context(self, request: web.Request) -> web.Response:
        body = await _body(request)
        user = self._person(body.get("user"))
        message = self._message(body.get("message_id"))
        handle = await _driver(self.fake.context_menu(user, message, str(body.get("name", ""))))
        return await self._answered(handle)

    async def modal(self, request: web.Request) -> web.Response:
        body = await _body(request)
        self._person(body.get("user"))
        interaction = self.interactions.pop(int(body.get("interaction_id") or 0), None)
        if interaction is None:
            raise web.HTTPNotFound(text="that form has expired")
        values = {str(k): str(v) for k, v in dict(body.get("values") or {}).items()}
        handle = await _driver(self.fake.submit_modal(interaction, values))
        return await self._answered(handle)

    async def file(self, request: web.Request) -> web.Response:
        attachment = self.fake.world.attachments.get(int(request.match_info["attachment_id"]))
        if attachment is None or attachment.filename != request.match_info["filename"]:
            raise web.HTTPNotFound()
        return web.Response(
            body=attachment.data,
            content_type=attachment.content_type or "application/octet-stream",
            headers={"Cache-Control": "max-age=3600"},
        )

    async def _answered(self, handle: Interaction) -> web.Response:
        """Wait for the bot's first answer, as Discord's client does; a modal goes back to
        the page to be filled in."""
        try:
            await handle.wait_response(RESPONSE_TIMEOUT)
        except TimeoutError:
            return web.json_response(
                {"error": f"{self.fake.bot_user.username} did not respond."}, status=504
            )
        if handle.modal is not None:
            self.interactions[handle.id] = handle
            return web.json_response({"ok": True, "modal": handle.modal, "id": str(handle.id)})
        return web.json_response({"ok": True})

    # Helpers ----------------------------------------------------------------------------------

    def _person(self, name: Any) -> User:
        user = self.people.get(str(name or PEOPLE[0]))
        if user is None:
            raise web.HTTPBadRequest(text=f"no such person {name!r}: one of {', '.join(PEOPLE)}")
        return user

    def _user_json(self, user: User) -> dict[str, Any]:
        return {
            "id": str(user.id),
            "name": user.username,
            "admin": user.username == ADMIN,
        }

    def _message(self, message_id: Any) -> Message:
        try:
            message = self.fake.message(int(message_id))
        except (KeyError, TypeError, ValueError):
            raise web.HTTPNotFound(text=f"no message {message_id!r}") from None
        if message.channel_id != self.channel.id:
            raise web.HTTPNotFound(text=f"no message {message_id!r}")
        return message

    def _typed_options(
        self, name: str, raw: dict[str, Any], *, lenient: bool = False
    ) -> dict[str, Any]:
        """The page sends what was typed; give each option its schema's type."""
        command = next((c for c in self.commands() if c["name"] == name and c["type"] == 1), None)
        if command is None:
            raise web.HTTPBadRequest(text=f"there is no command /{name}")
        schema = {o["name"]: o for o in command["options"]}
        typed: dict[str, Any] = {}
        for key, value in raw.items():
            option = schema.get(key)
            if option is None:
                raise web.HTTPBadRequest(
                    text=f"/{name} has no option {key}: it has {', '.join(schema) or 'none'}"
                )
            try:
                typed[key] = _typed(option, value)
            except ValueError as error:
                if not lenient:
                    raise web.HTTPBadRequest(text=f"{key}: {error}") from None
        return typed


def _typed(option: dict[str, Any], value: Any) -> Any:
    kind = _OPTION_TYPES.get(int(option["type"]), "string")
    text = str(value).strip()
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


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="expected a JSON body") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return body


async def _driver(call: Awaitable[T]) -> T:
    """Run a driver call; what Discord's client would refuse becomes a 400 or 403 with the
    reason (the page shows it like Discord's own notices)."""
    try:
        return await call
    except PermissionError as error:
        raise web.HTTPForbidden(text=str(error)) from None
    except (ValueError, KeyError, LookupError) as error:
        raise web.HTTPBadRequest(text=str(error)) from None
    except RuntimeError as error:  # no bot connected
        raise web.HTTPServiceUnavailable(text=str(error)) from None
    except TimeoutError:
        raise web.HTTPGatewayTimeout(text="the bot did not respond") from None


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """HTTP errors of the API as ``{"error": text}`` so the page can show the reason."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if not request.path.startswith("/api/") or error.status < 400:
            raise
        return web.json_response({"error": error.text or error.reason}, status=error.status)
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception:
        log.exception("playground request %s failed", request.path)
        with contextlib.suppress(Exception):
            return web.json_response({"error": "the playground failed; see its log"}, status=500)
        raise

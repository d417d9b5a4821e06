"""The gateway websocket, as a bot sees it (https://discord.com/developers/docs/events/gateway).

HELLO (op 10) -> the client heartbeats (op 1, answered by op 11) and IDENTIFYs (op 2) -> READY,
then one GUILD_CREATE per guild. Events are DISPATCH frames (op 0) numbered per session; a
client that lost its connection can RESUME (op 6) and gets what it missed. Frames go out as
uncompressed text, which discord.py accepts even though it asks for zlib-stream.

A heartbeat's ACK goes out ``heartbeat_ack_delay`` seconds late, as a network round trip would
make it: discord.py's keep-alive thread notes when it sent a heartbeat only once the event
loop reports the send done, so an ACK from a server in the same process can be read first and
discord.py then measures the whole heartbeat interval as its latency ("Can't keep up, …
websocket is 41.3s behind").
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from . import payloads
from .changes import ChangeFeed, ChangeKind
from .state import World

log = logging.getLogger(__name__)


class Op(enum.IntEnum):
    DISPATCH = 0
    HEARTBEAT = 1
    IDENTIFY = 2
    PRESENCE_UPDATE = 3
    VOICE_STATE_UPDATE = 4
    RESUME = 6
    RECONNECT = 7
    REQUEST_GUILD_MEMBERS = 8
    INVALID_SESSION = 9
    HELLO = 10
    HEARTBEAT_ACK = 11


class Intent(enum.IntFlag):
    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    GUILD_MESSAGE_REACTIONS = 1 << 10
    GUILD_MESSAGE_TYPING = 1 << 11
    DIRECT_MESSAGES = 1 << 12
    DIRECT_MESSAGE_REACTIONS = 1 << 13
    DIRECT_MESSAGE_TYPING = 1 << 14
    MESSAGE_CONTENT = 1 << 15


PRIVILEGED_INTENTS = Intent.GUILD_MEMBERS | Intent.GUILD_PRESENCES | Intent.MESSAGE_CONTENT

# Application flags that say which privileged intents the app may use.
_APP_FLAG_FOR_INTENT = {
    Intent.GUILD_PRESENCES: 1 << 12,
    Intent.GUILD_MEMBERS: 1 << 14,
    Intent.MESSAGE_CONTENT: 1 << 18,
}


def content_toggled(privileged: int) -> bool:
    """Whether the app may read message content at all (its Message Content toggle, or
    approval): the gateway's MESSAGE_CONTENT intent, and message content over REST."""
    return bool(privileged & Intent.MESSAGE_CONTENT)


def application_flags(privileged: int) -> int:
    return sum(flag for intent, flag in _APP_FLAG_FOR_INTENT.items() if privileged & intent)


class CloseCode(enum.IntEnum):
    DECODE_ERROR = 4002
    AUTHENTICATION_FAILED = 4004
    ALREADY_AUTHENTICATED = 4005
    INVALID_INTENTS = 4013
    DISALLOWED_INTENTS = 4014


@dataclass(eq=False)
class Session:
    """A gateway session: it outlives its websocket so that the client can RESUME it."""

    id: str
    intents: int
    seq: int = 0
    backlog: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))
    connection: Connection | None = None


class Connection:
    """One websocket. Frames are queued and written by one task, so they go out in order."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.session: Session | None = None
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write(), name="fakediscord-gateway-writer")

    def send(self, frame: dict[str, Any]) -> None:
        self._queue.put_nowait(json.dumps(frame))

    async def _write(self) -> None:
        while True:
            text = await self._queue.get()
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return  # the socket closed under us; the reader notices and cleans up
            finally:
                self._queue.task_done()

    async def flush(self, timeout: float = 2.0) -> None:
        """Wait until queued frames are written (or the socket is gone)."""
        drained = asyncio.ensure_future(self._queue.join())
        await asyncio.wait(
            {drained, self._writer}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        drained.cancel()

    async def close(self, code: int = 1000, message: str = "") -> None:
        await self.flush()
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        await self.ws.close(code=code, message=message.encode())


class Gateway:
    """Accepts bot connections at ``/`` and dispatches events to identified sessions."""

    def __init__(
        self,
        world: World,
        feed: ChangeFeed,
        *,
        token: str,
        privileged_intents: int = int(PRIVILEGED_INTENTS),
        heartbeat_interval_ms: int = 41_250,
        heartbeat_ack_delay: float = 0.05,
    ) -> None:
        self.world = world
        self.feed = feed
        self.token = token
        self.privileged_intents = privileged_intents
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.heartbeat_ack_delay = heartbeat_ack_delay
        self.url = ""  # ws://127.0.0.1:PORT/ once the server runs
        self._connections: set[Connection] = set()
        self._sessions: dict[str, Session] = {}

    @property
    def connected(self) -> bool:
        """True while a bot has an identified (or resumed) live connection."""
        return any(c.session is not None for c in self._connections)

    @property
    def intents(self) -> int:
        """The intents of the live session (0 if none)."""
        live = [c.session for c in self._connections if c.session is not None]
        return live[0].intents if live else 0

    # Dispatch ---------------------------------------------------------------------------------

    def dispatch(
        self, event: str, data: dict[str, Any], *, intent: int = 0, content_visible: bool = True
    ) -> None:
        """Send an event to every session whose intents include ``intent`` (0: always), as that
        session may see it (see ``_as_seen_by``). Sessions without a live socket keep it in
        their backlog for a RESUME. Nothing of a guild the bot is not in is sent, except
        interactions (a command of an app installed to the person's account)."""
        guild_id = data.get("id") if event == "GUILD_CREATE" else data.get("guild_id")
        if event != "INTERACTION_CREATE" and guild_id is not None and not self._bot_in(guild_id):
            return
        for session in self._sessions.values():
            if intent and not session.intents & intent:
                continue
            self._send_dispatch(session, event, _as_seen_by(session, event, data, content_visible))

    def _bot_in(self, guild_id: int | str) -> bool:
        guild = self.world.guilds.get(int(guild_id))
        return guild is not None and self.world.bot.id in guild.members

    def _send_dispatch(self, session: Session, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        frame = {"op": Op.DISPATCH, "t": event, "s": session.seq, "d": data}
        session.backlog.append(frame)
        if session.connection is not None:
            session.connection.send(frame)

    def request_reconnect(self) -> None:
        """Ask connected clients to reconnect and RESUME (op 7), as Discord does now and then."""
        for connection in self._connections:
            connection.send({"op": Op.RECONNECT, "d": None})

    async def close_all(self) -> None:
        """Close every socket with 1001 (going away) and forget all sessions."""
        await asyncio.gather(
            *(c.close(1001, "FakeDiscord stopping") for c in list(self._connections)),
            return_exceptions=True,
        )
        self._connections.clear()
        self._sessions.clear()

    # The websocket ----------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(timeout=2.0, max_msg_size=16 * 1024 * 1024)
        if not ws.can_prepare(request).ok:
            return web.Response(text="FakeDiscord gateway: connect with a websocket.\n")
        await ws.prepare(request)
        connection = Connection(ws)
        self._connections.add(connection)
        connection.send({"op": Op.HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    try:
                        frame = json.loads(msg.data)
                    except json.JSONDecodeError:
                        await connection.close(
                            CloseCode.DECODE_ERROR, "Error while decoding payload."
                        )
                        break
                    await self._receive(connection, frame)
                elif msg.type is WSMsgType.ERROR:
                    break
        finally:
            self._connections.discard(connection)
            await connection.close(ws.close_code or 1000)
            if connection.session is not None:
                connection.session.connection = None
                log.info("bot disconnected from session %s", connection.session.id)
                self.feed.publish(ChangeKind.BOT_DISCONNECT, payload={"code": ws.close_code})
        return ws

    async def _receive(self, connection: Connection, frame: dict[str, Any]) -> None:
        op, data = frame.get("op"), frame.get("d")
        if op == Op.HEARTBEAT:
            asyncio.get_running_loop().call_later(
                self.heartbeat_ack_delay, connection.send, {"op": Op.HEARTBEAT_ACK}
            )
        elif op == Op.IDENTIFY:
            await self._identify(connection, data or {})
        elif op == Op.RESUME:
            await self._resume(connection, data or {})
        elif op == Op.REQUEST_GUILD_MEMBERS:
            self._send_members(connection, data or {})
        elif op in (Op.PRESENCE_UPDATE, Op.VOICE_STATE_UPDATE):
            pass
        else:
            log.warning("gateway: ignoring unknown op %r: %r", op, frame)

    async def _identify(self, connection: Connection, data: dict[str, Any]) -> None:
        if data.get("token") != self.token:
            await connection.close(CloseCode.AUTHENTICATION_FAILED, "Authentication failed.")
            return
        if connection.session is not None:
            await connection.close(CloseCode.ALREADY_AUTHENTICATED, "Already authenticated.")
            return
        intents = int(data.get("intents", 0))
        if intents & PRIVILEGED_INTENTS & ~self.privileged_intents:
            await connection.close(CloseCode.DISALLOWED_INTENTS, "Disallowed intent(s).")
            return
        session = Session(secrets.token_hex(16), intents, connection=connection)
        self._sessions = {session.id: session}  # one bot, one session: older ones are dropped
        connection.session = session
        flags = application_flags(self.privileged_intents)
        ready = payloads.ready(self.world, session_id=session.id, resume_url=self.url, flags=flags)
        self._send_dispatch(session, "READY", ready)
        for guild in self.world.bot_guilds():
            data = payloads.guild_create(self.world, guild)
            self._send_dispatch(session, "GUILD_CREATE", _as_seen_by(session, "GUILD_CREATE", data))
        log.info("bot identified (session %s, intents %d)", session.id, intents)
        self.feed.publish(ChangeKind.BOT_CONNECT, payload={"session_id": session.id})

    async def _resume(self, connection: Connection, data: dict[str, Any]) -> None:
        session = self._sessions.get(str(data.get("session_id")))
        if data.get("token") != self.token or session is None or session.connection is not None:
            connection.send({"op": Op.INVALID_SESSION, "d": False})
            return
        seq = int(data.get("seq") or 0)
        session.connection, connection.session = connection, session
        for frame in session.backlog:
            if frame["s"] > seq:
                connection.send(frame)
        self._send_dispatch(session, "RESUMED", {"_trace": ["fakediscord"]})
        log.info("bot resumed session %s from seq %d", session.id, seq)
        self.feed.publish(
            ChangeKind.BOT_CONNECT, payload={"session_id": session.id, "resumed": True}
        )

    def _send_members(self, connection: Connection, data: dict[str, Any]) -> None:
        """Answer REQUEST_GUILD_MEMBERS with one GUILD_MEMBERS_CHUNK holding every match."""
        guild = self.world.guilds.get(int(data.get("guild_id", 0)))
        if guild is None or connection.session is None:
            return
        query = (data.get("query") or "").lower()
        wanted = {int(i) for i in data.get("user_ids") or []}
        members = [
            m
            for m in guild.members.values()
            if (not wanted or m.user.id in wanted) and m.user.username.lower().startswith(query)
        ]
        if data.get("limit"):
            members = members[: int(data["limit"])]
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [payloads.member(m) for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        self._send_dispatch(connection.session, "GUILD_MEMBERS_CHUNK", chunk)


def _as_seen_by(
    session: Session, event: str, data: dict[str, Any], content_visible: bool = True
) -> dict[str, Any]:
    """What Discord sends a session, given its intents:

    - GUILD_CREATE without GUILD_MEMBERS lists only the bot's own member (``member_count`` stays);
    - a message without MESSAGE_CONTENT comes emptied, unless ``content_visible`` (a DM, a
      mention of the bot, or the bot's own message).
    """
    if event == "GUILD_CREATE" and not session.intents & Intent.GUILD_MEMBERS:
        bot_id = data.get("_bot_id")
        members = [m for m in data.get("members", []) if m["user"]["id"] == bot_id]
        data = {**data, "members": members}
    hide_content = not (content_visible or session.intents & Intent.MESSAGE_CONTENT)
    if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE") and hide_content:
        data = {**data, "content": "", "embeds": [], "attachments": [], "components": []}
    return {k: v for k, v in data.items() if k != "_bot_id"}

"""The change stream: every visible thing that happens in the fake, in order.

Tests wait on it (``wait_for``, ``wait_until``) and a UI can follow it (``subscribe`` gives an
async iterator, ``add_listener`` a plain callback). Waiting never polls: ``publish`` wakes the
waiters, which re-check their condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .interactions import Interaction
    from .state import Message

T = TypeVar("T")


class ChangeKind(enum.StrEnum):
    MESSAGE_CREATE = "message_create"
    MESSAGE_UPDATE = "message_update"
    MESSAGE_DELETE = "message_delete"
    REACTION_ADD = "reaction_add"
    REACTION_REMOVE = "reaction_remove"
    TYPING = "typing"
    INTERACTION_CREATE = "interaction_create"
    INTERACTION_RESPONSE = "interaction_response"
    COMMANDS_UPDATE = "commands_update"
    GUILD_UPDATE = "guild_update"  # guild, channel, role or member added or changed
    BOT_CONNECT = "bot_connect"
    BOT_DISCONNECT = "bot_disconnect"


@dataclass(frozen=True)
class Change:
    """One thing that happened.

    ``message`` and ``interaction`` are the live objects (they may have changed since);
    ``payload`` is a JSON snapshot taken when it happened (what a UI would render).
    ``visible_to`` is set for ephemeral things only one user can see.
    """

    seq: int
    kind: ChangeKind
    at: float  # time.time()
    channel_id: int | None = None
    guild_id: int | None = None
    user_id: int | None = None
    visible_to: int | None = None
    message: Message | None = None
    interaction: Interaction | None = None
    payload: dict[str, Any] = field(default_factory=dict)


class Subscription:
    """An async iterator over the changes published after it was made; close it when done."""

    def __init__(self, feed: ChangeFeed) -> None:
        self._feed = feed
        self._queue: asyncio.Queue[Change] = asyncio.Queue()
        feed._queues.add(self._queue)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Change:
        return await self._queue.get()

    def close(self) -> None:
        self._feed._queues.discard(self._queue)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class ChangeFeed:
    """Ordered, numbered changes with a bounded history."""

    def __init__(self, history: int = 10_000) -> None:
        self._seq = 0
        self._history: deque[Change] = deque(maxlen=history)
        self._queues: set[asyncio.Queue[Change]] = set()
        self._listeners: list[Callable[[Change], None]] = []
        self._wakeups: list[asyncio.Future[None]] = []

    @property
    def cursor(self) -> int:
        """The number of the latest change; pass it as ``after=`` to wait for later ones."""
        return self._seq

    def publish(self, kind: ChangeKind, **fields: Any) -> Change:
        self._seq += 1
        change = Change(self._seq, kind, time.time(), **fields)
        self._history.append(change)
        for queue in self._queues:
            queue.put_nowait(change)
        for listener in list(self._listeners):
            listener(change)
        wakeups, self._wakeups = self._wakeups, []
        for future in wakeups:
            if not future.done():
                future.set_result(None)
        return change

    def since(self, cursor: int) -> list[Change]:
        """Changes numbered above ``cursor`` that are still in the history."""
        if not self._history:
            return []
        skip = max(0, cursor - self._history[0].seq + 1)
        return list(itertools.islice(self._history, skip, None))

    def subscribe(self) -> Subscription:
        return Subscription(self)

    def add_listener(self, listener: Callable[[Change], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Change], None]) -> None:
        self._listeners.remove(listener)

    async def wait_until(
        self, check: Callable[[], T | None], *, timeout: float = 5.0, what: str = "condition"
    ) -> T:
        """Return ``check()`` once it is not None, re-checking after each change.

        The check only runs again when the fake publishes a change; to wait on something only
        the bot knows (its own state), give the bot an asyncio event or queue instead.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (result := check()) is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                recent = ", ".join(f"{c.seq}:{c.kind}" for c in list(self._history)[-8:])
                raise TimeoutError(f"{what} not met within {timeout} s (recent changes: {recent})")
            wakeup = loop.create_future()
            self._wakeups.append(wakeup)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup, remaining)
        return result

    async def wait_for(
        self,
        predicate: Callable[[Change], bool],
        *,
        timeout: float = 5.0,
        after: int | None = None,
    ) -> Change:
        """The first change after ``after`` (default: from now on) for which ``predicate`` holds."""
        seen = self.cursor if after is None else after

        def check() -> Change | None:
            nonlocal seen
            for change in self.since(seen):
                seen = change.seq
                if predicate(change):
                    return change
            return None

        return await self.wait_until(check, timeout=timeout, what="wait_for predicate")

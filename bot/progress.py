"""Status-message edits, coalesced and throttled so rate limits are avoided by design.

Callers say what a status message should show whenever they like (`show`); the publisher
edits each message at most once per `interval` seconds, only when what it shows changed, and
all messages together at most `global_edits` times per `global_period` seconds
(asyncio-throttle). Updates that arrive while an edit waits replace each other: only the
newest is sent. A new preview image is attached with the next edit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from asyncio_throttle import Throttler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Update:
    """What one edit sends: the text, and a new preview PNG (None keeps the old one)."""

    content: str
    preview: bytes | None = None
    final: bool = False  # the last edit: drops the preview attachment


Edit = Callable[[int, Update], Awaitable[None]]


class MessageGone(Exception):
    """Raised by an edit function when the message can no longer be edited: deleted (404),
    or the bot may no longer edit it (403). Both are final: retrying a 403 only counts
    toward Discord's invalid-request limit."""


@dataclass
class _Board:
    """One status message's state."""

    throttle: Throttler
    wanted: str | None = None
    preview: bytes | None = None  # waiting to be attached
    sent: str | None = None
    task: asyncio.Task[None] | None = None
    gone: bool = False
    edits: int = 0


class ProgressPublisher:
    """Coalesced, throttled edits of status messages, keyed by job id.

    Parameters
    ----------
    edit:
        ``await edit(key, update)`` edits the message of job `key`; raises MessageGone when
        it cannot (then the publisher stops editing it).
    interval:
        Least seconds between two edits of one message.
    global_edits, global_period:
        At most `global_edits` edits in any `global_period` seconds, across all messages.
    """

    def __init__(
        self,
        edit: Edit,
        *,
        interval: float = 3.0,
        global_edits: int = 10,
        global_period: float = 5.0,
    ) -> None:
        self._edit = edit
        self.interval = interval
        self._global = Throttler(rate_limit=global_edits, period=global_period)
        self._boards: dict[int, _Board] = {}
        self._closed = False

    def show(self, key: int, content: str, preview: bytes | None = None) -> None:
        """Make message `key` show `content` (and attach `preview`) soon. Never blocks."""
        if self._closed:
            return
        board = self._board(key)
        if board.gone:
            return
        board.wanted = content
        if preview is not None:
            board.preview = preview
        if board.task is None or board.task.done():
            board.task = asyncio.create_task(self._flush(key, board), name=f"status-edit-{key}")

    async def finish(self, key: int, content: str) -> None:
        """The last edit of message `key`: waits for its throttles, then sends `content` and
        drops the preview; the message is forgotten afterwards."""
        board = self._boards.pop(key, None) or _Board(self._throttle())
        if board.task is not None and not board.task.done():
            board.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await board.task
        if board.gone or self._closed:
            return
        async with board.throttle, self._global:
            await self._send(key, board, Update(content, final=True))

    def edits(self, key: int) -> int:
        """How many edits message `key` has had (for tests and logs)."""
        board = self._boards.get(key)
        return 0 if board is None else board.edits

    async def close(self) -> None:
        """Stop editing: pending edits are dropped."""
        self._closed = True
        tasks = [b.task for b in self._boards.values() if b.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._boards.clear()

    def _throttle(self) -> Throttler:
        # One edit per interval per message; retry_interval bounds how late an edit can be.
        return Throttler(rate_limit=1, period=self.interval, retry_interval=0.05)

    def _board(self, key: int) -> _Board:
        board = self._boards.get(key)
        if board is None:
            board = self._boards[key] = _Board(self._throttle())
        return board

    async def _flush(self, key: int, board: _Board) -> None:
        """Send the newest wanted state until nothing has changed since the last edit."""
        while not board.gone and (board.wanted != board.sent or board.preview is not None):
            async with board.throttle, self._global:
                if board.wanted is None:
                    return
                update = Update(board.wanted, board.preview)
                board.preview = None
                await self._send(key, board, update)

    async def _send(self, key: int, board: _Board, update: Update) -> None:
        try:
            await self._edit(key, update)
        except MessageGone as error:
            log.info("status message of job %s cannot be edited (%s); no more edits", key, error)
            board.gone = True
            return
        except asyncio.CancelledError:
            raise
        except Exception:  # a failed edit is not worth a crash; the next one may work
            log.warning("could not edit the status message of job %s", key, exc_info=True)
        board.sent = update.content
        board.edits += 1

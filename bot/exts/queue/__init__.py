"""A person's view of the queue: /queue, /quota, /history, /cancel and /params."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.exts.queue._cog import Queue

if TYPE_CHECKING:
    from bot.bot import DoorwaysBot


async def setup(bot: DoorwaysBot) -> None:
    await bot.add_cog(Queue(bot))

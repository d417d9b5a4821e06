"""Task files over Discord: /task runs an uploaded runvqgan-style task file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.exts.tasks._cog import Tasks

if TYPE_CHECKING:
    from bot.bot import DoorwaysBot


async def setup(bot: DoorwaysBot) -> None:
    await bot.add_cog(Tasks(bot))

"""Painting commands: /entrance and /imagine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.exts.paint._cog import Paint

if TYPE_CHECKING:
    from bot.bot import DoorwaysBot


async def setup(bot: DoorwaysBot) -> None:
    await bot.add_cog(Paint(bot))

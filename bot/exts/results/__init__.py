"""What can be done with a job's messages: the buttons (🎲 reroll, 🔀 variation, 📋 parameters,
✖ cancel, 🗑 delete), the reactions (🎲 or 🔁 reroll, ✉️ by DM) and "Get parameters"."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.exts.results._cog import Results

if TYPE_CHECKING:
    from bot.bot import DoorwaysBot


async def setup(bot: DoorwaysBot) -> None:
    await bot.add_cog(Results(bot))

"""/settings: a person's defaults for their commands (style, iterations, size, DM delivery)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.exts.settings._cog import PersonalSettings

if TYPE_CHECKING:
    from bot.bot import DoorwaysBot


async def setup(bot: DoorwaysBot) -> None:
    await bot.add_cog(PersonalSettings(bot))

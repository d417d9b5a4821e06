"""/admin: pause and resume the painter, caps, quotas, bans, cancelling any job, status."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.exts.admin._cog import Admin

if TYPE_CHECKING:
    from bot.bot import DoorwaysBot


async def setup(bot: DoorwaysBot) -> None:
    await bot.add_cog(Admin(bot))

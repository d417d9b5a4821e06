"""The task folder on a schedule: the bot runs `tasks.folder` through its own worker queue
(every day at `tasks.run_at`, or when an admin says /nightly run), so one GPU holds one copy
of the models."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.exts.nightly._cog import Nightly

if TYPE_CHECKING:
    from bot.bot import DoorwaysBot


async def setup(bot: DoorwaysBot) -> None:
    await bot.add_cog(Nightly(bot))

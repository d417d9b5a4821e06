"""The Tasks cog: declares /task and defers to `_upload` (read, expand, queue, acknowledge)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.exts.tasks import _upload
from bot.installs import servers_only
from bot.jobs import check_channel, limits_for

if TYPE_CHECKING:
    from bot.bot import DoorwaysBot


class Tasks(commands.Cog):
    """/task."""

    def __init__(self, bot: DoorwaysBot) -> None:
        self.bot = bot
        self.queueing = asyncio.Lock()  # one task file queued at a time (duplicate check)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Every command of this cog: only in the allowed channels."""
        check_channel(self.bot, interaction)
        return True

    @app_commands.command(
        name="task", description="Run a task file (runvqgan JSON): each of its images is queued"
    )
    @servers_only
    @app_commands.describe(
        file=f"a task file: JSON like data/tasks/sample.txt, at most "
        f"{_upload.MAX_FILE_BYTES // 1024} KiB"
    )
    async def task_command(
        self, interaction: discord.Interaction, file: discord.Attachment
    ) -> None:
        limits = limits_for(self.bot, interaction)
        await _upload.queue_task_file(self.bot, interaction, file, limits, self.queueing)

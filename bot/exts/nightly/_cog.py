"""The Nightly cog: runs `tasks.folder` on the bot's schedule (bot/exts/nightly/_runner.py),
and `/nightly run`, `/nightly status` for admins.

Use this or the systemd timer (`doorways tasks run`), not both: the timer starts a worker
of its own, a second copy of the models on the GPU.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import rules
from bot.errors import DoorwaysError
from bot.exts.nightly._runner import FolderRunner, now
from bot.installs import servers_only

if TYPE_CHECKING:
    from bot.bot import DoorwaysBot
    from bot.settings import Settings

log = logging.getLogger(__name__)

NO_FOLDER = (
    "No task folder is set up: give `tasks.folder` (and `tasks.run_at` for a daily run) in "
    "the bot's settings file."
)


class NotAdmin(DoorwaysError):
    """Someone without Manage Server or an admin role used /nightly."""


class NotOperator(DoorwaysError):
    """A server's admin (not the bot's operator) tried /nightly run."""


@servers_only
@app_commands.default_permissions(manage_guild=True)
class Nightly(
    commands.GroupCog, group_name="nightly", group_description="The task folder the bot runs"
):
    """/nightly run, /nightly status; the schedule itself."""

    def __init__(self, bot: DoorwaysBot) -> None:
        self.bot = bot
        self.runner: FolderRunner | None = None
        super().__init__()

    async def cog_load(self) -> None:
        """Start the schedule when a folder is set up (a bare test bot has no settings)."""
        settings: Settings | None = getattr(self.bot, "settings", None)
        if settings is None or settings.tasks.folder is None:
            return
        self.runner = FolderRunner(self.bot.scheduler, settings)
        self.runner.start()
        when = settings.tasks.run_at
        log.info(
            "task folder %s: %s",
            settings.tasks.folder,
            f"runs every day at {when:%H:%M}" if when else "runs on /nightly run",
        )

    async def cog_unload(self) -> None:
        if self.runner is not None:
            await self.runner.stop()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if not rules.is_admin(self.bot.settings, interaction):
            raise NotAdmin("Only admins of this server can use /nightly.")
        return True

    @app_commands.command(description="Run the task folder now, between people's jobs")
    async def run(self, interaction: discord.Interaction) -> None:
        if not await rules.is_operator(self.bot, self.bot.settings, interaction):
            raise NotOperator(
                "Only the bot's owner (or an admin of its home server) can run the task "
                "folder: it is the operator's, and it paints for every server."
            )
        if self.runner is None:
            text = NO_FOLDER
        elif self.runner.run_now():
            log.info("/nightly run by %s", interaction.user.id)
            text = (
                f"The task folder `{self.runner.folder}` runs now, taking turns with people's "
                "jobs. `/nightly status` shows how far it is."
            )
        else:
            text = "The task folder is being run already. `/nightly status` shows how far it is."
        await interaction.response.send_message(text, ephemeral=True)

    @app_commands.command(description="The task folder: its schedule and its last run")
    async def status(self, interaction: discord.Interaction) -> None:
        text = NO_FOLDER if self.runner is None else status_text(self.runner)
        await interaction.response.send_message(text, ephemeral=True)


def status_text(runner: FolderRunner) -> str:
    """Folder, schedule, the run under way and how the last one ended."""
    lines = [f"**Task folder:** `{runner.folder}`"]
    if runner.at is None:
        lines.append("**Schedule:** none (`tasks.run_at`); runs on `/nightly run`")
    else:
        upcoming = f", next {runner.next_at:%Y-%m-%d %H:%M}" if runner.next_at else ""
        lines.append(f"**Schedule:** every day at {runner.at:%H:%M}{upcoming}")
    run = runner.current
    if run is not None:
        painting = ", ".join(
            f"`{p.removeprefix('nightly:')}`" for p in runner.scheduler.batch_job_ids
        )
        lines.append(
            f"**Running:** {len(run.summary.made)} of {run.total} picture(s) made"
            + (f", painting {painting}" if painting else "")
        )
    last = runner.last
    if last is not None:
        when = f"{last.at:%Y-%m-%d %H:%M}"
        if last.summary is None:
            lines.append(f"**Last run** ({when}) did not start: {last.error}")
        else:
            lines.append(f"**Last run** (ended {when}): " + last.summary.lines()[0])
    elif run is None:
        lines.append(f"**Last run:** none since the bot started ({now():%Y-%m-%d %H:%M})")
    return "\n".join(lines)

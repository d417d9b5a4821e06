"""The Admin cog: `/admin …` for the server's admins.

Discord hides the group from members without Manage Server (`default_permissions`), and
every command checks again at run time (a server can change who sees commands): Manage
Server, or one of the configured `discord.admin_roles`. Each acts on the server it is used
in; only the bot's operator (bot.rules.is_operator) pauses and resumes every server. Everything
set here is kept in the database (bot.rules), so it survives restarts.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.app_commands import Range
from discord.ext import commands

from bot import rules
from bot.errors import DoorwaysError, JobNotFound
from bot.installs import servers_only
from bot.quota import day_start
from bot.settings import HARD_MAX_ITERATIONS
from engine.request import MAX_SIDE

if TYPE_CHECKING:
    from bot.bot import DoorwaysBot
    from bot.scheduler import Scheduler
    from engine.worker import Health

log = logging.getLogger(__name__)


class NotAdmin(DoorwaysError):
    """Someone without Manage Server or an admin role used /admin."""


class NotOperator(DoorwaysError):
    """A server's admin tried something that acts on every server."""


# An option description: at most 100 characters.
EVERYWHERE = "every server the bot is in (only the bot's owner, or admins of its home server)"


@servers_only
@app_commands.default_permissions(manage_guild=True)
class Admin(commands.GroupCog, group_name="admin", group_description="Run the painter here"):
    """/admin pause, resume, caps, quota, ban, unban, cancel, status."""

    def __init__(self, bot: DoorwaysBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if not rules.is_admin(self.bot.settings, interaction):
            raise NotAdmin("Only admins of this server can use /admin.")
        return True

    async def _say(self, interaction: discord.Interaction, text: str) -> None:
        log.info("/admin by %s: %s", interaction.user.id, text)
        await interaction.response.send_message(text, ephemeral=True)

    async def _everywhere(self, interaction: discord.Interaction, doing: str) -> None:
        """Raise NotOperator unless the person may act on every server."""
        if not await rules.is_operator(self.bot, self.bot.settings, interaction):
            raise NotOperator(
                f"Only the bot's owner (or an admin of its home server) can {doing} every "
                f"server; `/admin {doing}` without `everywhere` acts on this server."
            )

    @app_commands.command(description="Hold this server's jobs (the one painting finishes)")
    @app_commands.describe(everywhere=EVERYWHERE)
    async def pause(self, interaction: discord.Interaction, everywhere: bool = False) -> None:
        assert interaction.guild_id is not None
        scheduler = self.bot.scheduler
        if everywhere:
            await self._everywhere(interaction, "pause")
            changed = await scheduler.pause()
            text = (
                "Paused in every server: the job painting now finishes, nothing new starts; "
                "jobs are still queued. `/admin resume everywhere:True` to go on."
                if changed
                else "Painting was already paused in every server."
            )
        else:
            changed = await scheduler.pause(interaction.guild_id, by=interaction.user.id)
            text = (
                "Paused in this server: its jobs wait (a job of it painting now finishes), "
                "other servers' go on; jobs are still queued. `/admin resume` to go on."
                if changed
                else "Painting was already paused in this server."
            )
        await self._say(interaction, text)

    @app_commands.command(description="Start this server's jobs again after /admin pause")
    @app_commands.describe(everywhere=EVERYWHERE)
    async def resume(self, interaction: discord.Interaction, everywhere: bool = False) -> None:
        assert interaction.guild_id is not None
        scheduler = self.bot.scheduler
        if everywhere:
            await self._everywhere(interaction, "resume")
            changed = await scheduler.resume()
            text = "Resumed in every server." if changed else "Painting was not paused everywhere."
            if scheduler.paused_guilds:
                text += f" ({len(scheduler.paused_guilds)} server(s) paused their own jobs.)"
        else:
            changed = await scheduler.resume(interaction.guild_id)
            text = (
                "Resumed: this server's jobs start again."
                if changed
                else "Painting was not paused in this server."
            )
            if scheduler.paused:
                text += " Painting is still paused in every server by the bot's operator."
        await self._say(interaction, text)

    @app_commands.command(description="This server's caps on iterations and size")
    @app_commands.describe(
        iterations="the most iterations per job here",
        width="the widest picture here (with height: the largest area)",
        height="the tallest picture here (with width: the largest area)",
        clear="remove this server's caps (the configured limits hold)",
    )
    async def caps(
        self,
        interaction: discord.Interaction,
        iterations: Range[int, 1, HARD_MAX_ITERATIONS] | None = None,
        width: Range[int, 64, MAX_SIDE] | None = None,
        height: Range[int, 64, MAX_SIDE] | None = None,
        clear: bool = False,
    ) -> None:
        assert interaction.guild_id is not None
        store = self.bot.store
        if clear:
            await rules.set_caps(store, interaction.guild_id, rules.Caps())
        elif (iterations, width, height) != (None, None, None):
            old = await rules.get_caps(store, interaction.guild_id)
            caps = rules.Caps(
                iterations or old.max_iterations, width or old.max_width, height or old.max_height
            )
            await rules.set_caps(store, interaction.guild_id, caps)
        caps = await rules.get_caps(store, interaction.guild_id)
        s = self.bot.settings
        shown = (
            f"at most {caps.max_iterations or s.max_iterations} iterations, "
            f"{caps.max_width or '—'}×{caps.max_height or '—'} pixels"
            if caps.any
            else "none"
        )
        await self._say(
            interaction,
            f"This server's caps: {shown}. The configured limits "
            f"({s.max_iterations} iterations, {self.bot.policy.max_area:,} pixels) always hold; "
            "caps only tighten them.",
        )

    @app_commands.command(description="Set a user's or a role's daily images and pending jobs")
    @app_commands.describe(
        target="a member or a role",
        daily_images="pictures per day (from 00:00 UTC)",
        max_pending="jobs waiting or painting at once",
        clear="remove the override (the configured limits hold)",
    )
    async def quota(
        self,
        interaction: discord.Interaction,
        target: discord.Member | discord.Role,
        daily_images: Range[int, 0, 10**6] | None = None,
        max_pending: Range[int, 1, 10**4] | None = None,
        clear: bool = False,
    ) -> None:
        assert interaction.guild_id is not None
        kind = "role" if isinstance(target, discord.Role) else "user"
        if clear or (daily_images is None and max_pending is None):
            await rules.set_quota(self.bot.store, interaction.guild_id, kind, target.id, None)
            await self._say(interaction, f"{target.mention}: the configured quota holds again.")
            return
        override = rules.QuotaOverride(daily_images, max_pending)
        await rules.set_quota(self.bot.store, interaction.guild_id, kind, target.id, override)
        parts = [
            f"{daily_images} images a day" if daily_images is not None else None,
            f"{max_pending} jobs at once" if max_pending is not None else None,
        ]
        shown = ", ".join(p for p in parts if p)
        await self._say(interaction, f"{target.mention} ({kind}): {shown}.")

    @app_commands.command(description="Stop a member from painting here")
    @app_commands.describe(user="who", reason="why (kept with the ban)")
    async def ban(
        self,
        interaction: discord.Interaction,
        user: discord.User,
        reason: Range[str, 1, 200] | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        new = await rules.ban(
            self.bot.store, interaction.guild_id, user.id, interaction.user.id, reason or ""
        )
        await self._say(
            interaction,
            f"{user.mention} can no longer paint here."
            if new
            else f"{user.mention} was already banned.",
        )

    @app_commands.command(description="Let a banned member paint again")
    async def unban(self, interaction: discord.Interaction, user: discord.User) -> None:
        assert interaction.guild_id is not None
        lifted = await rules.unban(self.bot.store, interaction.guild_id, user.id)
        await self._say(
            interaction,
            f"{user.mention} can paint here again."
            if lifted
            else f"{user.mention} was not banned.",
        )

    @app_commands.command(description="Cancel anyone's job, waiting or painting")
    async def cancel(self, interaction: discord.Interaction, job: int) -> None:
        found = await self.bot.store.get(job)
        if found is None or found.guild_id != interaction.guild_id:
            raise JobNotFound(f"There is no job #{job} in this server.")
        if await self.bot.scheduler.cancel(found.id) is None:
            raise JobNotFound(f"Job #{job} has already finished ({found.status}).")
        await self._say(interaction, f"Cancelled job #{job} (<@{found.owner_id}>'s).")

    @app_commands.command(description="The painters' health, devices, models and queue")
    async def status(self, interaction: discord.Interaction) -> None:
        scheduler, store = self.bot.scheduler, self.bot.store
        workers = scheduler.pool.health()
        queued = await store.jobs(["queued"])
        today = await store.count_since(day_start(store.clock()))
        paused = paused_text(scheduler, interaction.guild_id)
        if len(workers) == 1:
            head = f"**Painter:** {worker_text(workers[0], scheduler.worker_error)}{paused}"
        else:
            alive = sum(health.alive for health in workers)
            head = f"**Painters:** {alive} of {len(workers)} running{paused}"
        lines = [head]
        for health in workers:
            models = ", ".join(health.models) or "none loaded"
            state = "" if len(workers) == 1 else f" · {worker_text(health, None)}"
            doing = "" if len(workers) == 1 else f" · {job_text(health.job_id)}"
            lines.append(f"**Device:** {health.device or '—'}{state}{doing} · **Models:** {models}")
            if health.gpu_warning:
                lines.append(f"⚠️ {health.gpu_warning}")
        lines += [
            f"**Queue:** {len(queued)} waiting, {painting_text(scheduler)}",
            "**Today:** "
            + (", ".join(f"{n} {status}" for status, n in sorted(today.items())) or "no jobs"),
        ]
        await interaction.response.send_message("\n".join(lines), ephemeral=True)


def worker_text(health: Health, error: str | None) -> str:
    """`running (pid 12, 0 restarts)`, or why not."""
    if health.alive:
        return f"running (pid {health.pid}, {health.restarts} restarts)"
    why = health.error or error
    return f"not running{': ' + why if why else ''}"


def job_text(job_id: str | None) -> str:
    """What one worker paints: `job #12`, a task folder picture, or nothing."""
    if job_id is None:
        return "idle"
    if job_id.isdigit():
        return f"painting job #{job_id}"
    return f"painting task folder picture `{job_id}`"  # `nightly:alice/task_x.txt#2`


def paused_text(scheduler: Scheduler, guild_id: int | None) -> str:
    if scheduler.paused:
        return " · **paused** in every server"
    return " · **paused** in this server" if scheduler.holds(guild_id) else ""


def painting_text(scheduler: Scheduler) -> str:
    """What the workers paint now: people's jobs, a task folder's pictures, or nothing."""
    painting = [f"job #{job_id}" for job_id in scheduler.running_job_ids]
    painting += [f"task folder picture `{job_id}`" for job_id in scheduler.batch_job_ids]
    return " and ".join(painting) + " painting" if painting else "nothing painting"

"""The Queue cog: /queue, /quota, /history, /cancel and /params. Every answer is private
(ephemeral) and read from the store."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import parameters, rules
from bot.errors import JobNotFound
from bot.exts.queue import _texts
from bot.jobs import limits_for, roles_of
from bot.quota import COUNTED, day_start
from bot.store import PENDING, count_images, count_jobs

if TYPE_CHECKING:
    from bot.bot import DoorwaysBot

log = logging.getLogger(__name__)


class Queue(commands.Cog):
    """/queue, /quota, /history, /cancel, /params."""

    def __init__(self, bot: DoorwaysBot) -> None:
        self.bot = bot

    @app_commands.command(description="Your jobs and their places in line; totals for everyone")
    async def queue(self, interaction: discord.Interaction) -> None:
        store, scheduler = self.bot.store, self.bot.scheduler
        running = await store.jobs(["running"])
        queued = await store.jobs(["queued"])
        mine = []
        estimate = {}
        for job in (*running, *queued):
            if job.owner_id != interaction.user.id:
                continue
            waiting = await store.waiting(job.id)
            if waiting is not None:
                mine.append((job, waiting))
                estimate[job.id] = scheduler.estimate(job, waiting)
        mine.sort(key=lambda pair: pair[1].position)
        text = _texts.queue_text(
            mine,
            running,
            queued,
            estimate,
            scheduler.holds(interaction.guild_id),
            scheduler.pool.health(),
        )
        await interaction.response.send_message(text, ephemeral=True)

    @app_commands.command(description="How many pictures you have left today, and when it resets")
    async def quota(self, interaction: discord.Interaction) -> None:
        user = interaction.user
        store = self.bot.store
        limits = await rules.apply_rules(
            store,
            interaction.guild_id,
            user.id,
            [role_id for role_id, _ in roles_of(user)],
            limits_for(self.bot, interaction),
        )
        now = store.clock()
        async with store.lock:
            used = await count_images(store.db, user.id, COUNTED, since=day_start(now))  # type: ignore[arg-type]
            pending = await count_jobs(store.db, user.id, PENDING)
        text = _texts.quota_text(limits, used, pending, now)
        await interaction.response.send_message(text, ephemeral=True)

    @app_commands.command(description="Your last paintings, with links")
    async def history(self, interaction: discord.Interaction) -> None:
        jobs = await self.bot.store.owned(interaction.user.id, ["done"], limit=_texts.HISTORY)
        await interaction.response.send_message(_texts.history_text(jobs), ephemeral=True)

    @app_commands.command(description="Cancel your waiting jobs, or one job of yours")
    @app_commands.describe(job="the job number (default: all your jobs still waiting)")
    async def cancel(self, interaction: discord.Interaction, job: int | None = None) -> None:
        user_id = interaction.user.id
        if job is not None:
            found = await self.bot.store.get(job)
            if found is None or (
                found.owner_id != user_id and not rules.is_moderator(self.bot.settings, interaction)
            ):
                raise JobNotFound(f"You have no job #{job}.")
            if await self.bot.scheduler.cancel(found.id) is None:
                raise JobNotFound(f"Job #{job} has already finished ({found.status}).")
            cancelled = [found.id]
        else:
            waiting = await self.bot.store.owned(user_id, ["queued"], limit=1000, newest=False)
            cancelled = [j.id for j in waiting if await self.bot.scheduler.cancel(j.id)]
            if not cancelled:
                raise JobNotFound("You have no jobs waiting (a painting one needs its number).")
        log.info("%s cancelled jobs %s", user_id, cancelled)
        shown = ", ".join(f"#{job_id}" for job_id in cancelled)
        await interaction.response.send_message(f"Cancelled {shown}.", ephemeral=True)

    @app_commands.command(description="The parameters of a picture: a job number or message link")
    @app_commands.describe(target="a job number like 12, or a message link (Copy Message Link)")
    async def params(self, interaction: discord.Interaction, target: str) -> None:
        item_id, channel_id, guild_id = parameters.parse_target(target)
        await parameters.think(interaction)
        if channel_id is None:
            found = await parameters.of_job(self.bot.store, item_id)
        else:
            if guild_id != interaction.guild_id:
                raise JobNotFound("Give a link to a message in this server.")
            channel = self.bot.get_partial_messageable(channel_id, guild_id=guild_id)
            try:
                message = await channel.fetch_message(item_id)
            except (discord.NotFound, discord.Forbidden):
                raise JobNotFound("I cannot see that message.") from None
            try:
                found = await parameters.of_message(self.bot.store, message)
            except JobNotFound:
                if not message.attachments and message.author != self.bot.user:
                    raise JobNotFound(parameters.LINK_WITHOUT_CONTENT) from None
                raise
        await parameters.answer(interaction, found)

"""Queueing a job from an interaction: limits, atomic admission, and the acknowledgement.

Every command that paints (/entrance, /imagine, the reroll and variation buttons) comes
through `queue_job`, which answers within Discord's 3 seconds with the place in line and an
estimate, and makes that answer the job's status message (with a ✖ Cancel button). A reroll
by reaction has no interaction to answer: it goes through `admit_request` and posts its own
acknowledgement.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import discord

from bot import messages, permissions, views
from bot.errors import ChannelNotAllowed, MissingChannelPermissions, NotReady
from bot.quota import Admission, Limits, admit, fit_request
from bot.rules import apply_rules
from bot.store import Job, NewJob
from engine.request import Request

if TYPE_CHECKING:
    from bot.bot import DoorwaysBot

log = logging.getLogger(__name__)


def roles_of(user: discord.User | discord.Member) -> list[tuple[int, str]]:
    """(id, name) of the member's roles; none for a user outside a guild."""
    if isinstance(user, discord.Member):
        return [(role.id, role.name) for role in user.roles]
    return []


def limits_for(bot: DoorwaysBot, interaction: discord.Interaction) -> Limits:
    return bot.policy.limits_for(roles_of(interaction.user))


def check_channel(bot: DoorwaysBot, interaction: discord.Interaction) -> None:
    """Raise ChannelNotAllowed unless painting is allowed where the interaction happened, and
    MissingChannelPermissions unless Discord lets the bot deliver a painting there (so
    nothing is queued or charged that could not be posted)."""
    channel = interaction.channel
    name = getattr(channel, "name", None)
    parent = getattr(channel, "parent_id", None)
    parents = (parent,) if isinstance(parent, int) else ()
    if interaction.channel_id is None or not bot.policy.channel_allowed(
        interaction.channel_id, [name] if name else [], *parents
    ):
        allowed = ", ".join(
            f"<#{c}>" if isinstance(c, int) else f"#{c}" for c in bot.settings.allowed_channels
        )
        raise ChannelNotAllowed(f"Painting is not enabled in this channel; try {allowed}.")
    if lacking := permissions.missing_here(interaction):
        raise MissingChannelPermissions(permissions.refusal_text(lacking))


async def admit_request(
    bot: DoorwaysBot,
    *,
    kind: str,
    request: Request,
    limits: Limits,
    owner_id: int,
    guild_id: int | None,
    channel_id: int,
    role_ids: Iterable[int] = (),
    interaction_id: int | None = None,
    upload_limit: int | None = None,
    parent_job: int | None = None,
) -> Admission:
    """The one path into the queue from Discord: the guild's rules (bans, caps, quota
    overrides: bot.rules), `request` fitted to the limits, and admission against the quota,
    atomically. Raises NotReady, Banned, BadOptions or QuotaExceeded."""
    if bot.scheduler.stopping:
        raise NotReady("The bot is restarting; try again in a minute.")
    limits = await apply_rules(bot.store, guild_id, owner_id, role_ids, limits)
    request, notes = fit_request(request, limits)
    new = NewJob(
        kind=kind,
        owner_id=owner_id,
        guild_id=guild_id,
        channel_id=channel_id,
        request=request,
        interaction_id=interaction_id,
        notes=tuple(notes),
        upload_limit=upload_limit,
        parent_job=parent_job,
    )
    return await admit(bot.store, new, limits)


def acknowledgement(bot: DoorwaysBot, admission: Admission) -> str:
    """`#3 in line, ready in about 4 min`, and why it may wait longer."""
    job = admission.job
    wait = bot.scheduler.estimate(job, admission.waiting)
    text = messages.queued_text(job, admission.waiting.position, wait)
    return text + hold_note(bot, job.guild_id, "the job waits")


def hold_note(bot: DoorwaysBot, guild_id: int | None, waits: str) -> str:
    """A line on why queued work may wait past its estimate (`waits`: "the job waits"): a
    pause of every server or of this one, or no painter; "" when nothing holds it."""
    scheduler = bot.scheduler
    if scheduler.paused:
        return f"\n-# Painting is paused by the bot's operator; {waits} until it resumes."
    if scheduler.holds(guild_id):
        return f"\n-# Painting is paused in this server by its admins; {waits} until it resumes."
    if scheduler.worker_error:
        return f"\n-# The painter is not running right now; {waits} for it."
    return ""


async def queue_job(
    bot: DoorwaysBot,
    interaction: discord.Interaction,
    kind: str,
    request: Request,
    limits: Limits,
    *,
    parent_job: int | None = None,
) -> Job:
    """Fit `request` to `limits`, queue it (atomically against the quota) and acknowledge.

    Raises Banned, BadOptions or QuotaExceeded (the tree's error handler answers those).
    """
    assert interaction.channel_id is not None
    admission = await admit_request(
        bot,
        kind=kind,
        request=request,
        limits=limits,
        owner_id=interaction.user.id,
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        role_ids=[role_id for role_id, _ in roles_of(interaction.user)],
        interaction_id=interaction.id,
        upload_limit=interaction.filesize_limit,
        parent_job=parent_job,
    )
    job = admission.job
    try:
        response = await interaction.response.send_message(
            acknowledgement(bot, admission),
            view=views.status_view(job),
            allowed_mentions=discord.AllowedMentions.none(),
        )
        if response.message_id is not None:
            await bot.store.set_status_message(job.id, response.message_id)
    finally:
        bot.scheduler.wake()  # even if the answer failed, the job is queued and will be posted
    log.info(
        "job %s queued by %s in %s: #%d in line",
        job.id,
        job.owner_id,
        job.channel_id,
        admission.waiting.position,
    )
    return job

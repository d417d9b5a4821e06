"""What the job buttons and reactions do. Everything is read from the store by job id, so a
message posted before a restart works as well as a new one; rerolls and variations go
through the same rules, quota and caps as /imagine (bot.jobs)."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import discord

from bot import messages, parameters, permissions, rules, views
from bot.errors import DoorwaysError, JobNotFound
from bot.exts.paint._build import new_seed
from bot.jobs import acknowledgement, admit_request, check_channel, limits_for, queue_job
from bot.store import Job, NewJob
from engine.request import MAX_COUNT, Request

if TYPE_CHECKING:
    from bot.bot import DoorwaysBot

log = logging.getLogger(__name__)

REROLL_EMOJI = ("🎲", "🔁")
DM_EMOJI = ("✉️", "✉")


class NotAllowed(DoorwaysError):
    """Someone other than the requester (or a moderator) pressed a requester's button."""


async def job_or_refuse(bot: DoorwaysBot, job_id: int) -> Job:
    job = await bot.store.get(job_id)
    if job is None:
        raise JobNotFound(f"Job #{job_id} is not in the database any more.")
    return job


# Buttons ----------------------------------------------------------------------------------------


def rerolled(request: Request) -> Request:
    """The request with a new seed: a grid gives a new grid, a picture picked out of a
    grid (`--count N --index I`) one new picture."""
    if request.index is not None:
        request = request.replace(count=1, index=None)
    return request.replace(seed=new_seed(None))


async def reroll(bot: DoorwaysBot, interaction: discord.Interaction, job_id: int) -> None:
    """🎲: the same request with a new seed, charged to whoever pressed it."""
    job = await job_or_refuse(bot, job_id)
    check_channel(bot, interaction)
    request = rerolled(job.request)
    await queue_job(
        bot, interaction, "reroll", request, limits_for(bot, interaction), parent_job=job.id
    )


async def variation(bot: DoorwaysBot, interaction: discord.Interaction, job_id: int) -> None:
    """🔀: the same prompts from this picture, a new seed, half the iterations."""
    job = await job_or_refuse(bot, job_id)
    check_channel(bot, interaction)
    await _vary(bot, interaction, job, job.request, job.output_path)


async def vary(bot: DoorwaysBot, interaction: discord.Interaction, job_id: int, index: int) -> None:
    """🔀 I on a grid: a variation of picture I alone."""
    grid = await job_or_refuse(bot, job_id)
    check_channel(bot, interaction)
    pictures = grid.pictures
    if grid.status != "done" or not 1 <= index <= len(pictures):
        raise JobNotFound(f"Job #{grid.id} has no picture {index}.")
    await _vary(bot, interaction, grid, grid.request.pictures()[index - 1], pictures[index - 1])


async def _vary(
    bot: DoorwaysBot,
    interaction: discord.Interaction,
    job: Job,
    request: Request,
    picture: str | None,
) -> None:
    """Queue the same prompts starting from `picture` (job's, or one of its grid's), a new
    seed, half the iterations."""
    if job.status != "done" or picture is None or not Path(picture).is_file():
        raise JobNotFound(f"Job #{job.id}'s picture is not on the bot's disk: no variation.")
    request = rerolled(request).replace(init_image=picture, iterations=max(1, job.iterations // 2))
    await queue_job(
        bot, interaction, "variation", request, limits_for(bot, interaction), parent_job=job.id
    )


async def show_parameters(bot: DoorwaysBot, interaction: discord.Interaction, job_id: int) -> None:
    """📋: the parameters, privately."""
    await parameters.answer(interaction, await parameters.of_job(bot.store, job_id))


async def timelapse(bot: DoorwaysBot, interaction: discord.Interaction, job_id: int) -> None:
    """🎞: post the painting's timelapse in the channel, for everyone."""
    job = await job_or_refuse(bot, job_id)
    gif = views.timelapse_path(job)
    if job.output_path is None or not gif.is_file():
        raise JobNotFound(f"Job #{job.id} has no timelapse on the bot's disk.")
    await interaction.response.defer(thinking=True)  # the upload may take a moment
    data = await asyncio.to_thread(gif.read_bytes)
    limit = interaction.filesize_limit
    if len(data) > limit:
        await interaction.followup.send(
            f"Job #{job.id}'s timelapse is {len(data) / 2**20:.1f} MiB, over this server's "
            f"upload limit ({limit / 2**20:.0f} MiB)."
        )
        return
    file = discord.File(io.BytesIO(data), filename=f"doorways-{job.id}-timelapse.gif")
    await interaction.followup.send(f"🎞 Job #{job.id}, painting itself.", file=file)


def _check_may_manage(
    bot: DoorwaysBot, interaction: discord.Interaction, job: Job, doing: str
) -> None:
    if interaction.user.id != job.owner_id and not rules.is_moderator(bot.settings, interaction):
        raise NotAllowed(f"Only the requester (or a moderator) can {doing} job #{job.id}.")


async def cancel(bot: DoorwaysBot, interaction: discord.Interaction, job_id: int) -> None:
    """✖: cancel a waiting or painting job (the requester or a moderator)."""
    job = await job_or_refuse(bot, job_id)
    _check_may_manage(bot, interaction, job, "cancel")
    cancelled = await bot.scheduler.cancel(job.id)
    if cancelled is None:
        raise JobNotFound(f"Job #{job.id} has already finished ({job.status}).")
    log.info("job %s cancelled by %s (button)", job.id, interaction.user.id)
    await interaction.response.send_message(f"Cancelled job #{job.id}.", ephemeral=True)


async def delete(bot: DoorwaysBot, interaction: discord.Interaction, job_id: int) -> None:
    """🗑: delete the result message (the requester or a moderator); the job's row stays,
    marked deleted, so its parameters can still be looked up by number."""
    job = await job_or_refuse(bot, job_id)
    _check_may_manage(bot, interaction, job, "delete")
    await interaction.response.defer(ephemeral=True, thinking=True)
    message = interaction.message
    try:
        if message is not None:
            await message.delete()
    except discord.NotFound:
        pass
    await bot.store.mark_deleted(job.id)
    log.info("job %s's result deleted by %s", job.id, interaction.user.id)
    await interaction.followup.send(f"Deleted the result of job #{job.id}.", ephemeral=True)


async def pick(bot: DoorwaysBot, interaction: discord.Interaction, job_id: int, index: int) -> None:
    """🖼 I: picture I of a grid, posted alone at full size with its own buttons and call
    string (`--count N --index I`). It is recorded as a job of its own (kind `pick`, nothing
    painted, nothing charged: the grid counted it), so its buttons work across restarts."""
    grid = await job_or_refuse(bot, job_id)
    check_channel(bot, interaction)
    pictures = grid.pictures
    if grid.status != "done" or not 1 <= index <= len(pictures):
        raise JobNotFound(f"Job #{grid.id} has no picture {index}.")
    if not Path(pictures[index - 1]).is_file():
        raise JobNotFound(f"Picture {index} of job #{grid.id} is not on the bot's disk.")
    assert interaction.channel_id is not None
    await interaction.response.defer(thinking=True)
    new = NewJob(
        "pick", interaction.user.id, interaction.guild_id, interaction.channel_id,
        grid.request.pictures()[index - 1], interaction_id=interaction.id,
        upload_limit=interaction.filesize_limit, parent_job=grid.id,
    )  # fmt: skip
    picked = await bot.store.record_pick(grid, index, new)
    intro = f"Picture {index} of job **#{grid.id}**, as job **#{picked.id}**."
    content, files = await bot.reporter.painting(picked, intro=intro)
    message = await interaction.followup.send(
        content[: messages.MESSAGE_LIMIT], files=files, view=views.result_view(picked), wait=True
    )
    await bot.store.mark_delivered(picked.id, message.id)
    log.info("picture %s of job %s picked by %s as job %s", index, grid.id,
             interaction.user.id, picked.id)  # fmt: skip


ByPicture = Callable[["DoorwaysBot", discord.Interaction, int, int], Awaitable[None]]


def _of_picture(
    action: ByPicture, index: int
) -> Callable[[DoorwaysBot, discord.Interaction, int], Awaitable[None]]:
    """`action` for picture `index` of a grid, as a button's action."""

    async def run(bot: DoorwaysBot, interaction: discord.Interaction, job_id: int) -> None:
        await action(bot, interaction, job_id, index)

    return run


ACTIONS = {
    **{f"pick{i}": _of_picture(pick, i) for i in range(1, MAX_COUNT + 1)},
    **{f"vary{i}": _of_picture(vary, i) for i in range(1, MAX_COUNT + 1)},
    "reroll": reroll,
    "variation": variation,
    "parameters": show_parameters,
    "timelapse": timelapse,
    "cancel": cancel,
    "delete": delete,
}


def bound_actions(bot: DoorwaysBot) -> dict[str, views.JobAction]:
    """The actions with `bot` bound, for views.register_actions."""

    def bind(action: object) -> views.JobAction:
        async def run(interaction: discord.Interaction, job_id: int) -> None:
            await action(bot, interaction, job_id)  # type: ignore[operator]

        return run

    return {name: bind(action) for name, action in ACTIONS.items()}


# Reactions --------------------------------------------------------------------------------------


async def on_reaction(bot: DoorwaysBot, payload: discord.RawReactionActionEvent) -> None:
    """🎲 or 🔁 on a result rerolls it for the reacting person; ✉️ sends them a DM."""
    emoji = str(payload.emoji)
    if emoji not in (*REROLL_EMOJI, *DM_EMOJI) or bot.user is None:
        return
    if payload.user_id == bot.user.id:
        return
    job = await bot.store.by_message(payload.message_id)
    if job is None or job.result_message_id != payload.message_id:
        return  # not a result message
    if emoji in DM_EMOJI:
        if job.status == "done":
            await bot.reporter.send_dm(job, payload.user_id, link=_link(job))
        return
    await reroll_by_reaction(bot, job, payload)


async def reroll_by_reaction(
    bot: DoorwaysBot, job: Job, payload: discord.RawReactionActionEvent
) -> None:
    """Queue a reroll charged to the reacting person; the acknowledgement is posted in the
    channel (a reaction has no interaction to answer); a refusal goes to them by DM — also
    when the bot lacks a permission it needs there (from its cache: no interaction carries
    Discord's answer)."""
    lacking = permissions.missing_in_cache(bot, payload.channel_id)
    if lacking:
        log.info("reroll of job %s by %s (reaction) refused: missing %s", job.id,
                 payload.user_id, ", ".join(lacking))  # fmt: skip
        refusal = permissions.refusal_text(lacking, f"<#{payload.channel_id}>")
        await _tell(bot, payload.user_id, f"Your reroll of job #{job.id} was refused. {refusal}")
        return
    member = payload.member
    roles = [(r.id, r.name) for r in member.roles] if member is not None else []
    try:
        admission = await admit_request(
            bot,
            kind="reroll",
            request=rerolled(job.request),
            limits=bot.policy.limits_for(roles),
            owner_id=payload.user_id,
            guild_id=payload.guild_id,
            channel_id=payload.channel_id,
            role_ids=[role_id for role_id, _ in roles],
            upload_limit=job.upload_limit,
            parent_job=job.id,
        )
    except DoorwaysError as error:
        log.info("reroll of job %s by %s (reaction) refused: %s", job.id, payload.user_id, error)
        await _tell(bot, payload.user_id, f"Your reroll of job #{job.id} was refused: {error}")
        return
    new = admission.job
    channel = bot.get_partial_messageable(payload.channel_id, guild_id=payload.guild_id)
    text = f"<@{new.owner_id}> rerolls job #{job.id}.\n" + acknowledgement(bot, admission)
    try:
        reply = await channel.send(
            text[:2000],
            reference=discord.MessageReference(
                message_id=payload.message_id,
                channel_id=payload.channel_id,
                fail_if_not_exists=False,
            ),
            view=views.status_view(new),
            allowed_mentions=discord.AllowedMentions.none(),
        )
        await bot.store.set_status_message(new.id, reply.id)
    except discord.HTTPException as error:
        log.warning("could not acknowledge reroll %s in %s: %s", new.id, payload.channel_id, error)
    finally:
        bot.scheduler.wake()
    log.info("job %s queued by %s (reaction on job %s)", new.id, new.owner_id, job.id)


async def _tell(bot: DoorwaysBot, user_id: int, text: str) -> None:
    try:
        user = bot.get_user(user_id) or await bot.fetch_user(user_id)
        await user.send(text[:2000])
    except discord.HTTPException as error:
        log.info("could not DM %s: %s", user_id, error)


def _link(job: Job) -> str | None:
    if job.result_message_id is None:
        return None
    guild = job.guild_id if job.guild_id is not None else "@me"
    return f"https://discord.com/channels/{guild}/{job.channel_id}/{job.result_message_id}"

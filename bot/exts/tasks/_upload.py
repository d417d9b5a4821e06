"""/task: an uploaded task file → its batches, each an ordinary queued job.

The file is read (small, UTF-8), expanded by engine.taskfile with this server's limits and no
image paths (an upload must not point at files on the server), and its pictures are queued
in the batches the file's `count` asks (at most `limits.max_count` a batch: more is split,
with a note): a batch of N is one job painted as one batch of N pictures, posted as a grid
like /imagine's with `count`, a picture alone an ordinary job. Each is fitted to the
person's limits as /imagine's request is (clamped, with a note), and all of them are queued
under one quota check that counts pictures: all or nothing, after the guild's rules (bans,
caps, quota overrides: bot.rules) as for every job queued from Discord. From there each is a
job like any other: the scheduler's fairness, progress, the result post, restarts and crash
recovery all apply. The acknowledgement is the status message of every job of the file;
each result replies to it. The pictures are kept where the file says, per person: the
scheduler saves each as OUTPUTS/tasks/<user id>/<out_folder>/<out_file>_N.png, N the next
free number (a batch's in picture order; its grid where every grid goes, OUTPUTS/job-<id>.png).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import discord

from bot.errors import BadOptions, DoorwaysError, NotReady
from bot.jobs import hold_note, roles_of
from bot.messages import MESSAGE_LIMIT, echo, format_duration
from bot.quota import Limits, admit_all, fit_request
from bot.rules import apply_rules
from bot.scheduler import TASK_KIND, task_folder
from bot.settings import HARD_MAX_ITERATIONS, Settings
from bot.store import Job, NewJob
from engine.prompts import render_prompts
from engine.request import Request
from engine.taskfile import (
    TaskFileError,
    TaskJob,
    TaskLimits,
    batches,
    describe,
    expand_task,
    rebatch,
)

if TYPE_CHECKING:
    from bot.bot import DoorwaysBot

log = logging.getLogger(__name__)

KIND = TASK_KIND  # the jobs' kind in the store: the scheduler names their pictures
MAX_FILE_BYTES = 64 * 1024  # a task file is a few hundred bytes; anything big is a mistake
DOWNLOAD_TIMEOUT = 60.0  # seconds: the answer is deferred first (Discord's 3 s are met)
DUPLICATE_WINDOW_S = 15 * 60  # the same file again within this (a retry) is not queued again
MAX_EACH = 25  # repetitions per file, as the nightly runner allows
MAX_IMAGES = 100  # images per file, at most (and at most a day's quota)
MAX_SIDE = 2048  # the largest width or height /imagine accepts
OPERATOR_FIELDS = ("vqgan", "clip", "cutn")  # the bot's operator decides these for every job


@dataclass(frozen=True)
class Prepared:
    """One job of the file: a picture, or a batch of pictures painted together (`count`),
    fitted to the person's limits."""

    task_jobs: tuple[TaskJob, ...]  # its pictures, in batch order
    request: Request  # the batch's: count len(task_jobs), no index
    notes: tuple[str, ...]  # clamps and overridden fields: the same for every job

    @property
    def pictures(self) -> int:
        return len(self.task_jobs)


def task_limits(limits: Limits) -> TaskLimits:
    """What a task file may ask here, for a member with `limits`.

    The bot refuses only what its commands refuse and clamps the rest, as /imagine does:
    iterations over the member's cap, and sizes over the member's area, are fitted by
    `fit_request` with a note, not refused. So the file is checked against the hard bounds:
    the hard iteration maximum, and per side /imagine's largest width or height. TaskLimits
    caps each side, the bot caps the area (`limits.max_size` is any-aspect W×H pixels); a cap
    per side derived from the area would either refuse shapes the area allows (a 2:1 strip
    within the area, but longer than its 3:2 side) or shrink every other default, so the area
    is left to `fit_request`, which keeps the file's shape and scales it down. The images of
    one file are at most a day's quota (the quota still left is checked when queueing).
    """
    daily = limits.daily_images
    return TaskLimits(
        max_iterations=HARD_MAX_ITERATIONS,
        max_each=MAX_EACH,
        max_resolution=(MAX_SIDE, MAX_SIDE),
        max_images=MAX_IMAGES if daily is None else max(1, min(MAX_IMAGES, daily)),
    )


async def read_task_file(attachment: discord.Attachment) -> str:
    """The attachment's text, or BadOptions saying why it is not a task file."""
    name = attachment.filename
    if attachment.size > MAX_FILE_BYTES:
        raise BadOptions(_too_big(name, attachment.size))
    try:
        data = await asyncio.wait_for(attachment.read(), DOWNLOAD_TIMEOUT)
    except TimeoutError:
        raise BadOptions(f"Could not download `{name}` in time; try again.") from None
    except discord.HTTPException as error:
        raise BadOptions(f"Could not download `{name}` ({error}); try again.") from None
    if len(data) > MAX_FILE_BYTES:  # the size Discord announced was wrong
        raise BadOptions(_too_big(name, len(data)))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadOptions(
            f"`{name}` is not a text file in UTF-8 (byte {error.start} is not): a task file is "
            "JSON text, like `data/tasks/sample.txt`."
        ) from None


def _too_big(name: str, size: int) -> str:
    return (
        f"`{name}` is {size:,} bytes; a task file may be at most {MAX_FILE_BYTES // 1024} KiB "
        "here. It should be a small JSON file, like `data/tasks/sample.txt`."
    )


def prepare(
    name: str, text: str, settings: Settings, limits: Limits, out_root: Path
) -> list[Prepared]:
    """Expand the task file into its batches and fit each to `limits`; BadOptions lists the
    problems. Every batch is painted at the size that fits the file's largest batch, so that
    the pictures of one file match (a picture left over alone could be larger)."""
    engine = settings.engine_fields()
    try:
        jobs = expand_task(
            text,
            limits=task_limits(limits),
            out_root=out_root,
            images_root=None,
            defaults=engine,
        )
    except TaskFileError as error:
        raise BadOptions(problems_text(name, error.problems)) from None
    notes = []
    count = jobs[0].request.count  # the file's count: its first batch is a full one
    if count > limits.max_count:
        notes.append(
            f"The task file's count ({count}) is over the limit here: painted in batches of "
            f"{limits.max_count}."
        )
        jobs = rebatch(jobs, limits.max_count)
    groups = [tuple(jobs[i] for i in group) for group in batches(jobs, range(len(jobs)))]
    requests = [group[0].batch_request for group in groups]
    for field in OPERATOR_FIELDS:  # the bot's, whatever a file asks
        value = engine[field]
        if getattr(requests[0], field) != value:
            notes.append(
                f"The task file's {field} ({getattr(requests[0], field)}) is not used here: "
                f"the bot paints every job with {field} {value}."
            )
            requests = [request.replace(**{field: value}) for request in requests]
    # Each batch is fitted: its style may make its prompt too long (refused, BadOptions).
    fitted = [fit_request(request, limits) for request in requests]
    largest, clamped = max(fitted, key=lambda fit: fit[0].count)
    return [
        Prepared(group, request.replace(size=largest.size), (*clamped, *notes))
        for group, (request, _) in zip(groups, fitted, strict=True)
    ]


def problems_text(name: str, problems: list[str]) -> str:
    """The refusal: every problem of the file, as many as fit in one message."""
    head = f"`{name}` cannot run, so nothing was queued:"
    lines = [head]
    for index, problem in enumerate(problems):
        line = f"- {problem}"
        rest = len(problems) - index
        if sum(len(x) + 1 for x in lines) + len(line) + 40 > MESSAGE_LIMIT:
            lines.append(f"- … and {rest} more problem{'s' if rest != 1 else ''}")
            break
        lines.append(line)
    return "\n".join(lines)


class AlreadyQueued(DoorwaysError):
    """The same task file, from the same person, was queued a moment ago."""


async def queue_task_file(
    bot: DoorwaysBot,
    interaction: discord.Interaction,
    attachment: discord.Attachment,
    limits: Limits,
    queueing: asyncio.Lock,
) -> None:
    """Read, expand and queue a task file under one quota check, and acknowledge.

    The answer is deferred at once (downloading, expanding and queueing a hundred images may
    outlast Discord's 3 seconds); the private "thinking…" answer then says what happened, and
    the jobs' status message is posted in the channel. `queueing` makes the check for the
    same file queued a moment ago (a person retrying) and the queueing one step.

    Raises Banned, BadOptions, QuotaExceeded, AlreadyQueued or NotReady (the tree's error
    handler answers those).
    """
    await interaction.response.defer(ephemeral=True, thinking=True)
    if bot.scheduler.stopping:
        raise NotReady("The bot is restarting; try again in a minute.")
    roles = [role_id for role_id, _ in roles_of(interaction.user)]
    limits = await apply_rules(bot.store, interaction.guild_id, interaction.user.id, roles, limits)
    text = await read_task_file(attachment)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    out_root = task_folder(bot.settings.outputs, interaction.user.id)
    prepared = prepare(attachment.filename, text, bot.settings, limits, out_root)
    assert interaction.channel_id is not None
    total = sum(p.pictures for p in prepared)
    news = [
        NewJob(
            kind=KIND,
            owner_id=interaction.user.id,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            request=p.request,
            interaction_id=interaction.id,
            notes=(f"{attachment.filename}: {describe(p.task_jobs, total)}", *p.notes),
            upload_limit=interaction.filesize_limit,
            source_sha256=digest,
        )
        for p in prepared
    ]
    async with queueing:
        since = bot.store.clock() - DUPLICATE_WINDOW_S
        earlier = await bot.store.from_source(interaction.user.id, digest, since)
        if earlier:
            raise AlreadyQueued(already_queued_text(attachment.filename, earlier))
        admissions = await admit_all(bot.store, news, limits)
    try:
        first, last = admissions[0], admissions[-1]
        wait = bot.scheduler.estimate(last.job, last.waiting)
        content = acknowledgement(attachment.filename, prepared, first.waiting.position, wait)
        content += hold_note(bot, interaction.guild_id, "the jobs wait")
        # The private answer first (it fills the "thinking…" one), then the public status
        # message. No ✖ button: one message stands for every job (/cancel takes each).
        await interaction.edit_original_response(
            content=f"Queued: `{attachment.filename}`, {images_text(prepared, plural='(s)')}, "
            f"jobs #{first.job.id}–#{last.job.id}. Their status is posted in the channel."
        )
        status = await interaction.followup.send(
            content[:MESSAGE_LIMIT], wait=True, allowed_mentions=discord.AllowedMentions.none()
        )
        for admission in admissions:
            await bot.store.set_status_message(admission.job.id, status.id)
    finally:
        bot.scheduler.wake()  # even if the answer failed, the jobs are queued and will be posted
    log.info(
        "task file %r by %s in %s: jobs %s-%s queued, #%d in line",
        attachment.filename,
        interaction.user.id,
        interaction.channel_id,
        first.job.id,
        last.job.id,
        first.waiting.position,
    )


def already_queued_text(name: str, earlier: list[Job]) -> str:
    """The answer to a retry: which jobs the same file queued, and when it may come again."""
    first, last = earlier[0], earlier[-1]
    again = int(first.created_at + DUPLICATE_WINDOW_S)
    images = sum(job.request.count for job in earlier)
    return (
        f"`{name}` is the same file you queued <t:{int(first.created_at)}:R>: jobs "
        f"#{first.id}–#{last.id} ({images} image(s)), so nothing was queued again. "
        f"`/queue` shows where they are. To paint it once more, send it again after "
        f"<t:{again}:t>."
    )


def images_text(prepared: list[Prepared], plural: str = "s") -> str:
    """`2 images`, or for a file painted in batches `4 images in 2 batches`."""
    images = sum(p.pictures for p in prepared)
    text = f"{images} image{plural if images != 1 else ''}"
    if images != len(prepared):
        text += f" in {len(prepared)} batch{'es' if len(prepared) != 1 else ''}"
    return text


def acknowledgement(name: str, prepared: list[Prepared], position: int, wait_s: float) -> str:
    """`**lighthouse.json** · 2 images queued, #1 in line, all ready in about 3 min`
    (`4 images in 2 batches queued, …`), then what they are and the notes (clamps) they
    share."""
    first = prepared[0].request
    task_jobs = [job for p in prepared for job in p.task_jobs]
    styles = list(dict.fromkeys(job.style for job in task_jobs))
    each = len(task_jobs) // len(styles)
    shown = ", ".join(f'"{echo(s)}"' if s else "none" for s in styles)
    largest = max(p.pictures for p in prepared)
    batched = f" in batches of {largest}, each posted as a grid" if largest > 1 else ""
    lines = [
        f"**{echo(name)}** · {images_text(prepared)} queued, #{position} in line, all ready in "
        f"{format_duration(wait_s)}",
        echo(render_prompts(first.prompts)[:300]),
        f"style{'s' if len(styles) != 1 else ''} {shown} × each {each}{batched} · "
        f"{first.size[0]}×{first.size[1]}, {first.iterations} iterations",
        *(f"-# {note}" for note in prepared[0].notes),
    ]
    return "\n".join(lines)[:MESSAGE_LIMIT]

"""What /queue, /quota and /history say: plain functions of store rows."""

from __future__ import annotations

from bot import messages
from bot.quota import DAY, Limits, day_start
from bot.store import Job, Waiting
from engine.worker import Health

HISTORY = 10  # results /history lists
SHORT_PROMPT = 80  # characters of a prompt in a list


def link(job: Job) -> str | None:
    if job.result_message_id is None:
        return None
    guild = job.guild_id if job.guild_id is not None else "@me"
    return f"https://discord.com/channels/{guild}/{job.channel_id}/{job.result_message_id}"


def queue_text(
    mine: list[tuple[Job, Waiting]],
    running: list[Job],
    queued: list[Job],
    estimate: dict[int, float],
    paused: bool,
    workers: tuple[Health, ...] = (),
) -> str:
    """Your jobs and their places; totals for everyone; the painters when there are several."""
    people = len({job.owner_id for job in (*running, *queued)})
    lines = [
        f"**The queue:** {len(running)} painting, {len(queued)} waiting"
        + (f" ({people} {'person' if people == 1 else 'people'})." if people else ".")
    ]
    if len(workers) > 1:
        lines.append(f"**{len(workers)} painters:** " + ", ".join(map(painter_text, workers)))
    if paused:
        lines.append("-# Painting is paused by an admin: nothing new starts until it resumes.")
    if not mine:
        lines.append("You have no jobs waiting or painting.")
    for job, waiting in mine:
        where = "painting now" if job.status == "running" else f"#{waiting.position} in line"
        wait = messages.format_duration(estimate.get(job.id, 0.0))
        lines.append(
            f"**#{job.id}** · {where}, ready in {wait} · {messages.prompt_text(job, SHORT_PROMPT)}"
        )
    return "\n".join(lines)[: messages.MESSAGE_LIMIT]


def painter_text(health: Health) -> str:
    """`cuda:0 (job #12)`, `cuda:1 (idle)`, `cpu (restarting, 1 restart)`."""
    if not health.alive:
        doing = "not running" if health.error else "restarting"
    elif health.job_id is None:
        doing = "idle"
    else:
        doing = f"job #{health.job_id}" if health.job_id.isdigit() else "a task folder picture"
    restarts = f", {health.restarts} restart{'s' if health.restarts != 1 else ''}"
    return f"{health.device or 'starting'} ({doing}{restarts if health.restarts else ''})"


def quota_text(limits: Limits, used_today: int, pending: int, now: float) -> str:
    """What is left today, and when it resets."""
    resets = int(day_start(now) + DAY)
    if limits.daily_images is None:
        daily = f"You have painted {used_today} today; there is no daily limit for you."
    else:
        left = max(0, limits.daily_images - used_today)
        daily = (
            f"You have **{left}** of {limits.daily_images} images left today; "
            f"the quota resets <t:{resets}:R> (00:00 UTC)."
        )
    at_once = "no limit" if limits.max_pending is None else str(limits.max_pending)
    return "\n".join(
        [
            daily,
            f"Waiting or painting now: {pending} (at most {at_once} at once).",
            f"-# Up to {limits.max_iterations} iterations and {limits.max_size_text} per "
            "picture; failed and cancelled jobs are free.",
        ]
    )


def history_text(jobs: list[Job]) -> str:
    if not jobs:
        return "You have no paintings here yet (deleted ones are not listed)."
    lines = [f"**Your last {len(jobs)} painting{'s' if len(jobs) != 1 else ''}:**"]
    for job in jobs:
        where = link(job)
        shown = f"[#{job.id}]({where})" if where else f"#{job.id}"
        prompt = messages.prompt_text(job, SHORT_PROMPT)
        lines.append(f"{shown}{_delivery(job)} · seed {job.seed} · {prompt}")
    return "\n".join(lines)[: messages.MESSAGE_LIMIT]


def _delivery(job: Job) -> str:
    """Where a painting went, when not to its channel: ` · sent by DM`, ` · not delivered`."""
    if job.delivered_to == "dm":
        return " · sent by DM"
    if job.delivered and job.delivered_to is None:
        return f" · not delivered (`/params {job.id}` has it)"
    return ""

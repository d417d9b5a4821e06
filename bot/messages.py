"""What people read: the acknowledgement, the status message as it changes, the result.

Plain functions of a job row (and a progress event), so the texts are easy to test and the
same wherever they are sent from.
"""

from __future__ import annotations

from discord.utils import escape_markdown

from bot.store import Job
from engine.prompts import render_prompts
from engine.worker import Progress

MESSAGE_LIMIT = 2000  # characters in a Discord message
PROMPT_SHOWN = 300  # characters of the prompt shown in status messages
BAR_WIDTH = 20
RESUMED_NOTE = "Resumed after restart: the bot stopped while this was painting."
CRASH_NOTE = "Retried: the painter process crashed while painting this."


def format_duration(seconds: float) -> str:
    """`under a minute`, `about 4 min`, `about 2 h 10 min`."""
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h {minutes} min" if minutes else f"about {hours} h"


def format_elapsed(seconds: float) -> str:
    """`42 s`, `3 min 12 s`."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds} s"


def progress_bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """`█████░░░░░` with `done/total` of the width filled."""
    filled = 0 if total <= 0 else min(width, round(width * done / total))
    return "█" * filled + "░" * (width - filled)


def echo(text: str) -> str:
    """A person's words as Discord should show them: Markdown escaped, so `*bright*` stays
    `*bright*` instead of turning italic (and a backtick opens no code)."""
    return escape_markdown(text)


def code(text: str) -> str:
    """A person's words as inline code (nothing inside is Markdown), or escaped when they
    hold a backtick, which would end the code early."""
    return echo(text) if "`" in text else f"`{text}`"


def prompt_text(job: Job, limit: int = PROMPT_SHOWN) -> str:
    """The job's prompt, shortened to `limit` characters, escaped for Discord."""
    prompt = render_prompts(job.request.prompts)
    if len(prompt) > limit:
        prompt = prompt[: limit - 1] + "…"
    return echo(prompt)


def headline(job: Job) -> str:
    """`**#12** · entrance to heaven … | entrance to hell …` (the prompt shortened if long)."""
    return f"**#{job.id}** · {prompt_text(job)}"


def _with_notes(lines: list[str], job: Job) -> str:
    lines += [f"-# {note}" for note in job.note_lines]
    return "\n".join(lines)[:MESSAGE_LIMIT]


def queued_text(job: Job, position: int, wait_s: float) -> str:
    """The acknowledgement: `#3 in line, ready in about 4 min`."""
    line = f"#{position} in line, ready in {format_duration(wait_s)}"
    size = f"{job.width}×{job.height}, {job.iterations} iterations, seed {job.seed}"
    count = job.request.count
    if count > 1 and job.seed is not None:  # pictures with seeds S … S+N-1
        size = f"a grid of {count} at {size}–{job.seed + count - 1}"
    return _with_notes([headline(job), f"{line} · {size}"], job)


def running_text(
    job: Job, progress: Progress | None = None, *, loading_models: bool = False
) -> str:
    """The status while painting: bar, iteration/total and time left; before the first
    iteration, whether the worker is loading models first."""
    if progress is None:
        starting = "Painting… (loading models)" if loading_models else "Painting…"
        return _with_notes([headline(job), starting], job)
    percent = 100 * progress.iteration // max(progress.total, 1)
    left = format_duration(progress.eta_s) + " left"
    line = (
        f"`{progress_bar(progress.iteration, progress.total)}` {percent}% · "
        f"{progress.iteration}/{progress.total} · {left}"
    )
    return _with_notes([headline(job), line], job)


def requeued_text(job: Job) -> str:
    return _with_notes([headline(job), "Waiting to be painted again…"], job)


# Where a finished job's outcome went, as the status message tells it.
WENT = {
    "channel": "the painting is posted below.",
    "dm": "I could not post it here, so it went to its requester by DM.",
    "retry": "posting it failed; the bot tries again when it restarts.",
    None: "I could not post it here or send it by DM; `/params {id}` has its parameters.",
}


def finished_status_text(job: Job, went: str | None = "channel") -> str:
    """The status message's last state: where the outcome went (a key of WENT)."""
    if job.status == "done":
        took = f" in {format_elapsed(job.total_s)}" if job.total_s is not None else ""
        line = f"Done{took}: " + WENT[went].format(id=job.id)
    elif job.status == "failed":
        line = f"Failed: {job.error or 'unknown error'}"
    else:
        line = "Cancelled."
    return _with_notes([headline(job), line], job)


def result_text(job: Job, call_file: str | None = None, intro: str | None = None) -> str:
    """The result post: mention, job id, notes, and the call string inline, or a word on
    the file `call_file` that carries it when it is too long."""
    if intro is None:
        intro = f"<@{job.owner_id}> here is your painting, job **#{job.id}** (seed {job.seed})."
    lines = [intro]
    lines += [f"-# {note}" for note in job.note_lines]
    if call_file is None:
        lines.append(f"```sh\n{job.call_string}\n```")
    else:
        lines.append(f"The command that reproduces it is attached ({call_file}).")
    return "\n".join(lines)


def result_fits_inline(job: Job) -> bool:
    """Whether the call string fits in the result message (else it goes in a .txt)."""
    return len(result_text(job)) <= MESSAGE_LIMIT - 100


def failure_text(job: Job) -> str:
    lines = [f"<@{job.owner_id}> job **#{job.id}** failed: {job.error or 'unknown error'}"]
    lines += [f"-# {note}" for note in job.note_lines]
    return "\n".join(lines)[:MESSAGE_LIMIT]


def too_large_note(size: int, limit: int) -> str:
    return (
        f"The PNG is {size / 2**20:.1f} MiB, over this server's upload limit "
        f"({limit / 2**20:.1f} MiB), so it is not attached; it is kept on the bot's disk."
    )

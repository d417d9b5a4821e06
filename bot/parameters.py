"""📋 Parameters: everything that reproduces a picture, from the job database or, when the job
is not there (a Doorways PNG someone re-uploaded, another bot's database), from the PNG's own
metadata. Used by the 📋 button, the "Get parameters" message command and /params.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from dataclasses import dataclass

import discord

from bot import messages
from bot.errors import JobNotFound
from bot.store import Job, Store
from engine.outputs import read_request_bytes
from engine.request import Request

log = logging.getLogger(__name__)

MAX_PNG_BYTES = 50 * 2**20  # larger attachments are not downloaded to look for metadata
DOWNLOAD_TIMEOUT = 120.0  # seconds for one attachment (the answer is deferred meanwhile)
MESSAGE_LINK = re.compile(
    r"https?://(?:[a-z]+\.)?discord(?:app)?\.com/channels/(?P<guild>[0-9]+|@me)/"
    r"(?P<channel>[0-9]+)/(?P<message>[0-9]+)"
)


# /params with a link to someone else's message: over the API the bot gets a message's
# attachments only with the privileged Message Content intent, which it does not use; a
# message command (Apps → Get parameters) gets its target whole.
LINK_WITHOUT_CONTENT = (
    "I can't see what is attached to that message from a link: Discord shows bots other "
    "people's messages without their attachments (unless the bot has the privileged Message "
    "Content intent, which this one does not use). Use **Apps → Get parameters** on the "
    "message itself (right-click it, or long-press on a phone): that works."
)


@dataclass(frozen=True)
class Parameters:
    """What reproduces a picture: the request, and the job it came from if it is known."""

    request: Request
    call_string: str
    job: Job | None = None
    source: str = "the job database"

    def text(self) -> str:
        """The ephemeral answer: call string (copyable), seed, models, size, iterations,
        duration, parent job."""
        r = self.request
        job = self.job
        head = f"**Job #{job.id}**" if job is not None else "**A Doorways picture**"
        if job is not None and job.parent_job is not None:
            head += f" · {job.kind} of job #{job.parent_job}"
        lines = [f"{head} · from {self.source}"]
        call = f"```sh\n{self.call_string}\n```"
        facts = [
            f"seed {r.seed if r.seed is not None else (job.seed if job else '?')}",
            f"{r.size[0]}×{r.size[1]}",
            f"{r.iterations} iterations",
            f"VQGAN {r.vqgan}",
            f"CLIP {r.clip}",
        ]
        if job is not None:
            facts.append(f"status {job.status}")
            if job.total_s is not None:
                facts.append(f"took {messages.format_elapsed(job.total_s)}")
        if r.init_image:
            facts.append(f"init image {r.init_image}")
        tail = ["-# " + " · ".join(facts), "-# The request as JSON is attached."]
        if len("\n".join([*lines, call, *tail])) > messages.MESSAGE_LIMIT:
            call = "The command line is too long for a message: it is attached as a .txt file."
        return "\n".join([*lines, call, *tail])

    def files(self) -> list[discord.File]:
        name = f"job-{self.job.id}" if self.job is not None else "doorways-request"
        data = json.dumps(self.request.to_dict(), ensure_ascii=False, indent=2, sort_keys=True)
        files = [discord.File(io.BytesIO(data.encode()), filename=f"{name}.json")]
        if "```sh" not in self.text():
            files.append(discord.File(io.BytesIO(self.call_string.encode()), f"{name}.txt"))
        return files


async def answer(interaction: discord.Interaction, found: Parameters) -> None:
    """Answer privately with `found` (and the request JSON attached): the first answer, or
    the one that fills in a deferred "thinking…"."""
    if interaction.response.is_done():
        await interaction.followup.send(found.text(), files=found.files(), ephemeral=True)
    else:
        await interaction.response.send_message(found.text(), files=found.files(), ephemeral=True)


async def think(interaction: discord.Interaction) -> None:
    """Defer privately ("thinking…"): what comes next (a download of up to MAX_PNG_BYTES, a
    message fetched) may outlast the 3 seconds Discord gives the first answer."""
    await interaction.response.defer(ephemeral=True, thinking=True)


def from_job(job: Job) -> Parameters:
    # The worker's call string (once done) has the seed it drew; before that, the request's.
    request = job.request
    if request.seed is None and job.seed is not None:
        request = request.replace(seed=job.seed)
    return Parameters(request, grid_call_strings(request, job.call_string), job)


def grid_call_strings(request: Request, call_string: str) -> str:
    """A grid's call string, then each of its pictures' (each reproduces that picture
    alone), as shell comments and lines; any other request's call string as it is."""
    if request.count == 1 or request.index is not None:
        return call_string
    lines = [f"# the grid of {request.count}", call_string]
    for picture in request.pictures():
        lines += [f"# picture {picture.index}", picture.recipe().to_call_string()]
    return "\n".join(lines)


async def of_job(store: Store, job_id: int) -> Parameters:
    job = await store.get(job_id)
    if job is None:
        raise JobNotFound(f"There is no job #{job_id}.")
    return from_job(job)


async def of_message(store: Store, message: discord.Message) -> Parameters:
    """The parameters of a job's message (result or status), else of a Doorways PNG attached
    to the message. Raises JobNotFound when there are none."""
    job = await store.by_message(message.id)
    if job is not None:
        return from_job(job)
    pngs = [a for a in message.attachments if a.filename.lower().endswith(".png")]
    problems = []
    for attachment in pngs:
        if attachment.size > MAX_PNG_BYTES:
            problems.append(f"{attachment.filename} is too large to read")
            continue
        try:
            data = await asyncio.wait_for(attachment.read(), DOWNLOAD_TIMEOUT)
            # Decoding a large or hostile PNG takes a while: not on the event loop.
            request = await asyncio.to_thread(read_request_bytes, data, attachment.filename)
        except TimeoutError:
            problems.append(f"{attachment.filename} could not be downloaded in time")
            continue
        except (discord.HTTPException, ValueError) as error:
            problems.append(str(error.text if isinstance(error, discord.HTTPException) else error))
            continue
        source = f"the metadata of {attachment.filename}"
        return Parameters(request, request.to_call_string(), None, source)
    if problems:
        raise JobNotFound("That message has no Doorways parameters: " + "; ".join(problems) + ".")
    raise JobNotFound("That message is not a Doorways job and has no Doorways PNG attached.")


def parse_target(text: str) -> tuple[int, int | None, int | None]:
    """`/params` target: a job id (`12`, `#12`) → (12, None, None); a message link →
    (message id, channel id, guild id or None). Raises JobNotFound for anything else."""
    text = text.strip()
    match = MESSAGE_LINK.search(text)
    if match is not None:
        guild = None if match["guild"] == "@me" else int(match["guild"])
        return int(match["message"]), int(match["channel"]), guild
    number = text.removeprefix("#")
    if number.isdigit() and len(number) <= 20:
        return int(number), None, None
    raise JobNotFound(
        "Give a job number (like `12`) or a message link (Copy Message Link), not "
        f"{messages.echo(repr(text))}."
    )

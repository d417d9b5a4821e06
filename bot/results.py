"""Telling people on Discord what happens to their jobs: status edits and the results.

Everything here uses the bot token (channel messages), never the interaction token, which
expires after 15 minutes while jobs can wait longer than that.
"""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

import discord

from bot import messages, permissions, rules, views
from bot.progress import MessageGone, ProgressPublisher, Update
from bot.scheduler import TASK_KIND
from bot.store import Job, Store
from engine.worker import Progress

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 2**20  # Discord's limit without boosts


class DiscordReporter:
    """The scheduler's reporter: throttled status edits, and the posted outcome of each job.

    Parameters
    ----------
    client:
        The logged-in bot (its REST client is used; the gateway need not be up).
    store:
        Where each job's channel and status message are looked up.
    interval, global_edits, global_period:
        The edit throttles (see bot.progress.ProgressPublisher).
    """

    def __init__(
        self,
        client: discord.Client,
        store: Store,
        *,
        interval: float = 3.0,
        global_edits: int = 10,
        global_period: float = 5.0,
    ) -> None:
        self.client = client
        self.store = store
        # Jobs whose status message the channel refused to edit (403): their outcome goes by
        # DM without trying the channel again.
        self._refused: dict[int, discord.HTTPException] = {}
        self.publisher = ProgressPublisher(
            self._edit, interval=interval, global_edits=global_edits, global_period=global_period
        )

    # The scheduler's Reporter protocol -----------------------------------------------------------

    def started(self, job: Job, loading_models: bool) -> None:
        self.publisher.show(job.id, messages.running_text(job, loading_models=loading_models))

    def progress(self, job: Job, event: Progress) -> None:
        self.publisher.show(job.id, messages.running_text(job, event), event.preview_png)

    def requeued(self, job: Job) -> None:
        self.publisher.show(job.id, messages.requeued_text(job))

    async def deliver(self, job: Job) -> None:
        """The outcome as a reply mentioning the owner — or, where the channel refuses it
        (the bot lost a permission, or the channel is gone), by DM — then the status
        message's last edit, saying where it went."""
        refused = self._refused.pop(job.id, None)  # an edit was refused: so would the post be
        if job.status == "cancelled":
            await self._finish(job)
            await self.store.mark_delivered(job.id, None)
            return
        if refused is None:
            try:
                message = await self._post(job)
            except (discord.Forbidden, discord.NotFound) as error:
                refused = error
            except discord.HTTPException as error:
                log.error("posting job %s failed (%s); tried again at the next start", job.id,
                          error)  # fmt: skip
                await self._finish(job, "retry")
                return
            else:
                # Recorded at once: a reaction or a click on the result looks the job up by it.
                await self.store.mark_delivered(job.id, message.id)
                log.info("job %s %s: posted as message %s", job.id, job.status, message.id)
                await self._finish(job, "channel")
                settings = await rules.get_user_settings(self.store, job.owner_id)
                if job.status == "done" and settings.dm:
                    await self.send_dm(job, job.owner_id, link=message.jump_url)
                return
        await self._finish(job, await self._deliver_by_dm(job, refused))

    async def _finish(self, job: Job, went: str | None = "channel") -> None:
        """The status message's last edit (skipped if an edit was refused before)."""
        await self.publisher.finish(job.id, messages.finished_status_text(job, went))

    async def send_dm(self, job: Job, user_id: int, *, link: str | None = None) -> bool:
        """Send `user_id` the job's PNG and its parameters by DM (✉️, and /settings dm);
        False if Discord refused (DMs closed)."""
        where = f" from {link}" if link else ""
        error = await self._dm(job, user_id, f"Job **#{job.id}**{where} (seed {job.seed}).")
        if error is not None:
            log.info("cannot DM job %s to %s: %s", job.id, user_id, error)
        return error is None

    async def _deliver_by_dm(self, job: Job, refused: discord.HTTPException) -> str | None:
        """The channel refused the outcome: send it to the requester by DM with one line
        saying why; if the DM is refused too, the job stays findable (/history, /params, the
        file on disk) and the log says so once. Returns where it went: "dm" or None."""
        channel = f"<#{job.channel_id}>"
        why = channel_refusal(refused, permissions.missing_in_cache(self.client, job.channel_id))
        intro = f"Job **#{job.id}** (seed {job.seed}), which you asked for in {channel}."
        note = f"-# It came by DM because I could not post it in {channel}: {why}"
        error = await self._dm(job, job.owner_id, intro, note=note)
        if error is None:
            await self.store.mark_delivered(job.id, None, to="dm")
            log.info("job %s %s: channel %s refused it (%s); sent to %s by DM", job.id,
                     job.status, job.channel_id, refused, job.owner_id)  # fmt: skip
            return "dm"
        await self.store.mark_delivered(job.id, None, to=None)
        log.warning(
            "job %s %s: not delivered: channel %s refused it (%s) and so did the DM to %s (%s);"
            " /history and /params %s find it, the PNG is at %s",
            job.id, job.status, job.channel_id, refused, job.owner_id, error, job.id,
            job.output_path,
        )  # fmt: skip
        return None

    async def _dm(
        self, job: Job, user_id: int, intro: str, *, note: str | None = None
    ) -> discord.HTTPException | None:
        """DM `user_id` the job's outcome (the PNG and call string, or why it failed) under
        `intro`, with `note` last; the error if Discord refused."""
        content, files = await self._outcome(job, intro=intro)
        if note is not None:
            content = content[: messages.MESSAGE_LIMIT - len(note) - 1] + "\n" + note
        try:
            user = self.client.get_user(user_id) or await self.client.fetch_user(user_id)
            await user.send(content[: messages.MESSAGE_LIMIT], files=files)
        except discord.HTTPException as error:
            return error
        return None

    async def close(self) -> None:
        await self.publisher.close()

    # Discord ------------------------------------------------------------------------------------

    def _channel(self, job: Job) -> discord.PartialMessageable:
        return self.client.get_partial_messageable(job.channel_id, guild_id=job.guild_id)

    async def _edit(self, job_id: int, update: Update) -> None:
        """Edit job `job_id`'s status message (skipped while its id is not known yet)."""
        job = await self.store.get(job_id)
        if job is None or job.status_message_id is None:
            return
        message = self._channel(job).get_partial_message(job.status_message_id)
        try:
            if update.preview is not None:
                preview = discord.File(io.BytesIO(update.preview), filename="preview.png")
                await message.edit(content=update.content, attachments=[preview])
            elif update.final:  # the ✖ Cancel button goes with the preview
                await message.edit(content=update.content, attachments=[], view=None)
            else:
                await message.edit(content=update.content)
        except discord.NotFound as error:
            raise MessageGone("deleted") from error
        except discord.Forbidden as error:  # final: never retried (invalid-request limit)
            self._refused[job_id] = error
            raise MessageGone(f"refused: {error.code} {error.text}") from error

    async def _post(self, job: Job) -> discord.Message:
        reference = None
        if job.status_message_id is not None:
            reference = discord.MessageReference(
                message_id=job.status_message_id,
                channel_id=job.channel_id,
                fail_if_not_exists=False,
            )
        mentions = discord.AllowedMentions(
            users=[discord.Object(job.owner_id)], roles=False, everyone=False
        )
        intro = f"<@{job.owner_id}> here is your painting, job **#{job.id}** (seed {job.seed})."
        content, files = await self._outcome(job, intro=intro)
        return await self._channel(job).send(
            content[: messages.MESSAGE_LIMIT],
            files=files,
            reference=reference,  # type: ignore[arg-type]
            allowed_mentions=mentions,
            view=views.result_view(job),
        )

    async def _outcome(self, job: Job, *, intro: str) -> tuple[str, list[discord.File]]:
        """A painting under `intro`, or a failed job's reason."""
        if job.status == "done":
            return await self.painting(job, intro=intro)
        return messages.failure_text(job), []

    async def painting(self, job: Job, *, intro: str) -> tuple[str, list[discord.File]]:
        """A finished job's text (notes, call string) and files (PNG, long call string)."""
        inline = messages.result_fits_inline(job)
        call_file = None if inline else attachment_name(job, f"job-{job.id}.txt")
        content = messages.result_text(job, call_file, intro=intro)
        files: list[discord.File] = []
        if call_file is not None:
            files.append(discord.File(io.BytesIO(job.call_string.encode()), filename=call_file))
        png = await _read(job.output_path)
        limit = job.upload_limit or DEFAULT_UPLOAD_LIMIT
        if png is None:
            content += "\n-# The PNG file is missing on the bot's disk."
        elif len(png) > limit:
            content += "\n-# " + messages.too_large_note(len(png), limit)
        else:
            files.insert(
                0,
                discord.File(
                    io.BytesIO(png), filename=attachment_name(job, f"doorways-{job.id}.png")
                ),
            )
        return content, files


def channel_refusal(error: discord.HTTPException, lacking: list[str] | None) -> str:
    """One line: why the channel refused the outcome, and what an admin can do."""
    if isinstance(error, discord.NotFound):
        return "that channel is gone."
    if lacking:
        names, plural = permissions.names_text(lacking), len(lacking) != 1
        return (
            f"I no longer have the {names} permission{'s' if plural else ''} there; a server "
            f"admin can grant {'them' if plural else 'it'}."
        )
    if error.code == 50001:  # Missing Access: the channel is hidden from the bot
        return "I can no longer see that channel; a server admin can give me View Channel."
    return "I am missing a permission there; a server admin can grant it."


def attachment_name(job: Job, default: str) -> str:
    """A posted file's name: for a /task picture its saved name (`<out_file>_N`) with the
    default's suffix, so that what people download matches their task folder, and for a
    /task batch's grid the range of its pictures' (`<out_file>_3-4`); `default` for other
    jobs, and for a /task picture left under its hidden temporary name (it could not be
    named)."""
    if job.kind != TASK_KIND or job.output_path is None:
        return default
    saved = [Path(p) for p in job.pictures] or [Path(job.output_path)]
    if any(path.name.startswith(".") for path in saved):
        return default
    stem = saved[0].stem
    if len(saved) > 1:
        stem += "-" + saved[-1].stem.rpartition("_")[2]
    return stem + Path(default).suffix


async def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        return await asyncio.to_thread(Path(path).read_bytes)
    except OSError:
        return None

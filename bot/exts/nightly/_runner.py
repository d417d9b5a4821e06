"""The bot's task-folder runs: when to run `tasks.folder`, and running it through the
scheduler as one more owner (bot.scheduler.Scheduler.run_batch).

A run is engine.tasks.FolderRun, the same as `doorways tasks run`: the folder's lock, task
files refused with NAME_ERROR.txt, pictures as OUT_FILE_N.png, NAME.done, and progress files
so that a run stopped halfway (the bot restarting) is finished by the next one without
painting any finished picture again. The next one comes at start-up when a run was left
unfinished, else at `run_at` (local time) every day, or at once on /nightly run.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from bot.scheduler import Scheduler
from bot.settings import Settings
from engine.tasks import (
    FolderRun,
    RunSettings,
    Summary,
    TasksBusy,
    interrupted_runs,
    next_run_time,
)

log = logging.getLogger(__name__)

JOB_PREFIX = "nightly:"  # the worker's job ids of a run: nightly:alice/task_x.txt#2
MAX_SLEEP = 60.0  # seconds: the clock is read again at least this often (suspend, DST)


def now() -> dt.datetime:
    """Local wall-clock time (tests put their own clock here)."""
    return dt.datetime.now()


def run_settings(settings: Settings) -> RunSettings:
    """How the bot runs the folder: `tasks.output_root` and limits, and the operator's engine
    settings (`engine.vqgan`, `clip`, `cutn`, `precision`, `compile`, `kernels`) for what a
    task file does not set. Previews are left out: nobody watches a task folder's pictures paint."""
    engine = settings.engine_fields()
    del engine["preview_every"], engine["timelapse"]
    return RunSettings(out_root=settings.tasks.output_root, limits=settings.tasks.limits, **engine)


@dataclass(frozen=True)
class Finished:
    """The end of the last run: its summary (None if it could not start) and why not."""

    at: dt.datetime
    summary: Summary | None
    error: str | None = None


class FolderRunner:
    """Runs one task folder through the scheduler, on a schedule and on demand.

    Parameters
    ----------
    scheduler:
        The bot's scheduler: the run takes its turns with people's jobs.
    settings:
        `tasks.folder`, `tasks.run_at` (None: only on demand), the output root and limits,
        and the bot's engine settings for task files that set none (`run_settings`).
    """

    def __init__(self, scheduler: Scheduler, settings: Settings) -> None:
        assert settings.tasks.folder is not None
        self.scheduler = scheduler
        self.folder: Path = settings.tasks.folder
        self.at = settings.tasks.run_at
        self.run_settings = run_settings(settings)
        self.current: FolderRun | None = None  # the run in progress, once its folder is read
        self.busy = False  # a run is starting or under way
        self.last: Finished | None = None
        self.next_at: dt.datetime | None = None  # the next scheduled run
        self._asked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="nightly-runner")

    async def stop(self) -> None:
        """Stop waiting, and stop a run in progress (its picture is cancelled; the next run
        goes on from the progress files)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def run_now(self) -> bool:
        """Start a run at once; False if one is under way."""
        if self.busy or self._asked.is_set():
            return False
        self._asked.set()
        return True

    async def _loop(self) -> None:
        left = await asyncio.to_thread(interrupted_runs, self.folder)
        if left:
            names = ", ".join(str(p.relative_to(self.folder)) for p in left)
            log.info("an unfinished run of %s goes on now (%s)", self.folder, names)
            self._asked.set()
        while True:
            await self._wait()
            self.busy = True
            self._asked.clear()
            try:
                await self.run_once()
            except Exception:  # a bug: logged, and the schedule goes on
                log.exception("the run of %s failed", self.folder)
            finally:
                self.busy = False

    async def _wait(self) -> None:
        """Until /nightly run (or start-up) asks, or the clock shows `run_at`."""
        if self.at is None:
            self.next_at = None
            await self._asked.wait()
            return
        self.next_at = next_run_time(now(), self.at)
        log.info("next run of %s at %s", self.folder, self.next_at.strftime("%Y-%m-%d %H:%M"))
        # Short sleeps against the wall clock: a suspended machine or a clock change does
        # not make the run late by the time it slept.
        while (remaining := (self.next_at - now()).total_seconds()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._asked.wait(), min(remaining, MAX_SLEEP))
                return

    async def run_once(self) -> Finished:
        """Run the folder once, through the scheduler; returns (and keeps) how it ended."""
        run = FolderRun(self.folder, self.run_settings, job_prefix=JOB_PREFIX)
        try:
            await asyncio.to_thread(run.open)
        except (TasksBusy, ValueError, OSError) as error:
            log.error("the run of %s did not start: %s", self.folder, error)
            self.last = Finished(now(), None, str(error))
            return self.last
        self.current = run
        log.info("running %s: %d picture(s) to paint", self.folder, run.total)
        try:
            await self.scheduler.run_batch(run)
        finally:
            self.current = None
            self.last = Finished(now(), run.close())
        return self.last

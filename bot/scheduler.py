"""The scheduler: hands queued jobs to the worker one at a time, fairly, and records what
becomes of them. The database is the truth: the scheduler keeps only the running job in
memory, and a restart carries on from the rows.

- start-up: jobs left `running` were interrupted; each goes back in line first, once, with a
  visible note ("resumed after restart"), or fails if it was already retried; outcomes that
  were never posted are posted now;
- dispatch: when the worker is free, claim the fairest queued job (round-robin across owners,
  see store.fair_order) and submit it;
- events: Started / Progress go to the reporter (status edits), Done and Failed are recorded
  and delivered; a worker crash mid-job requeues the job once, then fails it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bot import rules
from bot.messages import CRASH_NOTE, RESUMED_NOTE
from bot.store import MAX_ATTEMPTS, Job, Store, Waiting
from engine import worker as engine_worker
from engine.worker import Cancelled, Done, Event, Failed, Health, Progress, Started

log = logging.getLogger(__name__)

INTERRUPTED_TWICE = (
    "interrupted twice (the bot stopped while it was painting, also on the retry); not tried again"
)


class Worker(Protocol):
    """What the scheduler needs of engine.worker.WorkerHandle."""

    async def start(self) -> None: ...
    def submit(self, job: engine_worker.Job) -> None: ...
    def cancel(self, job_id: str) -> bool: ...
    def events(self) -> AsyncIterator[Event]: ...
    def health(self) -> Health: ...
    async def stop(
        self, timeout: float = 10.0, *, finish_current: bool = False
    ) -> list[engine_worker.Job]: ...


class Reporter(Protocol):
    """Tells people what happens to their jobs (bot.results.DiscordReporter)."""

    def started(self, job: Job) -> None: ...
    def progress(self, job: Job, event: Progress) -> None: ...
    def requeued(self, job: Job) -> None: ...
    async def deliver(self, job: Job) -> None: ...
    async def close(self) -> None: ...


@dataclass
class _Current:
    job: Job
    started: bool = False
    progress: Progress | None = None


class Scheduler:
    """Feeds the worker from the store. `start()` once, `wake()` after queueing, `stop()`.

    Parameters
    ----------
    store, worker, reporter:
        The job database, the engine worker handle, and whoever tells people.
    outputs:
        Folder for the PNGs (`job-<id>.png`).
    seconds_per_iteration:
        The wait estimate per iteration until jobs have been timed.
    """

    def __init__(
        self,
        store: Store,
        worker: Worker,
        reporter: Reporter,
        *,
        outputs: Path,
        seconds_per_iteration: float = 0.5,
    ) -> None:
        self.store = store
        self.worker = worker
        self.reporter = reporter
        self.outputs = outputs
        self.default_per_iteration = seconds_per_iteration
        self.per_iteration = seconds_per_iteration
        self.worker_ready = False
        self.worker_error: str | None = None
        self.paused = False  # /admin pause: the running job finishes, nothing new starts
        self._current: _Current | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._deliveries: set[asyncio.Task[None]] = set()
        self._started = self._stopping = False

    # Life cycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover interrupted jobs, post undelivered outcomes, start the worker (in the
        background: commands are taken while it loads) and the dispatch loop."""
        if self._started:
            raise RuntimeError("the scheduler was already started")
        self._started = True
        await asyncio.to_thread(self.outputs.mkdir, parents=True, exist_ok=True)
        requeued, failed = await self.store.recover_interrupted(RESUMED_NOTE, INTERRUPTED_TWICE)
        for job in requeued:
            log.info("job %s was interrupted by a restart: queued again", job.id)
            self.reporter.requeued(job)
        for job in failed:
            log.warning("job %s was interrupted twice: failed", job.id)
        for job in await self.store.undelivered():
            self._deliver(job)
        self.per_iteration = await self.store.seconds_per_iteration() or self.per_iteration
        self.paused = await rules.is_paused(self.store)
        self._tasks = [
            asyncio.create_task(self._run_worker(), name="scheduler-worker"),
            asyncio.create_task(self._dispatch_loop(), name="scheduler-dispatch"),
        ]
        self.wake()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop dispatching and the worker. A job still running stays `running` in the
        database, so the next start resumes it; posts under way get `timeout` s to finish."""
        if self._stopping:
            return
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._started:
            await self.worker.stop(timeout=timeout)
        current, self._current = self._current, None
        if current is not None and not current.started:
            await self.store.unclaim(current.job.id)  # never began: no "resumed" note
        if self._deliveries:
            await asyncio.wait(self._deliveries, timeout=timeout)
        for task in self._deliveries:
            task.cancel()
        await self.reporter.close()

    def wake(self) -> None:
        """Something was queued (or the worker freed up): look for work."""
        self._wake.set()

    # Queries ------------------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def running_job_id(self) -> int | None:
        return None if self._current is None else self._current.job.id

    def estimate(self, job: Job, waiting: Waiting) -> float:
        """Seconds until `job` is done: what runs now, what waits before it, and itself."""
        total = 0.0
        for ahead in (*waiting.ahead, job):
            current = self._current
            if current is not None and current.job.id == ahead.id and current.progress:
                total += current.progress.eta_s
            else:
                total += ahead.iterations * self.per_iteration
        return total

    # Pausing (/admin pause and resume; kept in the database across restarts) ------------------

    async def pause(self) -> bool:
        """Start nothing new (the running job finishes); False if already paused."""
        was, self.paused = self.paused, True
        await rules.set_paused(self.store, True)
        return not was

    async def resume(self) -> bool:
        """Start jobs again; False if it was not paused."""
        was, self.paused = self.paused, False
        await rules.set_paused(self.store, False)
        self.wake()
        return was

    # Cancelling (/cancel, /admin cancel and the ✖ button) ---------------------------------------

    async def cancel(self, job_id: int) -> Job | None:
        """Cancel a queued or running job; returns its row, or None if it had ended."""
        job = await self.store.cancel(job_id)
        if job is None:
            return None
        if self._current is not None and self._current.job.id == job_id:
            self.worker.cancel(str(job_id))  # the Cancelled event frees the worker
        self._deliver(job)
        return job

    # Loops --------------------------------------------------------------------------------------

    async def _run_worker(self) -> None:
        """Start the worker, then consume its events until stopped."""
        try:
            await self.worker.start()
        except Exception as error:  # WorkerError, or a bug: jobs stay queued
            self.worker_error = str(error)
            log.error("the worker could not start: %s; jobs stay queued", error)
            return
        self.worker_ready = True
        self.wake()
        async for event in self.worker.events():
            try:
                await self._on_event(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("handling worker event %r failed", event)

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._stopping or self.paused or not self.worker_ready or self._current:
                continue
            job = await self.store.claim_next()
            if job is None:
                continue
            self._current = _Current(job)
            output = self.outputs / f"job-{job.id}.png"
            log.info(
                "job %s (owner %s) goes to the worker, attempt %d",
                job.id,
                job.owner_id,
                job.attempts,
            )
            self.worker.submit(engine_worker.Job(str(job.id), job.request_json, str(output)))

    async def _on_event(self, event: Event) -> None:
        current = self._current
        job_id = int(event.job_id)
        if current is None or current.job.id != job_id:
            log.warning("event %s for job %s, which is not the running job", event.type, job_id)
            return
        if isinstance(event, Started):
            current.started = True
            await self.store.mark_started(job_id, event.at)
            self.reporter.started(current.job)
        elif isinstance(event, Progress):
            current.progress = event
            self.reporter.progress(current.job, event)
        elif isinstance(event, Done):
            job = await self.store.finish(
                job_id,
                output_path=event.png,
                seed=event.seed,
                call_string=event.call_string,
                load_s=event.load_s,
                first_step_s=event.first_step_s,
                total_s=event.total_s,
            )
            self._next()
            self.per_iteration = await self.store.seconds_per_iteration() or self.per_iteration
            if job is not None:
                log.info("job %s done in %.1f s", job_id, event.total_s)
                self._deliver(job)
        elif isinstance(event, Failed):
            await self._on_failed(current.job, event)
            self._next()
        elif isinstance(event, Cancelled):
            self._next()  # the store already says cancelled (Scheduler.cancel)

    async def _on_failed(self, job: Job, event: Failed) -> None:
        if event.kind == "crash":
            fresh = await self.store.get(job.id)
            if fresh is not None and fresh.attempts < MAX_ATTEMPTS:
                requeued = await self.store.requeue(job.id, CRASH_NOTE)
                if requeued is not None:
                    log.warning("job %s: %s; queued again", job.id, event.message)
                    self.reporter.requeued(requeued)
                    return
            message = f"{event.message} — it crashed on the retry too, so it was not tried again"
        else:
            message = event.message
        failed = await self.store.fail(job.id, event.kind, message)
        log.info("job %s failed (%s): %s", job.id, event.kind, message)
        if failed is not None:
            self._deliver(failed)

    def _next(self) -> None:
        self._current = None
        self.wake()

    def _deliver(self, job: Job) -> None:
        """Post a job's outcome in the background (a slow upload must not hold the queue)."""
        self._spawn(self.reporter.deliver(job), f"deliver-{job.id}")

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._deliveries.add(task)
        task.add_done_callback(self._delivered)

    def _delivered(self, task: asyncio.Task[None]) -> None:
        self._deliveries.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("posting an outcome failed", exc_info=task.exception())

"""The scheduler: hands queued jobs to the pool of workers, one per free worker, fairly, and
records what becomes of them. The database is the truth: the scheduler keeps only the
running jobs in memory, and a restart carries on from the rows.

- start-up: jobs left `running` were interrupted; each goes back in line first, once, with a
  visible note ("resumed after restart"), or fails if it was already retried; outcomes that
  were never posted are posted now;
- dispatch: while a worker is free, claim the fairest queued job (round-robin across owners,
  see store.fair_order) and submit it: it goes to whichever worker is free;
- events: Started / Progress go to the reporter (status edits), Done and Failed are recorded
  and delivered; a worker crash mid-job requeues the job once (first in line, so the next
  free worker takes it), then fails it.

A batch — a run of a task folder (engine.tasks.FolderRun), the bot's nightly work — takes its
turns as one more owner: `run_batch` hands its pictures to the same workers, one per turn,
between the queued jobs, so each GPU holds one copy of the models and people are not starved.
The batch keeps its own truth on disk (progress files, .done, _ERROR.txt), not in the store.

Where pictures go: OUTPUTS/job-<id>.png (a batch's pictures beside it, job-<id>-1.png, …),
except the images of an uploaded task file (/task), which go where the task file says, per
person, named the runvqgan way: OUTPUTS/tasks/<user id>/<out_folder>/<out_file>_N.png (+ .txt),
N the next free number, never overwriting (the worker writes hidden temporary files;
engine.tasks.place_numbered names each, a batch's in picture order). A /task batch's grid
goes where every grid goes, OUTPUTS/job-<id>.png: the task folder holds only pictures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from bot import rules
from bot.messages import CRASH_NOTE, RESUMED_NOTE
from bot.speed import Speed
from bot.store import MAX_ATTEMPTS, Job, Store, Waiting, fair_order
from engine import worker as engine_worker
from engine.tasks import move_over, partial_output, place_numbered
from engine.worker import TERMINAL, Cancelled, Done, Event, Failed, Health, Progress, Started

log = logging.getLogger(__name__)

TASK_KIND = "task"  # the store's kind of the jobs an uploaded task file queues (/task)

INTERRUPTED_TWICE = (
    "interrupted twice (the bot stopped while it was painting, also on the retry); not tried again"
)


class Pool(Protocol):
    """What the scheduler needs of engine.worker.pool.Pool: workers, one job each."""

    async def start(self) -> None: ...
    @property
    def free(self) -> int: ...
    def on_free(self, callback: Callable[[], None]) -> None: ...
    def submit(self, job: engine_worker.Job) -> None: ...
    def cancel(self, job_id: str) -> bool: ...
    def events(self) -> AsyncIterator[Event]: ...
    def health(self) -> tuple[Health, ...]: ...
    async def stop(
        self, timeout: float = 10.0, *, finish_current: bool = False
    ) -> list[engine_worker.Job]: ...


class Batch(Protocol):
    """Work that is not in the store (engine.tasks.FolderRun): its jobs are handed out one
    at a time and it is told what becomes of them. The scheduler calls `next_job` and
    `record` in a thread (they do file work); `owns` and `idle` must be quick."""

    def next_job(self) -> engine_worker.Job | None: ...
    def owns(self, job_id: str) -> bool: ...
    def record(self, event: Event) -> None: ...
    @property
    def idle(self) -> bool: ...


class Reporter(Protocol):
    """Tells people what happens to their jobs (bot.results.DiscordReporter)."""

    def started(self, job: Job, loading_models: bool) -> None: ...
    def progress(self, job: Job, event: Progress) -> None: ...
    def requeued(self, job: Job) -> None: ...
    async def deliver(self, job: Job) -> None: ...
    async def close(self) -> None: ...


def task_folder(outputs: Path, owner_id: int) -> Path:
    """The output root of one person's task files: their out_folders are folders in it."""
    return outputs / "tasks" / str(owner_id)


def task_target(outputs: Path, job: Job) -> tuple[Path, str] | None:
    """(folder, out_file) of a /task job — its pictures are folder/out_file_N.png — or None
    for other jobs. The request's output is the task file's `out_folder/out_file.png`
    (engine.taskfile checked it when the file was queued; checked again here)."""
    if job.kind != TASK_KIND:
        return None
    try:
        output = PurePosixPath(job.request.output)
    except (ValueError, TypeError) as error:  # the worker will say what is wrong with it
        log.warning("job %s: unreadable request: %s", job.id, error)
        return None
    if output.is_absolute() or ".." in output.parts or output.stem.startswith("."):
        log.warning("job %s: task output %r is not a name under its folder", job.id, output)
        return None
    return task_folder(outputs, job.owner_id) / output.parent, output.stem


def place_task_job(
    job_id: int, event: Done, folder: Path, out_file: str, outputs: Path
) -> tuple[str, tuple[str, ...]]:
    """Name a /task job's pictures folder/out_file_N.png (+ .txt), a batch's in picture order,
    and move a batch's grid to OUTPUTS/job-<id>.png; returns the job's PNG (its picture, or
    the grid) and its pictures' PNGs for the store. What cannot be named stays where the
    worker saved it, and the log says so."""

    def place(temps: tuple[str, ...]) -> str:
        try:
            return str(place_numbered(temps, folder, out_file))
        except OSError as error:
            log.error("job %s: cannot name its picture in %s: %s", job_id, folder, error)
            return temps[0]

    if not event.pictures:
        return place(event.paths), ()
    pictures = tuple(place((png, str(Path(png).with_suffix(".txt")))) for png in event.pictures)
    grid = outputs / f"job-{job_id}.png"
    try:
        move_over(event.paths, grid)
    except OSError as error:
        log.error("job %s: cannot move its grid to %s: %s", job_id, grid, error)
        return event.png, pictures
    return str(grid), pictures


@dataclass
class _Current:
    job: Job
    started: bool = False
    progress: Progress | None = None
    target: tuple[Path, str] | None = None  # a /task job's (folder, out_file)


class Scheduler:
    """Feeds the workers from the store. `start()` once, `wake()` after queueing, `stop()`.

    Parameters
    ----------
    store, pool, reporter:
        The job database, the engine's pool of workers, and whoever tells people.
    outputs:
        Folder for the PNGs (`job-<id>.png`; task files' in `tasks/<user id>/`).
    seconds_per_iteration:
        The wait estimate per iteration until jobs have been timed (then: measured, per size).
    """

    def __init__(
        self,
        store: Store,
        pool: Pool,
        reporter: Reporter,
        *,
        outputs: Path,
        seconds_per_iteration: float = 0.5,
    ) -> None:
        self.store = store
        self.pool = pool
        self.reporter = reporter
        self.outputs = outputs
        self.speed = Speed(seconds_per_iteration)
        self.worker_ready = False
        self.worker_error: str | None = None
        self.paused = False  # /admin pause everywhere: the running job finishes, nothing new
        self.paused_guilds: set[int] = set()  # /admin pause in a guild: its jobs are held
        self._running: dict[int, _Current] = {}  # by job id, in the order handed over
        self._batch: Batch | None = None
        self._batch_done: asyncio.Event | None = None  # set when the batch is over
        self._batch_jobs: dict[str, Progress | None] = {}  # the batch's jobs the workers have
        self._batch_served: float | None = None  # when the batch's last job was handed over
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
        await self._measure()
        self.paused = await rules.is_paused(self.store)
        self.paused_guilds = await rules.paused_guilds(self.store)
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
        if self._batch_done is not None:
            self._batch_done.set()  # its picture in the worker is lost; the next run makes it
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._started:
            await self.pool.stop(timeout=timeout)
        running, self._running = self._running, {}
        for current in running.values():
            if not current.started:
                await self.store.unclaim(current.job.id)  # never began: no "resumed" note
        if self._deliveries:
            await asyncio.wait(self._deliveries, timeout=timeout)
        for task in self._deliveries:
            task.cancel()
        await self.reporter.close()

    def wake(self) -> None:
        """Something was queued (or a worker freed up): look for work."""
        self._wake.set()

    # Queries ------------------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def running_job_ids(self) -> tuple[int, ...]:
        """The people's jobs the workers have, in the order they were handed over."""
        return tuple(self._running)

    @property
    def batch_job_ids(self) -> tuple[str, ...]:
        """The batch's jobs the workers have (`nightly:alice/task_x.txt#2`)."""
        return tuple(self._batch_jobs)

    @property
    def workers(self) -> int:
        """Workers that paint now (at least 1, for estimates before any is ready)."""
        return max(1, sum(health.alive for health in self.pool.health()))

    def estimate(self, job: Job, waiting: Waiting) -> float:
        """Seconds until `job` is done: the jobs before it (those painting by what is left
        of them) go to the workers in line order, each to the one that frees up first, and
        then `job` itself."""
        free_at = [0.0] * self.workers  # seconds from now until each worker is free
        for progress in self._batch_jobs.values():  # a batch's pictures painting now
            if progress is not None:
                free_at[free_at.index(min(free_at))] += progress.eta_s
        for ahead in waiting.ahead:
            free_at[free_at.index(min(free_at))] += self._remaining(ahead)
        return min(free_at) + self._remaining(job)

    def _remaining(self, job: Job) -> float:
        """Seconds a job still needs: its progress says so once it paints."""
        current = self._running.get(job.id)
        if current is not None and current.progress is not None:
            return current.progress.eta_s
        return job.iterations * self.speed.per_iteration(job.width, job.height, job.request.count)

    async def _measure(self) -> None:
        """Take the speeds at each size from the jobs painted lately (for estimates)."""
        self.speed = Speed(self.speed.default, await self.store.timings())

    # Pausing (/admin pause and resume; kept in the database across restarts) ------------------

    async def pause(self, guild_id: int | None = None, *, by: int = 0) -> bool:
        """Start nothing new (the running job finishes) — of any guild, or with `guild_id`
        of that guild only (the others go on); False if already paused."""
        if guild_id is not None:
            changed = await rules.set_guild_paused(self.store, guild_id, True, by)
            self.paused_guilds.add(guild_id)
            return changed
        was, self.paused = self.paused, True
        await rules.set_paused(self.store, True)
        return not was

    async def resume(self, guild_id: int | None = None) -> bool:
        """Start jobs again (of any guild, or of `guild_id`); False if it was not paused."""
        if guild_id is not None:
            changed = await rules.set_guild_paused(self.store, guild_id, False, 0)
            self.paused_guilds.discard(guild_id)
        else:
            changed, self.paused = self.paused, False
            await rules.set_paused(self.store, False)
        self.wake()
        return changed

    def holds(self, guild_id: int | None) -> bool:
        """Whether a job of `guild_id` waits for a pause (of every guild, or its own)."""
        return self.paused or (guild_id is not None and guild_id in self.paused_guilds)

    # Batches (a task folder run) -----------------------------------------------------------------

    async def run_batch(self, batch: Batch) -> None:
        """Paint `batch`'s jobs, taking turns with the queued jobs as one more owner (a turn
        per free worker); returns when it is over, or when the scheduler stops. Cancelling
        this cancels the batch's pictures being painted (their Cancelled events free the
        workers)."""
        if self._batch is not None:
            raise RuntimeError("a batch is already running")
        if batch.idle or self._stopping:
            return
        done = asyncio.Event()
        self._batch, self._batch_done, self._batch_served = batch, done, None
        self.wake()
        try:
            await done.wait()
        finally:
            self._batch = self._batch_done = None
            if not self._stopping:
                for job_id in self._batch_jobs:
                    self.pool.cancel(job_id)

    async def _batch_turn(self) -> bool:
        """Whether the batch goes before the fairest queued job. As in store.fair_order: an
        interrupted job first, then whoever was served longest ago — someone never served
        before the batch, the batch (never served) before the others; a tie goes to people."""
        async with self.store.lock:
            order = await fair_order(self.store.db, runnable_only=True)
            if not order:
                return True
            if order[0].resume:
                return False
            cursor = await self.store.db.execute(
                "SELECT MAX(started_at) FROM jobs WHERE owner_id = ?", (order[0].owner_id,)
            )
            row = await cursor.fetchone()
        last_served = None if row is None else row[0]
        if last_served is None:
            return False
        return self._batch_served is None or self._batch_served < last_served

    async def _dispatch_batch(self, batch: Batch) -> bool:
        """Hand the batch's next job to a worker; False if it had none (it may be over)."""
        try:
            job = await asyncio.to_thread(batch.next_job)
        except Exception:
            log.exception("the batch failed to hand out a job; it stops here")
            job = None
        if job is None:
            if batch.idle and not self._batch_jobs:  # (else the last event is being recorded)
                self._batch = None  # over: run_batch returns
                if self._batch_done is not None:
                    self._batch_done.set()
            return False
        self._batch_jobs[job.job_id] = None
        self._batch_served = self.store.clock()
        log.info("batch job %s goes to a worker", job.job_id)
        self.pool.submit(job)
        return True

    async def _on_batch_event(self, event: Event) -> None:
        batch = self._batch
        if isinstance(event, Progress):
            self._batch_jobs[event.job_id] = event
            return
        if batch is not None:
            try:
                await asyncio.to_thread(batch.record, event)
            except Exception:
                log.exception("the batch could not record %r", event)
        if isinstance(event, TERMINAL):
            self._batch_jobs.pop(event.job_id, None)
            if batch is not None and batch.idle and self._batch_done is not None:
                self._batch_done.set()
            self.wake()

    # Cancelling (/cancel, /admin cancel and the ✖ button) ---------------------------------------

    async def cancel(self, job_id: int) -> Job | None:
        """Cancel a queued or running job; returns its row, or None if it had ended."""
        job = await self.store.cancel(job_id)
        if job is None:
            return None
        if job_id in self._running:
            self.pool.cancel(str(job_id))  # the Cancelled event frees its worker
        self._deliver(job)
        return job

    # Loops --------------------------------------------------------------------------------------

    async def _run_worker(self) -> None:
        """Start the workers, then consume their events until stopped."""
        self.pool.on_free(self.wake)
        try:
            await self.pool.start()
        except Exception as error:  # WorkerError, or a bug: jobs stay queued
            self.worker_error = str(error)
            log.error("no worker could start: %s; jobs stay queued", error)
            return
        self.worker_ready = True
        self.wake()
        async for event in self.pool.events():
            try:
                if event.job_id in self._batch_jobs:
                    await self._on_batch_event(event)
                else:
                    await self._on_event(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("handling worker event %r failed", event)

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while not (self._stopping or self.paused or not self.worker_ready):
                if self.pool.free <= 0 or not await self._dispatch_one():
                    break

    async def _dispatch_one(self) -> bool:
        """Hand the fairest waiting thing — a person's job or the batch's next picture — to
        the pool; False if there was nothing to hand over."""
        batch = self._batch
        batch_first = batch is not None and await self._batch_turn()
        if batch is not None and batch_first and await self._dispatch_batch(batch):
            return True
        job = await self.store.claim_next()
        if job is None:  # the queue emptied meanwhile: the batch's turn after all
            return batch is not None and not batch_first and await self._dispatch_batch(batch)
        current = _Current(job, target=task_target(self.outputs, job))
        self._running[job.id] = current
        output = self.outputs / f"job-{job.id}.png"
        if current.target is not None:
            folder, out_file = current.target
            try:
                output = await asyncio.to_thread(partial_output, folder, out_file, f"job-{job.id}")
            except OSError as error:
                log.error("job %s: cannot write in %s (%s); into %s", job.id, folder, error, output)
                current.target = None
        log.info(
            "job %s (owner %s) goes to a worker, attempt %d", job.id, job.owner_id, job.attempts
        )
        self.pool.submit(engine_worker.Job(str(job.id), job.request_json, str(output)))
        return True

    async def _on_event(self, event: Event) -> None:
        if not event.job_id.isdigit():
            log.warning("event %s for %s, which is no job of the store", event.type, event.job_id)
            return
        job_id = int(event.job_id)
        current = self._running.get(job_id)
        if current is None:
            log.warning("event %s for job %s, which is not a running job", event.type, job_id)
            return
        if isinstance(event, Started):
            current.started = True
            await self.store.mark_started(job_id, event.at)
            self.reporter.started(current.job, event.loads_models)
        elif isinstance(event, Progress):
            current.progress = event
            self.reporter.progress(current.job, event)
        elif isinstance(event, Done):
            png, pictures = event.png, event.pictures
            if current.target is not None:
                png, pictures = await asyncio.to_thread(
                    place_task_job, job_id, event, *current.target, self.outputs
                )
            # A stop between the moves above and this record repaints the job at the next
            # start: one more numbered picture (a batch: its pictures once more), never an
            # overwritten one.
            job = await self.store.finish(
                job_id,
                output_path=png,
                seed=event.seed,
                call_string=event.call_string,
                load_s=event.load_s,
                first_step_s=event.first_step_s,
                total_s=event.total_s,
                picture_paths=pictures,
            )
            self._next(job_id)
            await self._measure()
            if job is not None:
                log.info("job %s done in %.1f s", job_id, event.total_s)
                self._deliver(job)
        elif isinstance(event, Failed):
            await self._on_failed(current.job, event)
            self._next(job_id)
        elif isinstance(event, Cancelled):
            self._next(job_id)  # the store already says cancelled (Scheduler.cancel)

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

    def _next(self, job_id: int) -> None:
        """A job ended: its worker is free."""
        self._running.pop(job_id, None)
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

"""The pool: several workers behind the one interface the scheduler talks to.

Jobs submitted to the pool wait in one line and each goes to the first worker that is ready
and idle, one job per worker at a time, so a slow job never holds a job that another worker
could paint. Whoever feeds the pool asks `free` (workers ready and idle) before deciding
what runs next, and is called back (`on_free`) when a worker frees up without a job
finishing: started, restarted after a crash, or joined (a Ray node).

The pool does not retry: a worker's crash reaches the caller as Failed("crash") like any
outcome (the bot's scheduler queues the job once more, and it goes to a free worker). The
workers themselves may be anything that offers engine.worker.jobs.Worker: local processes
(`local_pool`) or Ray actors (engine.worker.cluster).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence

from engine.worker.jobs import (
    END_OF_EVENTS,
    TERMINAL,
    Cancelled,
    Event,
    Health,
    Job,
    StopOnce,
    Worker,
    WorkerError,
    queued_events,
)

log = logging.getLogger("doorways.worker")


class Pool:
    """Several workers, one line of jobs. Every method is called on one event loop.

    ```
    pool = local_pool(["cuda:0", "cuda:1"], preload=("vqgan_imagenet_f16_16384", "ViT-B/32"))
    await pool.start()
    pool.submit(Job.of("42", request, "out/42.png"))
    async for event in pool.events():
        ...  # Started, Progress, Done, Failed, Cancelled, from whichever worker
    await pool.stop()
    ```
    """

    def __init__(self, workers: Sequence[Worker] = ()) -> None:
        self.workers: list[Worker] = []
        self._pending: collections.deque[Job] = collections.deque()
        self._busy: dict[int, str] = {}  # worker index -> the job it has
        self._events: asyncio.Queue[object] = asyncio.Queue()
        self._readers: list[asyncio.Task[None]] = []
        self._callbacks: list[Callable[[], None]] = []
        self._started = self._stopping = False
        self._stop_once = StopOnce()
        for worker in workers:
            self.add(worker)

    # Membership ----------------------------------------------------------------------------

    def add(self, worker: Worker) -> None:
        """A worker joins (before start, or later: then it starts in the background)."""
        index = len(self.workers)
        self.workers.append(worker)
        worker.on_ready = self._changed
        if self._started:
            self._readers.append(asyncio.create_task(self._join(index)))

    async def _join(self, index: int) -> None:
        try:
            await self.workers[index].start()
        except WorkerError as error:
            log.error("worker %d could not start: %s", index + 1, error)
            return
        await self._read(index)

    # The public API ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker at once; raises WorkerError if none could start (the others'
        failures are logged, and shown by health())."""
        if self._started:
            raise RuntimeError("this pool was already started")
        self._started = True
        results = await asyncio.gather(
            *(worker.start() for worker in self.workers), return_exceptions=True
        )
        errors = []
        for index, result in enumerate(results):
            if isinstance(result, BaseException):
                if not isinstance(result, WorkerError):
                    raise result
                log.error("worker %d could not start: %s", index + 1, result)
                errors.append(str(result))
            else:
                self._readers.append(asyncio.create_task(self._read(index)))
        if self.workers and len(errors) == len(self.workers):
            raise WorkerError(errors[0] if len(set(errors)) == 1 else "; ".join(errors))
        self._dispatch()

    @property
    def free(self) -> int:
        """Workers ready and idle, less the jobs already waiting for them."""
        return max(0, len(self._idle()) - len(self._pending))

    def on_free(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever a worker becomes ready (started, restarted, joined)."""
        self._callbacks.append(callback)

    def submit(self, job: Job) -> None:
        """Queue a job for the first free worker. Never blocks."""
        if self._stopping:
            raise RuntimeError("the pool is stopping; it takes no more jobs")
        if job.job_id in self._busy.values() or any(j.job_id == job.job_id for j in self._pending):
            raise ValueError(f"job {job.job_id!r} is already queued or running")
        self._pending.append(job)
        self._dispatch()

    def cancel(self, job_id: str) -> bool:
        """Cancel a waiting job (Cancelled at once) or a running one (Cancelled by its worker
        after at most one more iteration). False if the job is unknown or finished."""
        for job in self._pending:
            if job.job_id == job_id:
                self._pending.remove(job)
                self._events.put_nowait(Cancelled(job_id))
                return True
        for index, running in self._busy.items():
            if running == job_id:
                return self.workers[index].cancel(job_id)
        return False

    def events(self) -> AsyncIterator[Event]:
        """Every job event of every worker, in order, until stop(). One consumer at a time."""
        return queued_events(self._events)

    def health(self) -> tuple[Health, ...]:
        """One snapshot per worker, in the order they joined."""
        return tuple(worker.health() for worker in self.workers)

    async def stop(self, timeout: float = 10.0, *, finish_current: bool = False) -> list[Job]:
        """Stop every worker (see WorkerHandle.stop); returns the jobs that got no final
        event, for the caller to run later. A second call waits for the first and returns []."""
        return await self._stop_once(lambda: self._stop(timeout, finish_current))

    async def _stop(self, timeout: float, finish_current: bool) -> list[Job]:
        self._stopping = True
        unfinished = list(self._pending)
        self._pending.clear()
        stopped = await asyncio.gather(
            *(w.stop(timeout, finish_current=finish_current) for w in self.workers),
            return_exceptions=True,
        )
        for result in stopped:
            if isinstance(result, BaseException):
                log.error("a worker did not stop cleanly: %s", result)
            else:
                unfinished = result + unfinished
        for reader in self._readers:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(reader, 2.0)  # their streams ended: flush what is left
        self._busy.clear()
        self._events.put_nowait(END_OF_EVENTS)
        return unfinished

    # Inside --------------------------------------------------------------------------------

    def _idle(self) -> list[int]:
        return [
            index
            for index, worker in enumerate(self.workers)
            if index not in self._busy and worker.health().alive
        ]

    def _dispatch(self) -> None:
        """Hand waiting jobs to idle workers, the lowest-numbered first."""
        if self._stopping or not self._started:
            return
        for index in self._idle():
            if not self._pending:
                return
            job = self._pending.popleft()
            self._busy[index] = job.job_id
            self.workers[index].submit(job)

    def _changed(self) -> None:
        """A worker became ready: give it work, and tell whoever feeds the pool."""
        self._dispatch()
        for callback in self._callbacks:
            callback()

    async def _read(self, index: int) -> None:
        """Pass one worker's events on; a final one frees the worker."""
        async for event in self.workers[index].events():
            if isinstance(event, TERMINAL) and self._busy.get(index) == event.job_id:
                del self._busy[index]
            self._events.put_nowait(event)
            if isinstance(event, TERMINAL):
                self._dispatch()


def local_pool(
    devices: Sequence[str],
    *,
    progress_interval: float = 1.0,
    threads: int | None = None,
    preload: tuple[str, str] | None = None,
) -> Pool:
    """One local worker process per device ("cpu" may repeat: several CPU workers)."""
    from engine.worker.process import WorkerHandle

    return Pool(
        [
            WorkerHandle(
                device, progress_interval=progress_interval, threads=threads, preload=preload
            )
            for device in devices
        ]
    )


def is_device(name: str) -> bool:
    """auto, cpu, cuda or cuda:N."""
    kind, _, index = name.partition(":")
    return kind in ("auto", "cpu", "cuda") and (not index or (kind == "cuda" and index.isdigit()))


def check_devices(devices: Sequence[str]) -> tuple[str, ...]:
    """A device list as given (blanks dropped): cpu, cuda or cuda:N each (they may repeat:
    two workers on one device), or just "all". Raises ValueError naming the bad one."""
    names = tuple(name.strip() for name in devices if name.strip())
    if names == ("all",):
        return names
    for name in names:
        if name == "auto" or not is_device(name):
            raise ValueError(f'{name!r} is not a device: give cpu, cuda or cuda:N each, or "all"')
    return names


def resolve_devices(devices: Sequence[str], default: str) -> list[str]:
    """The devices to start workers on: `devices` as given, every visible GPU for ["all"],
    or one worker on `default` when `devices` is empty.

    Raises WorkerError when "all" finds no GPU.
    """
    if not devices:
        return [default]
    if list(devices) != ["all"]:
        return list(devices)
    count = visible_gpus()
    if count == 0:
        raise WorkerError('devices "all": torch sees no GPU on this machine')
    return [f"cuda:{index}" for index in range(count)]


def visible_gpus() -> int:
    """How many GPUs torch sees, asked in a child process: this one never imports torch."""
    import subprocess
    import sys

    try:
        answer = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return int(answer.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError) as error:
        raise WorkerError(f"could not count the GPUs: {error}") from None

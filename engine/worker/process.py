"""The local worker process and its handle: one process per device, started with the
multiprocessing `spawn` context.

- the process (`_worker_main`) runs a Painter (engine.worker.painter): it takes `(seq, Job)`
  items from its job queue, saves each finished picture where the job says, and sends plain
  picklable events back through a pipe;
- `WorkerHandle`, the parent side for asyncio code: submit, cancel, an event stream, health,
  stop — none of which blocks the event loop. The handle keeps its own record of every job
  it was given and hands the process one job at a time, so when the process dies (segfault,
  kill -9, a CUDA error) the running job fails with kind "crash", a fresh process starts,
  and the queued jobs go to it: nothing is lost with the dead process's queue.

This module imports neither torch nor the model code at the top: the bot imports the handle
without paying for torch; the worker process imports them when it starts. Scripts that
start a handle need the usual `if __name__ == "__main__":` guard (spawn re-imports __main__).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.queues
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from engine.worker.jobs import (
    END_OF_EVENTS,
    TERMINAL,
    Cancelled,
    Event,
    Failed,
    Health,
    Job,
    Painted,
    Progress,
    Started,
    StopOnce,
    WorkerError,
    queued_events,
)
from engine.worker.painter import DeviceBroken, Models, Painter, describe_device

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

log = logging.getLogger("doorways.worker")

DEVICE_BROKEN_EXIT = 3  # the worker's exit code after a CUDA error


# Messages only the handle sees.


@dataclass(frozen=True)
class _Ready:
    pid: int
    device: str
    device_memory: int | None
    gpu_warning: str | None = None  # engine.driver.cpu_fallback_warning


@dataclass(frozen=True)
class _Fatal:
    message: str


@dataclass(frozen=True)
class _Log:
    level: int
    message: str


@dataclass(frozen=True)
class _Options:
    device: str
    progress_interval: float
    threads: int | None
    preload: tuple[str, str] | None
    log_level: int


def describe_exit(exitcode: int | None) -> str:
    """`killed by SIGKILL`, `exit code 1`, …"""
    if exitcode is None:
        return "no exit code"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    if exitcode == DEVICE_BROKEN_EXIT:
        return f"exit code {exitcode}: it stopped after a CUDA error"
    return f"exit code {exitcode}"


# --- the worker process -------------------------------------------------------------------


class _ParentGone(Exception):
    """The result pipe is broken: nobody is listening, so the worker stops."""


class _Channel:
    """The worker's end of the result pipe (used from the worker's main thread only)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def send(self, message: object) -> None:
        try:
            self.connection.send(message)
        except (BrokenPipeError, ConnectionResetError, EOFError) as error:
            raise _ParentGone from error


class _PipeLogHandler(logging.Handler):
    """Send the worker's log lines to the parent, which logs them under its own config."""

    def __init__(self, channel: _Channel) -> None:
        super().__init__()
        self.channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        with contextlib.suppress(_ParentGone):
            self.channel.send(_Log(record.levelno, message))


def _worker_main(
    jobs: multiprocessing.queues.Queue[tuple[int, Job] | None],
    results: Connection,
    cancel: Any,
    options: _Options,
) -> None:
    """The worker process: resolve the device, say ready, then serve jobs until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which stops us
    channel = _Channel(results)
    log.addHandler(_PipeLogHandler(channel))
    log.setLevel(options.log_level)
    log.propagate = False
    try:
        import torch

        from engine import models
        from engine.driver import cpu_fallback_warning

        device = models.resolve_device(options.device)
        if options.threads is not None:
            torch.set_num_threads(options.threads)
    except Exception as error:
        with contextlib.suppress(_ParentGone):
            channel.send(_Fatal(f"{type(error).__name__}: {error}"))
        return
    where, memory = describe_device(device)
    log.info("worker %d serving on %s, torch %s", os.getpid(), where, torch.__version__)
    gpu_warning = cpu_fallback_warning(options.device) if device.type == "cpu" else None
    if gpu_warning is not None:
        log.warning("%s", gpu_warning)

    parent = multiprocessing.parent_process()
    try:
        channel.send(_Ready(os.getpid(), str(device), memory, gpu_warning))
        painter = Painter(device, options.progress_interval)
        if options.preload is not None:
            channel.send(painter.preload(*options.preload))
        while True:
            try:
                item = jobs.get(timeout=1.0)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    return  # orphaned: free the GPU
                continue
            if item is None:
                _exit_at_once()
            _serve(painter, channel, *item, cancel)
    except _ParentGone:
        return
    except DeviceBroken:
        log.error("exiting after a CUDA error, for a fresh process and CUDA context")
        sys.exit(DEVICE_BROKEN_EXIT)


def _exit_at_once() -> NoReturn:
    """Told to stop: every picture is saved and every event sent, so skip the interpreter's
    teardown of torch's modules (most of a second on a busy CPU, which each stop, restart and
    test would wait for)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _serve(painter: Painter, channel: _Channel, seq: int, job: Job, cancel: Any) -> None:
    """Paint one job, sending what happens; the finished picture is saved here, in the
    worker process, where the job says. `cancel` holds the seq of the job to cancel."""
    for item in painter.paint(job, lambda: bool(cancel.value == seq)):
        if isinstance(item, Painted):
            channel.send(item.save(job.output))
        else:
            channel.send(item)


# --- the parent side ----------------------------------------------------------------------


@dataclass(eq=False)
class _Process:
    """One worker process and its two channels."""

    number: int  # 1 for the first process, 2 after the first restart, …
    process: BaseProcess
    jobs: multiprocessing.queues.Queue[tuple[int, Job] | None]
    results: Connection
    pid: int | None = None
    device: str | None = None
    device_memory: int | None = None
    gpu_warning: str | None = None
    models: tuple[str, ...] = ()
    ready: bool = False
    alive: bool = True
    fatal: str | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Running:
    seq: int
    job: Job
    since: float | None = None  # set by Started


class WorkerHandle:
    """The parent's handle on one worker process; every method is called on one event loop.

    ```
    handle = WorkerHandle("cuda:0")
    await handle.start()
    handle.submit(Job.of("42", request, "out/42.png"))
    async for event in handle.events():
        ...  # Started, Progress, Done, Failed, Cancelled
    await handle.stop()
    ```

    Parameters
    ----------
    device:
        "auto", "cpu", "cuda" or "cuda:N"; the worker runs every job there.
    progress_interval:
        The most seconds between Progress events (each reads the losses off the device).
    threads:
        torch.set_num_threads in the worker (CPU work); None leaves torch's default.
    preload:
        (vqgan, clip) names to load at start, so the first job does not wait for them.
    start_timeout:
        Seconds start() waits for the worker to import torch and resolve the device.
    """

    def __init__(
        self,
        device: str = "auto",
        *,
        progress_interval: float = 1.0,
        threads: int | None = None,
        preload: tuple[str, str] | None = None,
        start_timeout: float = 120.0,
    ) -> None:
        self.device = device
        self.options = _Options(
            device, progress_interval, threads, preload, log.getEffectiveLevel()
        )
        self.start_timeout = start_timeout
        self._context = multiprocessing.get_context("spawn")
        self._cancel = self._context.Value("q", -1)
        self._pending: collections.deque[Job] = collections.deque()
        self._ids: set[str] = set()  # submitted and not yet finished
        self._running: _Running | None = None
        self._process: _Process | None = None
        self._events: asyncio.Queue[object] = asyncio.Queue()
        self._seq = 0
        self._restarts = 0
        self._crash_streak = 0
        self._restart_task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._stop_once = StopOnce()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = self._stopping = self._closed = False
        self._error: str | None = None  # why it could not start
        self.on_ready: Callable[[], None] | None = None

    async def __aenter__(self) -> WorkerHandle:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # The public API ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the worker process and wait until it is ready (torch imported, device found).

        Raises WorkerError with the worker's reason (e.g. no such CUDA device).
        """
        if self._started:
            raise RuntimeError("this worker handle was already started")
        self._loop = asyncio.get_running_loop()
        self._ready = self._loop.create_future()
        begun = time.perf_counter()
        await self._spawn()
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), self.start_timeout)
        except TimeoutError:
            await self._kill_process()
            self._error = f"the worker did not start within {self.start_timeout:g} s"
            raise WorkerError(self._error) from None
        except WorkerError as error:
            await self._kill_process()
            self._error = str(error)
            raise
        self._started = True
        log.info(
            "worker ready in %.1f s: pid %s on %s",
            time.perf_counter() - begun,
            self._process and self._process.pid,
            self._process and self._process.device,
        )
        self._dispatch()

    def submit(self, job: Job) -> None:
        """Queue a job; it runs after those submitted before it. Never blocks."""
        if self._stopping:
            raise RuntimeError("the worker is stopping; it takes no more jobs")
        if job.job_id in self._ids:
            raise ValueError(f"job {job.job_id!r} is already queued or running")
        self._ids.add(job.job_id)
        self._pending.append(job)
        self._dispatch()

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued job (Cancelled at once) or the running one (Cancelled after at most
        one more iteration). False if the job is unknown or already finished."""
        for job in self._pending:
            if job.job_id == job_id:
                self._pending.remove(job)
                self._ids.discard(job_id)
                self._emit(Cancelled(job_id))
                return True
        if self._running is not None and self._running.job.job_id == job_id:
            self._cancel.value = self._running.seq
            return True
        return False

    async def events(self) -> AsyncIterator[Event]:
        """Every job event, in order, until stop(). One consumer at a time; after the end,
        an empty stream."""
        if self._closed and self._events.empty():
            return
        async for event in queued_events(self._events):
            yield event

    def health(self) -> Health:
        process = self._process
        running = self._running
        alive = process is not None and process.alive and process.ready
        return Health(
            alive=alive,
            pid=process.pid if process else None,
            device=process.device if process else None,
            job_id=running.job.job_id if running and running.since is not None else None,
            job_since=running.since if running else None,
            models=process.models if process else (),
            queued=len(self._pending),
            restarts=self._restarts,
            device_memory=process.device_memory if process else None,
            error=self._error,
            gpu_warning=process.gpu_warning if process else None,
        )

    async def stop(self, timeout: float = 10.0, *, finish_current: bool = False) -> list[Job]:
        """Stop the worker: let the running job finish (finish_current) or cancel it, ask the
        process to exit, terminate it after `timeout` seconds and kill it 2 s later.

        Returns the jobs that got no final event (never started, or cut off), for the caller
        to run later; a second call waits for the first and returns []. The event stream ends.
        """
        return await self._stop_once(lambda: self._stop(timeout, finish_current))

    async def _stop(self, timeout: float, finish_current: bool) -> list[Job]:
        self._stopping = True
        if self._restart_task is not None:
            self._restart_task.cancel()
        process = self._process
        if process is not None and process.alive:
            if self._running is not None and not finish_current:
                self._cancel.value = self._running.seq
            with contextlib.suppress(ValueError, OSError):
                process.jobs.put(None)
            try:
                await asyncio.wait_for(process.exited.wait(), timeout)
            except TimeoutError:
                log.warning("worker %s did not stop within %g s: terminating", process.pid, timeout)
                await self._kill_process(grace=2.0)
        unfinished = list(self._pending)
        if self._running is not None:
            unfinished.insert(0, self._running.job)
        self._pending.clear()
        self._running = None
        self._ids.clear()
        self._closed = True
        self._events.put_nowait(END_OF_EVENTS)
        return unfinished

    # Processes -----------------------------------------------------------------------------

    async def _spawn(self) -> None:
        """Start a fresh worker process with fresh channels, and a thread that reads them."""
        receive, send = self._context.Pipe(duplex=False)
        jobs: multiprocessing.queues.Queue[tuple[int, Job] | None] = self._context.Queue()
        process = self._context.Process(
            target=_worker_main,
            args=(jobs, send, self._cancel, self.options),
            name="doorways-worker",
            daemon=True,
        )
        number = self._process.number + 1 if self._process else 1
        record = _Process(number, process, jobs, receive)
        self._process = record
        await asyncio.to_thread(process.start)
        send.close()  # the worker holds the only writer now: its death reads as EOF
        record.pid = process.pid
        assert self._loop is not None
        threading.Thread(
            target=_read_results,
            args=(record, self._loop, self._on_message, self._on_exit),
            name=f"doorways-worker-reader-{number}",
            daemon=True,
        ).start()

    async def _kill_process(self, grace: float = 2.0) -> None:
        process = self._process
        if process is None or not process.alive:
            return
        with contextlib.suppress(OSError, ValueError):
            process.process.terminate()
        try:
            await asyncio.wait_for(process.exited.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(OSError, ValueError):
                process.process.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.exited.wait(), grace)

    def _dispatch(self) -> None:
        """Hand the next job to the worker if it is ready and idle."""
        process = self._process
        if (
            self._stopping
            or self._running is not None
            or not self._pending
            or process is None
            or not (process.ready and process.alive)
        ):
            return
        job = self._pending.popleft()
        self._seq += 1
        self._running = _Running(self._seq, job)
        process.jobs.put((self._seq, job))

    def _emit(self, event: Event) -> None:
        self._events.put_nowait(event)

    def _on_message(self, process: _Process, message: object) -> None:
        """A message from a worker, on the event loop (via call_soon_threadsafe)."""
        if process is not self._process:
            return
        if isinstance(message, _Log):
            log.log(message.level, "[worker %s] %s", process.pid, message.message)
        elif isinstance(message, _Ready):
            process.pid, process.device, process.ready = message.pid, message.device, True
            process.device_memory, process.gpu_warning = message.device_memory, message.gpu_warning
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            else:
                log.info("worker restarted: pid %s on %s", message.pid, message.device)
            self._dispatch()
            if self.on_ready is not None:
                self.on_ready()
        elif isinstance(message, Models):
            process.models = message.names
        elif isinstance(message, _Fatal):
            process.fatal = message.message
        elif isinstance(message, Started | Progress):
            if isinstance(message, Started) and self._running is not None:
                self._running.since = message.at
            self._emit(message)
        elif isinstance(message, TERMINAL):
            if self._running is not None and self._running.job.job_id == message.job_id:
                self._running = None
            self._ids.discard(message.job_id)
            self._crash_streak = 0
            self._emit(message)
            self._dispatch()

    def _on_exit(self, process: _Process, exitcode: int | None) -> None:
        """A worker process ended, on the event loop."""
        process.alive = False
        process.exited.set()
        with contextlib.suppress(OSError, ValueError):
            process.jobs.cancel_join_thread()
            process.jobs.close()
        if process is not self._process:
            return
        reason = describe_exit(exitcode)
        if not process.ready:
            message = process.fatal or f"the worker exited ({reason}) before it was ready"
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(WorkerError(message))
                return
        if self._stopping:
            log.info("worker %s stopped (%s)", process.pid, reason)
            return
        log.error(
            "worker %s died (%s)%s",
            process.pid,
            reason,
            f": {process.fatal}" if process.fatal else "",
        )
        running, self._running = self._running, None
        if running is not None:
            if running.since is None:  # handed over but never started: run it again
                self._pending.appendleft(running.job)
            else:
                self._ids.discard(running.job.job_id)
                self._emit(
                    Failed(
                        running.job.job_id,
                        "crash",
                        f"the worker process died ({reason}) while running this job; "
                        "it may work if tried again",
                    )
                )
        self._crash_streak += 1
        delay = 0.0 if self._crash_streak <= 1 else min(2.0 ** (self._crash_streak - 1), 60.0)
        self._restart_task = asyncio.ensure_future(self._restart(delay))

    async def _restart(self, delay: float) -> None:
        if delay:
            log.warning("restarting the worker in %g s", delay)
            await asyncio.sleep(delay)
        if self._stopping:
            return
        self._restarts += 1
        # Shielded: a stop() during the spawn must still find the new process and end it.
        await asyncio.shield(self._spawn())


def _read_results(
    process: _Process,
    loop: asyncio.AbstractEventLoop,
    on_message: Callable[[_Process, object], None],
    on_exit: Callable[[_Process, int | None], None],
) -> None:
    """Reader thread: pass the worker's messages to the loop, then report its exit.

    Waits on the pipe and the process sentinel together, so a dead worker is noticed at
    once; the pipe reads EOF when the worker dies, even in the middle of a message.
    """
    connection, sentinel = process.results, process.process.sentinel

    def forward(callback: Callable[..., None], *args: object) -> bool:
        try:
            loop.call_soon_threadsafe(callback, *args)
            return True
        except RuntimeError:  # the loop is closed: nobody is listening
            return False

    try:
        while True:
            ready = multiprocessing.connection.wait([connection, sentinel])
            if connection not in ready:  # exited: read what it left in the pipe, then stop
                while connection.poll(0):
                    forward(on_message, process, connection.recv())
                break
            try:
                message = connection.recv()
            except (EOFError, OSError):
                break
            except Exception:  # a message that does not unpickle: a bug, but keep reading
                log.exception("unreadable message from worker %s", process.pid)
                continue
            if not forward(on_message, process, message):
                break
    except (EOFError, OSError):  # the pipe ended while draining it
        pass
    finally:
        connection.close()
        process.process.join(5.0)
        if process.process.exitcode is None:  # closed its pipe but lives on: end it
            process.process.kill()
            process.process.join(5.0)
        forward(on_exit, process, process.process.exitcode)

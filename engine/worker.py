"""The GPU worker: one process per device that loads models once and runs jobs one at a time.

Two halves live here:

- the worker process (`_worker_main`, started with the multiprocessing `spawn` context):
  keeps the last-used VQGAN and CLIP resident, takes `(seq, Job)` items from its job
  queue, runs `engine.loop.generate` and sends plain picklable events back through a pipe;
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
import gc
import io
import logging
import math
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
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from engine.request import Request

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    import torch

    from engine.models import CLIP, VQGAN

log = logging.getLogger("doorways.worker")

FailureKind = Literal["bad_request", "out_of_memory", "model_missing", "crash", "internal"]
OOM_AREA_FACTOR = 0.7  # a job that ran out of memory is told to try 70% of its area


# --- jobs and events (plain data: they cross the process boundary) -----------------------


@dataclass(frozen=True)
class Job:
    """One unit of work: a request (as its JSON) and where its PNG goes."""

    job_id: str
    request_json: str
    output: str  # PNG path; a taken name gets _1, _2, … (outputs.save_png never overwrites)

    @classmethod
    def of(cls, job_id: str, request: Request, output: str | Path) -> Job:
        return cls(job_id, request.to_json(), str(output))


@dataclass(frozen=True)
class Started:
    """The worker picked the job up (before loading its models)."""

    type: ClassVar[str] = "started"
    job_id: str
    at: float  # wall-clock time.time()


@dataclass(frozen=True)
class Progress:
    """Now and then during a job: at most every `progress_interval` seconds, on the first
    and last iteration, and on every preview iteration (reading the losses waits for the GPU,
    so they are read only when reported)."""

    type: ClassVar[str] = "progress"
    job_id: str
    iteration: int  # 1-based
    total: int
    losses: dict[str, float]  # "prompt", the symmetry terms in use, and "total"
    it_per_s: float  # mean rate since the first iteration (the first includes warm-up)
    eta_s: float  # seconds until the last iteration at that rate
    preview_png: bytes | None = None  # on preview_every iterations only


@dataclass(frozen=True)
class Done:
    """The PNG is written. Timings: load_s loading models for this job (0 when resident),
    first_step_s from the end of loading to the end of the first iteration, total_s from
    pick-up to the saved file."""

    type: ClassVar[str] = "done"
    job_id: str
    paths: tuple[str, ...]  # the PNG, then its .txt call-string sidecar
    seed: int
    call_string: str
    load_s: float
    first_step_s: float
    total_s: float

    @property
    def png(self) -> str:
        return self.paths[0]


@dataclass(frozen=True)
class Failed:
    """The job cannot finish; `message` says what the user can do about it."""

    type: ClassVar[str] = "failed"
    job_id: str
    kind: FailureKind
    message: str


@dataclass(frozen=True)
class Cancelled:
    type: ClassVar[str] = "cancelled"
    job_id: str


Event = Started | Progress | Done | Failed | Cancelled
TERMINAL = (Done, Failed, Cancelled)


@dataclass(frozen=True)
class Health:
    """A snapshot of the worker, for a status command or a watchdog."""

    alive: bool  # a worker process is running and ready
    pid: int | None
    device: str | None  # as the worker resolved it: "cpu", "cuda:0", …
    job_id: str | None  # the running job
    job_since: float | None  # wall-clock time it started
    models: tuple[str, ...]  # resident models, "vqgan:NAME" and "clip:NAME"
    queued: int  # submitted jobs not yet handed to the worker
    restarts: int  # fresh processes started after a crash
    device_memory: int | None = None  # bytes of GPU memory in all; None on the CPU


class WorkerError(Exception):
    """The worker process could not be started (bad device, import failure, timeout)."""


# Messages only the handle sees.


@dataclass(frozen=True)
class _Ready:
    pid: int
    device: str
    device_memory: int | None


@dataclass(frozen=True)
class _Fatal:
    message: str


@dataclass(frozen=True)
class _Models:
    names: tuple[str, ...]


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


# --- sizes and errors ---------------------------------------------------------------------


def suggest_size(width: int, height: int, factor: float = OOM_AREA_FACTOR) -> tuple[int, int]:
    """A size with about `factor` of the area and the same aspect, in multiples of 16 px."""
    scale = math.sqrt(factor)
    return max(16, int(width * scale) // 16 * 16), max(16, int(height * scale) // 16 * 16)


def is_out_of_memory(error: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, or a RuntimeError that says it ran out of memory."""
    if type(error).__name__ == "OutOfMemoryError":  # torch.cuda / torch, without importing it
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "not enough memory" in text
    )


def is_device_failure(error: BaseException) -> bool:
    """A CUDA error other than running out of memory: the context is unusable from now on."""
    if is_out_of_memory(error):
        return False
    if type(error).__name__ == "AcceleratorError":  # torch >= 2.8 raises it for CUDA errors
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(
        mark in text
        for mark in ("cuda error", "cublas_status", "cudnn_status", "device-side assert")
    )


def oom_message(request: Request, device: str) -> str:
    width, height = request.size
    small_w, small_h = suggest_size(width, height)
    if (small_w, small_h) == (width, height):
        return f"too large for this GPU ({device}): try fewer cutouts than {request.cutn}"
    return (
        f"{width}×{height} is too large for this GPU ({device}): try at most "
        f"{small_w}×{small_h} (or fewer cutouts than {request.cutn})"
    )


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


class _DeviceBroken(Exception):
    """A CUDA error left the device unusable: the worker exits, and the handle restarts it."""


DEVICE_BROKEN_EXIT = 3  # the worker's exit code after a CUDA error


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


class _ModelCache:
    """The last-used VQGAN and CLIP, keyed by (name, device); another name replaces one."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.vqgan: tuple[tuple[str, str], VQGAN] | None = None
        self.clip: tuple[tuple[str, str], CLIP] | None = None

    def names(self) -> tuple[str, ...]:
        return tuple(
            f"{kind}:{entry[0][0]}"
            for kind, entry in (("vqgan", self.vqgan), ("clip", self.clip))
            if entry is not None
        )

    def get(self, vqgan_name: str, clip_name: str) -> tuple[VQGAN, CLIP]:
        """The two models, loading (after freeing the one it replaces) what is not resident."""
        from engine import models, registry

        for name in (vqgan_name, clip_name):  # fail before evicting what is resident
            if registry.is_registered(name):
                registry.weights_path(name)
        key = (vqgan_name, str(self.device))
        if self.vqgan is None or self.vqgan[0] != key:
            self.vqgan = None
            _free_memory(self.device)
            log.info("loading VQGAN %s on %s", vqgan_name, self.device)
            self.vqgan = (key, models.load_vqgan(vqgan_name, self.device))
        key = (clip_name, str(self.device))
        if self.clip is None or self.clip[0] != key:
            self.clip = None
            _free_memory(self.device)
            log.info("loading CLIP %s on %s", clip_name, self.device)
            self.clip = (key, models.load_clip(clip_name, self.device))
        return self.vqgan[1], self.clip[1]

    def clear(self) -> None:
        self.vqgan = self.clip = None
        _free_memory(self.device)


def _free_memory(device: torch.device) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _png_bytes(image: torch.Tensor) -> bytes:
    from engine.outputs import to_pil

    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG")
    return buffer.getvalue()


class _Server:
    """Runs jobs in the worker process and reports on them."""

    def __init__(
        self,
        device: torch.device,
        channel: _Channel,
        cancel: Any,  # multiprocessing Value("q"): the seq of the job to cancel
        options: _Options,
    ) -> None:
        self.device = device
        self.channel = channel
        self.cancel = cancel
        self.options = options
        self.models = _ModelCache(device)

    def cancelled(self, seq: int) -> bool:
        return bool(self.cancel.value == seq)

    def preload(self, vqgan: str, clip: str) -> None:
        try:
            self.models.get(vqgan, clip)
        except Exception as error:  # a missing model fails its jobs later, with the fix
            log.warning("could not preload %s + %s: %s", vqgan, clip, error)
        self.channel.send(_Models(self.models.names()))

    def run(self, seq: int, job: Job) -> None:
        """Run one job; always ends with exactly one terminal event."""
        if self.cancelled(seq):
            self.channel.send(Cancelled(job.job_id))
            return
        self.channel.send(Started(job.job_id, time.time()))
        try:
            outcome = self._run(seq, job)
        except _ParentGone:
            raise
        except Exception as error:
            log.exception("job %s failed", job.job_id)
            if is_device_failure(error):
                self.channel.send(
                    Failed(
                        job.job_id,
                        "crash",
                        f"the GPU failed ({type(error).__name__}: {error}); the worker restarts, "
                        "and the job may work if tried again",
                    )
                )
                raise _DeviceBroken from error
            outcome = Failed(
                job.job_id, "internal", f"internal error: {type(error).__name__}: {error}"
            )
        if isinstance(outcome, Failed) and outcome.kind == "out_of_memory":
            _free_memory(self.device)
        self.channel.send(outcome)
        log.info("job %s: %s", job.job_id, outcome.type)

    def _run(self, seq: int, job: Job) -> Done | Failed | Cancelled:
        from engine import registry
        from engine.loop import Finished, generate
        from engine.outputs import save_png
        from engine.registry import ModelError, ModelMissing

        picked = time.perf_counter()
        try:
            request = Request.from_json(job.request_json)
            request.check_inputs()
        except (ValueError, TypeError) as error:
            return Failed(job.job_id, "bad_request", str(error))

        try:
            vqgan, clip = self.models.get(request.vqgan, request.clip)
        except ModelMissing as error:
            return Failed(job.job_id, "model_missing", str(error))
        except ModelError as error:  # unreadable weights: the user's file, or ours
            names = (request.vqgan, request.clip)
            yours = any(n not in (*registry.vqgan_names(), *registry.clip_names()) for n in names)
            return Failed(job.job_id, "bad_request" if yours else "internal", str(error))
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            self.models.clear()
            return Failed(
                job.job_id,
                "out_of_memory",
                f"the models {request.vqgan} + {request.clip} do not fit in this GPU's memory "
                f"({self.device})",
            )
        finally:
            self.channel.send(_Models(self.models.names()))
        loaded = time.perf_counter()
        if self.cancelled(seq):
            return Cancelled(job.job_id)

        interval = self.options.progress_interval
        first_step_s = 0.0
        first_done = last_report = -math.inf
        steps = generate(request, vqgan, clip)
        try:
            for event in steps:
                if isinstance(event, Finished):
                    path = save_png(event.image, event.request, Path(job.output), str(self.device))
                    assert event.request.seed is not None
                    return Done(
                        job.job_id,
                        (str(path), str(path.with_suffix(".txt"))),
                        event.request.seed,
                        event.request.recipe().to_call_string(),
                        load_s=loaded - picked,
                        first_step_s=first_step_s,
                        total_s=time.perf_counter() - picked,
                    )
                now = time.perf_counter()
                due = (
                    event.image is not None
                    or event.iteration in (1, event.total)
                    or now - last_report >= interval
                )
                if due:
                    losses = event.loss_values()  # waits for the device
                    now = time.perf_counter()
                    if event.iteration == 1:
                        first_step_s, first_done = now - loaded, now
                    if event.iteration > 1 and now > first_done:
                        rate = (event.iteration - 1) / (now - first_done)
                    else:
                        rate = 1 / max(first_step_s, 1e-6)
                    self.channel.send(
                        Progress(
                            job.job_id,
                            event.iteration,
                            event.total,
                            losses,
                            it_per_s=rate,
                            eta_s=(event.total - event.iteration) / rate,
                            preview_png=None if event.image is None else _png_bytes(event.image),
                        )
                    )
                    last_report = now
                if self.cancelled(seq):
                    return Cancelled(job.job_id)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            return Failed(job.job_id, "out_of_memory", oom_message(request, str(self.device)))
        finally:
            steps.close()  # closing the loop's generator cancels it
        raise RuntimeError("the loop ended without a result")


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

        device = models.resolve_device(options.device)
        if options.threads is not None:
            torch.set_num_threads(options.threads)
    except Exception as error:
        with contextlib.suppress(_ParentGone):
            channel.send(_Fatal(f"{type(error).__name__}: {error}"))
        return
    where, memory = str(device), None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        where += f" ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
        memory = props.total_memory
    log.info("worker %d serving on %s, torch %s", os.getpid(), where, torch.__version__)

    parent = multiprocessing.parent_process()
    try:
        channel.send(_Ready(os.getpid(), str(device), memory))
        server = _Server(device, channel, cancel, options)
        if options.preload is not None:
            server.preload(*options.preload)
        while True:
            try:
                item = jobs.get(timeout=1.0)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    return  # orphaned: free the GPU
                continue
            if item is None:
                return
            server.run(*item)
    except _ParentGone:
        return
    except _DeviceBroken:
        log.error("exiting after a CUDA error, for a fresh process and CUDA context")
        sys.exit(DEVICE_BROKEN_EXIT)


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


_END = object()


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
        self._stopper: asyncio.Future[list[Job]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = self._stopping = self._closed = False

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
            raise WorkerError(f"the worker did not start within {self.start_timeout:g} s") from None
        except WorkerError:
            await self._kill_process()
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
        """Every job event, in order, until stop(). One consumer at a time."""
        while not (self._closed and self._events.empty()):
            item = await self._events.get()
            if item is _END:
                return
            yield cast("Event", item)

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
        )

    async def stop(self, timeout: float = 10.0, *, finish_current: bool = False) -> list[Job]:
        """Stop the worker: let the running job finish (finish_current) or cancel it, ask the
        process to exit, terminate it after `timeout` seconds and kill it 2 s later.

        Returns the jobs that got no final event (never started, or cut off), for the caller
        to run later; a second call waits for the first and returns []. The event stream ends.
        """
        first = self._stopper is None
        if self._stopper is None:
            self._stopper = asyncio.ensure_future(self._stop(timeout, finish_current))
        unfinished = await asyncio.shield(self._stopper)
        return unfinished if first else []

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
        self._events.put_nowait(_END)
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
            process.device_memory = message.device_memory
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            else:
                log.info("worker restarted: pid %s on %s", message.pid, message.device)
            self._dispatch()
        elif isinstance(message, _Models):
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

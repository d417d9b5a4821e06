"""Jobs and what becomes of them: plain data that crosses process and machine boundaries.

A `Job` goes to a worker; the worker answers with events — `Started`, `Progress`…, then one
of `Done`, `Failed`, `Cancelled`. `Worker` is what every kind of worker offers (a local
process, a Ray actor), and `Health` is how one is doing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, Protocol, cast

from engine.request import Request

log = logging.getLogger("doorways.worker")

FailureKind = Literal["bad_request", "out_of_memory", "model_missing", "crash", "internal"]


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
    loads_models: bool = False  # its models are not resident: loading them comes first


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
    paths: tuple[str, ...]  # the PNG, its .txt call-string sidecar, then any timelapse .gif
    seed: int
    call_string: str
    load_s: float
    first_step_s: float
    total_s: float
    pictures: tuple[str, ...] = ()  # a batch's pictures' PNGs (`paths` is their grid)

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
END_OF_EVENTS = object()  # a worker puts it on its event queue when it has stopped


async def queued_events(queue: asyncio.Queue[object]) -> AsyncIterator[Event]:
    """The events put on a worker's queue, in order, until END_OF_EVENTS."""
    while (item := await queue.get()) is not END_OF_EVENTS:
        yield cast("Event", item)


class StopOnce:
    """A worker's (or pool's) stop, run once: the first call runs it and gets its unfinished
    jobs; a later call waits for the same stop and gets [] (the jobs are handed back once).
    Shielded, so a caller cancelled while it waits does not cut the stop short."""

    def __init__(self) -> None:
        self._stopping: asyncio.Future[list[Job]] | None = None

    async def __call__(self, stop: Callable[[], Awaitable[list[Job]]]) -> list[Job]:
        first = self._stopping is None
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(stop())
        unfinished = await asyncio.shield(self._stopping)
        return unfinished if first else []


@dataclass(frozen=True)
class Painted:
    """A finished picture that is not on disk yet: the painter's last word on a job. Whoever
    receives it (the worker process, or the bot for a Ray actor on another machine) saves it
    where the job says, which makes it `Done`."""

    job_id: str
    png: bytes  # with the recipe in its metadata
    call_string: str
    seed: int
    load_s: float
    first_step_s: float
    total_s: float  # from pick-up to the encoded PNG
    timelapse_gif: bytes | None = None  # --timelapse: the painting forming, saved beside
    # A batch (--count): `png` is the grid; each picture's PNG and call string, in order.
    pictures: tuple[tuple[bytes, str], ...] = ()

    def save(self, output: str | Path) -> Done | Failed:
        """Write the PNG and its call string where the job said (never overwriting), or, when
        that folder cannot take it (disk full, removed), in a fallback folder, which the log
        names (engine.outputs.write_png_safely); a batch's pictures go beside the grid as
        `<grid>-1.png`, `<grid>-2.png`, …. Failed only if no folder can."""
        from engine.outputs import picture_path, write_png_safely

        begun = time.perf_counter()
        try:
            path, elsewhere = write_png_safely(self.png, self.call_string, Path(output))
            pictures = [
                write_png_safely(png, call, picture_path(path, index))
                for index, (png, call) in enumerate(self.pictures, start=1)
            ]
        except OSError as error:  # "could not save the picture anywhere (…each place…)"
            return Failed(self.job_id, "internal", str(error))
        for note in [elsewhere, *(where for _, where in pictures)]:
            if note is not None:
                log.warning("job %s: %s", self.job_id, note)
        paths: tuple[str, ...] = (str(path), str(path.with_suffix(".txt")))
        if self.timelapse_gif is not None:
            try:  # beside the PNG, under its name: whoever has the picture finds it
                path.with_suffix(".gif").write_bytes(self.timelapse_gif)
                paths += (str(path.with_suffix(".gif")),)
            except OSError as error:
                log.warning("job %s: could not save its timelapse: %s", self.job_id, error)
        return Done(
            self.job_id,
            paths,
            self.seed,
            self.call_string,
            load_s=self.load_s,
            first_step_s=self.first_step_s,
            total_s=self.total_s + time.perf_counter() - begun,
            pictures=tuple(str(saved) for saved, _ in pictures),
        )


@dataclass(frozen=True)
class Health:
    """A snapshot of one worker, for a status command or a watchdog."""

    alive: bool  # a worker is running and ready
    pid: int | None
    device: str | None  # as the worker resolved it: "cpu", "cuda:0", "cuda:0 on 10.0.0.7", …
    job_id: str | None  # the running job
    job_since: float | None  # wall-clock time it started
    models: tuple[str, ...]  # resident models, "vqgan:NAME" and "clip:NAME"
    queued: int  # submitted jobs not yet handed to the worker
    restarts: int  # fresh processes started after a crash
    device_memory: int | None = None  # bytes of GPU memory in all; None on the CPU
    error: str | None = None  # why it is not running (it could not start)
    gpu_warning: str | None = None  # on the CPU with an NVIDIA GPU torch cannot use: why, fix


class WorkerError(Exception):
    """A worker could not be started (bad device, import failure, timeout)."""


class Worker(Protocol):
    """One painter on one device, whatever carries its jobs (engine.worker.process: a local
    process; engine.worker.cluster: a Ray actor). Every method is called on one event loop
    and none blocks it; jobs given to a worker run one at a time, in order."""

    on_ready: Callable[[], None] | None  # called when it becomes ready, also after a restart

    async def start(self) -> None: ...
    def submit(self, job: Job) -> None: ...
    def cancel(self, job_id: str) -> bool: ...
    def events(self) -> AsyncIterator[Event]: ...
    def health(self) -> Health: ...
    async def stop(self, timeout: float = 10.0, *, finish_current: bool = False) -> list[Job]: ...

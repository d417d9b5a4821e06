"""The Ray backend: one Ray actor per GPU of a Ray cluster, so the bot paints on GPUs of
other machines without a network protocol of its own.

- `PainterActor` runs a Painter (engine.worker.painter) wherever Ray places it, loads the
  models once, and streams each job's items back as a streaming generator
  (`num_returns="streaming"`): Started, Progress (previews included), then the finished
  picture as PNG bytes with its call string. The bot saves it (`Painted.save`), so the
  SQLite store and the pictures on the bot's machine stay the single truth.
- `RayWorker` is the bot's side of one actor: the same `Worker` as a local process. An actor
  that dies (ray.kill, its machine gone) fails its job as a crash — the scheduler retries it
  once on another worker — and a fresh actor is asked for, which Ray places when a GPU is
  free somewhere in the cluster.
- `RayCluster` is the pool over them: it joins the cluster as a driver (`engine.cluster`:
  "auto" or "HEAD:6379"; not Ray Client's ray://, which cannot stream), starts one worker
  per GPU, and adds one whenever a node with more GPUs joins.

Ray is optional (`pip install 'doorways[ray]'`): it is imported only when a cluster is used.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.request import Request
from engine.worker.jobs import (
    END_OF_EVENTS,
    TERMINAL,
    Cancelled,
    Event,
    Failed,
    Health,
    Job,
    Painted,
    Started,
    WorkerError,
    queued_events,
)
from engine.worker.painter import DeviceBroken, Item, Models, Painter, input_paths
from engine.worker.pool import Pool

log = logging.getLogger("doorways.worker")

RAY_MISSING = "engine.cluster needs Ray on this machine: pip install 'doorways[ray]'"
RAY_CLIENT_REFUSED = (
    "Ray Client (ray://) cannot stream a painting's progress (Ray has no streaming actor "
    "methods over Ray Client): run the bot on a machine of the cluster and give auto, or "
    "the head's HEAD:6379"
)


# --- on the cluster -----------------------------------------------------------------------


@dataclass(frozen=True)
class ActorInfo:
    pid: int
    node: str  # the node's IP address
    device: str
    device_memory: int | None
    models: tuple[str, ...]


class PainterActor:
    """A painter on the device Ray gave this actor (with num_gpus=1 Ray makes it the only
    visible GPU). Threaded (max_concurrency): `cancel` and `watch` run beside `paint`."""

    def __init__(
        self,
        device: str,
        progress_interval: float,
        threads: int | None,
        preload: tuple[str, str] | None,
    ) -> None:
        import ray
        import torch

        from engine import models
        from engine.worker.painter import describe_device

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        if threads is not None:
            torch.set_num_threads(threads)
        self.device = models.resolve_device(device)
        where, memory = describe_device(self.device)
        self.painter = Painter(self.device, progress_interval)
        if preload is not None:
            self.painter.preload(*preload)
        self.cancel_seq = -1
        self.stopped = threading.Event()
        node = ray.get_runtime_context().get_node_id()
        address = next(  # the address the node joined the cluster with
            (n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node),
            ray.util.get_node_ip_address(),
        )
        self.info = ActorInfo(os.getpid(), address, str(self.device), memory, ())
        log.info("painter actor %d serving on %s", os.getpid(), where)

    def ready(self) -> ActorInfo:
        return ActorInfo(
            self.info.pid,
            self.info.node,
            self.info.device,
            self.info.device_memory,
            self.painter.models.names(),
        )

    def watch(self) -> None:
        """Returns only when the actor is stopped: its caller learns at once of its death."""
        self.stopped.wait()

    def cancel(self, seq: int) -> None:
        self.cancel_seq = seq

    def paint(self, seq: int, job: Job, files: dict[str, bytes]) -> Iterator[Item]:
        """Paint one job, yielding its items; `files` are the request's images, read on the
        bot's machine, written here for the painter."""
        folder = tempfile.mkdtemp(prefix="doorways-inputs-")
        try:
            inputs = {}
            for number, (path, data) in enumerate(files.items()):
                local = Path(folder) / f"{number}{Path(path).suffix}"
                local.write_bytes(data)
                inputs[path] = str(local)
            with contextlib.suppress(DeviceBroken):  # its Failed ("crash") went out: the
                # bot replaces this actor, for a fresh CUDA context
                yield from self.painter.paint(job, lambda: self.cancel_seq == seq, inputs)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def read_inputs(job: Job) -> dict[str, bytes]:
    """The image files the job's request reads, as bytes (they go to another machine)."""
    try:
        paths = input_paths(Request.from_json(job.request_json))
    except (ValueError, TypeError):
        return {}  # the painter says what is wrong with the request
    files = {}
    for path in paths:
        with contextlib.suppress(OSError):  # a missing file: the painter names it
            files[path] = Path(path).expanduser().read_bytes()
    return files


# --- on the bot's machine -----------------------------------------------------------------


@dataclass
class _Running:
    seq: int
    job: Job
    since: float | None = None
    finished: bool = False


class RayWorker:
    """The bot's handle on one painter actor: engine.worker.jobs.Worker over Ray.

    Parameters
    ----------
    make_actor:
        Creates the actor (Ray places it when its resources are free).
    start_timeout:
        Seconds start() waits for the first actor to be placed and ready.
    """

    def __init__(self, make_actor: Callable[[], Any], *, start_timeout: float = 300.0) -> None:
        self.make_actor = make_actor
        self.start_timeout = start_timeout
        self.on_ready: Callable[[], None] | None = None
        self._actor: Any = None
        self._info: ActorInfo | None = None
        self._alive = False
        self._pending: collections.deque[Job] = collections.deque()
        self._running: _Running | None = None
        self._task: asyncio.Task[None] | None = None
        self._restarter: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[object] = asyncio.Queue()
        self._seq = self._restarts = 0
        self._error: str | None = None
        self._stopping = False

    @property
    def actor(self) -> Any:
        """The Ray actor painting now (None while a new one is being placed)."""
        return self._actor

    async def start(self) -> None:
        """Place the actor and wait until it is ready; WorkerError if it is not in time."""
        try:
            await asyncio.wait_for(self._launch(), self.start_timeout)
        except TimeoutError:
            self._error = (
                f"no Ray actor was ready within {self.start_timeout:g} s "
                "(is a GPU free in the cluster?)"
            )
            raise WorkerError(self._error) from None
        except Exception as error:
            self._error = f"the Ray actor did not start: {error}"
            raise WorkerError(self._error) from error

    async def _launch(self) -> None:
        actor = self.make_actor()
        try:
            info = await actor.ready.remote()
        except BaseException:
            _kill(actor)
            raise
        self._actor, self._info, self._alive = actor, info, True
        log.info("painter actor ready: pid %s on %s at %s", info.pid, info.device, info.node)
        self._watcher = asyncio.create_task(self._watch(actor))
        self._dispatch()
        if self.on_ready is not None:
            self.on_ready()

    async def _watch(self, actor: Any) -> None:
        """Notice the actor's death even while it is idle."""
        import ray

        with contextlib.suppress(ray.exceptions.RayError):
            await actor.watch.remote()
        self._lost(actor, "the Ray actor died")

    def submit(self, job: Job) -> None:
        if self._stopping:
            raise RuntimeError("the worker is stopping; it takes no more jobs")
        self._pending.append(job)
        self._dispatch()

    def cancel(self, job_id: str) -> bool:
        for job in self._pending:
            if job.job_id == job_id:
                self._pending.remove(job)
                self._events.put_nowait(Cancelled(job_id))
                return True
        running = self._running
        if running is not None and running.job.job_id == job_id and self._alive:
            self._actor.cancel.remote(running.seq)
            return True
        return False

    def events(self) -> AsyncIterator[Event]:
        return queued_events(self._events)

    def health(self) -> Health:
        info, running = self._info, self._running
        if running is not None and running.finished:  # its stream is ending: no longer its job
            running = None
        return Health(
            alive=self._alive,
            pid=info.pid if info else None,
            device=f"{info.device} on {info.node}" if info else None,
            job_id=running.job.job_id if running and running.since is not None else None,
            job_since=running.since if running else None,
            models=info.models if info else (),
            queued=len(self._pending),
            restarts=self._restarts,
            device_memory=info.device_memory if info else None,
            error=self._error,
        )

    async def stop(self, timeout: float = 10.0, *, finish_current: bool = False) -> list[Job]:
        self._stopping = True
        if self._restarter is not None:
            self._restarter.cancel()
        running = self._running
        if running is not None and not finish_current and self._alive:
            self._actor.cancel.remote(running.seq)
        if self._task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
        unfinished = list(self._pending)
        if self._running is not None and not self._running.finished:
            unfinished.insert(0, self._running.job)
        self._pending.clear()
        self._alive = False
        if self._actor is not None:
            _kill(self._actor)
        self._events.put_nowait(END_OF_EVENTS)
        return unfinished

    # Inside --------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        if self._stopping or not self._alive or self._running is not None or not self._pending:
            return
        self._seq += 1
        self._running = _Running(self._seq, self._pending.popleft())
        self._task = asyncio.create_task(self._paint(self._running))

    async def _paint(self, running: _Running) -> None:
        """Stream one job's items from the actor; the actor's death fails it as a crash."""
        import ray

        actor, job = self._actor, running.job
        files = await asyncio.to_thread(read_inputs, job)
        crashed: str | None = None
        try:
            stream = actor.paint.options(num_returns="streaming").remote(running.seq, job, files)
            async for ref in stream:
                item = await ref
                if isinstance(item, Models):
                    self._info = self._info and _with_models(self._info, item.names)
                    continue
                if isinstance(item, Started):
                    running.since = item.at
                event = (
                    await asyncio.to_thread(item.save, job.output)
                    if isinstance(item, Painted)
                    else item
                )
                if isinstance(event, TERMINAL):
                    running.finished = True
                    if isinstance(event, Failed) and event.kind == "crash":
                        crashed = "its GPU failed"
                self._events.put_nowait(event)
        except ray.exceptions.RayTaskError as error:  # a bug inside the actor
            if not running.finished:
                running.finished = True
                self._events.put_nowait(Failed(job.job_id, "internal", f"internal error: {error}"))
        except ray.exceptions.RayError as error:  # the actor or its machine is gone
            log.error("painter actor on %s lost: %s", self._where(), error)
            if not running.finished:
                running.finished = True
                self._events.put_nowait(
                    Failed(
                        job.job_id,
                        "crash",
                        f"the GPU worker on {self._where()} went away (its machine left the "
                        "cluster, or its process died) while painting this job; it may work "
                        "if tried again",
                    )
                )
            crashed = "it died"
        finally:
            self._running = None
        if crashed is not None:
            self._lost(actor, crashed)
        else:
            self._dispatch()

    def _where(self) -> str:
        return self._info.node if self._info else "an unknown machine"

    def _lost(self, actor: Any, why: str) -> None:
        """The actor cannot paint any more: replace it (once per actor)."""
        if actor is not self._actor or self._stopping:
            return
        log.warning("painter actor on %s: %s; asking Ray for a new one", self._where(), why)
        self._alive = False
        _kill(actor)
        self._actor = None
        self._restarts += 1
        self._restarter = asyncio.create_task(self._relaunch())

    async def _relaunch(self) -> None:
        """A fresh actor, whenever Ray can place one (a GPU free somewhere)."""
        delay = 1.0
        while not self._stopping:
            try:
                await self._launch()
                return
            except Exception as error:
                log.warning("a new painter actor failed (%s); trying again in %g s", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)


def _with_models(info: ActorInfo, models: tuple[str, ...]) -> ActorInfo:
    return ActorInfo(info.pid, info.node, info.device, info.device_memory, models)


def _kill(actor: Any) -> None:
    import ray

    with contextlib.suppress(Exception):
        ray.kill(actor, no_restart=True)


class RayCluster(Pool):
    """The pool over a Ray cluster: one RayWorker per GPU, more as nodes join.

    Parameters
    ----------
    address:
        "auto" (the cluster this machine belongs to: `ray start --head` here), "HEAD:6379",
        or None to use the Ray this process is already connected to.
    device:
        The device inside each actor ("auto": its GPU, else the CPU).
    resource, per_worker:
        One worker per `per_worker` units of `resource` in the cluster: a GPU each by
        default (tests stand CPUs in for GPUs).
    watch_interval:
        Seconds between looks for new nodes.
    """

    def __init__(
        self,
        address: str | None,
        *,
        device: str = "auto",
        progress_interval: float = 1.0,
        threads: int | None = None,
        preload: tuple[str, str] | None = None,
        resource: str = "GPU",
        per_worker: float = 1.0,
        watch_interval: float = 10.0,
        start_timeout: float = 300.0,
    ) -> None:
        super().__init__()
        self.address = address
        self.options = (device, progress_interval, threads, preload)
        self.resource, self.per_worker = resource, per_worker
        self.watch_interval, self.start_timeout = watch_interval, start_timeout
        self._connected = False  # this pool connected to Ray (and disconnects at stop)
        self._watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            import ray
        except ImportError:
            raise WorkerError(RAY_MISSING) from None
        if self.address is not None and self.address.startswith("ray://"):
            raise WorkerError(RAY_CLIENT_REFUSED)
        if not ray.is_initialized():
            try:
                await asyncio.to_thread(
                    ray.init, address=self.address, namespace="doorways", log_to_driver=True
                )
            except Exception as error:
                raise WorkerError(
                    f"cannot join the Ray cluster at {self.address}: {error}"
                ) from None
            self._connected = True
        count = await asyncio.to_thread(self._capacity)
        if count == 0:
            raise WorkerError(f"the Ray cluster has no {self.resource} for a painter")
        for _ in range(count):
            self.add(self._worker())
        log.info("Ray cluster: %d painter(s), one per %s", count, self.resource)
        await super().start()
        self._watcher = asyncio.create_task(self._watch_nodes())

    async def stop(self, timeout: float = 10.0, *, finish_current: bool = False) -> list[Job]:
        if self._watcher is not None:
            self._watcher.cancel()
        unfinished = await super().stop(timeout, finish_current=finish_current)
        if self._connected:
            import ray

            self._connected = False
            await asyncio.to_thread(ray.shutdown)
        return unfinished

    def _capacity(self) -> int:
        import ray

        return int(ray.cluster_resources().get(self.resource, 0) // self.per_worker)

    def _worker(self) -> RayWorker:
        import ray

        if self.resource == "GPU":
            resources: dict[str, Any] = {"num_gpus": self.per_worker}
        elif self.resource == "CPU":
            resources = {"num_cpus": self.per_worker}
        else:
            resources = {"resources": {self.resource: self.per_worker}}
        remote: Any = ray.remote(PainterActor)
        options = self.options
        return RayWorker(
            lambda: remote.options(max_concurrency=3, max_restarts=0, **resources).remote(*options),
            start_timeout=self.start_timeout,
        )

    async def _watch_nodes(self) -> None:
        """Add a worker for each GPU a joining node brings."""
        while True:
            await asyncio.sleep(self.watch_interval)
            try:
                count = await asyncio.to_thread(self._capacity)
            except Exception as error:
                log.warning("cannot read the Ray cluster's resources: %s", error)
                continue
            for _ in range(count - len(self.workers)):
                log.info("a node joined the Ray cluster: one more painter")
                self.add(self._worker())

"""The Ray backend end to end, with the real scheduler and store.

First, Ray nodes coming and going (ray.cluster_utils.Cluster: several Ray nodes on this
machine, one CPU each standing in for a GPU): a node that joins gets a painter; a node that
goes away mid-job fails its job as a crash, the job is painted again on the node that is
left, and the lost painter waits for a place. It must be the first Ray session of the
process: after another has ended in the same process, its first actor is dropped before it
starts (seen with Ray 2.60; a bot connects to Ray once, so only tests meet this). Keeping
every Ray test in this one module, that test first, also keeps pytest-xdist from running two
Ray clusters at once (in two processes they starve each other's actors on two cores).

Then a Ray started by the test on this machine (two CPUs standing in for two GPUs, token
authentication on), two painter actors: jobs paint on the actors with progress and previews
streamed back and the pictures saved here; ray.kill of an actor mid-job retries its job on
the other; cancel reaches the actor. That Ray starts once (about 3 s); each test starts its
two actors (a torch import each)."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from PIL import Image

from bot.messages import CRASH_NOTE
from bot.scheduler import Scheduler
from bot.store import Job, Store
from engine.worker import Progress
from engine.worker.cluster import RayCluster, RayWorker
from tests.bot.test_pool import tiny_job, until
from tests.bot.test_scheduler import Reporter

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

pytestmark = pytest.mark.timeout(180)


class Watcher(Reporter):
    """The Reporter that also keeps each job's progress events and start time."""

    def __init__(self) -> None:
        super().__init__()
        self.progressed: dict[int, list[Progress]] = {}
        self.started_at: dict[int, float] = {}

    def started(self, job: Job, loading_models: bool) -> None:
        super().started(job, loading_models)
        self.started_at[job.id] = time.perf_counter()

    def progress(self, job: Job, event: Progress) -> None:
        self.progressed.setdefault(job.id, []).append(event)

    async def next_delivery(self) -> Job:
        return await asyncio.wait_for(self.delivered.get(), 90.0)


def painters(watch_interval: float) -> RayCluster:
    """A painter per CPU of the connected Ray, tiny models preloaded, progress every 0.1 s."""
    return RayCluster(
        None, device="cpu", threads=1, progress_interval=0.1, preload=("tiny", "tiny"),
        resource="CPU", watch_interval=watch_interval, start_timeout=90,
    )  # fmt: skip


# Nodes coming and going: the first Ray session of the process -------------------------------


@pytest.fixture
def nodes() -> Iterator[object]:
    """A head node with one CPU, this process connected to it; token authentication on."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(16))
        patch.delenv("RAY_AUTH_MODE", raising=False)
        cluster = cluster_utils.Cluster(
            initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
        )
        try:
            ray.init(address=cluster.address, log_to_driver=False)
            yield cluster
        finally:
            ray.shutdown()
            cluster.shutdown()


@pytest.mark.timeout(240)
async def test_a_node_that_joins_paints_and_one_that_leaves_loses_nothing(
    nodes: object, tmp_path: Path
) -> None:
    cluster = nodes
    store = await Store.open(tmp_path / "jobs.sqlite3")
    pool = painters(watch_interval=0.3)
    reporter = Watcher()
    scheduler = Scheduler(store, pool, reporter, outputs=tmp_path / "out")
    try:
        await scheduler.start()
        await until(lambda: scheduler.worker_ready, timeout=90)
        assert len(pool.workers) == 1
        joined = cluster.add_node(num_cpus=1)  # type: ignore[attr-defined]
        await until(lambda: len(pool.workers) == 2 and all(h.alive for h in pool.health()), 90)
        first, second = pool.workers  # the second's actor is on the node that joined

        held = await store.add(tiny_job(owner=1, iterations=2000))  # keeps the head's busy
        scheduler.wake()
        await until(lambda: first.health().job_id == str(held.id))
        victim = await store.add(tiny_job(owner=2, iterations=2000))
        scheduler.wake()
        await until(lambda: victim.id in reporter.progressed)
        assert second.health().job_id == str(victim.id)

        cluster.remove_node(joined)  # type: ignore[attr-defined]  # the GPU machine goes away
        await until(lambda: reporter.requeued_jobs, timeout=30)
        assert reporter.requeued_jobs[0].id == victim.id
        assert reporter.requeued_jobs[0].note_lines == [CRASH_NOTE]
        assert not second.health().alive and second.health().restarts == 1  # waits for a place
        await scheduler.cancel(held.id)
        await until(lambda: first.health().job_id == str(victim.id), timeout=30)
        await scheduler.cancel(victim.id)
        statuses = {(await reporter.next_delivery()).status for _ in range(2)}
        assert statuses == {"cancelled"}
    finally:
        await scheduler.stop(timeout=5)
        await store.close()


# One Ray, two actors --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """Ray on this machine with two CPUs, token authentication on (its token in the
    environment, not in ~/.ray)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(16))
        patch.delenv("RAY_AUTH_MODE", raising=False)
        ray.init(
            address="local",  # a new instance: never join another (a parallel test's, a user's)
            num_cpus=2,
            include_dashboard=False,
            namespace="doorways-test",
            log_to_driver=False,
        )
        try:
            assert os.environ.get("RAY_AUTH_MODE") == "token"  # ray.init turned it on
            yield
        finally:
            ray.shutdown()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "jobs.sqlite3")
    yield opened
    await opened.close()


@pytest.fixture
async def cluster(
    local_ray: None, store: Store, tmp_path: Path
) -> AsyncIterator[tuple[Scheduler, RayCluster, Watcher]]:
    """The scheduler over a RayCluster of two actors (a CPU each), paused until the test
    has queued its jobs."""
    pool = painters(watch_interval=0.5)
    reporter = Watcher()
    scheduler = Scheduler(store, pool, reporter, outputs=tmp_path / "out")
    await scheduler.pause()
    await scheduler.start()
    async with asyncio.timeout(90):
        while not scheduler.worker_ready:
            assert scheduler.worker_error is None, scheduler.worker_error
            await asyncio.sleep(0.05)
    yield scheduler, pool, reporter
    await scheduler.stop(timeout=5)


def worker_of(pool: RayCluster, job_id: int) -> RayWorker:
    [worker] = [w for w in pool.workers if w.health().job_id == str(job_id)]
    assert isinstance(worker, RayWorker)
    return worker


async def test_jobs_paint_on_the_actors_and_are_saved_here(
    store: Store, cluster: tuple[Scheduler, RayCluster, Watcher], tmp_path: Path
) -> None:
    """Two people's jobs paint at once on the two actors; progress and previews stream
    back; the pictures (with their call strings) are saved in the bot's outputs folder."""
    scheduler, pool, reporter = cluster
    health = pool.health()
    assert len(health) == 2 and all(h.alive for h in health)
    assert len({h.pid for h in health}) == 2, [h.device for h in health]
    assert all((h.device or "").startswith("cpu on ") for h in health)  # "cpu on NODE_IP"
    a = await store.add(tiny_job(owner=1, iterations=12, preview_every=4))
    b = await store.add(tiny_job(owner=2, iterations=12))
    await scheduler.resume()
    await until(lambda: len(reporter.started_at) == 2)
    assert len({worker_of(pool, a.id).actor, worker_of(pool, b.id).actor}) == 2
    done = {(await reporter.next_delivery()).id: None for _ in range(2)}
    assert set(done) == {a.id, b.id}
    for job in (a, b):
        row = await store.get(job.id)
        assert row is not None and row.status == "done" and row.output_path is not None
        png = Path(row.output_path)
        assert png.parent == tmp_path / "out" and png.is_file()
        with Image.open(png) as image:
            assert image.size == (64, 64)
            assert image.text["parameters"] == row.call_string  # type: ignore[attr-defined]
        assert png.with_suffix(".txt").read_text().strip() == row.call_string
        iterations = [p.iteration for p in reporter.progressed[job.id]]
        assert iterations[0] == 1 and iterations[-1] == 12
    previews = [p.preview_png for p in reporter.progressed[a.id] if p.preview_png]
    assert len(previews) == 3 and all(p.startswith(b"\x89PNG") for p in previews)
    assert all(h.models == ("vqgan:tiny", "clip:tiny") for h in pool.health())


async def test_ray_kill_mid_job_retries_the_job_on_the_other_actor(
    store: Store, cluster: tuple[Scheduler, RayCluster, Watcher]
) -> None:
    """ray.kill of the actor painting a job: the job fails as a crash and is queued again
    with the crash note; the other actor paints it; a new actor takes the killed one's
    place (restarts 1) and paints again."""
    scheduler, pool, reporter = cluster
    victim = await store.add(tiny_job(owner=1, iterations=400))
    await scheduler.resume()
    await until(lambda: victim.id in reporter.progressed)
    killed = worker_of(pool, victim.id)
    other = next(w for w in pool.workers if w is not killed)
    ray.kill(killed.actor)
    await until(lambda: reporter.requeued_jobs, timeout=10)
    assert reporter.requeued_jobs[0].note_lines == [CRASH_NOTE]
    await until(lambda: other.health().job_id == str(victim.id), timeout=10)
    await until(lambda: killed.health().alive, timeout=90)
    assert killed.health().restarts == 1 and other.health().restarts == 0
    await scheduler.cancel(victim.id)  # no need to wait for 400 iterations
    assert (await reporter.next_delivery()).status == "cancelled"
    again = await store.add(tiny_job(owner=2, iterations=6))
    scheduler.wake()
    await until(lambda: again.id in reporter.started_at)
    done = await reporter.next_delivery()
    assert done.id == again.id and done.status == "done"


async def test_cancel_reaches_the_actor(
    store: Store, cluster: tuple[Scheduler, RayCluster, Watcher]
) -> None:
    """Cancelling a job painting on an actor stops it within 2 s; the actor paints the next."""
    scheduler, pool, reporter = cluster
    doomed = await store.add(tiny_job(owner=1, iterations=1000))
    await scheduler.resume()
    await until(lambda: doomed.id in reporter.progressed)
    asked = time.perf_counter()
    assert await scheduler.cancel(doomed.id) is not None
    await until(lambda: doomed.id not in scheduler.running_job_ids, timeout=2)
    assert time.perf_counter() - asked < 2
    assert (await reporter.next_delivery()).status == "cancelled"
    assert not any(h.job_id for h in pool.health())
    after = await store.add(tiny_job(owner=2, iterations=4))
    scheduler.wake()
    assert (await reporter.next_delivery()).id == after.id

"""The scheduler feeding two real CPU worker processes (engine.worker.pool.local_pool with
"cpu" twice) from a real store: two people's jobs paint at the same time in fair turns, a
worker killed mid-job has its job retried on the other while only it restarts, and cancel
reaches the worker that paints the job."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.messages import CRASH_NOTE
from bot.scheduler import Scheduler
from bot.store import Job, NewJob, Store
from engine.prompts import Prompt
from engine.request import Request
from engine.worker import Health, Progress
from engine.worker.pool import Pool, local_pool
from tests.bot.test_scheduler import Reporter

pytestmark = pytest.mark.timeout(120)


class Watcher(Reporter):
    """The Reporter that also notes when each job started painting and its progress."""

    def __init__(self) -> None:
        super().__init__()
        self.started_at: dict[int, float] = {}
        self.progressed: set[int] = set()

    def started(self, job: Job, loading_models: bool) -> None:
        super().started(job, loading_models)
        self.started_at[job.id] = time.perf_counter()

    def progress(self, job: Job, event: Progress) -> None:
        self.progressed.add(job.id)

    async def next_delivery(self) -> Job:
        return await asyncio.wait_for(self.delivered.get(), 60.0)  # two workers share 2 cores


def tiny_job(owner: int, iterations: int, preview_every: int = 0) -> NewJob:
    """A person's job for the tiny models at 64×64, seeded by its owner."""
    request = Request(
        prompts=(Prompt("a door"),), size=(64, 64), iterations=iterations, seed=owner,
        vqgan="tiny", clip="tiny", cutn=2, preview_every=preview_every,
    )  # fmt: skip
    return NewJob("imagine", owner, 1, 2, request)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "jobs.sqlite3")
    yield opened
    await opened.close()


@pytest.fixture
async def two(store: Store, tmp_path: Path) -> AsyncIterator[tuple[Scheduler, Pool, Watcher]]:
    """A scheduler over two CPU workers, paused until the test has queued its jobs."""
    pool = local_pool(["cpu", "cpu"], threads=1, progress_interval=0.1, preload=("tiny", "tiny"))
    reporter = Watcher()
    scheduler = Scheduler(store, pool, reporter, outputs=tmp_path / "out")
    await scheduler.pause()
    await scheduler.start()
    async with asyncio.timeout(60):
        while not (scheduler.worker_ready and all(h.models for h in pool.health())):
            assert scheduler.worker_error is None, scheduler.worker_error
            await asyncio.sleep(0.05)
    yield scheduler, pool, reporter
    await scheduler.stop(timeout=5)


async def until(check: object, timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.02)


def painting(pool: Pool, job_id: int) -> Health:
    [health] = [h for h in pool.health() if h.job_id == str(job_id)]
    return health


async def test_two_people_paint_at_once_in_fair_turns(
    store: Store, two: tuple[Scheduler, Pool, Watcher]
) -> None:
    """A's three jobs, B's and C's one: A1 and B1 paint at the same time on the two workers,
    then C1, A2, A3 in turn as workers free up; every job is done and posted."""
    scheduler, pool, reporter = two
    a = [await store.add(tiny_job(owner=1, iterations=12)) for _ in range(3)]
    b = await store.add(tiny_job(owner=2, iterations=12))
    c = await store.add(tiny_job(owner=3, iterations=12))
    await scheduler.resume()
    await until(lambda: len(reporter.started_at) == 2)
    assert set(scheduler.running_job_ids) == set(reporter.started_at) == {a[0].id, b.id}
    pids = {painting(pool, a[0].id).pid, painting(pool, b.id).pid}
    assert len(pids) == 2  # two processes, one job each
    delivered = [await reporter.next_delivery() for _ in range(5)]
    assert all(job.status == "done" for job in delivered)
    order = sorted(reporter.started_at, key=reporter.started_at.__getitem__)
    assert order[:2] in ([a[0].id, b.id], [b.id, a[0].id])
    assert order[2:] == [c.id, a[1].id, a[2].id]
    done = {job.id: job for job in await store.jobs(["done"])}
    assert set(done) == {*(j.id for j in a), b.id, c.id}
    # The first two overlapped: each started before the other ended.
    first, second = (done[i] for i in order[:2])
    assert second.started_at is not None and first.finished_at is not None
    assert second.started_at < first.finished_at
    assert [h.restarts for h in pool.health()] == [0, 0]


async def test_a_killed_worker_retries_its_job_on_the_other_and_restarts_alone(
    store: Store, two: tuple[Scheduler, Pool, Watcher]
) -> None:
    """SIGKILL of the worker painting a job: the job goes at once to the other (idle)
    worker with the crash note and is done there; only the killed worker restarts, and
    afterwards both paint again."""
    scheduler, pool, reporter = two
    victim = await store.add(tiny_job(owner=1, iterations=400))
    await scheduler.resume()
    await until(lambda: victim.id in reporter.progressed)
    killed = painting(pool, victim.id)
    assert killed.pid is not None
    other = next(h.pid for h in pool.health() if h.pid != killed.pid)
    os.kill(killed.pid, signal.SIGKILL)
    await until(lambda: reporter.requeued_jobs, timeout=10)
    assert reporter.requeued_jobs[0].note_lines == [CRASH_NOTE]
    await until(lambda: victim.id in scheduler.running_job_ids, timeout=10)
    await until(lambda: any(h.job_id == str(victim.id) for h in pool.health()), timeout=10)
    assert painting(pool, victim.id).pid == other  # the retry went to the other worker
    await scheduler.cancel(victim.id)  # no need to wait for 400 iterations
    await until(lambda: all(h.alive for h in pool.health()), timeout=60)
    assert sorted(h.restarts for h in pool.health()) == [0, 1]
    assert killed.pid not in {h.pid for h in pool.health()}
    after = [await store.add(tiny_job(owner=n, iterations=20)) for n in (2, 3)]
    scheduler.wake()
    await until(lambda: {job.id for job in after} <= set(reporter.started_at), timeout=30)
    assert {painting(pool, job.id).pid for job in after} == {h.pid for h in pool.health()}
    outcomes = {(await reporter.next_delivery()).id for _ in range(3)}
    assert outcomes == {victim.id, *(job.id for job in after)}


async def test_cancel_reaches_the_worker_that_paints_the_job(
    store: Store, two: tuple[Scheduler, Pool, Watcher]
) -> None:
    """Two jobs painting on two workers: cancelling one stops it within 2 s; the other goes
    on to its picture."""
    scheduler, pool, reporter = two
    keep = await store.add(tiny_job(owner=1, iterations=60))
    doomed = await store.add(tiny_job(owner=2, iterations=1000))
    await scheduler.resume()
    await until(lambda: {keep.id, doomed.id} <= reporter.progressed)
    asked = time.perf_counter()
    assert await scheduler.cancel(doomed.id) is not None
    await until(lambda: doomed.id not in scheduler.running_job_ids, timeout=2)
    assert time.perf_counter() - asked < 2
    assert not any(h.job_id == str(doomed.id) for h in pool.health())
    assert keep.id in scheduler.running_job_ids
    delivered = [await reporter.next_delivery() for _ in range(2)]
    assert {(job.id, job.status) for job in delivered} == {
        (doomed.id, "cancelled"),
        (keep.id, "done"),
    }

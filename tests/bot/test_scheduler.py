"""The scheduler against a real SQLite store and a scripted stand-in for the pool of
workers: fair dispatch one job per free worker, crash retry once, start-up recovery, stop,
cancel, estimates."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.messages import CRASH_NOTE, RESUMED_NOTE
from bot.scheduler import INTERRUPTED_TWICE, TASK_KIND, Scheduler
from bot.speed import Speed, Timing
from bot.store import Job, NewJob, Store
from engine import worker as engine_worker
from engine.prompts import Prompt
from engine.request import Request
from engine.tasks import FolderRun, RunSettings, place_numbered
from engine.worker import (
    TERMINAL,
    Cancelled,
    Done,
    Event,
    Failed,
    Health,
    Progress,
    Started,
    WorkerError,
)


class FakeWorker:
    """A pool of `workers` that records submissions; the test plays the workers' events."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self.submitted: asyncio.Queue[engine_worker.Job] = asyncio.Queue()
        self.events_queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.cancelled: list[str] = []
        self.painting: set[str] = set()
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    @property
    def free(self) -> int:
        return self.workers - len(self.painting)

    def on_free(self, callback: Callable[[], None]) -> None:
        pass

    def submit(self, job: engine_worker.Job) -> None:
        assert self.free > 0, "the scheduler handed a job over while no worker was free"
        self.painting.add(job.job_id)
        self.submitted.put_nowait(job)

    def cancel(self, job_id: str) -> bool:
        self.cancelled.append(job_id)
        return True

    async def events(self) -> AsyncIterator[Event]:
        while (event := await self.events_queue.get()) is not None:
            yield event

    def health(self) -> tuple[Health, ...]:
        return (Health(True, 1, "cpu", None, None, (), 0, 0),) * self.workers

    async def stop(
        self, timeout: float = 10.0, *, finish_current: bool = False
    ) -> list[engine_worker.Job]:
        self.stopped = True
        self.events_queue.put_nowait(None)
        return []

    def emit(self, event: Event) -> None:
        if isinstance(event, TERMINAL):
            self.painting.discard(event.job_id)
        self.events_queue.put_nowait(event)

    async def next(self) -> int:
        """The id of the next job handed over (waits for it)."""
        job = await asyncio.wait_for(self.submitted.get(), 5.0)
        return int(job.job_id)

    def done(self, job_id: int) -> None:
        self.emit(Done(str(job_id), (f"/out/{job_id}.png", ""), 7, "call", 0.1, 0.1, 1.0))


class Reporter:
    """Records what people would be told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.delivered: asyncio.Queue[Job] = asyncio.Queue()
        self.requeued_jobs: list[Job] = []
        self.loading_models: list[bool] = []
        self.progress_events: list[Progress] = []

    def started(self, job: Job, loading_models: bool) -> None:
        self.calls.append(("started", job.id))
        self.loading_models.append(loading_models)

    def progress(self, job: Job, event: Progress) -> None:
        self.calls.append(("progress", job.id))
        self.progress_events.append(event)

    def requeued(self, job: Job) -> None:
        self.calls.append(("requeued", job.id))
        self.requeued_jobs.append(job)

    async def deliver(self, job: Job) -> None:
        self.calls.append(("deliver", job.id))
        self.delivered.put_nowait(job)

    async def close(self) -> None:
        self.calls.append(("close", 0))

    async def next_delivery(self) -> Job:
        return await asyncio.wait_for(self.delivered.get(), 5.0)


def new_job(owner: int, iterations: int = 10, count: int = 1) -> NewJob:
    request = Request(prompts=(Prompt("a door"),), size=(64, 64), iterations=iterations, seed=1,
                      count=count)  # fmt: skip
    return NewJob("imagine", owner, 1, 2, request)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "jobs.sqlite3")
    yield opened
    await opened.close()


@pytest.fixture
async def parts(
    store: Store, tmp_path: Path
) -> AsyncIterator[tuple[Scheduler, FakeWorker, Reporter]]:
    worker, reporter = FakeWorker(), Reporter()
    scheduler = Scheduler(store, worker, reporter, outputs=tmp_path / "out")
    yield scheduler, worker, reporter
    await scheduler.stop(timeout=1)


async def test_dispatches_one_at_a_time_in_fair_order(
    store: Store, parts: tuple[Scheduler, FakeWorker, Reporter]
) -> None:
    """A's three jobs and B's one: A1, B1, A2, A3, each only after the previous finished."""
    scheduler, worker, reporter = parts
    a = [await store.add(new_job(owner=1)) for _ in range(3)]
    b = await store.add(new_job(owner=2))
    await scheduler.start()
    order = []
    for _ in range(4):
        job_id = await worker.next()
        order.append(job_id)
        assert worker.submitted.empty()  # nothing else is handed over meanwhile
        worker.emit(Started(str(job_id), time.time()))
        worker.done(job_id)
        delivered = await reporter.next_delivery()
        assert delivered.id == job_id and delivered.status == "done"
    assert order == [a[0].id, b.id, a[1].id, a[2].id]
    assert ("started", a[0].id) in reporter.calls


async def test_a_finished_job_is_recorded_as_the_worker_reported_it(
    store: Store, parts: tuple[Scheduler, FakeWorker, Reporter]
) -> None:
    """Started, Progress and Done of a grid: the person is told the job started (and that
    models load first) and how far it is; the row keeps when it started, its picture, each
    picture of the grid, the seed, the call string and the timings (the estimates use them);
    the worker is free again and the next job goes to it. The worker was given the request
    and where to save the picture."""
    scheduler, worker, reporter = parts
    job = await store.add(new_job(owner=1, count=2))
    after = await store.add(new_job(owner=2))
    await scheduler.start()
    handed = await asyncio.wait_for(worker.submitted.get(), 5.0)
    assert (handed.job_id, handed.request_json) == (str(job.id), job.request_json)
    assert handed.output == str(scheduler.outputs / f"job-{job.id}.png")
    worker.emit(Started(str(job.id), 1234.5, loads_models=True))
    step = Progress(str(job.id), 5, 10, {"total": 0.5}, it_per_s=2.0, eta_s=2.5)
    worker.emit(step)
    grid, pictures = "/out/grid.png", ("/out/grid-1.png", "/out/grid-2.png")
    worker.emit(Done(str(job.id), (grid, "/out/grid.txt"), 42, "doorways generate x", 1.5, 0.25,
                     9.0, pictures))  # fmt: skip
    delivered = await reporter.next_delivery()
    assert delivered.id == job.id and delivered.status == "done"
    assert reporter.loading_models == [True] and reporter.progress_events == [step]
    row = await store.get(job.id)
    assert row is not None
    assert (row.started_at, row.output_path, row.pictures, row.seed, row.call_string) == (
        1234.5, grid, list(pictures), 42, "doorways generate x"
    )  # fmt: skip
    assert (row.load_s, row.first_step_s, row.total_s) == (1.5, 0.25, 9.0)
    assert await worker.next() == after.id
    assert scheduler.running_job_ids == (after.id,)


async def test_crash_is_retried_once_then_fails(
    store: Store, parts: tuple[Scheduler, FakeWorker, Reporter]
) -> None:
    """The first crash requeues the job (with a note, first in line); the second fails it."""
    scheduler, worker, reporter = parts
    job = await store.add(new_job(owner=1))
    other = await store.add(new_job(owner=2))
    await scheduler.start()
    assert await worker.next() == job.id
    worker.emit(Started(str(job.id), time.time()))
    worker.emit(Failed(str(job.id), "crash", "the worker process died (killed by SIGKILL)"))
    assert await worker.next() == job.id  # again, before the other person's job
    assert reporter.requeued_jobs[0].note_lines == [CRASH_NOTE]
    worker.emit(Started(str(job.id), time.time()))
    worker.emit(Failed(str(job.id), "crash", "the worker process died (killed by SIGKILL)"))
    failed = await reporter.next_delivery()
    assert failed.id == job.id and failed.status == "failed" and failed.attempts == 2
    assert failed.error is not None and "crashed on the retry too" in failed.error
    assert await worker.next() == other.id


async def test_other_failures_are_not_retried(
    store: Store, parts: tuple[Scheduler, FakeWorker, Reporter]
) -> None:
    scheduler, worker, reporter = parts
    job = await store.add(new_job(owner=1))
    await scheduler.start()
    await worker.next()
    worker.emit(Started(str(job.id), time.time()))
    worker.emit(Failed(str(job.id), "out_of_memory", "try at most 64×48"))
    failed = await reporter.next_delivery()
    assert (failed.status, failed.error_kind, failed.error) == (
        "failed",
        "out_of_memory",
        "try at most 64×48",
    )
    assert scheduler.running_job_ids == ()  # its worker is free again


async def test_start_recovers_interrupted_and_posts_undelivered(
    store: Store, parts: tuple[Scheduler, FakeWorker, Reporter]
) -> None:
    """At start: a job left running once goes first with a note; one left running on its
    retry fails and is posted; an outcome never posted is posted."""
    scheduler, worker, reporter = parts
    waiting = await store.add(new_job(owner=3))
    interrupted = await store.add(new_job(owner=1))
    twice = await store.add(new_job(owner=2))
    unposted = await store.add(new_job(owner=4))
    async with store.lock:
        db = store.db
        running = "UPDATE jobs SET status='running', attempts=? WHERE id=?"
        await db.execute(running, (1, interrupted.id))
        await db.execute(running, (2, twice.id))
        await db.execute("UPDATE jobs SET status='done' WHERE id=?", (unposted.id,))
    await scheduler.start()
    assert await worker.next() == interrupted.id
    delivered = {(await reporter.next_delivery()).id for _ in range(2)}
    assert delivered == {twice.id, unposted.id}
    given_up = await store.get(twice.id)
    assert given_up is not None and given_up.error == INTERRUPTED_TWICE  # what the person reads
    resumed = await store.get(interrupted.id)
    assert resumed is not None and resumed.note_lines == [RESUMED_NOTE]
    assert ("requeued", interrupted.id) in reporter.calls
    worker.done(interrupted.id)
    assert await worker.next() == waiting.id


async def test_stop_keeps_a_started_job_for_the_next_start(
    store: Store, parts: tuple[Scheduler, FakeWorker, Reporter]
) -> None:
    """A job that started stays `running` (resumed next time); one handed over but never
    started goes back to the queue untouched. The loops end and the worker stops."""
    scheduler, worker, _ = parts
    job = await store.add(new_job(owner=1))
    await scheduler.start()
    await worker.next()
    worker.emit(Started(str(job.id), time.time()))
    await asyncio.sleep(0.05)
    await scheduler.stop(timeout=1)
    assert worker.stopped
    kept = await store.get(job.id)
    assert kept is not None and kept.status == "running"


async def test_stop_unclaims_a_job_that_never_started(store: Store, tmp_path: Path) -> None:
    worker, reporter = FakeWorker(), Reporter()
    scheduler = Scheduler(store, worker, reporter, outputs=tmp_path)
    job = await store.add(new_job(owner=1))
    await scheduler.start()
    await worker.next()
    await scheduler.stop(timeout=1)
    back = await store.get(job.id)
    assert back is not None and back.status == "queued" and back.attempts == 0
    assert ("close", 0) in reporter.calls


async def test_cancel_running_and_queued(
    store: Store, parts: tuple[Scheduler, FakeWorker, Reporter]
) -> None:
    scheduler, worker, reporter = parts
    running = await store.add(new_job(owner=1))
    queued = await store.add(new_job(owner=2))
    last = await store.add(new_job(owner=3))
    await scheduler.start()
    assert await worker.next() == running.id
    worker.emit(Started(str(running.id), time.time()))
    cancelled = await scheduler.cancel(queued.id)
    assert cancelled is not None and cancelled.status == "cancelled"
    assert (await reporter.next_delivery()).id == queued.id
    assert await scheduler.cancel(running.id) is not None
    assert worker.cancelled == [str(running.id)]
    worker.emit(Cancelled(str(running.id)))
    assert await worker.next() == last.id
    assert scheduler.running_job_ids == (last.id,)  # the cancelled one is no longer painting
    assert await scheduler.cancel(running.id) is None  # already ended


async def test_pause_starts_nothing_new_until_resumed_even_after_a_restart(
    store: Store, tmp_path: Path
) -> None:
    """/admin pause: the painting job finishes, the next waits; a new scheduler on the same
    database is still paused; resume hands the waiting job over."""
    worker, reporter = FakeWorker(), Reporter()
    scheduler = Scheduler(store, worker, reporter, outputs=tmp_path)
    painting = await store.add(new_job(owner=1))
    waiting = await store.add(new_job(owner=2))
    await scheduler.start()
    assert await worker.next() == painting.id
    worker.emit(Started(str(painting.id), time.time()))
    assert await scheduler.pause() and not await scheduler.pause()  # the second: already
    worker.done(painting.id)
    assert (await reporter.next_delivery()).status == "done"
    await asyncio.sleep(0.2)
    assert worker.submitted.empty()
    await scheduler.stop(timeout=1)

    worker, reporter = FakeWorker(), Reporter()
    again = Scheduler(store, worker, reporter, outputs=tmp_path)
    await again.start()
    again.wake()
    await asyncio.sleep(0.2)
    assert again.paused and worker.submitted.empty()
    assert await again.resume() and not await again.resume()
    assert await worker.next() == waiting.id
    await again.stop(timeout=1)

    third = Scheduler(store, FakeWorker(), Reporter(), outputs=tmp_path)
    await third.start()  # the resume was kept too
    assert not third.paused
    await third.stop(timeout=1)


async def test_a_guilds_pause_holds_only_its_jobs(store: Store, tmp_path: Path) -> None:
    """/admin pause in guild 1: its jobs wait while guild 2's go on, and a batch still takes
    its turn; after a restart guild 1 is still paused; resume there hands its job over."""
    worker, reporter = FakeWorker(), Reporter()
    scheduler = Scheduler(store, worker, reporter, outputs=tmp_path)
    request = new_job(owner=1).request
    held = await store.add(NewJob("imagine", 1, 1, 2, request))
    other = await store.add(NewJob("imagine", 2, 2, 3, request))
    assert await scheduler.pause(1, by=7) and not await scheduler.pause(1, by=7)
    assert scheduler.holds(1) and not scheduler.holds(2) and not scheduler.holds(None)
    await scheduler.start()
    assert await worker.next() == other.id
    worker.done(other.id)
    await reporter.next_delivery()
    batch = folder_run(tmp_path, 1)
    running = asyncio.create_task(scheduler.run_batch(batch))
    assert await play(worker, 1) == ["nightly:a.txt#1"]  # held jobs do not block the batch
    await asyncio.wait_for(running, 5.0)
    batch.close()
    await asyncio.sleep(0.2)
    assert worker.submitted.empty()
    await scheduler.stop(timeout=1)

    worker, reporter = FakeWorker(), Reporter()
    again = Scheduler(store, worker, reporter, outputs=tmp_path)
    await again.start()
    await asyncio.sleep(0.2)
    assert again.holds(1) and worker.submitted.empty()
    assert await again.resume(1) and not again.holds(1)
    assert await worker.next() == held.id
    await again.stop(timeout=1)

    third = Scheduler(store, FakeWorker(), Reporter(), outputs=tmp_path)
    await third.start()  # the resume was kept too
    assert not third.holds(1)
    await third.stop(timeout=1)


async def test_estimate_uses_progress_and_history(
    store: Store, parts: tuple[Scheduler, FakeWorker, Reporter]
) -> None:
    scheduler, worker, _ = parts
    scheduler.speed = Speed(0.5)
    first = await store.add(new_job(owner=1, iterations=100))
    await scheduler.start()
    await worker.next()
    worker.emit(Progress(str(first.id), 50, 100, {}, it_per_s=2.0, eta_s=25.0))
    await asyncio.sleep(0.05)
    second = await store.add(new_job(owner=2, iterations=20))
    waiting = await store.waiting(second.id)
    assert waiting is not None and waiting.position == 2
    assert scheduler.estimate(second, waiting) == pytest.approx(25.0 + 20 * 0.5)
    grid = await store.add(new_job(owner=3, iterations=20, count=4))
    waiting = await store.waiting(grid.id)
    assert waiting is not None  # before it: the rest of the first job, then the second
    assert scheduler.estimate(grid, waiting) == pytest.approx(25.0 + 20 * 0.5 + 20 * 4 * 0.5)
    scheduler.speed = Speed(0.5, [Timing(64 * 64, 4.0, 20, count=4)])  # a batch was timed
    assert scheduler.estimate(grid, waiting) == pytest.approx(25.0 + 20 * 0.05 + 20 * 0.2)


async def test_estimate_waits_for_the_batch_painting(
    store: Store, parts: tuple[Scheduler, FakeWorker, Reporter], tmp_path: Path
) -> None:
    """The nightly batch's picture on the one worker: a person's wait starts with what is left
    of it (its progress says 30 s; before its first progress, nothing is known of it)."""
    scheduler, worker, _ = parts
    scheduler.speed = Speed(0.5)
    await scheduler.start()
    batch = folder_run(tmp_path, 2)
    running = asyncio.create_task(scheduler.run_batch(batch))
    painting = await asyncio.wait_for(worker.submitted.get(), 5.0)
    job = await store.add(new_job(owner=1, iterations=20))
    waiting = await store.waiting(job.id)
    assert waiting is not None
    assert scheduler.estimate(job, waiting) == pytest.approx(20 * 0.5)  # no progress yet
    worker.emit(Progress(painting.job_id, 1, 2, {}, it_per_s=0.1, eta_s=30.0))
    await asyncio.sleep(0.05)
    assert scheduler.estimate(job, waiting) == pytest.approx(30.0 + 20 * 0.5)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    batch.close()


def folder_run(tmp_path: Path, count: int) -> FolderRun:
    """A real task folder run (what the bot's nightly work is) of one task file with `count`
    pictures, opened: job ids nightly:a.txt#1 … (a crash's retry: nightly:a.txt#N~2)."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    task = {"text": ["a door"], "out_file": ["door"], "out_folder": ["output"],
            "each": count, "iterations": [2], "resolution": [64, 64]}  # fmt: skip
    (tasks / "a.txt").write_text(json.dumps(task))
    settings = RunSettings(out_root=tmp_path / "out", vqgan="tiny", clip="tiny", device="cpu")
    return FolderRun(tasks, settings, job_prefix="nightly:").open()


def painted(job: engine_worker.Job) -> Done:
    """What the worker says when it has painted `job`: it wrote the picture and its .txt."""
    png = Path(job.output)
    png.write_bytes(b"a picture of " + job.job_id.encode())
    png.with_suffix(".txt").write_text(f"call of {job.job_id}")
    return Done(job.job_id, (str(png), str(png.with_suffix(".txt"))), 7, "call", 0.1, 0.1, 1.0)


async def play(worker: FakeWorker, count: int) -> list[str]:
    """Let the worker finish `count` jobs in turn; the ids handed over, in order."""
    order = []
    for _ in range(count):
        job = await asyncio.wait_for(worker.submitted.get(), 5.0)
        assert worker.submitted.empty()  # one at a time
        order.append(job.job_id)
        worker.emit(Started(job.job_id, time.time()))
        worker.emit(painted(job) if job.job_id.startswith("nightly:") else done_event(job))
    return order


def done_event(job: engine_worker.Job) -> Done:
    return Done(job.job_id, (job.output, ""), 7, "call", 0.1, 0.1, 1.0)


def pictures(tmp_path: Path) -> list[str]:
    """What the run's finished pictures say they are, in OUT_FILE_N order."""
    output = tmp_path / "out" / "output"
    names = sorted(output.glob("door_*.png"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    return [p.read_text().removeprefix("a picture of ") for p in names]


async def test_a_batch_takes_turns_as_one_more_owner(
    store: Store, parts: tuple[Scheduler, FakeWorker, Reporter], tmp_path: Path
) -> None:
    """A batch of 4 beside A's three jobs and B's one: people never served go first, then the
    batch and the people in turn (A1 B1 n1 A2 n2 A3 n3 n4), one job at a time; run_batch
    returns when the batch is over, having recorded every event of its jobs."""
    scheduler, worker, reporter = parts
    await scheduler.pause()
    a = [await store.add(new_job(owner=1)) for _ in range(3)]
    b = await store.add(new_job(owner=2))
    await scheduler.start()
    batch = folder_run(tmp_path, 4)
    running = asyncio.create_task(scheduler.run_batch(batch))
    await asyncio.sleep(0.05)
    assert worker.submitted.empty()  # paused: neither people's jobs nor the batch's
    await scheduler.resume()
    order = await play(worker, 8)
    await asyncio.wait_for(running, 5.0)
    a1, a2, a3 = (str(job.id) for job in a)
    assert order == [
        a1, str(b.id), "nightly:a.txt#1", a2, "nightly:a.txt#2", a3, "nightly:a.txt#3",
        "nightly:a.txt#4",
    ]  # fmt: skip
    assert pictures(tmp_path) == [f"nightly:a.txt#{n}" for n in range(1, 5)]
    assert batch.close().finished == ["a.txt"]  # every picture recorded: a.txt.done
    assert all(("started", job.id) in reporter.calls for job in (*a, b))  # people's as ever
    assert batch.idle and scheduler.batch_job_ids == ()


async def test_a_batch_alone_runs_through_and_a_crash_is_handed_out_again(
    store: Store, parts: tuple[Scheduler, FakeWorker, Reporter], tmp_path: Path
) -> None:
    """With nobody waiting the batch runs back to back; a job queued meanwhile gets the next
    turn; a worker crash goes back to the real FolderRun, which hands the picture out again as
    a.txt#1~2, and the scheduler follows the new id to the end of the run."""
    scheduler, worker, _ = parts
    await scheduler.start()
    batch = folder_run(tmp_path, 3)
    running = asyncio.create_task(scheduler.run_batch(batch))
    first = await asyncio.wait_for(worker.submitted.get(), 5.0)
    assert first.job_id == "nightly:a.txt#1"
    person = await store.add(new_job(owner=1))
    scheduler.wake()
    worker.emit(Started(first.job_id, time.time()))
    worker.emit(Failed(first.job_id, "crash", "the worker process died"))
    order = await play(worker, 4)
    await asyncio.wait_for(running, 5.0)
    assert order == [str(person.id), "nightly:a.txt#1~2", "nightly:a.txt#2", "nightly:a.txt#3"]
    assert pictures(tmp_path) == ["nightly:a.txt#1~2", "nightly:a.txt#2", "nightly:a.txt#3"]
    summary = batch.close()
    assert summary.finished == ["a.txt"] and not summary.failed
    assert scheduler.batch_job_ids == ()


async def test_a_batch_picture_that_crashes_twice_fails_and_the_run_goes_on(
    store: Store, parts: tuple[Scheduler, FakeWorker, Reporter], tmp_path: Path
) -> None:
    """A worker crash on the retry too: that picture is failed (a_ERROR.txt says why), the
    others are painted, and people's jobs go on afterwards."""
    scheduler, worker, _ = parts
    await scheduler.start()
    batch = folder_run(tmp_path, 2)
    running = asyncio.create_task(scheduler.run_batch(batch))
    for job_id in ("nightly:a.txt#1", "nightly:a.txt#1~2"):
        job = await asyncio.wait_for(worker.submitted.get(), 5.0)
        assert job.job_id == job_id
        worker.emit(Started(job_id, time.time()))
        worker.emit(Failed(job_id, "crash", "the worker process died (killed by SIGKILL)"))
    assert await play(worker, 1) == ["nightly:a.txt#2"]
    await asyncio.wait_for(running, 5.0)
    summary = batch.close()
    assert pictures(tmp_path) == ["nightly:a.txt#2"] and len(summary.failed) == 1
    report = (tmp_path / "tasks" / "a_ERROR.txt").read_text()
    assert "killed by SIGKILL" in report and (tmp_path / "tasks" / "a.txt.done").exists()
    person = await store.add(new_job(owner=1))
    scheduler.wake()
    assert await worker.next() == person.id


async def test_cancelling_a_batch_cancels_its_picture(
    store: Store, parts: tuple[Scheduler, FakeWorker, Reporter], tmp_path: Path
) -> None:
    """run_batch cancelled (the bot stopping its nightly run): the picture being painted is
    cancelled in the worker, and once its Cancelled event comes people's jobs go on."""
    scheduler, worker, _ = parts
    await scheduler.start()
    batch = folder_run(tmp_path, 2)
    running = asyncio.create_task(scheduler.run_batch(batch))
    job = await asyncio.wait_for(worker.submitted.get(), 5.0)
    person = await store.add(new_job(owner=1))
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert worker.cancelled == [job.job_id]
    worker.emit(Cancelled(job.job_id))
    scheduler.wake()
    assert await worker.next() == person.id
    batch.close()


async def test_estimate_counts_the_workers(store: Store, tmp_path: Path) -> None:
    """Two workers: a waiting job starts when the first of them frees up, and the jobs
    before it fill the workers in line order."""
    worker, reporter = FakeWorker(workers=2), Reporter()
    scheduler = Scheduler(store, worker, reporter, outputs=tmp_path, seconds_per_iteration=0.5)
    await scheduler.pause()
    first = await store.add(new_job(owner=1, iterations=100))
    second = await store.add(new_job(owner=2, iterations=100))
    await scheduler.start()
    await scheduler.resume()
    handed = {await worker.next(), await worker.next()}
    assert handed == {first.id, second.id}  # both at once, one per worker
    worker.emit(Progress(str(first.id), 50, 100, {}, it_per_s=2.0, eta_s=25.0))
    worker.emit(Progress(str(second.id), 80, 100, {}, it_per_s=2.0, eta_s=10.0))
    await asyncio.sleep(0.05)
    third = await store.add(new_job(owner=3, iterations=20))
    fourth = await store.add(new_job(owner=4, iterations=20))
    for job, expected in ((third, 10.0 + 10.0), (fourth, 20.0 + 10.0)):
        waiting = await store.waiting(job.id)
        assert waiting is not None
        assert scheduler.estimate(job, waiting) == pytest.approx(expected)
    await scheduler.stop(timeout=1)


async def test_a_batch_uses_every_free_worker(store: Store, tmp_path: Path) -> None:
    """Two workers and nobody waiting: the batch's first two pictures paint at once; a
    person's job queued meanwhile takes the next free worker before the batch's third."""
    worker, reporter = FakeWorker(workers=2), Reporter()
    scheduler = Scheduler(store, worker, reporter, outputs=tmp_path)
    await scheduler.start()
    batch = folder_run(tmp_path, 3)
    running = asyncio.create_task(scheduler.run_batch(batch))
    first = await asyncio.wait_for(worker.submitted.get(), 5.0)
    second = await asyncio.wait_for(worker.submitted.get(), 5.0)
    assert (first.job_id, second.job_id) == ("nightly:a.txt#1", "nightly:a.txt#2")
    assert set(scheduler.batch_job_ids) == {first.job_id, second.job_id}
    person = await store.add(new_job(owner=1))
    scheduler.wake()
    worker.emit(painted(first))
    assert await worker.next() == person.id
    worker.done(person.id)
    worker.emit(painted(second))
    third = await asyncio.wait_for(worker.submitted.get(), 5.0)
    assert third.job_id == "nightly:a.txt#3"
    worker.emit(painted(third))
    await asyncio.wait_for(running, 5.0)
    assert batch.idle and scheduler.batch_job_ids == ()
    assert batch.close().finished == ["a.txt"]
    await scheduler.stop(timeout=1)


async def test_a_pause_lets_the_batch_finish_its_last_picture_and_end(
    store: Store, parts: tuple[Scheduler, FakeWorker, Reporter], tmp_path: Path
) -> None:
    """/admin pause while the nightly run's last picture paints: the picture is recorded and
    the run is over (run_batch returns) without waiting for a resume."""
    scheduler, worker, _ = parts
    await scheduler.start()
    batch = folder_run(tmp_path, 1)
    running = asyncio.create_task(scheduler.run_batch(batch))
    last = await asyncio.wait_for(worker.submitted.get(), 5.0)
    await scheduler.pause()
    worker.emit(painted(last))
    await asyncio.wait_for(running, 5.0)
    assert pictures(tmp_path) == ["nightly:a.txt#1"]
    assert batch.close().finished == ["a.txt"]


async def test_a_batch_with_nothing_to_hand_out_gives_its_turn_to_people(
    store: Store, tmp_path: Path
) -> None:
    """Two workers; the batch's only picture paints on one. A person served since the batch
    was (so it is the batch's turn) queues a job: the batch has nothing more to give, so the
    job takes the free worker at once."""
    worker, reporter = FakeWorker(workers=2), Reporter()
    scheduler = Scheduler(store, worker, reporter, outputs=tmp_path)
    await scheduler.start()
    batch = folder_run(tmp_path, 1)
    running = asyncio.create_task(scheduler.run_batch(batch))
    picture = await asyncio.wait_for(worker.submitted.get(), 5.0)
    first = await store.add(new_job(owner=1))
    scheduler.wake()
    assert await worker.next() == first.id
    worker.emit(Started(str(first.id), time.time() + 1))  # served after the batch
    worker.done(first.id)
    await reporter.next_delivery()
    second = await store.add(new_job(owner=1))
    scheduler.wake()
    assert await worker.next() == second.id
    worker.emit(painted(picture))
    await asyncio.wait_for(running, 5.0)
    batch.close()
    await scheduler.stop(timeout=1)


class BrokenBatch:
    """A batch whose folder can no longer be read: handing out its next job raises, and then
    it has nothing left to do."""

    def __init__(self) -> None:
        self.tried = False

    def next_job(self) -> engine_worker.Job | None:
        self.tried = True
        raise OSError("the task folder is gone")

    def owns(self, job_id: str) -> bool:
        return False

    def record(self, event: Event) -> None:
        raise AssertionError("nothing was handed out")

    @property
    def idle(self) -> bool:
        return self.tried


async def test_a_batch_that_fails_to_hand_out_a_job_ends_and_people_go_on(
    store: Store, parts: tuple[Scheduler, FakeWorker, Reporter]
) -> None:
    """A batch's next_job raises (its folder is gone): the run ends (run_batch returns) and
    people's jobs are handed over as before."""
    scheduler, worker, _ = parts
    await scheduler.start()
    await asyncio.wait_for(scheduler.run_batch(BrokenBatch()), 5.0)
    person = await store.add(new_job(owner=1))
    scheduler.wake()
    assert await worker.next() == person.id


async def test_an_interrupted_job_resumes_before_the_batch(
    store: Store, parts: tuple[Scheduler, FakeWorker, Reporter], tmp_path: Path
) -> None:
    """After a restart, a person's job that was painting goes back to a worker before the
    nightly batch's pictures, though the batch has never been served."""
    scheduler, worker, _ = parts
    await scheduler.pause()
    served = await store.add(new_job(owner=1))
    async with store.lock:
        await store.db.execute(
            "UPDATE jobs SET status='running', attempts=1, started_at=? WHERE id=?",
            (time.time(), served.id),
        )
    await scheduler.start()  # requeues it, first, with the "resumed" note
    batch = folder_run(tmp_path, 1)
    running = asyncio.create_task(scheduler.run_batch(batch))
    await asyncio.sleep(0.05)  # the batch waits its turn too
    assert worker.submitted.empty()
    await scheduler.resume()
    assert await play(worker, 2) == [str(served.id), "nightly:a.txt#1"]
    await asyncio.wait_for(running, 5.0)
    batch.close()


async def test_a_batch_started_while_stopping_returns_at_once(
    store: Store, parts: tuple[Scheduler, FakeWorker, Reporter], tmp_path: Path
) -> None:
    """The nightly run's turn comes as the bot shuts down: run_batch returns, hands nothing
    out, and does not hold the shutdown."""
    scheduler, worker, _ = parts
    await scheduler.start()
    await scheduler.stop(timeout=1)
    batch = folder_run(tmp_path, 1)
    await asyncio.wait_for(scheduler.run_batch(batch), 1.0)
    assert worker.submitted.empty()
    batch.close()


def task_job(owner: int, output: str, count: int = 1) -> NewJob:
    """A job of an uploaded task file (/task), whose pictures go to `output` in its folder:
    one, or a batch of `count`."""
    request = Request(prompts=(Prompt("a door"),), size=(64, 64), iterations=2, output=output,
                      seed=10, count=count)  # fmt: skip
    return NewJob(TASK_KIND, owner, 1, 2, request)


def painted_batch(job: engine_worker.Job, count: int, attempt: str = "") -> Done:
    """What a worker says when it has painted the batch `job`: the grid and each picture,
    saved as the worker saves them (engine.worker.Painted.save: hidden names for a /task
    job), each picture's PNG `picture I of <job><attempt>`."""
    pictures = tuple(
        (f"picture {i} of {job.job_id}{attempt}".encode(), f"call {i} of {job.job_id}")
        for i in range(1, count + 1)
    )
    done = engine_worker.Painted(
        job.job_id, b"the grid", "grid call", 10, 0.1, 0.1, 1.0, pictures=pictures
    ).save(job.output)
    assert isinstance(done, Done)
    return done


async def test_a_task_batch_numbers_each_picture_in_order_and_keeps_its_grid_apart(
    store: Store, parts: tuple[Scheduler, FakeWorker, Reporter], tmp_path: Path
) -> None:
    """A /task batch of 3: its pictures are named door_N.png (+ .txt) in picture order after
    the ones there, the store's picture paths point at them, and the grid (with its .txt) goes
    where every grid goes, OUTPUTS/job-<id>.png; no hidden file is left."""
    scheduler, worker, reporter = parts
    folder = tmp_path / "out" / "tasks" / "7" / "doors"
    folder.mkdir(parents=True)
    (folder / "door_1.png").write_bytes(b"an earlier picture")
    job = await store.add(task_job(7, "doors/door.png", count=3))
    await scheduler.start()
    handed = await asyncio.wait_for(worker.submitted.get(), 5.0)
    assert Path(handed.output).parent == folder and Path(handed.output).name.startswith(".")
    worker.emit(painted_batch(handed, 3))
    done = await reporter.next_delivery()
    grid = tmp_path / "out" / f"job-{job.id}.png"
    assert done.output_path == str(grid) and grid.read_bytes() == b"the grid"
    assert grid.with_suffix(".txt").read_text().strip() == "grid call"
    assert done.pictures == [str(folder / f"door_{n}.png") for n in (2, 3, 4)]
    for index, number in enumerate((2, 3, 4), start=1):
        assert (
            folder / f"door_{number}.png"
        ).read_bytes() == f"picture {index} of {job.id}".encode()
        assert (folder / f"door_{number}.txt").read_text().strip() == f"call {index} of {job.id}"
    assert (folder / "door_1.png").read_bytes() == b"an earlier picture"
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []


async def test_a_task_batch_cut_short_by_a_crash_is_painted_and_numbered_once(
    store: Store, parts: tuple[Scheduler, FakeWorker, Reporter], tmp_path: Path
) -> None:
    """The worker crashed while saving a batch (its grid and first picture written under
    their hidden names): the batch is painted again, what the crash left is cleared, and
    its pictures are numbered once, door_1 and door_2."""
    scheduler, worker, reporter = parts
    folder = tmp_path / "out" / "tasks" / "7" / "doors"
    job = await store.add(task_job(7, "doors/door.png", count=2))
    await scheduler.start()
    handed = await asyncio.wait_for(worker.submitted.get(), 5.0)
    worker.emit(Started(handed.job_id, time.time()))
    painted_batch(handed, 2, " (crashed)")
    Path(handed.output.replace(".png", "-2.png")).unlink()  # it died before the second
    worker.emit(Failed(handed.job_id, "crash", "the worker died"))
    again = await asyncio.wait_for(worker.submitted.get(), 5.0)
    assert again.output == handed.output and not list(folder.iterdir())
    worker.emit(painted_batch(again, 2))
    done = await reporter.next_delivery()
    assert done.id == job.id and done.pictures == [str(folder / f"door_{n}.png") for n in (1, 2)]
    assert sorted(p.name for p in folder.iterdir()) == [
        "door_1.png", "door_1.txt", "door_2.png", "door_2.txt"
    ]  # fmt: skip
    assert (folder / "door_1.png").read_bytes() == f"picture 1 of {job.id}".encode()


async def test_a_task_batch_partly_named_when_the_bot_stopped_is_painted_again(
    store: Store, tmp_path: Path
) -> None:
    """The bot stopped while a batch's pictures were being named (picture 1 was door_1, the
    job not yet recorded as done): at the next start the batch is painted again and its
    pictures numbered after it — one more picture in the folder, none overwritten, none
    numbered twice — as a single /task picture would be."""
    folder = tmp_path / "out" / "tasks" / "7" / "doors"
    worker, reporter = FakeWorker(), Reporter()
    scheduler = Scheduler(store, worker, reporter, outputs=tmp_path / "out")
    job = await store.add(task_job(7, "doors/door.png", count=2))
    await scheduler.start()
    handed = await asyncio.wait_for(worker.submitted.get(), 5.0)
    worker.emit(Started(handed.job_id, time.time()))
    done = painted_batch(handed, 2, " (interrupted)")
    place_numbered((done.pictures[0], done.pictures[0][:-4] + ".txt"), folder, "door")
    await asyncio.sleep(0.05)
    await scheduler.stop(timeout=1)

    worker, reporter = FakeWorker(), Reporter()
    scheduler = Scheduler(store, worker, reporter, outputs=tmp_path / "out")
    await scheduler.start()
    again = await asyncio.wait_for(worker.submitted.get(), 5.0)
    assert again.job_id == str(job.id)
    worker.emit(painted_batch(again, 2))
    delivered = await reporter.next_delivery()
    assert delivered.pictures == [str(folder / f"door_{n}.png") for n in (2, 3)]
    assert [(folder / f"door_{n}.png").read_bytes() for n in (1, 2, 3)] == [
        f"picture 1 of {job.id} (interrupted)".encode(),
        f"picture 1 of {job.id}".encode(),
        f"picture 2 of {job.id}".encode(),
    ]
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []
    await scheduler.stop(timeout=1)


async def test_a_task_files_pictures_are_numbered_in_the_persons_folder(
    store: Store, parts: tuple[Scheduler, FakeWorker, Reporter], tmp_path: Path
) -> None:
    """A /task picture is painted to a hidden file in OUTPUTS/tasks/<owner>/<out_folder> and
    then named <out_file>_N.png beside the ones there (never overwriting), its .txt with it;
    an out_folder that climbs out of the person's folder goes to job-<id>.png instead."""
    scheduler, worker, reporter = parts
    folder = tmp_path / "out" / "tasks" / "7" / "doors"
    folder.mkdir(parents=True)
    (folder / "door_1.png").write_bytes(b"an earlier picture")
    job = await store.add(task_job(7, "doors/door.png"))
    climbing = await store.add(task_job(7, "../../escape/door.png"))
    await scheduler.start()
    handed = await asyncio.wait_for(worker.submitted.get(), 5.0)
    assert Path(handed.output).parent == folder and Path(handed.output).name.startswith(".")
    worker.emit(painted(handed))
    assert (await reporter.next_delivery()).output_path == str(folder / "door_2.png")
    assert (folder / "door_1.png").read_bytes() == b"an earlier picture"
    assert (folder / "door_2.png").read_bytes() == f"a picture of {job.id}".encode()
    assert (folder / "door_2.txt").read_text() == f"call of {job.id}"
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
    handed = await asyncio.wait_for(worker.submitted.get(), 5.0)
    assert handed.output == str(tmp_path / "out" / f"job-{climbing.id}.png")


async def test_one_wake_fills_every_free_worker(store: Store, tmp_path: Path) -> None:
    """Two idle workers and two jobs waiting for a resume: the one resume hands both over at
    once, not one per later event."""
    worker, reporter = FakeWorker(workers=2), Reporter()
    scheduler = Scheduler(store, worker, reporter, outputs=tmp_path)
    await scheduler.pause()
    jobs = [await store.add(new_job(owner=n)) for n in (1, 2)]
    await scheduler.start()
    while not scheduler.worker_ready:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the start's wakes are spent while paused
    await scheduler.resume()
    handed = {await worker.next(), await worker.next()}
    assert handed == {job.id for job in jobs}
    await scheduler.stop(timeout=1)


class BrokenPool(FakeWorker):
    """Workers that cannot start (no GPU, models missing)."""

    async def start(self) -> None:
        raise WorkerError("CUDA is not available")


async def test_no_worker_keeps_jobs_queued_and_says_why(store: Store, tmp_path: Path) -> None:
    """The workers fail to start: the reason is kept for /admin status, jobs stay queued, and
    the outputs folder was made, parents and all."""
    outputs = tmp_path / "new" / "outputs"
    scheduler = Scheduler(store, BrokenPool(), Reporter(), outputs=outputs)
    job = await store.add(new_job(owner=1))
    await scheduler.start()
    async with asyncio.timeout(5):
        while scheduler.worker_error is None:
            await asyncio.sleep(0.01)
    assert scheduler.worker_error == "CUDA is not available" and not scheduler.worker_ready
    queued = await store.get(job.id)
    assert queued is not None and queued.status == "queued"
    assert outputs.is_dir()
    await scheduler.stop(timeout=1)


class StuckReporter(Reporter):
    """Posting an outcome never finishes (Discord stopped answering)."""

    async def deliver(self, job: Job) -> None:
        await asyncio.Event().wait()


async def test_stop_gives_a_stuck_post_its_timeout_only(store: Store, tmp_path: Path) -> None:
    """A post that hangs holds the bot's stop for `timeout` seconds, not for ever."""
    worker = FakeWorker()
    scheduler = Scheduler(store, worker, StuckReporter(), outputs=tmp_path)
    job = await store.add(new_job(owner=1))
    await scheduler.start()
    assert await worker.next() == job.id
    worker.done(job.id)
    await asyncio.sleep(0.05)
    await asyncio.wait_for(scheduler.stop(timeout=0.2), 2.0)

"""The job store on a real SQLite file: migrations, the queue's states, fair order, recovery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from bot.store import (
    MigrationError,
    NewJob,
    Store,
    fair_order,
    migrate,
    migration_files,
    schema_version,
)
from engine.prompts import Prompt
from engine.request import Request


class Clock:
    """A settable clock for the store's timestamps."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        self.now += 0.001  # strictly increasing, like real time
        return self.now


def request(iterations: int = 10, seed: int = 1) -> Request:
    return Request(prompts=(Prompt("a door"),), size=(64, 64), iterations=iterations, seed=seed)


def new_job(owner: int, iterations: int = 10, **fields: object) -> NewJob:
    return NewJob(
        kind="imagine",
        owner_id=owner,
        guild_id=1,
        channel_id=2,
        request=request(iterations),
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "jobs.sqlite3", clock=Clock())
    yield opened
    await opened.close()


async def test_open_migrates_once_and_uses_wal(tmp_path: Path) -> None:
    """A new database gets every migration in one go, recorded; reopening applies nothing."""
    path = tmp_path / "sub" / "jobs.sqlite3"
    store = await Store.open(path)
    cursor = await store.db.execute("PRAGMA journal_mode")
    assert (await cursor.fetchone())[0] == "wal"  # type: ignore[index]
    assert await schema_version(store.db) == len(migration_files())
    assert await migrate(store.db) == []
    await store.close()
    again = await Store.open(path)
    cursor = await again.db.execute("SELECT version, name FROM schema_migrations")
    assert [tuple(row) for row in await cursor.fetchall()] == [
        (1, "jobs"),
        (2, "interactions"),
        (3, "delivery"),
        (4, "guild_pause_task_source"),
        (5, "grids"),
    ]
    await again.close()


async def test_failed_migration_leaves_nothing_behind(tmp_path: Path) -> None:
    """A broken migration rolls back whole: no table of it, no version recorded."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "V1__good.sql").write_text("CREATE TABLE a (x INTEGER);")
    (folder / "V2__bad.sql").write_text("CREATE TABLE b (x INTEGER); THIS IS NOT SQL;")
    async with aiosqlite.connect(tmp_path / "db.sqlite3", isolation_level=None) as db:
        with pytest.raises(aiosqlite.OperationalError):
            await migrate(db, folder)
        assert await schema_version(db) == 0
        cursor = await db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        assert [row[0] for row in await cursor.fetchall()] == []


def test_migration_names_are_checked(tmp_path: Path) -> None:
    """Misnamed files and gaps in the numbering are errors."""
    (tmp_path / "V1__a.sql").write_text("")
    (tmp_path / "V3__c.sql").write_text("")
    with pytest.raises(MigrationError, match="without gaps"):
        migration_files(tmp_path)
    (tmp_path / "oops.sql").write_text("")
    with pytest.raises(MigrationError, match="not named"):
        migration_files(tmp_path)


async def test_newer_database_is_refused(store: Store, tmp_path: Path) -> None:
    """A database migrated by newer code is not touched by older code."""
    await store.db.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)")
    with pytest.raises(MigrationError, match="newer"):
        await migrate(store.db)


async def test_job_round_trip(store: Store) -> None:
    """A queued job keeps its request, call string, seed, size and notes."""
    job = await store.add(new_job(7, notes=("clamped",), upload_limit=1024, parent_job=None))
    assert job.status == "queued" and job.attempts == 0 and job.owner_id == 7
    assert job.request == request()
    assert job.call_string == request().to_call_string()
    assert (job.seed, job.width, job.height, job.iterations) == (1, 64, 64, 10)
    assert job.note_lines == ["clamped"] and job.upload_limit == 1024
    child = await store.add(new_job(7, parent_job=job.id))
    assert child.parent_job == job.id


async def test_claim_finish_and_deliver(store: Store) -> None:
    """claim → running (attempt 1) → done with timings → delivered."""
    job = await store.add(new_job(1))
    claimed = await store.claim_next()
    assert claimed is not None and claimed.id == job.id
    assert claimed.status == "running" and claimed.attempts == 1 and claimed.started_at
    assert await store.claim_next() is None
    done = await store.finish(
        job.id,
        output_path="/x.png",
        seed=5,
        call_string="doorways generate x",
        load_s=1.0,
        first_step_s=0.5,
        total_s=11.0,
    )
    assert done is not None and done.status == "done" and done.seed == 5
    assert done.call_string == "doorways generate x" and done.finished_at
    assert [j.id for j in await store.undelivered()] == [job.id]
    await store.mark_delivered(job.id, 555)
    assert await store.undelivered() == []
    again = await store.get(job.id)
    assert again is not None and again.result_message_id == 555
    [timing] = await store.timings()  # painting took 11 - 1 s (loading left out)
    assert (timing.area, timing.seconds, timing.iterations, timing.count) == (
        job.width * job.height,
        pytest.approx(10.0),
        job.iterations,
        1,
    )
    batch = await store.add(NewJob("imagine", 1, 1, 2, request(10).replace(count=3)))
    await store.claim_next()
    await store.finish(batch.id, output_path="/g.png", seed=5, call_string="doorways generate x",
                       load_s=0.0, first_step_s=0.5, total_s=6.0)  # fmt: skip
    newest, _ = await store.timings()
    assert (newest.seconds, newest.iterations, newest.count) == (pytest.approx(6.0), 10, 3)


async def test_delivery_records_where_the_outcome_went(store: Store) -> None:
    """The channel (with the message id), a DM, or nowhere: `delivered` only says the bot is
    done trying; `delivered_to` says where, so nothing claims a post that never happened."""
    jobs = [await store.add(new_job(owner)) for owner in (1, 2, 3, 4)]
    await store.mark_delivered(jobs[0].id, 555)
    await store.mark_delivered(jobs[1].id, None, to="dm")
    await store.mark_delivered(jobs[2].id, None, to=None)
    await store.mark_delivered(jobs[3].id, None)  # cancelled: no message, so not the channel
    found = [await store.get(job.id) for job in jobs]
    assert [(j.delivered, j.delivered_to, j.result_message_id) for j in found if j] == [
        (1, "channel", 555),
        (1, "dm", None),
        (1, None, None),
        (1, None, None),
    ]


async def test_v3_marks_earlier_posts_as_delivered_to_the_channel(tmp_path: Path) -> None:
    """A database from before V3: posted results become 'channel', the rest nowhere."""
    old = tmp_path / "v2"
    old.mkdir()
    for _, migration in migration_files()[:2]:
        (old / migration.name).write_text(migration.read_text())
    path = tmp_path / "jobs.sqlite3"
    async with aiosqlite.connect(path) as db:
        assert await migrate(db, old) == [1, 2]
        for delivered, message in ((1, 7), (1, None), (0, None)):  # posted, cancelled, pending
            await db.execute(
                "INSERT INTO jobs (kind, owner_id, channel_id, request_json, call_string,"
                " iterations, width, height, created_at, delivered, result_message_id)"
                " VALUES ('imagine', 1, 2, '{}', '', 10, 64, 64, 0, ?, ?)",
                (delivered, message),
            )
        await db.commit()
    after = await Store.open(path)
    try:
        found = [await after.get(job_id) for job_id in (1, 2, 3)]
        assert [(j.delivered, j.delivered_to, j.result_message_id) for j in found if j] == [
            (1, "channel", 7),
            (1, None, None),
            (0, None, None),
        ]
    finally:
        await after.close()


async def test_finished_jobs_do_not_change(store: Store) -> None:
    """finish / fail / cancel / requeue apply only to jobs in the right state."""
    job = await store.add(new_job(1))
    assert await store.finish(
        job.id, output_path="", seed=1, call_string="", load_s=0, first_step_s=0, total_s=0
    ) is None  # fmt: skip
    assert await store.requeue(job.id, "note") is None
    cancelled = await store.cancel(job.id)
    assert cancelled is not None and cancelled.status == "cancelled"
    assert await store.fail(job.id, "internal", "boom") is None
    assert await store.cancel(job.id) is None


async def test_fair_order_is_round_robin(store: Store) -> None:
    """One user's ten jobs do not hold back another user's one: A1, B1, A2, … and after A's
    job starts, B goes next."""
    for _ in range(10):
        await store.add(new_job(owner=100))
    b = await store.add(new_job(owner=200))
    c = await store.add(new_job(owner=300))
    order = await fair_order(store.db)
    owners = [j.owner_id for j in order]
    assert owners[:4] == [100, 200, 300, 100] and owners[4:] == [100] * 8
    first = await store.claim_next()
    assert first is not None and first.owner_id == 100
    second = await store.claim_next()
    assert second is not None and second.id == b.id
    third = await store.claim_next()
    assert third is not None and third.id == c.id
    fourth = await store.claim_next()
    assert fourth is not None and fourth.owner_id == 100


async def test_least_recently_served_goes_first(store: Store) -> None:
    """Within a round, the owner served longest ago (or never) goes first."""
    a = await store.add(new_job(owner=1))
    claimed = await store.claim_next()
    assert claimed is not None and claimed.id == a.id
    a2 = await store.add(new_job(owner=1))
    b = await store.add(new_job(owner=2))  # queued after a2, but never served
    assert [j.id for j in await fair_order(store.db)] == [b.id, a2.id]
    waiting = await store.waiting(a2.id)
    assert waiting is not None and waiting.position == 3  # behind the running one and b
    assert [j.id for j in waiting.ahead] == [a.id, b.id]


async def test_recover_interrupted_retries_once(store: Store) -> None:
    """A running job found at start-up goes back first with a note; a second time, it fails."""
    other = await store.add(new_job(owner=2))
    job = await store.add(new_job(owner=1))
    await store.db.execute("UPDATE jobs SET status='running', attempts=1 WHERE id=?", (job.id,))
    requeued, failed = await store.recover_interrupted("resumed after restart", "gave up")
    assert [j.id for j in requeued] == [job.id] and failed == []
    assert requeued[0].note_lines == ["resumed after restart"] and requeued[0].resume
    order = await fair_order(store.db)
    assert [j.id for j in order] == [job.id, other.id]  # the interrupted job first
    claimed = await store.claim_next()
    assert claimed is not None and claimed.id == job.id and claimed.attempts == 2
    requeued, failed = await store.recover_interrupted("resumed after restart", "gave up")
    assert requeued == [] and [j.id for j in failed] == [job.id]
    assert failed[0].error == "gave up" and failed[0].error_kind == "interrupted"


async def test_unclaim_puts_a_job_back_unchanged(store: Store) -> None:
    """A job claimed but never started goes back without an attempt counted."""
    job = await store.add(new_job(owner=1))
    await store.claim_next()
    await store.unclaim(job.id)
    again = await store.get(job.id)
    assert again is not None and again.status == "queued" and again.attempts == 0


async def test_rows_survive_reopening(tmp_path: Path) -> None:
    """Queued jobs are on disk: a new Store on the same file sees them."""
    path = tmp_path / "jobs.sqlite3"
    first = await Store.open(path)
    job = await first.add(new_job(owner=1))
    await first.close()
    second = await Store.open(path)
    assert [j.id for j in await second.jobs(["queued"])] == [job.id]
    await second.close()


async def test_a_task_cancelled_as_its_transaction_begins_leaves_none_open(
    tmp_path: Path,
) -> None:
    """A task cancelled while its BEGIN is under way (the bot stopping mid-claim): BEGIN
    still runs on aiosqlite's thread, so the store must end it, or every later write would
    join that transaction and be lost at close — a posted picture recorded as not posted,
    and posted again at the next start."""
    path = tmp_path / "jobs.sqlite3"
    store = await Store.open(path)
    job = await store.add(new_job(owner=1))

    async def claim() -> None:
        async with store.transaction():
            await asyncio.sleep(10)

    task = asyncio.create_task(claim())
    await asyncio.sleep(0)  # the task now awaits its BEGIN
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await store.mark_delivered(job.id, 42)
    await store.close()
    reopened = await Store.open(path)
    delivered = await reopened.get(job.id)
    await reopened.close()
    assert delivered is not None and (delivered.delivered, delivered.result_message_id) == (1, 42)

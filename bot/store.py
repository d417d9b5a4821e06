"""The job store: SQLite through aiosqlite (WAL), numbered plain-SQL migrations, no ORM.

The database is the truth about jobs. A job row goes queued → running → done | failed |
cancelled; `resume` marks a job interrupted while running (a restart or a worker crash) that
goes before the others when it runs again. The SQL sits next to its use, parameterised.

One connection serves the bot, so statements of concurrent coroutines would interleave inside
each other's transactions; every use therefore holds `Store.lock` (`transaction()` for
several statements that must be atomic, e.g. the quota check that counts and inserts).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import aiosqlite

from bot.speed import Timing
from engine.request import Request

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
Status = Literal["queued", "running", "done", "failed", "cancelled"]
Delivery = Literal["channel", "dm"] | None
PENDING: tuple[Status, ...] = ("queued", "running")
FINISHED: tuple[Status, ...] = ("done", "failed", "cancelled")
MAX_ATTEMPTS = 2  # a job interrupted while running is tried once more, then it fails


class MigrationError(RuntimeError):
    """A migration file is misnamed, or the database is newer than this code."""


@dataclass(frozen=True)
class Job:
    """One row of `jobs` (see migrations/V1__jobs.sql and V2 for what each column means)."""

    id: int
    status: Status
    kind: str
    owner_id: int
    guild_id: int | None
    channel_id: int
    interaction_id: int | None
    status_message_id: int | None
    result_message_id: int | None
    request_json: str
    call_string: str
    seed: int | None
    iterations: int
    width: int
    height: int
    notes: str
    upload_limit: int | None
    parent_job: int | None
    attempts: int
    resume: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    load_s: float | None
    first_step_s: float | None
    total_s: float | None
    output_path: str | None
    error_kind: str | None
    error: str | None
    delivered: int
    deleted_at: float | None  # V2: the result message was deleted (the row is kept)
    delivered_to: Delivery  # V3: where the outcome went ('channel', 'dm'), None: nowhere
    source_sha256: str | None  # V4: /task: the SHA-256 of the task file
    picture_paths: str | None  # V5: a batch's pictures' PNGs (JSON list); output_path: grid

    @property
    def request(self) -> Request:
        return Request.from_json(self.request_json)

    @property
    def pictures(self) -> list[str]:
        """The PNG of each picture of a batch job, in batch order; empty for one picture."""
        return [] if self.picture_paths is None else json.loads(self.picture_paths)

    @property
    def note_lines(self) -> list[str]:
        return [line for line in self.notes.splitlines() if line]

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> Job:
        return cls(**{name: row[name] for name in _COLUMNS})


_COLUMNS = tuple(f.name for f in fields(Job))


@dataclass(frozen=True)
class NewJob:
    """What a command hands the store: the request and where it came from."""

    kind: str
    owner_id: int
    guild_id: int | None
    channel_id: int
    request: Request
    interaction_id: int | None = None
    notes: tuple[str, ...] = ()
    upload_limit: int | None = None
    parent_job: int | None = None
    source_sha256: str | None = None  # /task: the task file's SHA-256


@dataclass(frozen=True)
class Waiting:
    """A pending job's place: `position` 1 runs next (or is running), with the jobs before it."""

    job_id: int
    position: int
    ahead: tuple[Job, ...]


class Store:
    """The job database. Open with `await Store.open(path)`; close with `await store.close()`.

    `clock` (unix seconds) stamps the rows; tests pass their own.
    """

    def __init__(self, db: aiosqlite.Connection, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock
        self.lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        migrations: Path = MIGRATIONS,
    ) -> Store:
        """Open (creating it and its folder if needed) and bring the schema up to date."""
        path = Path(path)
        if str(path) != ":memory:":
            await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)  # we BEGIN ourselves
        try:
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("PRAGMA foreign_keys = ON")
            await db.execute("PRAGMA busy_timeout = 5000")
            await migrate(db, migrations, clock)
        except BaseException:
            await db.close()
            raise
        return cls(db, clock)

    async def close(self) -> None:
        async with self.lock:
            await self.db.close()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error), holding the lock throughout."""
        async with self.lock:
            try:
                await self.db.execute("BEGIN IMMEDIATE")
            except BaseException:
                # Cancelled while BEGIN was under way: it still runs on aiosqlite's thread, and
                # an open transaction would swallow every later write. (If BEGIN itself
                # failed, there is nothing to roll back.)
                with contextlib.suppress(sqlite3.OperationalError):
                    await self.db.execute("ROLLBACK")
                raise
            try:
                yield self.db
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

    # Reading ------------------------------------------------------------------------------------

    async def get(self, job_id: int) -> Job | None:
        async with self.lock:
            return await _one(self.db, "SELECT * FROM jobs WHERE id = ?", (job_id,))

    async def jobs(self, status: Iterable[Status] | None = None) -> list[Job]:
        """Jobs (with one of `status`), oldest first."""
        async with self.lock:
            if status is None:
                return await _all(self.db, "SELECT * FROM jobs ORDER BY id", ())
            wanted = tuple(status)
            marks = ",".join("?" * len(wanted))
            return await _all(
                self.db, f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY id", wanted
            )

    async def waiting(self, job_id: int) -> Waiting | None:
        """Where a pending job stands; None once it is finished (or unknown)."""
        async with self.lock:
            return await place_in_line(self.db, job_id)

    async def timings(self, recent: int = 50) -> list[Timing]:
        """Size, painting seconds (loading left out), iterations and pictures (`count`) of
        the last `recent` finished jobs, for wait estimates at each size and batch."""
        async with self.lock:
            cursor = await self.db.execute(
                "SELECT width * height, total_s - COALESCE(load_s, 0), iterations,"
                " COALESCE(json_extract(request_json, '$.count'), 1) FROM jobs"
                " WHERE status = 'done' AND total_s IS NOT NULL ORDER BY id DESC LIMIT ?",
                (recent,),
            )
            rows = await cursor.fetchall()
        return [Timing(int(a), float(s), int(n), int(count)) for a, s, n, count in rows]

    async def undelivered(self) -> list[Job]:
        """Finished jobs whose outcome was not posted yet (the bot stopped in between)."""
        async with self.lock:
            return await _all(
                self.db,
                "SELECT * FROM jobs WHERE status IN ('done', 'failed') AND delivered = 0 "
                "ORDER BY id",
                (),
            )

    async def by_message(self, message_id: int) -> Job | None:
        """The job whose result (or status) message is `message_id`."""
        async with self.lock:
            return await _one(
                self.db,
                "SELECT * FROM jobs WHERE result_message_id = ? OR status_message_id = ?"
                " ORDER BY result_message_id = ? DESC LIMIT 1",
                (message_id, message_id, message_id),
            )

    async def owned(
        self, owner_id: int, status: Iterable[Status], *, limit: int = 10, newest: bool = True
    ) -> list[Job]:
        """`owner_id`'s jobs with one of `status` that were not deleted, newest first (or
        oldest first), at most `limit`."""
        wanted = tuple(status)
        marks = ",".join("?" * len(wanted))
        order = "DESC" if newest else "ASC"
        async with self.lock:
            return await _all(
                self.db,
                f"SELECT * FROM jobs WHERE owner_id = ? AND status IN ({marks})"
                f" AND deleted_at IS NULL ORDER BY id {order} LIMIT ?",
                (owner_id, *wanted, limit),
            )

    async def count_since(self, since: float) -> dict[str, int]:
        """Jobs created at or after `since`, by status."""
        async with self.lock:
            cursor = await self.db.execute(
                "SELECT status, COUNT(*) FROM jobs WHERE created_at >= ? GROUP BY status", (since,)
            )
            return {row[0]: int(row[1]) for row in await cursor.fetchall()}

    async def from_source(self, owner_id: int, sha256: str, since: float) -> list[Job]:
        """`owner_id`'s jobs from the task file with this SHA-256 queued since `since`
        (cancelled ones do not count)."""
        async with self.lock:
            return await _all(
                self.db,
                "SELECT * FROM jobs WHERE owner_id = ? AND source_sha256 = ? AND created_at >= ?"
                " AND status != 'cancelled' ORDER BY id",
                (owner_id, sha256, since),
            )

    async def mark_deleted(self, job_id: int) -> None:
        """The job's result message was deleted; the row stays (parameters by job id work)."""
        async with self.lock:
            await self.db.execute(
                "UPDATE jobs SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
                (self.clock(), job_id),
            )

    # The queue ----------------------------------------------------------------------------------

    async def add(self, new: NewJob) -> Job:
        """Insert a queued job without any checks (the quota module checks, then inserts)."""
        async with self.transaction() as db:
            job_id = await insert_job(db, new, self.clock())
            job = await _one(db, "SELECT * FROM jobs WHERE id = ?", (job_id,))
        assert job is not None
        return job

    async def claim_next(self) -> Job | None:
        """Mark the fairest queued job running and return it (None when nothing waits, or
        only jobs of paused guilds)."""
        async with self.transaction() as db:
            order = await fair_order(db, runnable_only=True)
            if not order:
                return None
            job_id = order[0].id
            await db.execute(
                "UPDATE jobs SET status = 'running', started_at = ?, attempts = attempts + 1,"
                " resume = 0 WHERE id = ?",
                (self.clock(), job_id),
            )
            return await _one(db, "SELECT * FROM jobs WHERE id = ?", (job_id,))

    async def unclaim(self, job_id: int) -> None:
        """Put a claimed job that never started back in line, as if never claimed."""
        async with self.lock:
            await self.db.execute(
                "UPDATE jobs SET status = 'queued', attempts = MAX(attempts - 1, 0)"
                " WHERE id = ? AND status = 'running'",
                (job_id,),
            )

    async def mark_started(self, job_id: int, at: float) -> None:
        """The worker picked the job up at `at` (unix time)."""
        async with self.lock:
            await self.db.execute(
                "UPDATE jobs SET started_at = ? WHERE id = ? AND status = 'running'", (at, job_id)
            )

    async def set_status_message(self, job_id: int, message_id: int) -> None:
        async with self.lock:
            await self.db.execute(
                "UPDATE jobs SET status_message_id = ? WHERE id = ?", (message_id, job_id)
            )

    async def finish(
        self,
        job_id: int,
        *,
        output_path: str,
        seed: int,
        call_string: str,
        load_s: float,
        first_step_s: float,
        total_s: float,
        picture_paths: Sequence[str] = (),
    ) -> Job | None:
        """Record a finished job (only if it was running); returns it, or None. A batch's
        output_path is its grid, and picture_paths each picture's PNG."""
        pictures = json.dumps(list(picture_paths)) if picture_paths else None
        async with self.transaction() as db:
            cursor = await db.execute(
                "UPDATE jobs SET status = 'done', finished_at = ?, output_path = ?, seed = ?,"
                " call_string = ?, load_s = ?, first_step_s = ?, total_s = ?, picture_paths = ?"
                " WHERE id = ? AND status = 'running'",
                (self.clock(), output_path, seed, call_string, load_s, first_step_s, total_s,
                 pictures, job_id),
            )  # fmt: skip
            if cursor.rowcount == 0:
                return None
            return await _one(db, "SELECT * FROM jobs WHERE id = ?", (job_id,))

    async def record_pick(self, grid: Job, index: int, new: NewJob) -> Job:
        """A picture picked out of a batch job's grid, recorded as a finished job of its own
        (kind `pick`, nothing to paint): its request and call string are that picture's
        (`--count N --index I`), its PNG the one the batch saved. ValueError if `grid` has
        no picture `index`."""
        pictures = grid.pictures
        if not 1 <= index <= len(pictures):
            raise ValueError(f"job #{grid.id} has no picture {index}")
        request = new.request
        async with self.transaction() as db:
            now = self.clock()
            job_id = await insert_job(db, new, now)
            await db.execute(
                "UPDATE jobs SET status = 'done', started_at = ?, finished_at = ?,"
                " output_path = ?, call_string = ? WHERE id = ?",
                (now, now, pictures[index - 1], request.recipe().to_call_string(), job_id),
            )
            job = await _one(db, "SELECT * FROM jobs WHERE id = ?", (job_id,))
        assert job is not None
        return job

    async def fail(self, job_id: int, kind: str, error: str) -> Job | None:
        """Record a failure of a pending job; returns it, or None if it had already ended."""
        async with self.transaction() as db:
            cursor = await db.execute(
                "UPDATE jobs SET status = 'failed', finished_at = ?, error_kind = ?, error = ?"
                " WHERE id = ? AND status IN ('queued', 'running')",
                (self.clock(), kind, error, job_id),
            )
            if cursor.rowcount == 0:
                return None
            return await _one(db, "SELECT * FROM jobs WHERE id = ?", (job_id,))

    async def requeue(self, job_id: int, note: str) -> Job | None:
        """Put a running job back in line, first, with a note the user will see."""
        async with self.transaction() as db:
            cursor = await db.execute(
                "UPDATE jobs SET status = 'queued', resume = 1,"
                " notes = CASE WHEN notes = '' THEN ? ELSE notes || char(10) || ? END"
                " WHERE id = ? AND status = 'running'",
                (note, note, job_id),
            )
            if cursor.rowcount == 0:
                return None
            return await _one(db, "SELECT * FROM jobs WHERE id = ?", (job_id,))

    async def cancel(self, job_id: int) -> Job | None:
        """Cancel a queued or running job; returns its row, or None if it had already ended
        (the caller stops the worker if it was running)."""
        async with self.transaction() as db:
            cursor = await db.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?"
                " WHERE id = ? AND status IN ('queued', 'running')",
                (self.clock(), job_id),
            )
            if cursor.rowcount == 0:
                return None
            return await _one(db, "SELECT * FROM jobs WHERE id = ?", (job_id,))

    async def mark_delivered(
        self, job_id: int, message_id: int | None, *, to: Delivery = "channel"
    ) -> None:
        """The bot is done delivering job `job_id`'s outcome: posted in its channel as
        `message_id`, sent `to` "dm", or (None, or no message id for the channel) nowhere —
        cancelled, or refused by both the channel and the DM."""
        where: Delivery = "dm" if to == "dm" else None
        if to == "channel" and message_id is not None:
            where = "channel"
        async with self.lock:
            await self.db.execute(
                "UPDATE jobs SET delivered = 1, result_message_id = ?, delivered_to = ?"
                " WHERE id = ?",
                (message_id if where == "channel" else None, where, job_id),
            )

    async def recover_interrupted(self, note: str, failure: str) -> tuple[list[Job], list[Job]]:
        """At start-up: jobs left running were interrupted. Those tried fewer than
        MAX_ATTEMPTS times go back in line, first, with `note`; the others fail with
        `failure`. Returns (requeued, failed)."""
        async with self.transaction() as db:
            running = await _all(db, "SELECT * FROM jobs WHERE status = 'running'", ())
            for job in running:
                if job.attempts < MAX_ATTEMPTS:
                    await db.execute(
                        "UPDATE jobs SET status = 'queued', resume = 1,"
                        " notes = CASE WHEN notes = '' THEN ? ELSE notes || char(10) || ? END"
                        " WHERE id = ?",
                        (note, note, job.id),
                    )
                else:
                    await db.execute(
                        "UPDATE jobs SET status = 'failed', finished_at = ?,"
                        " error_kind = 'interrupted', error = ? WHERE id = ?",
                        (self.clock(), failure, job.id),
                    )
            ids = [job.id for job in running]
            marks = ",".join("?" * len(ids))
            after = await _all(db, f"SELECT * FROM jobs WHERE id IN ({marks}) ORDER BY id", ids)
        return (
            [job for job in after if job.status == "queued"],
            [job for job in after if job.status == "failed"],
        )


# Statements used inside transactions (the quota check uses them too) ------------------------


async def insert_job(db: aiosqlite.Connection, new: NewJob, now: float) -> int:
    request = new.request
    cursor = await db.execute(
        "INSERT INTO jobs (kind, owner_id, guild_id, channel_id, interaction_id, request_json,"
        " call_string, seed, iterations, width, height, notes, upload_limit, parent_job,"
        " source_sha256, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (new.kind, new.owner_id, new.guild_id, new.channel_id, new.interaction_id,
         request.to_json(), request.to_call_string(), request.seed, request.iterations,
         request.size[0], request.size[1], "\n".join(new.notes), new.upload_limit,
         new.parent_job, new.source_sha256, now),
    )  # fmt: skip
    assert cursor.lastrowid is not None
    return cursor.lastrowid


async def count_jobs(
    db: aiosqlite.Connection, owner_id: int, status: Iterable[Status], since: float | None = None
) -> int:
    """How many of `owner_id`'s jobs have one of `status` (created at or after `since`)."""
    return await _sum_over_jobs(db, "COUNT(*)", "", owner_id, status, since)


async def count_images(
    db: aiosqlite.Connection, owner_id: int, status: Iterable[Status], since: float | None = None
) -> int:
    """How many pictures `owner_id`'s jobs with one of `status` paint (created at or after
    `since`): a job of `--count 4` is four (its request's count; one for older requests); a
    picture picked out of a grid was counted with its grid."""
    pictures = "COALESCE(SUM(COALESCE(json_extract(request_json, '$.count'), 1)), 0)"
    return await _sum_over_jobs(db, pictures, " AND kind != 'pick'", owner_id, status, since)


async def _sum_over_jobs(
    db: aiosqlite.Connection,
    aggregate: str,
    condition: str,
    owner_id: int,
    status: Iterable[Status],
    since: float | None,
) -> int:
    """SELECT `aggregate` over `owner_id`'s jobs with one of `status`, `condition` (SQL) and
    created at or after `since`."""
    wanted = tuple(status)
    marks = ",".join("?" * len(wanted))
    sql = f"SELECT {aggregate} FROM jobs WHERE owner_id = ?{condition} AND status IN ({marks})"
    params: list[Any] = [owner_id, *wanted]
    if since is not None:
        sql += " AND created_at >= ?"
        params.append(since)
    cursor = await db.execute(sql, params)
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def fair_order(db: aiosqlite.Connection, *, runnable_only: bool = False) -> list[Job]:
    """Queued jobs in the order they will run: interrupted jobs first, then round-robin over
    the owners — everyone's first waiting job, then everyone's second, … — and within a round
    the owner served longest ago (or never) first. The jobs of a paused guild (migrations/V4)
    are held: they come after all the others (or, with `runnable_only`, not at all)."""
    return await _all(
        db,
        f"""
        WITH served AS (
            SELECT owner_id, MAX(started_at) AS last_start FROM jobs
            WHERE started_at IS NOT NULL GROUP BY owner_id
        ), queued AS (
            SELECT id, owner_id, resume,
                   COALESCE(guild_id IN (SELECT guild_id FROM paused_guilds), 0) AS held
            FROM jobs WHERE status = 'queued'
        ), waiting AS (
            SELECT id, held,
                   ROW_NUMBER() OVER (PARTITION BY owner_id, held ORDER BY resume DESC, id)
                       AS round,
                   MIN(id) OVER (PARTITION BY owner_id, held) AS first_id
            FROM queued {"WHERE held = 0" if runnable_only else ""}
        )
        SELECT jobs.* FROM waiting
        JOIN jobs USING (id)
        LEFT JOIN served USING (owner_id)
        ORDER BY waiting.held, jobs.resume DESC, waiting.round, served.last_start,
                 waiting.first_id, jobs.id
        """,
        (),
    )


async def place_in_line(db: aiosqlite.Connection, job_id: int) -> Waiting | None:
    """The running jobs, then the queue in fair order: where `job_id` is among them."""
    line = await _all(db, "SELECT * FROM jobs WHERE status = 'running' ORDER BY started_at", ())
    line += await fair_order(db)
    for index, job in enumerate(line):
        if job.id == job_id:
            return Waiting(job_id, index + 1, tuple(line[:index]))
    return None


async def _one(db: aiosqlite.Connection, sql: str, params: Iterable[Any]) -> Job | None:
    cursor = await db.execute(sql, tuple(params))
    row = await cursor.fetchone()
    return None if row is None else Job.from_row(row)


async def _all(db: aiosqlite.Connection, sql: str, params: Iterable[Any]) -> list[Job]:
    cursor = await db.execute(sql, tuple(params))
    return [Job.from_row(row) for row in await cursor.fetchall()]


# Migrations -------------------------------------------------------------------------------------

_MIGRATION_NAME = re.compile(r"V(?P<version>\d+)__(?P<name>\w+)\.sql")


def migration_files(folder: Path = MIGRATIONS) -> list[tuple[int, Path]]:
    """(version, path) of every `V<n>__<name>.sql`, in order; versions must be 1, 2, 3, …"""
    found = []
    for path in folder.glob("*.sql"):
        match = _MIGRATION_NAME.fullmatch(path.name)
        if match is None:
            raise MigrationError(f"migration {path.name} is not named V<number>__<name>.sql")
        found.append((int(match["version"]), path))
    found.sort()
    versions = [version for version, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration versions must be 1, 2, 3, … without gaps: {versions}")
    return found


async def schema_version(db: aiosqlite.Connection) -> int:
    cursor = await db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    )
    if await cursor.fetchone() is None:
        return 0
    cursor = await db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def migrate(
    db: aiosqlite.Connection, folder: Path = MIGRATIONS, clock: Callable[[], float] = time.time
) -> list[int]:
    """Apply the pending migrations in one transaction, recording each version with it.
    Returns the versions applied."""
    files = migration_files(folder)
    current = await schema_version(db)
    if current > len(files):
        raise MigrationError(
            f"the database is at schema version {current}, newer than this code ({len(files)})"
        )
    pending = [(version, path) for version, path in files if version > current]
    if not pending:
        return []
    # executescript() commits whatever is open before it runs, so the transaction is written
    # into the script itself: it either reaches COMMIT or raises with the transaction open.
    parts = [
        "BEGIN IMMEDIATE;",
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL);",
    ]
    now = clock()
    for version, path in pending:
        sql = await asyncio.to_thread(path.read_text, encoding="utf-8")
        parts.append(sql.rstrip().rstrip(";") + ";")
        name = path.stem.split("__", 1)[1]
        parts.append(
            f"INSERT INTO schema_migrations VALUES ({version}, '{name}', {now!r});"
        )  # version is an int and name matched \w+: safe to inline
    parts.append("COMMIT;")
    try:
        await db.executescript("\n".join(parts))
    except BaseException:
        if db.in_transaction:
            await db.execute("ROLLBACK")
        raise
    applied = [version for version, _ in pending]
    log.info("database migrated to version %d (applied %s)", applied[-1], applied)
    return applied

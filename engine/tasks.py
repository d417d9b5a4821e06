"""Task folders: run runvqgan-style task files through the worker, overnight, resumably.

`doorways tasks run FOLDER` runs FOLDER/*.txt, FOLDER/*.json and FOLDER/<user>/task_*.txt
(never sample.txt or task_sample.txt) through one worker process, which loads the models
once for the whole run. One run is a `FolderRun`, which hands out its pictures (or, for a
task file's `count`, its batches) one at a time and is told what became of each:
`run_folder` feeds it to a worker of its own, the bot (bot/exts/nightly) to its scheduler,
between people's jobs. What it keeps on disk, beside
each task file NAME:

- `NAME.progress.json` while NAME runs: the seeds of its images and each result, rewritten
  atomically after every change, so a run killed at any moment is finished by the next
  without making any finished image again;
- `NAME.done`: NAME once every image has a result; `STEM_ERROR.txt` lists the images that
  failed and why;
- `NAME.error` + `STEM_ERROR.txt`: a task file that cannot run at all (bad JSON, a limit),
  renamed so that it is not tried again every night.

Pictures go to OUTPUT_ROOT/out_folder/out_file_N.png (+ .txt call string), N the next free
number. The worker writes each picture under a hidden temporary name; when it is done the
runner claims the next free number (creating the file exclusively: never overwriting) and
moves the picture there, noting "saving" in the progress first so a crash in between is
completed by the next run. A lock file keeps two runs of one folder from overlapping.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.clips import EXAMPLE, parse_clips
from engine.config import load_config, parse_hhmm
from engine.request import COMPILE_MODES, DEFAULT_CLIP, DEFAULT_VQGAN, KERNELS, PRECISIONS
from engine.taskfile import (
    TaskFileError,
    TaskJob,
    TaskLimits,
    batches,
    describe,
    expand_task,
    task_summary,
)
from engine.worker import (
    Cancelled,
    Done,
    Event,
    Failed,
    Job,
    Started,
    WorkerError,
    WorkerHandle,
)
from engine.worker.pool import Pool, check_devices, local_pool, resolve_devices

log = logging.getLogger("doorways.tasks")

LOCK_NAME = ".doorways-tasks.lock"
SAMPLES = frozenset({"sample.txt", "task_sample.txt"})
PROGRESS_SUFFIX = ".progress.json"
ERROR_SUFFIX = "_ERROR.txt"
CRASH_TRIES = 2  # a job whose worker died is tried once more in the same run


class TasksBusy(Exception):
    """Another run holds the folder's lock."""


@dataclass(frozen=True)
class RunSettings:
    """How a folder is run: the CLI options and the config file's [tasks] table, or the
    bot's settings (bot/exts/nightly). The engine fields are defaults: a task file that sets
    one of them (`"cutn": [64]`, `"precision": "fp32"`) keeps its own."""

    out_root: Path = Path("data/outputs")
    limits: TaskLimits = field(default_factory=TaskLimits)
    vqgan: str = DEFAULT_VQGAN  # for task files that name no model
    clip: str = DEFAULT_CLIP
    cutn: int | None = None  # for task files that set none; None: the request's default
    precision: str = "auto"  # engine.request.PRECISIONS
    compile: str = "off"  # engine.request.COMPILE_MODES
    kernels: str = "fast"  # engine.request.KERNELS
    device: str = "auto"
    devices: tuple[str, ...] = ()  # one worker per device, "all" GPUs; empty: one on `device`
    threads: int | None = None  # torch CPU threads in the worker

    def request_defaults(self) -> dict[str, Any]:
        """Request fields for what a task file does not say (expand_task's `defaults`)."""
        defaults: dict[str, Any] = {
            "vqgan": self.vqgan,
            "clip": self.clip,
            "precision": self.precision,
            "compile": self.compile,
            "kernels": self.kernels,
        }
        if self.cutn is not None:
            defaults["cutn"] = self.cutn
        return defaults


@dataclass
class Summary:
    """What one run did, for the log (and the tests)."""

    files: int = 0  # task files found
    finished: list[str] = field(default_factory=list)  # renamed .done
    refused: dict[str, str] = field(default_factory=dict)  # renamed .error: file → problems
    made: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "file: image i of n (…): message"
    waiting: list[str] = field(default_factory=list)  # images left for the next run, and why
    seconds: float = 0.0

    def lines(self) -> list[str]:
        minutes, seconds = divmod(round(self.seconds), 60)
        lines = [
            f"{self.files} task file(s): {len(self.finished)} done, {len(self.refused)} refused "
            f"(ERROR), {len(self.waiting)} image(s) waiting; {len(self.made)} image(s) made, "
            f"{len(self.failed)} failed, in {minutes} min {seconds} s"
        ]
        lines += [f"refused {name}: {problems}" for name, problems in self.refused.items()]
        lines += [f"failed {failure}" for failure in self.failed]
        lines += [f"waiting: {reason}" for reason in self.waiting]
        return lines


# Files --------------------------------------------------------------------------------------


def is_task_file(path: Path, *, in_subfolder: bool) -> bool:
    """A file to run: *.txt/*.json at the top, task_*.txt in a sub-folder; no sample, error
    report, progress, hidden or finished file."""
    name = path.name.lower()
    if (
        name.startswith(".")
        or name in SAMPLES
        or name.endswith((ERROR_SUFFIX.lower(), ".progress.json"))
    ):
        return False
    if in_subfolder:
        return name.startswith("task_") and name.endswith(".txt")
    return name.endswith((".txt", ".json"))


def find_task_files(folder: Path) -> list[Path]:
    """The task files of a folder and its per-user sub-folders, in name order."""
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and is_task_file(entry, in_subfolder=False):
            found.append(entry)
        elif entry.is_dir() and not entry.name.startswith("."):
            found += [
                p for p in sorted(entry.iterdir())
                if p.is_file() and is_task_file(p, in_subfolder=True)
            ]  # fmt: skip
    return found


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold FOLDER/.doorways-tasks.lock (flock, exclusive) or raise TasksBusy at once."""
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TasksBusy(
                f"another run is processing {folder} (`doorways tasks run` or doorways-bot's "
                f"schedule; it holds {path}); this run stops here"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for people: who holds it
        yield
    finally:
        os.close(fd)  # releases the lock


def claim_numbered(folder: Path, stem: str) -> Path:
    """Claim folder/stem_N.png (and its .txt), N one more than the highest taken number.

    Both names are created exclusively (empty), so nothing is ever overwritten and two
    writers never get the same N; the caller moves the finished files over them.
    """
    folder.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(re.escape(stem) + r"_(\d+)\.(png|txt)")
    taken = [int(m[1]) for p in folder.iterdir() if (m := pattern.fullmatch(p.name))]
    number = max(taken, default=0) + 1
    while True:
        png = folder / f"{stem}_{number}.png"
        try:
            os.close(os.open(png, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            number += 1
            continue
        try:
            os.close(os.open(png.with_suffix(".txt"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            png.unlink()
            number += 1
            continue
        return png


def partial_output(folder: Path, stem: str, token: str) -> Path:
    """The hidden name a worker writes a picture to before it gets its OUT_FILE_N name
    (folder/.stem.token.partial.png); leftovers of an earlier try with that token are
    removed, and the folder is created."""
    temp = folder / f".{stem}.{token}.partial.png"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        if stale.name.startswith(temp.stem):
            stale.unlink(missing_ok=True)
    return temp


def move_over(temps: Sequence[str | Path], final: Path) -> None:
    """Move a finished picture, its .txt and any timelapse .gif (the worker's temporary names,
    in that order) over the names claimed for them, keeping the claimed files' permissions
    (0666 less the umask); a temporary file that is gone (moved already) is skipped."""
    targets = (final, final.with_suffix(".txt"), final.with_suffix(".gif"))
    for temp, target in zip(temps, targets, strict=False):
        if Path(temp).exists():
            mode = target.stat().st_mode if target.exists() else None
            _move(Path(temp), target)
            if mode is not None:
                os.chmod(target, mode)


def _move(source: Path, target: Path) -> None:
    """os.replace, or across file systems (a picture the worker saved in a fallback folder)
    copy then remove."""
    try:
        os.replace(source, target)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        shutil.copyfile(source, target)
        source.unlink()


def place_numbered(temps: Sequence[str | Path], folder: Path, stem: str) -> Path:
    """Give a finished picture (the worker's `Done.paths`) the next free folder/stem_N.png
    name, with its .txt beside it; never overwrites. FileNotFoundError if the picture is gone
    (the claimed names are freed again)."""
    final = claim_numbered(folder, stem)
    move_over(temps, final)
    if final.stat().st_size == 0:
        for claimed in (final, final.with_suffix(".txt")):
            if claimed.exists() and claimed.stat().st_size == 0:
                claimed.unlink()
        raise FileNotFoundError(f"the finished picture {temps[0]} is gone")
    return final


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` so that readers (and a crash) see the old or the new file."""
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)
    with contextlib.suppress(OSError):  # make the rename itself durable
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def free_name(path: Path, suffix: str) -> Path:
    """NAME+suffix beside `path`, or NAME.2+suffix, NAME.3+suffix, … if that is taken."""
    target, number = path.with_name(path.name + suffix), 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}.{number}{suffix}")
    return target


def error_path(task: Path) -> Path:
    return task.with_name(task.stem + ERROR_SUFFIX)


def progress_path(task: Path) -> Path:
    return task.with_name(task.name + PROGRESS_SUFFIX)


# One task file ----------------------------------------------------------------------------


class TaskRun:
    """One task file's jobs (one a picture) and their durable progress.

    A batch (`count`) is painted as one worker job and placed picture by picture. Progress
    records, by job index: {"state": "saving", "png", "temps", "seed",
    "call_string"} from the moment a finished picture is being moved to its claimed name,
    then {"state": "done", "png", "seed", "call_string"}; or {"state": "failed", "kind",
    "message"}. A job with no record runs (again).
    """

    def __init__(self, path: Path, name: str, text: str, jobs: list[TaskJob]) -> None:
        self.path, self.name, self.jobs = path, name, jobs
        self.sha256 = hashlib.sha256(text.encode()).hexdigest()
        self.records: dict[int, dict[str, Any]] = {}
        token = hashlib.sha256(f"{path.resolve()}:{self.sha256}".encode()).hexdigest()[:10]
        self._temp_prefix = token
        self._load()

    # Progress on disk
    def _load(self) -> None:
        """Resume from NAME.progress.json if it belongs to this text; else start afresh."""
        record_file = progress_path(self.path)
        try:
            data = json.loads(record_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = None
        except (OSError, ValueError) as error:
            log.warning("%s: unreadable progress (%s); starting the file over", self.name, error)
            data = None
        if data is not None:
            try:
                records = {int(i): dict(r) for i, r in data["jobs"].items()}
                seeds = [int(seed) for seed in data["seeds"]]
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                log.warning("%s: damaged progress (%s); starting the file over", self.name, error)
                data, records, seeds = None, {}, []
        if data is not None:
            same = data.get("sha256") == self.sha256 and len(seeds) == len(self.jobs)
            if same:  # the seeds drawn on the first run, so a rerun paints the same pictures
                self.jobs = [
                    replace(job, request=job.request.replace(seed=seed))
                    for job, seed in zip(self.jobs, seeds, strict=True)
                ]
            self.records = records
            for index in [i for i, r in records.items() if r.get("state") == "saving"]:
                self._settle(index)  # a crash came while a picture was being moved
            if same:
                made = sum(r["state"] == "done" for r in self.records.values())
                log.info("%s: resuming, %d of %d image(s) already made", self.name, made, len(self))
            else:
                log.warning("%s changed since its last run: starting it over", self.name)
                self.records = {}
        self._save()

    def _save(self) -> None:
        data = {
            "task": self.path.name,
            "sha256": self.sha256,
            "seeds": [job.request.seed for job in self.jobs],
            "jobs": {str(i): r for i, r in sorted(self.records.items())},
        }
        write_atomic(progress_path(self.path), json.dumps(data, indent=1, ensure_ascii=False))

    def __len__(self) -> int:
        return len(self.jobs)

    def pending(self) -> list[int]:
        return [i for i in range(len(self.jobs)) if i not in self.records]

    def pending_batches(self) -> list[tuple[int, ...]]:
        """The pictures to paint, grouped by the batch each is painted in."""
        return batches(self.jobs, self.pending())

    def complete(self) -> bool:
        return all(
            self.records.get(i, {}).get("state") in ("done", "failed") for i in range(len(self))
        )

    def temp_output(self, index: int) -> Path:
        """The hidden name the worker writes job `index`'s batch to (a batch's pictures go
        beside it, NAME-1.png, …); leftovers of a crash removed."""
        job = self.jobs[self.jobs[index].batch]
        return partial_output(job.folder, job.out_file, f"{self._temp_prefix}.{job.index}")

    # Results
    def place_batch(self, indices: Sequence[int], done: Done) -> list[Path]:
        """Name the pictures `indices` of the batch `done` painted, in order (place); the
        batch's other pictures (made before a crash) and its grid are removed."""
        if not done.pictures:  # painted alone
            return [self.place(indices[0], done.paths, done.seed, done.call_string)]
        _remove(done.paths)  # the grid: each picture gets its own name
        first = self.jobs[indices[0]].batch
        members = [job for job in self.jobs if job.batch == first]
        placed = []
        for job, picture in zip(members, done.pictures, strict=True):
            temps = (picture, str(Path(picture).with_suffix(".txt")))
            if job.index in indices:
                call = job.request.recipe().to_call_string()
                placed.append(self.place(job.index, temps, job.seed, call))
            else:
                _remove(temps)
        return placed

    def place(self, index: int, temps: Sequence[str], seed: int, call_string: str) -> Path:
        """Move a finished picture (the worker's temporary PNG and .txt) to the next free
        OUT_FILE_N name; where that cannot be done (disk full, folder not writable) it stays
        where the worker saved it, and the log says where."""
        job = self.jobs[index]
        record = {"png": temps[0], "seed": seed, "call_string": call_string}
        try:
            final = claim_numbered(job.folder, job.out_file)
        except OSError as error:
            log.error("%s: cannot name a picture in %s (%s); it stays at %s",
                      self.name, job.folder, error, temps[0])  # fmt: skip
            self.records[index] = {**record, "state": "done"}
        else:
            self.records[index] = {
                **record, "state": "saving", "png": str(final), "temps": list(temps)
            }  # fmt: skip
            self._save()
            self._settle(index)
        self._save()
        return Path(self.records[index]["png"]) if index in self.records else Path(temps[0])

    def _settle(self, index: int) -> None:
        """Finish moving a "saving" picture: done under its claimed name, or, if it cannot be
        moved, where the worker left it; if it was lost, the job runs again (the caller saves
        the progress)."""
        record = self.records[index]
        final, kept = Path(record["png"]), Path(record["temps"][0])
        try:
            move_over(record["temps"], final)
        except OSError as error:
            log.error("%s: cannot move %s to %s (%s)", self.name, kept, final, error)
        done = {k: record[k] for k in ("png", "seed", "call_string")}
        if not kept.exists() and final.exists() and final.stat().st_size > 0:
            self.records[index] = {**done, "state": "done"}
            return
        for claimed in (final, final.with_suffix(".txt")):  # ours: empty, or a copy cut short
            if claimed.exists() and (kept.exists() or claimed.stat().st_size == 0):
                claimed.unlink()
        if kept.exists() and kept.stat().st_size > 0:
            log.error("%s: the picture stays at %s", self.name, kept)
            self.records[index] = {**done, "state": "done", "png": str(kept)}
        else:  # the picture never reached the disk
            del self.records[index]

    def fail(self, indices: Sequence[int], kind: str, message: str) -> list[str]:
        """The pictures `indices` (one batch) cannot be made: one line each for the summary."""
        for index in indices:
            self.records[index] = {"state": "failed", "kind": kind, "message": message}
        self._save()
        return [f"{self.name}: {self.jobs[i].describe(len(self))}: {message}" for i in indices]

    def finish(self, summary: Summary) -> None:
        """Every image has a result: report failures in STEM_ERROR.txt, rename NAME.done."""
        failures = [
            f"- {self.jobs[i].describe(len(self))}: {r['message']}"
            for i, r in sorted(self.records.items())
            if r["state"] == "failed"
        ]
        report = error_path(self.path)
        done_name = free_name(self.path, ".done")
        made = sum(r["state"] == "done" for r in self.records.values())
        if failures:
            others = "The other images were made" if made else "No image was made"
            write_atomic(
                report,
                f"Some images of {self.path.name} could not be made:\n" + "\n".join(failures)
                + f"\n\n{others}. The task file was renamed to {done_name.name}.\n",
            )  # fmt: skip
        elif report.exists():
            report.unlink()  # an old report: this time everything worked
        self.path.rename(done_name)
        progress_path(self.path).unlink(missing_ok=True)
        log.info(
            "%s done: %d of %d image(s) made; renamed %s",
            self.name,
            made,
            len(self),
            done_name.name,
        )
        summary.finished.append(self.name)


def _remove(paths: Sequence[str]) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)


def refuse(path: Path, name: str, problems: list[str], summary: Summary) -> None:
    """A task file that cannot run: STEM_ERROR.txt says why; NAME.error is not retried."""
    renamed = free_name(path, ".error")
    write_atomic(
        error_path(path),
        f"This task file could not be run: {path.name}\n"
        + "".join(f"- {problem}\n" for problem in problems)
        + f"\nIt was renamed to {renamed.name} so that it is not tried again every night. "
        f"Fix it and rename it back to {path.name} to run it.\n",
    )  # fmt: skip
    path.rename(renamed)
    progress_path(path).unlink(missing_ok=True)
    log.error("%s refused (see %s): %s", name, error_path(path).name, "; ".join(problems))
    summary.refused[name] = "; ".join(problems)


def prepare(path: Path, folder: Path, settings: RunSettings, summary: Summary) -> TaskRun | None:
    """Read and expand one task file; refuse it (ERROR) if it cannot run."""
    name = str(path.relative_to(folder))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        refuse(path, name, ["not UTF-8 text (save the task file as UTF-8)"], summary)
        return None
    try:
        jobs = expand_task(
            text,
            limits=settings.limits,
            out_root=settings.out_root,
            images_root=path.parent,
            defaults=settings.request_defaults(),
        )
        root = settings.out_root.resolve()
        out = jobs[0].folder
        out.mkdir(parents=True, exist_ok=True)
        if not out.resolve().is_relative_to(root):  # e.g. through a symbolic link
            raise TaskFileError([f"out_folder: {out} leads out of the output folder"])
    except TaskFileError as error:
        refuse(path, name, error.problems, summary)
        return None
    except OSError as error:
        refuse(path, name, [f"cannot create the output folder: {error}"], summary)
        return None
    run = TaskRun(path, name, text, jobs)
    log.info("%s: %s", name, task_summary(run.jobs))
    return run


# Running a folder -------------------------------------------------------------------------


class FolderRun:
    """One run of a task folder, handed out a job at a time: what `doorways tasks run` (with a
    worker of its own) and the bot's schedule (through its one worker queue) share.

    `open()` takes the folder's lock, reads every task file (refusing the ones that cannot
    run) and finishes files a crash left complete; `next_job()` gives the next picture — or
    batch of pictures (`count`) — to paint (None when none is left to hand out);
    `record(event)` takes what the worker says about it — each picture is named OUT_FILE_N,
    the progress file updated, a crashed job handed out once more, a finished file renamed
    .done; `close()` releases the lock and logs the summary. Plain blocking file work:
    asyncio callers run it in a thread.
    """

    def __init__(self, folder: str | Path, settings: RunSettings, *, job_prefix: str = "") -> None:
        self.folder = Path(folder)
        self.settings = settings
        # Job ids are PREFIX + "NAME#N", "NAME#N-M" for a batch (+ "~2" for a retry).
        self.job_prefix = job_prefix
        self.summary = Summary()
        self._lock = contextlib.ExitStack()
        # (run, the pictures' job indices, try): one picture, or the pictures of one batch
        self._queue: collections.deque[tuple[TaskRun, tuple[int, ...], int]] = collections.deque()
        self._in_flight: dict[str, tuple[TaskRun, tuple[int, ...], int]] = {}  # by job id
        self._began = 0.0
        self._counter = 0
        self.total = 0  # pictures to paint in this run (known once open)

    def open(self) -> FolderRun:
        """Lock the folder and read its task files. Raises TasksBusy if another run holds
        it, ValueError if it is not a folder."""
        if not self.folder.is_dir():
            raise ValueError(f"no such task folder: {self.folder}")
        self._began = time.monotonic()
        self._lock.enter_context(folder_lock(self.folder))
        try:
            _remove_orphans(self.folder)
            paths = find_task_files(self.folder)
            self.summary.files = len(paths)
            runs = [run for p in paths if (run := prepare(p, self.folder, self.settings,
                                                          self.summary))]  # fmt: skip
            for run in runs:
                if not run.pending() and run.complete():
                    run.finish(self.summary)  # a crash came after its last image
            self._queue.extend((run, batch, 1) for run in runs for batch in run.pending_batches())
            self.total = sum(len(batch) for _, batch, _ in self._queue)
        except BaseException:
            self._lock.close()
            raise
        return self

    def close(self) -> Summary:
        """Release the folder (pictures not made yet wait for the next run); log the summary."""
        self._lock.close()
        self.summary.seconds = time.monotonic() - self._began
        for line in self.summary.lines():
            log.info("%s", line)
        return self.summary

    def __enter__(self) -> FolderRun:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def idle(self) -> bool:
        """Nothing left to hand out and nothing being painted: the run is over."""
        return not self._queue and not self._in_flight

    def owns(self, job_id: str) -> bool:
        return job_id in self._in_flight

    def next_job(self) -> Job | None:
        """The next picture to paint, as a worker job; None when none is left to hand out."""
        if not self._queue:
            return None
        run, indices, attempt = self._queue.popleft()
        numbers = f"{indices[0] + 1}" + (f"-{indices[-1] + 1}" if len(indices) > 1 else "")
        job_id = f"{self.job_prefix}{run.name}#{numbers}" + (f"~{attempt}" if attempt > 1 else "")
        self._in_flight[job_id] = (run, indices, attempt)
        # A batch is painted whole, also when a crash left some of its pictures made: the
        # call strings name the batch, so only the batch paints those pictures exactly.
        request = run.jobs[indices[0]].batch_request
        return Job.of(job_id, request, run.temp_output(indices[0]))

    def record(self, event: Event) -> None:
        """What the worker says about one of this run's jobs (others are ignored)."""
        if event.job_id not in self._in_flight:
            return
        run, indices, attempt = self._in_flight[event.job_id]
        what = f"{run.name} {describe([run.jobs[i] for i in indices], len(run))}"
        if isinstance(event, Started):
            self._counter += len(indices)
            log.info("[%d/%d] painting %s", self._counter, self.total, what)
        if not isinstance(event, Done | Failed | Cancelled):
            return
        del self._in_flight[event.job_id]
        if isinstance(event, Done):
            paths = run.place_batch(indices, event)
            self.summary.made += paths
            for path, index in zip(paths, indices, strict=True):
                seed = run.jobs[index].seed
                log.info("made %s in %.1f s (seed %d)", path, event.total_s, seed)
        elif isinstance(event, Failed) and event.kind == "crash" and attempt < CRASH_TRIES:
            log.warning("%s: %s; trying it again", what, event.message)
            self._counter -= len(indices)
            self._queue.appendleft((run, indices, attempt + 1))
        elif isinstance(event, Failed) and event.kind != "model_missing":
            self.summary.failed += run.fail(indices, event.kind, event.message)
            log.error("failed %s: %s", what, event.message)
        else:  # no model, or cancelled: not the task file's fault; the next run tries
            reason = event.message if isinstance(event, Failed) else "cancelled"
            self.summary.waiting += [
                f"{run.name} {run.jobs[i].describe(len(run))}: {reason}" for i in indices
            ]
            log.warning("%s left for the next run: %s", what, reason)
        if run.complete():
            run.finish(self.summary)


async def run_folder(
    folder: str | Path,
    settings: RunSettings | None = None,
    *,
    worker: Pool | WorkerHandle | None = None,
) -> Summary:
    """Run every task file in `folder` once; returns what happened (also logged).

    Without `worker`, starts a pool for the batch — one worker per device of
    `settings.devices` (models load once in each) — and stops it at the end.
    Raises TasksBusy if another run holds the folder, ValueError if it is not a folder,
    WorkerError if no worker starts.
    """
    settings = settings or RunSettings()
    with FolderRun(folder, settings) as run:
        if not run.idle:
            own = worker is None
            if worker is None:
                devices = await asyncio.to_thread(
                    resolve_devices, settings.devices, settings.device
                )
                worker = local_pool(
                    devices, threads=settings.threads, preload=(settings.vqgan, settings.clip)
                )
                await worker.start()
            try:
                await _run_jobs(worker, run)
            finally:
                if own:
                    await worker.stop()
    return run.summary


def interrupted_runs(folder: Path) -> list[Path]:
    """Task files of `folder` with a progress file: a run stopped before finishing them
    (or left pictures waiting for a model); the next run goes on with them."""
    if not folder.is_dir():
        return []
    records = [*folder.glob(f"*{PROGRESS_SUFFIX}"), *folder.glob(f"*/*{PROGRESS_SUFFIX}")]
    tasks = [r.with_name(r.name.removesuffix(PROGRESS_SUFFIX)) for r in records]
    return sorted(task for task in tasks if task.exists())


def _remove_orphans(folder: Path) -> None:
    """Progress files whose task file is gone (renamed .done just before a crash)."""
    for record in [*folder.glob(f"*{PROGRESS_SUFFIX}"), *folder.glob(f"*/*{PROGRESS_SUFFIX}")]:
        if not record.with_name(record.name.removesuffix(PROGRESS_SUFFIX)).exists():
            record.unlink()


async def _run_jobs(worker: Pool | WorkerHandle, run: FolderRun) -> None:
    """Hand the workers every job of the run (they queue them), then record what comes back,
    handing over again what must be retried, until the run is over."""
    while (job := run.next_job()) is not None:
        worker.submit(job)
    events = worker.events()
    try:
        async for event in events:
            if not run.owns(event.job_id):
                continue
            try:
                run.record(event)
            except OSError as error:  # e.g. the disk is full: the progress file cannot be kept
                log.error("cannot record what became of %s: %s", event.job_id, error)
            while (job := run.next_job()) is not None:
                worker.submit(job)
            if run.idle:
                break
    finally:
        await events.aclose()  # type: ignore[attr-defined]  # an async generator


# Scheduling -------------------------------------------------------------------------------


def parse_devices(text: str) -> tuple[str, ...]:
    """--devices: `cuda:0,cuda:1` → ("cuda:0", "cuda:1"); `all` stays ("all",)."""
    try:
        return check_devices(text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_at(text: str) -> dt.time:
    """`23:00` → 23:00 (24-hour clock, local time)."""
    at = parse_hhmm(text)
    if at is None:
        raise ValueError(
            f"--at wants a time as HH:MM on the 24-hour clock, e.g. 23:00, not {text!r}"
        )
    return at


def next_run_time(now: dt.datetime, at: dt.time) -> dt.datetime:
    """The first moment after `now` at which the clock shows `at` (today or tomorrow)."""
    today = dt.datetime.combine(now.date(), at, tzinfo=now.tzinfo)
    return (
        today
        if today > now
        else dt.datetime.combine(now.date() + dt.timedelta(days=1), at, tzinfo=now.tzinfo)
    )


async def watch(folder: Path, at: dt.time, settings: RunSettings) -> None:
    """Run the folder every day at `at`, forever; a failed run is logged, not fatal."""
    while True:
        target = next_run_time(dt.datetime.now(), at)
        log.info("next run of %s at %s", folder, target.strftime("%Y-%m-%d %H:%M"))
        # Short sleeps against the wall clock: a suspended machine or a clock change
        # does not make the run late by the time it slept.
        while (remaining := (target - dt.datetime.now()).total_seconds()) > 0:
            await asyncio.sleep(min(remaining, 60.0))
        try:
            await run_folder(folder, settings)
        except (TasksBusy, ValueError, WorkerError) as error:
            log.error("run skipped: %s", error)
        except Exception:
            log.exception("the run failed; trying again at the next time")


# Command line -----------------------------------------------------------------------------


def add_tasks_arguments(parser: argparse.ArgumentParser) -> None:
    """`doorways tasks run|watch|check`."""
    actions = parser.add_subparsers(dest="tasks_command", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="run every task file in FOLDER once, then stop")
    watch = actions.add_parser("watch", help="run FOLDER every day at --at, forever")
    for sub in (run, watch):
        sub.add_argument("folder", metavar="FOLDER", type=Path)
        if sub is watch:
            sub.add_argument("--at", required=True, metavar="HH:MM", help="local time, e.g. 23:00")
        sub.add_argument(
            "--out-root", type=Path, metavar="DIR",
            help="output root; out_folder is a folder under it (default: from --config, "
            "else data/outputs)",
        )  # fmt: skip
        sub.add_argument("--config", type=Path, metavar="FILE", help="TOML file with [tasks]")
        sub.add_argument(
            "--vqgan", default=DEFAULT_VQGAN, metavar="NAME",
            help=f"VQGAN for task files that name none (default: {DEFAULT_VQGAN})",
        )  # fmt: skip
        sub.add_argument(
            "--clip", default=DEFAULT_CLIP, metavar="MODELS",
            help=f"CLIP, or several as {EXAMPLE}, for task files that name none "
            f"(default: {DEFAULT_CLIP})",
        )  # fmt: skip
        sub.add_argument(
            "--precision", default="auto", choices=PRECISIONS,
            help="arithmetic for task files that set none (default: auto, bf16 on GPUs that "
            "have it, fp32 elsewhere)",
        )  # fmt: skip
        sub.add_argument(
            "--compile", default="off", choices=COMPILE_MODES,
            help="torch.compile mode for task files that set none (default: off)",
        )  # fmt: skip
        sub.add_argument(
            "--kernels", default="fast", choices=KERNELS,
            help="fast, or deterministic (the same pixels every run on the same GPU) for task "
            "files that set none (default: fast)",
        )  # fmt: skip
        sub.add_argument("--device", default="auto", metavar="D", help="auto, cpu, cuda or cuda:N")
        sub.add_argument(
            "--devices", type=parse_devices, default=(), metavar="LIST",
            help="one worker per device, e.g. cuda:0,cuda:1, or all (every GPU); "
            "default: one worker on --device",
        )  # fmt: skip
        sub.add_argument("--threads", type=int, metavar="N", help="torch CPU threads")
    check = actions.add_parser("check", help="check task files and print their call strings")
    check.add_argument("files", nargs="+", metavar="FILE", type=Path)
    check.add_argument("--config", type=Path, metavar="FILE", help="TOML file with [tasks]")


def main(args: argparse.Namespace) -> int:
    """The `doorways tasks` command; returns the exit status."""
    config = load_config(args.config)
    if args.tasks_command == "check":
        return _check(args.files, config.limits, config.output_root)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )  # fmt: skip
    parse_clips(args.clip)  # a bad list is one clear error now, not a failure per task
    settings = RunSettings(
        out_root=args.out_root or config.output_root,
        limits=config.limits,
        vqgan=args.vqgan,
        clip=args.clip,
        precision=args.precision,
        compile=args.compile,
        kernels=args.kernels,
        device=args.device,
        devices=args.devices,
        threads=args.threads,
    )
    if args.tasks_command == "watch":
        at = parse_at(args.at)
        if not args.folder.is_dir():
            raise ValueError(f"no such task folder: {args.folder}")
        return asyncio.run(_until_signal(watch(args.folder, at, settings)))
    try:
        summary = asyncio.run(_until_signal(run_folder(args.folder, settings)))
    except (TasksBusy, WorkerError) as error:
        print(f"doorways: {error}", file=sys.stderr)
        return 1
    return 1 if summary.waiting else 0


async def _until_signal(work: Any) -> Any:
    """Await `work`; SIGTERM (systemctl stop) cancels it like Ctrl-C. Progress is kept."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        log.warning("stopped: finished images and progress are kept; the next run goes on")
        raise KeyboardInterrupt from None
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _check(files: list[Path], limits: TaskLimits, out_root: Path) -> int:
    """Expand each file and print its jobs' call strings, or what is wrong with it."""
    status = 0
    for path in files:
        try:
            jobs = expand_task(
                path.read_text(encoding="utf-8"),
                limits=limits,
                out_root=out_root,
                images_root=path.parent,
            )
        except (OSError, UnicodeDecodeError) as error:
            print(f"{path}: cannot read: {error}")
            status = 2
            continue
        except TaskFileError as error:
            print(f"{path}: cannot run:")
            print("".join(f"  - {problem}\n" for problem in error.problems), end="")
            status = 2
            continue
        print(f"{path}: {task_summary(jobs)}")
        for job in jobs:
            print(f"  {job.request.to_call_string()}")
    return status

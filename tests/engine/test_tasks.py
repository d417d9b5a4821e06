"""Task folders: finding files, naming, the lock, scheduling, and real runs with tiny models.

One CPU worker is started for the module and shared by the runs (`run_folder(worker=…)`);
the crash test runs `doorways tasks run` as its own process (with its own worker) and kills
the whole process group with SIGKILL after its first picture.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from PIL import Image

from engine import cli, tasks
from engine.request import Request
from engine.taskfile import expand_task
from engine.tasks import (
    FolderRun,
    RunSettings,
    Summary,
    TaskRun,
    TasksBusy,
    claim_numbered,
    find_task_files,
    folder_lock,
    interrupted_runs,
    next_run_time,
    parse_at,
    progress_path,
    run_folder,
)
from engine.worker import Done, Job, WorkerHandle
from tests import hostile_images as hostile

module_loop = pytest.mark.asyncio(loop_scope="module")
TINY = {"vqgan": "tiny", "clip": "tiny"}
TINY_FLAGS = ["--vqgan", "tiny", "--clip", "tiny"]


def task_text(out_file: str, iterations: int = 2, **fields: Any) -> str:
    """A tiny-model task file: 64×64, 2 cutouts."""
    data: dict[str, Any] = {
        "text": ["A painting of a door|stone:0.5"], "out_file": [out_file],
        "out_folder": ["output"], "iterations": [iterations], "resolution": [64, 64],
        "cutn": [2], "augments": "none",
    }  # fmt: skip
    data.update(fields)
    return json.dumps(data)


def made(folder: Path, stem: str) -> list[str]:
    """Names of the finished pictures stem_N.png in folder, in number order."""
    found = [p for p in folder.glob(f"{stem}_*.png") if p.stat().st_size > 0]
    return sorted((p.name for p in found), key=lambda n: int(n.rsplit("_", 1)[1][:-4]))


def seed_of(png: Path) -> int:
    """The picture's own seed, from its call string (a batch's picture: the batch's seed and
    its index), which its .txt repeats."""
    with Image.open(png) as image:
        call = image.text["parameters"]  # type: ignore[attr-defined]
    assert png.with_suffix(".txt").read_text().strip() == call
    request = Request.from_call_string(call)
    assert request.seed is not None
    return request.seed + (request.index or 1) - 1


def handed_out(worker: WorkerHandle, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the jobs given to `worker` from now on, in order."""
    ids: list[str] = []
    submit = worker.submit

    def record(job: Job) -> None:
        ids.append(job.job_id)
        submit(job)

    monkeypatch.setattr(worker, "submit", record)
    return ids


# --- files, names, lock, schedule (no worker) -----------------------------------------------


def test_find_task_files_and_what_is_skipped(tmp_path: Path) -> None:
    """*.txt and *.json at the top, task_*.txt in user folders; never samples or our files."""
    for name in [
        "a.txt", "b.json", "sample.txt", "task_sample.txt", "a.txt.done", "c.txt.error",
        "c_ERROR.txt", "a.txt.progress.json", ".hidden.txt", "notes.md",
        "alice/task_one.txt", "alice/other.txt", "alice/task_sample.txt", "alice/task_x.json",
        "alice/task_two.txt.done", "alice/task_bad_ERROR.txt", ".git/task_no.txt",
    ]:  # fmt: skip
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("{}")
    found = [str(p.relative_to(tmp_path)) for p in find_task_files(tmp_path)]
    assert found == ["a.txt", "alice/task_one.txt", "b.json"]
    # The shipped templates never run, even if data/tasks itself is the task folder.
    assert find_task_files(Path(__file__).resolve().parents[2] / "data" / "tasks") == []


def test_claim_numbered_beside_existing_files(tmp_path: Path) -> None:
    """The next number after the highest taken (PNG or .txt); nothing is overwritten."""
    out = tmp_path / "output"
    out.mkdir()
    for name in ["dog_1.png", "dog_2.txt", "dog_7.png", "dog.png", "doge_9.png", "dog_x.png"]:
        (out / name).write_bytes(b"theirs")
    assert claim_numbered(out, "dog") == out / "dog_8.png"
    assert claim_numbered(out, "dog") == out / "dog_9.png"
    assert (out / "dog_8.png").read_bytes() == b"" and (out / "dog_8.txt").exists()
    assert claim_numbered(out, "cat") == out / "cat_1.png"
    assert claim_numbered(tmp_path / "new" / "dir", "dog") == tmp_path / "new/dir/dog_1.png"
    assert all((out / n).read_bytes() == b"theirs" for n in ["dog_1.png", "dog_7.png", "dog.png"])


def test_the_lock_refuses_a_second_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """While one run holds the folder, `doorways tasks run` says so and exits 1."""
    (tmp_path / "a.txt").write_text(task_text("dog"))
    with folder_lock(tmp_path):
        busy = pytest.raises(TasksBusy, match="another run is processing")
        with busy, folder_lock(tmp_path):
            pass
        assert cli.main(["tasks", "run", str(tmp_path), "--vqgan", "tiny", "--clip", "tiny"]) == 1
        assert "another run is processing" in capsys.readouterr().err
    assert (tmp_path / "a.txt").exists()  # untouched
    with folder_lock(tmp_path):  # free again
        pass


def test_interrupted_runs_are_task_files_with_progress(tmp_path: Path) -> None:
    """A task file with a progress file beside it was left unfinished; orphans do not count."""
    (tmp_path / "alice").mkdir()
    for name in ["a.txt", "a.txt.progress.json", "b.txt", "alice/task_c.txt",
                 "alice/task_c.txt.progress.json", "gone.txt.progress.json"]:  # fmt: skip
        (tmp_path / name).write_text("{}")
    assert interrupted_runs(tmp_path) == [tmp_path / "a.txt", tmp_path / "alice/task_c.txt"]
    assert interrupted_runs(tmp_path / "missing") == []


def test_next_run_time_and_at() -> None:
    """Today if the time is still ahead, else tomorrow; HH:MM on the 24-hour clock."""
    at = parse_at("23:00")
    assert at == dt.time(23, 0) and parse_at("7:05") == dt.time(7, 5)
    evening = dt.datetime(2026, 3, 1, 22, 59, 30)
    assert next_run_time(evening, at) == dt.datetime(2026, 3, 1, 23, 0)
    assert next_run_time(dt.datetime(2026, 3, 1, 23, 0), at) == dt.datetime(2026, 3, 2, 23, 0)
    assert next_run_time(dt.datetime(2026, 12, 31, 23, 30), at) == dt.datetime(2027, 1, 1, 23)
    assert next_run_time(dt.datetime(2026, 3, 1, 0, 1), parse_at("00:00")) == dt.datetime(
        2026, 3, 2, 0, 0
    )
    for bad in ["24:00", "23:60", "11pm", "23", ""]:
        with pytest.raises(ValueError, match="--at wants a time as HH:MM"):
            parse_at(bad)


def test_a_crash_while_moving_a_picture_is_completed(tmp_path: Path) -> None:
    """Progress says "saving": the next run moves what is left and counts it as made."""
    tasks, out = tmp_path / "tasks", tmp_path / "out"
    tasks.mkdir()
    path = tasks / "a.txt"
    path.write_text(task_text("dog", each=2))
    jobs = expand_task(path.read_text(), out_root=out, defaults=TINY)
    run = TaskRun(path, "a.txt", path.read_text(), jobs)
    temp = run.temp_output(0)
    temp.write_bytes(b"png bytes")
    temp.with_suffix(".txt").write_text("call\n")
    done = Done("a.txt#1", (str(temp), str(temp.with_suffix(".txt"))), 5, "call", 0, 0, 0)
    # Claim and note "saving", then crash before moving: what place() does up to the move.
    final = claim_numbered(out / "output", "dog")
    run.records[0] = {"state": "saving", "png": str(final), "temps": list(done.paths),
                      "seed": 5, "call_string": "call"}  # fmt: skip
    run._save()

    again = TaskRun(path, "a.txt", path.read_text(), expand_task(path.read_text(), out_root=out))
    assert again.records == {
        0: {"state": "done", "png": str(final), "seed": 5, "call_string": "call"}
    }
    assert final.read_bytes() == b"png bytes" and not temp.exists()
    assert again.pending() == [1]
    assert [j.request.seed for j in again.jobs] == [j.request.seed for j in run.jobs]

    # A claimed name whose picture never reached the disk is freed; the job runs again.
    lost = claim_numbered(out / "output", "dog")
    again.records[1] = {"state": "saving", "png": str(lost), "temps": ["/nowhere.png"],
                        "seed": 6, "call_string": "call"}  # fmt: skip
    again._save()
    third = TaskRun(path, "a.txt", path.read_text(), expand_task(path.read_text(), out_root=out))
    assert third.pending() == [1] and not lost.exists()


def test_a_picture_that_cannot_reach_its_folder_stays_where_it_was_saved(tmp_path: Path) -> None:
    """The output folder is a file now, or the move fails across file systems half way: the
    job counts as made, at the place the worker saved it, and nothing half-copied is left."""
    folder, out, rescued = tmp_path / "tasks", tmp_path / "out", tmp_path / "rescued"
    folder.mkdir()
    rescued.mkdir()
    path = folder / "a.txt"
    path.write_text(task_text("dog", each=2))
    run = TaskRun(path, "a.txt", path.read_text(), expand_task(path.read_text(), out_root=out))
    pictures = []
    for n in (1, 2):
        png = rescued / f"dog{n}.png"
        png.write_bytes(b"png bytes")
        png.with_suffix(".txt").write_text("call\n")
        pictures.append(Done(f"a.txt#{n}", (str(png), str(png.with_suffix(".txt"))), n, "call",
                             0, 0, 0))  # fmt: skip
    out.mkdir()
    (out / "output").write_text("a file where the folder was")
    assert run.place_batch([0], pictures[0]) == [rescued / "dog1.png"]
    assert run.records[0] == {"state": "done", "png": str(rescued / "dog1.png"), "seed": 1,
                              "call_string": "call"}  # fmt: skip

    (out / "output").unlink()

    replace = os.replace

    def other_disk(source: Path, target: Path) -> None:
        if Path(source).parent == rescued:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        replace(source, target)

    def copy_cut_short(source: Path, target: Path) -> None:
        target.write_bytes(b"png")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.MonkeyPatch.context() as mp:  # no second disk here: the move says it is one
        mp.setattr(tasks.os, "replace", other_disk)
        mp.setattr(tasks.shutil, "copyfile", copy_cut_short)
        assert run.place_batch([1], pictures[1]) == [rescued / "dog2.png"]
    assert run.records[1]["png"] == str(rescued / "dog2.png")
    assert list((out / "output").iterdir()) == []  # the claimed names and the cut copy: gone
    assert run.complete() and (rescued / "dog2.png").read_bytes() == b"png bytes"


def test_a_batch_cut_short_by_a_crash_paints_only_its_missing_pictures(tmp_path: Path) -> None:
    """A crash while a batch's pictures were being named left picture 1 made: the next run
    paints the batch whole (only it paints its pictures exactly), names picture 2 alone and
    removes the rest; a finished batch is not handed out again."""
    folder, out = tmp_path / "tasks", tmp_path / "out"
    folder.mkdir()
    path = folder / "a.txt"
    path.write_text(task_text("dog", each=4, count=2, seed=3))
    run = TaskRun(path, "a.txt", path.read_text(), expand_task(path.read_text(), out_root=out))
    run.records[0] = {"state": "done", "png": "dog_1.png", "seed": 3, "call_string": "call"}
    for index in (2, 3):
        run.records[index] = {"state": "done", "png": f"dog_{index}.png", "seed": 3 + index,
                              "call_string": "call"}  # fmt: skip
    run._save()
    with FolderRun(folder, RunSettings(out_root=out)) as folder_run:
        assert folder_run.total == 1
        job = folder_run.next_job()
        assert job is not None and folder_run.next_job() is None
        assert job.job_id == "a.txt#2"
        request = Request.from_json(job.request_json)
        assert (request.seed, request.count, request.index) == (3, 2, None)  # the batch
        grid, pictures = Path(job.output), []
        for n in (1, 2):
            picture = grid.with_name(f"{grid.stem}-{n}.png")
            picture.write_bytes(f"picture {n}".encode())
            picture.with_suffix(".txt").write_text(f"call {n}\n")
            pictures.append(str(picture))
        grid.write_bytes(b"grid")
        grid.with_suffix(".txt").write_text("grid call\n")
        paths = (str(grid), str(grid.with_suffix(".txt")))
        folder_run.record(Done(job.job_id, paths, 3, "grid call", 0, 0, 0, tuple(pictures)))
    assert folder_run.summary.made == [out / "output" / "dog_1.png"]
    assert (out / "output" / "dog_1.png").read_bytes() == b"picture 2"
    assert (out / "output" / "dog_1.txt").read_text() == "call 2\n"
    assert sorted(p.name for p in (out / "output").iterdir()) == ["dog_1.png", "dog_1.txt"]
    assert folder_run.summary.finished == ["a.txt"] and (folder / "a.txt.done").exists()


def test_an_edited_task_file_starts_over(tmp_path: Path) -> None:
    """Progress belongs to the text it was made for: an edited file runs from the start."""
    path = tmp_path / "a.txt"
    path.write_text(task_text("dog", each=2))
    run = TaskRun(path, "a.txt", path.read_text(), expand_task(path.read_text(), out_root=tmp_path))
    run.fail([0], "bad_request", "no")
    path.write_text(task_text("dog", each=3))
    edited = TaskRun(
        path, "a.txt", path.read_text(), expand_task(path.read_text(), out_root=tmp_path)
    )
    assert edited.pending() == [0, 1, 2]
    assert json.loads(progress_path(path).read_text())["jobs"] == {}


def test_tasks_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`doorways tasks check` prints the call strings, or what is wrong (exit 2)."""
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text(task_text("dog", seed=4))
    bad.write_text(task_text("dog", each=99))
    assert cli.main(["tasks", "check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "1 image(s): 1 style(s) × each 1, 64×64, 2 iterations" in out
    assert "doorways generate 'A painting of a door | stone:0.5' --size 64 64" in out
    assert "--seed 4" in out and (tmp_path / "good.txt").exists()
    assert cli.main(["tasks", "check", str(good), str(bad)]) == 2
    assert "bad.txt: cannot run:\n  - each: 99 is outside" in capsys.readouterr().out


def test_precision_and_compile_options_reach_the_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`doorways tasks run --precision … --compile …` paints task files that set none with
    them (default auto and off); a task file's own precision and compile win."""
    (tmp_path / "a.txt").write_text(task_text("plain"))
    (tmp_path / "b.txt").write_text(task_text("own", precision="fp32", compile=["default"]))
    given: list[RunSettings] = []

    async def run_folder(folder: Path, settings: RunSettings) -> Summary:
        given.append(settings)
        return Summary()

    monkeypatch.setattr(tasks, "run_folder", run_folder)

    def requests(*options: str) -> list[Request]:
        assert cli.main(["tasks", "run", str(tmp_path), "--vqgan", "tiny", *options]) == 0
        with FolderRun(tmp_path, given.pop()) as run:
            jobs = [job for _ in range(2) if (job := run.next_job()) is not None]
        return [Request.from_json(job.request_json) for job in jobs]

    plain, own = requests("--precision", "fp16", "--compile", "max-autotune")
    assert (plain.precision, plain.compile, plain.vqgan) == ("fp16", "max-autotune", "tiny")
    assert (own.precision, own.compile) == ("fp32", "default")
    plain, _ = requests()
    assert (plain.precision, plain.compile) == ("auto", "off")
    assert cli.main(["tasks", "run", str(tmp_path), "--precision", "fp64"]) == 2
    assert "invalid choice: 'fp64'" in capsys.readouterr().err
    assert cli.main(["tasks", "run", str(tmp_path), "--devices", "cuda:0,cuda:1"]) == 0
    assert given.pop().devices == ("cuda:0", "cuda:1")
    assert cli.main(["tasks", "run", str(tmp_path), "--devices", "cuda:0,gpu"]) == 2
    assert "'gpu' is not a device" in capsys.readouterr().err


# --- real runs ------------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def worker() -> AsyncIterator[WorkerHandle]:
    """One CPU worker for the module, models loaded once."""
    handle = WorkerHandle("cpu", threads=1, preload=("tiny", "tiny"))
    await handle.start()
    yield handle
    await handle.stop(timeout=10)


def settings_for(tmp_path: Path) -> RunSettings:
    return RunSettings(out_root=tmp_path / "out", vqgan="tiny", clip="tiny", device="cpu")


@module_loop
@pytest.mark.timeout(120)
async def test_a_folder_run(worker: WorkerHandle, tmp_path: Path) -> None:
    """Images beside existing ones, .done, an ERROR file for a refused task file and one for
    an image that failed; the others are made; a second run retries nothing."""
    tasks, output = tmp_path / "tasks", tmp_path / "out" / "output"
    (tasks / "alice").mkdir(parents=True)
    output.mkdir(parents=True)
    (output / "door_1.png").write_bytes(b"someone else's")
    (tasks / "a.txt").write_text(task_text("door", style=["", "Escher"], each=[2], seed=[3]))
    (tasks / "alice" / "task_b.txt").write_text(
        task_text("alice_door", out_folder="alice", init_image="missing.png", each=2)
    )
    (tasks / "bad.json").write_text(task_text("x", iterations=7000, out_folder=["../up"]))
    (tasks / "sample.txt").write_text(task_text("sample"))
    (tasks / "c.json").write_text(task_text("door", style="Klee"))

    summary = await run_folder(tasks, settings_for(tmp_path), worker=worker)

    assert summary.files == 4  # sample.txt is a template
    assert made(output, "door") == [f"door_{n}.png" for n in range(1, 7)]
    assert (output / "door_1.png").read_bytes() == b"someone else's"
    assert sorted(p.name for p in summary.made) == [f"door_{n}.png" for n in range(2, 7)]
    # 2 styles × each 2, seeds 3 and 4 shared across the styles; then c.json's one.
    seeds = [seed_of(output / f"door_{n}.png") for n in range(2, 6)]
    assert sorted(seeds) == [3, 3, 4, 4]
    for n in range(2, 7):
        with Image.open(output / f"door_{n}.png") as image:
            assert image.size == (64, 64)
        assert (output / f"door_{n}.png").stat().st_mode & 0o111 == 0  # not executable
    calls = {(output / f"door_{n}.txt").read_text() for n in range(2, 7)}
    assert len(calls) == 5 and not any("--output" in c for c in calls)  # recipes only
    assert any("in the style of Escher" in c for c in calls)

    listing = sorted(str(p.relative_to(tasks)) for p in tasks.rglob("*") if p.is_file())
    assert listing == [
        ".doorways-tasks.lock", "a.txt.done", "alice/task_b.txt.done", "alice/task_b_ERROR.txt",
        "bad.json.error", "bad_ERROR.txt", "c.json.done", "sample.txt",
    ]  # fmt: skip
    refused = (tasks / "bad_ERROR.txt").read_text()
    assert "could not be run: bad.json" in refused
    assert "- iterations: 7000 is outside this server's limit of 1 to 6000" in refused
    assert "- out_folder: '../up' must not contain .." in refused
    assert "renamed to bad.json.error" in refused
    failed = (tasks / "alice" / "task_b_ERROR.txt").read_text()
    assert failed.count("image not found:") == 2 and "missing.png" in failed
    assert "No image was made" in failed
    assert list(summary.refused) == ["bad.json"] and len(summary.failed) == 2
    assert summary.finished == ["a.txt", "alice/task_b.txt", "c.json"] and not summary.waiting
    assert not (tmp_path / "out" / "alice").exists() or not any((tmp_path / "out/alice").iterdir())

    again = await run_folder(tasks, settings_for(tmp_path), worker=worker)
    assert again.files == 0 and not again.made and not again.refused
    assert (tasks / "bad_ERROR.txt").read_text() == refused


@module_loop
@pytest.mark.timeout(120)
async def test_hostile_images_are_lines_in_the_error_file(
    worker: WorkerHandle, tmp_path: Path
) -> None:
    """Init images and image prompts that declare 30000×30000 pixels, end early or carry a
    huge text chunk: one line each in STEM_ERROR.txt; an animated GIF paints its first frame."""
    folder, output = tmp_path / "tasks", tmp_path / "out" / "output"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(hostile.png_declaring(30000, 30000))
    (folder / "cut.png").write_bytes(hostile.truncated_png())
    (folder / "zip.png").write_bytes(hostile.png_with_text("zTXt", 64 << 20))
    (folder / "door.gif").write_bytes(hostile.animated("GIF"))
    (folder / "a.txt").write_text(task_text("bad", style=["", "Klee"], init_image="bomb.png"))
    (folder / "b.txt").write_text(task_text("bad", init_image="cut.png"))
    (folder / "c.txt").write_text(task_text("bad", image_prompts="zip.png"))
    (folder / "d.txt").write_text(task_text("gif", init_image="door.gif"))

    summary = await run_folder(folder, settings_for(tmp_path), worker=worker)

    assert len(summary.failed) == 4 and made(output, "gif") == ["gif_1.png"]
    assert made(output, "bad") == [] and summary.finished == ["a.txt", "b.txt", "c.txt", "d.txt"]
    errors = {name: (folder / f"{name}_ERROR.txt").read_text() for name in "abc"}
    assert errors["a"].count("bomb.png declares 30000×30000 pixels (900,000,000)") == 2
    assert "cut.png as an image: image file is truncated" in errors["b"]
    assert "zip.png carries more than 1,048,576 bytes of PNG text" in errors["c"]
    assert all(e.count("\n- ") == e.count("- ") for e in errors.values())  # a line each
    assert not (folder / "d_ERROR.txt").exists()


@module_loop
@pytest.mark.timeout(120)
async def test_a_missing_model_leaves_the_file_for_the_next_run(
    worker: WorkerHandle, tmp_path: Path
) -> None:
    """An undownloaded model is the server's problem: no .done, no ERROR, progress kept."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "a.txt").write_text(task_text("door", vqgan="vqgan_imagenet_f16_1024"))
    summary = await run_folder(tasks, settings_for(tmp_path), worker=worker)
    assert not summary.made and not summary.failed and len(summary.waiting) == 1
    assert "doorways models download vqgan_imagenet_f16_1024" in summary.waiting[0]
    assert (tasks / "a.txt").exists() and progress_path(tasks / "a.txt").exists()
    assert not (tasks / "a_ERROR.txt").exists()


@pytest.mark.timeout(120)
def test_tasks_run_exits_1_while_pictures_wait_for_a_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`doorways tasks run` (its own worker) where one file's model is not downloaded: the
    other file is made and done, that one waits for the next run, and the exit status is 1,
    so a timer or a script does not take the night's work for done."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "a.txt").write_text(task_text("door"))
    (tasks / "b.txt").write_text(task_text("gate", vqgan="vqgan_imagenet_f16_1024"))
    argv = [
        "tasks", "run", str(tasks), "--out-root", str(tmp_path / "out"), *TINY_FLAGS,
        "--device", "cpu", "--threads", "1",
    ]  # fmt: skip
    assert cli.main(argv) == 1
    assert made(tmp_path / "out" / "output", "door") == ["door_1.png"]
    assert (tasks / "a.txt.done").exists() and (tasks / "b.txt").exists()
    assert "doorways models download vqgan_imagenet_f16_1024" in caplog.text


@module_loop
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("count", "handed"),
    [(1, ["a.txt#1", "a.txt#2", "a.txt#1~2"]), (2, ["a.txt#1-2", "a.txt#1-2~2"])],
)
async def test_a_worker_crash_is_tried_again(
    worker: WorkerHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    count: int,
    handed: list[str],
) -> None:
    """kill -9 of the worker in the middle of an image (or a batch of two): a fresh worker
    makes it, handed out once more as NAME#N~2."""
    tasks, output = tmp_path / "tasks", tmp_path / "out" / "output"
    tasks.mkdir()
    (tasks / "a.txt").write_text(task_text("door", iterations=12, each=2, seed=1, count=count))
    ids = handed_out(worker, monkeypatch)
    restarts = worker.health().restarts
    run = asyncio.ensure_future(run_folder(tasks, settings_for(tmp_path), worker=worker))
    async with asyncio.timeout(60):
        while worker.health().job_id is None:
            await asyncio.sleep(0.05)
    pid = worker.health().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    summary = await asyncio.wait_for(run, 100)
    assert made(output, "door") == ["door_1.png", "door_2.png"]
    assert sorted(seed_of(output / n) for n in made(output, "door")) == [1, 2]
    assert summary.finished == ["a.txt"] and not summary.failed
    assert worker.health().restarts == restarts + 1 and ids == handed


@module_loop
@pytest.mark.timeout(150)
async def test_a_killed_run_is_finished_by_the_next(worker: WorkerHandle, tmp_path: Path) -> None:
    """SIGKILL to `doorways tasks run` (and its worker) after the first picture: the next run
    makes the rest, with the seeds drawn the first time, repeating no finished picture."""
    tasks, output = tmp_path / "tasks", tmp_path / "out" / "output"
    tasks.mkdir()
    (tasks / "a.txt").write_text(task_text("door", iterations=12, each=3))
    command = [
        str(Path(sys.executable).with_name("doorways")), "tasks", "run", str(tasks),
        "--out-root", str(tmp_path / "out"), "--vqgan", "tiny", "--clip", "tiny",
        "--device", "cpu", "--threads", "1",
    ]  # fmt: skip
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(command, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 100
        while not made(output, "door"):
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "no picture within 100 s"
            time.sleep(0.02)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the runner and its worker, mid-batch
        first.wait()
    before = {name: (output / name).read_bytes() for name in made(output, "door")}
    assert 1 <= len(before) < 3, "the whole batch finished before the kill"
    seeds = json.loads(progress_path(tasks / "a.txt").read_text())["seeds"]
    assert len(set(seeds)) == 3 and (tasks / "a.txt").exists()

    summary = await run_folder(tasks, settings_for(tmp_path), worker=worker)

    names = made(output, "door")
    assert names == ["door_1.png", "door_2.png", "door_3.png"]
    assert all((output / name).read_bytes() == data for name, data in before.items())
    assert len(summary.made) + len(before) == 3  # nothing made twice
    assert sorted(seed_of(output / name) for name in names) == sorted(seeds)
    assert summary.finished == ["a.txt"] and (tasks / "a.txt.done").exists()
    assert not progress_path(tasks / "a.txt").exists()
    assert not [p for p in output.iterdir() if p.name.startswith(".")]  # no leftovers


@module_loop
@pytest.mark.timeout(150)
async def test_count_paints_the_repetitions_in_batches(
    worker: WorkerHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """each 5, count 4: one batch of four and one picture alone; every picture is OUT_FILE_N
    with its own seed, and its call string (naming the batch and its index) repaints it
    exactly; no grid or temporary file is left."""
    tasks, output = tmp_path / "tasks", tmp_path / "out" / "output"
    tasks.mkdir()
    (tasks / "a.txt").write_text(task_text("door", each=5, count=4, seed=3))
    ids = handed_out(worker, monkeypatch)
    summary = await run_folder(tasks, settings_for(tmp_path), worker=worker)
    assert ids == ["a.txt#1-4", "a.txt#5"]
    names = made(output, "door")
    assert names == [f"door_{n}.png" for n in range(1, 6)] and len(summary.made) == 5
    assert [seed_of(output / name) for name in names] == [3, 4, 5, 6, 7]  # in order
    assert summary.finished == ["a.txt"] and not summary.failed
    assert sorted(p.name for p in output.iterdir()) == sorted(
        [*names, *(n.replace(".png", ".txt") for n in names)]
    )  # no grid, nothing hidden
    calls = {n: (output / n).with_suffix(".txt").read_text() for n in names}
    batched = [n for n in names if "--count 4 --index" in calls[n]]
    assert len(batched) == 4 and sum("--count" not in call for call in calls.values()) == 1
    picture = output / batched[1]
    call = picture.with_suffix(".txt").read_text().strip()
    assert "--count 4 --index" in call
    monkeypatch.chdir(tmp_path)
    assert cli.main([*shlex.split(call)[1:], "--device", "cpu", "-o", "again.png"]) == 0
    with Image.open(picture) as first, Image.open(tmp_path / "again.png") as again:
        assert again.tobytes() == first.tobytes()


@pytest.mark.timeout(120)
async def test_a_run_on_two_workers(tmp_path: Path) -> None:
    """--devices cpu,cpu: the run starts a pool of two worker processes, paints every
    picture (on both at once) and stops them."""
    tasks, output = tmp_path / "tasks", tmp_path / "out" / "output"
    tasks.mkdir()
    (tasks / "a.txt").write_text(task_text("door", each=[4]))
    settings = replace(settings_for(tmp_path), devices=("cpu", "cpu"), threads=1)
    summary = await run_folder(tasks, settings)
    assert made(output, "door") == [f"door_{n}.png" for n in range(1, 5)]
    assert summary.finished == ["a.txt"] and not summary.failed

"""The task folder on the bot's schedule, end to end: a FakeDiscord, the real bot and its one
worker process with tiny models, a task folder on disk. The schedule fires by a clock the test
sets (bot/exts/nightly/_runner.now); what is asserted is what the folder's owner and the people
see: the runvqgan semantics of `doorways tasks run` (OUT_FILE_N, .done, _ERROR.txt, progress
files), pictures taking turns with people's jobs on the same worker, and a restart that
finishes the run without painting any picture again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import json
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.bot import DoorwaysBot
from bot.exts.nightly._runner import FolderRunner, run_settings
from bot.fakediscord import FakeDiscord, Permission, User
from engine.config import TasksConfig
from engine.request import Request
from engine.tasks import FolderRun, progress_path
from engine.worker import Health, Job
from tests.bot.running import command, result_of, running_bot, tiny_settings

pytestmark = pytest.mark.timeout(240)


def task_text(out_file: str, iterations: int = 3, **fields: Any) -> str:
    """A tiny-model task file: 64×64, 2 cutouts."""
    data: dict[str, Any] = {
        "text": ["A painting of a door|stone:0.5"], "out_file": [out_file],
        "iterations": [iterations], "resolution": [64, 64], "cutn": [2], "augments": "none",
    }  # fmt: skip
    return json.dumps({**data, **fields})


def made(folder: Path, stem: str) -> list[str]:
    """Names of the finished pictures stem_N.png in folder, in number order."""
    found = [p for p in folder.glob(f"{stem}_*.png") if p.stat().st_size > 0]
    return sorted((p.name for p in found), key=lambda n: int(n.rsplit("_", 1)[1][:-4]))


def seed_of(png: Path) -> int:
    """The picture's own seed (a batch's picture: the batch's seed and its index)."""
    with Image.open(png) as image:
        request = Request.from_call_string(image.text["parameters"])  # type: ignore[attr-defined]
    assert request.seed is not None
    return request.seed + (request.index or 1) - 1


def set_clock(monkeypatch: pytest.MonkeyPatch, start: dt.datetime) -> Callable[[dt.datetime], None]:
    """The runner's clock runs from `start` at the real pace; the returned function sets it
    anew. The runner reads it every 0.1 s while it waits."""
    origin = [start, time.monotonic()]

    def clock() -> dt.datetime:
        return origin[0] + dt.timedelta(seconds=time.monotonic() - origin[1])

    def reset(to: dt.datetime) -> None:
        origin[:] = [to, time.monotonic()]

    # The module the next bot will load: unloading an extension drops its modules, and
    # loading it imports them again (into sys.modules, where this finds them first).
    runner = importlib.import_module("bot.exts.nightly._runner")
    monkeypatch.setattr(runner, "now", clock)
    monkeypatch.setattr(runner, "MAX_SLEEP", 0.1)
    return reset


async def until(check: Callable[[], object | None], timeout: float) -> None:
    """Until `check()` is not None (polls state the bot keeps outside the store)."""
    async with asyncio.timeout(timeout):
        while check() is None:
            await asyncio.sleep(0.05)


def runner_of(bot: DoorwaysBot) -> FolderRunner:
    runner = getattr(bot.get_cog("Nightly"), "runner", None)
    assert runner is not None
    return runner


def admin(fake: FakeDiscord) -> User:
    return fake.create_user("mod", roles=[fake.create_role("Admins", int(Permission.MANAGE_GUILD))])


async def say(fake: FakeDiscord, user: User, subcommand: str, group: str = "nightly") -> str:
    handle = await fake.slash(user, fake.channel, group, {}, subcommand=subcommand)
    await handle.wait_response(timeout=3.0)
    assert handle.original is not None and handle.original.ephemeral, handle.errors
    return handle.original.content


async def test_the_schedule_runs_the_folder_between_peoples_jobs(
    fake_discord: FakeDiscord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At run_at the bot runs its task folder as `doorways tasks run` would — pictures
    OUT_FILE_N beside what is there, .done, an _ERROR.txt for a file that cannot run, the
    samples left alone — on its own worker, one picture (or batch: `count`) at a time,
    taking turns with a person's jobs queued before it (who was never served goes first,
    then in turn)."""
    fake = fake_discord
    tasks, out = tmp_path / "tasks", tmp_path / "out"
    (tasks / "alice").mkdir(parents=True)
    (out / "output").mkdir(parents=True)
    (out / "output" / "door_1.png").write_bytes(b"someone else's")
    (tasks / "a.txt").write_text(task_text("door", each=3, seed=5, count=2))
    (tasks / "alice" / "task_b.txt").write_text(task_text("bdoor", out_folder="alice"))
    (tasks / "bad.json").write_text(task_text("x", iterations=7000))
    (tasks / "sample.txt").write_text(task_text("sample"))
    at = dt.time(23, 0)
    reset = set_clock(monkeypatch, dt.datetime(2026, 3, 1, 12, 0))
    config = TasksConfig(output_root=out, folder=tasks, run_at=at)
    settings = tiny_settings(tmp_path, max_pending=10, tasks=config)

    async with running_bot(fake, settings) as bot:
        runner = runner_of(bot)
        assert runner.next_at == dt.datetime(2026, 3, 1, 23, 0) and runner.current is None
        handed: list[str] = []
        submit = bot.scheduler.pool.submit

        def record(job: Job) -> None:
            handed.append(job.job_id)
            submit(job)

        bot.scheduler.pool.submit = record  # type: ignore[method-assign]
        await bot.scheduler.pause()
        person = fake.create_user("ada")
        handles = [
            await command(fake, person, "imagine", {"prompt": "a door", "iterations": 2})
            for _ in range(2)
        ]
        reset(dt.datetime(2026, 3, 1, 22, 59, 59))
        await until(lambda: runner.current, timeout=10)
        await bot.scheduler.resume()
        await until(lambda: runner.last, timeout=120)
        for handle in handles:
            await result_of(fake, handle)

        people = [str(job.id) for job in await bot.store.jobs()]
        assert handed == [
            people[0], "nightly:a.txt#1-2", people[1], "nightly:a.txt#3",
            "nightly:alice/task_b.txt#1",
        ]  # fmt: skip
        assert [h.restarts for h in bot.scheduler.pool.health()] == [0]  # one worker did it all
        assert runner.next_at == dt.datetime(2026, 3, 2, 23, 0)
        status = await say(fake, admin(fake), "status")

    assert made(out / "output", "door") == ["door_1.png", "door_2.png", "door_3.png", "door_4.png"]
    assert (out / "output" / "door_1.png").read_bytes() == b"someone else's"
    assert [seed_of(out / "output" / f"door_{n}.png") for n in (2, 3, 4)] == [5, 6, 7]
    assert "--seed 5 --count 2 --index 2" in (out / "output" / "door_3.txt").read_text()
    assert not [p for p in (out / "output").iterdir() if p.name.startswith(".")]
    assert made(out / "alice", "bdoor") == ["bdoor_1.png"]
    assert (out / "alice" / "bdoor_1.txt").read_text().startswith("doorways generate")
    listing = sorted(str(p.relative_to(tasks)) for p in tasks.rglob("*") if p.is_file())
    assert listing == [
        ".doorways-tasks.lock", "a.txt.done", "alice/task_b.txt.done", "bad.json.error",
        "bad_ERROR.txt", "sample.txt",
    ]  # fmt: skip
    assert (
        "iterations: 7000 is outside this server's limit" in (tasks / "bad_ERROR.txt").read_text()
    )
    assert f"**Task folder:** `{tasks}`" in status
    assert "every day at 23:00, next 2026-03-02 23:00" in status
    assert (
        "3 task file(s): 2 done, 1 refused (ERROR), 0 image(s) waiting; 4 image(s) made" in status
    )


async def test_a_restart_finishes_the_run_without_painting_again(
    fake_discord: FakeDiscord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/nightly run starts the folder at once (for the bot's owner only); the bot stopped after its
    first picture, the next start goes on with the rest, at the seeds drawn the first time,
    and paints no finished picture again."""
    fake = fake_discord
    tasks, out = tmp_path / "tasks", tmp_path / "out" / "output"
    tasks.mkdir()
    (tasks / "a.txt").write_text(task_text("door", iterations=12, each=3))
    config = TasksConfig(output_root=tmp_path / "out", folder=tasks)  # no run_at: on demand
    settings = tiny_settings(tmp_path, tasks=config)
    mod, person = admin(fake), fake.create_user("ben")

    async with running_bot(fake, settings) as bot:
        runner = runner_of(bot)
        with pytest.raises(PermissionError, match="/nightly: it needs the Manage Server"):
            await say(fake, person, "run")
        assert "none (`tasks.run_at`); runs on `/nightly run`" in await say(fake, mod, "status")
        assert "Only the bot's owner" in await say(fake, mod, "run")  # a server's admin
        assert "runs now" in await say(fake, fake.owner, "run")  # the application's owner
        assert "being run already" in await say(fake, fake.owner, "run")
        await until(lambda: made(out, "door") or None, timeout=60)
        status = await say(fake, mod, "status")
        assert re.search(r"\*\*Running:\*\* [0-2] of 3 picture\(s\) made", status), status
    first = {name: (out / name).read_bytes() for name in made(out, "door")}
    assert 1 <= len(first) < 3, "the whole run finished before the stop"
    progress = json.loads(progress_path(tasks / "a.txt").read_text())
    assert (tasks / "a.txt").exists() and len(set(progress["seeds"])) == 3

    async with running_bot(fake, settings) as bot:  # goes on at start-up, unasked
        runner = runner_of(bot)
        await until(lambda: runner.last, timeout=120)

    names = made(out, "door")
    assert names == ["door_1.png", "door_2.png", "door_3.png"]
    assert all((out / name).read_bytes() == data for name, data in first.items())
    assert sorted(seed_of(out / name) for name in names) == sorted(progress["seeds"])
    assert (tasks / "a.txt.done").exists() and not progress_path(tasks / "a.txt").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


async def test_admin_status_shows_the_task_folder_picture_painting(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    """While the worker paints a picture of the task folder, /admin status names it rather
    than saying that nothing paints; kill -9 of the worker meanwhile: a fresh worker paints
    it again as the run's retry (a.txt#1~2); once the run is stopped, nothing paints."""
    fake = fake_discord
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "a.txt").write_text(task_text("door", iterations=6000))  # outlasts the test
    config = TasksConfig(output_root=tmp_path / "out", folder=tasks)
    mod = admin(fake)

    async with running_bot(fake, tiny_settings(tmp_path, tasks=config)) as bot:
        assert ", nothing painting" in await say(fake, mod, "status", group="admin")
        assert "runs now" in await say(fake, fake.owner, "run")
        await until(lambda: bot.scheduler.batch_job_ids or None, timeout=30)
        status = await say(fake, mod, "status", group="admin")
        assert "**Queue:** 0 waiting, task folder picture `nightly:a.txt#1` painting" in status
        assert "nothing painting" not in status

        def health() -> Health:
            [only] = bot.scheduler.pool.health()  # one worker
            return only

        await until(lambda: health().job_since, timeout=30)  # painting, not queued
        pid = health().pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await until(lambda: health().job_id == "nightly:a.txt#1~2" or None, timeout=30)
        assert health().restarts == 1 and health().pid != pid
        status = await say(fake, mod, "status", group="admin")
        assert "task folder picture `nightly:a.txt#1~2` painting" in status
        await runner_of(bot).stop()  # cancels the picture; the next run goes on with it
        await until(lambda: None if bot.scheduler.batch_job_ids else True, timeout=30)
        assert ", nothing painting" in await say(fake, mod, "status", group="admin")


def test_nightly_requests_carry_the_bots_engine_settings(tmp_path: Path) -> None:
    """The folder's pictures are painted with the operator's engine.precision, engine.compile,
    engine.cutn and models where a task file sets none; what a task file sets, it keeps.
    Previews (progress.preview_every) are for people's jobs only."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    plain = json.loads(task_text("plain"))
    del plain["cutn"]
    (tasks / "a.txt").write_text(json.dumps(plain))
    own = {"cutn": [4], "precision": ["fp32"], "compile": ["max-autotune"], "kernels": ["fast"]}
    (tasks / "b.txt").write_text(task_text("own", **own))
    config = TasksConfig(output_root=tmp_path / "out", folder=tasks)
    settings = tiny_settings(
        tmp_path, tasks=config, cutn=3, precision="bf16", compile="reduce-overhead",
        kernels="deterministic",
    )  # fmt: skip

    with FolderRun(tasks, run_settings(settings)) as run:
        jobs = [job for _ in range(2) if (job := run.next_job()) is not None]
    first, second = (Request.from_json(job.request_json) for job in jobs)
    assert (first.precision, first.compile, first.cutn) == ("bf16", "reduce-overhead", 3)
    assert (first.kernels, second.kernels) == ("deterministic", "fast")
    assert (first.vqgan, first.clip, first.preview_every) == ("tiny", "tiny", 0)
    assert (second.precision, second.compile, second.cutn) == ("fp32", "max-autotune", 4)

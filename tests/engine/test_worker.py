"""The worker: real spawned processes with tiny models, plus the job runner in-process.

One worker is started for the module (a spawn imports torch: seconds) and shared by the
tests that leave it serving; its last test stops it.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
import torch
from PIL import Image

from engine import loop
from engine.prompts import Prompt
from engine.request import Request
from engine.worker import (
    TERMINAL,
    Cancelled,
    Done,
    Event,
    Failed,
    Job,
    Painted,
    Progress,
    Started,
    WorkerError,
    WorkerHandle,
    describe_exit,
    is_device_failure,
    is_out_of_memory,
    oom_message,
    suggest_size,
)
from engine.worker.painter import DeviceBroken, Models, Painter
from tests import hostile_images as hostile

module_loop = pytest.mark.asyncio(loop_scope="module")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tiny_request(iterations: int = 3, **changes: Any) -> Request:
    """A tiny-model request: 64×64, 4 cutouts, seed 1 unless changed."""
    fields: dict[str, Any] = {"size": (64, 64), "cutn": 4, "seed": 1, "vqgan": "tiny"}
    fields.update(clip="tiny", iterations=iterations, **changes)
    return Request(prompts=(Prompt("a red door"), Prompt("a blue door")), **fields)


class Watcher:
    """Reads a handle's event stream for one test, keeping everything it saw."""

    def __init__(self, handle: WorkerHandle) -> None:
        self.stream = handle.events()
        self.seen: list[Event] = []

    async def until(self, predicate: Callable[[Event], bool], timeout: float = 60.0) -> Event:
        for event in self.seen:
            if predicate(event):
                return event
        async with asyncio.timeout(timeout):
            async for event in self.stream:
                self.seen.append(event)
                if predicate(event):
                    return event
        raise AssertionError("the event stream ended")

    async def progress(self, job_id: str, timeout: float = 60.0) -> Progress:
        event = await self.until(lambda e: e.job_id == job_id and isinstance(e, Progress), timeout)
        assert isinstance(event, Progress)
        return event

    async def final(self, job_id: str, timeout: float = 60.0) -> Event:
        return await self.until(lambda e: e.job_id == job_id and isinstance(e, TERMINAL), timeout)

    def of(self, job_id: str) -> list[Event]:
        return [e for e in self.seen if e.job_id == job_id]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def worker() -> AsyncIterator[WorkerHandle]:
    """One CPU worker for the module; spawned children inherit DOORWAYS_MODELS."""
    assert os.environ.get("DOORWAYS_MODELS"), "tests/conftest.py sets the model dir"
    handle = WorkerHandle("cpu", threads=1, progress_interval=0.2)
    await handle.start()
    yield handle
    await handle.stop(timeout=10)


# --- real worker processes ------------------------------------------------------------------


@module_loop
@pytest.mark.timeout(90)
async def test_three_jobs_run_in_order_and_write_pngs(worker: WorkerHandle, tmp_path: Path) -> None:
    """Three jobs give Started, Progress…, Done each, one after another, each with its PNG;
    only the first one's Started says it loads models."""
    watcher = Watcher(worker)
    requests = {
        "a": tiny_request(),
        "b": tiny_request(seed=2, preview_every=1),
        "c": tiny_request(iterations=2, seed=None),
    }
    for job_id, request in requests.items():
        worker.submit(Job.of(job_id, request, tmp_path / f"{job_id}.png"))
    for job_id in requests:
        await watcher.final(job_id)

    finals = [e for e in watcher.seen if isinstance(e, TERMINAL)]
    assert [e.job_id for e in finals] == ["a", "b", "c"]
    # One at a time: each job's events are contiguous.
    assert [e.job_id for e in watcher.seen] == sorted(e.job_id for e in watcher.seen)
    # The first job loads the models (none were preloaded); the next ones find them resident.
    started = [e for e in watcher.seen if isinstance(e, Started)]
    assert [e.loads_models for e in started] == [True, False, False]
    for job_id, request in requests.items():
        events = watcher.of(job_id)
        assert isinstance(events[0], Started) and isinstance(events[-1], Done), events
        progress = [e for e in events if isinstance(e, Progress)]
        iterations = [p.iteration for p in progress]
        assert iterations[0] == 1 and iterations[-1] == request.iterations
        assert iterations == sorted(set(iterations))
        if request.preview_every:
            assert iterations == list(range(1, request.iterations + 1))
        for p in progress:
            assert p.total == request.iterations and p.it_per_s > 0 and p.eta_s >= 0
            assert set(p.losses) >= {"prompt", "total"}
            assert all(isinstance(v, float) for v in p.losses.values())
            if request.preview_every:
                assert p.preview_png is not None and p.preview_png.startswith(PNG_SIGNATURE)
            else:
                assert p.preview_png is None
        done = events[-1]
        assert isinstance(done, Done)
        assert done.paths == (str(tmp_path / f"{job_id}.png"), str(tmp_path / f"{job_id}.txt"))
        with Image.open(done.png) as image:
            assert image.format == "PNG" and image.size == (64, 64)
            assert image.text["parameters"] == done.call_string  # type: ignore[attr-defined]
        assert Path(done.paths[1]).read_text().strip() == done.call_string
        assert (
            Request.from_call_string(done.call_string) == request.replace(seed=done.seed).recipe()
        )
        assert 0 <= done.load_s < done.total_s and 0 < done.first_step_s < done.total_s
    assert requests["a"].seed == 1 and requests["c"].seed is None
    assert worker.health().models == ("vqgan:tiny", "clip:tiny")


@module_loop
@pytest.mark.timeout(60)
async def test_health_reports_the_running_job(worker: WorkerHandle, tmp_path: Path) -> None:
    """health(): alive, pid, device and the running job since it started."""
    idle = worker.health()
    assert idle.alive and idle.pid and idle.device == "cpu"
    assert idle.job_id is None and idle.queued == 0 and idle.restarts == 0
    watcher = Watcher(worker)
    worker.submit(Job.of("long", tiny_request(1000), tmp_path / "long.png"))
    worker.submit(Job.of("next", tiny_request(), tmp_path / "next.png"))
    await watcher.progress("long")
    busy = worker.health()
    started = watcher.of("long")[0]
    assert isinstance(started, Started)
    assert busy.alive and busy.pid == idle.pid and busy.device == "cpu"
    assert busy.job_id == "long" and busy.job_since == started.at <= time.time()
    assert busy.queued == 1 and busy.models == ("vqgan:tiny", "clip:tiny")
    assert worker.cancel("next") and worker.cancel("long")
    assert isinstance(await watcher.final("long"), Cancelled)
    assert isinstance(await watcher.final("next"), Cancelled)


@module_loop
@pytest.mark.timeout(60)
async def test_cancel_running_job_then_next_runs(worker: WorkerHandle, tmp_path: Path) -> None:
    """The running job stops within 2 s of cancel(); queued jobs cancel at once; the next runs."""
    watcher = Watcher(worker)
    worker.submit(Job.of("doomed", tiny_request(1000), tmp_path / "doomed.png"))
    worker.submit(Job.of("queued", tiny_request(), tmp_path / "queued.png"))
    worker.submit(Job.of("after", tiny_request(), tmp_path / "after.png"))
    with pytest.raises(ValueError, match="already queued or running"):
        worker.submit(Job.of("after", tiny_request(), tmp_path / "again.png"))
    assert worker.cancel("queued")
    assert isinstance(await watcher.final("queued", timeout=1), Cancelled)
    await watcher.progress("doomed")
    asked = time.perf_counter()
    assert worker.cancel("doomed")
    assert isinstance(await watcher.final("doomed", timeout=2), Cancelled)
    assert time.perf_counter() - asked < 2
    assert isinstance(await watcher.final("after"), Done)
    assert not (tmp_path / "doomed.png").exists() and not (tmp_path / "queued.png").exists()
    assert not worker.cancel("after") and not worker.cancel("no such job")
    assert [e.job_id for e in watcher.seen if isinstance(e, Started)] == ["doomed", "after"]


@module_loop
@pytest.mark.timeout(60)
async def test_jobs_that_cannot_run_fail_and_the_next_runs(
    worker: WorkerHandle, tmp_path: Path
) -> None:
    """Bad JSON, impossible sizes, unknown files and undownloaded models fail with the fix."""
    watcher = Watcher(worker)
    good = tiny_request().to_dict()
    bad = {
        "small": json.dumps({**good, "size": [10, 10]}),  # hand-written: Request never saw it
        "typo": json.dumps({**good, "iterations": 3, "cutz": 4}),
        "broken": "{not json",
        "nofile": json.dumps({**good, "vqgan": str(tmp_path / "missing.ckpt")}),
        "absent": json.dumps({**good, "clip": "ViT-B/32"}),  # a registry model, not downloaded
    }
    for job_id, text in bad.items():
        worker.submit(Job(job_id, text, str(tmp_path / f"{job_id}.png")))
    worker.submit(Job.of("fine", tiny_request(), tmp_path / "fine.png"))

    failures = {job_id: await watcher.final(job_id) for job_id in bad}
    assert all(isinstance(f, Failed) for f in failures.values()), failures
    kinds = {job_id: f.kind for job_id, f in failures.items() if isinstance(f, Failed)}
    messages = {job_id: f.message for job_id, f in failures.items() if isinstance(f, Failed)}
    assert kinds == {
        "small": "bad_request", "typo": "bad_request", "broken": "bad_request",
        "nofile": "bad_request", "absent": "model_missing",
    }  # fmt: skip
    assert messages["small"] == "width must be between 16 and 4096, not 10"
    assert "cutz" in messages["typo"]
    assert "missing.ckpt" in messages["nofile"] and "unknown vqgan model" in messages["nofile"]
    assert "`doorways models download ViT-B/32`" in messages["absent"]
    fine = await watcher.final("fine")
    assert isinstance(fine, Done) and Path(fine.png).is_file()
    # The missing CLIP was found missing before anything was evicted.
    assert fine.load_s < 0.5 and worker.health().models == ("vqgan:tiny", "clip:tiny")


@module_loop
@pytest.mark.timeout(60)
async def test_event_loop_never_stalls(worker: WorkerHandle, tmp_path: Path) -> None:
    """A 10 ms ticker keeps ticking (gaps < 100 ms) through a whole job with previews."""
    watcher = Watcher(worker)
    gaps: list[float] = []
    running = True

    async def tick() -> None:
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    submitted = time.perf_counter()
    worker.submit(Job.of("ticked", tiny_request(20, preview_every=2), tmp_path / "t.png"))
    await watcher.progress("ticked")
    first_progress = time.perf_counter() - submitted
    done = await watcher.final("ticked")
    running = False
    await ticker
    assert isinstance(done, Done)
    assert len(gaps) > 20 and max(gaps) < 0.1, f"longest gap {max(gaps) * 1000:.0f} ms"
    print(
        f"\nsubmit → first progress {first_progress * 1000:.0f} ms (models resident), "
        f"first step {done.first_step_s * 1000:.0f} ms, job {done.total_s:.2f} s, "
        f"longest loop gap {max(gaps) * 1000:.0f} ms"
    )


@module_loop
@pytest.mark.timeout(90)
async def test_kill_9_fails_the_job_and_a_fresh_worker_runs_the_rest(
    worker: WorkerHandle, tmp_path: Path
) -> None:
    """SIGKILL mid-job: that job fails as a crash within 5 s; the queued jobs run on a new pid."""
    watcher = Watcher(worker)
    worker.submit(Job.of("victim", tiny_request(1000), tmp_path / "victim.png"))
    worker.submit(Job.of("next1", tiny_request(), tmp_path / "next1.png"))
    worker.submit(Job.of("next2", tiny_request(), tmp_path / "next2.png"))
    await watcher.progress("victim")
    old_pid = worker.health().pid
    assert old_pid is not None
    killed = time.perf_counter()
    os.kill(old_pid, signal.SIGKILL)
    failed = await watcher.final("victim", timeout=5)
    assert time.perf_counter() - killed < 5
    assert isinstance(failed, Failed) and failed.kind == "crash"
    assert "SIGKILL" in failed.message
    for job_id in ("next1", "next2"):
        assert isinstance(await watcher.final(job_id), Done)
    health = worker.health()
    assert health.alive and health.pid not in (None, old_pid) and health.restarts == 1
    assert health.device == "cpu" and health.queued == 0


@module_loop
@pytest.mark.timeout(60)
async def test_stop_abandons_the_running_job_and_returns_the_queued(
    worker: WorkerHandle, tmp_path: Path
) -> None:
    """stop(): the running job is cancelled, queued jobs come back, events end, pid exits."""
    watcher = Watcher(worker)
    worker.submit(Job.of("running", tiny_request(1000), tmp_path / "running.png"))
    queued = Job.of("waiting", tiny_request(), tmp_path / "waiting.png")
    worker.submit(queued)
    await watcher.progress("running")
    pid = worker.health().pid
    first, second = await asyncio.gather(worker.stop(timeout=10), worker.stop())
    assert first == [queued] and second == []  # given back once, to the first caller
    assert isinstance(await watcher.final("running", timeout=1), Cancelled)
    assert [e async for e in watcher.stream] == []  # the stream has ended
    assert not worker.health().alive
    with pytest.raises(ProcessLookupError):
        assert pid is not None
        os.kill(pid, 0)
    with pytest.raises(RuntimeError, match="stopping"):
        worker.submit(Job.of("late", tiny_request(), tmp_path / "late.png"))


@pytest.mark.timeout(60)
async def test_start_fails_with_the_workers_reason() -> None:
    """A device the worker cannot use fails start() with the worker's own message."""
    handle = WorkerHandle("cuda:99")
    with pytest.raises(WorkerError, match="cuda:99"):
        await handle.start()
    assert not handle.health().alive


# --- the job runner in this process (fake loop: no models) --------------------------------


LOSS_READS: list[int] = []  # iterations whose losses the runner read (a device sync each)


class _CountingProgress(loop.Progress):
    def loss_values(self) -> dict[str, float]:
        LOSS_READS.append(self.iteration)
        return super().loss_values()


def _fake_generate(
    iterations: int, *, fail_at: int | None = None, error: Exception | None = None,
    preview_every: int = 0, on_step: Callable[[int], None] = lambda i: None,
    closed: list[bool] | None = None,
) -> Callable[..., Iterator[loop.Progress | loop.Finished]]:  # fmt: skip
    """A stand-in for engine.loop.generate with the same events."""

    def generate(request: Request, vqgan: object, clip: object) -> Iterator[Any]:
        try:
            for i in range(1, iterations + 1):
                if i == fail_at:
                    assert error is not None
                    raise error
                image = torch.rand(3, 32, 48) if preview_every and i % preview_every == 0 else None
                on_step(i)
                yield _CountingProgress(i, iterations, {"total": torch.tensor(1.0 / i)}, image)
            final, done = torch.rand(3, 32, 48), request.replace(seed=7)
            yield loop.Finished(final, done, 0.1, (final,), (done,))
        finally:
            if closed is not None:
                closed.append(True)

    return generate


@dataclass
class Runner:
    painter: Painter
    events: list[Event]
    emptied: list[bool]
    cancel: SimpleNamespace  # .value: the seq of the job to cancel, as in the worker process

    def run(self, seq: int, job: Job) -> Event:
        """Paint a job as the worker process does (saving the picture); its final event."""
        for item in self.painter.paint(job, lambda: bool(self.cancel.value == seq)):
            if isinstance(item, Painted):
                self.events.append(item.save(job.output))
            elif isinstance(item, (Started, Progress, *TERMINAL)):
                self.events.append(item)
        return self.events[-1]


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> Runner:
    """A painter on "cuda" with fake models and a fake loop: nothing touches a device."""
    emptied: list[bool] = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    painter = Painter(torch.device("cuda"), progress_interval=60.0)
    monkeypatch.setattr(painter.models, "get", lambda vqgan, clip: (object(), object()))
    LOSS_READS.clear()
    return Runner(painter, [], emptied, SimpleNamespace(value=-1))


def test_losses_are_read_only_when_reported(
    runner: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With a long interval: progress (and a device sync) on the first, preview and last steps."""
    monkeypatch.setattr(loop, "generate", _fake_generate(10, preview_every=4))
    done = runner.run(1, Job.of("j", tiny_request(10), tmp_path / "j.png"))
    events = runner.events
    assert isinstance(events[0], Started)
    progress = [e for e in events if isinstance(e, Progress)]
    assert [p.iteration for p in progress] == [1, 4, 8, 10]
    assert LOSS_READS == [1, 4, 8, 10]
    assert [p.preview_png is not None for p in progress] == [False, True, True, False]
    with Image.open(io.BytesIO(progress[1].preview_png or b"")) as preview:
        assert preview.size == (48, 32)
    assert progress[-1].losses == {"total": pytest.approx(0.1)} and progress[-1].eta_s == 0
    assert isinstance(done, Done) and done.seed == 7 and Path(done.png).is_file()


def test_out_of_memory_fails_only_that_job(
    runner: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """CUDA OOM: failed/out_of_memory with a smaller size, the cache emptied, the next job runs."""
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr(loop, "generate", _fake_generate(5, fail_at=3, error=oom))
    big = tiny_request(5).replace(size=(1024, 768))
    failed = runner.run(1, Job.of("big", big, tmp_path / "b.png"))
    assert isinstance(failed, Failed) and failed.kind == "out_of_memory"
    assert "1024×768 is too large for this GPU (cuda)" in failed.message
    assert "try at most 848×640" in failed.message
    assert runner.emptied

    monkeypatch.setattr(loop, "generate", _fake_generate(2))
    assert isinstance(runner.run(2, Job.of("small", tiny_request(2), tmp_path / "s.png")), Done)


def test_other_errors_fail_as_internal_and_the_runner_goes_on(
    runner: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A bug in the loop fails the job as internal, with the error's type and text."""
    error = ZeroDivisionError("division by zero")
    monkeypatch.setattr(loop, "generate", _fake_generate(5, fail_at=2, error=error))
    failed = runner.run(1, Job.of("bug", tiny_request(5), tmp_path / "bug.png"))
    assert isinstance(failed, Failed) and failed.kind == "internal"
    assert failed.message == "internal error: ZeroDivisionError: division by zero"
    monkeypatch.setattr(loop, "generate", _fake_generate(2))
    assert isinstance(runner.run(2, Job.of("next", tiny_request(2), tmp_path / "n.png")), Done)


def test_a_cuda_error_fails_the_job_as_a_crash_and_ends_the_worker(
    runner: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """After a CUDA error other than OOM the context is unusable: report, then exit."""
    error = torch.AcceleratorError("CUDA error: an illegal memory access was encountered")
    monkeypatch.setattr(loop, "generate", _fake_generate(5, fail_at=2, error=error))
    with pytest.raises(DeviceBroken):
        runner.run(1, Job.of("gpu", tiny_request(5), tmp_path / "gpu.png"))
    failed = runner.events[-1]
    assert isinstance(failed, Failed) and failed.kind == "crash"
    assert "illegal memory access" in failed.message and "tried again" in failed.message


def test_cancel_flag_stops_between_iterations_and_closes_the_loop(
    runner: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The seq in the shared value cancels that job after the current step; others ignore it."""
    closed: list[bool] = []
    steps: list[int] = []

    def cancel_at_3(i: int) -> None:
        steps.append(i)
        if i == 3:
            runner.cancel.value = 5

    fake = _fake_generate(9, on_step=cancel_at_3, closed=closed)
    monkeypatch.setattr(loop, "generate", fake)
    assert runner.run(5, Job.of("c", tiny_request(9), tmp_path / "c.png")) == Cancelled("c")
    assert steps == [1, 2, 3] and closed == [True]  # stopped after the step it was in
    # Cancelled before it starts: no Started, no step.
    assert runner.run(5, Job.of("again", tiny_request(9), tmp_path / "a.png")) == Cancelled("again")
    assert steps == [1, 2, 3] and not isinstance(runner.events[-2], Started)
    assert isinstance(runner.run(6, Job.of("other", tiny_request(9), tmp_path / "o.png")), Done)


def test_a_hostile_input_image_fails_that_job_only(
    runner: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A decompression bomb as init image or image prompt: bad_request, one line, nothing
    painted; an animated init image paints, with a warning in the log."""
    monkeypatch.setattr(loop, "generate", _fake_generate(2))
    bomb, gif = tmp_path / "bomb.png", tmp_path / "door.gif"
    bomb.write_bytes(hostile.png_declaring(30000, 30000))
    gif.write_bytes(hostile.animated("GIF"))
    for n, changes in enumerate(
        [{"init_image": str(bomb)}, {"image_prompts": (Prompt(str(bomb)),)}]
    ):
        failed = runner.run(n, Job.of(f"bad{n}", tiny_request(2, **changes), tmp_path / "b.png"))
        assert isinstance(failed, Failed) and failed.kind == "bad_request"
        assert failed.message.startswith(f"{bomb} declares 30000×30000 pixels (900,000,000)")
        assert "\n" not in failed.message and not (tmp_path / "b.png").exists()
    done = runner.run(5, Job.of("gif", tiny_request(2, init_image=str(gif)), tmp_path / "g.png"))
    assert isinstance(done, Done)
    assert f"job gif: {gif} is animated: its first frame is used" in caplog.text


def test_a_picture_its_folder_cannot_take_is_saved_in_the_fallback(
    runner: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The job's folder is a file (or full): Done with the PNG in data/outputs and a warning;
    with nowhere to save, the job fails with each place named, and the runner goes on."""
    monkeypatch.setenv("DOORWAYS_MODELS", str(tmp_path / "data" / "models"))
    monkeypatch.setattr(loop, "generate", _fake_generate(2))
    (tmp_path / "gone").write_text("a file where the folder was")
    done = runner.run(1, Job.of("j", tiny_request(2), tmp_path / "gone" / "job-1.png"))
    assert isinstance(done, Done) and done.png == str(tmp_path / "data" / "outputs" / "job-1.png")
    assert Path(done.png).is_file() and Path(done.paths[1]).is_file()
    assert f"could not save to {tmp_path / 'gone' / 'job-1.png'}" in caplog.text

    (tmp_path / "data" / "outputs").rename(tmp_path / "data" / "was")
    (tmp_path / "data" / "outputs").write_text("a file")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "gone"))
    failed = runner.run(2, Job.of("k", tiny_request(2), tmp_path / "gone" / "job-2.png"))
    assert isinstance(failed, Failed) and failed.kind == "internal"
    assert failed.message.startswith("could not save the picture anywhere")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert isinstance(runner.run(3, Job.of("l", tiny_request(2), tmp_path / "l.png")), Done)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1024, 768), (848, 640)),
        ((450, 300), (368, 240)),
        ((16, 16), (16, 16)),
        ((40, 17), (32, 16)),
    ],
)
def test_suggest_size(size: tuple[int, int], expected: tuple[int, int]) -> None:
    """About 70% of the area, multiples of 16, never below 16."""
    assert suggest_size(*size) == expected
    width, height = expected
    assert width % 16 == 0 and height % 16 == 0


def test_error_helpers() -> None:
    """OOM is recognised by type or text; exits are described by signal name."""
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: not enough memory: you tried"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))
    assert oom_message(tiny_request().replace(size=(16, 16)), "cuda:0") == (
        "too large for this GPU (cuda:0): try fewer cutouts than 4"
    )
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(-11) == "killed by SIGSEGV"
    assert describe_exit(1) == "exit code 1"
    assert "CUDA error" in describe_exit(3)
    assert is_device_failure(RuntimeError("CUDA error: device-side assert triggered"))
    assert is_device_failure(RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED when calling"))
    assert not is_device_failure(RuntimeError("CUDA error: out of memory"))  # an OOM
    assert not is_device_failure(RuntimeError("shape mismatch"))


def test_a_painter_keeps_every_clip_of_a_list_resident(
    small_clip_path: Path, tmp_path: Path
) -> None:
    """A job with two CLIPs (tiny at 224 px, a second tiny at 128) paints with both loaded
    and named; the cache is keyed by the list's models, not their weights, and a new list
    keeps the models it shares with the old one instead of loading them again."""
    painter = Painter(torch.device("cpu"))
    pair = f"tiny,{small_clip_path}:0.5"
    items = list(
        painter.paint(Job.of("two", tiny_request().replace(clip=pair), tmp_path / "2.png"), bool)
    )
    painted = items[-1]
    assert isinstance(painted, Painted) and f"--clip {pair}" in painted.call_string
    names = ("vqgan:tiny", "clip:tiny", f"clip:{small_clip_path}")
    assert [item.names for item in items if isinstance(item, Models)] == [names]
    assert painter.models.resident("tiny", f"tiny,{small_clip_path}:3")
    assert not painter.models.resident("tiny", "tiny")
    tiny = painter.models.get("tiny", pair)[1][0]
    assert painter.models.get("tiny", "tiny")[1] == (tiny,)  # kept: the very same model
    assert painter.models.names() == ("vqgan:tiny", "clip:tiny")

"""On a real CUDA GPU: every precision paints, the worker paints there and survives a kill
and an out-of-memory picture, deterministic kernels repeat a picture exactly, and bench
reports VRAM. Skipped without CUDA (CI has none); `doorways gpu-report` runs them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import torch
from PIL import Image

from engine import loop, models
from engine.outputs import read_request, save_png
from engine.prompts import Prompt
from engine.request import Request

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def cuda_request(**changes: Any) -> Request:
    fields: dict[str, Any] = {
        "size": (128, 128), "iterations": 8, "cutn": 8, "seed": 5, "vqgan": "tiny",
        "clip": "tiny", "device": "cuda", "panorama": "smooth", "mirror": 0.5,
        "semantic_weight": 0.1, "tone_weight": 1.0, "sobel_weight": 0.1,
        "augments": ("affine", "perspective", "blur", "noise"),
    }  # fmt: skip
    fields.update(changes)
    return Request(prompts=(Prompt("a red door"), Prompt("a blue door")), **fields)


@pytest.fixture(scope="module")
def cuda_models() -> tuple[models.VQGAN, models.CLIP]:
    device = torch.device("cuda")
    return models.load_vqgan("tiny", device), models.load_clip("tiny", device)


def paint(request: Request, cuda_models: tuple[models.VQGAN, models.CLIP]) -> loop.Finished:
    events = list(loop.generate(request, *cuda_models))
    for event in events[:-1]:
        assert isinstance(event, loop.Progress)
        for name, value in event.loss_values().items():
            assert torch.isfinite(torch.tensor(value)), f"{name} is {value} at {event.iteration}"
    finished = events[-1]
    assert isinstance(finished, loop.Finished)
    return finished


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_each_precision_paints_finite_losses_and_a_valid_png(
    precision: str, cuda_models: tuple[models.VQGAN, models.CLIP], tmp_path: Path
) -> None:
    request = cuda_request(precision=precision)
    finished = paint(request, cuda_models)
    assert torch.isfinite(finished.image).all() and finished.image.std() > 0
    path = save_png(finished.image, finished.request, tmp_path / f"{precision}.png", "cuda")
    with Image.open(path) as image:
        image.verify()
    assert read_request(path) == finished.request.recipe()


def test_deterministic_kernels_repeat_a_picture_exactly(
    cuda_models: tuple[models.VQGAN, models.CLIP],
) -> None:
    """The fast kernels may differ from run to run; --kernels deterministic may not."""
    request = cuda_request(kernels="deterministic", iterations=12)
    first, second = (paint(request, cuda_models).image for _ in range(2))
    assert torch.equal(first, second), f"max difference {(first - second).abs().max():.3g}"


def test_an_iteration_never_makes_the_host_wait(
    cuda_models: tuple[models.VQGAN, models.CLIP],
) -> None:
    """No step reads from or copies Python data to the GPU, so the CPU queues work ahead.
    (The first step copies the few constant tensors once.)"""
    events = loop.generate(cuda_request(iterations=4), *cuda_models)
    next(events)
    torch.cuda.set_sync_debug_mode("error")
    try:
        next(events)
        next(events)
    finally:
        torch.cuda.set_sync_debug_mode("default")
        events.close()


def test_bench_reports_vram_on_cuda() -> None:
    argv = ["bench", "--vqgan", "tiny", "--clip", "tiny", "--size", "128", "128", "--cutn", "8"]
    completed = subprocess.run(
        [sys.executable, "-m", "engine.cli", *argv, "--iterations", "3", "--device", "cuda"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    result = json.loads(completed.stdout)
    assert result["device"].startswith("cuda") and result["device_name"] != "cpu"
    assert 0 < result["peak_vram_mib"] <= result["peak_vram_reserved_mib"]
    assert result["precision"] in ("bf16", "fp32") and result["s_per_it"] > 0


# --- the worker process on the GPU -------------------------------------------------------

module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gpu_worker() -> AsyncIterator[Any]:
    from engine.worker import WorkerHandle

    handle = WorkerHandle("cuda", progress_interval=0.2)
    await handle.start()
    yield handle
    await handle.stop(timeout=20)


async def _final(stream: AsyncIterator[Any], job_id: str, seen: list[Any]) -> Any:
    from engine.worker import TERMINAL

    async with asyncio.timeout(240):
        async for event in stream:
            seen.append(event)
            if event.job_id == job_id and isinstance(event, TERMINAL):
                return event
    raise AssertionError("the event stream ended")


@module_loop
@pytest.mark.timeout(600)
async def test_worker_paints_on_cuda_survives_a_kill_and_an_oversized_picture(
    gpu_worker: Any, tmp_path: Path
) -> None:
    from engine.worker import Done, Failed, Job, Progress

    stream = gpu_worker.events()
    seen: list[Any] = []
    gpu_worker.submit(Job.of("first", cuda_request(), tmp_path / "first.png"))
    done = await _final(stream, "first", seen)
    assert isinstance(done, Done) and Path(done.png).is_file()
    health = gpu_worker.health()
    assert health.device.startswith("cuda") and health.device_memory > 0

    # Killed mid-job: that job fails as a crash, a fresh process paints the next one.
    gpu_worker.submit(Job.of("victim", cuda_request(iterations=100_000), tmp_path / "v.png"))
    gpu_worker.submit(Job.of("after-kill", cuda_request(), tmp_path / "after-kill.png"))
    async with asyncio.timeout(120):
        async for event in stream:
            seen.append(event)
            if event.job_id == "victim" and isinstance(event, Progress):
                break
    old_pid = gpu_worker.health().pid
    os.kill(old_pid, signal.SIGKILL)
    crashed = await _final(stream, "victim", seen)
    assert isinstance(crashed, Failed) and crashed.kind == "crash"
    assert isinstance(await _final(stream, "after-kill", seen), Done)
    assert gpu_worker.health().pid != old_pid

    # Far more than any card holds (about 270 GB by engine.memory): the out-of-memory
    # answer, and the same process paints the next picture.
    huge = cuda_request(
        size=(4096, 4096), cutn=64, precision="fp32", iterations=2,
        vqgan="random:vqgan_imagenet_f16_16384", clip="random:ViT-B/32",
    )  # fmt: skip
    pid = gpu_worker.health().pid
    gpu_worker.submit(Job.of("huge", huge, tmp_path / "huge.png"))
    gpu_worker.submit(Job.of("after-oom", cuda_request(), tmp_path / "after-oom.png"))
    failed = await _final(stream, "huge", seen)
    assert isinstance(failed, Failed) and failed.kind == "out_of_memory", failed
    assert "too large for this GPU" in failed.message and "try at most" in failed.message
    assert isinstance(await _final(stream, "after-oom", seen), Done)
    assert gpu_worker.health().pid == pid

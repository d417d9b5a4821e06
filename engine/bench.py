"""`doorways bench`: seconds per iteration and peak memory of the real loop.

Times engine.loop.generate itself (not a copy), so what it measures is what users get.
Models may be `random:NAME`, the full-size architecture with random weights, so speed can
be measured without downloading anything.
"""

import json
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from engine import models
from engine.loop import Finished, generate, latent_size, resolve_precision
from engine.prompts import Prompt
from engine.request import Request


def peak_ram_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cuda_mib(counter: Callable[[torch.device], int], device: torch.device) -> float | None:
    return round(counter(device) / 2**20, 1) if device.type == "cuda" else None


def bench(request: Request, warmup: int, rounds: int = 1) -> dict[str, Any]:
    """Load the request's models, run it and return the measurements as one flat dict; a
    batch (count > 1) is compared with one picture at a time over `rounds` rounds."""
    device = models.resolve_device(request.device)
    started = time.perf_counter()
    vqgan = models.load_vqgan(request.vqgan, device)
    clips = models.load_clips(request.clips, device)
    load_seconds = time.perf_counter() - started
    result = {**measure(request, vqgan, clips, warmup), "load_s": round(load_seconds, 2)}
    if request.count > 1:
        batch = result["s_per_it_min"]
        result.update(batch_against_separate(request, batch, vqgan, clips, warmup, rounds))
    return result


def batch_against_separate(
    request: Request,
    batch_s_per_it: float,
    vqgan: models.VQGAN,
    clips: Sequence[models.CLIP],
    warmup: int,
    rounds: int = 1,
) -> dict[str, Any]:
    """Seconds per picture and iteration: the batch of request.count against one picture at a
    time (N separate runs take N times one run's), and how much faster the batch is.

    Each run counts its fastest iteration, and `rounds` rounds alternate one picture alone
    and the batch (the first batch is `batch_s_per_it`, measured already): a busy machine
    only ever adds time, and the load changes from minute to minute, so the minimum over
    interleaved rounds is what compares fairly there; the medians show the spread."""
    batches, singles = [batch_s_per_it], []
    for round_ in range(rounds):
        if round_:
            batches.append(measure(request, vqgan, clips, warmup)["s_per_it_min"])
        singles.append(measure(request.replace(count=1), vqgan, clips, warmup)["s_per_it_min"])
    per_picture = min(batches) / request.count
    single = min(singles)
    return {
        "s_per_image_it_batch": round(per_picture, 4),
        "s_per_image_it_separate": single,
        "batch_speedup": round(single / per_picture, 2) if per_picture else None,
        "s_per_image_it_batch_median": round(statistics.median(batches) / request.count, 4),
        "s_per_image_it_separate_median": round(statistics.median(singles), 4),
        "rounds": rounds,
    }


def measure(
    request: Request, vqgan: models.VQGAN, clips: Sequence[models.CLIP], warmup: int
) -> dict[str, Any]:
    """Run `request` on loaded models; seconds per iteration and peak memory of this run."""
    device = vqgan.codebook.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times: list[float] = []
    warmup_peak = None
    sync()
    last = time.perf_counter()
    for event in generate(request, vqgan, clips):
        if isinstance(event, Finished):
            break
        sync()  # per-iteration timing needs the device to finish; the loop itself never waits
        now = time.perf_counter()
        times.append(now - last)
        if len(times) == warmup and device.type == "cuda":
            # cuDNN's benchmark mode tries algorithms with whatever workspace the card has
            # free during the first iterations: the steady state is what a job needs.
            warmup_peak = _cuda_mib(torch.cuda.max_memory_allocated, device)
            torch.cuda.reset_peak_memory_stats(device)
        last = time.perf_counter()
    timed = times[warmup:] or times
    tokens_x, tokens_y = latent_size(request, vqgan.factor)
    return {
        "s_per_it": round(statistics.median(timed), 4),
        "s_per_it_min": round(min(timed), 4),
        "iterations": len(timed),
        "warmup": min(warmup, len(times)),
        "peak_ram_mib": round(peak_ram_mib(), 1),
        "peak_vram_mib": _cuda_mib(torch.cuda.max_memory_allocated, device),
        "peak_vram_warmup_mib": warmup_peak,
        # what the caching allocator held at most: nearer to what the card must have free
        "peak_vram_reserved_mib": _cuda_mib(torch.cuda.max_memory_reserved, device),
        "precision": resolve_precision(request.precision, device),
        "compile": request.compile,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "size": [tokens_x * vqgan.factor, tokens_y * vqgan.factor],
        "cutn": request.cutn,
        "count": request.count,
        "vqgan": request.vqgan,
        "clip": request.clip,
        "torch": torch.__version__,
    }


def bench_request(
    vqgan: str,
    clip: str,
    size: tuple[int, int],
    cutn: int,
    iterations: int,
    device: str,
    count: int = 1,
) -> Request:
    """The benchmark's request: a two-prompt panorama with the symmetry terms on."""
    return Request(
        prompts=(Prompt("entrance to heaven"), Prompt("entrance to hell")),
        size=size, iterations=iterations, cutn=cutn, seed=0, vqgan=vqgan, clip=clip,
        device=device, panorama="smooth", mirror=0.5, semantic_weight=0.1, tone_weight=1.0,
        count=count,
    )  # fmt: skip


def print_report(result: dict[str, Any]) -> None:
    """One JSON line on stdout for scripts, a table on stderr for people."""
    print(json.dumps(result, sort_keys=True))
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:>{width}}  {value}", file=sys.stderr)


def throughput(
    request: Request, jobs: int, devices: list[str], threads: int | None = None
) -> dict[str, Any]:
    """Jobs per hour through a pool of worker processes, one per device: `jobs` copies of
    `request` (seeds 0, 1, …) painted as a queue of people's jobs would be, models loaded
    before the clock starts."""
    import asyncio
    import tempfile

    from engine.worker import TERMINAL, Done, Job
    from engine.worker.pool import local_pool

    async def run(folder: str) -> dict[str, Any]:
        pool = local_pool(devices, threads=threads, preload=(request.vqgan, request.clip))
        await pool.start()
        try:
            while not all(health.models for health in pool.health()):
                await asyncio.sleep(0.05)
            begun = time.perf_counter()
            for seed in range(jobs):
                pool.submit(Job.of(str(seed), request.replace(seed=seed), f"{folder}/{seed}.png"))
            finished, done = 0, 0
            async for event in pool.events():
                if isinstance(event, TERMINAL):
                    finished += 1
                    done += isinstance(event, Done)
                    if finished == jobs:
                        break
            seconds = time.perf_counter() - begun
        finally:
            await pool.stop()
        return {
            "jobs": jobs,
            "done": done,
            "workers": len(devices),
            "devices": devices,
            "seconds": round(seconds, 2),
            "jobs_per_hour": round(jobs * 3600 / seconds, 1),
            "s_per_job": round(seconds / jobs, 3),
            "iterations": request.iterations,
            "size": list(request.size),
            "cutn": request.cutn,
            "vqgan": request.vqgan,
            "clip": request.clip,
            "threads": threads,
        }

    with tempfile.TemporaryDirectory(prefix="doorways-bench-") as folder:
        return asyncio.run(run(folder))

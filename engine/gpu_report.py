"""`doorways gpu-report`: what a GPU tells us about Doorways, as one Markdown report.

On a CUDA machine, in about five minutes on an H100/H200 (the budget leaves out the
slowest optional parts when time runs short):

1. the GPU tests (`pytest -m cuda`), when run from a checkout that has tests/;
2. speed and peak VRAM of the full-size models (random weights: no download) at the sizes
   the memory model was fitted to, in fp32 and bf16;
3. bf16 with `--compile` at the speed target's size (448×304, 32 cutouts: ≤ 10 ms/it);
4. the same request twice, with the fast and the deterministic kernels: pixels that differ;
5. where the time goes (torch profiler's top kernels) when the target is missed;
6. the memory model (engine/memory.py) refitted to the measured fp32 peaks.

Without CUDA it says why and prints what it would run.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.clips import model_names, parse_clips

TARGET_S_PER_IT = 0.010  # at 448×304, 32 cutouts, bf16, on an H100 or H200


@dataclass(frozen=True)
class Setup:
    """What the report measures. The defaults are the GPU report; a test shrinks them to run
    the same code on a CPU with tiny models."""

    device: str = "cuda"
    vqgan: str = "random:vqgan_imagenet_f16_16384"
    clip: str = "random:ViT-B/32"
    target: tuple[int, int, int] = (448, 304, 32)  # the speed target's picture: W, H, cutouts
    # The memory model's sizes (engine/memory.py), then one larger to test the straight line.
    sweep: tuple[tuple[int, int, int], ...] = (
        (256, 256, 32), (448, 304, 32), (512, 512, 32), (640, 640, 32), (448, 304, 8),
        (1024, 1024, 32),
    )  # fmt: skip
    precisions: tuple[str, ...] = ("fp32", "bf16")
    compile_modes: tuple[str, ...] = ("reduce-overhead", "default")
    warmup: int = 3
    timed: int = 12
    repeat_iterations: int = 20
    profiled_iterations: int = 5


def plan(setup: Setup) -> list[str]:
    """The steps, in order, as a person would read them."""
    sizes = ", ".join(f"{w}×{h}/{n}" for w, h, n in setup.sweep)
    w, h, n = setup.target
    return [
        "the GPU tests: pytest -m cuda tests/engine/test_gpu.py (from a checkout)",
        f"speed and peak VRAM, {setup.vqgan} + {setup.clip}, "
        f"{' and '.join(setup.precisions)} at {sizes} (W×H/cutouts; "
        f"{setup.warmup} warm-up + {setup.timed} timed iterations each)",
        f"if bf16 at {w}×{h}/{n} is slower than {TARGET_S_PER_IT * 1000:.0f} ms/it: "
        "torch profiler's top kernels",
        "the memory model refitted to the fp32 peaks",
        f"the same request twice ({setup.repeat_iterations} iterations, {w}×{h}, bf16), fast "
        "and deterministic kernels: how many pixels differ",
        f"bf16 at {w}×{h}/{n} with --compile {' and '.join(setup.compile_modes)}",
    ]


@dataclass
class Report:
    """Sections of Markdown, and the raw numbers behind them."""

    setup: Setup
    deadline: float
    sections: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def add(self, title: str, *lines: str) -> None:
        self.sections.append("\n".join([f"## {title}", "", *lines, ""]))
        print(self.sections[-1], file=sys.stderr, flush=True)  # progress while it runs

    def markdown(self) -> str:
        return "\n".join(["# Doorways GPU report", "", *self.sections])


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


# --- the steps ------------------------------------------------------------------------------


@functools.cache
def loaded_models(setup: Setup) -> tuple[Any, Any]:
    import torch

    from engine import models

    device = torch.device(setup.device)
    clips = models.load_clips(parse_clips(setup.clip), device)
    return models.load_vqgan(setup.vqgan, device), clips


def request_for(setup: Setup, size: tuple[int, int, int], iterations: int, **changes: Any) -> Any:
    from engine.bench import bench_request

    w, h, cutn = size
    request = bench_request(setup.vqgan, setup.clip, (w, h), cutn, iterations, setup.device)
    return request.replace(**changes)


def environment(report: Report) -> None:
    import torch

    info: dict[str, Any] = {"device": report.setup.device}
    if report.setup.device.startswith("cuda"):
        props = torch.cuda.get_device_properties(report.setup.device)
        info |= {
            "gpu": props.name,
            "memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "compute_capability": f"{props.major}.{props.minor}",
            "nvidia-smi": _nvidia_smi("name,driver_version,memory.total") or "not found",
            "cuda (torch build)": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "bf16": torch.cuda.is_bf16_supported(including_emulation=False),
        }
    info |= {"torch": torch.__version__, "python": platform.python_version()}
    report.data["environment"] = info
    report.add("Machine", *table(["", ""], [[k, v] for k, v in info.items()]))


def gpu_tests(report: Report, tests: Path | None) -> None:
    if tests is None:
        report.add("GPU tests", "not asked for")
        return
    if not tests.is_file():
        report.add("GPU tests", f"skipped: {tests} is not here (run from a checkout)")
        return
    with tempfile.TemporaryDirectory() as scratch:
        junit = Path(scratch) / "junit.xml"
        started = time.monotonic()
        command = [sys.executable, "-m", "pytest", "-m", "cuda", str(tests), "-q",
                   "-p", "no:cacheprovider", f"--junitxml={junit}"]  # fmt: skip
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - started
        rows = _junit_rows(junit) if junit.is_file() else []
    report.data["tests"] = {"exit": completed.returncode, "rows": rows, "seconds": seconds}
    tail = completed.stdout.strip().splitlines()[-1:] or ["(no output)"]
    lines = table(["test", "result", "s"], rows) if rows else []
    if completed.returncode != 0:
        lines += ["", "```", *completed.stdout.strip().splitlines()[-40:], "```"]
        lines += ["", "```", *completed.stderr.strip().splitlines()[-20:], "```"]
    report.add(f"GPU tests ({tail[0]}, {seconds:.0f} s)", *lines)


def speed_and_memory(report: Report) -> None:
    from engine.bench import measure
    from engine.memory import peak_bytes

    setup = report.setup
    vqgan, clip = loaded_models(setup)
    rows, results = [], []
    for precision in setup.precisions:
        for size in setup.sweep:
            w, h, cutn = size
            if report.time_left() < 60:
                rows.append([f"{w}×{h}", cutn, precision, "skipped: time budget", "", "", ""])
                continue
            request = request_for(setup, size, setup.warmup + setup.timed, precision=precision)
            result = _guarded(functools.partial(measure, request, vqgan, clip, setup.warmup))
            results.append({"precision": precision, "size": [w, h], "cutn": cutn, **result})
            estimate = peak_bytes(w * h, cutn, clips=model_names(setup.clip)) / 2**20
            rows.append([f"{w}×{h}", cutn, precision, *_speed_cells(result), f"{estimate:,.0f}"])
    report.data["sweep"] = results
    header = ["size", "cutouts", "precision", "ms/it (median)", "peak VRAM MiB",
              "reserved MiB", "memory model MiB"]  # fmt: skip
    report.add(f"Speed and memory ({setup.vqgan}, {setup.clip})", *table(header, rows))
    at_target = [
        r for r in results
        if r["precision"] == "bf16" and (*r["size"], r["cutn"]) == setup.target
    ]  # fmt: skip
    if at_target and at_target[0].get("s_per_it", 0) > TARGET_S_PER_IT:
        profile(report)
    fit_memory_model(report, [r for r in results if r["precision"] == "fp32"])


def repeatability(report: Report) -> None:
    from engine import loop

    setup = report.setup
    if report.time_left() < 45:
        report.add("Same request twice", "skipped: time budget")
        return
    vqgan, clip = loaded_models(setup)
    w, h, cutn = setup.target
    iterations = setup.repeat_iterations
    rows = []
    for kernels in ("fast", "deterministic"):
        request = request_for(setup, setup.target, iterations, precision="bf16", kernels=kernels)
        images, seconds = [], []
        for _ in range(2):
            started = time.monotonic()
            *_, finished = loop.generate(request, vqgan, clip)
            assert isinstance(finished, loop.Finished)
            seconds.append(time.monotonic() - started)
            images.append(finished.image.mul(255).round())
        difference = (images[0] - images[1]).abs()
        differing = int((difference.amax(0) > 0).sum())
        largest = float(difference.max())
        report.data.setdefault("repeatability", []).append(
            {"kernels": kernels, "differing_pixels": differing, "pixels": w * h,
             "max_difference_8bit": largest, "s_per_run": [round(t, 2) for t in seconds]}
        )  # fmt: skip
        ms_per_it = min(seconds) / iterations * 1000
        rows.append([kernels, f"{differing} of {w * h}", f"{largest:.0f}", f"{ms_per_it:.1f}"])
    report.add(
        f"Same request twice ({w}×{h}, {cutn} cutouts, bf16, {iterations} iterations)",
        *table(["kernels", "pixels that differ", "largest difference (of 255)", "ms/it"], rows),
    )


def compiled(report: Report) -> None:
    from engine.bench import measure

    setup = report.setup
    vqgan, clip = loaded_models(setup)
    w, h, cutn = setup.target
    rows = []
    for mode in setup.compile_modes:
        if report.time_left() < 100:
            rows.append([mode, "skipped: time budget", "", ""])
            continue
        iterations = setup.warmup + setup.timed
        request = request_for(setup, setup.target, iterations, precision="bf16", compile=mode)
        started = time.monotonic()
        result = _guarded(functools.partial(measure, request, vqgan, clip, setup.warmup))
        result["wall_s"] = round(time.monotonic() - started, 1)
        report.data.setdefault("compile", []).append({"mode": mode, **result})
        rows.append([mode, *_speed_cells(result)[:2], result["wall_s"]])
    report.add(
        f"bf16 with --compile at {w}×{h}, {cutn} cutouts",
        *table(["mode", "ms/it (median)", "peak VRAM MiB", "s in all, compiling included"], rows),
    )


def profile(report: Report) -> None:
    """Where one iteration's time goes: the top kernels, and how busy the device was."""
    import torch
    from torch.profiler import ProfilerActivity

    from engine import loop

    setup = report.setup
    vqgan, clip = loaded_models(setup)
    w, h, cutn = setup.target
    n = setup.profiled_iterations
    request = request_for(setup, setup.target, setup.warmup + n + 1, precision="bf16")
    on_gpu = setup.device.startswith("cuda")
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    events = loop.generate(request, vqgan, clip)
    for _ in range(setup.warmup):
        next(events)
    sync()
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if on_gpu else [])]
    with torch.profiler.profile(activities=activities) as prof:
        started = time.perf_counter()
        for _ in range(n):
            next(events)
        sync()
        wall = (time.perf_counter() - started) / n * 1000  # ms/it
    syncs = _host_syncs(events) if on_gpu else []
    events.close()
    timed = [e for e in prof.key_averages() if _self_time(e, on_gpu) > 0]
    if on_gpu:  # kernels only: their self time is time the GPU was busy
        timed = [e for e in timed if e.device_type.name == "CUDA"]
    busy = sum(_self_time(e, on_gpu) for e in timed) / 1000 / n  # ms/it
    calls = sum(e.count for e in timed) / n
    top = sorted(timed, key=lambda e: _self_time(e, on_gpu), reverse=True)[:15]
    rows = []
    for e in top:
        ms = _self_time(e, on_gpu) / 1000 / n
        rows.append([e.key[:70].replace("|", "/"), f"{ms:.2f}", f"{100 * ms / busy:.0f}%",
                     e.count // n])  # fmt: skip
    report.data["profile"] = {"wall_ms": wall, "busy_ms": busy, "kernels_per_it": calls}
    report.add(
        f"Where the time goes (bf16, {w}×{h}, {cutn} cutouts, profiled)",
        f"{wall:.1f} ms per iteration under the profiler; the device was busy {busy:.1f} ms "
        f"of it ({100 * busy / wall:.0f}%) in {calls:.0f} kernels. A GPU busy far less than "
        "the wall time waits on Python and kernel launches (`--compile reduce-overhead` "
        "captures them in CUDA graphs).",
        "",
        *table(["kernel", "ms/it", "share of busy time", "calls/it"], rows),
        "",
        "Lines that made the host wait for the GPU in one iteration (each stops the CPU from "
        "queueing work ahead): " + (", ".join(syncs) or "none"),
    )
    report.data["profile"]["host_syncs"] = syncs


def fit_memory_model(report: Report, fp32: list[dict[str, Any]]) -> None:
    """Least squares of reserved peak = fixed + per_pixel·pixels + per_cutout·cutouts."""
    import torch

    from engine import memory

    points = [r for r in fp32 if r.get("peak_vram_reserved_mib")]
    if len(points) < 3:
        report.add("Memory model", "not enough fp32 measurements to fit")
        return
    a = torch.tensor(
        [[1.0, r["size"][0] * r["size"][1], r["cutn"]] for r in points], dtype=torch.float64
    )
    b = torch.tensor([r["peak_vram_reserved_mib"] for r in points], dtype=torch.float64)
    fixed, per_pixel, per_cutout = torch.linalg.lstsq(a, b[:, None]).solution[:, 0].tolist()
    worst = float(
        (a @ torch.tensor([fixed, per_pixel, per_cutout], dtype=torch.float64) - b).abs().max()
    )
    fitted = {"fixed_mib": fixed, "per_pixel_mib": per_pixel, "per_cutout_mib": per_cutout,
              "worst_miss_mib": worst}  # fmt: skip
    report.data["memory_fit"] = fitted
    mib = memory.MIB
    report.add(
        "Memory model (fp32, reserved peak)",
        *table(
            ["", "engine/memory.py now", "fitted here"],
            [
                ["FIXED MiB", f"{memory.FIXED / mib:,.0f}", f"{fixed:,.0f}"],
                ["PER_PIXEL MiB", f"{memory.PER_PIXEL / mib:.4f}", f"{per_pixel:.4f}"],
                ["PER_CUTOUT MiB", f"{memory.PER_CUTOUT / mib:.1f}", f"{per_cutout:.1f}"],
            ],
        ),
        "",
        f"The fitted line misses each measured point by at most {worst:,.0f} MiB.",
    )


# --- helpers -------------------------------------------------------------------------------


def _host_syncs(events: Any) -> list[str]:
    """file:line of each synchronising CUDA call during the next iteration of `events`."""
    import warnings

    import torch

    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            next(events)
            torch.cuda.synchronize()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sorted(
        {f"{Path(w.filename).name}:{w.lineno}" for w in caught if "synchroniz" in str(w.message)}
    )


def _guarded(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A measurement, or what stopped it (one size out of memory must not end the report)."""
    import torch

    try:
        return run()
    except Exception as error:  # the report goes on; the error is in the table
        return {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"}
    finally:
        if torch.cuda.is_available():  # so the next size's reserved peak starts from nothing
            torch.cuda.empty_cache()


def _speed_cells(result: dict[str, Any]) -> list[Any]:
    if "error" in result:
        return [result["error"], "", ""]
    vram = [f"{result[key]:,.0f}" if result[key] is not None else "—"
            for key in ("peak_vram_mib", "peak_vram_reserved_mib")]  # fmt: skip
    return [f"{result['s_per_it'] * 1000:.1f}", *vram]


def _self_time(event: Any, on_gpu: bool) -> float:
    """An event's own time in µs, on the GPU (self_cuda_time_total before torch 2.4) or CPU."""
    if not on_gpu:
        return float(event.self_cpu_time_total)
    return float(
        getattr(event, "self_device_time_total", 0) or getattr(event, "self_cuda_time_total", 0)
    )


def _nvidia_smi(fields: str) -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    command = ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    return completed.stdout.strip().splitlines()[0] if completed.stdout.strip() else None


def _junit_rows(path: Path) -> list[list[Any]]:
    rows = []
    for case in ElementTree.parse(path).iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = f"**{child.tag}**: {(child.get('message') or '')[:100]}"
            elif child.tag == "skipped":
                outcome = f"skipped: {(child.get('message') or '')[:80]}"
        rows.append([case.get("name"), outcome, f"{float(case.get('time') or 0):.1f}"])
    return rows


def run(setup: Setup, tests: Path | None, budget: float) -> Report:
    """Every step in turn; one that breaks is reported and the others still run."""
    report = Report(setup, deadline=time.monotonic() + budget)
    steps: list[tuple[str, Callable[[Report], None]]] = [
        ("Machine", environment),
        ("GPU tests", functools.partial(gpu_tests, tests=tests)),
        ("Speed and memory", speed_and_memory),
        ("Same request twice", repeatability),
        ("Compiled", compiled),
    ]
    for name, step in steps:
        try:
            step(report)
        except Exception as error:  # one broken step must not lose the others' numbers
            report.add(name, f"**failed**: {type(error).__name__}: {error}")
    return report


def main(args: argparse.Namespace) -> int:
    import torch

    setup = Setup()
    if not torch.cuda.is_available():
        print("No CUDA GPU is usable here, so nothing was measured. On one, this runs:")
        for number, line in enumerate(plan(setup), 1):
            print(f"  {number}. {line}")
        print("and prints the results as Markdown (--output FILE keeps a copy).")
        return 0
    report = run(setup, Path(args.tests), args.budget)
    text = report.markdown()
    print(text)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        Path(args.output).with_suffix(".json").write_text(
            json.dumps(report.data, indent=1, default=str), encoding="utf-8"
        )
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output", metavar="FILE.md", help="also write the report here (and FILE.json)"
    )
    parser.add_argument(
        "--budget", type=float, default=420, metavar="SECONDS",
        help="leave out the slowest optional parts when this much time has passed (default 420)",
    )  # fmt: skip
    parser.add_argument(
        "--tests", default="tests/engine/test_gpu.py", metavar="PATH",
        help="the GPU tests to run first (default: tests/engine/test_gpu.py, in a checkout)",
    )  # fmt: skip

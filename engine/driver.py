"""An NVIDIA GPU that torch cannot use: why, and which torch build fixes it.

`--device auto` picks the CPU when torch sees no CUDA device. On a machine without a GPU
that is right; on one whose GPU torch cannot use (its driver is too old for this torch
build, torch is a CPU-only build, CUDA_VISIBLE_DEVICES hides the GPU) every picture takes
hours instead of seconds. `unused_gpu()` looks for an NVIDIA GPU without torch's help —
/proc/driver/nvidia (the kernel module), else `nvidia-smi` — and, when torch cannot use the
one it finds, returns the reason and the fix in one paragraph. Never imports torch at the top.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

NVIDIA_PROC = Path("/proc/driver/nvidia")
WHEEL_INDEX = "https://download.pytorch.org/whl/"

# The lowest driver each CUDA major version runs on (NVIDIA's minor version compatibility:
# a toolkit of that major release runs, with a limited feature set, from this driver on).
MIN_DRIVER = {11: (450, 80, 2), 12: (525, 60, 13), 13: (580, 65, 6)}
# torch's CUDA builds, newest first: (the driver they need for every feature, index name,
# CUDA version). A 12.x build also runs from 525.60.13 on (MIN_DRIVER), with fewer features.
BUILDS = (
    ((580, 65, 6), "cu130", "13.0"),
    ((570, 26, 0), "cu128", "12.8"),
    ((560, 28, 3), "cu126", "12.6"),
)


@dataclass(frozen=True)
class NvidiaGpu:
    """What the driver says about the machine's NVIDIA GPU(s)."""

    driver: str | None  # "550.54.15"; None when it could not be read
    name: str | None = None  # "NVIDIA GeForce RTX 3090", from nvidia-smi


def find_nvidia_gpu(proc: Path = NVIDIA_PROC, smi: str = "nvidia-smi") -> NvidiaGpu | None:
    """The machine's NVIDIA GPU as its driver reports it, or None if there is none: `smi`
    (found on PATH) answers, or the kernel module's `proc` folder exists."""
    found = shutil.which(smi)
    if found is not None:
        try:
            answer = subprocess.run(
                [found, "--query-gpu=driver_version,name", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10, check=False,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            answer = None
        if answer is not None and answer.returncode == 0 and answer.stdout.strip():
            driver, _, name = answer.stdout.strip().splitlines()[0].partition(",")
            return NvidiaGpu(driver.strip() or None, name.strip() or None)
    if proc.is_dir():
        try:
            text = (proc / "version").read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        version = re.search(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+\.\d+(?:\.\d+)?)", text)
        return NvidiaGpu(version[1] if version else None)
    return None


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """`550.54.15` → (550, 54, 15), `570.26` → (570, 26, 0); None for anything else."""
    if not text or not re.fullmatch(r"\d+(\.\d+)*", text.strip()):
        return None
    parts = tuple(int(part) for part in text.strip().split("."))
    return parts + (0,) * (3 - len(parts))


def build_for(driver: tuple[int, ...] | None) -> tuple[str, str] | None:
    """(index name, CUDA version) of the newest torch build this driver runs: fully, or for a
    12.x build under minor version compatibility (525.60.13 on); None if it runs none."""
    if driver is None:
        return None
    for needs, index, cuda in BUILDS:
        if driver >= needs:
            return index, cuda
    if driver >= MIN_DRIVER[12]:
        return "cu126", "12.6"
    return None


def diagnose(
    gpu: NvidiaGpu,
    torch_version: str,
    torch_cuda: str | None,
    visible: str | None,
    packages: str = "torch torchvision",
) -> str:
    """Why torch `torch_version` (built for CUDA `torch_cuda`, None for a CPU-only build)
    cannot use `gpu`, with `visible` the value of CUDA_VISIBLE_DEVICES (None: not set);
    and what to do about it: install `packages` (e.g. `torch==2.14.1 torchvision==0.29.1`)
    from the index of the build that suits the driver."""
    which = f"an NVIDIA GPU ({gpu.name or 'driver ' + (gpu.driver or 'unknown')})"
    driver = parse_version(gpu.driver)
    install = _install_line(driver, packages)
    if visible is not None and visible.strip() in ("", "-1", "none", "NoDevFiles"):
        return (
            f"This machine has {which}, but CUDA_VISIBLE_DEVICES={visible!r} hides it from "
            "torch. Fix: unset CUDA_VISIBLE_DEVICES (or set it to the GPU's number, e.g. 0)."
        )
    if torch_cuda is None:
        return (
            f"This machine has {which}, but torch {torch_version} is a CPU-only build. "
            f"Fix: {install}"
        )
    cuda = parse_version(torch_cuda) or (0,)
    needs = MIN_DRIVER.get(cuda[0])
    if driver is not None and needs is not None and driver < needs:
        return (
            f"This machine has {which} with driver {gpu.driver}, but torch {torch_version} is "
            f"built for CUDA {torch_cuda}, which needs driver {_dotted(needs)} or newer. "
            f"Fix: {install}"
        )
    return (
        f"This machine has {which}, but torch {torch_version} (built for CUDA {torch_cuda}) "
        'cannot use it; `python -c "import torch; torch.cuda.init()"` says why. '
        f"If the driver is too old: {install}"
    )


def _install_line(driver: tuple[int, ...] | None, packages: str) -> str:
    build = build_for(driver)
    if build is None and driver is not None:
        return (
            f"update the NVIDIA driver (this one is older than {_dotted(MIN_DRIVER[12])}, the "
            "oldest any current torch build runs on), then reinstall torch."
        )
    index, cuda = build or ("cu126", "12.6")
    return (
        f"install the torch build for CUDA {cuda}: `pip install --force-reinstall {packages} "
        f"--index-url {WHEEL_INDEX}{index}` (see docs/install.md; check with `nvidia-smi` and "
        "`doorways-bot --check`)."
    )


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(f"{part:02d}" if i else str(part) for i, part in enumerate(version))


@functools.cache
def unused_gpu() -> str | None:
    """Why this machine's NVIDIA GPU goes unused by torch, with the fix; None when torch can
    use CUDA or there is no NVIDIA GPU. Looked up once per process (this imports torch)."""
    import torch

    if torch.cuda.is_available():
        return None
    gpu = find_nvidia_gpu()
    if gpu is None:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return diagnose(gpu, torch.__version__, torch.version.cuda, visible, _installed_pair())


def _installed_pair() -> str:
    """`torch==2.14.1 torchvision==0.29.1`: the versions installed now, without the build
    tag (+cpu, +cu126), so the fix installs the same pair in another build."""
    pins = []
    for package in ("torch", "torchvision"):
        try:
            pins.append(f"{package}=={metadata.version(package).split('+')[0]}")
        except metadata.PackageNotFoundError:
            pins.append(package)
    return " ".join(pins)


def cpu_fallback_warning(device: str) -> str | None:
    """The loud line for `--device auto` that lands on the CPU although the machine has an
    NVIDIA GPU (see unused_gpu); None for any other device, or when there is no such GPU."""
    if device.strip().lower() != "auto":
        return None
    reason = unused_gpu()
    if reason is None:
        return None
    return f"WARNING: --device auto paints on the CPU: hours a picture, not seconds. {reason}"

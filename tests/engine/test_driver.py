"""An NVIDIA GPU torch cannot use: the probe (with stand-ins for /proc and nvidia-smi), the
reasons and fixes, and the one loud line `--device auto` prints."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from engine import driver
from engine.driver import NvidiaGpu, build_for, diagnose, find_nvidia_gpu, parse_version
from tests.fake_nvidia import fake_nvidia_smi

PROC_VERSION = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.133.20  Release Build  "
    "(dvs-builder@U16-I3-B03-4-3)  Fri Mar 14 06:42:53 UTC 2025\n"
    "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n"
)
GPU = NvidiaGpu("550.54.15", "NVIDIA GeForce RTX 3090")
CUDA_UNUSABLE = pytest.mark.skipif(
    torch.cuda.is_available(), reason="torch uses this machine's GPU: nothing goes unused"
)


@pytest.fixture(autouse=True)
def _fresh_probe() -> Iterator[None]:
    """unused_gpu() is looked up once per process: forget it around each test."""
    driver.unused_gpu.cache_clear()
    yield
    driver.unused_gpu.cache_clear()


def test_the_probe_reads_nvidia_smi_or_the_kernel_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nvidia-smi's answer first; without it (or when it fails), /proc/driver/nvidia/version;
    neither: no GPU."""
    proc = tmp_path / "proc" / "driver" / "nvidia"
    proc.mkdir(parents=True)
    (proc / "version").write_text(PROC_VERSION)
    nowhere = tmp_path / "none"
    assert find_nvidia_gpu(proc, smi="no-such-nvidia-smi") == NvidiaGpu("570.133.20")
    assert find_nvidia_gpu(nowhere, smi="no-such-nvidia-smi") is None

    fake_nvidia_smi(tmp_path / "bin", monkeypatch)
    assert find_nvidia_gpu(nowhere) == GPU
    fake_nvidia_smi(tmp_path / "broken", monkeypatch, fail=True)
    assert find_nvidia_gpu(nowhere) is None
    assert find_nvidia_gpu(proc) == NvidiaGpu("570.133.20")
    (proc / "version").unlink()
    assert find_nvidia_gpu(proc) == NvidiaGpu(None)  # the module is there, its version not


@pytest.mark.parametrize(
    ("version", "build"),
    [
        ("580.65.06", ("cu130", "13.0")),
        ("590.44.01", ("cu130", "13.0")),
        ("575.57.08", ("cu128", "12.8")),
        ("570.26", ("cu128", "12.8")),
        ("565.57.01", ("cu126", "12.6")),
        ("550.54.15", ("cu126", "12.6")),  # minor version compatibility (525.60.13 on)
        ("525.60.13", ("cu126", "12.6")),
        ("525.60.11", None),
        ("470.256.02", None),
        ("garbage", None),
    ],
)
def test_which_build_suits_which_driver(version: str, build: tuple[str, str] | None) -> None:
    assert build_for(parse_version(version)) == build


@pytest.mark.parametrize(
    ("gpu", "torch_cuda", "visible", "says"),
    [
        (GPU, "13.0", None, [
            "NVIDIA GeForce RTX 3090", "with driver 550.54.15", "built for CUDA 13.0",
            "needs driver 580.65.06 or newer",
            "--index-url https://download.pytorch.org/whl/cu126",
        ]),
        (NvidiaGpu("575.57.08"), "13.0", None, ["driver 575.57.08", "whl/cu128"]),
        (GPU, None, None, ["torch 2.99.0+cpu is a CPU-only build", "whl/cu126"]),
        (NvidiaGpu("590.44.01"), None, None, ["CPU-only build", "whl/cu130"]),
        (GPU, "12.6", "", ["CUDA_VISIBLE_DEVICES='' hides it", "unset CUDA_VISIBLE_DEVICES"]),
        (GPU, "12.6", "-1", ["CUDA_VISIBLE_DEVICES='-1' hides it"]),
        (NvidiaGpu("470.256.02"), "12.6", None, [
            "needs driver 525.60.13 or newer", "update the NVIDIA driver",
        ]),
        (NvidiaGpu("580.65.06"), "13.0", None, ["cannot use it", "torch.cuda.init()"]),
        (NvidiaGpu(None), "13.0", None, ["(driver unknown)", "cannot use it"]),
    ],
)  # fmt: skip
def test_the_reason_and_the_fix(
    gpu: NvidiaGpu, torch_cuda: str | None, visible: str | None, says: list[str]
) -> None:
    text = diagnose(gpu, "2.99.0+cpu" if torch_cuda is None else "2.99.0", torch_cuda, visible)
    assert "\n" not in text
    for part in says:
        assert part in text, text


@CUDA_UNUSABLE
def test_unused_gpu_looks_at_this_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the stand-in nvidia-smi: this torch's version and CUDA build in the reason; a
    CPU-only build (torch.version.cuda None) is named as such; --device cpu never warns."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake_nvidia_smi(tmp_path, monkeypatch, driver="470.256.02")
    warning = driver.cpu_fallback_warning("auto")
    assert warning is not None and warning.startswith("WARNING: --device auto paints on the CPU")
    assert f"torch {torch.__version__}" in warning
    assert driver.cpu_fallback_warning("cpu") is None
    driver.unused_gpu.cache_clear()
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "is a CPU-only build" in (driver.unused_gpu() or "")


@CUDA_UNUSABLE
def test_asking_for_cuda_says_why_it_is_not_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.models import resolve_device

    fake_nvidia_smi(tmp_path, monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ValueError, match="CUDA is not available here; This machine has an NVIDIA"):
        resolve_device("cuda")


def doorways(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("doorways")), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


TINY = ["generate", "a door", "--vqgan", "tiny", "--clip", "tiny", "--size", "32", "32"]
TINY += ["--cutn", "1", "--iterations", "1", "--preview-every", "1"]


def test_device_auto_on_the_cpu_says_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`doorways generate --device auto` (a fresh process) where CUDA_VISIBLE_DEVICES hides
    the NVIDIA GPU: painted on the CPU, and stderr has the warning once, with the fix."""
    fake_nvidia_smi(tmp_path / "bin", monkeypatch)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    made = doorways(*TINY, "-o", str(tmp_path / "a.png"), env=env)
    assert made.returncode == 0, made.stderr
    assert made.stderr.count("WARNING") == 1, made.stderr
    [line] = [line for line in made.stderr.splitlines() if "WARNING" in line]
    assert line.startswith("doorways: WARNING: --device auto paints on the CPU")
    assert "NVIDIA GeForce RTX 3090" in line and "CUDA_VISIBLE_DEVICES='' hides it" in line
    assert (tmp_path / "a.png").is_file()


@CUDA_UNUSABLE
def test_an_old_driver_is_named_with_the_build_that_suits_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Driver 550 under this torch's CUDA build: the warning names both and the cu126 index;
    `doorways bench` says it too; --device cpu says nothing."""
    from engine import cli

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake_nvidia_smi(tmp_path / "bin", monkeypatch, driver="550.54.15")
    assert cli.main([*TINY, "-o", str(tmp_path / "a.png")]) == 0
    err = capsys.readouterr().err
    assert err.count("WARNING") == 1 and "with driver 550.54.15" in err
    if torch.version.cuda is not None and int(torch.version.cuda.split(".")[0]) >= 13:
        assert "needs driver 580.65.06 or newer" in err and "whl/cu126" in err
    assert cli.main([*TINY, "--device", "cpu", "-o", str(tmp_path / "b.png")]) == 0
    assert "WARNING" not in capsys.readouterr().err
    bench = ["bench", "--vqgan", "tiny", "--clip", "tiny", "--size", "32", "32", "--cutn", "1"]
    assert cli.main([*bench, "--iterations", "1", "--warmup", "0"]) == 0
    assert capsys.readouterr().err.count("WARNING: --device auto paints on the CPU") == 1

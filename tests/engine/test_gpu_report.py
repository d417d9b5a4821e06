"""`doorways gpu-report`: without CUDA it prints its plan; its steps run end to end (on the
CPU, with tiny models), so the day a GPU runs it the report's own code is known to work."""

from __future__ import annotations

import pytest

from engine import cli, gpu_report


def test_without_cuda_it_prints_what_it_would_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert cli.main(["gpu-report"]) == 0
    out = capsys.readouterr().out
    assert "No CUDA GPU is usable here" in out
    assert "pytest -m cuda" in out and "448×304/32" in out and "--compile" in out
    assert "deterministic" in out and "profiler" in out


def test_every_step_runs_on_the_cpu_with_tiny_models() -> None:
    setup = gpu_report.Setup(
        device="cpu", vqgan="tiny", clip="tiny", target=(64, 64, 4),
        sweep=((64, 64, 4), (96, 64, 4), (64, 64, 2)), precisions=("fp32", "bf16"),
        compile_modes=(), warmup=1, timed=2, repeat_iterations=2, profiled_iterations=2,
    )  # fmt: skip
    report = gpu_report.run(setup, tests=None, budget=600)
    text = report.markdown()
    assert "**failed**" not in text, text
    assert [r["precision"] for r in report.data["sweep"]] == ["fp32"] * 3 + ["bf16"] * 3
    assert all(r["s_per_it"] > 0 for r in report.data["sweep"])
    # A CPU is deterministic either way: both kernel modes repeat the picture exactly.
    assert [r["differing_pixels"] for r in report.data["repeatability"]] == [0, 0]
    # Slower than the GPU target, so the profile says where the time went.
    assert report.data["profile"]["busy_ms"] > 0
    assert "| kernel | ms/it |" in text and "| 96×64 | 4 | fp32 |" in text

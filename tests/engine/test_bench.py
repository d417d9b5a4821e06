"""`doorways bench` reports what scripts and the docs' table read."""

import json
from typing import Any

import pytest

from engine import bench, cli
from engine.request import Request


def test_bench_prints_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    """The JSON line carries the documented keys with plausible values."""
    argv = ["bench", "--vqgan", "tiny", "--clip", "tiny", "--size", "64", "64", "--cutn", "2"]
    assert cli.main([*argv, "--iterations", "2", "--warmup", "1", "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    for key in ("s_per_it", "peak_ram_mib", "peak_vram_mib", "device", "size", "cutn", "vqgan",
                "clip", "iterations"):  # fmt: skip
        assert key in result
    assert result["s_per_it"] > 0 and result["peak_ram_mib"] > 0
    assert result["peak_vram_mib"] is None and result["peak_vram_reserved_mib"] is None
    assert result["device"] == "cpu"
    assert (result["size"], result["cutn"], result["iterations"]) == ([64, 64], 2, 2)
    assert (result["precision"], result["compile"]) == ("fp32", "off")  # auto on a CPU
    assert "s_per_it" in err  # the table for people


@pytest.mark.timeout(120)
def test_bench_jobs_reports_jobs_per_hour(capsys: pytest.CaptureFixture[str]) -> None:
    """--jobs N --devices cpu,cpu paints N whole jobs through two worker processes."""
    argv = ["bench", "--vqgan", "tiny", "--clip", "tiny", "--size", "64", "64", "--cutn", "2"]
    argv += ["--iterations", "2", "--device", "cpu", "--threads", "1"]
    assert cli.main([*argv, "--jobs", "3", "--devices", "cpu,cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["jobs"], result["done"], result["workers"]) == (3, 3, 2)
    assert result["devices"] == ["cpu", "cpu"] and result["iterations"] == 2
    assert result["jobs_per_hour"] == pytest.approx(3 * 3600 / result["seconds"], rel=0.01)


def test_bench_count_compares_a_batch_with_one_at_a_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--count N times the batch and one picture alone, and reports seconds per picture."""
    argv = ["bench", "--vqgan", "tiny", "--clip", "tiny", "--size", "32", "32", "--cutn", "2"]
    assert cli.main([*argv, "--iterations", "2", "--device", "cpu", "--count", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 2
    assert result["s_per_image_it_batch"] == pytest.approx(result["s_per_it_min"] / 2, abs=1e-4)
    assert result["s_per_image_it_separate"] > 0
    speedup = result["s_per_image_it_separate"] / result["s_per_image_it_batch"]
    assert result["batch_speedup"] == pytest.approx(speedup, rel=0.01)
    assert result["rounds"] == 1


def test_bench_rounds_alternate_and_keep_the_fastest(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--rounds R alternates one picture alone and the batch R times (the order the runs
    are measured in is single, batch, single, …, after the first batch) and reports the
    fastest of each with the medians; --rounds 0 is refused."""
    order: list[int] = []
    measure = bench.measure

    def measured(request: Request, *args: Any) -> dict[str, Any]:
        order.append(request.count)
        return measure(request, *args)

    monkeypatch.setattr(bench, "measure", measured)
    argv = ["bench", "--vqgan", "tiny", "--clip", "tiny", "--size", "32", "32", "--cutn", "2"]
    argv += ["--iterations", "2", "--device", "cpu", "--count", "2", "--rounds", "3"]
    assert cli.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert order == [2, 1, 2, 1, 2, 1] and result["rounds"] == 3
    assert result["s_per_image_it_batch"] <= result["s_per_image_it_batch_median"]
    assert result["s_per_image_it_separate"] <= result["s_per_image_it_separate_median"]
    assert cli.main([*argv[:-1], "0"]) == 2
    assert "--rounds must be 1 or more, not 0" in capsys.readouterr().err

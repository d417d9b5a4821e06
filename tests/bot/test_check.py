"""`doorways-bot --check`: one line per need, and a status that scripts can use."""

from pathlib import Path

import pytest
import torch

from bot.launcher import main
from engine import driver
from tests.fake_nvidia import fake_nvidia_smi


def run_check(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, str]]:
    """Run `doorways-bot --check …`; return the status and each check's line by name."""
    status = main(["--check", *argv])
    lines = capsys.readouterr().out.splitlines()
    return status, {line.split()[1]: line for line in lines}


def test_everything_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a token, a writable database folder, tiny models and the CPU, every line is ok."""
    monkeypatch.setenv("DISCORD_TOKEN", "a-token")
    argv = ["--db", str(tmp_path / "new" / "jobs.sqlite3"), "--vqgan", "tiny", "--clip", "tiny"]
    status, lines = run_check([*argv, "--device", "cpu"], capsys)
    assert status == 0
    assert list(lines) == ["token", "database", "vqgan", "clip", "device"]
    assert all(line.startswith("ok") for line in lines.values())
    assert "will be created on first start" in lines["database"]


def test_each_clip_of_a_list_gets_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """engine.clip with two models: one line each, and the missing one says how to get it."""
    monkeypatch.setenv("DISCORD_TOKEN", "a-token")
    argv = ["--db", str(tmp_path / "jobs.sqlite3"), "--vqgan", "tiny", "--device", "cpu"]
    assert main(["--check", *argv, "--clip", "tiny,ViT-B/16:0.5"]) == 1
    clips = [line for line in capsys.readouterr().out.splitlines() if line.split()[1] == "clip"]
    assert len(clips) == 2 and clips[0].startswith("ok") and clips[1].startswith("FAIL")
    assert "`doorways models download ViT-B/16`" in clips[1]


def test_failures_say_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No token, an unwritable database, a model not downloaded and no CUDA each fail."""
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    argv = ["--db", str(blocker / "jobs.sqlite3"), "--vqgan", "vqgan_imagenet_f16_1024"]
    status, lines = run_check([*argv, "--clip", "tiny", "--device", "cuda"], capsys)
    assert status == 1
    assert lines["token"].startswith("FAIL") and "local playground" in lines["token"]
    assert lines["database"].startswith("FAIL") and "cannot be created" in lines["database"]
    assert lines["vqgan"].startswith("FAIL")
    assert "`doorways models download vqgan_imagenet_f16_1024`" in lines["vqgan"]
    assert lines["clip"].startswith("ok")
    assert lines["device"].startswith("FAIL") and "CUDA is not available" in lines["device"]


def test_an_existing_database_is_opened_for_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An existing database that isn't SQLite is reported, not overwritten."""
    monkeypatch.setenv("DISCORD_TOKEN", "a-token")
    database = tmp_path / "jobs.sqlite3"
    database.write_bytes(b"this is not a database" * 100)
    status, lines = run_check(["--db", str(database), "--vqgan", "tiny", "--clip", "tiny"], capsys)
    assert status == 1 and "cannot be written" in lines["database"]
    assert database.read_bytes() == b"this is not a database" * 100


@pytest.mark.skipif(torch.cuda.is_available(), reason="torch uses this machine's GPU")
def test_a_gpu_torch_cannot_use_fails_the_device_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An NVIDIA GPU (the stand-in nvidia-smi) that torch cannot use: `--device auto` would
    paint on the CPU, so the device line fails with the reason and the fix."""
    monkeypatch.setenv("DISCORD_TOKEN", "a-token")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    argv = ["--db", str(tmp_path / "jobs.sqlite3"), "--vqgan", "tiny", "--clip", "tiny"]
    driver.unused_gpu.cache_clear()
    try:
        assert run_check([*argv, "--device", "auto"], capsys)[0] == 0  # no GPU: fine
        driver.unused_gpu.cache_clear()
        fake_nvidia_smi(tmp_path / "bin", monkeypatch, driver="550.54.15")
        status, lines = run_check([*argv, "--device", "auto"], capsys)
    finally:
        driver.unused_gpu.cache_clear()
    assert status == 1 and lines["device"].startswith("FAIL")
    assert "WARNING: --device auto paints on the CPU" in lines["device"]
    assert "driver 550.54.15" in lines["device"] and "--index-url" in lines["device"]
    assert all(lines[name].startswith("ok") for name in ("token", "database", "vqgan", "clip"))


def test_a_model_whose_host_is_gone_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """wikiart_16384 cannot be downloaded: the line says why, not "run models download"."""
    monkeypatch.setenv("DOORWAYS_MODELS", str(tmp_path / "models"))
    argv = ["--db", str(tmp_path / "jobs.sqlite3"), "--vqgan", "wikiart_16384", "--clip", "tiny"]
    status, lines = run_check([*argv, "--device", "cpu"], capsys)
    assert status == 1 and lines["vqgan"].startswith("FAIL")
    assert "cannot be: its only host, eaidata.bmk.sh" in lines["vqgan"]
    assert "models download" not in lines["vqgan"]

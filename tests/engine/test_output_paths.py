"""Output paths: a bad -o fails before painting; a save that fails at the end lands in a
fallback folder and says where; a picture is never lost to its path."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from engine import cli, loop
from engine.outputs import fallback_folders, png_bytes, read_request, write_png_safely
from engine.prompts import Prompt
from engine.request import Request

TINY = ["--vqgan", "tiny", "--clip", "tiny", "--size", "64", "64", "--cutn", "2"]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Models in tmp/data/models, so the first fallback folder is tmp/data/outputs."""
    monkeypatch.setenv("DOORWAYS_MODELS", str(tmp_path / "data" / "models"))
    assert fallback_folders()[0] == tmp_path / "data" / "outputs"
    return tmp_path / "data"


@pytest.mark.parametrize("where", ["/proc/x/o.png", "{tmp}/a-file/o.png", "/proc/version"])
def test_an_unwritable_output_fails_at_once_with_status_2(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before any model loads or any iteration runs: one line, exit 2."""
    (tmp_path / "a-file").write_text("a file, not a folder")
    output = where.format(tmp=tmp_path)
    began = time.perf_counter()
    argv = ["generate", "a door", *TINY, "--iterations", "500", "-o", output]
    assert cli.main(argv) == 2
    assert time.perf_counter() - began < 5  # 500 iterations would take far longer
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"doorways: error: cannot write the picture to {Path(output)}")


def _sabotaged(after: int, sabotage: Any) -> Any:
    """engine.loop.generate, calling `sabotage()` after `after` iterations (the folder is
    removed or replaced while the picture is painted)."""
    real = loop.generate

    def generate(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for event in real(*args, **kwargs):
            if isinstance(event, loop.Progress) and event.iteration == after:
                sabotage()
            yield event

    return generate


def test_a_folder_replaced_while_painting_saves_to_the_fallback(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """The output folder becomes a file mid-run: the PNG (with its recipe) goes to
    data/outputs, a warning names both places, exit 0."""
    out = tmp_path / "out"

    def replace_folder() -> None:
        shutil.rmtree(out)
        out.write_text("now a file")

    monkeypatch.setattr(loop, "generate", _sabotaged(1, replace_folder))
    argv = ["generate", "a door", *TINY, "--iterations", "2", "--seed", "3"]
    assert cli.main([*argv, "-o", str(out / "pic.png")]) == 0
    err = capsys.readouterr().err
    rescued = data_dir / "outputs" / "pic.png"
    assert f"could not save to {out / 'pic.png'} ({out}: " in err
    assert f"saved to {rescued} instead" in err and f"saved {rescued} in" in err
    assert read_request(rescued).seed == 3 and rescued.with_suffix(".txt").is_file()
    assert out.read_text() == "now a file"


def test_a_folder_removed_while_painting_is_made_again(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setattr(loop, "generate", _sabotaged(1, lambda: shutil.rmtree(tmp_path / "out")))
    argv = ["generate", "a door", *TINY, "--iterations", "2", "-o", str(tmp_path / "out/p.png")]
    assert cli.main(argv) == 0
    assert (tmp_path / "out" / "p.png").is_file() and "warning" not in capsys.readouterr().err


def test_an_unwritable_preview_is_said_once_and_painting_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder where the preview file would go: one warning, the picture is still made."""
    (tmp_path / "p.preview.png").mkdir()
    argv = ["generate", "a door", *TINY, "--iterations", "3", "--preview-every", "1"]
    assert cli.main([*argv, "-o", str(tmp_path / "p.png")]) == 0
    err = capsys.readouterr().err
    assert err.count("cannot write the preview") == 1 and "painting goes on" in err
    with Image.open(tmp_path / "p.png") as image:
        assert image.size == (64, 64)


def test_save_tries_each_fallback_and_lists_them_all(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No folder can take it: one OSError naming each place and why; no empty files left."""
    blocked = tmp_path / "blocked"
    blocked.write_text("a file")
    data_dir.mkdir()
    (data_dir / "outputs").write_text("a file too")
    monkeypatch.setattr("tempfile.tempdir", str(blocked))  # the temp folder is no folder
    request = Request(prompts=(Prompt("x"),), seed=1)
    png, call = png_bytes(torch.rand(3, 8, 8), request, "cpu"), request.to_call_string()
    with pytest.raises(OSError) as failed:
        write_png_safely(png, call, blocked / "p.png")
    message = str(failed.value)
    assert message.startswith("could not save the picture anywhere")
    for place in (blocked, data_dir / "outputs", blocked / "doorways"):
        assert f"{place}: " in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked", "data"]

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    path, note = write_png_safely(png, call, blocked / "p.png")
    assert path == tmp_path / "tmp" / "doorways" / "p.png" and read_request(path) == request
    assert note is not None and f"saved to {path} instead" in note

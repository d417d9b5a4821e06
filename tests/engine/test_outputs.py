"""Outputs: never-overwrite names, metadata, sidecars, reading parameters back."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from engine.outputs import claim_path, read_request, read_request_bytes, save_png
from engine.prompts import Prompt
from engine.request import Request


def test_claim_path_never_overwrites(tmp_path: Path) -> None:
    """Taken names get _1, _2, … and the original file is untouched."""
    (tmp_path / "out.png").write_bytes(b"mine")
    (tmp_path / "out_1.png").write_bytes(b"also mine")
    assert claim_path(tmp_path / "out.png") == tmp_path / "out_2.png"
    assert claim_path(tmp_path / "out.png") == tmp_path / "out_3.png"
    assert (tmp_path / "out.png").read_bytes() == b"mine"
    assert claim_path(tmp_path / "new" / "dir" / "x.png") == tmp_path / "new" / "dir" / "x.png"


def test_png_carries_request_and_call_string(tmp_path: Path) -> None:
    """The `parameters` and `doorways` chunks and the .txt sidecar all give the request."""
    request = Request(prompts=(Prompt("heaven"), Prompt("hell", -1.0)), seed=5, vqgan="tiny")
    watched = request.replace(output="/srv/bot/job-1.png", preview_every=10)
    path = save_png(torch.rand(3, 20, 30), watched, tmp_path / "pic", "cpu")
    assert path == tmp_path / "pic.png"
    with Image.open(path) as image:
        assert image.size == (30, 20)
        text = image.text  # type: ignore[attr-defined]
    assert text["parameters"] == request.to_call_string()
    assert '"engine_version"' in text["doorways"] and '"device": "cpu"' in text["doorways"]
    assert read_request(path) == request
    assert (tmp_path / "pic.txt").read_text().strip() == request.to_call_string()


def test_read_request_falls_back_to_call_string(tmp_path: Path) -> None:
    """A PNG with only a `parameters` chunk (JSON stripped) still gives the request."""
    from PIL import PngImagePlugin

    request = Request(prompts=(Prompt("x"),), seed=1)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", request.to_call_string())
    Image.new("RGB", (8, 8)).save(tmp_path / "p.png", pnginfo=info)
    assert read_request(tmp_path / "p.png") == request


def test_read_request_errors(tmp_path: Path) -> None:
    """Foreign PNGs and non-images get a clear message."""
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    with pytest.raises(ValueError, match="carries no Doorways parameters"):
        read_request(tmp_path / "plain.png")
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(ValueError, match="cannot read"):
        read_request(tmp_path / "text.png")


def test_read_request_bytes(tmp_path: Path) -> None:
    """A PNG in memory (a Discord attachment) gives its request; errors name it."""
    request = Request(prompts=(Prompt("heaven"),), seed=3, vqgan="tiny")
    path = save_png(torch.rand(3, 8, 8), request, tmp_path / "pic", "cpu")
    assert read_request_bytes(path.read_bytes()) == request
    with pytest.raises(ValueError, match=r"upload\.png carries no Doorways parameters"):
        Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
        read_request_bytes((tmp_path / "plain.png").read_bytes(), "upload.png")
    with pytest.raises(ValueError, match=r"cannot read upload\.png"):
        read_request_bytes(b"hello", "upload.png")

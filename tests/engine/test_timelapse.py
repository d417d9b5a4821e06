"""--timelapse: frames of the painting forming, as a GIF that keeps under the upload limit."""

from __future__ import annotations

import io
from pathlib import Path

import numpy
import pytest
import torch
from PIL import Image, ImageSequence

from engine import cli, timelapse
from engine.outputs import read_request


def test_about_sixty_frames_from_the_start_and_the_finished_picture_last() -> None:
    frames = [i for i in range(1, 501) if timelapse.is_frame(i, 500)]
    assert frames[0] == 1 and 500 not in frames  # the finished picture is added last
    assert 55 <= len(frames) + 1 <= timelapse.MAX_FRAMES + 1
    assert [i for i in range(1, 4) if timelapse.is_frame(i, 4)] == [1, 2, 3]


def test_the_gif_shrinks_to_the_limit_and_keeps_the_last_frame() -> None:
    generator = torch.Generator().manual_seed(0)
    frames = timelapse.Timelapse()
    for _ in range(12):  # noise: the worst case for GIF's compression
        frames.add(torch.rand(3, 96, 192, generator=generator))
    frames.add(torch.zeros(3, 96, 192))
    full = frames.gif(limit_bytes=2**30)
    small = frames.gif(limit_bytes=len(full) // 6)
    assert len(small) <= len(full) // 6
    with Image.open(_bytes_file(small)) as gif:
        images = [frame.convert("RGB") for frame in ImageSequence.Iterator(gif)]
        assert gif.size[0] < 192 or len(images) < 13
    assert images[-1].getextrema() == ((0, 0), (0, 0), (0, 0))  # the held last frame
    with pytest.raises(ValueError, match="no timelapse fits"):
        frames.gif(limit_bytes=100)


def _bytes_file(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)


def _pixels(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(numpy.asarray(image.convert("RGB"), dtype=numpy.float32))


def test_generate_writes_the_timelapse_beside_the_picture(tmp_path: Path) -> None:
    png, gif = tmp_path / "p.png", tmp_path / "p.gif"
    argv = ["generate", "a red door | a blue door", "--vqgan", "tiny", "--clip", "tiny",
            "--size", "64", "64", "--iterations", "5", "--cutn", "2", "--seed", "4",
            "-o", str(png), "--timelapse", str(gif), "--device", "cpu"]  # fmt: skip
    assert cli.main(argv) == 0
    with Image.open(gif) as animation:
        frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(animation)]
    assert len(frames) == 5  # iterations 1-4, then the finished picture
    with Image.open(png) as picture:
        final = _pixels(picture)
    first, last = _pixels(frames[0]), _pixels(frames[-1])
    assert (last - final).abs().mean() < 8  # the GIF's palette rounds colours a little
    assert (first - final).abs().mean() > (last - final).abs().mean()
    assert read_request(png).timelapse is None  # where it went is not part of the recipe


def test_a_timelapse_path_must_be_a_gif(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["generate", "a door", "--vqgan", "tiny", "--clip", "tiny", "--timelapse", "o.mp4"]
    assert cli.main(argv) == 2
    assert "must end in .gif" in capsys.readouterr().err

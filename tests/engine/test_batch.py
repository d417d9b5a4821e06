"""A batch of --count pictures: one pass through the networks, each picture its own and
each reproducible alone from its call string."""

import shlex
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from engine import cli
from engine.loop import Finished, generate, grid
from engine.models import CLIP, VQGAN
from engine.outputs import read_request
from engine.prompts import Prompt
from engine.request import Request

TINY: dict[str, Any] = {"vqgan": "tiny", "clip": "tiny", "device": "cpu"}
PANORAMA: dict[str, Any] = {
    "panorama": "smooth",
    "mirror": 0.5,
    "semantic_weight": 0.1,
    "tone_weight": 1.0,
}


def _finish(request: Request, vqgan: VQGAN, clip: CLIP) -> Finished:
    *_, finished = generate(request, vqgan, clip)
    assert isinstance(finished, Finished)
    return finished


def test_each_picture_of_a_batch_reproduces_from_its_own_call_string(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--count 4 writes four PNGs and a grid; each PNG's call string repaints it exactly."""
    monkeypatch.chdir(tmp_path)
    args = ["generate", "heaven | hell", "--size", "48", "32", "--iterations", "2", "--cutn", "4"]
    for key, value in TINY.items():
        args += [f"--{key}", value]
    assert cli.main([*args, "--count", "4", "--seed", "9", "-o", "batch.png"]) == 0
    assert capsys.readouterr().err.count("reproduce:") == 5  # four pictures and the grid
    pictures = []
    for index in range(1, 5):
        path = tmp_path / f"batch-{index}.png"
        call = (tmp_path / f"batch-{index}.txt").read_text().strip()
        assert read_request(path).to_call_string() == call
        assert f"--seed 9 --count 4 --index {index}" in call
        assert cli.main([*shlex.split(call)[1:], "-o", f"again-{index}.png"]) == 0
        with Image.open(path) as first, Image.open(tmp_path / f"again-{index}.png") as again:
            assert first.size == (48, 32)
            assert again.tobytes() == first.tobytes(), f"picture {index} did not reproduce"
            assert again.text["parameters"] == call  # type: ignore[attr-defined]
            pictures.append(first.tobytes())
    assert len(set(pictures)) == 4  # four seeds, four pictures
    with Image.open(tmp_path / "batch-grid.png") as tiled:
        assert tiled.size == (96, 64)
        assert read_request(tmp_path / "batch-grid.png").count == 4
        assert tiled.crop((48, 32, 96, 64)).tobytes() == pictures[3]  # bottom right: the 4th


def test_pictures_of_a_batch_do_not_steer_each_other(tiny_vqgan: VQGAN, tiny_clip: CLIP) -> None:
    """Each picture of a batch is the picture its seed paints alone, up to rounding."""
    request = Request(
        prompts=(Prompt("heaven"), Prompt("hell")), size=(64, 48), iterations=3, cutn=4, seed=3,
        init_weight=0.1, **PANORAMA, **TINY,
    )  # fmt: skip
    batch = _finish(request.replace(count=2), tiny_vqgan, tiny_clip)
    assert [r.index for r in batch.requests] == [1, 2]
    assert batch.request.index is None and batch.image.shape == (3, 48, 128)  # 1×2
    assert torch.equal(batch.image, grid(batch.images))
    for offset, picture in enumerate(batch.images):
        alone = _finish(request.replace(seed=3 + offset), tiny_vqgan, tiny_clip)
        torch.testing.assert_close(picture, alone.image, atol=1e-3, rtol=0)


def test_one_picture_is_as_it_always_was(tiny_vqgan: VQGAN, tiny_clip: CLIP) -> None:
    """--count 1 yields the picture itself, with no --count or --index in its call string."""
    request = Request(prompts=(Prompt("door"),), size=(48, 48), iterations=1, cutn=2, **TINY)
    finished = _finish(request, tiny_vqgan, tiny_clip)
    assert len(finished.images) == 1 and torch.equal(finished.images[0], finished.image)
    assert finished.requests == (finished.request,)
    assert "--count" not in finished.request.to_call_string()
    assert "--index" not in finished.request.to_call_string()


def test_grid_layouts() -> None:
    """Four tile 2×2; two and three sit in a row."""
    pictures = [torch.full((3, 2, 5), float(i)) for i in range(4)]
    assert grid(pictures).shape == (3, 4, 10)
    assert grid(pictures)[0, 2, 5].item() == 3  # bottom right
    assert grid(pictures[:2]).shape == (3, 2, 10)
    assert grid(pictures[:3]).shape == (3, 2, 15)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"count": 5}, "count must be between 1 and 4"),
        ({"count": 0}, "count must be between 1 and 4"),
        ({"index": 1}, "give --count 2 or more"),
        ({"count": 2, "index": 3}, "index must be between 1 and 2"),
        ({"count": 2, "index": 0}, "index must be between 1 and 2"),
        ({"count": 4, "seed": 2**63 - 2}, "no room for 4 pictures' seeds"),
    ],
)
def test_bad_counts_are_named(changes: dict[str, Any], message: str) -> None:
    """Counts, indices and seeds out of range are refused with the value named."""
    with pytest.raises(ValueError, match=message):
        Request(prompts=(Prompt("door"),), **changes)


def test_a_batch_call_string_round_trips() -> None:
    """--count and --index parse back into the same request."""
    request = Request(prompts=(Prompt("door"),), seed=1, count=3, index=2)
    assert Request.from_call_string(request.to_call_string()) == request
    assert Request.from_json(request.to_json()) == request
    assert [r.index for r in request.replace(index=None).pictures()] == [1, 2, 3]

"""What the techniques do, measured in the toy world (engine/quality.py).

The tiny models are untrained, so no other test can tell whether "red | blue" paints red on
the left. These paint with the toy models and hold the two claims a regression is most
likely to break — each prompt rules its own side, tone symmetry makes the picture its own
mirror image — with thresholds far below what the toy world gives (`doorways quality`
reports the full table).
"""

from __future__ import annotations

import pytest
from torch import Tensor

from engine import toy
from engine.loop import Finished, generate
from engine.models import CLIP, VQGAN
from engine.quality import (
    Comparison,
    Judge,
    Result,
    base_request,
    panorama_clip,
    panorama_pixels,
    table,
    tone_mirror,
)
from engine.request import Request


def paint(request: Request, vqgan: VQGAN, clip: CLIP) -> Tensor:
    request = request.replace(vqgan=vqgan.name, clip=clip.name, device="cpu", seed=0)
    with toy.one_thread():
        *_, finished = generate(request, vqgan, clip)
    assert isinstance(finished, Finished)
    return finished.image


def test_red_blue_paints_red_on_the_left_and_blue_on_the_right(
    toy_vqgan: VQGAN, toy_clip: CLIP
) -> None:
    """The panorama: the left third is redder and the right one bluer, in pixels (a margin of
    a tenth of the way from blue to red) and to the toy CLIP."""
    image = paint(base_request("red | blue", panorama="smooth"), toy_vqgan, toy_clip)
    pixels = panorama_pixels(image, Judge(toy_clip), "red", "blue")
    clip = panorama_clip(image, Judge(toy_clip), "red", "blue")
    print(f"red | blue: separation {pixels:.3f} in pixels, {clip:.3f} to the toy CLIP")
    assert pixels > 0.08 and clip > 0.15


def test_tone_symmetry_makes_the_picture_its_own_mirror_image(
    toy_vqgan: VQGAN, toy_clip: CLIP
) -> None:
    """--tone-symmetry 1 at least halves how much the greys differ from their mirror image."""
    plain = base_request("a yellow circle")
    judge = Judge(toy_clip)
    off = tone_mirror(paint(plain, toy_vqgan, toy_clip), judge)
    on = tone_mirror(paint(plain.replace(tone_weight=1.0), toy_vqgan, toy_clip), judge)
    print(f"grey mirror error: off {off:.3f}, on {on:.3f}")
    assert on < off / 2


def test_the_table_says_how_often_the_technique_helped() -> None:
    """Mean ± sd per column, and the seeds where "on" moved the measure the claimed way."""
    row = Comparison("tone", "grey mirror error", tone_mirror, base_request("x"),
                     base_request("x", tone_weight=1.0), higher_is_better=False)  # fmt: skip
    text = table([Result(row, off=[0.2, 0.4], on=[0.1, 0.5])])
    assert text.splitlines()[2] == (
        "| tone | grey mirror error | 0.300 ± 0.141 | 0.300 ± 0.283 | lower | 1/2 |"
    )


@pytest.mark.parametrize("seeds", ["0", "21"])
def test_quality_refuses_a_bad_seed_count(seeds: str, capsys: pytest.CaptureFixture[str]) -> None:
    from engine import cli

    assert cli.main(["quality", "--seeds", seeds]) == 2
    assert "--seeds must be between 1 and 20" in capsys.readouterr().err

"""What the techniques do, measured in the toy world (engine/quality.py).

The tiny models are untrained, so no other test can tell whether "red | blue" paints red on
the left. These paint with the toy models and hold the two claims a regression is most
likely to break — each prompt rules its own side, tone symmetry makes the picture its own
mirror image — with thresholds far below what the toy world gives (`doorways quality`
prints the whole table; docs/quality.md has it).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from engine import cli, quality, toy
from engine.models import CLIP, VQGAN
from engine.quality import (
    Comparison,
    Judge,
    Painter,
    Result,
    World,
    base_request,
    comparisons,
    measure,
    panorama_clip,
    panorama_pixels,
    table,
    tone_mirror,
)
from engine.request import Request
from engine.toy import ToyModels


@pytest.fixture
def painter(toy_vqgan: VQGAN, toy_clip: CLIP) -> Painter:
    return Painter(toy_vqgan, {toy_clip.name: toy_clip}, "cpu", {})


def toy_request(prompts: str, vqgan: VQGAN, clip: CLIP, **changes: object) -> Request:
    return base_request(prompts, vqgan=vqgan.name, clip=clip.name, seed=0, **changes)


def test_red_blue_paints_red_on_the_left_and_blue_on_the_right(
    painter: Painter, toy_vqgan: VQGAN, toy_clip: CLIP
) -> None:
    """The panorama: the left third is redder and the right one bluer, in pixels (a margin of
    a tenth of the way from blue to red) and to the toy CLIP."""
    request = toy_request("red | blue", toy_vqgan, toy_clip, panorama="smooth")
    with toy.one_thread():
        image = painter.paint(request)
    pixels = panorama_pixels(image, Judge(toy_clip), "red", "blue")
    clip = panorama_clip(image, Judge(toy_clip), "red", "blue")
    print(f"red | blue: separation {pixels:.3f} in pixels, {clip:.3f} to the toy CLIP")
    assert pixels > 0.08 and clip > 0.15


def test_tone_symmetry_makes_the_picture_its_own_mirror_image(
    painter: Painter, toy_vqgan: VQGAN, toy_clip: CLIP
) -> None:
    """--tone-symmetry 1 at least halves how much the greys differ from their mirror image."""
    plain = toy_request("a yellow circle", toy_vqgan, toy_clip)
    row = Comparison("tone", "grey mirror error", tone_mirror, plain,
                     plain.replace(tone_weight=1.0), higher_is_better=False)  # fmt: skip
    with toy.one_thread():
        (result,) = measure([row], painter, Judge(toy_clip), seeds=1)
    (off,), (on,) = result.off, result.on
    print(f"grey mirror error: off {off:.3f}, on {on:.3f}")
    assert on < off / 2 and result.wins == 1


def test_every_row_changes_only_its_technique(tmp_path: Path) -> None:
    """The table's rows: each "on" request differs from its "off" one, no row is repeated,
    and all are requests the CLI would accept."""
    world = World("vqgan.ckpt", "clip.pt", "clip_16.pt", tmp_path / "init.png")
    rows = comparisons(world)
    assert len({(row.technique, row.measure) for row in rows}) == len(rows) >= 16
    for row in rows:
        assert row.off != row.on
        for request in (row.off, row.on):
            assert Request.from_call_string(request.to_call_string()) == request
    two = [row for row in rows if row.technique.startswith("two CLIPs")]
    assert two and all(row.on.clip == "clip.pt,clip_16.pt" for row in two)


def test_doorways_quality_prints_the_table(
    toy_models: ToyModels,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """End to end through the CLI, cut down to one short row: it finds the session's toy
    models (no training; a copy of the toy CLIP stands for the second one), paints, and
    prints the Markdown table and how the models did."""
    every_row = quality.comparisons

    def one_short_row(world: World) -> list[Comparison]:
        row = next(r for r in every_row(world) if r.technique == "tone symmetry 1")
        short = {"iterations": 3}
        return [dataclasses.replace(row, off=row.off.replace(**short), on=row.on.replace(**short))]

    monkeypatch.setattr(quality, "comparisons", one_short_row)
    second = tmp_path / "clip_copy.pt"
    shutil.copyfile(toy_models.clip, second)
    monkeypatch.setattr(toy, "ensure_second_clip", lambda: (second, {"accuracy": 0.5}))
    assert cli.main(["quality", "--seeds", "2"]) == 0
    header, _, row, blank, models = capsys.readouterr().out.splitlines()
    assert header.startswith("| technique | measured by | off | on |") and blank == ""
    assert row.startswith("| tone symmetry 1 | grey mirror error | ")
    assert row.endswith(("| lower | 0/2 |", "| lower | 1/2 |", "| lower | 2/2 |"))
    assert models.startswith("toy CLIP: ") and "the 16-px toy CLIP: 50% captioned right" in models


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
    assert cli.main(["quality", "--seeds", seeds]) == 2
    assert "--seeds must be between 1 and 20" in capsys.readouterr().err

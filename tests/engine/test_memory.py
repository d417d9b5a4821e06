"""The memory cost model: what the bot's size cap and the docs' table are built on."""

from pathlib import Path

import pytest

from engine import memory

GIB = 2**30


@pytest.mark.parametrize("gib", [8, 12, 24, 80])
def test_the_largest_size_fits_and_one_token_taller_does_not(gib: int) -> None:
    """largest_size is whole 16-px tokens of the asked aspect, within the estimated peak."""
    width, height = memory.largest_size(gib * GIB, cutn=32)
    assert width % 16 == 0 and height % 16 == 0
    assert abs(width / height - 3 / 2) < 0.1
    assert memory.peak_bytes(width * height, 32) <= gib * GIB
    taller = height // 16 + 1  # one token taller, as wide as the aspect allows
    assert memory.peak_bytes(taller * 3 // 2 * taller * 256, 32) > gib * GIB


def test_more_memory_or_fewer_cutouts_allow_bigger_pictures() -> None:
    assert memory.largest_area(8 * GIB, 32) < memory.largest_area(12 * GIB, 32)
    assert memory.largest_area(12 * GIB, 64) < memory.largest_area(12 * GIB, 8)
    assert memory.largest_area(None, 32) == memory.CPU_AREA
    assert memory.largest_area(1 * GIB, 256) == 0  # too small for anything: no negative area


def test_a_batch_costs_its_activations_per_picture() -> None:
    """Four pictures as one batch hold the weights once and four pictures' activations."""
    one = memory.peak_bytes(448 * 304, 32)
    assert memory.peak_bytes(448 * 304, 32, count=4) == one + 3 * (one - memory.FIXED)
    area = memory.largest_area(24 * GIB, 32, count=4)
    assert memory.peak_bytes(area, 32, count=4) <= 24 * GIB
    assert memory.peak_bytes(area + 100, 32, count=4) > 24 * GIB
    assert area < memory.largest_area(24 * GIB, 32) / 3
    assert memory.largest_area(None, 32, count=2) == memory.CPU_AREA // 2


def test_the_docs_table_is_what_the_model_says() -> None:
    """docs/performance.md's "largest sizes" table comes from largest_size, so it stays true."""
    page = (Path(__file__).parents[2] / "docs" / "performance.md").read_text(encoding="utf-8")
    for gib in (8, 12, 24):
        sizes = [
            memory.largest_size(gib * GIB, 32),
            memory.largest_size(gib * GIB, 32, (1, 1)),
            memory.largest_size(gib * GIB, 32, (2, 1)),
            memory.largest_size(gib * GIB, 8),
        ]
        row = f"| {gib} GiB | " + " | ".join(f"{w}×{h}" for w, h in sizes) + " |"
        assert row in page


def test_every_clip_model_counts() -> None:
    """Two CLIP models leave room for a smaller picture than either alone; ViT-B/32 alone (or
    a model outside the registry, counted as it) is the measured line exactly."""
    one = memory.largest_size(24 * GIB, 32, clips=("ViT-B/32",))
    two = memory.largest_size(24 * GIB, 32, clips=("ViT-B/32", "ViT-B/16"))
    alone = memory.largest_size(24 * GIB, 32, clips=("ViT-B/16",))
    assert (
        one
        == memory.largest_size(24 * GIB, 32)
        == memory.largest_size(24 * GIB, 32, clips=("tiny",))
    )
    assert two[0] * two[1] < alone[0] * alone[1] < one[0] * one[1]
    pair = ("ViT-B/32", "random:ViT-L/14")
    area = memory.largest_area(24 * GIB, 32, clips=pair)
    assert (
        memory.peak_bytes(area, 32, clips=pair)
        <= 24 * GIB
        < memory.peak_bytes(area + 100, 32, clips=pair)
    )
    weights, per_cutout = memory.clip_cost("ViT-L/14")
    added = memory.peak_bytes(area, 32, clips=pair) - memory.peak_bytes(area, 32)
    assert added == pytest.approx(weights + 32 * per_cutout)


def test_clip_costs_scale_with_the_network() -> None:
    """ViT-B/16 sees four times ViT-B/32's tokens with the same weights: about 4× the bytes
    a cutout, the same weights; ViT-L/14 is larger on both; a ResNet's weights follow its file."""
    b32, b16, l14 = (memory.clip_cost(n) for n in ("ViT-B/32", "ViT-B/16", "ViT-L/14"))
    assert b32 == (memory.CLIP_WEIGHTS, memory.PER_CUTOUT)
    assert b16[0] == pytest.approx(b32[0], rel=0.01)
    assert b16[1] == pytest.approx(b32[1] * 197 / 50)
    assert l14[0] > 2 * b32[0] and l14[1] > b16[1]
    rn50, rn101 = memory.clip_cost("RN50"), memory.clip_cost("RN101")
    assert rn50[0] < rn101[0] and rn50[1] < rn101[1]


def test_the_docs_sizes_for_several_clips_are_what_the_model_says() -> None:
    """docs/performance.md's sizes for ViT-B/32 with a second CLIP come from largest_size."""
    page = (Path(__file__).parents[2] / "docs" / "performance.md").read_text(encoding="utf-8")
    text = " ".join(page.split())
    sizes = [
        memory.largest_size(24 * GIB, 32, clips=clips)
        for clips in (("ViT-B/32",), ("ViT-B/32", "ViT-B/16"), ("ViT-B/32", "ViT-L/14"))
    ]
    alone, b16, l14 = (f"{w}×{h}" for w, h in sizes)
    assert f"fits {alone}; with ViT-B/16 beside it, {b16}; with ViT-L/14, {l14}." in text

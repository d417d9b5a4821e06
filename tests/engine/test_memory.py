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

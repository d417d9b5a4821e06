"""Wait estimates per size: measured rates, the nearest size scaled by area, the default."""

from __future__ import annotations

import pytest

from bot.speed import Speed, Timing


def test_the_rate_at_each_size_is_measured() -> None:
    """Jobs at 64×64 took 0.1 s an iteration, at 128×128 0.5 s: each size gets its own rate;
    a size not painted yet takes the nearest one's, scaled by the area; none yet: the
    default; broken timings are left out."""
    speed = Speed(
        0.3,
        [
            Timing(64 * 64, 1.0, 10),
            Timing(64 * 64, 3.0, 30),
            Timing(128 * 128, 5.0, 10),
            Timing(64 * 64, 0.0, 10),  # a job that failed its timing
        ],
    )
    assert speed.per_iteration(64, 64) == pytest.approx(0.1)
    assert speed.per_iteration(128, 128) == pytest.approx(0.5)
    assert speed.per_iteration(256, 128) == pytest.approx(1.0)  # twice 128×128
    assert speed.per_iteration(64, 32) == pytest.approx(0.05)  # half 64×64
    assert Speed(0.3).per_iteration(448, 304) == 0.3


def test_a_batch_has_its_own_rate() -> None:
    """A batch of 4 at 64×64 took 0.2 s an iteration, one picture 0.1 s: a batch of 4 is
    estimated at its own rate (not four pictures' 0.4 s), scaled by the area at another
    size and by the pictures for another count near it; with no timings, the default for
    each picture."""
    speed = Speed(0.3, [Timing(64 * 64, 1.0, 10), Timing(64 * 64, 4.0, 20, count=4)])
    assert speed.per_iteration(64, 64) == pytest.approx(0.1)
    assert speed.per_iteration(64, 64, 4) == pytest.approx(0.2)
    assert speed.per_iteration(128, 128, 4) == pytest.approx(0.8)  # four times the area
    assert speed.per_iteration(64, 64, 3) == pytest.approx(0.15)  # nearest: the batch of 4
    assert speed.per_iteration(128, 128) == pytest.approx(0.4)
    assert Speed(0.3).per_iteration(448, 304, 4) == pytest.approx(1.2)

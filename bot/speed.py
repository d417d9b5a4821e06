"""Wait estimates: how long one iteration takes at a picture's size, from the jobs painted
lately. An iteration's cost grows with the picture (the VQGAN decoder, most of it, works on
every pixel), so a rate measured at 64×64 says little about 448×304."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """One painted job: its size in pixels, its seconds painting (loading models left out)
    and its iterations."""

    area: int
    seconds: float
    iterations: int


class Speed:
    """Seconds per iteration at a size, as measured.

    The mean rate of the recent jobs of that size; for a size not painted lately, the rate
    of the nearest size painted, scaled by the area; before any job, ``default``.
    """

    def __init__(self, default: float, timings: Sequence[Timing] = ()) -> None:
        self.default = default
        totals: dict[int, tuple[float, int]] = {}
        for t in timings:
            if t.iterations > 0 and t.seconds > 0 and t.area > 0:
                seconds, iterations = totals.get(t.area, (0.0, 0))
                totals[t.area] = (seconds + t.seconds, iterations + t.iterations)
        self.rates = {area: seconds / n for area, (seconds, n) in totals.items()}

    def per_iteration(self, width: int, height: int) -> float:
        area = width * height
        if area in self.rates:
            return self.rates[area]
        if not self.rates or area <= 0:
            return self.default
        nearest = min(self.rates, key=lambda measured: abs(math.log(area / measured)))
        return self.rates[nearest] * area / nearest

"""Wait estimates: how long one iteration takes at a picture's size and batch, from the jobs
painted lately. An iteration's cost grows with the picture (the VQGAN decoder, most of it,
works on every pixel), so a rate measured at 64×64 says little about 448×304; and a batch of
N pictures (`count`) costs up to N pictures' iterations — on a GPU much less, as the batch
shares each layer's launch, which only a batch's own timings show."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """One painted job: its size in pixels, its seconds painting (loading models left out),
    its iterations and its pictures (a batch's `count`)."""

    area: int
    seconds: float
    iterations: int
    count: int = 1


class Speed:
    """Seconds per iteration of a job at a size and count, as measured.

    The mean rate of the recent jobs of that size and count; for one not painted lately,
    the rate of the nearest (size, count) painted, scaled by the area and by the pictures
    (a batch as its pictures one by one: the safe side); before any job, ``default`` a
    picture.
    """

    def __init__(self, default: float, timings: Sequence[Timing] = ()) -> None:
        self.default = default
        totals: dict[tuple[int, int], tuple[float, int]] = {}
        for t in timings:
            if t.iterations > 0 and t.seconds > 0 and t.area > 0 and t.count > 0:
                seconds, iterations = totals.get((t.area, t.count), (0.0, 0))
                totals[(t.area, t.count)] = (seconds + t.seconds, iterations + t.iterations)
        self.rates = {key: seconds / n for key, (seconds, n) in totals.items()}

    def per_iteration(self, width: int, height: int, count: int = 1) -> float:
        """Seconds one iteration of a job painting `count` pictures of width × height takes."""
        area = width * height
        if (area, count) in self.rates:
            return self.rates[(area, count)]
        if not self.rates or area <= 0 or count <= 0:
            return self.default * max(count, 1)

        def distance(key: tuple[int, int]) -> float:
            return abs(math.log(area / key[0])) + abs(math.log(count / key[1]))

        nearest = min(self.rates, key=distance)
        return self.rates[nearest] * area / nearest[0] * count / nearest[1]

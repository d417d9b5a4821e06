"""Several CLIP models at once: the `--clip` list syntax, `ViT-B/32,ViT-B/16:0.5`.

Entries are separated by commas; each is a model (registry name, tiny, random:NAME or a
path) with an optional weight. Only a trailing `:NUMBER` is a weight, so `random:ViT-B/32`
and a Windows path such as `C:\\clip.pt` read as names; a path that itself ends in
`:NUMBER` is written with its weight (`model:2:1`). A name cannot contain a comma.
Torch-free: the bot and the request use it.
"""

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from engine.prompts import NUMBER

_WEIGHTED = re.compile(rf"^(?P<name>.*?)\s*:\s*(?P<weight>{NUMBER})$", re.DOTALL)
EXAMPLE = "ViT-B/32,ViT-B/16:0.5"


@dataclass(frozen=True)
class ClipSpec:
    """One CLIP model of a painting and how much its losses count."""

    name: str
    weight: float = 1.0

    def render(self) -> str:
        """`name`, or `name:weight` when the weight is not 1 (or the name would read as one)."""
        if self.weight == 1.0 and _WEIGHTED.match(self.name) is None:
            return self.name
        return f"{self.name}:{self.weight!r}"


def parse_clips(text: str) -> tuple[ClipSpec, ...]:
    """`ViT-B/32,ViT-B/16:0.5` → ClipSpecs; empty entries, weights that are not above 0
    and models named twice are errors that say which."""
    if not text.strip():
        raise ValueError(f"no CLIP model given: name one, or several as {EXAMPLE}")
    entries = text.split(",")
    specs: list[ClipSpec] = []
    for number, entry in enumerate(entries, start=1):
        where = f"CLIP list entry {number} of {len(entries)}" if len(entries) > 1 else "CLIP"
        entry = entry.strip()
        match = _WEIGHTED.match(entry)
        name, weight = (match["name"].strip(), float(match["weight"])) if match else (entry, 1.0)
        if not name:
            raise ValueError(f"{where} is empty: {text!r} (write models as {EXAMPLE})")
        if not (math.isfinite(weight) and weight > 0):
            raise ValueError(
                f"CLIP {name} has weight {weight:g} in {text!r}: a CLIP model's weight must be a "
                "finite number above 0 (leave a model out rather than weigh it 0)"
            )
        if any(spec.name == name for spec in specs):
            raise ValueError(
                f"CLIP {name} is listed twice in {text!r}: give each model once, with one weight"
            )
        specs.append(ClipSpec(name, weight))
    return tuple(specs)


def render_clips(specs: Iterable[ClipSpec]) -> str:
    """ClipSpecs → their `--clip` text; one model of weight 1 is just its name."""
    return ",".join(spec.render() for spec in specs)


def model_names(text: str) -> tuple[str, ...]:
    """The model names of a `--clip` list, in order."""
    return tuple(spec.name for spec in parse_clips(text))

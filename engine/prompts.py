"""Prompt syntax: parts separated by `|`, each `text` or `text:weight`.

A colon inside the text never breaks parsing ("Star Wars: A New Hope", "tea at 12:30"):
only a trailing `:NUMBER` is a weight, and `12:30` or `16:9` (a digit, a colon and a
whole number) read as text. Write `apollo 11 :2` or `apollo 11:2.0` to weight such text.
"""

import math
import re
from dataclasses import dataclass

# A weight as it is typed: 2, -1, 0.5, .5, 1e-3 (never nan or inf).
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
# The weight is the last `:NUMBER` of a part. The text before it is kept verbatim (stripped).
_WEIGHT = re.compile(rf"^(?P<text>.*?)\s*:\s*(?P<weight>{NUMBER})\s*$", re.DOTALL)
_WHOLE = re.compile(r"\d+")


@dataclass(frozen=True)
class Prompt:
    """One prompt part: what to aim for (or, with a negative weight, away from)."""

    text: str
    weight: float = 1.0

    def render(self) -> str:
        """The part as it is typed: `text` or `text:weight`, parsing back to an equal Prompt."""
        if self.weight == 1.0 and split_weight(self.text) == (self.text, 1.0):
            return self.text
        return f"{self.text}:{self.weight!r}"


def split_weight(part: str) -> tuple[str, float]:
    """Split one part into (text, weight); the weight is 1 unless a numeric suffix gives one."""
    part = part.strip()
    match = _WEIGHT.match(part)
    if match is None:
        return part, 1.0
    text, weight = match["text"], match["weight"]
    # "12:30", "16:9": a digit right before the colon and a whole number after it is text.
    if text[-1:].isdigit() and part[len(text)] == ":" and _WHOLE.fullmatch(weight):
        return part, 1.0
    return text, float(weight)


def parse_prompts(spec: str, *, what: str = "prompt") -> tuple[Prompt, ...]:
    """Parse `a | b:0.5 | c:-1` into Prompts; empty parts and bad weights are errors."""
    if not spec.strip():
        return ()
    parts = spec.split("|")
    prompts = []
    for number, part in enumerate(parts, start=1):
        text, weight = split_weight(part)
        where = f"{what} part {number} of {len(parts)}" if len(parts) > 1 else what
        if not text:
            raise ValueError(f"{where} is empty: {spec!r} (write parts as `a | b`)")
        if not math.isfinite(weight):
            raise ValueError(f"{where} has weight {weight}; weights must be finite numbers")
        prompts.append(Prompt(text, weight))
    return tuple(prompts)


def render_prompts(prompts: tuple[Prompt, ...]) -> str:
    """Render Prompts back into the `a | b:0.5` syntax."""
    return " | ".join(prompt.render() for prompt in prompts)

"""Command options → an engine Request. The bot checks every value again here (a client need
not respect the declared ranges and choices, and autocomplete is only a suggestion), and the
engine's own Request validation runs last; its messages reach the person as they are, with
Markdown escaped (they may quote what the person typed).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from bot.errors import BadOptions
from bot.messages import echo
from bot.quota import size_for_aspect
from bot.settings import HARD_MAX_ITERATIONS, Settings
from engine.entrance import (
    DEFAULT_STYLE,
    DOOR_WORDS,
    ENTRANCE_DEFAULTS,
    Preset,
    entrance_prompts,
    entrance_request,
    split_realms,
)
from engine.prompts import Prompt, parse_prompts
from engine.request import Request

MAX_SEED = 2**32 - 1  # the engine draws seeds in this range too
MAX_REALMS = 3
MAX_STYLE = 100
MIN_SIDE, MAX_SIDE = 64, 2048
LR_RANGE = (0.001, 1.0)
ASPECTS = ("1:1", "3:2", "2:3", "4:3", "3:4", "16:9", "9:16", "2:1", "1:2", "3:1")
NO_STYLE = ("none", "-", "''", '""')


@dataclass(frozen=True)
class Symmetry:
    """A named set of symmetry options for /imagine."""

    label: str
    mirror: float = 0.0
    semantic_weight: float = 0.0
    tone_weight: float = 0.0


SYMMETRIES = {
    "none": Symmetry("none"),
    "tone": Symmetry("tone: blurred greyscale mirrored", tone_weight=1.0),
    "semantic": Symmetry("semantic: mirrored objects", mirror=0.5, semantic_weight=0.1),
    "both": Symmetry("both (as /entrance)", mirror=0.5, semantic_weight=0.1, tone_weight=1.0),
}
PANORAMAS = ("off", "linear", "smooth")
IMAGINE_DEFAULTS = Request(prompts=(Prompt("a painting"),))  # the engine's defaults


def check_int(name: str, value: int | None, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadOptions(f"`{name}` must be a whole number from {low} to {high}, not {value!r}.")
    return value


def new_seed(seed: int | None) -> int:
    """The given seed, or a new one: drawn here so the queued request is complete."""
    checked = check_int("seed", seed, 0, MAX_SEED)
    return random.SystemRandom().randint(0, MAX_SEED) if checked is None else checked


def style_text(style: str | None, default: str) -> str:
    """The style option: None → the default, `none` → no style."""
    if style is None:
        return default
    style = " ".join(style.split())
    if style.lower() in NO_STYLE:
        return ""
    if len(style) > MAX_STYLE or "|" in style:
        raise BadOptions(f"`style` must be at most {MAX_STYLE} characters, without `|`.")
    return style


def entrance(
    realms: str,
    settings: Settings,
    presets: Mapping[str, Preset],
    *,
    door: str | None = None,
    style: str | None = None,
    seed: int | None = None,
    iterations: int | None = None,
) -> Request:
    """/entrance: `heaven | hell` (two or three realms) or the name of one of `presets`
    (loaded once by the cog: no file is read per command), as an entrance Request with the
    post's defaults."""
    door = door or "entrance"
    if door not in DOOR_WORDS:
        raise BadOptions(f"`door` must be one of {', '.join(DOOR_WORDS)}, not {echo(repr(door))}.")
    text = " ".join(realms.split())
    preset = presets.get(text.lower()) if "|" not in text else None
    if preset is None:
        if "|" not in text:
            raise BadOptions(
                f"Write two or three realms separated by `|`, like `heaven | hell`, or pick a "
                f"preset from the list (not {echo(repr(text))})."
            )
        try:
            count = len(split_realms(text))
        except ValueError as error:
            raise _refusal(error) from None
        if count > MAX_REALMS:
            raise BadOptions(f"At most {MAX_REALMS} realms fit one picture here, not {count}.")
    base = ENTRANCE_DEFAULTS.replace(
        seed=new_seed(seed),
        iterations=check_int("iterations", iterations, 1, HARD_MAX_ITERATIONS)
        or ENTRANCE_DEFAULTS.iterations,
        **settings.engine_fields(),
    )
    try:
        style = style_text(style, DEFAULT_STYLE)
        if preset is not None:
            return base.replace(prompts=entrance_prompts(preset.targets, door, style))
        return entrance_request(text, door=door, style=style, base=base)
    except ValueError as error:
        raise _refusal(error) from None


def imagine(
    prompt: str,
    settings: Settings,
    *,
    max_area: int,
    aspect: str | None = None,
    width: int | None = None,
    height: int | None = None,
    iterations: int | None = None,
    seed: int | None = None,
    symmetry: str | None = None,
    panorama: str | None = None,
    lr: float | None = None,
    style: str | None = None,
) -> Request:
    """/imagine: prompts in the engine's syntax (`a | b:0.5 | c:-1`) and plain options.

    The size: `width` and `height` as given; one of them with `aspect` (default 3:2) for the
    other; or `aspect` alone for the largest picture of that shape within `max_area`.
    """
    try:
        prompts = parse_prompts(prompt)
    except ValueError as error:
        raise _refusal(error) from None
    if not prompts:
        raise BadOptions("The prompt is empty: write what to paint, like `a lighthouse`.")
    suffix = style_text(style, "")
    if suffix:
        prompts = tuple(
            Prompt(f"{p.text} {suffix}", p.weight) if p.weight > 0 else p for p in prompts
        )
    if aspect is not None and aspect not in ASPECTS:
        raise BadOptions(f"`aspect` must be one of {', '.join(ASPECTS)}, not {echo(repr(aspect))}.")
    width = check_int("width", width, MIN_SIDE, MAX_SIDE)
    height = check_int("height", height, MIN_SIDE, MAX_SIDE)
    size = _size(aspect, width, height, max_area)
    chosen = SYMMETRIES.get(symmetry or "none")
    if chosen is None:
        raise BadOptions(
            f"`symmetry` must be one of {', '.join(SYMMETRIES)}, not {echo(repr(symmetry))}."
        )
    panorama = panorama or "off"
    if panorama not in PANORAMAS:
        raise BadOptions(
            f"`panorama` must be one of {', '.join(PANORAMAS)}, not {echo(repr(panorama))}."
        )
    if lr is not None and not (LR_RANGE[0] <= lr <= LR_RANGE[1]):
        raise BadOptions(f"`lr` must be from {LR_RANGE[0]} to {LR_RANGE[1]}, not {lr!r}.")
    try:
        return IMAGINE_DEFAULTS.replace(
            prompts=prompts,
            size=size,
            iterations=check_int("iterations", iterations, 1, HARD_MAX_ITERATIONS)
            or IMAGINE_DEFAULTS.iterations,
            seed=new_seed(seed),
            lr=IMAGINE_DEFAULTS.lr if lr is None else lr,
            panorama=panorama,
            mirror=chosen.mirror,
            semantic_weight=chosen.semantic_weight,
            tone_weight=chosen.tone_weight,
            **settings.engine_fields(),
        )
    except ValueError as error:
        raise _refusal(error) from None


def _size(aspect: str | None, width: int | None, height: int | None, area: int) -> tuple[int, int]:
    if width is not None and height is not None:
        if aspect is not None:
            raise BadOptions("Give `aspect`, or `width` and `height`, not all three.")
        return width, height
    shape = aspect or "3:2"
    a, b = (int(x) for x in shape.split(":"))
    if width is not None:
        return width, max(16, round(width * b / a))
    if height is not None:
        return max(16, round(height * a / b)), height
    if aspect is None:
        return IMAGINE_DEFAULTS.size
    return size_for_aspect(shape, area)


def _refusal(error: ValueError) -> BadOptions:
    """The engine's message, which may quote the person's text, as Discord should show it."""
    return BadOptions(f"{echo(str(error))}.")

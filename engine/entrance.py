"""The entrance template: realms become prompts the way the Doorways post wrote them.

"entrance to heaven by James Gurney | entrance to hell by James Gurney": places are named
as they are, other subjects become "the <subject> realm", the door word varies (entrance,
doorway, archway, gate, gateway), and the symmetric-work defaults come along. The result
is an ordinary Request, so an entrance image's call string is a plain `doorways generate`.
"""

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from engine.prompts import Prompt
from engine.request import Request

DOOR_WORDS = ("entrance", "doorway", "archway", "gate", "gateway")
DEFAULT_STYLE = "by James Gurney"
PRESETS_FILE = resources.files("engine") / "data" / "presets.json"  # package data

# Subjects the post names as places; anything else becomes "the <subject> realm".
KNOWN_PLACES = frozenset(
    {"heaven", "hell", "limbo", "purgatory", "paradise", "valhalla", "fólkvangr", "folkvangr",
     "el dorado", "atlantis", "mars", "luna", "eden", "olympus", "asgard", "avalon", "elysium",
     "hades", "nirvana", "utopia", "dystopia", "shangri-la", "camelot", "narnia", "tartarus"}
)  # fmt: skip
# Subjects already shaped as a destination ("the kelp forest", "the fae realm") stay as typed.
_VERBATIM_STARTS = ("the ", "a ", "an ")

# The post's settings for symmetric work: low learning rate, both symmetries, a wide canvas.
ENTRANCE_DEFAULTS = Request(
    prompts=(Prompt("entrance"),),
    size=(512, 256),
    iterations=500,
    lr=0.025,
    panorama="smooth",
    mirror=0.5,
    semantic_weight=0.1,
    tone_weight=1.0,
)


def realm_target(subject: str) -> str:
    """What follows "<door> to": a known place as is, otherwise "the <subject> realm"."""
    subject = " ".join(subject.split())
    if subject.lower() in KNOWN_PLACES or subject.lower().startswith(_VERBATIM_STARTS):
        return subject
    return f"the {subject} realm"


def realm_prompt(
    target: str, door: str = "entrance", style: str = DEFAULT_STYLE, modifier: str = ""
) -> str:
    """`<door> to <target>[, modifier] <style>`, e.g. "entrance to hell by James Gurney"."""
    if not door.strip():
        raise ValueError("the door word must not be empty")
    text = f"{door.strip()} to {target}"
    if modifier.strip():
        text += f", {modifier.strip()}"
    if style.strip():
        text += f" {style.strip()}"
    if "|" in text:
        raise ValueError(f"a realm cannot contain `|`: {text!r}")
    return text


def split_realms(spec: str) -> list[str]:
    """`heaven | hell [| more]` → subjects; two or more, none empty."""
    realms = [" ".join(part.split()) for part in spec.split("|")]
    if any(not realm for realm in realms):
        raise ValueError(f"empty realm in {spec!r}: write realms as `heaven | hell`")
    if len(realms) < 2:
        raise ValueError(f"an entrance needs two or more realms separated by `|`, got {spec!r}")
    if len(realms) > 5:
        raise ValueError(f"at most 5 realms fit across one picture, got {len(realms)}")
    return realms


def entrance_prompts(
    targets: Sequence[str],
    door: str = "entrance",
    style: str = DEFAULT_STYLE,
    modifiers: list[str] | None = None,
) -> tuple[Prompt, ...]:
    """One prompt per realm target, left to right; `modifiers` pairs up with the realms."""
    modifiers = modifiers or []
    if len(modifiers) > len(targets):
        raise ValueError(f"{len(modifiers)} modifiers for {len(targets)} realms")
    modifiers = modifiers + [""] * (len(targets) - len(modifiers))
    return tuple(
        Prompt(realm_prompt(t, door, style, m)) for t, m in zip(targets, modifiers, strict=True)
    )


@dataclass(frozen=True)
class Preset:
    """A juxtaposition from the Doorways gallery."""

    name: str
    title: str
    group: str
    targets: tuple[str, ...]


def load_presets(path: Traversable | None = None) -> dict[str, Preset]:
    """The shipped gallery (or the one at `path`), keyed by name (e.g. `heaven-hell`); the
    shipped one is read once per process."""
    return dict(_shipped_presets() if path is None else _read_presets(path))


@functools.cache
def _shipped_presets() -> dict[str, Preset]:
    return _read_presets(PRESETS_FILE)


def _read_presets(path: Traversable) -> dict[str, Preset]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {
        p["name"]: Preset(
            p["name"], p["title"], p["group"], tuple(r["target"] for r in p["realms"])
        )
        for p in data["presets"]
    }


def find_preset(name: str) -> Preset:
    """A preset by name, or a ValueError listing near names."""
    presets = load_presets()
    key = name.strip().lower()
    if key in presets:
        return presets[key]
    near = [n for n in presets if key and (key in n or n.startswith(key[:3]))]
    hint = f" (did you mean {', '.join(near[:5])}?)" if near else " (see `doorways presets`)"
    raise ValueError(f"unknown preset {name!r}{hint}")


def entrance_request(
    realms: str | None = None,
    *,
    preset: str | None = None,
    door: str = "entrance",
    style: str = DEFAULT_STYLE,
    modifiers: list[str] | None = None,
    base: Request = ENTRANCE_DEFAULTS,
) -> Request:
    """An entrance Request from typed realms (`heaven | hell`) or a preset name."""
    if (realms is None) == (preset is None):
        raise ValueError("give realms (`heaven | hell`) or a preset, not both and not neither")
    if preset is not None:
        targets: Sequence[str] = find_preset(preset).targets
    else:
        assert realms is not None
        targets = [realm_target(subject) for subject in split_realms(realms)]
    return base.replace(prompts=entrance_prompts(targets, door, style, modifiers))

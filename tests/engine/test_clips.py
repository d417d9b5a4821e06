"""The `--clip` list syntax: models, weights, and the names that look like weights."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.clips import ClipSpec, model_names, parse_clips, render_clips


@pytest.mark.parametrize(
    ("text", "specs"),
    [
        ("ViT-B/32", [("ViT-B/32", 1.0)]),
        ("ViT-B/32,ViT-B/16:0.5", [("ViT-B/32", 1.0), ("ViT-B/16", 0.5)]),
        (" tiny , RN50 : 2 ", [("tiny", 1.0), ("RN50", 2.0)]),
        ("random:ViT-B/32", [("random:ViT-B/32", 1.0)]),
        ("random:ViT-B/32:.25", [("random:ViT-B/32", 0.25)]),
        (r"C:\models\clip.pt", [(r"C:\models\clip.pt", 1.0)]),
        (r"C:\models\clip.pt:3e-1", [(r"C:\models\clip.pt", 0.3)]),
        ("ViT-L/14@336px", [("ViT-L/14@336px", 1.0)]),
        ("my model:2:1", [("my model:2", 1.0)]),  # a name ending in :NUMBER, weighted 1
    ],
)
def test_parse(text: str, specs: list[tuple[str, float]]) -> None:
    """Only a trailing `:NUMBER` is a weight; every other colon belongs to the name."""
    assert parse_clips(text) == tuple(ClipSpec(*spec) for spec in specs)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no CLIP model given: name one, or several as ViT-B/32,ViT-B/16:0.5"),
        (" ", "no CLIP model given"),
        ("ViT-B/32,", "CLIP list entry 2 of 2 is empty: 'ViT-B/32,'"),
        (":0.5", "CLIP is empty"),
        ("ViT-B/16:0", "CLIP ViT-B/16 has weight 0 in 'ViT-B/16:0'"),
        ("ViT-B/16:-0.5", "CLIP ViT-B/16 has weight -0.5"),
        ("ViT-B/16:1e999", "CLIP ViT-B/16 has weight inf"),
        ("ViT-B/32,ViT-B/32:0.5", "CLIP ViT-B/32 is listed twice in 'ViT-B/32,ViT-B/32:0.5'"),
    ],
)
def test_errors_say_which_entry(text: str, message: str) -> None:
    """Empty entries, weights not above 0 and repeated models are specific errors."""
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_clips(text)


def test_render() -> None:
    """One model of weight 1 is its bare name (the call strings of old pictures); a name that
    would read as weighted keeps an explicit weight."""
    assert render_clips([ClipSpec("ViT-B/32")]) == "ViT-B/32"
    assert (
        render_clips([ClipSpec("ViT-B/32"), ClipSpec("ViT-B/16", 0.5)]) == "ViT-B/32,ViT-B/16:0.5"
    )
    assert render_clips([ClipSpec("model:2")]) == "model:2:1.0"
    assert model_names("ViT-B/32,ViT-B/16:0.5") == ("ViT-B/32", "ViT-B/16")


_names = st.text(
    alphabet=st.characters(blacklist_characters=",", blacklist_categories=("Cs",)),
    min_size=1, max_size=20,
).filter(lambda name: name == name.strip())  # fmt: skip
_entries = st.tuples(_names, st.floats(1e-6, 1e6))


@settings(max_examples=500)
@given(st.lists(_entries, min_size=1, max_size=4, unique_by=lambda entry: entry[0]))
def test_round_trip(entries: list[tuple[str, float]]) -> None:
    """Any list renders to text that parses back to it, names with colons and all."""
    specs = tuple(ClipSpec(name, weight) for name, weight in entries)
    assert parse_clips(render_clips(specs)) == specs

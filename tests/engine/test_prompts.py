"""Prompt syntax: `a | b:0.5`, with colons inside text left alone."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.prompts import Prompt, parse_prompts, render_prompts, split_weight


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("heaven", [("heaven", 1.0)]),
        ("heaven | hell", [("heaven", 1.0), ("hell", 1.0)]),
        ("heaven:2 | hell:-0.5", [("heaven", 2.0), ("hell", -0.5)]),
        ("  spaced  out  :  3 ", [("spaced  out", 3.0)]),
        ("Star Wars: A New Hope", [("Star Wars: A New Hope", 1.0)]),
        ("Star Wars: A New Hope:0.5", [("Star Wars: A New Hope", 0.5)]),
        ("tea at 12:30", [("tea at 12:30", 1.0)]),
        ("tea at 12:30:2.0", [("tea at 12:30", 2.0)]),
        ("a 16:9 panorama", [("a 16:9 panorama", 1.0)]),
        ("apollo 11 :2", [("apollo 11", 2.0)]),
        ("apollo 11:2.0", [("apollo 11", 2.0)]),
        ("weight:1e-2", [("weight", 0.01)]),
        ("ratio:.5", [("ratio", 0.5)]),
        ("天国 | 地獄:0.7", [("天国", 1.0), ("地獄", 0.7)]),
        ("café ☕:2", [("café ☕", 2.0)]),
        ("a: b: c", [("a: b: c", 1.0)]),
    ],
)
def test_parse(spec: str, expected: list[tuple[str, float]]) -> None:
    """Parts split on `|`; only a trailing numeric suffix is a weight."""
    assert [(p.text, p.weight) for p in parse_prompts(spec)] == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("heaven | ", "prompt part 2 of 2 is empty"),
        ("| hell", "prompt part 1 of 2 is empty"),
        ("a || b", "prompt part 2 of 3 is empty"),
        (":2", "prompt is empty"),
        ("big:1e999", "weight inf"),
    ],
)
def test_parse_errors(spec: str, message: str) -> None:
    """Empty parts and non-finite weights are named in the error."""
    with pytest.raises(ValueError, match=message):
        parse_prompts(spec)


def test_blank_spec_is_no_prompts() -> None:
    """A blank spec parses to nothing (the request then says what is missing)."""
    assert parse_prompts("   ") == ()


_text = (
    st.text(
        alphabet=st.characters(blacklist_characters="|", blacklist_categories=("Cs",)), min_size=1
    )
    .map(str.strip)
    .filter(bool)
)
_weight = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(st.lists(st.builds(Prompt, _text, _weight), min_size=1, max_size=5))
def test_render_round_trip(prompts: list[Prompt]) -> None:
    """Rendering then parsing gives the same prompts, for any text and weight."""
    assert parse_prompts(render_prompts(tuple(prompts))) == tuple(prompts)


def test_split_weight_keeps_text_verbatim() -> None:
    """Inner spacing and punctuation survive; only the ends are stripped."""
    assert split_weight("  a,  b :  c  ") == ("a,  b :  c", 1.0)

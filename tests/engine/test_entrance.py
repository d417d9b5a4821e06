"""The entrance template and the preset gallery."""

import pytest

from engine.entrance import (
    ENTRANCE_DEFAULTS,
    entrance_request,
    find_preset,
    load_presets,
    realm_prompt,
    realm_target,
)
from engine.prompts import parse_prompts


@pytest.mark.parametrize(
    ("subject", "target"),
    [
        ("heaven", "heaven"),
        ("Hell", "Hell"),
        ("El Dorado", "El Dorado"),
        ("forest", "the forest realm"),
        ("kelp   forest", "the kelp forest realm"),
        ("the kelp forest", "the kelp forest"),
        ("fae", "the fae realm"),
    ],
)
def test_realm_target(subject: str, target: str) -> None:
    """Places are named as they are; other subjects become realms; `the …` is kept."""
    assert realm_target(subject) == target


def test_heaven_hell_request() -> None:
    """`heaven | hell` becomes the post's two prompts with its symmetric-work defaults."""
    request = entrance_request("heaven | hell")
    assert [p.text for p in request.prompts] == [
        "entrance to heaven by James Gurney",
        "entrance to hell by James Gurney",
    ]
    assert (request.lr, request.panorama, request.mirror) == (0.025, "smooth", 0.5)
    assert request.semantic_weight > 0 and request.tone_weight > 0
    assert request.size[0] > request.size[1]  # a wide canvas
    assert request.semantic_weight < 1  # well below the prompt loss


def test_door_style_and_modifiers() -> None:
    """The door word, the style suffix and per-side modifiers go where the post put them."""
    request = entrance_request(
        "deciduous forest | evergreen forest | kelp forest",
        door="gate", style="", modifiers=["wild", "", "underwater, secluded, empty, silent"],
    )  # fmt: skip
    assert [p.text for p in request.prompts] == [
        "gate to the deciduous forest realm, wild",
        "gate to the evergreen forest realm",
        "gate to the kelp forest realm, underwater, secluded, empty, silent",
    ]


def test_entrance_prompts_parse_back() -> None:
    """Entrance prompts survive the prompt syntax (the call string stays plain)."""
    request = entrance_request("Star Wars: A New Hope | tea at 12:30")
    rendered = " | ".join(p.render() for p in request.prompts)
    assert parse_prompts(rendered) == request.prompts


@pytest.mark.parametrize(
    ("realms", "message"),
    [
        ("heaven", "two or more realms"),
        ("heaven | ", "empty realm"),
        ("a | b | c | d | e | f", "at most 5 realms"),
    ],
)
def test_bad_realms(realms: str, message: str) -> None:
    """Too few, empty or too many realms are refused with the reason."""
    with pytest.raises(ValueError, match=message):
        entrance_request(realms)


def test_presets_hold_the_post_gallery() -> None:
    """The gallery runs from Heaven / Hell to the hopeful future, with the post's extra words."""
    presets = load_presets()
    assert len(presets) == 33
    assert next(iter(presets)) == "heaven-hell" and list(presets)[-1].startswith(
        "climate-apocalypse"
    )
    bodhi = find_preset("bodhi-samsara").targets
    assert "enlightenment" in bodhi[0] and "cycle of death and rebirth" in bodhi[1]
    assert "gold" in find_preset("el-dorado-atlantis").targets[0]
    for preset in presets.values():
        assert len(preset.targets) == 2 and all(preset.targets)


def test_preset_request() -> None:
    """A preset makes an ordinary request with the entrance defaults."""
    request = entrance_request(preset="valhalla-folkvangr", door="gateway")
    assert request.prompts[0].text.startswith("gateway to Valhalla")
    assert request.lr == ENTRANCE_DEFAULTS.lr
    with pytest.raises(ValueError, match="not both"):
        entrance_request("a | b", preset="heaven-hell")


def test_realm_prompt_rejects_empty_door() -> None:
    """A blank door word is an error, not `to heaven`."""
    with pytest.raises(ValueError, match="door word"):
        realm_prompt("heaven", door=" ")

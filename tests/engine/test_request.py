"""The one request type: validation, JSON and call-string round trips."""

import json
import shlex
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.clips import ClipSpec, render_clips
from engine.prompts import Prompt
from engine.request import (
    AUGMENTS,
    COMPILE_MODES,
    KERNELS,
    OPTIMIZERS,
    PANORAMAS,
    PRECISIONS,
    Request,
)

HEAVEN_HELL = (Prompt("entrance to heaven"), Prompt("entrance to hell"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prompts": ()}, "empty prompt"),
        ({"size": (0, 300)}, "width must be between 16 and 4096, not 0"),
        ({"size": (450, -3)}, "height must be between 16 and 4096, not -3"),
        ({"size": (9000, 300)}, "width must be between 16 and 4096, not 9000"),
        ({"iterations": 0}, "iterations must be between 1 and 100000, not 0"),
        ({"iterations": 2.5}, "iterations must be a whole number"),
        ({"seed": -1}, "seed must be between 0"),
        ({"lr": 0.0}, "lr must be between"),
        ({"lr": float("nan")}, "lr must be between"),
        ({"optimizer": "sgd"}, "unknown optimizer 'sgd': choose from adam, adamw, adagrad"),
        ({"cutn": 0}, "cutn must be between 1 and 256"),
        ({"augments": ("affine", "swirl")}, "unknown augmentation 'swirl'"),
        ({"augments": ("noise", "noise")}, "augmentations repeat"),
        ({"panorama": "wavy"}, "unknown panorama 'wavy'"),
        ({"anchors": (0.0,)}, "--anchors gives 1 position(s) for 2 positive prompt(s)"),
        ({"anchors": (0.8, 0.2)}, "--anchors must increase"),
        ({"anchors": (0.0, 1.5)}, "anchor must be between 0 and 1"),
        ({"mirror": 1.5}, "mirror share must be between 0 and 1"),
        ({"semantic_weight": 0.1}, "semantic symmetry compares mirrored pairs: set --mirror"),
        ({"tone_weight": -1.0}, "tone weight must be between 0"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"device": "cuda:x"}, "unknown device 'cuda:x'"),
        ({"precision": "fp8"}, "unknown precision 'fp8': choose from auto, fp32, bf16, fp16"),
        ({"compile": "fast"}, "unknown compile mode 'fast': choose from off, default"),
        ({"vqgan": ""}, "model names must not be empty"),
        ({"prompts": (Prompt(" padded"),)}, "padded"),
        ({"prompts": (Prompt("a|b"),)}, "contains `|`"),
        ({"clip": ""}, "no CLIP model given"),
        ({"clip": "tiny,,ViT-B/16"}, "CLIP list entry 2 of 3 is empty"),
        ({"clip": "tiny,ViT-B/16:0"}, "CLIP ViT-B/16 has weight 0 in 'tiny,ViT-B/16:0'"),
        ({"clip": "tiny:-1"}, "CLIP tiny has weight -1"),
        ({"clip": "tiny,tiny:2"}, "CLIP tiny is listed twice"),
    ],
)
def test_validation_messages(changes: dict, message: str) -> None:
    """Each bad value gets a specific message naming it."""
    with pytest.raises(ValueError, match=_literal(message)):
        Request(**{"prompts": HEAVEN_HELL, **changes})


def _literal(text: str) -> str:
    import re

    return re.escape(text)


def test_defaults_are_valid_and_stable() -> None:
    """The default request is what docs/painting.md documents."""
    request = Request(prompts=HEAVEN_HELL)
    assert (request.size, request.iterations, request.lr, request.cutn) == (
        (450, 300),
        300,
        0.1,
        32,
    )
    assert request.vqgan == "vqgan_imagenet_f16_16384" and request.clip == "ViT-B/32"


def test_call_string_is_shell_safe_and_ordered() -> None:
    """The call string splits back into the same words a shell would see."""
    request = Request(
        prompts=(Prompt('it\'s "quoted"; rm -rf $HOME'), Prompt("hell", -0.5)),
        seed=3,
        output="my pictures/out.png",
    )
    call = request.to_call_string()
    words = shlex.split(call)
    assert words[:3] == ["doorways", "generate", 'it\'s "quoted"; rm -rf $HOME | hell:-0.5']
    flags = [w for w in words if w.startswith("--")]
    assert flags == ["--size", "--iterations", "--seed", "--lr", "--cutn", "--cut-pow",
                     "--vqgan", "--clip", "--output"]  # fmt: skip
    echoed = subprocess.run(
        ["bash", "-c", f"printf '%s\\n' {call.removeprefix('doorways generate ')}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert echoed.stdout.splitlines()[0] == words[2]


_texts = st.text(
    alphabet=st.characters(blacklist_characters="|", blacklist_categories=("Cs", "Cc")),
    min_size=1, max_size=30,
).map(str.strip).filter(bool)  # fmt: skip
_weights = st.floats(-5, 5, allow_nan=False).filter(lambda w: w != 0)
_unit = st.floats(0, 1, allow_nan=False)


_CLIPS = ["tiny", "ViT-B/16", "random:ViT-B/32", "/models/my clip.pt", r"C:\clips\b.pt", "x:2"]


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """Any valid request, every field varied."""
    prompts = tuple(draw(st.lists(st.builds(Prompt, _texts, _weights), min_size=1, max_size=4)))
    positive = sum(p.weight > 0 for p in prompts)
    anchors = None
    if positive and draw(st.booleans()):
        anchors = tuple(sorted(set(draw(st.lists(_unit, min_size=positive, max_size=positive)))))
        if len(anchors) != positive:
            anchors = None
    mirror = draw(_unit)
    return Request(
        prompts=prompts,
        size=(draw(st.integers(16, 4096)), draw(st.integers(16, 4096))),
        iterations=draw(st.integers(1, 100_000)),
        seed=draw(st.none() | st.integers(0, 2**63 - 1)),
        lr=draw(st.floats(1e-6, 10)),
        optimizer=draw(st.sampled_from(OPTIMIZERS)),
        cutn=draw(st.integers(1, 256)),
        cut_pow=draw(st.floats(0.05, 10)),
        augments=tuple(draw(st.lists(st.sampled_from(AUGMENTS), unique=True))),
        init_image=draw(st.none() | st.just("start here.png")),
        init_weight=draw(st.floats(0, 100)),
        image_prompts=tuple(
            draw(st.lists(st.builds(Prompt, st.sampled_from(["a.png", "b c.jpg"]), _weights)))
        ),
        panorama=draw(st.sampled_from(PANORAMAS)),
        anchors=anchors,
        mirror=mirror,
        semantic_weight=draw(st.floats(0, 10)) if mirror > 0 else 0.0,
        tone_weight=draw(st.floats(0, 10)),
        sobel_weight=draw(st.floats(0, 10)),
        symmetry_blur=draw(st.floats(0.1, 64)),
        size_emphasis=draw(st.floats(-4, 4)),
        vqgan=draw(st.sampled_from(["tiny", "vqgan_imagenet_f16_1024", "/models/my vq.ckpt"])),
        clip=render_clips(
            ClipSpec(name, draw(st.sampled_from([1.0, 0.5, 2.0, 1e-3])))
            for name in draw(st.lists(st.sampled_from(_CLIPS), min_size=1, max_size=3, unique=True))
        ),
        device=draw(st.sampled_from(["auto", "cpu", "cuda", "cuda:1"])),
        precision=draw(st.sampled_from(PRECISIONS)),
        compile=draw(st.sampled_from(COMPILE_MODES)),
        kernels=draw(st.sampled_from(KERNELS)),
        preview_every=draw(st.integers(0, 100)),
        output=draw(st.sampled_from(["output.png", "out dir/naïve 'x'.png"])),
    )


@settings(max_examples=300, deadline=None)
@given(requests())
def test_call_string_round_trip(request: Request) -> None:
    """Parsing the call string gives back an equal request, for every field."""
    assert Request.from_call_string(request.to_call_string()) == request


@settings(max_examples=200, deadline=None)
@given(requests())
def test_json_round_trip(request: Request) -> None:
    """The PNG's JSON gives back an equal request."""
    assert Request.from_json(request.to_json()) == request


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("doorways generate", "the following arguments are required: PROMPTS"),
        ("doorways generate 'a' --iterations many", "invalid int value: 'many'"),
        ("doorways generate 'a' --bogus 1", "unrecognized arguments: --bogus 1"),
        ("doorways generate 'a' --size 64", "expected 2 arguments"),
        ("doorways generate 'unclosed", "cannot split call string"),
        ("rm -rf /", "starts with `doorways generate`"),
        ("doorways generate 'a' --iter 5", "unrecognized arguments"),
    ],
)
def test_call_string_errors(call: str, message: str) -> None:
    """A damaged call string fails with a reason, never silently."""
    with pytest.raises(ValueError, match=_literal(message)):
        Request.from_call_string(call)


def test_from_dict_rejects_unknown_fields() -> None:
    """A typo in a task file or metadata is reported, not ignored."""
    with pytest.raises(ValueError, match=r"unknown request field.*iteratons"):
        Request.from_dict({"prompts": "a", "iteratons": 5})


def test_check_inputs(tmp_path: Path) -> None:
    """Unreadable init images and unknown models are found before any work starts."""
    with pytest.raises(ValueError, match=r"image not found: .*nope\.png"):
        Request(prompts=HEAVEN_HELL, init_image=str(tmp_path / "nope.png")).check_inputs()
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read .*garbage\.png as an image"):
        Request(prompts=HEAVEN_HELL, init_image=str(garbage)).check_inputs()
    with pytest.raises(ValueError, match="unknown vqgan model 'vqgan_nonesuch'"):
        Request(prompts=HEAVEN_HELL, vqgan="vqgan_nonesuch").check_inputs()
    Request(prompts=HEAVEN_HELL, vqgan="tiny", clip="random:ViT-B/32").check_inputs()


def test_one_clip_keeps_the_call_string_and_metadata_of_old_pictures() -> None:
    """A picture painted before CLIP lists: its call string and its PNG's JSON (clip a plain
    name) parse to the same request, and that request renders the very same call string."""
    call = (
        "doorways generate 'entrance to heaven | entrance to hell' --size 448 304 "
        "--iterations 300 --seed 7 --lr 0.1 --cutn 32 --cut-pow 1.0 "
        "--vqgan vqgan_imagenet_f16_16384 --clip ViT-B/32"
    )
    request = Request.from_call_string(call)
    assert request.clip == "ViT-B/32" and request.clips == (ClipSpec("ViT-B/32", 1.0),)
    assert request.to_call_string() == call
    old_json = json.loads(request.to_json()) | {"clip": "ViT-B/32"}
    assert Request.from_dict(old_json) == request


def test_a_clip_list_is_spelt_one_way() -> None:
    """Spaces and a weight of 1 are dropped, so equal lists make equal requests and call
    strings; the list is in the call string and the JSON as typed on the command line."""
    request = Request(prompts=HEAVEN_HELL, clip=" ViT-B/32:1.0 , ViT-B/16 : 0.5")
    assert request == Request(prompts=HEAVEN_HELL, clip="ViT-B/32,ViT-B/16:0.5")
    assert request.clips == (ClipSpec("ViT-B/32"), ClipSpec("ViT-B/16", 0.5))
    assert "--clip ViT-B/32,ViT-B/16:0.5" in request.to_call_string()
    assert json.loads(request.to_json())["clip"] == "ViT-B/32,ViT-B/16:0.5"
    assert Request.from_call_string(request.to_call_string()) == request


def test_check_inputs_names_the_unknown_clip_of_a_list() -> None:
    """Every model of a CLIP list is checked; the unknown one is named."""
    with pytest.raises(ValueError, match="unknown clip model 'ViT-Z/99'"):
        Request(prompts=HEAVEN_HELL, vqgan="tiny", clip="tiny,ViT-Z/99:0.5").check_inputs()


def test_recipe_drops_where_and_how_it_was_watched() -> None:
    """Output path, preview cadence and compilation are not part of a picture's recipe."""
    request = Request(
        prompts=HEAVEN_HELL, seed=1, output="/srv/out.png", preview_every=5, compile="default"
    )
    recipe = request.recipe()
    assert (recipe.output, recipe.preview_every, recipe.compile) == ("output.png", 0, "off")
    assert recipe.replace(output="/srv/out.png", preview_every=5, compile="default") == request
    assert "--output" not in recipe.to_call_string()
    assert "--compile" not in recipe.to_call_string()

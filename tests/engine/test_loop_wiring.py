"""How the loop wires the method's techniques: which prompt pulls which cutout, and how hard.

The losses have their own unit tests; these pin what the loop does with them. A stand-in
CLIP gives each prompt its own axis (orthogonal embeddings) and every cutout an embedding
orthogonal to all of them, chosen by the test; the cutouts are placed by the test too. Then
the gradient on a cutout's embedding, read along prompt i's axis, is how hard the loop pulls
that cutout toward prompt i: (placement at its x) × (prompt weight) × (its size weight),
and nothing else. The decoder is the real tiny VQGAN.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import Tensor

from engine import loop, losses
from engine.cutouts import Cutouts
from engine.loop import Finished, Progress, generate
from engine.models import CLIP, VQGAN
from engine.prompts import Prompt
from engine.request import Request

DIM = 8
AXES = torch.eye(DIM)
TEXT_AXES = {"left": AXES[0], "right": AXES[1], "centre": AXES[2], "people": AXES[3]}
IMAGE_AXIS = AXES[4]  # every image prompt
OBJECT, OTHER_OBJECT, NEUTRAL = AXES[5], AXES[6], AXES[7]
WIDTH, HEIGHT = 160, 32  # 10×2 tokens of the tiny VQGAN; 16-px cutouts step x by 0.05


@dataclass
class StandInCLIP(CLIP):
    """Text prompts embed to their axes, image prompts to IMAGE_AXIS, the painting's cutouts
    to `cutouts` (K, D) or, by default, all to NEUTRAL; the gradient reaching the cutouts'
    embeddings is kept in `grads`."""

    cutouts: Tensor | None = None
    grads: list[Tensor] = field(default_factory=list)

    def encode_text(self, texts: Sequence[str]) -> Tensor:
        return torch.stack([TEXT_AXES[text] for text in texts])

    def encode_image(self, image: Tensor) -> Tensor:
        if not image.requires_grad:  # an image prompt, embedded once before the loop
            return IMAGE_AXIS.expand(image.shape[0], DIM)
        cutouts = NEUTRAL.expand(image.shape[0], DIM) if self.cutouts is None else self.cutouts
        assert cutouts.shape[0] == image.shape[0]
        embeds = cutouts + 0 * image.sum(dim=(1, 2, 3))[:, None]  # on the graph
        embeds.register_hook(self.grads.append)
        return embeds


def stand_in(cutouts: Tensor | None = None) -> StandInCLIP:
    return StandInCLIP(torch.nn.Identity(), "stand-in", input_size=16, cutouts=cutouts)


def boxes_at(*centres: float, size: int = 16) -> list[tuple[int, int, int]]:
    """(x, y, size) boxes whose centres are at these fractions of the width."""
    return [(round(c * WIDTH - size / 2), 0, size) for c in centres]


def place(
    monkeypatch: pytest.MonkeyPatch, boxes: list[tuple[int, int, int]], n_pairs: int = 0
) -> Cutouts:
    """Make the loop take these cutouts every step (pairs first: 2k+1 mirrors 2k)."""
    flipped = torch.zeros(len(boxes), dtype=torch.bool)
    flipped[1 : 2 * n_pairs : 2] = True
    cuts = Cutouts(torch.tensor(boxes, dtype=torch.float), flipped, n_pairs, WIDTH, HEIGHT)
    monkeypatch.setattr(loop, "sample_cutouts", lambda *args, **kwargs: cuts)
    return cuts


def request(*prompts: Prompt, **options: object) -> Request:
    fields: dict[str, object] = {
        "size": (WIDTH, HEIGHT), "iterations": 1, "seed": 1, "augments": (),
        "precision": "fp32", "vqgan": "tiny", "device": "cpu", "panorama": "smooth",
    }  # fmt: skip
    fields.update(options)
    return Request(prompts=prompts, **fields)  # type: ignore[arg-type]


def first_step(req: Request, vqgan: VQGAN, clip: StandInCLIP) -> Progress:
    events = generate(req, vqgan, clip)
    step = next(events)
    events.close()
    assert isinstance(step, Progress)
    return step


def pulls(req: Request, vqgan: VQGAN, clip: StandInCLIP, axes: Sequence[Tensor]) -> Tensor:
    """(K, A): how hard the first step pulls each cutout toward each axis (negative: pushes
    away), from the gradient on the cutouts' embeddings."""
    clip.grads.clear()
    first_step(req, vqgan, clip)
    (grad,) = clip.grads
    return -grad @ torch.stack(list(axes)).T


LEFT_RIGHT = (Prompt("left"), Prompt("right"))
TWO_AXES = (TEXT_AXES["left"], TEXT_AXES["right"])


def share_of_right(pull: Tensor) -> list[float]:
    """Per cutout, the right prompt's share of the pull toward the two prompts."""
    assert (pull > 0).all()
    return (pull[:, 1] / pull.sum(1)).tolist()


# --- panorama placement ----------------------------------------------------------------------


def test_each_prompt_pulls_its_own_side(tiny_vqgan: VQGAN, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two prompts, smooth panorama: a cutout at x=0.1 goes (almost) only to the left prompt,
    one at x=0.9 to the right; the middle one is pulled 0.5/0.5."""
    place(monkeypatch, boxes_at(0.1, 0.5, 0.9))
    left, middle, right = share_of_right(
        pulls(request(*LEFT_RIGHT), tiny_vqgan, stand_in(), TWO_AXES)
    )
    assert left < 0.03 and right > 0.97
    assert middle == pytest.approx(0.5, abs=1e-4)


def test_with_anchors_each_side_is_ruled_by_one_prompt(
    tiny_vqgan: VQGAN, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anchors at 0.25 and 0.75: outside them only the nearer prompt pulls, at all."""
    place(monkeypatch, boxes_at(0.1, 0.25, 0.5, 0.75, 0.9))
    pull = pulls(request(*LEFT_RIGHT, anchors=(0.25, 0.75)), tiny_vqgan, stand_in(), TWO_AXES)
    assert pull[0, 1] == 0 and pull[1, 1] == 0 and pull[3, 0] == 0 and pull[4, 0] == 0
    assert pull[0, 0] > 0 and pull[4, 1] > 0
    assert share_of_right(pull[2:3]) == [pytest.approx(0.5, abs=1e-4)]


def test_the_smooth_blend_is_monotone_symmetric_and_flat_at_the_anchors(
    tiny_vqgan: VQGAN, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From x=0.05 to 0.95 the right prompt's share rises steadily, is mirror-symmetric about
    the middle (share(x) + share(1-x) = 1), and stays under the linear blend's near the left
    anchor: smoothstep's flat start (t² is lopsided, x is not flat)."""
    xs = [round(0.05 * i, 2) for i in range(1, 20)]
    place(monkeypatch, boxes_at(*xs))
    shares = share_of_right(pulls(request(*LEFT_RIGHT), tiny_vqgan, stand_in(), TWO_AXES))
    assert all(a < b for a, b in itertools.pairwise(shares)), shares
    for share, mirrored in zip(shares, reversed(shares), strict=True):
        assert share + mirrored == pytest.approx(1, abs=1e-4)
    assert shares[xs.index(0.5)] == pytest.approx(0.5, abs=1e-4)
    assert all(share < x for share, x in zip(shares, xs, strict=True) if x < 0.5)


def test_the_linear_blend_is_linear(tiny_vqgan: VQGAN, monkeypatch: pytest.MonkeyPatch) -> None:
    """--panorama linear: the right prompt's share at x is x."""
    xs = [0.1, 0.3, 0.5, 0.8]
    place(monkeypatch, boxes_at(*xs))
    shares = share_of_right(
        pulls(request(*LEFT_RIGHT, panorama="linear"), tiny_vqgan, stand_in(), TWO_AXES)
    )
    assert shares == pytest.approx(xs, abs=1e-4)


def test_three_prompts_left_centre_right(
    tiny_vqgan: VQGAN, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three prompts sit at 0, 0.5 and 1: the centre prompt rules the middle, not the edges."""
    place(monkeypatch, boxes_at(0.05, 0.5, 0.95))
    axes = (TEXT_AXES["left"], TEXT_AXES["centre"], TEXT_AXES["right"])
    prompts = (Prompt("left"), Prompt("centre"), Prompt("right"))
    pull = pulls(request(*prompts), tiny_vqgan, stand_in(), axes)
    share = pull / pull.sum(1, keepdim=True)
    assert share.argmax(1).tolist() == [0, 1, 2]
    assert share[1, 1] == pytest.approx(1, abs=1e-4)


def test_a_zero_weight_prompt_takes_no_place(
    tiny_vqgan: VQGAN, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`left | centre:0 | right`: the zero-weight prompt pulls nowhere and holds no anchor, so
    left and right still blend across the whole width (at x=0.25 and 0.75 as with two)."""
    place(monkeypatch, boxes_at(0.25, 0.75))
    prompts = (Prompt("left"), Prompt("centre", 0.0), Prompt("right"))
    axes = (TEXT_AXES["left"], TEXT_AXES["right"], TEXT_AXES["centre"])
    pull = pulls(request(*prompts), tiny_vqgan, stand_in(), axes)
    assert (pull[:, 2] == 0).all()
    two = pulls(request(*LEFT_RIGHT), tiny_vqgan, stand_in(), TWO_AXES)
    assert share_of_right(pull[:, :2]) == pytest.approx(share_of_right(two), abs=1e-4)


def test_without_panorama_every_prompt_pulls_everywhere(
    tiny_vqgan: VQGAN, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--panorama off: both prompts pull every cutout equally."""
    place(monkeypatch, boxes_at(0.1, 0.9))
    pull = pulls(request(*LEFT_RIGHT, panorama="off"), tiny_vqgan, stand_in(), TWO_AXES)
    assert torch.allclose(pull, pull[0, 0].expand_as(pull))


def test_negative_and_image_prompts_act_everywhere(
    tiny_vqgan: VQGAN, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A negative prompt pushes every cutout away equally hard, an image prompt pulls every
    cutout equally, each by its weight; only the positive text prompts are placed."""
    picture = tmp_path / "picture.png"
    Image.new("RGB", (32, 32), (90, 10, 200)).save(picture)
    place(monkeypatch, boxes_at(0.1, 0.5, 0.9))
    req = request(*LEFT_RIGHT, Prompt("people", -0.5), image_prompts=(Prompt(str(picture), 0.3),))
    axes = (*TWO_AXES, TEXT_AXES["people"], IMAGE_AXIS)
    pull = pulls(req, tiny_vqgan, stand_in(), axes)
    left, right, negative, image = pull.T
    assert share_of_right(torch.stack([left, right], 1))[0] < 0.03  # still placed
    assert (negative < 0).all() and torch.allclose(negative, negative[0].expand(3))
    assert (image > 0).all() and torch.allclose(image, image[0].expand(3))
    assert negative[0] / image[0] == pytest.approx(-0.5 / 0.3)  # by weight
    assert image[1] / (left[1] + right[1]) == pytest.approx(0.3)  # a placed prompt's total: 1


# --- patch-size emphasis -----------------------------------------------------------------------


@pytest.mark.parametrize("emphasis", [-1.0, 0.0, 1.0, 2.0])
def test_size_emphasis_decides_which_cutouts_pull_hardest(
    emphasis: float, tiny_vqgan: VQGAN, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cutouts of 8, 16 and 32 px at the same place: pulled in proportion to size^emphasis —
    large ones hardest for emphasis > 0 (place big structures), small ones for < 0 (detail),
    all alike at 0."""
    sizes = [8, 16, 32]
    place(monkeypatch, [box for s in sizes for box in boxes_at(0.5, size=s)])
    req = request(Prompt("left"), size_emphasis=emphasis)
    pull = pulls(req, tiny_vqgan, stand_in(), [TEXT_AXES["left"]])[:, 0]
    expected = torch.tensor(sizes, dtype=torch.float) ** emphasis
    assert (pull / pull[1]).tolist() == pytest.approx((expected / expected[1]).tolist())


@pytest.mark.parametrize(
    "clip_size, size, smallest", [(16, (160, 32), 4), (64, (160, 32), 8), (64, (32, 160), 8)]
)
def test_the_smallest_cutout_is_a_quarter_of_what_clip_and_the_canvas_allow(
    clip_size: int, size: tuple[int, int], smallest: int,
    tiny_vqgan: VQGAN, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Cutouts range down to a quarter of the smaller of CLIP's input and the canvas's sides."""
    asked: list[int] = []
    real = loop.sample_cutouts

    def sample(*args: object, **kwargs: object) -> Cutouts:
        asked.append(inspect.signature(real).bind(*args, **kwargs).arguments["min_size"])
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "sample_cutouts", sample)
    clip = StandInCLIP(torch.nn.Identity(), "stand-in", input_size=clip_size)
    first_step(request(*LEFT_RIGHT, size=size), tiny_vqgan, clip)
    assert asked == [smallest]


# --- semantic symmetry -----------------------------------------------------------------------

MIRRORED_PAIR = [(8, 0, 16), (WIDTH - 8 - 16, 0, 16)]  # centres at x=0.1 and x=0.9


def realm_and(realm: str, thing: Tensor) -> Tensor:
    """A patch showing `thing` in the realm of one prompt."""
    return torch.nn.functional.normalize(TEXT_AXES[realm] + thing, dim=0)


def semantic_loss(vqgan: VQGAN, first: Tensor, second: Tensor) -> float:
    """The semantic term the loop reports for one mirrored pair (left patch, right patch)."""
    req = request(*LEFT_RIGHT, anchors=(0.25, 0.75), mirror=1.0, semantic_weight=0.5)
    step = first_step(req, vqgan, stand_in(torch.stack([first, second])))
    return step.loss_values()["semantic"] / 0.5


def test_semantic_symmetry_measures_each_patch_against_its_own_side(
    tiny_vqgan: VQGAN, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same object translated into each side's realm costs little; each side showing the
    other's realm (or two different objects) costs much: each patch's offset is taken from
    its own side's text t(x), the left prompt at x=0.1 and the right one at x=0.9."""
    place(monkeypatch, MIRRORED_PAIR, n_pairs=1)
    translated = semantic_loss(tiny_vqgan, realm_and("left", OBJECT), realm_and("right", OBJECT))
    swapped = semantic_loss(tiny_vqgan, realm_and("right", OBJECT), realm_and("left", OBJECT))
    different = semantic_loss(
        tiny_vqgan, realm_and("left", OBJECT), realm_and("right", OTHER_OBJECT)
    )
    print(
        f"semantic loss: translated {translated:.3f}, different {different:.3f}"
        f", swapped {swapped:.3f}"
    )
    assert 0 <= translated < 0.2
    assert different == pytest.approx(1, abs=1e-4)
    assert swapped > 1.4


def test_semantic_symmetry_pulls_the_pair_toward_matching(
    tiny_vqgan: VQGAN, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The semantic term's gradient on a mismatched pair, followed a small step, makes the two
    patches' offsets from their own sides' texts more alike (the loop minimises it)."""
    place(monkeypatch, MIRRORED_PAIR, n_pairs=1)
    embeds = torch.stack([realm_and("left", OBJECT), realm_and("right", OTHER_OBJECT)])
    base = request(*LEFT_RIGHT, anchors=(0.25, 0.75), mirror=1.0)
    grads = []
    for weight in (0.0, 0.5):
        clip = stand_in(embeds)
        first_step(base.replace(semantic_weight=weight), tiny_vqgan, clip)
        grads.append(clip.grads[0])
    semantic_grad = grads[1] - grads[0]
    assert semantic_grad.abs().max() > 0
    own_sides = torch.stack([TEXT_AXES["left"], TEXT_AXES["right"]])
    pair = torch.tensor([[0, 1]])

    def mismatch(e: Tensor) -> float:
        return losses.semantic_symmetry_loss(e, own_sides, pair).item()

    assert mismatch(embeds - 0.05 * semantic_grad) < mismatch(embeds) - 1e-3


# --- several CLIP models -----------------------------------------------------------------------


@dataclass
class SizedStandIn(StandInCLIP):
    """A stand-in that records the shape of every image it is asked to embed, and the texts."""

    seen: list[tuple[int, ...]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def encode_image(self, image: Tensor) -> Tensor:
        self.seen.append(tuple(image.shape))
        return super().encode_image(image)

    def encode_text(self, texts: Sequence[str]) -> Tensor:
        self.texts += texts
        return super().encode_text(texts)


def sized(name: str, size: int, cutouts: Tensor | None = None) -> SizedStandIn:
    return SizedStandIn(torch.nn.Identity(), name, input_size=size, cutouts=cutouts)


def test_each_clip_embeds_its_own_cutouts_and_image_prompts_at_its_own_size(
    tiny_vqgan: VQGAN, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two CLIPs of input sizes 16 and 32: each embeds the image prompt and its cutouts at
    its own size, and each encodes the text prompts with its own tower."""
    picture = tmp_path / "picture.png"
    Image.new("RGB", (32, 32), (90, 10, 200)).save(picture)
    place(monkeypatch, boxes_at(0.1, 0.5, 0.9))
    small, large = sized("small", 16), sized("large", 32)
    req = request(*LEFT_RIGHT, clip="small,large:0.5", image_prompts=(Prompt(str(picture)),))
    first_step(req, tiny_vqgan, [small, large])
    assert small.seen == [(1, 3, 16, 16), (3, 3, 16, 16)]
    assert large.seen == [(1, 3, 32, 32), (3, 3, 32, 32)]
    assert small.texts == large.texts == ["left", "right"]


def test_each_clip_pulls_with_its_weight(
    tiny_vqgan: VQGAN, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first step's gradient on each CLIP's cutout embeddings (prompt loss and semantic
    symmetry together) is what that CLIP alone gets, times its weight; the losses reported
    add up the same way."""
    place(monkeypatch, MIRRORED_PAIR, n_pairs=1)
    embeds = torch.stack([realm_and("left", OBJECT), realm_and("right", OTHER_OBJECT)])
    req = request(*LEFT_RIGHT, anchors=(0.25, 0.75), mirror=1.0, semantic_weight=0.5)
    alone = sized("first", 16, embeds)
    one = first_step(req.replace(clip="first"), tiny_vqgan, alone).loss_values()
    first, second = sized("first", 16, embeds), sized("second", 32, embeds)
    both = first_step(req.replace(clip="first,second:0.25"), tiny_vqgan, [first, second])
    (solo,), (grad_first,), (grad_second,) = alone.grads, first.grads, second.grads
    assert solo.abs().max() > 0
    torch.testing.assert_close(grad_first, solo)
    torch.testing.assert_close(grad_second, 0.25 * solo)
    for term in ("prompt", "semantic"):
        assert both.loss_values()[term] == pytest.approx(1.25 * one[term])


def test_a_clip_list_needs_its_models(tiny_vqgan: VQGAN) -> None:
    """A request naming two CLIPs given one loaded model is an error that says so."""
    with pytest.raises(ValueError, match="names 2 CLIP model"):
        first_step(request(*LEFT_RIGHT, clip="a,b"), tiny_vqgan, stand_in())


# --- tone and Sobel symmetry ------------------------------------------------------------------


def test_symmetry_terms_weigh_the_painting_being_judged(tiny_vqgan: VQGAN) -> None:
    """--tone-weight and --sobel-weight scale the tone and edge asymmetry of the very canvas
    the step judged, blurred by --symmetry-blur; the total is the sum of the terms."""
    req = request(
        *LEFT_RIGHT, tone_weight=0.7, sobel_weight=3.0, symmetry_blur=2.0, preview_every=1
    )
    step = first_step(req, tiny_vqgan, stand_in())
    assert step.image is not None
    canvas = step.image[None]
    values = step.loss_values()
    tone = losses.tone_symmetry_loss(canvas, 2.0).item()
    sobel = losses.sobel_symmetry_loss(canvas, 2.0).item()
    assert tone > 0 and sobel > 0
    assert values["tone"] == pytest.approx(0.7 * tone, rel=1e-4)
    assert values["sobel"] == pytest.approx(3.0 * sobel, rel=1e-4)
    terms = ("prompt", "tone", "sobel")
    assert values["total"] == pytest.approx(sum(values[name] for name in terms), rel=1e-5)


# --- precision and optimiser ----------------------------------------------------------------


@dataclass
class PrecisionWatcher(StandInCLIP):
    """A stand-in that notes the precision autocast gives the painting's cutouts (None: off)."""

    precisions: list[torch.dtype | None] = field(default_factory=list)
    ranges: list[tuple[float, float]] = field(default_factory=list)

    def encode_image(self, image: Tensor) -> Tensor:
        if image.requires_grad:
            on = torch.is_autocast_enabled("cpu")
            self.precisions.append(torch.get_autocast_dtype("cpu") if on else None)
            self.ranges.append((image.min().item(), image.max().item()))
        return super().encode_image(image)


@pytest.mark.parametrize(
    "precision, expected", [("bf16", torch.bfloat16), ("fp16", torch.float16), ("fp32", None)]
)
def test_clip_runs_at_the_requested_precision(
    precision: str, expected: torch.dtype | None, tiny_vqgan: VQGAN
) -> None:
    """--precision bf16 or fp16 runs the networks under autocast in that type; fp32 without."""
    clip = PrecisionWatcher(torch.nn.Identity(), "stand-in", input_size=16)
    first_step(request(*LEFT_RIGHT, precision=precision), tiny_vqgan, clip)
    assert clip.precisions == [expected]


def test_clip_sees_the_canvas_clamped_to_0_1(tiny_vqgan: VQGAN) -> None:
    """The decoder overshoots (the tiny one reaches about -0.5 and 1.5); CLIP is shown the
    picture as it will be saved, every pixel in [0, 1] (near black and white at the ends)."""
    clip = PrecisionWatcher(torch.nn.Identity(), "stand-in", input_size=16)
    first_step(request(*LEFT_RIGHT, cutn=16), tiny_vqgan, clip)
    [(low, high)] = clip.ranges
    assert 0 <= low < 0.1 and 0.9 < high <= 1


@pytest.mark.parametrize("name", ["adam", "adamw", "adagrad"])
def test_the_latent_is_optimised_by_the_requested_optimizer(
    name: str, tiny_vqgan: VQGAN, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--optimizer picks torch's optimiser of that name, at --lr, over the latent."""
    made: list[tuple[str, float]] = []
    for cls_name in ("Adam", "AdamW", "Adagrad"):
        real = getattr(torch.optim, cls_name)

        def spy(params: list[Tensor], lr: float, real: type = real) -> torch.optim.Optimizer:
            made.append((real.__name__.lower(), lr))
            return real(params, lr=lr)

        monkeypatch.setattr(torch.optim, cls_name, spy)
    first_step(request(*LEFT_RIGHT, optimizer=name, lr=0.0123), tiny_vqgan, stand_in())
    assert made == [(name, 0.0123)]


# --- init weight (real tiny CLIP: its prompt loss moves the latent) ---------------------------


def test_init_weight_pulls_toward_the_init_latent(
    tiny_vqgan: VQGAN, tiny_clip: CLIP, tmp_path: Path
) -> None:
    """From an init image, with the prompt pulling away: a heavy --init-weight ends much
    nearer the init image's latent than a negligible one. (The tiny VQGAN's codebook spans
    ±0.004: squared distances are about 1e-5, so the weight that holds is large, and the
    learning rate small enough that the steps stay inside the codebook's range.)"""
    init = tmp_path / "init.png"
    Image.new("RGB", (64, 64), (20, 120, 220)).save(init)
    req = Request(
        prompts=(Prompt("a red door"),), size=(64, 64), iterations=12, cutn=4, seed=3, lr=0.001,
        init_image=str(init), augments=(), clip="tiny", vqgan="tiny", device="cpu",
    )  # fmt: skip

    def distance(weight: float) -> tuple[float, float]:
        """(mean squared distance of the last step's latent from z_init, as the loop reports
        it; mean pixel difference of the picture from the init latent's)."""
        *steps, finished = generate(
            req.replace(init_weight=weight, preview_every=1), tiny_vqgan, tiny_clip
        )
        first, last = steps[0], steps[-1]
        assert isinstance(finished, Finished)
        assert isinstance(first, Progress) and isinstance(last, Progress)
        assert first.image is not None  # decoded from z_init, before the first step
        assert first.loss_values()["init"] == 0
        reported = last.loss_values()["init"] / weight
        return reported, (finished.image - first.image).abs().mean().item()

    (free, free_pixels), (held, held_pixels) = distance(1e-6), distance(1e4)
    print(f"distance from the init latent: free {free:.6f} ({free_pixels:.4f} in pixels),"
          f" held {held:.6f} ({held_pixels:.4f})")  # fmt: skip
    assert free > 0 and 0 <= held < free / 10
    assert held_pixels < free_pixels / 2

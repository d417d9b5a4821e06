"""The optimisation loop with tiny real models: events, reproducibility, losses falling."""

import copy
import dataclasses
import shlex
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from torch._dynamo.utils import counters

from engine import cli, losses
from engine.loop import (
    Finished,
    Progress,
    _ClampWithGrad,
    generate,
    latent_size,
    load_image,
    quantize,
    resolve_precision,
    with_seed,
)
from engine.models import CLIP, VQGAN, load_clip
from engine.outputs import read_request, save_png
from engine.prompts import Prompt
from engine.request import Request

TINY = {"vqgan": "tiny", "clip": "tiny", "device": "cpu"}


def _run(
    request: Request, vqgan: VQGAN, clip: CLIP | Sequence[CLIP]
) -> tuple[list[Progress], Finished]:
    events = list(generate(request, vqgan, clip))
    *steps, finished = events
    assert isinstance(finished, Finished)
    assert all(isinstance(step, Progress) for step in steps)
    return steps, finished  # type: ignore[return-value]


def test_events_and_seed(tiny_vqgan: VQGAN, tiny_clip: CLIP) -> None:
    """One Progress per step, previews on schedule, then the image and the pinned seed."""
    request = Request(
        prompts=(Prompt("a red door"),), size=(100, 70), iterations=6, cutn=4,
        preview_every=3, **TINY,
    )  # fmt: skip
    steps, finished = _run(request, tiny_vqgan, tiny_clip)
    assert [s.iteration for s in steps] == [1, 2, 3, 4, 5, 6]
    assert [s.image is not None for s in steps] == [False, False, True, False, False, True]
    assert steps[2].image is not None and steps[2].image.shape == (3, 64, 96)
    assert finished.image.shape == (3, 64, 96)  # 100×70 rounds to 6×4 tokens of 16 px
    assert finished.image.min() >= 0 and finished.image.max() <= 1
    assert finished.request.seed is not None and request.seed is None
    assert set(steps[0].loss_values()) == {"prompt", "total"}
    assert all(step.total == 6 for step in steps)  # "step 3 of 6"
    assert 0 < finished.seconds < 120


def test_same_seed_same_pixels_and_call_string_reproduces(
    tiny_vqgan: VQGAN,
    tiny_clip: CLIP,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 64×64 PNG carries its call string, and running that call gives identical pixels."""
    request = Request(
        prompts=(Prompt("entrance to heaven"), Prompt("entrance to hell")), size=(64, 64),
        iterations=8, cutn=4, seed=7, output=str(tmp_path / "first.png"), **TINY,
    )  # fmt: skip
    _, finished = _run(request, tiny_vqgan, tiny_clip)
    first = save_png(finished.image, finished.request, tmp_path / "first.png", "cpu")
    with Image.open(first) as image:
        call = image.text["parameters"]  # type: ignore[attr-defined]
        pixels = image.tobytes()
    assert call.startswith("doorways generate 'entrance to heaven | entrance to hell'")
    assert "--seed 7" in call and read_request(first) == finished.request.recipe()
    assert "--output" not in call  # where a picture was saved is not part of its recipe
    assert (tmp_path / "first.txt").read_text().strip() == call

    monkeypatch.chdir(tmp_path)
    assert cli.main(shlex.split(call)[1:]) == 0  # the same command, as a user would paste it
    assert "saved output.png" in capsys.readouterr().err
    with Image.open(tmp_path / "output.png") as again:
        assert again.tobytes() == pixels


def test_prompt_loss_falls(tiny_vqgan: VQGAN, tiny_clip: CLIP) -> None:
    """Over 30 iterations the prompt loss goes down."""
    request = Request(
        prompts=(Prompt("a golden gate"),), size=(64, 64), iterations=30, cutn=8, seed=1,
        lr=0.2, **TINY,
    )  # fmt: skip
    steps, _ = _run(request, tiny_vqgan, tiny_clip)
    curve = [step.loss_values()["prompt"] for step in steps]
    start, end = sum(curve[:5]) / 5, sum(curve[-5:]) / 5
    print(f"prompt loss: first five {start:.4f}, last five {end:.4f}")
    assert end < start


def _asymmetry(image: torch.Tensor) -> float:
    """L1 between the blurred grey image and its mirror: 0 for a symmetric picture."""
    return losses.tone_symmetry_loss(image[None], 4.0).item()


def test_tone_symmetry_makes_pictures_more_symmetric(tiny_vqgan: VQGAN, tiny_clip: CLIP) -> None:
    """15 iterations with tone symmetry end more mirror-symmetric than without it (at 96×32
    by about a tenth, whatever the seed)."""
    plain = Request(
        prompts=(Prompt("entrance to heaven"), Prompt("entrance to hell")), size=(96, 32),
        iterations=15, cutn=4, seed=3, panorama="smooth", **TINY,
    )  # fmt: skip
    _, without = _run(plain, tiny_vqgan, tiny_clip)
    _, with_tone = _run(plain.replace(tone_weight=2.0), tiny_vqgan, tiny_clip)
    before, after = _asymmetry(without.image), _asymmetry(with_tone.image)
    print(f"blurred-grey asymmetry: without tone symmetry {before:.4f}, with {after:.4f}")
    assert after < before


def test_every_option_runs(tiny_vqgan: VQGAN, tiny_clip: CLIP, tmp_path: Path) -> None:
    """Init image, image prompt, negative prompt, panorama, pairs and all losses together."""
    init = tmp_path / "init.png"
    Image.new("RGB", (50, 40), (200, 30, 30)).save(init)
    request = Request(
        prompts=(Prompt("forest"), Prompt("kelp forest"), Prompt("people", -0.5)),
        size=(96, 64), iterations=3, cutn=6, seed=2, optimizer="adamw",
        augments=("affine", "perspective", "blur", "noise"), init_image=str(init),
        init_weight=0.5, image_prompts=(Prompt(str(init), 0.3),), panorama="linear",
        anchors=(0.2, 0.8), mirror=0.5, semantic_weight=0.1, tone_weight=0.5,
        sobel_weight=0.5, size_emphasis=-1.0, **TINY,
    )  # fmt: skip
    steps, finished = _run(request, tiny_vqgan, tiny_clip)
    assert set(steps[-1].loss_values()) == {"prompt", "semantic", "tone", "sobel", "init", "total"}
    assert finished.image.shape == (3, 64, 96)


def test_init_image_sets_the_start(tiny_vqgan: VQGAN, tiny_clip: CLIP, tmp_path: Path) -> None:
    """Starting from an image begins at that image's encoding, not at random tokens; every
    picture of a batch (--count) starts there."""
    init = tmp_path / "init.png"
    Image.new("RGB", (64, 64), (10, 200, 40)).save(init)
    request = Request(
        prompts=(Prompt("x"),), size=(64, 64), iterations=1, cutn=2, lr=1e-6, seed=1,
        init_image=str(init), **TINY,
    )  # fmt: skip
    _, a = _run(request, tiny_vqgan, tiny_clip)
    _, b = _run(request.replace(seed=2), tiny_vqgan, tiny_clip)
    assert torch.allclose(a.image, b.image, atol=1e-4)  # the seed no longer picks the start
    _, batch = _run(request.replace(count=2), tiny_vqgan, tiny_clip)
    assert len(batch.images) == 2
    assert all(torch.allclose(a.image, picture, atol=1e-4) for picture in batch.images)


def test_closing_the_generator_cancels(tiny_vqgan: VQGAN, tiny_clip: CLIP) -> None:
    """A consumer can stop between iterations; nothing more is computed."""
    request = Request(prompts=(Prompt("x"),), size=(64, 64), iterations=1000, cutn=2, **TINY)
    events = generate(request, tiny_vqgan, tiny_clip)
    first = next(events)
    events.close()
    assert isinstance(first, Progress) and first.iteration == 1
    with pytest.raises(StopIteration):
        next(events)


def test_quantize_snaps_to_codes_and_passes_gradients() -> None:
    """Forward values are codebook entries; the gradient is the identity."""
    codebook = torch.randn(10, 4)
    z = torch.randn(1, 4, 2, 3, requires_grad=True)
    q = quantize(z, codebook)
    vectors = q.detach().permute(0, 2, 3, 1).reshape(-1, 4)
    assert all(torch.isclose(codebook, v, atol=1e-6).all(1).any() for v in vectors)
    q.sum().backward()
    assert z.grad is not None and torch.equal(z.grad, torch.ones_like(z))


def test_the_clamp_lets_out_of_range_pixels_back_in() -> None:
    """The decoded image is clamped to [0, 1] before CLIP sees it; the gradient flows inside
    the range (edges included) and, outside it, only where a descent step moves the pixel
    back in. Without that, a pixel that overshot black or white would stay stuck there."""
    x = torch.tensor([-0.5, -0.5, 0.0, 0.5, 1.0, 1.5, 1.5], requires_grad=True)
    grad = torch.tensor([0.5, -0.5, 0.5, 0.5, -0.5, 0.5, -0.5])
    clamped = _ClampWithGrad.apply(x, 0.0, 1.0)
    assert clamped.tolist() == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0, 1.0]
    clamped.backward(grad)
    assert x.grad is not None
    # below 0: +0.5 would push further down (held), -0.5 back up (passes); above 1: mirrored
    assert x.grad.tolist() == [0.0, -0.5, 0.5, 0.5, -0.5, 0.5, 0.0]


def test_quantize_picks_the_nearest_code() -> None:
    """Each latent vector becomes the codebook entry nearest to it (Euclidean), not just any
    entry."""
    generator = torch.Generator().manual_seed(0)
    codebook = torch.randn(50, 4, generator=generator)
    z = torch.randn(1, 4, 3, 5, generator=generator)
    vectors = quantize(z, codebook).permute(0, 2, 3, 1).reshape(-1, 4)
    nearest = codebook[torch.cdist(z.permute(0, 2, 3, 1).reshape(-1, 4), codebook).argmin(1)]
    assert torch.allclose(vectors, nearest, atol=1e-6)


def test_the_picture_is_the_painted_latent(tiny_vqgan: VQGAN, tiny_clip: CLIP) -> None:
    """The finished picture is the decoded latent (one near-still step from the first
    preview), not a blank or a clipped copy of it."""
    request = Request(
        prompts=(Prompt("x"),), size=(64, 64), iterations=1, cutn=2, lr=1e-6, seed=4,
        preview_every=1, **TINY,
    )  # fmt: skip
    steps, finished = _run(request, tiny_vqgan, tiny_clip)
    assert steps[0].image is not None
    assert torch.allclose(finished.image, steps[0].image, atol=1e-3)
    assert finished.image.std() > 0.05


def test_latent_size_rounds_to_nearest_token() -> None:
    """450×300 on a 16-px grid is 28×19 tokens (448×304 pixels); tiny sizes keep one token."""
    assert latent_size(Request(prompts=(Prompt("x"),), size=(450, 300)), 16) == (28, 19)
    assert latent_size(Request(prompts=(Prompt("x"),), size=(16, 20)), 16) == (1, 1)


def test_a_request_without_seed_gets_one_from_the_whole_range() -> None:
    """Unseeded requests get different seeds spread over 0…2³²-1 (not a handful of pictures);
    a seeded one keeps its own."""
    unseeded = Request(prompts=(Prompt("x"),))
    seeds = [with_seed(unseeded).seed for _ in range(20)]
    assert all(seed is not None and 0 <= seed < 2**32 for seed in seeds)
    assert len(set(seeds)) == 20 and max(s for s in seeds if s is not None) > 2**16
    assert with_seed(unseeded.replace(seed=5)).seed == 5


def test_an_image_keeps_its_colours(tmp_path: Path) -> None:
    """An init or image prompt file is read at full brightness: white stays 1, a colour its
    byte value / 255, at the size the loop asks for."""
    path = tmp_path / "colours.png"
    Image.new("RGB", (40, 30), (255, 51, 0)).save(path)
    image = load_image(str(path), 20, 10, torch.device("cpu"))
    assert image.shape == (1, 3, 10, 20)
    assert image[0, :, 5, 10].tolist() == pytest.approx([1.0, 0.2, 0.0], abs=1e-6)


# A short two-realm run with every loss term on: the reference for the speed options.
SPEED_REFERENCE = Request(
    prompts=(Prompt("entrance to heaven"), Prompt("entrance to hell")), size=(64, 64),
    iterations=4, cutn=2, seed=5, panorama="smooth", mirror=1.0, semantic_weight=0.1,
    tone_weight=1.0, precision="fp32", **TINY,
)  # fmt: skip


def _largest_loss_difference(reference: list[Progress], other: list[Progress]) -> float:
    """The largest relative difference of the total loss, step by step."""
    ref = [s.loss_values()["total"] for s in reference]
    got = [s.loss_values()["total"] for s in other]
    return max(abs(a - b) / a for a, b in zip(ref, got, strict=True))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_keeps_the_loss_curve(
    precision: str, tiny_vqgan: VQGAN, tiny_clip: CLIP
) -> None:
    """Autocast follows the fp32 loss curve of a fixed seed within 2% at every step."""
    reference, _ = _run(SPEED_REFERENCE, tiny_vqgan, tiny_clip)
    mixed, finished = _run(SPEED_REFERENCE.replace(precision=precision), tiny_vqgan, tiny_clip)
    worst = _largest_loss_difference(reference, mixed)
    print(f"{precision}: largest relative loss difference over 4 steps {worst:.4%}")
    assert worst < 0.02
    assert finished.image.dtype == torch.float32


def test_auto_precision_is_fp32_on_the_cpu(tiny_vqgan: VQGAN, tiny_clip: CLIP) -> None:
    """CPUs without bf16 units are slower in it, so auto keeps fp32 there, bit for bit."""
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("fp16", torch.device("cpu")) == "fp16"
    fp32, _ = _run(SPEED_REFERENCE, tiny_vqgan, tiny_clip)
    auto, _ = _run(SPEED_REFERENCE.replace(precision="auto"), tiny_vqgan, tiny_clip)
    assert _largest_loss_difference(fp32, auto) == 0


@pytest.mark.parametrize("bf16_units", [True, False])
def test_auto_precision_is_bf16_only_on_a_gpu_with_bf16_units(
    bf16_units: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """auto: bf16 on a GPU that has bf16 tensor cores, fp32 on one without; a CPU job keeps
    fp32 even where the machine's GPU has them."""
    asked: list[bool] = []

    def supported(including_emulation: bool = True) -> bool:
        asked.append(including_emulation)
        return bf16_units

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    gpu = "bf16" if bf16_units else "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == gpu
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("fp32", torch.device("cuda")) == "fp32"
    assert asked == [False]  # emulated bf16 is slower than fp32


def test_channels_last_keeps_the_loss_curve(tiny_vqgan: VQGAN, tiny_clip: CLIP) -> None:
    """The VQGAN is held channels_last; the usual layout follows the same curve (1e-4)."""
    weight = tiny_vqgan.model.decoder.conv_in.weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    plain = copy.deepcopy(tiny_vqgan.model).to(memory_format=torch.contiguous_format)
    assert not plain.decoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    reference, _ = _run(SPEED_REFERENCE, dataclasses.replace(tiny_vqgan, model=plain), tiny_clip)
    fast, _ = _run(SPEED_REFERENCE, tiny_vqgan, tiny_clip)
    worst = _largest_loss_difference(reference, fast)
    print(f"channels_last: largest relative loss difference over 4 steps {worst:.2e}")
    assert worst < 1e-4


def test_compile_keeps_the_loss_curve(tiny_vqgan: VQGAN, tiny_clip: CLIP) -> None:
    """Inductor-compiled networks follow the eager loss curve within 1e-3. The suite's one
    inductor compile (about 60 s cold here; its cache in /tmp/torchinductor_$USER makes the
    next run about 10 s); what is compiled when is tested below with a cheap backend."""
    torch._dynamo.reset()  # no frames compiled by another backend in an earlier test
    counters.clear()
    reference, _ = _run(SPEED_REFERENCE, tiny_vqgan, tiny_clip)
    compiled, _ = _run(SPEED_REFERENCE.replace(compile="default"), tiny_vqgan, tiny_clip)
    worst = _largest_loss_difference(reference, compiled)
    print(f"compile: largest relative loss difference over 4 steps {worst:.2e}")
    assert worst < 1e-3
    assert counters["stats"]["unique_graphs"] > 0  # it was compiled, not run eagerly


@pytest.fixture
def eager_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str | None]]:
    """torch.compile with dynamo's eager backend: the same tracing, guards and cache as
    inductor, without generating code. Yields the modes the loop asked for."""
    real, modes = torch.compile, []

    def compile(model: Any, *, mode: str | None = None, **options: Any) -> Any:
        modes.append(mode)
        return real(model, backend="eager", **options)

    monkeypatch.setattr(torch, "compile", compile)
    torch._dynamo.reset()
    counters.clear()
    yield modes
    torch._dynamo.reset()  # leave no eager-compiled frames to later tests


def test_a_worker_compiles_once_per_picture_size(
    tiny_vqgan: VQGAN, tiny_clip: CLIP, eager_backend: list[str | None]
) -> None:
    """--compile MODE compiles the decoder and CLIP in that mode; the next picture of the same
    size compiles nothing new (a resident worker compiles once per size), a new size compiles
    anew, and going back to the first size compiles nothing. --compile off compiles nothing."""
    reference, _ = _run(SPEED_REFERENCE, tiny_vqgan, tiny_clip)
    assert eager_backend == [] and not counters["stats"]["unique_graphs"]

    compiled = SPEED_REFERENCE.replace(compile="reduce-overhead")
    steps, _ = _run(compiled, tiny_vqgan, tiny_clip)
    assert eager_backend == ["reduce-overhead"] * 2  # the decoder and CLIP's image encoder
    assert _largest_loss_difference(reference, steps) < 1e-5  # the same operations
    graphs = counters["stats"]["unique_graphs"]
    assert graphs >= 2

    def new_graphs(request: Request) -> int:
        before = counters["stats"]["unique_graphs"]
        _run(request, tiny_vqgan, tiny_clip)
        return counters["stats"]["unique_graphs"] - before

    assert new_graphs(compiled.replace(seed=6)) == 0
    assert new_graphs(compiled.replace(size=(96, 64))) > 0
    assert new_graphs(compiled.replace(seed=7)) == 0


def test_every_clip_of_a_list_is_compiled_and_runs_in_the_precision_asked(
    tiny_vqgan: VQGAN, tiny_clip: CLIP, small_clip_path: Path, eager_backend: list[str | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """With two CLIPs, --compile compiles the decoder and each CLIP's image encoder, and
    --precision's autocast is on around each CLIP's cutouts."""
    small = load_clip(str(small_clip_path), torch.device("cpu"))
    autocast: list[tuple[str, torch.dtype]] = []
    for clip in (tiny_clip, small):
        encode = clip.encode_image

        def recording(image: torch.Tensor, name: str = clip.name, encode: Any = encode) -> Any:
            if image.requires_grad:  # a cutout batch, not an image prompt
                autocast.append((name, torch.get_autocast_dtype("cpu")))
                assert torch.is_autocast_enabled("cpu")
            return encode(image)

        monkeypatch.setattr(clip, "encode_image", recording)
    request = SPEED_REFERENCE.replace(
        clip=f"tiny,{small_clip_path}:0.5", compile="default", precision="bf16", iterations=2
    )
    _run(request, tiny_vqgan, [tiny_clip, small])
    assert eager_backend == ["default"] * 3  # the decoder, then each CLIP's image encoder
    assert autocast == [("tiny", torch.bfloat16), (str(small_clip_path), torch.bfloat16)] * 2

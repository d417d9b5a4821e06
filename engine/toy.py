"""A toy world small enough to learn here, and a CLIP and a VQGAN trained on it.

The tiny models are untrained, so nothing painted with them can show whether "red | blue"
paints red on the left. This world can: 32×32 pictures of one shape (a circle, stripes or
checks) in one colour (red, green, blue or yellow) on a dark ground, each described by a
few captions ("red", "a circle", "a red circle"). On it we train, with the real classes:

- a toy CLIP (clip.model.CLIP, a 2-layer ViT and a 1-layer text transformer) as a
  classifier over all the captions at once — every step embeds every caption, and each
  picture's logits against them are pulled toward its own captions — which learns in
  seconds where in-batch contrastive training takes minutes;
- a toy VQGAN (taming's VQModel, factor 2) as an autoencoder: reconstruction error plus
  the codebook and commitment terms, no discriminator. The painting loop clamps its latent
  to the codebook's range, so a collapsed codebook could not paint: the codes start as
  encoder outputs and codes left unused are moved onto encoder outputs as it trains;
- on request, a second toy CLIP that sees the world at 16 px, for several CLIP models at once.

They are saved in the formats the loaders read (a CLIP state dict; a VQGAN checkpoint with
its YAML beside it), each with its training report, under a folder named by a hash of this
file, so `--clip PATH --vqgan PATH` paint with them and any change to the recipe trains
afresh. `python -m engine.toy` trains them and prints those options.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from engine import _clip_compat
from engine.models import CLIP_MEAN, CLIP_STD, DUMMY_LOSS, build_clip, build_vqgan, save_atomic
from engine.registry import model_dir

# --- the world ----------------------------------------------------------------------------

SIZE = 32  # pixels a side
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.9, 0.1, 0.1),
    "green": (0.1, 0.75, 0.15),
    "blue": (0.15, 0.25, 0.95),
    "yellow": (0.95, 0.85, 0.1),
}
SHAPES = ("circle", "stripes", "checks")  # an object and two textures


def _shape_caption(shape: str) -> str:
    return f"a {shape}" if shape == "circle" else shape


def _both_caption(colour: str, shape: str) -> str:
    return f"a {colour} {shape}" if shape == "circle" else f"{colour} {shape}"


CAPTIONS: tuple[str, ...] = (
    *COLOURS,
    *(_shape_caption(s) for s in SHAPES),
    *(_both_caption(c, s) for c in COLOURS for s in SHAPES),
)


def captions_of(colour: int, shape: int) -> list[int]:
    """Indices in CAPTIONS of the three captions true of a picture: colour, shape, both."""
    both = len(COLOURS) + len(SHAPES) + colour * len(SHAPES) + shape
    return [colour, len(COLOURS) + shape, both]


@dataclass(frozen=True)
class Pictures:
    """A batch of the world: (B, 3, S, S) images in [0, 1] and what each shows."""

    images: Tensor
    colours: Tensor  # (B,) index into COLOURS
    shapes: Tensor  # (B,) index into SHAPES


def draw(n: int, generator: torch.Generator, size: int = SIZE) -> Pictures:
    """n random pictures: a shape of a colour, placed and sized at random, on a dark ground."""
    g = generator
    colours = torch.randint(len(COLOURS), (n,), generator=g)
    shapes = torch.randint(len(SHAPES), (n,), generator=g)
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    u = torch.rand(n, 4, generator=g)
    cx, cy = (0.25 + 0.5 * u[:, 0]) * size, (0.25 + 0.5 * u[:, 1]) * size  # (n,)
    dx, dy = xs - cx[:, None, None], ys - cy[:, None, None]  # (n, S, S)
    radius = (0.15 + 0.2 * u[:, 2])[:, None, None] * size
    # signed distance to each shape's edge (positive inside), in pixels
    circle = radius - (dx**2 + dy**2).sqrt()
    period = (4 + 4 * u[:, 3])[:, None, None]
    wave_x, wave_y = (torch.cos(2 * math.pi * d / period) for d in (dx, dy))
    stripes = wave_y * period / (2 * math.pi)
    checks = wave_x * wave_y * period / (2 * math.pi)
    inside = torch.stack([circle, stripes, checks], 1)[torch.arange(n), shapes]
    coverage = torch.sigmoid(2 * inside)[:, None]  # (n, 1, S, S), edges anti-aliased
    palette = torch.tensor(list(COLOURS.values()))[colours]  # (n, 3)
    paint = (palette + 0.05 * torch.randn(n, 3, generator=g)).clamp(0, 1)[:, :, None, None]
    ground = (0.05 + 0.15 * torch.rand(n, 1, 1, 1, generator=g)).expand(n, 3, 1, 1)
    images = ground + (paint - ground) * coverage
    images = images + 0.02 * torch.randn(images.shape, generator=g)
    return Pictures(images.clamp(0, 1), colours, shapes)


# --- the recipe ---------------------------------------------------------------------------

TOY_CLIP: dict[str, Any] = {  # arguments of clip.model.CLIP
    "embed_dim": 32,
    "image_resolution": SIZE,
    "vision_layers": 2,
    "vision_width": 64,  # build_model() reads heads as width // 64
    "vision_patch_size": 8,
    "context_length": 8,  # "a yellow circle" is 5 tokens with start and end
    "vocab_size": 49408,  # the tokenizer's
    "transformer_width": 64,
    "transformer_heads": 1,
    "transformer_layers": 1,
}
# A second CLIP that sees the world at 16 px, for several CLIP models at once (--clip A,B).
TOY_CLIP_16: dict[str, Any] = {**TOY_CLIP, "image_resolution": 16, "vision_patch_size": 4}
TOY_VQGAN: dict[str, Any] = {
    "target": "taming.models.vqgan.VQModel",
    "params": {
        "embed_dim": 8,
        "n_embed": 64,
        "ddconfig": {
            "double_z": False,
            "z_channels": 8,
            "resolution": SIZE,
            "in_channels": 3,
            "out_ch": 3,
            "ch": 32,  # GroupNorm takes 32 groups: channels are multiples of 32
            "ch_mult": [1, 1],  # factor 2: at 4, 64 codes of 8 numbers blur the textures
            "num_res_blocks": 0,
            "attn_resolutions": [],
            "dropout": 0.0,
        },
    },
}


@dataclass(frozen=True)
class Recipe:
    """How the toy models are trained; the folder they are saved in is named by a hash of
    this file, so changing any of it trains afresh."""

    seed: int = 0
    clip_steps: int = 150
    clip_batch: int = 64
    clip_lr: float = 5e-4
    vqgan_steps: int = 300
    vqgan_batch: int = 16
    vqgan_lr: float = 1e-2  # the peak of a one-cycle schedule
    vqgan_crop: int = 16  # trained on crops: the networks are convolutional, crops are cheaper
    reset_every: int = 25  # move codes unused for this many steps onto encoder outputs


RECIPE = Recipe()


def _clip_normalise(images: Tensor) -> Tensor:
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def _caption_targets(pictures: Pictures) -> Tensor:
    """(B, len(CAPTIONS)): each picture's three true captions, a third each."""
    targets = torch.zeros(pictures.images.shape[0], len(CAPTIONS))
    pairs = zip(pictures.colours.tolist(), pictures.shapes.tolist(), strict=True)
    for row, (colour, shape) in enumerate(pairs):
        targets[row, captions_of(colour, shape)] = 1 / 3
    return targets


def train_clip(
    recipe: Recipe = RECIPE, config: dict[str, Any] = TOY_CLIP
) -> tuple[torch.nn.Module, dict[str, float]]:
    """A toy CLIP trained as a classifier over every caption; and its held-out accuracy."""
    torch.manual_seed(recipe.seed)
    model: Any = build_clip(config).float().train()
    size = config["image_resolution"]

    def seen(images: Tensor) -> Tensor:  # the world at the model's input size
        return images if size == SIZE else F.interpolate(images, size=size, mode="area")

    tokens = _clip_compat.tokenize(CAPTIONS, TOY_CLIP["context_length"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.clip_lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(recipe.seed)
    for _ in range(recipe.clip_steps):
        pictures = draw(recipe.clip_batch, generator)
        logits = _caption_logits(model, seen(pictures.images), tokens)
        loss = -(_caption_targets(pictures) * logits).sum(1).mean()  # cross-entropy
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        held_out = draw(512, torch.Generator().manual_seed(recipe.seed + 1))
        logits = _caption_logits(model, seen(held_out.images), tokens)
    n_colours, n_shapes = len(COLOURS), len(SHAPES)

    def accuracy(first: int, last: int, truth: Tensor) -> float:
        """How often the best of CAPTIONS[first:last] is the true one."""
        return (logits[:, first:last].argmax(1) == truth).float().mean().item()

    both = held_out.colours * n_shapes + held_out.shapes
    return model, {
        "accuracy": accuracy(n_colours + n_shapes, len(CAPTIONS), both),
        "colour_accuracy": accuracy(0, n_colours, held_out.colours),
        "shape_accuracy": accuracy(n_colours, n_colours + n_shapes, held_out.shapes),
        "loss": loss.item(),
    }


def _caption_logits(model: Any, images: Tensor, tokens: Tensor) -> Tensor:
    """(B, len(CAPTIONS)) log-softmax of the scaled cosine similarities."""
    image = F.normalize(model.encode_image(_clip_normalise(images)), dim=-1)
    text = F.normalize(model.encode_text(tokens), dim=-1)
    return (model.logit_scale.exp() * image @ text.T).log_softmax(1)


def train_vqgan(recipe: Recipe = RECIPE) -> tuple[torch.nn.Module, dict[str, float]]:
    """A toy VQGAN trained as an autoencoder; its held-out error and codebook use."""
    torch.manual_seed(recipe.seed)
    params = TOY_VQGAN["params"]
    model: Any = build_vqgan(TOY_VQGAN["target"], params).train()
    codebook = model.quantize.embedding.weight
    generator = torch.Generator().manual_seed(recipe.seed)

    def batch() -> Tensor:
        images = draw(recipe.vqgan_batch, generator).images
        c = recipe.vqgan_crop
        x, y = torch.randint(SIZE - c + 1, (2,), generator=generator).tolist()
        return images[:, :, y : y + c, x : x + c] * 2 - 1

    def encode(x: Tensor) -> Tensor:
        return model.quant_conv(model.encoder(x))  # (B, C, h, w) before quantising

    with torch.no_grad():  # codes start as encoder outputs, not a tiny uniform cloud
        codebook.copy_(_sample_vectors(encode(batch()), codebook.shape[0], generator))
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.vqgan_lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.vqgan_lr, recipe.vqgan_steps)
    used = torch.zeros(codebook.shape[0], dtype=torch.bool)
    for step in range(1, recipe.vqgan_steps + 1):
        x = batch()
        h = encode(x)
        quantised, codebook_loss, (_, _, indices) = model.quantize(h)
        loss = F.mse_loss(model.decode(quantised), x) + codebook_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        used[indices.flatten()] = True
        if step % recipe.reset_every == 0 and step < recipe.vqgan_steps:
            with torch.no_grad():  # dead codes move to where the encoder's outputs are
                dead = (~used).nonzero().flatten()
                if len(dead):
                    codebook[dead] = _sample_vectors(h.detach(), len(dead), generator)
            used[:] = False
    model.eval()
    with torch.no_grad():
        held_out = draw(64, torch.Generator().manual_seed(recipe.seed + 1)).images
        quantised, _, (_, _, indices) = model.quantize(encode(held_out * 2 - 1))
        reconstructed = ((model.decode(quantised) + 1) / 2).clamp(0, 1)
    counts = torch.bincount(indices.flatten(), minlength=codebook.shape[0]).float()
    p = counts / counts.sum()
    return model, {
        "mse": F.mse_loss(reconstructed, held_out).item(),
        "codes_used": int((counts > 0).sum()),
        "perplexity": math.exp(-(p[p > 0] * p[p > 0].log()).sum().item()),
        "loss": loss.item(),
    }


def _sample_vectors(h: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """n of the (B, C, h, w) encoder outputs' vectors, picked at random, jittered a little."""
    flat = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])
    picked = flat[torch.randint(flat.shape[0], (n,), generator=generator)]
    return picked + 0.01 * flat.std() * torch.randn(picked.shape, generator=generator)


# --- the files ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ToyModels:
    """Where the toy models are, and how their training went."""

    vqgan: Path  # vqgan_toy.ckpt, with vqgan_toy.yaml beside it
    clip: Path  # clip_toy.pt, a state dict
    report: dict[str, Any]  # "clip" and "vqgan": what train_clip and train_vqgan returned


def recipe_key() -> str:
    """A short hash of this file: the recipe, the world and the training code."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def toy_dir() -> Path:
    return model_dir() / "toy" / recipe_key()


def ensure_toy_models(directory: Path | None = None) -> ToyModels:
    """Train and save the toy CLIP and VQGAN into `directory` (default toy_dir()), unless
    they are there already."""
    directory = directory or toy_dir()
    clip, vqgan = directory / "clip_toy.pt", directory / "vqgan_toy.ckpt"
    report = {
        "clip": _kept(clip, train_clip, _save_clip),
        "vqgan": _kept(vqgan, train_vqgan, _save_vqgan),
    }
    return ToyModels(vqgan, clip, report)


def ensure_second_clip(directory: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The second toy CLIP (16-px input, another seed), trained and saved unless there."""
    path = (directory or toy_dir()) / "clip_toy_16.pt"
    recipe = replace(RECIPE, seed=RECIPE.seed + 2)
    return path, _kept(path, lambda: train_clip(recipe, TOY_CLIP_16), _save_clip)


def _kept(
    path: Path,
    train: Callable[[], tuple[torch.nn.Module, dict[str, Any]]],
    save: Callable[[torch.nn.Module, Path], None],
) -> dict[str, Any]:
    """The training report of the model at `path`; trained and saved first if it is not there.

    The report (`path` with .json) is written last: it marks the model complete."""
    report_path = path.with_suffix(".json")
    if report_path.is_file() and path.is_file():
        return json.loads(report_path.read_text())
    with torch.random.fork_rng(devices=[]), one_thread():
        model, report = _timed(train)
    save(model, path)
    report = {**report, "recipe": asdict(RECIPE), "key": recipe_key()}
    text = json.dumps(report, indent=2).encode()
    save_atomic(report_path, lambda buf: buf.write(text))
    return report


def _save_clip(model: torch.nn.Module, path: Path) -> None:
    """A state dict: the engine's loader builds clip.model.CLIP from it (build_model)."""
    save_atomic(path, lambda buf: torch.save(model.state_dict(), buf))


def _save_vqgan(model: torch.nn.Module, path: Path) -> None:
    """A checkpoint in Lightning's layout, and the YAML beside it that names the class."""
    from omegaconf import OmegaConf

    params = {**TOY_VQGAN["params"], "lossconfig": DUMMY_LOSS}
    config = {"model": {"target": TOY_VQGAN["target"], "params": params}}
    yaml = OmegaConf.to_yaml(config).encode()
    save_atomic(path.with_suffix(".yaml"), lambda buf: buf.write(yaml))
    save_atomic(path, lambda buf: torch.save({"state_dict": model.state_dict()}, buf))


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread, then restore the count. These models are so small that a
    second thread only waits: training took 7 s of CPU on one thread and 50 s on two, on a
    busy two-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def describe(report: dict[str, Any]) -> str:
    """One line on how the toy models' training went."""
    clip, vqgan = report["clip"], report["vqgan"]
    n_codes = TOY_VQGAN["params"]["n_embed"]
    return (
        f"toy CLIP: {clip['accuracy']:.0%} of held-out pictures captioned right "
        f"(colour {clip['colour_accuracy']:.0%}, shape {clip['shape_accuracy']:.0%}), trained in "
        f"{clip['wall_s']:.0f} s ({clip['cpu_s']:.0f} s CPU); toy VQGAN: reconstruction MSE "
        f"{vqgan['mse']:.4f}, {vqgan['codes_used']} of {n_codes} codes in use (perplexity "
        f"{vqgan['perplexity']:.0f}), trained in {vqgan['wall_s']:.0f} s "
        f"({vqgan['cpu_s']:.0f} s CPU)"
    )


def _timed(
    train: Callable[[], tuple[torch.nn.Module, dict[str, Any]]],
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """train(), with its wall and CPU seconds added to its report."""
    wall, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    model, report = train()
    after = resource.getrusage(resource.RUSAGE_SELF)
    report["wall_s"] = round(time.perf_counter() - wall, 2)
    report["cpu_s"] = round(after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, 2)
    return model, report


if __name__ == "__main__":
    models = ensure_toy_models()
    second, _ = ensure_second_clip()
    print(describe(models.report))
    print(f"--vqgan {models.vqgan} --clip {models.clip}")
    print(f"two CLIPs: --clip {models.clip},{second}")

"""The toy world and its models: the CLIP learns the captions, the VQGAN can paint the world.

The models are trained once per session (the `toy_models` fixture) and read back through the
engine's own loaders, as `--clip PATH --vqgan PATH` would read them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine import toy
from engine.models import CLIP, VQGAN
from engine.toy import CAPTIONS, COLOURS, SHAPES, ToyModels, captions_of, draw, ensure_toy_models


def test_every_picture_has_three_true_captions_of_its_own() -> None:
    """Colour, shape, and both: distinct captions, and no two pictures kinds share all three."""
    assert len(set(CAPTIONS)) == len(CAPTIONS) == len(COLOURS) + len(SHAPES) * (1 + len(COLOURS))
    kinds = [(c, s) for c in range(len(COLOURS)) for s in range(len(SHAPES))]
    named = [tuple(CAPTIONS[i] for i in captions_of(c, s)) for c, s in kinds]
    assert named[0] == ("red", "a circle", "a red circle")
    assert len(set(named)) == len(kinds)


def test_the_world_is_seeded_and_in_range() -> None:
    first = draw(8, torch.Generator().manual_seed(3))
    again = draw(8, torch.Generator().manual_seed(3))
    assert first.images.shape == (8, 3, toy.SIZE, toy.SIZE)
    assert torch.equal(first.images, again.images) and torch.equal(first.colours, again.colours)
    assert first.images.min() >= 0 and first.images.max() <= 1


def test_the_toy_clip_tells_the_colours_and_shapes_apart(
    toy_models: ToyModels, toy_clip: CLIP
) -> None:
    """Trained in seconds, read back from its file: held-out pictures get their own caption."""
    report = toy_models.report["clip"]
    print(toy.describe(toy_models.report))
    assert report["colour_accuracy"] > 0.95 and report["accuracy"] > 0.85
    pictures = draw(64, torch.Generator().manual_seed(99))
    images = F.interpolate(pictures.images, size=toy_clip.input_size)
    with torch.no_grad():
        sims = toy_clip.encode_image(images) @ toy_clip.encode_text(list(COLOURS)).T
    assert (sims.argmax(1) == pictures.colours).float().mean() > 0.95


def test_the_toy_vqgan_reconstructs_the_world_with_a_live_codebook(
    toy_models: ToyModels, toy_vqgan: VQGAN
) -> None:
    """Small reconstruction error, most codes in use (no collapse), read back from its file."""
    report = toy_models.report["vqgan"]
    assert report["mse"] < 0.02 and report["codes_used"] >= 48
    images = draw(16, torch.Generator().manual_seed(99)).images
    with torch.no_grad():
        latents = toy_vqgan.encode(images)
        error = (toy_vqgan.decode(latents).clamp(0, 1) - images).pow(2).mean()
    assert error < 0.02
    vectors = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
    distances = (vectors[:, None] - toy_vqgan.codebook[None]).norm(dim=-1)  # (N, codes)
    assert distances.min(1).values.max() < 1e-5  # each vector is a code


def test_the_models_are_kept_and_reused(toy_models: ToyModels) -> None:
    """A second call finds the files and trains nothing."""
    before = toy_models.clip.stat().st_mtime_ns, toy_models.vqgan.stat().st_mtime_ns
    again = ensure_toy_models(toy_models.clip.parent)
    assert again == toy_models
    assert (again.clip.stat().st_mtime_ns, again.vqgan.stat().st_mtime_ns) == before
    assert toy_models.vqgan.with_suffix(".yaml").is_file()

"""`doorways quality`: does each Doorways technique do what it claims? Measured in the toy world.

The real models cannot be downloaded here and the tiny ones are untrained, so this paints
with the toy models of engine/toy.py, which know a few colours and shapes. Each row paints
the same requests with the technique off and on, with several seeds, and measures the
pictures the way the technique promises (a panorama's left third should match the left
prompt, a tone-symmetric picture should look the same mirrored, ...): with the toy CLIP,
and in pixels where the colours allow. It prints a Markdown table (the one in README.md).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from engine import losses, toy
from engine.loop import Finished, generate, load_image
from engine.models import CLIP, VQGAN, load_clip, load_vqgan, resolve_device
from engine.prompts import Prompt, parse_prompts
from engine.request import Request

WIDTH, HEIGHT = 96, 32  # three squares of the toy CLIP's input size: left, middle, right
PATCH = 16  # side of the mirrored patch pairs the semantic measure compares
INIT_WEIGHT = 10.0  # holds the picture about half way between the prompt and the init image


@dataclass(frozen=True)
class Judge:
    """The toy CLIP as a measuring instrument: how well pieces of a picture match texts."""

    clip: CLIP

    def embed(self, pieces: Tensor) -> Tensor:
        """(N, 3, h, w) pieces of pictures, resized to CLIP's input → (N, D) unit vectors on
        the CPU, where the pictures and the measures are."""
        size = self.clip.input_size
        with torch.no_grad():
            images = F.interpolate(pieces, size=(size, size), mode="bilinear", antialias=True)
            return self.clip.encode_image(images.to(self.clip.mean.device)).cpu()

    def texts(self, texts: Sequence[str]) -> Tensor:
        """T texts → (T, D) unit vectors on the CPU."""
        with torch.no_grad():
            return self.clip.encode_text(texts).cpu()

    def similarity(self, pieces: Tensor, texts: Sequence[str]) -> Tensor:
        """(N, 3, h, w) pieces, T texts → (N, T) cosine similarities."""
        return self.embed(pieces) @ self.texts(texts).T


Score = Callable[[Tensor, Judge], float]  # a (3, H, W) picture → a number


# --- measures: each takes the picture and the judge, and the texts it is about -------------


def thirds(image: Tensor) -> Tensor:
    """The three squares of a (3, H, 3H) picture, left to right: (3, 3, H, H)."""
    height = image.shape[1]
    return image.unfold(2, height, height).permute(2, 0, 1, 3)


def panorama_clip(image: Tensor, judge: Judge, left: str, right: str) -> float:
    """How much more each outer third matches its own prompt than the other side's (toy CLIP),
    averaged over the two: 0 when the sides are alike, negative when swapped."""
    parts = thirds(image)
    sims = judge.similarity(parts[[0, 2]], [left, right])  # (2, 2)
    return float((sims[0, 0] - sims[0, 1] + sims[1, 1] - sims[1, 0]) / 2)


def panorama_pixels(image: Tensor, judge: Judge, left: str, right: str) -> float:
    """The left third's mean colour minus the right third's, along the line from the right
    prompt's colour to the left one's: 1 if each third were exactly its prompt's colour."""
    direction = torch.tensor(toy.COLOURS[left]) - torch.tensor(toy.COLOURS[right])
    parts = thirds(image).mean(dim=(2, 3))  # (3, 3) mean colours
    return float((parts[0] - parts[2]) @ direction / direction.dot(direction))


def _mirror_error(maps: Tensor) -> float:
    """Mean |x - mirrored x| of a (1, C, H, W) map, after a 1-px blur (the losses blur more)."""
    blurred = losses.gaussian_blur(maps, 1.0)
    return float((blurred - blurred.flip(-1)).abs().mean())


def tone_mirror(image: Tensor, judge: Judge) -> float:
    """How different the picture's greys are from their mirror image."""
    return _mirror_error(losses.greyscale(image[None]))


def edge_mirror(image: Tensor, judge: Judge) -> float:
    """How different the picture's edges (Sobel magnitude) are from their mirror image."""
    return _mirror_error(losses.sobel_magnitude(losses.greyscale(image[None])))


def semantic_mirror(image: Tensor, judge: Judge, left: str, right: str) -> float:
    """Semantic mismatch of mirrored patch pairs, 1 - cos(E(p1) - t(x1), E(p2) - t(x2)), on a
    fixed grid of 16-px pairs (the second flipped), t(x) the prompts mixed as the smooth
    panorama mixes them: what the semantic symmetry term lowers, without augmentations."""
    height, width = image.shape[1:]
    corners = [(x, y) for x in range(0, width // 2 - PATCH + 1, 8) for y in (0, height - PATCH)]
    pieces, centres = [], []
    for x, y in corners:
        mirror_x = width - x - PATCH
        mirrored = image[:, y : y + PATCH, mirror_x : mirror_x + PATCH].flip(-1)
        pieces += [image[:, y : y + PATCH, x : x + PATCH], mirrored]
        centres += [(x + PATCH / 2) / width, (mirror_x + PATCH / 2) / width]
    embeds = judge.embed(torch.stack(pieces))
    texts = judge.texts([left, right])
    placement = losses.placement_weights(torch.tensor(centres), torch.tensor([0.0, 1.0]), "smooth")
    mixed = losses.mixed_targets(texts, torch.ones(2), placement)
    pairs = torch.arange(len(corners))[:, None] * 2 + torch.tensor([[0, 1]])
    return float(losses.semantic_symmetry_loss(embeds, mixed, pairs))


def text_match(image: Tensor, judge: Judge, text: str) -> float:
    """How well the picture's three squares match `text` (toy CLIP similarity, averaged)."""
    return float(judge.similarity(thirds(image), [text]).mean())


def colour_amount(image: Tensor, judge: Judge, colour: str) -> float:
    """How far the picture's mean colour lies toward `colour`, from its own grey level."""
    direction = torch.tensor(toy.COLOURS[colour])
    direction = direction - direction.mean()
    mean = image.mean(dim=(1, 2))
    return float((mean - mean.mean()) @ direction / direction.dot(direction))


def distance_to(image: Tensor, judge: Judge, path: Path) -> float:
    """Mean squared pixel difference from the picture at `path` (read at the same size)."""
    height, width = image.shape[1:]
    other = load_image(str(path), width, height, torch.device("cpu"))[0]
    return float((image - other).pow(2).mean())


def small_patch_match(image: Tensor, judge: Judge, text: str) -> float:
    """How well the smallest patches (8-px tiles, enlarged) match `text` (toy CLIP)."""
    tiles = image.unfold(1, 8, 8).unfold(2, 8, 8)  # (3, H/8, W/8, 8, 8)
    return float(judge.similarity(tiles.permute(1, 2, 0, 3, 4).reshape(-1, 3, 8, 8), [text]).mean())


# --- the comparisons ----------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One table row: pictures painted with a technique off and on, measured alike."""

    technique: str
    measure: str
    score: Score
    off: Request
    on: Request
    higher_is_better: bool


def base_request(prompts: str, **changes: object) -> Request:
    """The toy world's request: 96×32, 100 iterations, 16 cutouts."""
    fields: dict[str, object] = {
        "size": (WIDTH, HEIGHT), "iterations": 100, "cutn": 16, "lr": 0.1, "precision": "fp32",
    }  # fmt: skip
    fields.update(changes)
    return Request(prompts=parse_prompts(prompts), **fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class World:
    """What the rows paint with: the toy models' files and an init image."""

    vqgan: str
    clip: str
    second_clip: str  # the 16-px toy CLIP
    init_image: Path


def comparisons(world: World) -> list[Comparison]:
    """Every row of the table, in order."""

    def base(prompts: str, **changes: object) -> Request:
        return base_request(prompts, vqgan=world.vqgan, clip=world.clip, **changes)

    rows = []
    sides = base("red | blue")
    clip_sides = functools.partial(panorama_clip, left="red", right="blue")
    pixel_sides = functools.partial(panorama_pixels, left="red", right="blue")
    for name, changes in (
        ("panorama linear", {"panorama": "linear"}),
        ("panorama smooth", {"panorama": "smooth"}),
        ("panorama smooth, anchors 0.25 0.75", {"panorama": "smooth", "anchors": (0.25, 0.75)}),
    ):
        on = sides.replace(**changes)
        rows += [
            Comparison(name, "left/right separation, toy CLIP", clip_sides, sides, on, True),
            Comparison(name, "left/right separation, pixels", pixel_sides, sides, on, True),
        ]
    plain = base("a yellow circle")
    tone, sobel = plain.replace(tone_weight=1.0), plain.replace(sobel_weight=1.0)
    rows += [
        Comparison("tone symmetry 1", "grey mirror error", tone_mirror, plain, tone, False),
        Comparison("Sobel symmetry 1", "edge mirror error", edge_mirror, plain, sobel, False),
    ]
    realms = base("a red circle | a blue circle", panorama="smooth", mirror=0.5)
    semantic = realms.replace(semantic_weight=0.5)
    pairs = functools.partial(semantic_mirror, left="a red circle", right="a blue circle")
    rows += [
        Comparison("semantic symmetry 0.5", "mirrored pairs' mismatch, toy CLIP", pairs,
                   realms, semantic, False),
        Comparison("semantic symmetry 0.5", "edge mirror error", edge_mirror, realms, semantic,
                   False),
    ]  # fmt: skip
    circle = base("a circle")
    avoid = circle.replace(prompts=(*circle.prompts, Prompt("red", -1.0)))
    rows += [
        Comparison("negative prompt red:-1", "match to red, toy CLIP",
                   functools.partial(text_match, text="red"), circle, avoid, False),
        Comparison("negative prompt red:-1", "red in the colours, pixels",
                   functools.partial(colour_amount, colour="red"), circle, avoid, False),
    ]  # fmt: skip
    elsewhere = base("yellow checks")
    started = elsewhere.replace(init_image=str(world.init_image))
    held = started.replace(init_weight=INIT_WEIGHT)
    closeness = functools.partial(distance_to, path=world.init_image)
    rows += [
        Comparison("init image", "distance from it (pixel MSE)", closeness, elsewhere, started,
                   False),
        Comparison(f"init weight {INIT_WEIGHT:g}", "distance from the init image (pixel MSE)",
                   closeness, started, held, False),
    ]  # fmt: skip
    detail = base("a red circle")
    rows += [
        Comparison("size emphasis 2 (large)", "3 squares' match, toy CLIP",
                   functools.partial(text_match, text="a red circle"), detail,
                   detail.replace(size_emphasis=2.0), True),
        Comparison("size emphasis -2 (small)", "8-px tiles' match, toy CLIP",
                   functools.partial(small_patch_match, text="a red circle"), detail,
                   detail.replace(size_emphasis=-2.0), True),
    ]  # fmt: skip
    smooth = sides.replace(panorama="smooth")
    both = smooth.replace(clip=f"{world.clip},{world.second_clip}")
    rows += [
        Comparison("two CLIPs (32 + 16 px), panorama smooth", "left/right separation, toy CLIP",
                   clip_sides, smooth, both, True),
        Comparison("two CLIPs (32 + 16 px), panorama smooth", "left/right separation, pixels",
                   pixel_sides, smooth, both, True),
    ]  # fmt: skip
    return rows


def write_init_image(path: Path) -> Path:
    """The init image: three pictures of the world side by side (a red circle, ...)."""
    pictures = toy.draw(3, torch.Generator().manual_seed(7)).images  # (3, 3, 32, 32)
    row = torch.cat(list(pictures), dim=2)
    Image.fromarray((row.permute(1, 2, 0) * 255).round().byte().numpy()).save(path)
    return path


# --- painting and the table ---------------------------------------------------------------


@dataclass
class Painter:
    """Paints requests with the loaded toy models, each request once (rows share pictures)."""

    vqgan: VQGAN
    clips: dict[str, CLIP]  # by name: the request's --clip list picks from them
    device: str
    done: dict[str, Tensor]

    def paint(self, request: Request) -> Tensor:
        request = request.replace(device=self.device)
        key = request.to_json()
        if key not in self.done:
            clips = [self.clips[spec.name] for spec in request.clips]
            *_, finished = generate(request, self.vqgan, clips)
            assert isinstance(finished, Finished)
            self.done[key] = finished.image
        return self.done[key]


@dataclass(frozen=True)
class Result:
    """A row's scores, one per seed, off and on."""

    comparison: Comparison
    off: list[float]
    on: list[float]

    @property
    def wins(self) -> int:
        """Seeds where the technique moved the measure the way it claims to."""
        sign = 1 if self.comparison.higher_is_better else -1
        return sum(sign * (b - a) > 0 for a, b in zip(self.off, self.on, strict=True))


def measure(rows: Sequence[Comparison], painter: Painter, judge: Judge, seeds: int) -> list[Result]:
    """Paint each row off and on with seeds 0 to seeds-1 and score every picture."""
    results = []
    for row in rows:
        scores: dict[str, list[float]] = {"off": [], "on": []}
        for seed in range(seeds):
            for which in ("off", "on"):
                image = painter.paint(getattr(row, which).replace(seed=seed))
                scores[which].append(row.score(image, judge))
        results.append(Result(row, scores["off"], scores["on"]))
        print(f"quality: {row.technique}: {row.measure} done", file=sys.stderr)
    return results


def _spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3f} ± {sd:.3f}"


def table(results: Sequence[Result]) -> str:
    """The results as a Markdown table: mean ± sd off and on, and the seeds "on" won."""
    lines = [
        "| technique | measured by | off | on | better | seeds where on is better |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        c = r.comparison
        better = "higher" if c.higher_is_better else "lower"
        lines.append(
            f"| {c.technique} | {c.measure} | {_spread(r.off)} | {_spread(r.on)} | {better} "
            f"| {r.wins}/{len(r.on)} |"
        )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """`doorways quality`: train (or find) the toy models, paint every row, print the table."""
    if not 1 <= args.seeds <= 20:
        raise ValueError(f"--seeds must be between 1 and 20, not {args.seeds}")
    started = time.perf_counter()
    with toy.one_thread():
        models = toy.ensure_toy_models()
        second, second_report = toy.ensure_second_clip()
        device = resolve_device(args.device)
        vqgan = load_vqgan(str(models.vqgan), device)
        clips = {str(path): load_clip(str(path), device) for path in (models.clip, second)}
        painter = Painter(vqgan, clips, args.device, {})
        with tempfile.TemporaryDirectory() as tmp:
            init = write_init_image(Path(tmp) / "init.png")
            world = World(str(models.vqgan), str(models.clip), str(second), init)
            results = measure(comparisons(world), painter, Judge(clips[world.clip]), args.seeds)
    print(table(results))
    print(
        f"\n{toy.describe(models.report)}; the 16-px toy CLIP: "
        f"{second_report['accuracy']:.0%} captioned right; "
        f"{time.perf_counter() - started:.0f} s in all"
    )
    return 0

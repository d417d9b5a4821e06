"""How large a picture fits in a GPU's memory: a cost model fitted to measured peaks.

One iteration holds the models' weights, the decoder's activations (saved for the backward
pass, so they grow with the picture's area) and CLIP's activations (which grow with the
number of cutouts). So the peak is close to a straight line in pixels and cutouts:

    peak = FIXED + PER_PIXEL × pixels + PER_CUTOUT × cutouts

for vqgan_imagenet_f16_16384 + ViT-B/32 in fp32 (the other VQGANs are close; bf16 holds
most activations in half the bytes, so fp32 figures are the safe side).

Each CLIP model of a painting (`--clip ViT-B/32,ViT-B/16`) adds its weights once and its
activations per cutout, as each embeds `cutn` cutouts of its own. Only ViT-B/32 is measured;
the others are scaled from it (`clip_cost`). Torch-free: the bot imports this to turn the
worker's GPU memory into its size cap.
"""

import math
from collections.abc import Sequence
from typing import Any

from engine.registry import entry_of_kind

MIB = 2**20

# Measured on an NVIDIA H200 (torch 2.11, CUDA 13.0) by `doorways gpu-report`: the
# caching allocator's reserved peak after the warm-up, fp32, at 256², 448×304, 512², 640²
# and 1024² with 32 cutouts and 448×304 with 8. A straight line misses each point by at most
# 46 MiB (docs/performance.md, "Memory"). The per-pixel slope matches the CPU's (0.0165 MiB
# a pixel, measured as peak resident memory).
PER_PIXEL = 0.0162 * MIB
PER_CUTOUT = 34.3 * MIB
# The line's intercept (the weights, 908 MiB in fp32, and the allocator's slack) was
# 948 MiB; CUDA's own context and library handles, which torch's allocator does not count,
# take about 500 MiB more on current drivers (an allowance, not measured here).
FIXED = (948 + 512) * MIB

CPU_AREA = 450 * 300  # on a CPU the cap is about waiting time, not memory

# The CLIP the line was measured with, and its share of FIXED: 151 M parameters in fp32.
MEASURED_CLIP = "ViT-B/32"
CLIP_WEIGHTS = 577 * MIB


def clip_cost(name: str) -> tuple[float, float]:
    """(bytes of weights, bytes per cutout) of CLIP `name`, scaled from ViT-B/32's.

    Weights scale with the registry file's size (OpenAI's files all hold fp16 weights).
    A cutout's activations scale with the elements of the network's residual stream summed
    over its blocks: tokens × width × layers for a ViT (ViT-B/16 sees 4× the tokens of
    ViT-B/32, so about 4× the bytes), and for a ResNet each stage's feature map × blocks, at
    a quarter (a bottleneck block keeps a few maps of its output's size for the backward
    pass, a transformer layer about 19). A model outside the registry (a file, tiny) counts
    as ViT-B/32.
    """
    try:
        entry = entry_of_kind("clip", name.removeprefix("random:"))
    except Exception:  # not a registry CLIP: its size is unknown until it is loaded
        return CLIP_WEIGHTS, PER_CUTOUT
    measured = entry_of_kind("clip", MEASURED_CLIP)
    weights = CLIP_WEIGHTS * _file_bytes(entry) / _file_bytes(measured)
    activations = _stream(entry["params"]) / _stream(measured["params"])
    return weights, PER_CUTOUT * activations


def _file_bytes(entry: dict[str, Any]) -> int:
    return sum(f["size_bytes"] for f in entry["files"])


def _stream(params: dict[str, Any]) -> float:
    """Elements of one cutout's residual stream summed over the image tower's blocks."""
    resolution, width, layers = (
        params["image_resolution"], params["vision_width"], params["vision_layers"]
    )  # fmt: skip
    if isinstance(layers, int):  # a ViT: (patches + class token) × width, per layer
        tokens = (resolution // params["vision_patch_size"]) ** 2 + 1
        return tokens * width * layers
    # A ResNet: stage i works at resolution / 2^(i+2) with 4·width·2^i channels.
    stages = [(resolution >> (i + 2)) ** 2 * width * 4 << i for i in range(4)]
    return sum(size * blocks for size, blocks in zip(stages, layers, strict=True)) / 4


def _clips_cost(clips: Sequence[str]) -> tuple[float, float]:
    """(bytes of weights beyond ViT-B/32's in FIXED, bytes per cutout) of a CLIP list."""
    costs = [clip_cost(name) for name in clips]
    return sum(w for w, _ in costs) - CLIP_WEIGHTS, sum(c for _, c in costs)


def peak_bytes(
    pixels: int, cutn: int, count: int = 1, clips: Sequence[str] = (MEASURED_CLIP,)
) -> float:
    """The estimated peak GPU memory of one job painting `count` pictures as one batch,
    guided by the CLIP models `clips`: the weights once, the activations per picture."""
    weights, per_cutout = _clips_cost(clips)
    return FIXED + weights + count * (PER_PIXEL * pixels + per_cutout * cutn)


def largest_area(
    memory_bytes: int | None, cutn: int, count: int = 1, clips: Sequence[str] = (MEASURED_CLIP,)
) -> int:
    """The most pixels each picture of a job with `cutn` cutouts, `count` pictures and the
    CLIP models `clips` can have on a card with this much memory; None (a CPU) gives
    CPU_AREA shared by the batch (the wait grows with the pixels painted)."""
    if memory_bytes is None:
        return CPU_AREA // count
    weights, per_cutout = _clips_cost(clips)
    usable = (memory_bytes - FIXED - weights) / count - per_cutout * cutn
    return max(0, int(usable / PER_PIXEL))


def largest_size(
    memory_bytes: int,
    cutn: int,
    aspect: tuple[int, int] = (3, 2),
    clips: Sequence[str] = (MEASURED_CLIP,),
) -> tuple[int, int]:
    """The largest W×H of this aspect (width rounded down), in whole 16-px tokens, that fits."""
    a, b = aspect
    tokens = largest_area(memory_bytes, cutn, clips=clips) // 16**2
    high = math.isqrt(tokens * b // a)
    while (high + 1) * ((high + 1) * a // b) <= tokens:
        high += 1
    return high * a // b * 16, high * 16

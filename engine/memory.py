"""How large a picture fits in a GPU's memory: a cost model fitted to measured peaks.

One iteration holds the models' weights, the decoder's activations (saved for the backward
pass, so they grow with the picture's area) and CLIP's activations (which grow with the
number of cutouts). So the peak is close to a straight line in pixels and cutouts:

    peak = FIXED + PER_PIXEL × pixels + PER_CUTOUT × cutouts

for vqgan_imagenet_f16_16384 + ViT-B/32 in fp32 (the other registry models are close;
bf16 holds most activations in half the bytes, so fp32 figures are the safe side).
Torch-free: the bot imports this to turn the worker's GPU memory into its size cap.
"""

import math

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


def peak_bytes(pixels: int, cutn: int, count: int = 1) -> float:
    """The estimated peak GPU memory of one job painting `count` pictures as one batch: the
    weights once, the activations per picture."""
    return FIXED + count * (PER_PIXEL * pixels + PER_CUTOUT * cutn)


def largest_area(memory_bytes: int | None, cutn: int, count: int = 1) -> int:
    """The most pixels each picture of a job with `cutn` cutouts and `count` pictures can
    have on a card with this much memory; None (a CPU) gives CPU_AREA shared by the batch
    (the wait grows with the pixels painted)."""
    if memory_bytes is None:
        return CPU_AREA // count
    usable = (memory_bytes - FIXED) / count - PER_CUTOUT * cutn
    return max(0, int(usable / PER_PIXEL))


def largest_size(memory_bytes: int, cutn: int, aspect: tuple[int, int] = (3, 2)) -> tuple[int, int]:
    """The largest W×H of this aspect (width rounded down), in whole 16-px tokens, that fits."""
    a, b = aspect
    tokens = largest_area(memory_bytes, cutn) // 16**2
    high = math.isqrt(tokens * b // a)
    while (high + 1) * ((high + 1) * a // b) <= tokens:
        high += 1
    return high * a // b * 16, high * 16

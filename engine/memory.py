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

# The slopes were measured here on the CPU (peak resident memory above the loaded models)
# at 256², 448×304, 512² and 640² with 32 cutouts and at 448×304 with 8: a straight line
# misses each point by at most 53 MiB (docs/performance.md). The per-pixel slope agrees
# with the GPU figures nerdyrodent/VQGAN-CLIP publishes for the same models on an RTX 3090
# (8 GB at 380×380, 10 GB at 512×512: 17 KB a pixel).
PER_PIXEL = 0.0165 * MIB
PER_CUTOUT = 42.0 * MIB
# What a GPU holds beyond that: the weights (908 MiB in fp32), CUDA's context, the cuDNN and
# cuBLAS workspaces and the caching allocator's slack. No CPU shows it, so it is set to
# reproduce those published figures (10 GB at 512×512 with 32 cutouts) until a GPU
# measurement here (`doorways bench` prints peak_vram_mib) replaces it.
FIXED = 4571 * MIB

CPU_AREA = 450 * 300  # on a CPU the cap is about waiting time, not memory


def peak_bytes(pixels: int, cutn: int) -> float:
    """The estimated peak GPU memory of one job."""
    return FIXED + PER_PIXEL * pixels + PER_CUTOUT * cutn


def largest_area(memory_bytes: int | None, cutn: int) -> int:
    """The most pixels a job with `cutn` cutouts can have on a card with this much memory;
    None (a CPU) gives CPU_AREA."""
    if memory_bytes is None:
        return CPU_AREA
    usable = memory_bytes - FIXED - PER_CUTOUT * cutn
    return max(0, int(usable / PER_PIXEL))


def largest_size(memory_bytes: int, cutn: int, aspect: tuple[int, int] = (3, 2)) -> tuple[int, int]:
    """The largest W×H of this aspect (width rounded down), in whole 16-px tokens, that fits."""
    a, b = aspect
    tokens = largest_area(memory_bytes, cutn) // 16**2
    high = math.isqrt(tokens * b // a)
    while (high + 1) * ((high + 1) * a // b) <= tokens:
        high += 1
    return high * a // b * 16, high * 16

"""How large a picture fits in a GPU's memory: a cost model fitted to measured peaks.

One iteration holds the models' weights, the decoder's activations (saved for the backward
pass, so they grow with the picture's area) and CLIP's activations (which grow with the
number of cutouts). So the peak is close to a straight line in pixels and cutouts:

    peak = FIXED + PER_PIXEL × pixels + PER_CUTOUT × cutouts

The slopes come from `doorways bench` peaks of vqgan_imagenet_f16_16384 + ViT-B/32 in fp32
(README, "Performance"); the other registry models are within a few percent of these sizes.
bf16 holds most activations in half the bytes, so fp32 figures are the safe side. Torch-free:
the bot imports this to turn the worker's reported GPU memory into its size cap.
"""

import math

MIB = 2**20

# Measured on the CPU (peak RSS above the loaded models, fp32) at 256², 448×304, 512² and
# 640² with 32 cutouts and at 448×304 with 8: see the README's "Performance" section.
PER_PIXEL = 0.0169 * MIB
PER_CUTOUT = 40.0 * MIB
# Weights of both models in fp32 (76 M + 151 M parameters), the CUDA context and cuDNN's
# workspace, and what the loop holds whatever the size.
FIXED = (908 + 600 + 250) * MIB
# Leave this share of the card free for fragmentation and other programs' small needs.
HEADROOM = 0.10

CPU_AREA = 450 * 300  # on a CPU the cap is about waiting time, not memory


def peak_bytes(pixels: int, cutn: int) -> float:
    """The estimated peak GPU memory of one job."""
    return FIXED + PER_PIXEL * pixels + PER_CUTOUT * cutn


def largest_area(memory_bytes: int | None, cutn: int) -> int:
    """The most pixels a job with `cutn` cutouts can have on a card with this much memory;
    None (a CPU) gives CPU_AREA."""
    if memory_bytes is None:
        return CPU_AREA
    usable = memory_bytes * (1 - HEADROOM) - FIXED - PER_CUTOUT * cutn
    return max(0, int(usable / PER_PIXEL))


def largest_size(memory_bytes: int, cutn: int, aspect: tuple[int, int] = (3, 2)) -> tuple[int, int]:
    """The largest W×H of this aspect, in whole 16-px tokens, that fits."""
    area = largest_area(memory_bytes, cutn)
    a, b = aspect
    tokens_high = math.floor(math.sqrt(area * b / a) / 16)
    tokens_wide = math.floor(tokens_high * a / b)  # both rounded down: within the area
    return tokens_wide * 16, tokens_high * 16

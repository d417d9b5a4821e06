"""Losses of the method (DESIGN.md, "The method"): small pure functions on tensors."""

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.deterministic import reflect_pad


def spherical_distance(a: Tensor, b: Tensor) -> Tensor:
    """Squared great-circle distance of unit vectors, 2·asin(|a-b|/2)²; (…, D) → (…)."""
    return (a - b).norm(dim=-1).div(2).clamp(max=1).arcsin().pow(2).mul(2)


def placement_weights(x: Tensor, anchors: Tensor, mode: str) -> Tensor:
    """Panorama interpolation: (K,) x-centres, (P,) increasing anchors → (K, P) weights.

    Each row sums to 1; at its own anchor a prompt has weight 1. Left of the first
    anchor the first prompt rules, right of the last the last one does.
    """
    p = anchors.shape[0]
    if p == 1:
        return torch.ones(x.shape[0], 1, device=x.device, dtype=x.dtype)
    x = x.clamp(anchors[0], anchors[-1])  # tensors, so the host never waits for the device
    left = (torch.searchsorted(anchors, x.contiguous(), right=True) - 1).clamp(0, p - 2)
    t = (x - anchors[left]) / (anchors[left + 1] - anchors[left])  # (K,) in [0, 1]
    if mode == "smooth":
        t = t * t * (3 - 2 * t)  # smoothstep: flat at the anchors
    elif mode != "linear":
        raise ValueError(f"unknown panorama interpolation {mode!r}")
    weights = torch.zeros(x.shape[0], p, device=x.device, dtype=x.dtype)
    weights.scatter_(1, left[:, None], (1 - t)[:, None])
    weights.scatter_add_(1, left[:, None] + 1, t[:, None])
    return weights


def prompt_loss(
    embeds: Tensor, targets: Tensor, weights: Tensor, placement: Tensor, cut_weights: Tensor
) -> Tensor:
    """Σ_i w_i(x_c) · weight_i · dist(E_c, T_i), averaged over cutouts (weighted by size).

    embeds (K, D), targets (P, D) unit vectors; weights (P,); placement (K, P); cut_weights (K,).
    """
    distances = spherical_distance(embeds[:, None], targets[None])  # (K, P)
    per_cutout = (distances * placement * weights).sum(dim=1)  # (K,)
    return (per_cutout * cut_weights).mean()


def mixed_targets(targets: Tensor, weights: Tensor, placement: Tensor) -> Tensor:
    """t(x_c): the normalised mix of the positive prompts at each cutout; (K, D)."""
    mix = (placement * weights.clamp(min=0)) @ targets
    return F.normalize(mix, dim=-1)


def semantic_symmetry_loss(embeds: Tensor, mixed: Tensor, pairs: Tensor) -> Tensor:
    """1 - cos(E(p1) - t(x1), E(p2) - t(x2)), averaged over mirrored pairs (DESIGN item 2)."""
    if pairs.shape[0] == 0:
        return embeds.new_zeros(())
    offsets = embeds - mixed  # what each patch adds beyond its own side's text
    first, second = offsets[pairs[:, 0]], offsets[pairs[:, 1]]
    return (1 - F.cosine_similarity(first, second, dim=-1)).mean()


def size_weights(relative_sizes: Tensor, emphasis: float) -> Tensor:
    """Patch-size emphasis: (K,) sizes in (0, 1] → weights ∝ size^emphasis, mean 1."""
    weights = relative_sizes.clamp(min=1e-3) ** emphasis
    return weights / weights.mean()


def greyscale(image: Tensor) -> Tensor:
    """(B, 3, H, W) → (B, 1, H, W) luma (ITU-R 601)."""
    r, g, b = image[:, 0:1], image[:, 1:2], image[:, 2:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def gaussian_blur(image: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur with reflected edges (so a mirrored image blurs mirrored)."""
    radius = max(1, int(3 * sigma + 0.5))
    radius = min(radius, image.shape[-1] - 1, image.shape[-2] - 1)
    xs = torch.arange(-radius, radius + 1, device=image.device, dtype=image.dtype)
    kernel = torch.exp(-(xs**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = image.shape[1]
    padded = reflect_pad(image, radius)
    out = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def tone_symmetry_loss(image: Tensor, sigma: float) -> Tensor:
    """Greyscale, blur, L1 against the horizontal flip (DESIGN item 3)."""
    tone = gaussian_blur(greyscale(image), sigma)
    return (tone - tone.flip(-1)).abs().mean()


def sobel_magnitude(grey: Tensor) -> Tensor:
    """(B, 1, H, W) → edge magnitude from 3×3 Sobel kernels (reflected edges)."""
    grads = F.conv2d(reflect_pad(grey, 1), _sobel_kernels(grey.device, grey.dtype))
    return (grads.pow(2).sum(dim=1, keepdim=True) + 1e-8).sqrt()


@functools.cache
def _sobel_kernels(device: torch.device, dtype: torch.dtype) -> Tensor:
    """(2, 1, 3, 3) x and y Sobel kernels, copied to the device once (a copy from Python data
    makes the host wait for the GPU)."""
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=device, dtype=dtype)
    return torch.stack([kx, kx.T])[:, None]


def sobel_symmetry_loss(image: Tensor, sigma: float) -> Tensor:
    """Edge magnitude, blur, squared error against the flip (DESIGN item 4; easy to hack)."""
    edges = gaussian_blur(sobel_magnitude(greyscale(image)), sigma)
    return (edges - edges.flip(-1)).pow(2).mean()

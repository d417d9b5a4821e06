"""Cutouts: square patches of the canvas, augmented, resampled for CLIP in one batch.

Each cutout is an explicit crop (x, y, size) in pixels, so its centre is known (the
panorama needs it). A share of them come in mirrored pairs: the second at W - x - size,
flipped, and given the same augmentation as the first, so a mirror-symmetric canvas
yields identical pairs. Crop, flip, affine and perspective compose into one homography
per cutout, and a single grid_sample does them all.
"""

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from engine import deterministic
from engine.losses import gaussian_blur


@dataclass(frozen=True)
class Cutouts:
    """Where the cutouts are. Pairs come first: cutout 2k+1 mirrors cutout 2k, k < n_pairs."""

    boxes: Tensor  # (K, 3) x, y, size in pixels (top-left corner and side)
    flipped: Tensor  # (K,) bool: sampled mirror-wise (the second of a pair)
    n_pairs: int
    width: int
    height: int

    @property
    def centres_x(self) -> Tensor:
        """(K,) the x-centre of each cutout as a fraction of the width."""
        return (self.boxes[:, 0] + self.boxes[:, 2] / 2) / self.width

    @property
    def relative_sizes(self) -> Tensor:
        """(K,) each cutout's side over the largest possible side."""
        return self.boxes[:, 2] / min(self.width, self.height)

    @property
    def pairs(self) -> Tensor:
        """(n_pairs, 2) indices of (first, mirrored) cutouts."""
        first = torch.arange(self.n_pairs, device=self.boxes.device) * 2
        return torch.stack([first, first + 1], dim=1)


def sample_cutouts(
    width: int,
    height: int,
    cutn: int,
    cut_pow: float,
    min_size: int,
    mirror: float,
    generator: torch.Generator,
) -> Cutouts:
    """Random square crops, sizes from a power law (DESIGN: cut power), some mirrored."""
    device = generator.device
    max_size = min(width, height)
    min_size = min(min_size, max_size)
    n_pairs = min(round(cutn * mirror / 2), cutn // 2)
    n_free = cutn - n_pairs  # pairs draw one position each; their mirror is derived
    u = torch.rand(n_free, 3, generator=generator, device=device)
    sizes = (u[:, 0] ** cut_pow * (max_size - min_size) + min_size).floor()
    xs = (u[:, 1] * (width - sizes + 1)).floor()
    ys = (u[:, 2] * (height - sizes + 1)).floor()
    boxes = torch.stack([xs, ys, sizes], dim=1)  # (n_free, 3)
    firsts, singles = boxes[:n_pairs], boxes[n_pairs:]
    mirrored = torch.stack([width - firsts[:, 0] - firsts[:, 2], firsts[:, 1], firsts[:, 2]], 1)
    paired = torch.stack([firsts, mirrored], dim=1).reshape(-1, 3)  # first, mirror, first, …
    flipped = torch.zeros(cutn, dtype=torch.bool, device=device)
    flipped[1 : 2 * n_pairs : 2] = True
    return Cutouts(torch.cat([paired, singles]), flipped, n_pairs, width, height)


@dataclass(frozen=True)
class Augmentations:
    """Per-cutout augmentation parameters; the two cutouts of a pair share theirs."""

    homographies: Tensor  # (K, 3, 3) maps output coords in [-1, 1]² to crop coords
    noise: Tensor | None  # (K, 3, S, S) additive noise, already scaled
    blurred: Tensor | None  # (K,) bool


def sample_augmentations(
    cutouts: Cutouts, augments: Sequence[str], size: int, generator: torch.Generator
) -> Augmentations:
    """Draw augmentations for each cutout; a pair's second copies its first's draw."""
    device = generator.device
    k = cutouts.boxes.shape[0]
    # Which draw each cutout uses: both members of pair j use draw 2j.
    source = torch.arange(k, device=device)
    source[1 : 2 * cutouts.n_pairs : 2] -= 1

    def draw(*shape: int) -> Tensor:
        return torch.rand(k, *shape, generator=generator, device=device)[source]

    homographies = torch.eye(3, device=device).repeat(k, 1, 1)
    if "affine" in augments:
        homographies = _random_affine(draw(6)) @ homographies
    if "perspective" in augments:
        homographies = _random_perspective(draw(9)) @ homographies
    noise = None
    if "noise" in augments:
        scale = draw(1).view(k, 1, 1, 1) * 0.1
        noise = torch.randn(k, 3, size, size, generator=generator, device=device)[source] * scale
    blurred = draw(1)[:, 0] < 0.3 if "blur" in augments else None
    return Augmentations(homographies, noise, blurred)


def _random_affine(u: Tensor) -> Tensor:
    """(K, 6) uniforms → (K, 3, 3): with p=0.7, rotate ±15°, shear ±5°, scale ±10%, shift ±10%."""
    on = (u[:, 0] < 0.7).float()
    angle = math.radians(15) * (2 * u[:, 1] - 1) * on
    shear = math.radians(5) * (2 * u[:, 2] - 1) * on
    scale = 1 + 0.1 * (2 * u[:, 3] - 1) * on
    shift_x, shift_y = (0.2 * (2 * u[:, 4] - 1) * on), (0.2 * (2 * u[:, 5] - 1) * on)
    cos, sin = torch.cos(angle), torch.sin(angle)
    m = torch.zeros(u.shape[0], 3, 3, device=u.device)
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = scale * cos, scale * (-sin + torch.tan(shear)), shift_x
    m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = scale * sin, scale * cos, shift_y
    m[:, 2, 2] = 1
    return m


def _random_perspective(u: Tensor) -> Tensor:
    """(K, 9) uniforms → (K, 3, 3): with p=0.5, move each corner by up to 0.3 of a half-side."""
    on = (u[:, 0] < 0.5).float().view(-1, 1, 1)
    corners = _corners(u.device)
    moved = corners + 0.3 * (2 * u[:, 1:].view(-1, 4, 2) - 1) * on
    return homography(corners.expand_as(moved), moved)


@functools.cache
def _corners(device: torch.device) -> Tensor:
    """(4, 2) the square's corners, copied to the device once: a copy from Python data makes
    the host wait for the GPU, and the loop never should."""
    return torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], device=device)


def homography(src: Tensor, dst: Tensor) -> Tensor:
    """(K, 4, 2) point pairs → (K, 3, 3) projective maps taking src onto dst (DLT, h33 = 1)."""
    x, y = src[..., 0], src[..., 1]
    u, v = dst[..., 0], dst[..., 1]
    zero, one = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], dim=-1)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], dim=-1)
    a = torch.cat([rows_u, rows_v], dim=1)  # (K, 8, 8)
    b = torch.cat([u, v], dim=1)  # (K, 8)
    # solve_ex without its error check: solve's check reads a flag back from the GPU every
    # iteration, and these corner moves never make a singular system.
    h = torch.linalg.solve_ex(a, b, check_errors=False).result
    return torch.cat([h, torch.ones_like(h[:, :1])], dim=1).view(-1, 3, 3)


def render_cutouts(image: Tensor, cutouts: Cutouts, augs: Augmentations, size: int) -> Tensor:
    """(1, 3, H, W) canvas → (K, 3, size, size) augmented cutouts, differentiable."""
    k = cutouts.boxes.shape[0]
    # Averaging 2×2 samples stops aliasing when cutouts can be much larger than CLIP's input;
    # decided from the canvas, not the drawn sizes, so the host never waits for the device.
    largest = min(cutouts.width, cutouts.height)
    supersample = 2 if largest > 1.5 * size else 1
    n = size * supersample
    # Output pixel centres in [-1, 1], as homogeneous row vectors.
    ticks = (torch.arange(n, device=image.device, dtype=image.dtype) * 2 + 1) / n - 1
    gy, gx = torch.meshgrid(ticks, ticks, indexing="ij")
    points = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1).view(1, n * n, 3)
    warped = points @ augs.homographies.transpose(1, 2)  # (K, n², 3)
    crop_xy = warped[..., :2] / warped[..., 2:]
    sign = 1 - 2 * cutouts.flipped.to(image.dtype)
    crop_x, crop_y = crop_xy[..., 0] * sign[:, None], crop_xy[..., 1]
    # Crop coords → the canvas's normalised coords (align_corners=False convention).
    x, y, s = (cutouts.boxes[:, i : i + 1] for i in range(3))
    width, height = image.shape[3], image.shape[2]
    grid_x = (2 * x + s * (1 + crop_x)) / width - 1
    grid_y = (2 * y + s * (1 + crop_y)) / height - 1
    grid = torch.stack([grid_x, grid_y], dim=-1).view(1, k * n, n, 2)
    out = deterministic.grid_sample(image, grid)
    out = out.view(3, k, n, n).transpose(0, 1)  # (K, 3, n, n)
    if supersample > 1:
        out = F.avg_pool2d(out, supersample)
    if augs.blurred is not None:
        out = torch.where(augs.blurred.view(k, 1, 1, 1), gaussian_blur(out, 1.0), out)
    if augs.noise is not None:
        out = out + augs.noise
    return out

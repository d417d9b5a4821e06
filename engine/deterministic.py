"""`--kernels deterministic`: the same pixels from the same request, run after run, on a GPU.

On a CPU every kernel the loop uses is deterministic already. On CUDA three are not: the
backward passes of grid_sample and of reflection padding add into shared pixels with atomic
operations, in whatever order the threads arrive, and cuDNN's benchmark mode may time and
pick a different convolution algorithm each run. torch's deterministic mode refuses the
first two outright, so under it the loop samples cutouts and pads edges with index_select,
whose backward torch then runs in a fixed order. Same arithmetic, a fixed order of additions.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel


@contextlib.contextmanager
def kernels(mode: str) -> Iterator[None]:
    """Run the body with deterministic kernels if mode is "deterministic"; put back after.

    A worker is resident: the next job may ask for the fast kernels again.
    """
    if mode != "deterministic":
        yield
        return
    # cuBLAS is deterministic only with a fixed workspace; torch checks this variable.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        with sdpa_kernel(SDPBackend.MATH):  # fused attention backwards accumulate atomically
            yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[1:]


def enabled() -> bool:
    return torch.are_deterministic_algorithms_enabled()


def reflect_pad(image: Tensor, pad: int) -> Tensor:
    """F.pad(image, (pad,) * 4, mode="reflect") for (B, C, H, W), by index_select."""
    if not enabled():
        return F.pad(image, (pad, pad, pad, pad), mode="reflect")
    for dim in (2, 3):
        n = image.shape[dim]
        index = torch.arange(-pad, n + pad, device=image.device).abs()
        index = torch.where(index >= n, 2 * (n - 1) - index, index)
        image = image.index_select(dim, index)
    return image


def grid_sample(image: Tensor, grid: Tensor) -> Tensor:
    """F.grid_sample(image, grid, "bilinear", padding_mode="reflection", align_corners=False)
    for a (1, C, H, W) image and a (1, Ho, Wo, 2) grid that needs no gradient."""
    if not enabled():
        return F.grid_sample(
            image, grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )
    _, channels, height, width = image.shape
    x = _reflect_coordinate(((grid[0, ..., 0] + 1) * width - 1) / 2, width)  # (Ho, Wo) pixels
    y = _reflect_coordinate(((grid[0, ..., 1] + 1) * height - 1) / 2, height)
    x0, y0 = x.floor(), y.floor()
    wx, wy = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    x1, y1 = (x0 + 1).clamp(max=width - 1), (y0 + 1).clamp(max=height - 1)  # weight 0 there
    flat = image.reshape(channels, height * width)

    def at(ys: Tensor, xs: Tensor) -> Tensor:
        return flat.index_select(1, (ys * width + xs).flatten()).view(channels, *ys.shape)

    top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
    return (top * (1 - wy) + bottom * wy)[None]


def _reflect_coordinate(coordinate: Tensor, size: int) -> Tensor:
    """Reflect pixel coordinates about the image's outer edges (-0.5 and size - 0.5), then
    clip into [0, size - 1]: grid_sample's reflection rule with align_corners=False."""
    distance = (coordinate + 0.5).abs()
    flips = torch.floor(distance / size)
    extra = torch.remainder(distance, size)
    reflected = torch.where(flips % 2 == 0, extra, size - extra) - 0.5
    return reflected.clamp(0, size - 1)

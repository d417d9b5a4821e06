"""`--kernels deterministic`: the index-based sampler and padding equal torch's, values and
gradients, and a deterministic run uses them (not the kernels CUDA refuses)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine import deterministic, loop
from engine.models import CLIP, VQGAN
from engine.prompts import Prompt
from engine.request import Request


def _image(height: int = 9, width: int = 13) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, height, width, generator=generator, dtype=torch.float64)


def test_sampler_matches_grid_sample_inside_and_beyond_the_edges() -> None:
    """Values and gradients of the index-based sampler equal grid_sample's, with grid points
    well outside [-1, 1] so that reflection (several times over) is exercised."""
    image = _image().requires_grad_(True)
    generator = torch.Generator().manual_seed(1)
    grid = (torch.rand(1, 7, 11, 2, generator=generator, dtype=torch.float64) - 0.5) * 7
    grid[0, 0, :3] = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    weights = torch.rand(1, 3, 7, 11, generator=generator, dtype=torch.float64)

    expected = F.grid_sample(
        image, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), image)
    with deterministic.kernels("deterministic"):
        got = deterministic.grid_sample(image, grid)
        (got_grad,) = torch.autograd.grad((got * weights).sum(), image)

    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got_grad, expected_grad)


@pytest.mark.parametrize("pad", [1, 4])
def test_reflect_pad_matches_torch(pad: int) -> None:
    image = _image().requires_grad_(True)
    weights = torch.rand(1, 3, 9 + 2 * pad, 13 + 2 * pad, dtype=torch.float64)
    expected = F.pad(image, (pad,) * 4, mode="reflect")
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), image)
    with deterministic.kernels("deterministic"):
        got = deterministic.reflect_pad(image, pad)
        (got_grad,) = torch.autograd.grad((got * weights).sum(), image)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got_grad, expected_grad)


def test_kernels_mode_is_put_back_afterwards() -> None:
    """A resident worker runs a fast job after a deterministic one."""
    benchmark = torch.backends.cudnn.benchmark
    with deterministic.kernels("deterministic"):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.benchmark == benchmark
    with deterministic.kernels("fast"):
        assert not torch.are_deterministic_algorithms_enabled()


def _request(kernels: str) -> Request:
    return Request(
        prompts=(Prompt("a red door"), Prompt("a blue door")), size=(64, 64), iterations=2,
        cutn=4, seed=3, vqgan="tiny", clip="tiny", device="cpu", panorama="smooth",
        mirror=0.5, semantic_weight=0.1, tone_weight=1.0, sobel_weight=0.5,
        augments=("affine", "perspective", "blur", "noise"), kernels=kernels,
    )  # fmt: skip


def _paint(request: Request, vqgan: VQGAN, clip: CLIP) -> torch.Tensor:
    *_, finished = loop.generate(request, vqgan, clip)
    assert isinstance(finished, loop.Finished)
    return finished.image


def test_a_deterministic_run_avoids_the_kernels_cuda_refuses(
    tiny_vqgan: VQGAN, tiny_clip: CLIP, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under --kernels deterministic the loop never calls grid_sample or reflect padding (on
    CUDA they raise in deterministic mode), and paints what the fast kernels paint."""
    fast = _paint(_request("fast"), tiny_vqgan, tiny_clip)

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("a kernel without a deterministic CUDA backward was called")

    real_pad = F.pad

    def pad(image: torch.Tensor, *args: object, mode: str = "constant", **kw: object) -> object:
        if mode == "reflect":
            refused()
        return real_pad(image, *args, mode=mode, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(F, "grid_sample", refused)
    monkeypatch.setattr(F, "pad", pad)
    exact = _paint(_request("deterministic"), tiny_vqgan, tiny_clip)
    assert not torch.are_deterministic_algorithms_enabled()
    torch.testing.assert_close(exact, fast, atol=2e-5, rtol=0)


def test_kernels_is_part_of_the_recipe() -> None:
    request = _request("deterministic")
    assert "--kernels deterministic" in request.recipe().to_call_string()
    assert Request.from_call_string(request.to_call_string()) == request
    assert "--kernels" not in _request("fast").to_call_string()

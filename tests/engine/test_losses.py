"""The method's losses on constructed images and vectors."""

import pytest
import torch
import torch.nn.functional as F

from engine import losses


def _mirror_symmetric(height: int = 32, width: int = 48, seed: int = 0) -> torch.Tensor:
    """A random (1, 3, H, W) image whose right half mirrors its left half."""
    left = torch.rand(1, 3, height, width // 2, generator=torch.Generator().manual_seed(seed))
    return torch.cat([left, left.flip(-1)], dim=-1)


def test_symmetry_losses_vanish_on_a_mirror_image() -> None:
    """Tone and Sobel losses are 0 on a mirror-symmetric image."""
    image = _mirror_symmetric()
    assert losses.tone_symmetry_loss(image, 2.0).item() == pytest.approx(0, abs=1e-6)
    assert losses.sobel_symmetry_loss(image, 2.0).item() == pytest.approx(0, abs=1e-6)


def test_symmetry_losses_are_positive_otherwise() -> None:
    """A lopsided image (bright left, detailed right) scores above zero on both."""
    image = torch.zeros(1, 3, 32, 48)
    image[..., :24] = 0.8
    image[..., 30:, :] = torch.rand(1, 3, 2, 48)
    image[..., 24:] = torch.rand(1, 3, 32, 24, generator=torch.Generator().manual_seed(1))
    assert losses.tone_symmetry_loss(image, 2.0).item() > 0.05
    assert losses.sobel_symmetry_loss(image, 2.0).item() > 0.01


def test_semantic_loss_is_zero_for_parallel_differences() -> None:
    """When each pair's patch-minus-text offsets point the same way, the loss is 0."""
    mixed = F.normalize(torch.randn(4, 8), dim=-1)
    offset = torch.randn(8)
    embeds = mixed + torch.stack([offset, 2 * offset, 0.5 * offset, 3 * offset])
    pairs = torch.tensor([[0, 1], [2, 3]])
    assert losses.semantic_symmetry_loss(embeds, mixed, pairs).item() == pytest.approx(0, abs=1e-6)
    opposite = mixed + torch.stack([offset, -offset, offset, -offset])
    assert losses.semantic_symmetry_loss(opposite, mixed, pairs).item() == pytest.approx(2)


def test_semantic_loss_without_pairs_is_zero() -> None:
    """No mirrored pairs, nothing to compare."""
    embeds = torch.randn(3, 8)
    assert losses.semantic_symmetry_loss(embeds, embeds, torch.zeros(0, 2, dtype=torch.long)) == 0


@pytest.mark.parametrize("mode", ["linear", "smooth"])
@pytest.mark.parametrize("anchors", [[0.0, 1.0], [0.0, 0.5, 1.0], [0.2, 0.3, 0.9], [0.25, 0.75]])
def test_placement_weights(mode: str, anchors: list[float]) -> None:
    """Weights sum to 1 everywhere and equal 1 at their own anchor."""
    anchor_tensor = torch.tensor(anchors)
    x = torch.linspace(0, 1, 101)
    weights = losses.placement_weights(x, anchor_tensor, mode)
    assert torch.allclose(weights.sum(1), torch.ones(101))
    assert (weights >= 0).all()
    at_anchors = losses.placement_weights(anchor_tensor, anchor_tensor, mode)
    assert torch.allclose(at_anchors, torch.eye(len(anchors)))


def test_smooth_placement_is_flat_near_anchors() -> None:
    """Smooth interpolation hands over more slowly near an anchor than linear does."""
    anchors = torch.tensor([0.0, 1.0])
    near = torch.tensor([0.1])
    linear = losses.placement_weights(near, anchors, "linear")[0, 0]
    smooth = losses.placement_weights(near, anchors, "smooth")[0, 0]
    assert smooth > linear


def test_prompt_loss_follows_placement() -> None:
    """A cutout placed wholly on prompt 0 is scored against prompt 0 only."""
    targets = F.normalize(torch.randn(2, 8), dim=-1)
    embeds = targets.clone()  # cutout i looks exactly like prompt i
    weights = torch.ones(2)
    ones = torch.ones(2)
    matched = losses.prompt_loss(embeds, targets, weights, torch.eye(2), ones)
    swapped = losses.prompt_loss(embeds, targets, weights, torch.eye(2).flip(0), ones)
    assert matched.item() == pytest.approx(0, abs=1e-5)
    assert swapped.item() > 0.1


def test_spherical_distance() -> None:
    """0 for equal vectors, (π/2)²/2 for orthogonal ones."""
    a = torch.tensor([1.0, 0.0])
    b = torch.tensor([0.0, 1.0])
    assert losses.spherical_distance(a, a).item() == pytest.approx(0, abs=1e-6)
    assert losses.spherical_distance(a, b).item() == pytest.approx(2 * (torch.pi / 4) ** 2)


def test_size_weights() -> None:
    """Positive emphasis favours large cutouts, negative small ones; mean stays 1."""
    sizes = torch.tensor([0.25, 0.5, 1.0])
    large = losses.size_weights(sizes, 1.0)
    small = losses.size_weights(sizes, -1.0)
    assert large.mean().item() == pytest.approx(1) and small.mean().item() == pytest.approx(1)
    assert large[2] > large[0] and small[0] > small[2]
    assert torch.allclose(losses.size_weights(sizes, 0.0), torch.ones(3))


def test_gaussian_blur_keeps_constants_and_mirrors() -> None:
    """Blurring a flat image changes nothing; blurring commutes with flipping."""
    flat = torch.full((1, 1, 20, 30), 0.3)
    assert torch.allclose(losses.gaussian_blur(flat, 3.0), flat)
    image = torch.rand(1, 3, 20, 30)
    assert torch.allclose(
        losses.gaussian_blur(image.flip(-1), 2.0), losses.gaussian_blur(image, 2.0).flip(-1),
        atol=1e-6,
    )  # fmt: skip


@pytest.mark.parametrize(("sigma", "radius"), [(2.0, 6), (0.3, 1)])
def test_gaussian_blur_spreads_a_point_as_a_gaussian_of_sigma(sigma: float, radius: int) -> None:
    """A single bright pixel blurs into exp(-d²/2σ²) along a row (relative to the centre),
    out to 3σ rounded and no further (at least one pixel), keeping its total brightness."""
    point = torch.zeros(1, 1, 41, 41)
    point[0, 0, 20, 20] = 1.0
    row = losses.gaussian_blur(point, sigma)[0, 0, 20]
    for d in range(1, radius + 1):
        expected = torch.exp(torch.tensor(-(d**2) / (2 * sigma**2))).item()
        assert (row[20 + d] / row[20]).item() == pytest.approx(expected, rel=1e-5)
        assert row[20 - d] == row[20 + d]
    assert row[20 + radius + 1] == 0 and row[20 - radius - 1] == 0
    assert losses.gaussian_blur(point, sigma).sum().item() == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("shape", [(9, 3), (3, 9)])
def test_gaussian_blur_of_a_picture_smaller_than_its_kernel(shape: tuple[int, int]) -> None:
    """A 3-pixel-wide (or high) picture with σ 4 (a 25-pixel kernel): blurred, not an error,
    flat stays flat and mirrored stays mirrored."""
    flat = torch.full((1, 1, *shape), 0.3)
    assert torch.allclose(losses.gaussian_blur(flat, 4.0), flat)
    image = torch.rand(1, 1, *shape)
    blurred = losses.gaussian_blur(image, 4.0)
    assert blurred.shape == image.shape and not torch.allclose(blurred, image)
    assert blurred.std() < image.std()
    assert torch.allclose(losses.gaussian_blur(image.flip(-1), 4.0), blurred.flip(-1), atol=1e-6)


def test_greyscale_is_itu_601_luma() -> None:
    """Pure red, green, blue and white give 0.299, 0.587, 0.114 and 1."""
    colours = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]])
    grey = losses.greyscale(colours[:, :, None, None])
    assert grey.shape == (4, 1, 1, 1)
    assert grey.flatten().tolist() == pytest.approx([0.299, 0.587, 0.114, 1.0])


def test_one_anchor_rules_everywhere() -> None:
    """One placed prompt: weight 1 at every cutout."""
    x = torch.tensor([0.0, 0.3, 1.0])
    weights = losses.placement_weights(x, torch.tensor([0.5]), "smooth")
    assert torch.equal(weights, torch.ones(3, 1))


def test_sobel_magnitude_finds_edges_only() -> None:
    """A vertical step from 0 to 1: magnitude 4 (the Sobel kernel's weight) on the two columns
    beside the step, about 0 on flat ground, and the image's own shape."""
    grey = torch.zeros(1, 1, 8, 10)
    grey[..., 5:] = 1.0
    edges = losses.sobel_magnitude(grey)
    assert edges.shape == grey.shape
    assert torch.allclose(edges[..., 4:6], torch.full((1, 1, 8, 2), 4.0))
    flat = torch.cat([edges[..., :3], edges[..., 7:]], dim=-1)
    assert flat.max().item() < 1e-3


def test_mixed_target_weighs_positive_prompts_and_ignores_negative_ones() -> None:
    """t(x): the placed mix of the prompts by their weights, normalised; a negative prompt
    (it pushes away everywhere) is no part of any side's text."""
    targets = torch.eye(4)[:3]  # three orthogonal prompts
    weights = torch.tensor([1.0, 0.5, -0.5])
    placement = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.5, 0.5, 1.0]])
    mixed = losses.mixed_targets(targets, weights, placement)
    expected = F.normalize(
        torch.tensor([[1.0, 0.5, 0, 0], [0, 1.0, 0, 0], [0.5, 0.25, 0, 0]]), dim=-1
    )
    assert torch.allclose(mixed, expected)

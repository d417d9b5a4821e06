"""Cutout geometry: mirrored pairs, sizes, augmentation sharing, resampling."""

import torch

from engine.cutouts import homography, render_cutouts, sample_augmentations, sample_cutouts


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_pairs_mirror_inside_the_image() -> None:
    """The second of a pair sits at W - x - s, same y and size, inside the canvas."""
    width, height = 200, 120
    cuts = sample_cutouts(width, height, 32, 1.0, 30, 0.5, _generator())
    assert cuts.n_pairs == 8 and cuts.boxes.shape == (32, 3)
    x, y, s = cuts.boxes.unbind(1)
    assert (x >= 0).all() and (y >= 0).all() and (x + s <= width).all() and (y + s <= height).all()
    assert (s >= 30).all() and (s <= 120).all()
    first, second = cuts.pairs.unbind(1)
    assert torch.equal(x[second], width - x[first] - s[first])
    assert torch.equal(y[second], y[first]) and torch.equal(s[second], s[first])
    assert cuts.flipped[second].all() and not cuts.flipped[first].any()
    assert not cuts.flipped[16:].any()
    centres = cuts.centres_x
    assert torch.allclose(centres[first] + centres[second], torch.ones(8))


def test_no_mirror_no_pairs() -> None:
    """With mirror 0 every cutout is free."""
    cuts = sample_cutouts(64, 64, 8, 1.0, 16, 0.0, _generator())
    assert cuts.n_pairs == 0 and cuts.pairs.shape == (0, 2) and not cuts.flipped.any()


def test_cut_pow_shifts_sizes() -> None:
    """A higher cut power favours smaller cutouts."""
    big = sample_cutouts(256, 256, 200, 0.5, 16, 0.0, _generator()).boxes[:, 2].mean()
    small = sample_cutouts(256, 256, 200, 3.0, 16, 0.0, _generator()).boxes[:, 2].mean()
    assert small < big


def test_pairs_share_augmentation() -> None:
    """Both cutouts of a pair get identical augmentation parameters."""
    cuts = sample_cutouts(128, 64, 12, 1.0, 16, 1.0, _generator())
    augs = sample_augmentations(cuts, ("affine", "perspective", "noise", "blur"), 32, _generator())
    first, second = cuts.pairs.unbind(1)
    assert torch.equal(augs.homographies[first], augs.homographies[second])
    assert augs.noise is not None and augs.blurred is not None
    assert torch.equal(augs.noise[first], augs.noise[second])
    assert torch.equal(augs.blurred[first], augs.blurred[second])
    # Different pairs draw differently.
    assert not torch.equal(augs.homographies[0], augs.homographies[2])


def test_mirror_symmetric_canvas_gives_identical_pairs() -> None:
    """On a mirror-symmetric canvas the flipped twin of a cutout equals the cutout."""
    left = torch.rand(1, 3, 96, 80, generator=_generator(3))
    canvas = torch.cat([left, left.flip(-1)], dim=-1)  # (1, 3, 96, 160)
    cuts = sample_cutouts(160, 96, 16, 1.0, 24, 1.0, _generator(4))
    augs = sample_augmentations(cuts, ("affine", "perspective", "noise", "blur"), 32, _generator(5))
    out = render_cutouts(canvas, cuts, augs, 32)
    assert out.shape == (16, 3, 32, 32)
    first, second = cuts.pairs.unbind(1)
    assert torch.allclose(out[first], out[second], atol=1e-5)


def test_plain_cutout_is_the_crop() -> None:
    """Without augmentation a cutout at its own size is exactly the cropped pixels."""
    canvas = torch.rand(1, 3, 24, 60, generator=_generator(6))  # too small to supersample
    cuts = sample_cutouts(60, 24, 4, 1.0, 16, 0.0, _generator(7))
    cuts = type(cuts)(torch.tensor([[5.0, 7.0, 16.0]] * 4), cuts.flipped, 0, 60, 24)
    augs = sample_augmentations(cuts, (), 16, _generator())
    out = render_cutouts(canvas, cuts, augs, 16)
    assert torch.allclose(out[0], canvas[0, :, 7:23, 5:21], atol=1e-5)


def test_large_canvas_cutouts_are_antialiased() -> None:
    """On a canvas much larger than CLIP's input, a fine checkerboard cut down averages out
    (grey) instead of aliasing into stripes."""
    checker = (torch.arange(128)[:, None] + torch.arange(128)[None]) % 2
    canvas = checker.float().expand(1, 3, 128, 128).contiguous()
    cuts = sample_cutouts(128, 128, 1, 1.0, 128, 0.0, _generator())
    cuts = type(cuts)(torch.tensor([[0.0, 0.0, 128.0]]), cuts.flipped, 0, 128, 128)
    out = render_cutouts(canvas, cuts, sample_augmentations(cuts, (), 48, _generator()), 48)
    assert (out - 0.5).abs().max() < 0.1  # plain bilinear sampling is off by 0.22 here


def test_render_is_differentiable() -> None:
    """Gradients flow from the cutouts back to the canvas."""
    canvas = torch.rand(1, 3, 64, 64, requires_grad=True)
    cuts = sample_cutouts(64, 64, 6, 1.0, 16, 0.5, _generator())
    augs = sample_augmentations(cuts, ("affine", "noise"), 24, _generator())
    render_cutouts(canvas, cuts, augs, 24).sum().backward()
    assert canvas.grad is not None and canvas.grad.abs().sum() > 0


def test_homography_maps_corners() -> None:
    """The solved homography takes each source corner onto its destination (the square's
    corners, and any other quadrilateral's)."""
    square = torch.tensor([[[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]])
    quad = torch.tensor([[[-0.5, -0.8], [0.7, -0.6], [0.4, 0.9], [-0.3, 0.5]]])
    for src in (square, quad):
        dst = src + torch.tensor([[[0.1, 0.0], [0.0, 0.2], [-0.1, 0.05], [0.05, -0.1]]])
        h = homography(src, dst)
        points = torch.cat([src, torch.ones(1, 4, 1)], dim=-1) @ h.transpose(1, 2)
        assert torch.allclose(points[..., :2] / points[..., 2:], dst, atol=1e-5)


def test_perspective_moves_half_the_cutouts_corners_by_up_to_0_3() -> None:
    """The perspective augmentation: about half the cutouts keep their square; the others
    have each corner moved by up to 0.3 of a half-side, in every direction alike."""
    k = 4000
    boxes = torch.tensor([[0.0, 0.0, 16.0]]).repeat(k, 1)
    cuts = sample_cutouts(16, 16, k, 1.0, 16, 0.0, _generator())
    assert torch.equal(cuts.boxes, boxes)
    homographies = sample_augmentations(cuts, ["perspective"], 8, _generator(1)).homographies
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    mapped = torch.cat([corners, torch.ones(4, 1)], dim=1) @ homographies.transpose(1, 2)
    moves = mapped[..., :2] / mapped[..., 2:] - corners  # (K, 4, 2)
    still = (moves.abs().amax(dim=(1, 2)) < 1e-4).float().mean().item()
    assert 0.46 < still < 0.54
    assert 0.28 < moves.abs().max().item() <= 0.3 + 1e-4
    assert moves.mean(dim=0).abs().max().item() < 0.01  # no corner drifts one way


def test_affine_turns_scales_shears_and_shifts_70_percent_of_the_cutouts() -> None:
    """The affine augmentation: about 70% of the cutouts are rotated by up to 15°, scaled by
    up to 10%, sheared by up to 5° and shifted by up to 0.2 of a half-side, each either way
    alike; the rest are left as they are."""
    k = 4000
    cuts = sample_cutouts(16, 16, k, 1.0, 16, 0.0, _generator())
    m = sample_augmentations(cuts, ["affine"], 8, _generator(2)).homographies  # (K, 3, 3)
    assert torch.equal(m[:, 2], torch.tensor([0.0, 0.0, 1.0]).expand(k, 3))
    moved = (m - torch.eye(3)).abs().amax(dim=(1, 2)) > 1e-6
    assert 0.66 < moved.float().mean().item() < 0.74
    angle = torch.atan2(m[:, 1, 0], m[:, 1, 1]).rad2deg()
    scale = torch.hypot(m[:, 1, 0], m[:, 1, 1])
    shear = torch.atan(m[:, 0, 1] / scale + torch.sin(angle.deg2rad())).rad2deg()
    shift = m[:, :2, 2]
    for values, bound in ((angle, 15.0), (scale - 1, 0.1), (shear, 5.0), (shift, 0.2)):
        assert 0.95 * bound < values.abs().max().item() <= bound * 1.0001
        assert abs(values[moved].mean().item()) < 0.03 * bound  # either way alike
    assert torch.allclose(m[:, 0, 0], scale * torch.cos(angle.deg2rad()), atol=1e-5)


def test_cutouts_reach_every_edge_and_no_further() -> None:
    """Cutouts reach both edges of the canvas, left and right, top and bottom, and never go
    past them; place and size are drawn independently; with mirror 1, an odd cutn pairs all
    but one cutout."""
    cuts = sample_cutouts(40, 24, 3000, 1.0, 8, 0.0, _generator(3))
    x, y, size = cuts.boxes.T
    assert (x >= 0).all() and (y >= 0).all()
    assert (x + size).max() == 40 and (y + size).max() == 24
    assert x.min() == 0 and y.min() == 0
    room = size < 24  # where the cutout can move both ways
    across, down = x[room] / (40 - size[room]), y[room] / (24 - size[room])  # each in [0, 1]
    for a, b in ((across, down), (across, size[room]), (down, size[room])):
        assert torch.corrcoef(torch.stack([a, b]))[0, 1].abs() < 0.1  # drawn independently
    for cutn, pairs in ((5, 2), (7, 3), (8, 4)):
        mirrored = sample_cutouts(40, 24, cutn, 1.0, 8, 1.0, _generator())
        assert mirrored.n_pairs == pairs and mirrored.flipped.sum() == pairs

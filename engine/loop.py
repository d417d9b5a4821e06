"""The optimisation loop, "z+quantize": a generator of progress events.

Optimise a VQGAN latent z; each step quantise it onto the codebook (straight through),
decode, cut and augment patches, embed them with CLIP and pull them toward the prompts,
plus the Doorways symmetry terms. With several CLIP models (`--clip a,b:0.5`) each cuts its
own patches at its own input size and adds its terms with its weight. The loop never
prints: callers render the events, and closing the generator cancels it between iterations.
"""

import functools
import operator
import random
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor

from engine import deterministic, losses, timelapse
from engine.cutouts import Cutouts, render_cutouts, sample_augmentations, sample_cutouts
from engine.images import read_image
from engine.models import CLIP, VQGAN
from engine.registry import token_grid
from engine.request import Request


@dataclass(frozen=True)
class Progress:
    """After each step. Losses stay on the device: reading them (float) waits for the step."""

    iteration: int  # 1-based
    total: int
    losses: dict[str, Tensor]
    image: Tensor | None  # (3, H, W) in [0, 1] on the CPU, on preview iterations only
    frame: Tensor | None = None  # the same, on timelapse frame iterations (--timelapse)

    def loss_values(self) -> dict[str, float]:
        return {name: float(value) for name, value in self.losses.items()}


@dataclass(frozen=True)
class Finished:
    """The result: the image after the last step, and the request with its actual seed.

    A batch (--count above 1, no --index) gives its grid as `image` and each picture with
    its own request in `images` and `requests`; a single picture is all three.
    """

    image: Tensor  # (3, H, W) in [0, 1] on the CPU: the picture, or the batch's grid
    request: Request
    seconds: float
    images: tuple[Tensor, ...]  # (3, H, W) each
    requests: tuple[Request, ...]  # each picture's own: its call string reproduces it


def with_seed(request: Request) -> Request:
    """Pin a random seed if the request has none, so the call string reproduces the run."""
    if request.seed is not None:
        return request
    return request.replace(seed=random.SystemRandom().randint(0, 2**32 - 1))


def grid(images: Sequence[Tensor]) -> Tensor:
    """(3, H, W) pictures → one (3, rows·H, columns·W) grid: 2×2 for four, a row for fewer."""
    columns = 2 if len(images) == 4 else len(images)
    rows = [torch.cat(list(images[i : i + columns]), dim=2) for i in range(0, len(images), columns)]
    return torch.cat(rows, dim=1)


def latent_size(request: Request, factor: int) -> tuple[int, int]:
    """(tokens wide, tokens high): the size rounded to the nearest whole token, at least one."""
    return token_grid(request.size, factor)


def quantize(z: Tensor, codebook: Tensor) -> Tensor:
    """Snap each latent vector to its nearest code, passing gradients straight through."""
    b, c, h, w = z.shape
    flat = z.permute(0, 2, 3, 1).reshape(-1, c)  # (B·h·w, C)
    distances = (
        flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.T + codebook.pow(2).sum(1)[None]
    )
    nearest = codebook[distances.argmin(dim=1)].view(b, h, w, c).permute(0, 3, 1, 2)
    return z + (nearest - z).detach()


class _ClampWithGrad(torch.autograd.Function):
    """Clamp to [lo, hi], but let gradients through where they push back into range."""

    @staticmethod
    def forward(ctx, x: Tensor, lo: float, hi: float) -> Tensor:
        ctx.lo, ctx.hi = lo, hi
        ctx.save_for_backward(x)
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        outside = (x < ctx.lo) & (grad > 0) | (x > ctx.hi) & (grad < 0)
        return grad * ~outside, None, None


def load_image(path: str, width: int, height: int, device: torch.device) -> Tensor:
    """An image file as (1, 3, H, W) in [0, 1], resized to exactly width × height.

    ImageError (a ValueError) if the file is unreadable, too large or damaged.
    """
    rgb = read_image(path).image.resize((width, height), Image.Resampling.LANCZOS)
    data = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
    return data.view(height, width, 3).permute(2, 0, 1)[None].float().div(255).to(device)


def initial_latent(
    request: Request, vqgan: VQGAN, generators: Sequence[torch.Generator], size: tuple[int, int]
) -> Tensor:
    """(B, C, h, w) z: each picture's from its own seeded random codebook tokens, or all
    from the init image through the encoder."""
    tokens_x, tokens_y = size
    device = vqgan.codebook.device
    if request.init_image is not None:
        image = load_image(
            request.init_image, tokens_x * vqgan.factor, tokens_y * vqgan.factor, device
        )
        with torch.no_grad():
            z = vqgan.encode(image)
        return z if len(generators) == 1 else z.repeat(len(generators), 1, 1, 1)
    n_codes, channels = vqgan.codebook.shape
    latents = []
    for generator in generators:
        tokens = torch.randint(n_codes, (tokens_y * tokens_x,), generator=generator, device=device)
        latents.append(vqgan.codebook[tokens].T.reshape(1, channels, tokens_y, tokens_x))
    # clone keeps the one picture's memory layout as it always was (and so its arithmetic)
    return latents[0].clone() if len(latents) == 1 else torch.cat(latents)


@dataclass(frozen=True)
class _Targets:
    """Prompt embeddings with their weights and where across the width they rule."""

    embeds: Tensor  # (P, D) unit vectors: text prompts, then image prompts
    weights: Tensor  # (P,)
    anchors: Tensor | None  # (P+,) anchors of the positive text prompts, or None: everywhere
    placed: Tensor  # (P+,) indices of the prompts that follow the anchors


def _targets(request: Request, clip: CLIP, device: torch.device) -> _Targets:
    with torch.no_grad():
        parts = []
        if request.prompts:
            parts.append(clip.encode_text([p.text for p in request.prompts]))
        for prompt in request.image_prompts:
            size = clip.input_size
            parts.append(clip.encode_image(load_image(prompt.text, size, size, device)))
        embeds = torch.cat(parts).float()
    every = (*request.prompts, *request.image_prompts)
    weights = torch.tensor([p.weight for p in every], device=device)
    # Positive text prompts are placed across the width; negative ones and images act everywhere.
    # Indices, not a mask: assigning through a mask makes the host wait for the device.
    placed_indices = [i for i, p in enumerate(request.prompts) if p.weight > 0]
    placed = torch.tensor(placed_indices, dtype=torch.long, device=device)
    n_placed = len(placed_indices)
    anchors = None
    if request.panorama != "off" and n_placed > 1:
        positions = request.anchors or [i / (n_placed - 1) for i in range(n_placed)]
        anchors = torch.tensor(positions, device=device)
    return _Targets(embeds, weights, anchors, placed)


def _placement(targets: _Targets, x: Tensor, mode: str) -> Tensor:
    """(K, P) how much each prompt counts for each cutout, from the cutouts' x-centres."""
    placement = torch.ones(x.shape[0], targets.embeds.shape[0], device=x.device)
    if targets.anchors is not None:
        placement[:, targets.placed] = losses.placement_weights(x, targets.anchors, mode)
    return placement


def resolve_precision(precision: str, device: torch.device) -> str:
    """auto: bf16 on GPUs with bf16 tensor cores, else fp32 (CPUs without it are slower)."""
    if precision != "auto":
        return precision
    if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
        return "bf16"
    return "fp32"


def _autocast(precision: str, device: torch.device) -> torch.autocast:
    """Mixed precision for the two networks; the latent, the losses and Adam stay fp32."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    return torch.autocast(device.type, dtype=dtype, enabled=precision != "fp32")


def _compiled(request: Request, network: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """The decoder or a CLIP's image encoder, compiled if the request asks.

    torch.compile caches what it builds per function and input shape, so a resident worker
    compiles once per picture size, not once per picture.
    """
    if request.compile == "off":
        return network
    return torch.compile(network, mode=request.compile)


@dataclass(frozen=True)
class _Guide:
    """One CLIP model as the loop uses it: its targets, its image encoder and its weight."""

    clip: CLIP
    weight: float
    targets: _Targets
    encode_image: Callable[[Tensor], Tensor]  # clip.encode_image, compiled if asked


def _guides(request: Request, clips: Sequence[CLIP], device: torch.device) -> list[_Guide]:
    """Each CLIP paired with its weight from the request's list, in order, with the prompts
    encoded by its own towers."""
    specs = request.clips
    if len(clips) != len(specs):
        raise ValueError(
            f"the request names {len(specs)} CLIP model(s), {request.clip}, "
            f"but {len(clips)} were loaded"
        )
    return [
        _Guide(
            clip,
            spec.weight,
            _targets(request, clip, device),
            _compiled(request, clip.encode_image),
        )
        for clip, spec in zip(clips, specs, strict=True)
    ]


def _optimizer(request: Request, z: Tensor) -> torch.optim.Optimizer:
    if request.optimizer == "adamw":
        return torch.optim.AdamW([z], lr=request.lr)
    if request.optimizer == "adagrad":
        return torch.optim.Adagrad([z], lr=request.lr)
    return torch.optim.Adam([z], lr=request.lr)


def generate(
    request: Request, vqgan: VQGAN, clips: CLIP | Sequence[CLIP]
) -> Generator[Progress | Finished, None, None]:
    """Run the request on loaded models; yields Progress per step and then Finished.

    `clips` are the models of `request.clips`, loaded in the same order (one CLIP for a
    request that names one). Each cuts and embeds its own cutouts at its own input size,
    and its loss terms count with its weight.

    A batch of --count pictures is one latent (B, C, h, w) through the decoder and CLIP in
    one pass; each picture draws its cutouts and augmentations from its own generator
    (seed, seed+1, …) and its losses are added, so no picture steers another.
    """
    started = time.perf_counter()
    request = with_seed(request)
    assert request.seed is not None
    device = vqgan.codebook.device
    generators = [
        torch.Generator(device).manual_seed(request.seed + i) for i in range(request.count)
    ]
    tokens_x, tokens_y = latent_size(request, vqgan.factor)

    guides = _guides(request, [clips] if isinstance(clips, CLIP) else clips, device)
    z = initial_latent(request, vqgan, generators, (tokens_x, tokens_y))
    z_init = z.detach().clone() if request.init_weight > 0 else None
    z_min, z_max = vqgan.codebook.min(0).values, vqgan.codebook.max(0).values
    z.requires_grad_(True)
    optimizer = _optimizer(request, z)

    if device.type == "cuda":  # the shapes stay fixed for the whole run: worth timing kernels
        torch.backends.cudnn.benchmark = True
    autocast = _autocast(resolve_precision(request.precision, device), device)
    decode = _compiled(request, vqgan.decode)
    with deterministic.kernels(request.kernels):
        for iteration in range(1, request.iterations + 1):
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                decoded = decode(quantize(z, vqgan.codebook)).float()
            image = _ClampWithGrad.apply(decoded, 0.0, 1.0)  # (B, 3, H, W)
            canvases = _each(image, 1)
            seen = [_look(request, guide, canvases, generators, autocast) for guide in guides]
            latents = (
                [None] * len(canvases)
                if z_init is None
                else list(zip(_each(z, 1), _each(z_init, 1), strict=True))
            )
            per_picture = [
                _picture_losses(
                    request, [(guide, views[i]) for guide, views in zip(guides, seen, strict=True)],
                    canvas, latent,
                )
                for i, (canvas, latent) in enumerate(zip(canvases, latents, strict=True))
            ]  # fmt: skip
            terms = {name: _sum([t[name] for t in per_picture]) for name in per_picture[0]}
            total = _sum(list(terms.values()))
            total.backward()
            optimizer.step()
            with torch.no_grad():
                z.copy_(torch.maximum(torch.minimum(z, z_max[:, None, None]), z_min[:, None, None]))

            preview = frame = None
            if request.preview_every and iteration % request.preview_every == 0:
                preview = grid(image.detach().cpu())
            if request.timelapse is not None and timelapse.is_frame(iteration, request.iterations):
                frame = preview if preview is not None else grid(image.detach().cpu())
            terms["total"] = total
            losses_now = {k: v.detach() for k, v in terms.items()}
            yield Progress(iteration, request.iterations, losses_now, preview, frame)

        with torch.no_grad(), autocast:
            final = vqgan.decode(quantize(z, vqgan.codebook)).float().clamp(0, 1).cpu()
    seconds = time.perf_counter() - started
    if request.index is not None:  # a reproduction: keep the one picture asked for
        kept = final[request.index - 1]
        yield Finished(kept, request, seconds, (kept,), (request,))
        return
    pictures = tuple(final)
    yield Finished(grid(pictures), request, seconds, pictures, request.pictures())


def _look(
    request: Request,
    guide: _Guide,
    canvases: Sequence[Tensor],
    generators: Sequence[torch.Generator],
    autocast: torch.autocast,
) -> list[tuple[Cutouts, Tensor]]:
    """One CLIP's view of each picture: its own cutouts, drawn from the picture's generator,
    rendered at its input size and embedded in one pass; (cutouts, (K, D) embeddings) each."""
    _, _, height, width = canvases[0].shape
    size = guide.clip.input_size
    min_cut = min(size, width, height) // 4
    cuts = [
        sample_cutouts(
            width, height, request.cutn, request.cut_pow, min_cut, request.mirror, generator
        )
        for generator in generators
    ]
    augs = [
        sample_augmentations(cut, request.augments, size, generator)
        for cut, generator in zip(cuts, generators, strict=True)
    ]
    rendered = [
        render_cutouts(canvas, cut, aug, size)
        for canvas, cut, aug in zip(canvases, cuts, augs, strict=True)
    ]
    with autocast:  # (B·K, 3, S, S): every picture's cutouts in one pass
        embeds = guide.encode_image(rendered[0] if len(rendered) == 1 else torch.cat(rendered))
    return list(zip(cuts, _each(embeds.float(), request.cutn), strict=True))


def _picture_losses(
    request: Request,
    views: Sequence[tuple[_Guide, tuple[Cutouts, Tensor]]],
    image: Tensor,
    latents: tuple[Tensor, Tensor] | None,
) -> dict[str, Tensor]:
    """One picture's loss terms: each CLIP's, from its cutouts and their (K, D) embeddings,
    added with its weight; then those of its (1, 3, H, W) canvas and, with an init weight,
    of its latent and the latent it started from."""
    per_clip = [
        {name: guide.weight * value for name, value in _clip_losses(request, guide, *view).items()}
        for guide, view in views
    ]
    terms = {name: _sum([t[name] for t in per_clip]) for name in per_clip[0]}
    if request.tone_weight > 0:
        terms["tone"] = request.tone_weight * losses.tone_symmetry_loss(
            image, request.symmetry_blur
        )
    if request.sobel_weight > 0:
        sobel = losses.sobel_symmetry_loss(image, request.symmetry_blur)
        terms["sobel"] = request.sobel_weight * sobel
    if latents is not None:
        z, z_init = latents
        terms["init"] = request.init_weight * (z - z_init).pow(2).mean()
    return terms


def _clip_losses(
    request: Request, guide: _Guide, cuts: Cutouts, embeds: Tensor
) -> dict[str, Tensor]:
    """One CLIP's terms for one picture: the prompt loss and semantic symmetry."""
    targets = guide.targets
    placement = _placement(targets, cuts.centres_x, request.panorama)
    cut_weights = losses.size_weights(cuts.relative_sizes, request.size_emphasis)
    terms = {
        "prompt": losses.prompt_loss(
            embeds, targets.embeds, targets.weights, placement, cut_weights
        )
    }
    if request.semantic_weight > 0:
        mixed = losses.mixed_targets(targets.embeds, targets.weights, placement)
        semantic = losses.semantic_symmetry_loss(embeds, mixed, cuts.pairs)
        terms["semantic"] = request.semantic_weight * semantic
    return terms


def _each(batch: Tensor, size: int) -> list[Tensor]:
    """Split along the first dimension into pieces of `size`; a single piece is the tensor
    itself, so the single picture's autograd graph (and its rounding) stays as it was."""
    return [batch] if batch.shape[0] == size else list(batch.split(size))


def _sum(values: list[Tensor]) -> Tensor:
    """Add tensors left to right (one is returned as it is: the single picture's arithmetic)."""
    return functools.reduce(operator.add, values)

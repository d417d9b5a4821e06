"""Models: the registry, downloads, and loading VQGAN and CLIP behind two small adapters.

Every caller (CLI, worker, tests) loads through `load_vqgan` / `load_clip`. A model is
named by one of:

- a registry name from engine/data/models.json (`vqgan_imagenet_f16_16384`, `ViT-B/32`, ...),
  whose file must have been downloaded into `model_dir()`;
- `tiny`: a small model of the real class, built from a fixed seed, saved in the real file
  format under `model_dir()/tiny/` and read back through the same loader as real weights;
- `random:NAME`: the real architecture of registry entry NAME with seeded random weights,
  built in memory (benchmarks; no files, no network);
- a path to a local file (a VQGAN `X.ckpt` needs its config `X.yaml` beside it).
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from engine import _clip_compat
from engine._taming_compat import ensure_taming_importable, use_fused_swish
from engine.clips import ClipSpec
from engine.registry import (
    ModelError,
    entry_of_kind,
    is_registered,
    model_dir,
    weights_path,
)

SEED = 0  # weights of `tiny` and `random:NAME` models

# The VQGAN classes we can adapt; their training loss is never built (see DESIGN.md).
VQGAN_CLASSES = ("taming.models.vqgan.VQModel", "taming.models.vqgan.GumbelVQ")
# Inference needs no loss; taming's DummyLoss module would import lpips and torchvision.
DUMMY_LOSS = {"target": "torch.nn.Identity"}

TINY_VQGAN: dict[str, Any] = {
    "target": "taming.models.vqgan.VQModel",
    "params": {
        "embed_dim": 16,
        "n_embed": 256,
        "ddconfig": {
            "double_z": False,
            "z_channels": 16,
            "resolution": 64,
            "in_channels": 3,
            "out_ch": 3,
            "ch": 32,
            "ch_mult": [1, 1, 2, 2, 4],  # factor 16
            "num_res_blocks": 1,
            "attn_resolutions": [],
            "dropout": 0.0,
        },
    },
}
TINY_CLIP: dict[str, Any] = {  # arguments of clip.model.CLIP: a 2+2-layer ViT
    "embed_dim": 64,
    "image_resolution": 224,
    "vision_layers": 2,
    "vision_width": 64,
    "vision_patch_size": 32,
    "context_length": 77,
    "vocab_size": 49408,
    "transformer_width": 64,
    "transformer_heads": 1,
    "transformer_layers": 2,
}
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# --- where things are ---------------------------------------------------------------------


def resolve_device(name: str = "auto") -> torch.device:
    """Turn "auto", "cpu", "cuda" or "cuda:N" into a usable torch.device."""
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            from engine.driver import unused_gpu

            why = unused_gpu() or "use cpu"
            raise ValueError(f"device {name!r} asked for, but CUDA is not available here; {why}")
        index = int(name[5:]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device {name!r} does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s), cuda:0 to "
                f"cuda:{torch.cuda.device_count() - 1}"
            )
        return torch.device(name)
    raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N")


# --- adapters the optimisation loop uses --------------------------------------------------


@dataclass
class VQGAN:
    """A frozen taming VQGAN seen as images <-> latents, images in [0, 1]."""

    model: torch.nn.Module  # taming VQModel or GumbelVQ, eval(), requires_grad False
    name: str
    codebook: Tensor  # (n_embed, embed_dim)
    factor: int  # downsampling factor, 2 ** (len(ch_mult) - 1)

    @property
    def is_gumbel(self) -> bool:
        """Whether the quantiser is Gumbel (logits over codes) rather than nearest code."""
        return hasattr(self.model.quantize, "proj")

    def encode(self, image: Tensor) -> Tensor:
        """(B, 3, H, W) in [0, 1] -> quantised latent (B, embed_dim, H/f, W/f)."""
        model: Any = self.model
        x = image * 2 - 1
        if not self.is_gumbel:
            return model.encode(x)[0]
        # GumbelQuantize samples codes even in eval(); take its most likely code instead.
        h = model.quant_conv(model.encoder(x))
        codes = model.quantize.proj(h).argmax(dim=1)  # (B, h, w)
        return self.codebook[codes].permute(0, 3, 1, 2)

    def decode(self, z: Tensor) -> Tensor:
        """(B, embed_dim, h, w) -> (B, 3, h*f, w*f), mapped from [-1, 1] to [0, 1], unclamped."""
        model: Any = self.model
        return (model.decode(z) + 1) / 2


@dataclass
class CLIP:
    """A frozen float32 OpenAI CLIP that takes [0, 1] images and strings."""

    model: torch.nn.Module  # clip.model.CLIP
    name: str
    input_size: int  # model.visual.input_resolution
    mean: Tensor = field(init=False, repr=False)  # CLIP's input normalisation, (1, 3, 1, 1)
    std: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # On the model's device once: a copy from Python data makes the host wait for the
        # GPU, and the loop never should (and a cache here would stop torch.compile).
        device = next(self.model.parameters(), torch.empty(0)).device
        self.mean = torch.tensor(CLIP_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(CLIP_STD, device=device).view(1, 3, 1, 1)

    def encode_image(self, image: Tensor) -> Tensor:
        """(B, 3, S, S) in [0, 1], S == input_size -> unit-norm float32 (B, D)."""
        if image.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"CLIP {self.name} takes {self.input_size}x{self.input_size} images, "
                f"got {tuple(image.shape)}"
            )
        mean, std = self.mean.to(image.dtype), self.std.to(image.dtype)
        model: Any = self.model
        features = model.encode_image((image - mean) / std).float()
        return F.normalize(features, dim=-1)

    def encode_text(self, texts: Sequence[str]) -> Tensor:
        """Prompts -> unit-norm float32 (P, D); over-long prompts are truncated."""
        model: Any = self.model
        device = model.positional_embedding.device
        tokens = _clip_compat.tokenize(texts, model.context_length)
        features = model.encode_text(tokens.to(device)).float()
        return F.normalize(features, dim=-1)


def _frozen(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    return model.float().eval().requires_grad_(False).to(device)


@contextlib.contextmanager
def _seeded(seed: int = SEED) -> Iterator[None]:
    """Run a block with torch's CPU RNG seeded, leaving the caller's RNG state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def save_atomic(path: Path, save: Callable[[io.BytesIO], object]) -> None:
    """Write what save(buffer) produces to `path` via a temp file and a rename.

    Concurrent readers see no file or a whole one. Saving to a buffer, not to the temp
    file, keeps the bytes reproducible: torch.save names its zip records after the file.
    """
    buffer = io.BytesIO()
    save(buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getvalue())
        os.chmod(tmp, 0o644)  # mkstemp made it private
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# --- VQGAN --------------------------------------------------------------------------------


def build_vqgan(target: str, params: dict[str, Any]) -> torch.nn.Module:
    """An untrained taming VQModel/GumbelVQ from a config's target and params."""
    if target not in VQGAN_CLASSES:
        raise ModelError(f"unsupported VQGAN class {target}; supported: {', '.join(VQGAN_CLASSES)}")
    ensure_taming_importable()
    use_fused_swish()
    from taming.models import vqgan

    params = {k: v for k, v in params.items() if k not in ("ckpt_path", "ignore_keys")}
    params["lossconfig"] = DUMMY_LOSS
    with contextlib.redirect_stdout(io.StringIO()):  # taming prints "Working with z of shape"
        return getattr(vqgan, target.rsplit(".", 1)[1])(**params)


def _vqgan_adapter(module: torch.nn.Module, name: str, device: torch.device) -> VQGAN:
    # channels_last: oneDNN and cuDNN convolve NHWC without reordering each layer's input
    model: Any = _frozen(module, device).to(memory_format=torch.channels_last)
    quantize = model.quantize
    codebook = quantize.embed.weight if hasattr(quantize, "proj") else quantize.embedding.weight
    return VQGAN(model, name, codebook, 2 ** (model.encoder.num_resolutions - 1))


def _read_checkpoint(path: Path) -> Any:
    """torch.load a checkpoint as tensors only, or in full when its pickle needs more.

    Official taming checkpoints pickle Lightning's ModelCheckpoint callback, which the
    weights-only unpickler refuses; only those are read in full (importing the real
    Lightning as they are unpickled). Our own and plain state dicts never need that.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # a global outside the weights-only allowlist
        return torch.load(path, map_location="cpu", weights_only=False)


def _load_state(model: torch.nn.Module, path: Path) -> None:
    """Load a checkpoint's state_dict (minus `loss.*`) into `model`, strictly."""
    try:
        ckpt = _read_checkpoint(path)
    except Exception as exc:
        raise ModelError(
            f"could not read {path}: {exc} (an incomplete download? delete it and fetch it again)"
        ) from exc
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ModelError(f"{path} holds no state_dict")
    state = {k: v for k, v in state.items() if not k.startswith("loss.")}
    expected = model.state_dict().keys()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ModelError(
            f"{path} does not fit the {type(model).__name__} architecture: "
            f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # same keys, wrong shapes
        raise ModelError(
            f"{path} does not fit the {type(model).__name__} architecture: {exc}"
        ) from exc


def _vqgan_config_beside(path: Path) -> tuple[str, dict[str, Any]]:
    """target and params from the YAML next to a local checkpoint."""
    from omegaconf import OmegaConf

    yaml = path.with_suffix(".yaml")
    if not yaml.is_file():
        raise ModelError(
            f"no config for {path}: put its YAML (model.target and model.params) at {yaml}"
        )
    config: Any = OmegaConf.to_container(OmegaConf.load(yaml), resolve=True)
    try:
        model = config["model"]
        return model["target"], dict(model["params"])
    except (KeyError, TypeError) as exc:
        raise ModelError(f"{yaml} lacks model.target / model.params") from exc


def load_vqgan(name_or_path: str, device: torch.device) -> VQGAN:
    """Load a VQGAN by registry name, tiny, random:NAME or checkpoint path, onto `device`."""
    if name_or_path.startswith("random:"):
        entry = entry_of_kind("vqgan", name_or_path.removeprefix("random:"))
        with _seeded():
            model = build_vqgan(entry["target"], entry["params"])
        return _vqgan_adapter(model, name_or_path, device)
    if name_or_path == "tiny":
        path = ensure_tiny_vqgan()
        target, params = _vqgan_config_beside(path)
    elif is_registered(name_or_path):
        entry = entry_of_kind("vqgan", name_or_path)
        path = weights_path(name_or_path)
        target, params = entry["target"], entry["params"]
    else:
        path = _local_file(name_or_path)
        target, params = _vqgan_config_beside(path)
    model = build_vqgan(target, params)
    _load_state(model, path)
    return _vqgan_adapter(model, name_or_path, device)


def ensure_tiny_vqgan() -> Path:
    """Write model_dir()/tiny/vqgan_tiny.ckpt (+ .yaml) from a fixed seed, if absent."""
    from omegaconf import OmegaConf

    ckpt = model_dir() / "tiny" / "vqgan_tiny.ckpt"
    yaml = ckpt.with_suffix(".yaml")
    if not yaml.is_file():
        params = {**TINY_VQGAN["params"], "lossconfig": DUMMY_LOSS}
        config = {"model": {"target": TINY_VQGAN["target"], "params": params}}
        save_atomic(yaml, lambda buf: buf.write(OmegaConf.to_yaml(config).encode()))
    if not ckpt.is_file():
        with _seeded():
            model = build_vqgan(TINY_VQGAN["target"], TINY_VQGAN["params"])
        state = {"state_dict": model.state_dict()}  # the layout Lightning checkpoints have
        save_atomic(ckpt, lambda buf: torch.save(state, buf))
    return ckpt


# --- CLIP ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide TorchScript's deprecation and tracer chatter."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def _read_clip(path: Path) -> torch.nn.Module:
    """A clip.model.CLIP from a TorchScript archive (OpenAI's format) or a state dict."""
    with _quiet():
        try:
            return _clip_compat.read_model(path)
        except Exception as exc:  # not a TorchScript archive: a state dict, perhaps
            archive_error = exc
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state)
            return _clip_compat.model_module().build_model(dict(state))
        except Exception as exc:
            raise ModelError(
                f"could not load CLIP weights from {path}: as TorchScript: {archive_error!r}; "
                f"as a state dict: {exc!r}"
            ) from exc


def _clip_adapter(module: torch.nn.Module, name: str, device: torch.device) -> CLIP:
    model: Any = _frozen(module, device)
    return CLIP(model, name, model.visual.input_resolution)


def build_clip(params: dict[str, Any]) -> torch.nn.Module:
    """An untrained clip.model.CLIP from its constructor arguments."""
    return _clip_compat.model_module().CLIP(**params)


def load_clip(name_or_path: str, device: torch.device) -> CLIP:
    """Load CLIP by registry name, tiny, random:NAME or weights path, onto `device`."""
    if name_or_path.startswith("random:"):
        entry = entry_of_kind("clip", name_or_path.removeprefix("random:"))
        with _seeded():
            model = build_clip(entry["params"])
        return _clip_adapter(model, name_or_path, device)
    if name_or_path == "tiny":
        path = ensure_tiny_clip()
    elif is_registered(name_or_path):
        entry_of_kind("clip", name_or_path)
        path = weights_path(name_or_path)
    else:
        path = _local_file(name_or_path)
    return _clip_adapter(_read_clip(path), name_or_path, device)


def load_clips(specs: Iterable[ClipSpec], device: torch.device) -> tuple[CLIP, ...]:
    """Load each CLIP of a list (a Request's `clips`), in its order, onto `device`."""
    return tuple(load_clip(spec.name, device) for spec in specs)


def ensure_tiny_clip() -> Path:
    """Write model_dir()/tiny/clip_tiny.pt, a traced TorchScript archive, if absent."""
    path = model_dir() / "tiny" / "clip_tiny.pt"
    if not path.is_file():
        write_tiny_clip(path)
    return path


def write_tiny_clip(path: Path, image_resolution: int = 224) -> Path:
    """Save the tiny CLIP, at another input size if asked, as OpenAI's TorchScript format.

    Another size gives a second tiny model with its own input resolution (tests of several
    CLIP models at once); it is read back as a path, through the same loader.
    """
    with _quiet():
        with _seeded():
            model = build_clip({**TINY_CLIP, "image_resolution": image_resolution}).eval()
        # OpenAI ships fp16 weights and build_model() casts to fp16 on load: round now so
        # that the file reads back exactly.
        _clip_compat.model_module().convert_weights(model)
        model.float()
        image = torch.zeros(1, 3, image_resolution, image_resolution)
        example = (image, _clip_compat.tokenize(["a doorway"], 77))
        traced = torch.jit.trace(model, example, check_trace=False)
        save_atomic(path, lambda buf: torch.jit.save(traced, buf))
    return path


# --- helpers for the loaders --------------------------------------------------------------


def _local_file(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise ModelError(f"no such file: {path} (and {name_or_path!r} is no registry model)")
    return path.resolve()

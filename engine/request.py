"""The one request type: every parameter of a generation, and its three spellings.

A `Request` is built by the CLI, the bot and the task runner; it renders the PNG metadata
(JSON) and the call string (a `doorways generate …` command line), and both parse back
into an equal Request. The option table below is the single list of CLI spellings.
"""

import argparse
import dataclasses
import json
import math
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.clips import EXAMPLE, ClipSpec, parse_clips, render_clips
from engine.prompts import Prompt, parse_prompts, render_prompts

DEFAULT_VQGAN = "vqgan_imagenet_f16_16384"
DEFAULT_CLIP = "ViT-B/32"
AUGMENTS = ("affine", "perspective", "blur", "noise")
OPTIMIZERS = ("adam", "adamw", "adagrad")
PANORAMAS = ("off", "linear", "smooth")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")
KERNELS = ("fast", "deterministic")  # engine/deterministic.py
MAX_SIDE = 4096
MAX_ITERATIONS = 100_000
MAX_SEED = 2**63 - 1
MAX_COUNT = 4  # a 2×2 grid


def _option(flag: str, help: str, **argparse_kwargs: Any) -> dict[str, Any]:
    """Field metadata: the CLI flag and how argparse reads it."""
    return {"flag": flag, "help": help, "argparse": argparse_kwargs}


@dataclass(frozen=True)
class Request:
    """Every parameter of one generation. Construction validates values; see check_inputs()."""

    prompts: tuple[Prompt, ...]
    # Picture
    size: tuple[int, int] = field(
        default=(450, 300),
        metadata=_option(
            "--size", "width and height in pixels, rounded to the VQGAN's grid (16 px for f16)",
            nargs=2, type=int, metavar=("W", "H"),
        ),
    )  # fmt: skip
    iterations: int = field(
        default=300, metadata=_option("--iterations", "optimisation steps", type=int, metavar="N")
    )
    seed: int | None = field(
        default=None,
        metadata=_option(
            "--seed", "random seed (default: a new one, recorded)", type=int, metavar="N"
        ),
    )
    count: int = field(
        default=1,
        metadata=_option(
            "--count",
            f"paint N pictures (1-{MAX_COUNT}) as one batch, seeds SEED, SEED+1, …, and a grid "
            "of them",
            type=int, metavar="N",
        ),
    )  # fmt: skip
    index: int | None = field(
        default=None,
        metadata=_option(
            "--index",
            "paint the whole batch of --count, keep only picture I (1-N): how one picture "
            "of a batch is reproduced exactly",
            type=int, metavar="I",
        ),
    )  # fmt: skip
    # Optimisation
    lr: float = field(
        default=0.1, metadata=_option("--lr", "learning rate", type=float, metavar="X")
    )
    optimizer: str = field(
        default="adam",
        metadata=_option("--optimizer", "optimiser for the latent", choices=OPTIMIZERS),
    )
    cutn: int = field(
        default=32,
        metadata=_option("--cutn", "cutouts shown to CLIP per step", type=int, metavar="N"),
    )
    cut_pow: float = field(
        default=1.0,
        metadata=_option(
            "--cut-pow", "cutout size power: above 1 favours small cutouts", type=float, metavar="X"
        ),
    )
    augments: tuple[str, ...] = field(
        default=("affine", "perspective", "noise"),
        metadata=_option(
            "--augments",
            f"comma-separated cutout augmentations from {','.join(AUGMENTS)}, or none",
            type=str, metavar="LIST",
        ),
    )  # fmt: skip
    # Starting points and image prompts
    init_image: str | None = field(
        default=None, metadata=_option("--init-image", "start from this image", metavar="PATH")
    )
    init_weight: float = field(
        default=0.0,
        metadata=_option(
            "--init-weight", "pull toward the init image's latent", type=float, metavar="W"
        ),
    )
    image_prompts: tuple[Prompt, ...] = field(
        default=(),
        metadata=_option(
            "--image-prompts", "images as prompts: `a.png | b.png:0.5`", metavar="IMAGES"
        ),
    )
    # Doorways: panoramas and symmetry
    panorama: str = field(
        default="off",
        metadata=_option(
            "--panorama",
            "place the prompts across the width (linear or smooth blend); off: all everywhere",
            choices=PANORAMAS,
        ),
    )
    anchors: tuple[float, ...] | None = field(
        default=None,
        metadata=_option(
            "--anchors",
            "x positions (0-1) of the positive prompts for --panorama (default: evenly)",
            nargs="+", type=float, metavar="X",
        ),
    )  # fmt: skip
    mirror: float = field(
        default=0.0,
        metadata=_option(
            "--mirror",
            "share (0-1) of cutouts taken as mirrored pairs",
            type=float,
            metavar="SHARE",
        ),
    )
    semantic_weight: float = field(
        default=0.0,
        metadata=_option(
            "--semantic-symmetry",
            "weight of semantic symmetry over mirrored pairs (needs --mirror)",
            type=float, metavar="W",
        ),
    )  # fmt: skip
    tone_weight: float = field(
        default=0.0,
        metadata=_option(
            "--tone-symmetry", "weight of blurred-greyscale mirror symmetry (L1)",
            type=float, metavar="W",
        ),
    )  # fmt: skip
    sobel_weight: float = field(
        default=0.0,
        metadata=_option(
            "--sobel-symmetry", "weight of blurred-edge mirror symmetry (easy to hack)",
            type=float, metavar="W",
        ),
    )  # fmt: skip
    symmetry_blur: float = field(
        default=4.0,
        metadata=_option(
            "--symmetry-blur", "Gaussian sigma in pixels for tone and Sobel symmetry",
            type=float, metavar="SIGMA",
        ),
    )  # fmt: skip
    size_emphasis: float = field(
        default=0.0,
        metadata=_option(
            "--size-emphasis",
            "weight cutouts by size: >0 large (place big structures), <0 small (detail)",
            type=float, metavar="E",
        ),
    )  # fmt: skip
    # Models and running
    vqgan: str = field(
        default=DEFAULT_VQGAN,
        metadata=_option(
            "--vqgan", "VQGAN: registry name, tiny, random:NAME or a path", metavar="NAME"
        ),
    )
    clip: str = field(  # the list's text; `clips` reads it
        default=DEFAULT_CLIP,
        metadata=_option(
            "--clip",
            "CLIP: registry name, tiny, random:NAME or a path; several guide together as "
            f"a comma-separated list with a weight each ({EXAMPLE})",
            metavar="MODELS",
        ),
    )
    device: str = field(
        default="auto", metadata=_option("--device", "auto, cpu, cuda or cuda:N", metavar="D")
    )
    precision: str = field(
        default="auto",
        metadata=_option(
            "--precision",
            "arithmetic of the decoder and CLIP: bf16/fp16 autocast is much faster on GPUs; "
            "auto is bf16 on GPUs that have it, fp32 elsewhere",
            choices=PRECISIONS,
        ),
    )
    compile: str = field(
        default="off",
        metadata=_option(
            "--compile",
            "torch.compile the decoder and CLIP with this mode: faster iterations after a "
            "compilation of a minute or more per picture size",
            choices=COMPILE_MODES,
        ),
    )
    kernels: str = field(
        default="fast",
        metadata=_option(
            "--kernels",
            "fast, or deterministic: the same pixels every run on the same GPU and software "
            "(slower; a CPU is deterministic either way)",
            choices=KERNELS,
        ),
    )
    preview_every: int = field(
        default=0,
        metadata=_option(
            "--preview-every", "save a preview every N iterations (0: never)",
            type=int, metavar="N",
        ),
    )  # fmt: skip
    timelapse: str | None = field(
        default=None,
        metadata=_option(
            "--timelapse", "also write an animated GIF of the painting forming (about 60 "
            "frames, under 8 MiB) to this .gif path", metavar="PATH",
        ),
    )  # fmt: skip
    output: str = field(
        default="output.png",
        metadata=_option(
            "--output", "PNG path; a taken name gets _1, _2, … (never overwritten)",
            metavar="PATH",
        ),
    )  # fmt: skip

    def __post_init__(self) -> None:
        _validate(self)
        # One spelling of each CLIP list (` a, b:1.0` is `a,b`): equal lists, equal requests.
        object.__setattr__(self, "clip", render_clips(self.clips))

    @property
    def clips(self) -> tuple[ClipSpec, ...]:
        """The CLIP models that guide the painting, each with its weight."""
        return parse_clips(self.clip)

    # Spellings ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values; prompts in their typed syntax."""
        data = dataclasses.asdict(self)
        data["prompts"] = render_prompts(self.prompts)
        data["image_prompts"] = render_prompts(self.image_prompts)
        for name in ("size", "augments", "anchors"):
            if data[name] is not None:
                data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Request":
        """The inverse of to_dict; unknown keys are errors (a typo must not pass silently)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown request field(s): {', '.join(unknown)}")
        if "prompts" not in data:
            raise ValueError("a request needs prompts")
        values = dict(data)
        for name in ("prompts", "image_prompts"):
            if name in values and isinstance(values[name], str):
                values[name] = parse_prompts(values[name], what=name.replace("_", " ")[:-1])
        for name, convert in _TUPLES.items():
            if values.get(name) is not None:
                if not isinstance(values[name], list | tuple):
                    raise ValueError(f"{name} must be a list, not {values[name]!r}")
                values[name] = tuple(convert(v) for v in values[name])
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Request":
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("request JSON must be an object")
        return cls.from_dict(data)

    def to_call_string(self) -> str:
        """A shell-safe `doorways generate …` line that reproduces this request."""
        prompts = render_prompts(self.prompts)
        words = ["doorways", "generate"]
        defaults = _defaults()
        for f in fields(self)[1:]:
            value = getattr(self, f.name)
            if value is None or (f.name not in _ALWAYS_RENDERED and value == defaults[f.name]):
                continue
            rendered = _render_value(f.name, value)
            if len(rendered) == 1 and rendered[0].startswith("-"):
                words.append(f"{f.metadata['flag']}={rendered[0]}")  # else read as an option
            else:
                words += [f.metadata["flag"], *rendered]
        # A prompt that starts with `-` must follow `--`, or it would read as an option.
        words = (
            [*words[:2], prompts, *words[2:]]
            if not prompts.startswith("-")
            else [*words, "--", prompts]
        )
        return shlex.join(words)

    @classmethod
    def from_call_string(cls, call: str) -> "Request":
        """Parse a call string (as printed by to_call_string, or typed by a person)."""
        try:
            words = shlex.split(call)
        except ValueError as error:
            raise ValueError(f"cannot split call string: {error}") from None
        if words[:2] != ["doorways", "generate"]:
            raise ValueError("a call string starts with `doorways generate`")
        parser = RequestParser(prog="doorways generate", add_help=False, allow_abbrev=False)
        add_request_arguments(parser)
        return request_from_args(parser.parse_args(words[2:]))

    # Checks that touch the file system --------------------------------------

    def check_inputs(self) -> list[str]:
        """Raise ValueError if an input image is unreadable or a model is unknown; return
        notes for the user (an animated image: its first frame is used)."""
        from engine import registry
        from engine.images import read_image

        notes = []
        for path in [self.init_image, *(p.text for p in self.image_prompts)]:
            if path is not None and (note := read_image(path).note):
                notes.append(note)
        models = [("vqgan", self.vqgan), *(("clip", spec.name) for spec in self.clips)]
        for kind, name in models:
            if not registry.is_known_model(kind, name):
                choices = ", ".join(
                    registry.vqgan_names() if kind == "vqgan" else registry.clip_names()
                )
                raise ValueError(
                    f"unknown {kind} model {name!r}: not a file, and not one of {choices} "
                    "(or random:NAME)"
                )
        return notes

    def replace(self, **changes: Any) -> "Request":
        return dataclasses.replace(self, **changes)

    def pictures(self) -> tuple["Request", ...]:
        """Each picture's own request, in batch order: its call string repaints the batch and
        keeps that picture (`--count 4 --index 2`), which reproduces it exactly, as a batch
        may round differently from a single picture. One for --count 1 or an --index."""
        if self.count == 1 or self.index is not None:
            return (self,)
        return tuple(self.replace(index=i) for i in range(1, self.count + 1))

    def recipe(self) -> "Request":
        """The picture's recipe: this request less where it was saved, how it was watched
        and whether it was compiled.

        PNG metadata and shared call strings carry the recipe, so a server's output path,
        preview cadence or minutes of compilation never travel with a picture.
        """
        defaults = _defaults()
        return self.replace(**{name: defaults[name] for name in _NOT_RECIPE})


# Always in the call string, so that a change of default never changes old pictures.
_ALWAYS_RENDERED = frozenset(
    {"size", "iterations", "seed", "lr", "cutn", "cut_pow", "vqgan", "clip"}
)
_NOT_RECIPE = ("output", "preview_every", "timelapse", "compile")
_TUPLES: dict[str, Callable[[Any], Any]] = {"size": int, "augments": str, "anchors": float}


def _defaults() -> dict[str, Any]:
    return {f.name: f.default for f in fields(Request) if f.default is not dataclasses.MISSING}


def _render_value(name: str, value: Any) -> list[str]:
    if name == "image_prompts":
        return [render_prompts(value)]
    if name == "augments":
        return [",".join(value) or "none"]
    if isinstance(value, tuple):
        return [repr(v) if isinstance(v, float) else str(v) for v in value]
    return [repr(value) if isinstance(value, float) else str(value)]


# Validation ------------------------------------------------------------------


def _validate(r: Request) -> None:
    """Value checks with messages that name the bad value."""
    if not r.prompts and not r.image_prompts:
        raise ValueError("empty prompt: give at least one text prompt (or an image prompt)")
    for prompt in (*r.prompts, *r.image_prompts):
        if not isinstance(prompt, Prompt):
            raise ValueError(f"prompts must be Prompt objects, not {prompt!r}")
        if not prompt.text or prompt.text != prompt.text.strip() or "|" in prompt.text:
            raise ValueError(f"prompt text {prompt.text!r} is empty, padded or contains `|`")
        if not math.isfinite(prompt.weight):
            raise ValueError(f"prompt {prompt.text!r} has weight {prompt.weight}")
    if r.timelapse is not None and not r.timelapse.lower().endswith(".gif"):
        raise ValueError(f"timelapse {r.timelapse!r}: the path must end in .gif")
    width, height = r.size
    for side, value in (("width", width), ("height", height)):
        _check_range(f"{side}", value, 16, MAX_SIDE, int)
    _check_range("iterations", r.iterations, 1, MAX_ITERATIONS, int)
    if r.seed is not None:
        _check_range("seed", r.seed, 0, MAX_SEED, int)
    _check_range("count", r.count, 1, MAX_COUNT, int)
    if r.seed is not None and r.seed + r.count - 1 > MAX_SEED:
        raise ValueError(f"seed {r.seed} leaves no room for {r.count} pictures' seeds")
    if r.index is not None:
        if r.count == 1:
            raise ValueError("--index picks one picture of a batch: give --count 2 or more")
        _check_range("index", r.index, 1, r.count, int)
    _check_range("lr", r.lr, 1e-6, 10.0, float)
    _check_choice("optimizer", r.optimizer, OPTIMIZERS)
    _check_range("cutn", r.cutn, 1, 256, int)
    _check_range("cut pow", r.cut_pow, 0.05, 10.0, float)
    for augment in r.augments:
        _check_choice("augmentation", augment, AUGMENTS)
    if len(set(r.augments)) != len(r.augments):
        raise ValueError(f"augmentations repeat: {','.join(r.augments)}")
    _check_range("init weight", r.init_weight, 0.0, 1e6, float)
    _check_choice("panorama", r.panorama, PANORAMAS)
    if r.anchors is not None:
        positive = sum(p.weight > 0 for p in r.prompts)
        if len(r.anchors) != positive:
            raise ValueError(
                f"--anchors gives {len(r.anchors)} position(s) for {positive} positive prompt(s)"
            )
        for anchor in r.anchors:
            _check_range("anchor", anchor, 0.0, 1.0, float)
        if any(b <= a for a, b in zip(r.anchors, r.anchors[1:], strict=False)):
            raise ValueError(f"--anchors must increase from left to right: {list(r.anchors)}")
    _check_range("mirror share", r.mirror, 0.0, 1.0, float)
    for name in ("semantic_weight", "tone_weight", "sobel_weight"):
        _check_range(name.replace("_", " "), getattr(r, name), 0.0, 1e3, float)
    _check_range("symmetry blur", r.symmetry_blur, 0.1, 64.0, float)
    _check_range("size emphasis", r.size_emphasis, -4.0, 4.0, float)
    if r.semantic_weight > 0 and r.mirror == 0:
        raise ValueError("semantic symmetry compares mirrored pairs: set --mirror above 0")
    if not r.vqgan:
        raise ValueError("model names must not be empty")
    if not isinstance(r.clip, str):
        raise ValueError(f"clip must be text such as {EXAMPLE!r}, not {r.clip!r}")
    parse_clips(r.clip)
    _check_device(r.device)
    _check_choice("precision", r.precision, PRECISIONS)
    _check_choice("compile mode", r.compile, COMPILE_MODES)
    _check_choice("kernels", r.kernels, KERNELS)
    _check_range("preview every", r.preview_every, 0, MAX_ITERATIONS, int)
    if not r.output:
        raise ValueError("output path must not be empty")


def _check_range(name: str, value: Any, low: float, high: float, kind: type) -> None:
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError(f"{name} must be a number, not {value!r}")
    if not (low <= value <= high):  # also false for NaN
        raise ValueError(f"{name} must be between {low:g} and {high:g}, not {value!r}")


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}: choose from {', '.join(choices)}")


def _check_device(device: str) -> None:
    kind, _, index = device.partition(":")
    if kind not in ("auto", "cpu", "cuda") or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")


# Command line ----------------------------------------------------------------


class UsageError(ValueError):
    """Required arguments are missing: the message, and what the command takes."""

    def __init__(self, message: str, usage: str, hint: str) -> None:
        super().__init__(message)
        self.usage = usage
        self.hint = hint


class RequestParser(argparse.ArgumentParser):
    """An ArgumentParser that raises ValueError instead of printing and exiting."""

    def error(self, message: str) -> Any:
        if message.startswith("the following arguments are required"):
            # Nothing given is a question, not a typo: answer with what the command takes
            # (for a command with sub-commands, the list of them with what each does).
            if self._subparsers:
                metavar = self._subparsers._group_actions[0].metavar
                hint = f"`{self.prog} {metavar} --help` shows what each takes"
                raise UsageError(message, self.format_help(), hint)
            hint = f"`{self.prog} --help` explains each option"
            raise UsageError(message, self.format_usage(), hint)
        raise ValueError(message)


def add_request_arguments(parser: argparse.ArgumentParser, *, positional: bool = True) -> None:
    """Add the prompts (unless `positional` is off) and every request option to a parser."""
    if positional:
        parser.add_argument("prompts", metavar="PROMPTS", help="prompts: `a | b:0.5 | c:-1`")
    for f in fields(Request)[1:]:
        spec = f.metadata
        flags = [spec["flag"]] + (["-o"] if f.name == "output" else [])
        shown = _render_value(f.name, f.default) if f.default not in (None, ()) else None
        help = spec["help"] + (f" (default: {' '.join(shown)})" if shown else "")
        parser.add_argument(*flags, dest=f.name, default=None, help=help, **spec["argparse"])


def request_from_args(
    args: argparse.Namespace, prompts: tuple[Prompt, ...] | None = None, base: Request | None = None
) -> Request:
    """Build a Request from parsed options; options not given keep `base`'s (or the defaults)."""
    changes: dict[str, Any] = {}
    for f in fields(Request)[1:]:
        value = getattr(args, f.name, None)
        if value is None:
            continue
        if f.name == "augments":
            value = tuple(a.strip() for a in value.split(",") if a.strip() and a.strip() != "none")
        elif f.name == "image_prompts":
            value = parse_prompts(value, what="image prompt")
        elif isinstance(value, list):
            value = tuple(value)
        changes[f.name] = value
    if prompts is None:
        prompts = parse_prompts(args.prompts)
    if base is None:
        return Request(prompts=prompts, **changes)
    return base.replace(prompts=prompts, **changes)


def output_path(request: Request) -> Path:
    return Path(request.output).expanduser()

"""Task files: runvqgan-style JSON in, a list of (Request, output) jobs out. Pure: no I/O.

A task file is a JSON object whose values are lists (a bare value means the same as a list
of one); `style` is the field that lists several values, one picture series each:

    {"text": ["A painting of a lighthouse|stormy:0.5"], "style": ["", "Banksy"],
     "iterations": [200], "out_file": ["lighthouse"], "out_folder": ["output"],
     "portrait": [false], "each": [2]}

expands into len(style) × each jobs (`count` paints them in batches: one job a picture
still, each naming its batch and index). A non-empty style makes the first prompt part
"<text> in the style of <style>"; `|part:weight` parts stay prompt parts. Doorways adds
optional fields: the generate options under their CLI names (`seed`, `lr`, `cutn`,
`mirror`, `semantic_symmetry`, `tone_symmetry`, `vqgan`, `clip`, …) and an entrance in
place of `text` (`realms`, `preset`, `door`, `modifiers`). Every value is checked against
`TaskLimits`; all problems are reported together in one TaskFileError.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from engine.clips import model_names
from engine.entrance import ENTRANCE_DEFAULTS, entrance_prompts, find_preset, realm_target
from engine.entrance import split_realms as split_entrance_realms
from engine.prompts import Prompt, parse_prompts, render_prompts
from engine.request import MAX_COUNT, MAX_SEED, Request

DEFAULT_OUTPUT_ROOT = Path("data/outputs")
DEFAULT_OUT_FOLDER = "output"
REGISTRY_PATH = resources.files("engine") / "data" / "models.json"  # package data
QUOTES = "\"'`“”‘’„‚«»"  # "The text must not contain quotation marks!" (runvqgan)
MAX_NAME = 100  # characters in out_file and in each out_folder part


@dataclass(frozen=True)
class TaskLimits:
    """What one task file may ask of this server (config [tasks] section)."""

    max_iterations: int = 6000  # optimisation steps per image
    max_each: int = 25  # repetitions per task file
    max_resolution: tuple[int, int] = (450, 300)  # landscape W×H; portrait is the same, turned
    max_images: int = 100  # images per task file: len(style) × each

    def __post_init__(self) -> None:
        for name in ("max_iterations", "max_each", "max_images"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"task limit {name} must be a whole number ≥ 1, not {value!r}")
        size = self.max_resolution
        if len(size) != 2 or not all(isinstance(s, int) and s >= 16 for s in size):
            raise ValueError(f"task limit max_resolution must be [W, H] ≥ 16 px, not {size!r}")


@dataclass(frozen=True)
class TaskJob:
    """One picture of a task file: its request (seed pinned) and where it goes."""

    index: int  # 0-based, style-major: style 1 × each, then style 2 × each, …
    request: Request  # request.output is out_folder/out_file.png (the call string's --output)
    folder: Path  # output root / out_folder
    out_file: str  # pictures are saved as folder/out_file_N.png, N the next free number
    style: str  # "" for none
    repetition: int  # 1-based, of `each`
    # The index of the first job of the batch this picture is painted in (`count`): its own
    # index when it is painted alone. A batch's request is `batch_request`; `request` is the
    # picture's own (`--count N --index I`), whose call string reproduces it.
    batch: int

    @property
    def output(self) -> Path:
        return self.folder / f"{self.out_file}.png"

    @property
    def batch_request(self) -> Request:
        """What the worker paints for this picture: its whole batch (itself when alone)."""
        return self.request.replace(index=None)

    @property
    def seed(self) -> int:
        """This picture's own seed (a batch's pictures have the batch's seed, +1, +2, …)."""
        assert self.request.seed is not None
        return self.request.seed + (self.request.index or 1) - 1

    def describe(self, total: int) -> str:
        """`image 3 of 10 (style "Banksy", repetition 1)`."""
        style = f'style "{self.style}"' if self.style else "no style"
        return f"image {self.index + 1} of {total} ({style}, repetition {self.repetition})"


class TaskFileError(ValueError):
    """A task file that cannot run; `problems` says each thing that is wrong, one per item."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


# Fields ---------------------------------------------------------------------------------

RUNVQGAN_FIELDS = ("text", "style", "iterations", "out_file", "out_folder", "portrait", "each",
                   "resolution")  # fmt: skip
BATCH_FIELDS = ("count",)  # pictures painted as one batch (engine/request.py --count)
ENTRANCE_FIELDS = ("realms", "preset", "door", "modifiers")
# Request fields a task file does not set under their own names: the runvqgan fields stand
# for size, iterations and output, the device is the runner's choice, and `count` batches
# the `each` repetitions (read apart from the request options; `index` follows from it).
_NOT_TASK_FIELDS = frozenset(
    {"prompts", "size", "iterations", "output", "device", "preview_every", "timelapse",
     "count", "index"}
)  # fmt: skip


def _request_fields() -> dict[str, dataclasses.Field[Any]]:
    """Doorways options by their task-file key: the CLI flag with `_` (`semantic_symmetry`)."""
    return {
        f.metadata["flag"].lstrip("-").replace("-", "_"): f
        for f in dataclasses.fields(Request)
        if f.name not in _NOT_TASK_FIELDS
    }


REQUEST_FIELDS = _request_fields()
KNOWN_FIELDS = (*RUNVQGAN_FIELDS, *BATCH_FIELDS, *ENTRANCE_FIELDS, *REQUEST_FIELDS)
_LIST_VALUED = frozenset({"resolution", "modifiers", "anchors", "augments"})
_IMAGE_FIELDS = ("init_image", "image_prompts")


@functools.cache
def _registry_models() -> dict[str, str]:
    """Registry model name → kind, read from engine/data/models.json (without importing torch)."""
    models = json.loads(REGISTRY_PATH.read_text(encoding="utf-8"))["models"]
    return {name: entry["kind"] for name, entry in models.items()}


def _model_problem(kind: str, value: str) -> str | None:
    """Why a task file's vqgan or clip (a list: `ViT-B/32,ViT-B/16:0.5`) is not for this
    server, or None: task files name registry models or tiny, never files."""
    try:
        names = model_names(value) if kind == "clip" else (value,)
    except ValueError as error:
        return f"clip: {error}"
    for name in names:
        if name != "tiny" and _registry_models().get(name) != kind:
            known = [n for n, k in _registry_models().items() if k == kind]
            return (
                f"{kind}: {name!r} is not a {kind.upper()} model of this server; task files "
                f"name registry models ({', '.join(known)}) or tiny"
            )
    return None


# Parsing ----------------------------------------------------------------------------------


def _trailing_comma(error: json.JSONDecodeError) -> json.JSONDecodeError | None:
    """The same error on every Python when the fault is a comma after the last item, placed
    at the comma (the commonest slip in hand-written JSON; Python 3.13 points at the comma
    and says "Illegal trailing comma", 3.11 and 3.12 point at the bracket after it and
    expect a value or a property name); None for any other fault."""
    doc, comma = error.doc, error.pos
    if doc[comma : comma + 1] != ",":
        comma = len(doc[:comma].rstrip()) - 1
    if comma < 0 or doc[comma] != "," or doc[comma + 1 :].lstrip()[:1] not in ("}", "]"):
        return None
    return json.JSONDecodeError("a comma after the last item (JSON allows none)", doc, comma)


def parse_task(text: str) -> dict[str, Any]:
    """The JSON object of a task file, or a TaskFileError saying where the JSON breaks."""
    try:
        data = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as error:
        error = _trailing_comma(error) or error
        raise TaskFileError(
            [f"not valid JSON: line {error.lineno}, column {error.colno}: {error.msg}"]
        ) from None
    if not isinstance(data, dict):
        raise TaskFileError(
            [f"a task file is one JSON object in curly braces {{...}}, not a {_json_type(data)}"]
        )
    return data


def expand_task(
    text: str,
    *,
    limits: TaskLimits | None = None,
    out_root: str | Path = DEFAULT_OUTPUT_ROOT,
    images_root: str | Path | None = None,
    defaults: Mapping[str, Any] | None = None,
    rng: random.Random | None = None,
) -> list[TaskJob]:
    """Parse one task file's text and expand it into its jobs, checking every limit.

    Parameters
    ----------
    text:
        The task file's contents (JSON).
    limits:
        This server's limits (default: TaskLimits()).
    out_root:
        The output root: `out_folder` is a folder under it, never a path out of it.
    images_root:
        Where `init_image` and `image_prompts` paths are looked up (the task file's folder);
        None refuses them (a task file uploaded to the bot cannot point at server files).
    defaults:
        Request fields for what the task file does not say (the runner's `vqgan`, `clip`).
    rng:
        Draws the seeds of repetitions that have none (default: the system's randomness).

    Returns the jobs in order: style-major, `each` repetitions per style, every repetition
    with its own seed, shared across styles (so styles compare at equal seeds).
    Raises TaskFileError (a ValueError) listing every problem found.
    """
    limits = limits or TaskLimits()
    task = parse_task(text)
    problems: list[str] = []
    values = _Values(task, problems)

    unknown = []
    for key in (key for key in task if key not in KNOWN_FIELDS):
        near = difflib.get_close_matches(key, KNOWN_FIELDS, n=1)
        unknown.append(f'"{key}"' + (f' (did you mean "{near[0]}"?)' if near else ""))
    if unknown:
        problems.append(
            f"unknown field(s) {', '.join(unknown)}; known fields: {', '.join(KNOWN_FIELDS)}"
        )

    # What to paint: a text, or an entrance.
    entrance = any(key in task for key in ("realms", "preset"))
    base = ENTRANCE_DEFAULTS if entrance else Request(prompts=(Prompt("task"),))
    prompts = _entrance_prompts(values, problems) if entrance else _text_prompts(values, problems)
    styles = values.strings("style", default=[""])
    for style in styles:
        _check_quotes("style", style, problems)

    iterations = values.one("iterations", int, default=base.iterations)
    if iterations is not None and not 1 <= iterations <= limits.max_iterations:
        problems.append(
            f"iterations: {iterations} is outside this server's limit of 1 to "
            f"{limits.max_iterations}"
        )
    each = values.one("each", int, default=1)
    if each is not None and not 1 <= each <= limits.max_each:
        problems.append(f"each: {each} is outside this server's limit of 1 to {limits.max_each}")
    if each is not None and styles and len(styles) * each > limits.max_images:
        problems.append(
            f"{len(styles)} style(s) × each {each} = {len(styles) * each} images; this server "
            f"makes at most {limits.max_images} per task file"
        )
    count = _count(values, each, problems)
    size = _size(values, limits, problems)

    out_file = values.one("out_file", str)
    if "out_file" not in task:
        problems.append('out_file is missing: the pictures\' name, e.g. "out_file": ["robot"]')
    elif out_file is not None:
        _check_name("out_file", out_file, problems, separators=False)
    out_folder = values.one("out_folder", str, default=DEFAULT_OUT_FOLDER)
    if out_folder is not None:
        _check_name("out_folder", out_folder, problems, separators=True)

    changes = {**(defaults or {}), **_request_options(values, images_root, problems)}
    seeds = _seeds(values, each, count or 1, rng, problems)
    if problems or prompts is None or each is None or seeds is None or count is None:
        raise TaskFileError(problems or ["the task file has no usable prompt"])
    assert out_file is not None and out_folder is not None and iterations is not None

    folder = Path(out_root) / PurePosixPath(out_folder)
    output = f"{out_folder}/{out_file}.png"  # the call string's --output: no server paths
    jobs: list[TaskJob] = []
    for style in styles:
        styled = _with_style(prompts, style, all_parts=entrance)
        first = len(jobs)  # the job index of this style's first repetition
        for repetition in range(1, each + 1):
            start = (repetition - 1) // count * count  # the batch's first repetition, 0-based
            pictures = min(count, each - start)
            batch = {"seed": seeds[start], "count": pictures}
            if pictures > 1:
                batch["index"] = repetition - start
            try:
                request = base.replace(
                    prompts=styled, size=size, iterations=iterations, output=output,
                    **changes, **batch,
                )  # fmt: skip
            except (ValueError, TypeError) as error:
                raise TaskFileError([str(error)]) from None
            jobs.append(
                TaskJob(len(jobs), request, folder, out_file, style, repetition, first + start)
            )
    return jobs


def batches(jobs: Sequence[TaskJob], indices: Sequence[int]) -> list[tuple[int, ...]]:
    """The job indices `indices` grouped by the batch they are painted in, in order."""
    grouped: dict[int, list[int]] = {}
    for index in indices:
        grouped.setdefault(jobs[index].batch, []).append(index)
    return [tuple(group) for group in grouped.values()]


def rebatch(jobs: Sequence[TaskJob], count: int) -> list[TaskJob]:
    """The jobs painted in batches of at most `count` (a server allows fewer pictures a
    batch than the file asks): each batch split in order, every picture keeping its seed —
    a batch's seeds follow on, so its parts' do too — and its request naming its new batch
    and index (a part of one picture is painted alone)."""
    if count < 1:
        raise ValueError(f"a batch has at least 1 picture, not {count}")
    split = []
    for group in batches(jobs, range(len(jobs))):
        for start in range(0, len(group), count):
            part = [jobs[i] for i in group[start : start + count]]
            for number, job in enumerate(part, start=1):
                request = job.request.replace(
                    seed=part[0].seed, count=len(part), index=number if len(part) > 1 else None
                )
                split.append(dataclasses.replace(job, request=request, batch=part[0].index))
    return split


def describe(jobs: Sequence[TaskJob], total: int) -> str:
    """`image 3 of 10 (style "Banksy", repetition 1)`, or for a batch
    `images 1-4 of 10 (no style, repetitions 1-4)`."""
    if len(jobs) == 1:
        return jobs[0].describe(total)
    first, last = jobs[0], jobs[-1]
    style = f'style "{first.style}"' if first.style else "no style"
    return (
        f"images {first.index + 1}-{last.index + 1} of {total} "
        f"({style}, repetitions {first.repetition}-{last.repetition})"
    )


class _Values:
    """Reads task fields: every value a list of one, or a bare value meaning the same."""

    def __init__(self, task: Mapping[str, Any], problems: list[str]) -> None:
        self.task, self.problems = task, problems

    def one(self, key: str, kind: type, default: Any = None) -> Any:
        """The single value of `key` (a list of one, or bare), of type `kind` (int/float/
        str/bool), or `default` when absent; None (and a problem) when it is wrong."""
        if key not in self.task:
            return default
        value = self.task[key]
        if isinstance(value, list):
            if len(value) != 1:
                several = "several values" if value else "no value"
                self.problems.append(
                    f"{key}: {several} in {json.dumps(value)}; give one, e.g. "
                    f'"{key}": [{json.dumps(value[0]) if value else "…"}] (only style lists '
                    "several: write one task file per value)"
                )
                return None
            value = value[0]
        return self._typed(key, value, kind)

    def many(self, key: str, kind: type, default: Any = None) -> list[Any] | None:
        """A list-valued field ([a, b], or [[a, b]]); a bare value is a list of one."""
        if key not in self.task:
            return default
        value = self.task[key]
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
            value = value[0]
        items = value if isinstance(value, list) else [value]
        typed = [self._typed(key, item, kind) for item in items]
        return None if any(item is None for item in typed) else typed

    def strings(self, key: str, default: list[str]) -> list[str]:
        values = self.many(key, str, default=default)
        if values is not None and not values:
            self.problems.append(f'{key}: the list is empty; write [""] for none')
        return values or []

    def _typed(self, key: str, value: Any, kind: type) -> Any:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if kind is int and isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return value
        wanted = {int: "a whole number", float: "a number", str: "a text in quotes",
                  bool: "true or false"}[kind]  # fmt: skip
        self.problems.append(f"{key}: {json.dumps(value)} is not {wanted}")
        return None


def _json_type(value: Any) -> str:
    return {list: "list", str: "text", bool: "true/false", type(None): "null"}.get(
        type(value), "number"
    )


def _check_quotes(key: str, text: str, problems: list[str]) -> None:
    found = list(dict.fromkeys(c for c in text if c in QUOTES))  # in order of appearance
    if found:
        problems.append(
            f"{key}: must not contain quotation marks (found {' '.join(found)}): {text!r}"
        )


def _text_prompts(values: _Values, problems: list[str]) -> tuple[Prompt, ...] | None:
    """`text` (one prompt, maybe with `|part:weight` parts) → prompts."""
    for key in ("door", "modifiers"):
        if key in values.task:
            problems.append(f"{key} belongs to an entrance: give realms (or a preset), not text")
    if "text" not in values.task:
        problems.append(
            'text is missing: what to paint, e.g. "text": ["A painting of a lighthouse"] '
            '(or "realms": ["heaven | hell"] for an entrance)'
        )
        return None
    text = values.one("text", str)
    if text is None:
        return None
    _check_quotes("text", text, problems)
    try:
        prompts = parse_prompts(text, what="text")
    except ValueError as error:
        problems.append(f"text: {error}")
        return None
    if not prompts:
        problems.append("text is empty: say what to paint")
        return None
    return prompts


def _entrance_prompts(values: _Values, problems: list[str]) -> tuple[Prompt, ...] | None:
    """`realms` ("heaven | hell") or `preset`, with `door` and `modifiers` → realm prompts."""
    if "text" in values.task:
        problems.append("give text or an entrance (realms or preset), not both")
    if "realms" in values.task and "preset" in values.task:
        problems.append("give realms or a preset, not both")
        return None
    door = values.one("door", str, default="entrance")
    modifiers = values.many("modifiers", str, default=[])
    for key, value in (("door", door), *(("modifiers", m) for m in modifiers or [])):
        if value is not None:
            _check_quotes(key, value, problems)
    try:
        if "preset" in values.task:
            preset = values.one("preset", str)
            if preset is None:
                return None
            targets = list(find_preset(preset).targets)
        else:
            realms = values.one("realms", str)
            if realms is None:
                return None
            _check_quotes("realms", realms, problems)
            targets = [realm_target(subject) for subject in split_entrance_realms(realms)]
        if door is None or modifiers is None:
            return None
        return entrance_prompts(targets, door, style="", modifiers=modifiers)
    except ValueError as error:
        problems.append(str(error))
        return None


def _with_style(prompts: tuple[Prompt, ...], style: str, *, all_parts: bool) -> tuple[Prompt, ...]:
    """`<text> in the style of <style>` for the first part (or every realm of an entrance)."""
    style = " ".join(style.split())
    if not style:
        return prompts
    return tuple(
        Prompt(f"{p.text} in the style of {style}", p.weight) if all_parts or i == 0 else p
        for i, p in enumerate(prompts)
    )


def _size(values: _Values, limits: TaskLimits, problems: list[str]) -> tuple[int, int]:
    """(W, H) from `resolution` turned to `portrait`'s orientation; by default runvqgan's
    450×300, or the server's limit where that is smaller."""
    portrait = values.one("portrait", bool, default=False)
    limit_short, limit_long = sorted(limits.max_resolution)
    default = [min(450, limit_long), min(300, limit_short)]
    resolution = values.many("resolution", int, default=default)
    if resolution is None:
        return (450, 300)
    if len(resolution) != 2:
        problems.append(f"resolution: give two numbers [W, H], not {json.dumps(resolution)}")
        return (450, 300)
    short, long = sorted(resolution)
    width, height = (short, long) if portrait else (long, short)
    if short < 16:
        problems.append(f"resolution: {width}×{height} is too small (at least 16 px a side)")
    if long > limit_long or short > limit_short:
        problems.append(
            f"resolution: {width}×{height} is larger than this server's limit of "
            f"{limit_long}×{limit_short} ({limit_short}×{limit_long} in portrait)"
        )
    return (width, height)


def _check_name(key: str, name: str, problems: list[str], *, separators: bool) -> None:
    """A name under the output root: no absolute path, no `..`, no hidden or odd parts."""
    what = f"{key}: {name!r}"
    if not name.strip():
        problems.append(f"{key} is empty")
    elif "\\" in name or any(ord(c) < 32 for c in name):
        problems.append(f"{what} must not contain backslashes or control characters")
    elif name.startswith(("/", "~")) or (len(name) > 1 and name[1] == ":"):
        problems.append(f"{what} must be a name under the output folder, not an absolute path")
    elif not separators and "/" in name:
        problems.append(f"{what} must be a file name without / (put folders in out_folder)")
    else:
        parts = name.split("/")
        if ".." in parts:
            problems.append(f"{what} must not contain .. (it would leave the output folder)")
        elif any(not p or p != p.strip() or p.startswith(".") for p in parts):
            problems.append(f"{what} has an empty, padded or hidden (.name) part")
        elif any(len(p) > MAX_NAME for p in parts):
            problems.append(f"{what} is too long (at most {MAX_NAME} characters a name)")


def _request_options(
    values: _Values, images_root: str | Path | None, problems: list[str]
) -> dict[str, Any]:
    """The Doorways options the task file sets, as Request fields."""
    changes: dict[str, Any] = {}
    for key, f in REQUEST_FIELDS.items():
        if key not in values.task or key == "seed":
            continue
        spec = f.metadata["argparse"]
        kind = spec.get("type", str)
        if key in _LIST_VALUED:
            items = values.many(key, kind)
            if items is None:
                continue
            if key == "augments":  # ["affine", "noise"] or "affine,noise"
                items = [a.strip() for item in items for a in item.split(",") if a.strip()]
                items = [a for a in items if a != "none"]
            value: Any = tuple(items)
        else:
            value = values.one(key, kind)
            if value is None:
                continue
        if key in ("vqgan", "clip") and (problem := _model_problem(key, value)):
            problems.append(problem)
            continue
        if key in _IMAGE_FIELDS:
            value = _image_paths(key, value, images_root, problems)
            if value is None:
                continue
        changes[f.name] = value
    return changes


def _image_paths(key: str, value: str, images_root: str | Path | None, problems: list[str]) -> Any:
    """init_image / image_prompts paths, relative to the task file's folder and inside it."""
    if images_root is None:
        problems.append(f"{key}: this task file cannot refer to image files")
        return None
    try:
        prompts = parse_prompts(value, what=key.replace("_", " "))
    except ValueError as error:
        problems.append(f"{key}: {error}")
        return None
    before = len(problems)
    for prompt in prompts:
        _check_name(key, prompt.text, problems, separators=True)
    if len(problems) > before:
        return None
    located = tuple(
        Prompt(str(Path(images_root) / PurePosixPath(p.text)), p.weight) for p in prompts
    )
    if key == "init_image":
        if len(located) != 1 or located[0].weight != 1.0:
            problems.append(f"{key}: one image file, not {value!r}")
            return None
        return located[0].text
    return located


def _count(values: _Values, each: int | None, problems: list[str]) -> int | None:
    """`count`: how many repetitions are painted as one batch (1 to MAX_COUNT, at most
    `each`); the last batch takes what is left over."""
    count = values.one("count", int, default=1)
    if count is None:
        return None
    if not 1 <= count <= MAX_COUNT:
        problems.append(f"count: {count} pictures a batch; give 1 to {MAX_COUNT}")
        return None
    if each is not None and count > each:
        problems.append(
            f"count: {count} pictures a batch, but each paints only {each}: "
            f"give count 1 to {each} (or raise each)"
        )
        return None
    return count


def _seeds(
    values: _Values, each: int | None, count: int, rng: random.Random | None, problems: list[str]
) -> list[int] | None:
    """One seed per repetition: `seed` s gives s, s+1, …; a list of `each` gives them all;
    none drawn at random (the call string pins them). A batch of `count` paints seeds s,
    s+1, … (engine/request.py), so a batch's seeds follow on: drawn one per batch, and a
    list must say so."""
    if each is None:
        return None
    if "seed" not in values.task:
        rng = rng or random.SystemRandom()
        drawn = [rng.randint(0, 2**32 - 1) for _ in range(0, each, count)]
        return [drawn[r // count] + r % count for r in range(each)]
    seeds = values.many("seed", int)
    if seeds is None:
        return None
    if len(seeds) == 1:
        seeds = [seeds[0] + r for r in range(each)]
    elif len(seeds) != each:
        problems.append(f"seed: give one seed, or one for each of the {each} repetitions")
        return None
    if len(set(seeds)) != len(seeds):
        problems.append(f"seed: the repetitions need different seeds, not {seeds}")
    if any(not 0 <= s <= MAX_SEED for s in seeds):
        problems.append(f"seed: seeds are whole numbers from 0 to {MAX_SEED}")
    for start in range(0, each, count):
        batch = seeds[start : start + count]
        if batch != list(range(batch[0], batch[0] + len(batch))):
            problems.append(
                f"seed: a batch of count {count} paints seeds that follow on (s, s+1, …); "
                f"repetitions {start + 1}-{start + len(batch)} have {batch}"
            )
    return seeds


def task_summary(jobs: Sequence[TaskJob]) -> str:
    """`6 images: 2 styles × each 3, 450×300, 200 iterations, into data/outputs/output`
    (`… × each 8 in batches of 4, …` with a count)."""
    if not jobs:
        return "no images"
    first = jobs[0].request
    styles = len({job.style for job in jobs})
    width, height = first.size
    batched = f" in batches of {first.count}" if first.count > 1 else ""
    return (
        f"{len(jobs)} image(s): {styles} style(s) × each {len(jobs) // styles}{batched}, "
        f"{width}×{height}, {first.iterations} iterations, "
        f"{render_prompts(first.prompts)!r} into {jobs[0].folder}"
    )

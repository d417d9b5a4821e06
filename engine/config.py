"""The engine's configuration file: where task outputs go and what task files may ask.

A TOML file (`--config FILE`); only its `[tasks]` table is read here, so the same file also
holds the bot's sections (`doorways-bot --config FILE` reads those, and hands its `[tasks]`
table to `tasks_config` below, so both programs check it the same way):

    [tasks]
    output_root = "/srv/doorways/outputs"   # out_folder names are folders under it
    max_iterations = 6000                   # per image
    max_each = 25                           # repetitions per task file
    max_resolution = [450, 300]             # landscape W×H; portrait is the same turned
    max_images = 100                        # images per task file (styles × each)
    folder = "/srv/doorways/tasks"          # the bot's task folder (/nightly run)
    run_at = "23:00"                        # the bot runs it daily then (off without it)

`folder` and `run_at` are for `doorways-bot`, which then runs the folder through its own
worker; `doorways tasks run FOLDER` (the systemd timer) names its folder itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.taskfile import DEFAULT_OUTPUT_ROOT, TaskLimits

# (key, default as TOML, meaning): the keys of [tasks], for --help, the docs and the checks.
TASKS_KEYS: tuple[tuple[str, str, str], ...] = (
    ("output_root", f'"{DEFAULT_OUTPUT_ROOT}"', "task outputs: out_folder is a folder under it"),
    ("max_iterations", "6000", "iterations per picture a task file may ask"),
    ("max_each", "25", "repetitions (each) per task file"),
    ("max_resolution", "[450, 300]", "the largest landscape W×H; portrait is the same turned"),
    ("max_images", "100", "pictures per task file (styles × each)"),
    ("folder", "-", "doorways-bot: the task folder it runs (/nightly run; at run_at if set)"),
    (
        "run_at",
        "-",
        'doorways-bot: run the folder every day at this local time, "HH:MM", through the '
        "bot's own worker (use this or the systemd timer, not both); without it, only on "
        "/nightly run",
    ),
)


@dataclass(frozen=True)
class TasksConfig:
    """The `[tasks]` table."""

    output_root: Path = DEFAULT_OUTPUT_ROOT
    limits: TaskLimits = field(default_factory=TaskLimits)
    folder: Path | None = None  # the bot's task folder
    run_at: dt.time | None = None  # the bot runs `folder` daily at this local time


def load_config(path: str | Path | None) -> TasksConfig:
    """Read `path` (None: the defaults); a bad or unknown key is a ValueError naming it.
    Other tables (the bot's `[discord]`, `[limits]`, …) are not this reader's business."""
    if path is None:
        return TasksConfig()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read config file {path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path} is not valid TOML: {error}") from None
    table = data.get("tasks", {})
    if not isinstance(table, dict):
        raise ValueError(f"{path}: tasks must be a [tasks] table")
    return tasks_config(table, where=str(path))


def tasks_config(table: Mapping[str, Any], where: str | None = None) -> TasksConfig:
    """The `[tasks]` table as a TasksConfig; a ValueError names the bad or unknown key
    (prefixed with `where`, the file, when given)."""
    prefix = f"{where}: " if where else ""
    limit_names = [f.name for f in dataclasses.fields(TaskLimits)]
    known = [key for key, _, _ in TASKS_KEYS]
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ValueError(
            f"{prefix}unknown setting(s) tasks.{', tasks.'.join(unknown)} "
            f"(known: {', '.join('tasks.' + key for key in known)})"
        )
    root = table.get("output_root", str(DEFAULT_OUTPUT_ROOT))
    if not isinstance(root, str) or not root:
        raise ValueError(f"{prefix}tasks.output_root must be a path in quotes, not {root!r}")
    limits: dict[str, Any] = {name: table[name] for name in limit_names if name in table}
    if "max_resolution" in limits:
        size = limits["max_resolution"]
        if not isinstance(size, list) or len(size) != 2:
            raise ValueError(f"{prefix}tasks.max_resolution must be [W, H], not {size!r}")
        limits["max_resolution"] = tuple(size)
    try:
        task_limits = TaskLimits(**limits)
    except ValueError as error:
        raise ValueError(f"{prefix}tasks.{error.args[0].removeprefix('task limit ')}") from None
    folder = table.get("folder")
    if folder is not None and (not isinstance(folder, str) or not folder):
        raise ValueError(f"{prefix}tasks.folder must be a path in quotes, not {folder!r}")
    run_at = _time(table.get("run_at"), prefix)
    if run_at is not None and folder is None:
        raise ValueError(f"{prefix}tasks.run_at needs tasks.folder: the folder to run")
    return TasksConfig(
        Path(root).expanduser(),
        task_limits,
        folder=None if folder is None else Path(folder).expanduser(),
        run_at=run_at,
    )


def parse_hhmm(text: str) -> dt.time | None:
    """`23:00` or `7:05` (24-hour clock) → that time; None if `text` is not such a time."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        return None
    return dt.time(int(match[1]), int(match[2]))


def _time(value: Any, prefix: str) -> dt.time | None:
    """`run_at`: "23:00" (or a TOML time, 23:00:00) → 23:00; None stays None."""
    if value is None:
        return None
    if isinstance(value, dt.time) and value.tzinfo is None:
        return value.replace(second=0, microsecond=0)
    at = parse_hhmm(value) if isinstance(value, str) else None
    if at is None:
        raise ValueError(
            f'{prefix}tasks.run_at must be a time as "HH:MM" on the 24-hour clock, e.g. '
            f'"23:00", not {value!r}'
        )
    return at

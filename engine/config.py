"""The engine's configuration file: where task outputs go and what task files may ask.

A TOML file (`--config FILE`); only its `[tasks]` table is read here, so one file can
also hold other programs' sections:

    [tasks]
    output_root = "/srv/doorways/outputs"   # out_folder names are folders under it
    max_iterations = 6000                   # per image
    max_each = 25                           # repetitions per task file
    max_resolution = [450, 300]             # landscape W×H; portrait is the same turned
    max_images = 100                        # images per task file (styles × each)
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.taskfile import DEFAULT_OUTPUT_ROOT, TaskLimits


@dataclass(frozen=True)
class TasksConfig:
    """The `[tasks]` table."""

    output_root: Path = DEFAULT_OUTPUT_ROOT
    limits: TaskLimits = field(default_factory=TaskLimits)


def load_config(path: str | Path | None) -> TasksConfig:
    """Read `path` (None: the defaults); a bad or unknown key is a ValueError naming it."""
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
    return _from_table(table, where=str(path))


def _from_table(table: dict[str, Any], where: str) -> TasksConfig:
    limit_names = [f.name for f in dataclasses.fields(TaskLimits)]
    known = ["output_root", *limit_names]
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ValueError(
            f"{where}: unknown setting(s) tasks.{', tasks.'.join(unknown)} "
            f"(known: {', '.join(known)})"
        )
    root = table.get("output_root", str(DEFAULT_OUTPUT_ROOT))
    if not isinstance(root, str) or not root:
        raise ValueError(f"{where}: tasks.output_root must be a path in quotes, not {root!r}")
    limits: dict[str, Any] = {name: table[name] for name in limit_names if name in table}
    if "max_resolution" in limits:
        size = limits["max_resolution"]
        if not isinstance(size, list) or len(size) != 2:
            raise ValueError(f"{where}: tasks.max_resolution must be [W, H], not {size!r}")
        limits["max_resolution"] = tuple(size)
    try:
        return TasksConfig(Path(root).expanduser(), TaskLimits(**limits))
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None

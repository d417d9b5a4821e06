"""The bot's settings: one typed dataclass, read from a TOML file and the environment.

Every key lives in the `[section]` named before its dot (`limits.daily_images` is
`daily_images` under `[limits]`). The environment overrides the file for the keys that have a
variable (`DISCORD_TOKEN`, `DISCORD_API_BASE`, `DISCORD_GATEWAY_URL`), and the command line
overrides both. A bad value is a `SettingsError` that names the key; so is an unknown key
(a typo must not pass silently).

The same file serves `doorways tasks run --config FILE`: its `[tasks]` table (the task-file
limits and output root) is read by the engine's reader (engine.config), here as there, so a
typo in it is the same clear error from both programs.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.clips import EXAMPLE as CLIP_EXAMPLE
from engine.clips import parse_clips
from engine.config import TASKS_KEYS, TasksConfig, tasks_config
from engine.request import (
    COMPILE_MODES,
    DEFAULT_CLIP,
    DEFAULT_VQGAN,
    KERNELS,
    MAX_COUNT,
    MAX_SIDE,
    PRECISIONS,
)
from engine.worker.cluster import RAY_CLIENT_REFUSED
from engine.worker.pool import check_devices, is_device

HARD_MAX_ITERATIONS = 6000  # no configuration runs a job longer than this
CONFIG_ENV = "DOORWAYS_BOT_CONFIG"  # the config file when --config is not given


class SettingsError(ValueError):
    """A setting is missing, unknown or has a bad value; the message names the key."""


def _key(
    name: str,
    help: str,
    env: str | None = None,
    flag: str | None = None,
    unset: str = "-",
    expected: str | None = None,
) -> Any:
    """Field metadata: the TOML key, its help line, the variable / flag that override it,
    how --help shows a default of None, and what a value of the wrong type is told."""
    return {
        "key": name, "help": help, "env": env, "flag": flag, "unset": unset, "expected": expected
    }  # fmt: skip


@dataclass(frozen=True)
class RoleLimits:
    """Limits for members of one role; None keeps the general limit."""

    daily_images: int | None = None
    max_pending: int | None = None
    max_iterations: int | None = None
    max_size: tuple[int, int] | None = None
    max_prompt_length: int | None = None


@dataclass(frozen=True)
class Settings:
    """Everything the bot process is told. Defaults suit one consumer GPU."""

    # Discord
    token: str | None = field(
        default=None,
        metadata=_key(
            "discord.token", "the bot token (better kept in the environment)", env="DISCORD_TOKEN"
        ),
    )
    api_base: str | None = field(
        default=None,
        metadata=_key(
            "discord.api_base",
            "REST base instead of Discord's, e.g. http://127.0.0.1:8080/api/v10 "
            "(a rate-limit proxy, or a fake Discord)",
            env="DISCORD_API_BASE",
        ),
    )
    gateway_url: str | None = field(
        default=None,
        metadata=_key(
            "discord.gateway_url",
            "gateway websocket instead of Discord's, e.g. ws://127.0.0.1:8080/",
            env="DISCORD_GATEWAY_URL",
        ),
    )
    guild: int | None = field(
        default=None,
        metadata=_key(
            "discord.guild",
            "sync the commands to this guild (server) id at start-up, where they appear at "
            "once; without it they are synced globally",
            flag="--guild",
        ),
    )
    home_guild: int | None = field(
        default=None,
        metadata=_key(
            "discord.home_guild",
            "the operator's own server (id): its admins may, like the bot's owner, pause and "
            "resume every server (/admin pause everywhere) and run the task folder "
            "(/nightly run); other servers' admins act on their own server only",
        ),
    )
    allowed_channels: tuple[int | str, ...] = field(
        default=(),
        metadata=_key(
            "discord.allowed_channels",
            "channel ids or names where painting commands work; empty: every channel",
        ),
    )
    admin_roles: tuple[int | str, ...] = field(
        default=(),
        metadata=_key(
            "discord.admin_roles",
            "role ids or names whose members may use /admin and delete or cancel anyone's "
            "jobs; members with Manage Server may always",
        ),
    )
    guild_ready_timeout: float = field(
        default=2.0,
        metadata=_key(
            "discord.guild_ready_timeout", "seconds to wait for the guilds before on_ready"
        ),
    )
    # Storage
    database: Path = field(
        default=Path("data/doorways.sqlite3"),
        metadata=_key("storage.database", "the SQLite job database", flag="--db"),
    )
    outputs: Path = field(
        default=Path("data/outputs/bot"),
        metadata=_key("storage.outputs", "folder for the finished PNGs and their call strings"),
    )
    # Engine
    vqgan: str = field(
        default=DEFAULT_VQGAN,
        metadata=_key(
            "engine.vqgan", "VQGAN: registry name, tiny, random:NAME or a path", flag="--vqgan"
        ),
    )
    clip: str = field(
        default=DEFAULT_CLIP,
        metadata=_key(
            "engine.clip",
            "CLIP: registry name, tiny, random:NAME or a path; several guide together as one "
            f'string, a comma-separated list with a weight each ("{CLIP_EXAMPLE}")',
            flag="--clip",
            expected=f'one string such as "{CLIP_EXAMPLE}" (several models: commas, not a list)',
        ),
    )
    device: str = field(
        default="auto",
        metadata=_key("engine.device", "worker device: auto, cpu, cuda or cuda:N", flag="--device"),
    )
    devices: tuple[str, ...] = field(
        default=(),
        metadata=_key(
            "engine.devices",
            "one worker process per device, each with its own models: a list such as "
            '["cuda:0", "cuda:1"], or "all" for every GPU torch sees here (--devices takes '
            "cuda:0,cuda:1 or all); empty: one worker on engine.device",
            flag="--devices",
        ),
    )
    cluster: str | None = field(
        default=None,
        metadata=_key(
            "engine.cluster",
            "paint on every GPU of a Ray cluster, one Ray actor per GPU (needs "
            "pip install 'doorways[ray]'): auto (the cluster this machine belongs to, e.g. "
            "the head started here with ray start --head) or HEAD:6379; unset: paint on "
            "this machine",
            flag="--cluster",
        ),
    )
    cutn: int = field(
        default=32, metadata=_key("engine.cutn", "cutouts per step for every job (1-256)")
    )
    precision: str = field(
        default="auto",
        metadata=_key(
            "engine.precision",
            "arithmetic for every job: auto (bf16 on GPUs that have it, else fp32), fp32, "
            "bf16 or fp16",
        ),
    )
    compile: str = field(
        default="off",
        metadata=_key(
            "engine.compile",
            "torch.compile mode for every job: off, default, reduce-overhead or max-autotune "
            "(a minute or more of compiling per picture size, then faster steps)",
        ),
    )
    kernels: str = field(
        default="fast",
        metadata=_key(
            "engine.kernels",
            "fast, or deterministic for every job: the same pixels every time a call string is "
            "painted on the same GPU and software, at about 1.5× the time per iteration",
        ),
    )
    threads: int = field(
        default=0,
        metadata=_key("engine.threads", "torch CPU threads in the worker; 0: torch's default"),
    )
    preload: bool = field(
        default=True,
        metadata=_key("engine.preload", "load the models when the worker starts"),
    )
    # Limits
    daily_images: int = field(
        default=25,
        metadata=_key("limits.daily_images", "images per user per day (the day starts 00:00 UTC)"),
    )
    max_pending: int = field(
        default=3, metadata=_key("limits.max_pending", "queued or running jobs per user")
    )
    max_iterations: int = field(
        default=1000,
        metadata=_key(
            "limits.max_iterations",
            f"iterations per job; more is clamped to this (hard maximum {HARD_MAX_ITERATIONS})",
        ),
    )
    max_count: int = field(
        default=MAX_COUNT,
        metadata=_key(
            "limits.max_count",
            f"pictures one command paints as a grid (its `count`), 1-{MAX_COUNT}; more is "
            "clamped to this",
        ),
    )
    max_size: tuple[int, int] | None = field(
        default=None,
        metadata=_key(
            "limits.max_size",
            "[W, H]: the largest picture area (W×H pixels, any aspect); bigger requests are "
            'scaled down. Unset or "auto": the largest that fits the worker\'s GPU memory '
            "(450×300 on a CPU)",
            unset='"auto"',
        ),
    )
    max_prompt_length: int = field(
        default=350, metadata=_key("limits.max_prompt_length", "characters in a prompt")
    )
    unlimited_roles: tuple[int | str, ...] = field(
        default=(),
        metadata=_key(
            "limits.unlimited_roles", "role ids or names whose members have no limits at all"
        ),
    )
    role_limits: Mapping[str, RoleLimits] = field(
        default_factory=dict,
        metadata=_key(
            "limits.roles",
            'tables of limits for a role (id or name): [limits.roles."Patron"] daily_images = '
            "100; a member gets the most generous value of their roles",
        ),
    )
    # Progress
    edit_interval: float = field(
        default=3.0,
        metadata=_key("progress.edit_interval", "seconds between two edits of a status message"),
    )
    global_edits: int = field(
        default=10,
        metadata=_key(
            "progress.global_edits", "at most this many status edits in all channels together..."
        ),
    )
    global_period: float = field(
        default=5.0, metadata=_key("progress.global_period", "...within this many seconds")
    )
    preview_every: int = field(
        default=50,
        metadata=_key("progress.preview_every", "attach a preview every N iterations (0: never)"),
    )
    timelapse: bool = field(
        default=True,
        metadata=_key(
            "progress.timelapse",
            "keep a timelapse GIF of each painting beside its PNG; the result's 🎞 button posts it",
        ),
    )
    seconds_per_iteration: float = field(
        default=0.5,
        metadata=_key(
            "progress.seconds_per_iteration",
            "the wait estimate per iteration until jobs have been timed here",
        ),
    )

    # Playground (what `doorways-bot` starts when it has no token)
    playground_host: str = field(
        default="127.0.0.1",
        metadata=_key(
            "playground.host",
            "where the local playground page listens when no token is set: loopback, or "
            "0.0.0.0 (every interface, with a warning)",
            flag="--playground-host",
        ),
    )
    playground_port: int = field(
        default=8765,
        metadata=_key(
            "playground.port", "the local playground page's port", flag="--playground-port"
        ),
    )

    # Task files ([tasks], shared with `doorways tasks`: read and checked by engine.config)
    tasks: TasksConfig = field(
        default_factory=TasksConfig,
        metadata=_key("tasks", "the [tasks] table: task-file limits and the output root"),
    )

    def __post_init__(self) -> None:
        _validate(self)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def engine_fields(self) -> dict[str, Any]:
        """The request fields the operator decides for every job."""
        return {
            "vqgan": self.vqgan,
            "clip": self.clip,
            "cutn": self.cutn,
            "precision": self.precision,
            "compile": self.compile,
            "kernels": self.kernels,
            "preview_every": self.preview_every,
            # The worker keeps a timelapse beside the PNG, under its name, for any path.
            "timelapse": "timelapse.gif" if self.timelapse else None,
        }

    @property
    def max_area(self) -> int | None:
        """The configured size cap in pixels; None: follow the GPU (bot.quota.Policy)."""
        return None if self.max_size is None else self.max_size[0] * self.max_size[1]


# Reading ---------------------------------------------------------------------------------------


def load_settings(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Settings from the TOML file at `path` (if any), then `env`, then `overrides` (the
    command line: field names to values, None meaning not given)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingsError(f"config file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise SettingsError(f"cannot read config file {path}: {error}") from None
        except tomllib.TOMLDecodeError as error:
            raise SettingsError(f"{path} is not valid TOML: {error}") from None
        values.update(_from_toml(data))
    for f in fields(Settings):
        name = f.metadata["env"]
        if name and env.get(name):
            values[f.name] = _convert(f, env[name], where=name)
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _convert(_FIELDS[name], value, where=_FIELDS[name].metadata["flag"])
    try:
        return Settings(**values)
    except SettingsError:
        raise
    except (TypeError, ValueError) as error:
        raise SettingsError(str(error)) from None


def describe_settings() -> list[tuple[str, str, str, str]]:
    """(key, default, env variable or flag, help) for every setting: --help and docs."""
    rows = []
    for f in fields(Settings):
        if f.name == "tasks":
            rows += [(f"tasks.{key}", shown, "", help) for key, shown, help in TASKS_KEYS]
            continue
        default = f.default if f.default is not dataclasses.MISSING else {}
        if isinstance(default, tuple):
            items = (f'"{v}"' if isinstance(v, str) else str(v) for v in default)
            shown = "[" + ", ".join(items) + "]"
        elif isinstance(default, bool):
            shown = str(default).lower()
        elif default is None:
            shown = f.metadata["unset"]
        elif isinstance(default, str | Path):
            shown = f'"{default}"'
        else:
            shown = str(default) if default != {} else "{}"
        also = " ".join(x for x in (f.metadata["env"], f.metadata["flag"]) if x)
        rows.append((f.metadata["key"], shown, also, f.metadata["help"]))
    return rows


_FIELDS = {f.name: f for f in fields(Settings)}
_BY_KEY = {f.metadata["key"]: f for f in fields(Settings)}
_ROLE_KEYS = {f.name for f in fields(RoleLimits)}


def _from_toml(data: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for section, table in data.items():
        if not isinstance(table, dict):
            raise SettingsError(f"{section}: expected a [{section}] table, not a value")
        if section == "tasks":  # the engine's table: its reader checks it
            try:
                values["tasks"] = tasks_config(table)
            except ValueError as error:
                raise SettingsError(str(error)) from None
            continue
        for name, raw in table.items():
            key = f"{section}.{name}"
            if key == "limits.roles":
                values["role_limits"] = _role_limits(raw)
                continue
            f = _BY_KEY.get(key)
            if f is None:
                known = ", ".join(k for k in _BY_KEY if k.startswith(section + ".")) or (
                    "sections: " + ", ".join(sorted({k.split(".")[0] for k in _BY_KEY}))
                )
                raise SettingsError(f"unknown setting {key} (known: {known})")
            values[f.name] = _convert(f, raw, where=key)
    return values


def _role_limits(raw: Any) -> dict[str, RoleLimits]:
    if not isinstance(raw, dict):
        raise SettingsError('limits.roles: expected tables such as [limits.roles."Patron"]')
    roles = {}
    for role, table in raw.items():
        where = f"limits.roles.{role}"
        if not isinstance(table, dict):
            raise SettingsError(f"{where}: expected a table of limits")
        unknown = sorted(set(table) - _ROLE_KEYS)
        if unknown:
            raise SettingsError(
                f"{where}: unknown limit(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(_ROLE_KEYS))})"
            )
        converted = {
            name: _convert(_FIELDS[name], value, where=f"{where}.{name}")
            for name, value in table.items()
        }
        limits = RoleLimits(**converted)
        _validate_limits(limits, where + ".")
        roles[str(role)] = limits
    return roles


def _convert(f: dataclasses.Field[Any], raw: Any, *, where: str | None) -> Any:
    """A raw TOML / environment / flag value as the field's type; errors name `where`."""
    kind = str(f.type)
    where = where or f.name
    text = isinstance(raw, str)
    try:
        if kind in ("str | None", "str"):
            if not isinstance(raw, str):
                raise TypeError(f.metadata["expected"] or "a string")
            if kind == "str | None":
                return raw.strip() or None
            return raw
        if kind == "int | None":
            if raw in ("", 0, "0"):
                return None
            return _int(raw)
        if kind == "int":
            return _int(raw)
        if kind == "float":
            if isinstance(raw, bool) or not (isinstance(raw, int | float) or text):
                raise TypeError("a number")
            return float(raw)
        if kind == "bool":
            if not isinstance(raw, bool):
                raise TypeError("true or false")
            return raw
        if kind == "Path":
            if not isinstance(raw, str | Path) or not str(raw):
                raise TypeError("a path")
            return Path(raw).expanduser()
        if kind in ("tuple[int, int]", "tuple[int, int] | None"):
            if kind.endswith("None") and raw == "auto":
                return None
            if not isinstance(raw, list | tuple) or len(raw) != 2:
                raise TypeError("two whole numbers [W, H]")
            return (_int(raw[0]), _int(raw[1]))
        if kind == "tuple[str, ...]":  # engine.devices: a list, "all", or "cuda:0,cuda:1"
            if isinstance(raw, str):
                raw = [part.strip() for part in raw.split(",") if part.strip()]
            if not isinstance(raw, list | tuple) or not all(isinstance(v, str) for v in raw):
                raise TypeError('a list of devices, or "all"')
            return tuple(raw)
        if kind == "tuple[int | str, ...]":
            if not isinstance(raw, list | tuple):
                raise TypeError("a list of ids or names")
            return tuple(_id_or_name(v) for v in raw)
    except (TypeError, ValueError) as error:
        raise SettingsError(f"{where}: expected {error}, not {raw!r}") from None
    raise AssertionError(f"no conversion for {f.name}: {kind}")


def _int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise TypeError("a whole number")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        return int(raw)
    raise TypeError("a whole number")


def _id_or_name(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise TypeError("ids (numbers) or names (strings)")
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value.lstrip("#") if isinstance(value, str) else value


# Validation ------------------------------------------------------------------------------------


def _one_of(choices: tuple[str, ...]) -> str:
    return f"must be one of {', '.join(choices)}"


def _check(where: str, ok: bool, message: str, value: Any) -> None:
    if not ok:
        raise SettingsError(f"{where}: {message}, not {value!r}")


def _validate_limits(limits: Settings | RoleLimits, prefix: str) -> None:
    """Checks shared by the general limits and the role overrides (None: not overridden)."""
    checks: list[tuple[str, int, int]] = [
        ("daily_images", 0, 10**6),
        ("max_pending", 1, 10**4),
        ("max_iterations", 1, HARD_MAX_ITERATIONS),
        ("max_prompt_length", 10, 4000),
    ]
    for name, low, high in checks:
        value = getattr(limits, name)
        if value is not None:
            _check(prefix + name, low <= value <= high, f"must be from {low} to {high}", value)
    if (size := limits.max_size) is not None:
        _check(
            prefix + "max_size",
            all(64 <= side <= MAX_SIDE for side in size),
            f"sides must be from 64 to {MAX_SIDE}",
            list(size),
        )


def _validate(s: Settings) -> None:
    _validate_limits(s, "limits.")
    _check("limits.max_count", 1 <= s.max_count <= MAX_COUNT, f"must be from 1 to {MAX_COUNT}",
           s.max_count)  # fmt: skip
    for key, url, schemes in (
        ("discord.api_base", s.api_base, ("http://", "https://")),
        ("discord.gateway_url", s.gateway_url, ("ws://", "wss://")),
    ):
        if url is not None:
            _check(key, url.startswith(schemes), f"must start with {' or '.join(schemes)}", url)
    for key, guild in (("discord.guild", s.guild), ("discord.home_guild", s.home_guild)):
        if guild is not None:
            _check(key, guild > 0, "must be a guild id", guild)
    _check("engine.cutn", 1 <= s.cutn <= 256, "must be between 1 and 256", s.cutn)
    _check("engine.precision", s.precision in PRECISIONS, _one_of(PRECISIONS), s.precision)
    _check("engine.compile", s.compile in COMPILE_MODES, _one_of(COMPILE_MODES), s.compile)
    _check("engine.kernels", s.kernels in KERNELS, _one_of(KERNELS), s.kernels)
    _check("engine.threads", s.threads >= 0, "must be 0 or more", s.threads)
    _check("engine.vqgan", bool(s.vqgan.strip()), "must not be empty", s.vqgan)
    try:
        parse_clips(s.clip)
    except ValueError as error:
        raise SettingsError(f"engine.clip: {error}") from None
    _check("engine.device", is_device(s.device), "must be auto, cpu, cuda or cuda:N", s.device)
    try:
        check_devices(s.devices)
    except ValueError as error:
        raise SettingsError(f"engine.devices: {error}") from None
    if s.cluster is not None:
        _check(
            "engine.cluster",
            not s.cluster.startswith("ray://"),
            RAY_CLIENT_REFUSED,
            s.cluster,
        )
        _check(
            "engine.cluster",
            s.cluster == "auto" or ":" in s.cluster,
            "must be auto or HEAD:PORT (the head's GCS port, 6379 by default)",
            s.cluster,
        )
        _check(
            "engine.cluster",
            not s.devices,
            "paints on the cluster's GPUs: leave engine.devices empty",
            s.cluster,
        )
    for key, value in (
        ("discord.guild_ready_timeout", s.guild_ready_timeout),
        ("progress.edit_interval", s.edit_interval),
        ("progress.global_period", s.global_period),
        ("progress.seconds_per_iteration", s.seconds_per_iteration),
    ):
        _check(key, math.isfinite(value) and value > 0, "must be a positive number", value)
    _check("progress.global_edits", s.global_edits >= 1, "must be 1 or more", s.global_edits)
    _check(
        "playground.port",
        0 <= s.playground_port <= 65535,
        "must be a port from 0 to 65535",
        s.playground_port,
    )
    _check("progress.preview_every", s.preview_every >= 0, "must be 0 or more", s.preview_every)

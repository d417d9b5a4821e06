"""`doorways-bot --check`: one line per thing the bot needs, before it is started for real.

Token, database, models and device are checked the way the running bot will use them, and
each failing line says what to do. Nothing is changed: the database is only opened (or its
folder looked at), no model is downloaded.
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bot.settings import Settings
from engine.clips import model_names


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    ok: bool
    what: str
    detail: str

    def __str__(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.what:9} {self.detail}"


def check_token(settings: Settings) -> Check:
    if settings.token:
        return Check(True, "token", "DISCORD_TOKEN is set")
    return Check(
        False, "token",
        "no DISCORD_TOKEN (environment or discord.token): the bot would start the local "
        "playground instead of connecting to Discord",
    )  # fmt: skip


def check_database(path: Path) -> Check:
    """The database opens for writing, or its folder could hold one."""
    if path.exists():
        try:
            with sqlite3.connect(path, timeout=2) as connection:
                connection.execute("BEGIN IMMEDIATE")
                connection.rollback()
        except sqlite3.Error as error:
            return Check(False, "database", f"{path} cannot be written: {error}")
        return Check(True, "database", f"{path} is writable")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return Check(False, "database", f"{path} cannot be created: {folder} is not writable")
    return Check(True, "database", f"{path} will be created on first start")


def check_model(kind: str, name: str) -> Check:
    """A registry model is downloaded, a path exists; tiny and random:NAME are built."""
    from engine import registry

    if name == "tiny" or name.startswith("random:"):
        return Check(True, kind, f"{name} (built on first use; not a real painter)")
    if not registry.is_known_model(kind, name):
        return Check(False, kind, f"{name} is neither a {kind} registry model nor a file")
    if registry.is_downloaded(name):
        where = registry.model_paths(name)[0] if registry.is_registered(name) else name
        return Check(True, kind, f"{name} at {where}")
    gone = registry.unavailable(name)
    if gone:
        return Check(False, kind, f"{name} is not downloaded, and cannot be: {gone}")
    return Check(
        False, kind,
        f"{name} is not downloaded: run `doorways models download {name}`",
    )  # fmt: skip


def check_device(device: str) -> Check:
    """The device the worker will use exists (this imports torch, which the bot never does)."""
    import torch

    from engine.driver import cpu_fallback_warning
    from engine.models import resolve_device

    try:
        resolved = resolve_device(device)
    except ValueError as error:
        return Check(False, "device", str(error))
    if resolved.type == "cuda":
        props = torch.cuda.get_device_properties(resolved)
        gib = props.total_memory / 2**30
        return Check(True, "device", f"{resolved}: {props.name}, {gib:.0f} GiB")
    warning = cpu_fallback_warning(device)
    if warning is not None:  # a GPU is there, but torch cannot use it
        return Check(False, "device", warning)
    return Check(True, "device", f"{resolved} (no GPU: painting will be slow)")


def run_checks(settings: Settings) -> list[Check]:
    return [
        check_token(settings),
        check_database(settings.database),
        check_model("vqgan", settings.vqgan),
        *(check_model("clip", name) for name in model_names(settings.clip)),
        *check_devices(settings),
    ]


def check_devices(settings: Settings) -> list[Check]:
    """One check per worker device (`engine.devices`, else `engine.device`); with
    `engine.cluster`, whether Ray is here (the cluster's GPUs are checked when it starts)."""
    from engine.worker import WorkerError
    from engine.worker.pool import resolve_devices

    if settings.cluster is not None:
        if importlib.util.find_spec("ray") is None:
            return [Check(False, "cluster", "Ray is not installed: pip install 'doorways[ray]'")]
        return [Check(True, "cluster", f"{settings.cluster}: one painter per GPU of the cluster")]

    try:
        devices = resolve_devices(settings.devices, settings.device)
    except WorkerError as error:
        return [Check(False, "device", str(error))]
    return [check_device(device) for device in devices]

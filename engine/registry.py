"""The model registry: names, where their files live, and downloads. Never imports torch.

engine/data/models.json (package data, so it is inside a wheel too) lists the VQGAN and
CLIP models Doorways knows, with their download URLs, sizes, checksums and architectures.
The bot and the request checks use this module without paying for torch; engine.models
builds and loads the networks.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from engine.download import DownloadError, fetch_any

REGISTRY_PATH = resources.files("engine") / "data" / "models.json"
# The checkout engine/ lies in (pip install -e), or site-packages for an installed wheel.
REPO_ROOT = Path(__file__).resolve().parents[1]


class ModelError(Exception):
    """A model cannot be found, fetched or loaded; the message says what to do."""


class ModelMissing(ModelError):
    """A registry model whose weights are not in `model_dir()` yet."""

    def __init__(self, name: str, path: Path, download_command: str | None = None) -> None:
        self.name = name
        self.path = path
        self.download_command = download_command or f"doorways models download {name}"
        gone = unavailable(name) if is_registered(name) else None
        super().__init__(
            f"model {name} is not downloaded, and cannot be: {gone} (place its file at {path})"
            if gone
            else f"model {name} is not downloaded: run `{self.download_command}` "
            f"(or place the file at {path})"
        )


def model_dir() -> Path:
    """Where weights live: $DOORWAYS_MODELS if set, else data/models in the checkout, or
    for an installed copy (no checkout around it) $XDG_CACHE_HOME/doorways/models."""
    env = os.environ.get("DOORWAYS_MODELS")
    if env:
        return Path(env).expanduser().resolve()
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / "data" / "models"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser().resolve() / "doorways" / "models"


# --- the registry -------------------------------------------------------------------------


@functools.cache
def _read_registry() -> dict[str, dict[str, Any]]:
    return json.loads(REGISTRY_PATH.read_text(encoding="utf-8"))["models"]


def is_registered(name: str) -> bool:
    """Whether `name` is a registry entry (of either kind)."""
    return name in _read_registry()


def registry() -> dict[str, dict[str, Any]]:
    """The entries of engine/data/models.json keyed by name; each has "kind": "vqgan" or "clip"."""
    return copy.deepcopy(_read_registry())


def _names(kind: str) -> list[str]:
    return [name for name, entry in _read_registry().items() if entry["kind"] == kind]


def vqgan_names() -> list[str]:
    """Names accepted for --vqgan besides paths and random:NAME: the registry's, and tiny."""
    return [*_names("vqgan"), "tiny"]


def clip_names() -> list[str]:
    """Names accepted for --clip besides paths and random:NAME: the registry's, and tiny."""
    return [*_names("clip"), "tiny"]


def is_known_model(kind: str, name: str) -> bool:
    """True for a registry name of `kind`, tiny, random:<registry name of kind>, or a file."""
    if kind not in ("vqgan", "clip"):
        raise ValueError(f"unknown model kind {kind!r}: use vqgan or clip")
    base = name.removeprefix("random:")
    if base in _names(kind):
        return True
    return name == "tiny" or (not name.startswith("random:") and Path(name).expanduser().is_file())


DEFAULT_FACTOR = 16  # pixels per latent token side of the f16 VQGANs and of tiny


def vqgan_factor(name: str) -> int:
    """Pixels per latent token side of VQGAN `name` (16 for the f16 models, 8 for f8): pictures
    come out in whole tokens. A file outside the registry is taken as f16, the usual kind."""
    entry = _read_registry().get(name.removeprefix("random:"))
    if entry is None or entry["kind"] != "vqgan":
        return DEFAULT_FACTOR
    return int(2 ** (len(entry["params"]["ddconfig"]["ch_mult"]) - 1))


def token_grid(size: tuple[int, int], factor: int) -> tuple[int, int]:
    """(tokens wide, tokens high) for a picture of `size` pixels: each side rounded to whole
    tokens of `factor` pixels, at least one. The picture comes out that many tokens × factor."""
    width, height = size
    return max(1, round(width / factor)), max(1, round(height / factor))


def _entry(name: str) -> dict[str, Any]:
    try:
        return _read_registry()[name]
    except KeyError:
        known = ", ".join(_read_registry())
        raise ModelError(f"unknown model {name!r}; known models: {known}") from None


def model_paths(name: str) -> list[Path]:
    """Where the file(s) of registry entry `name` live in `model_dir()` (weights first)."""
    return [model_dir() / f["name"] for f in _entry(name)["files"]]


def is_downloaded(name: str) -> bool:
    """Whether registry model `name` has all its files here (or `name` is an existing file);
    tiny and random:NAME models are built, never downloaded."""
    if name == "tiny" or name.startswith("random:"):
        return False
    if not is_registered(name):
        return Path(name).expanduser().is_file()
    return all(path.is_file() for path in model_paths(name))


def unavailable(name: str) -> str | None:
    """Why registry model `name` cannot be downloaded (its hosts are gone), or None."""
    return _entry(name).get("unavailable")


def urls(file: dict[str, Any]) -> list[str]:
    """Where a registry file can be downloaded: its url, then its mirrors, in order."""
    return [file["url"], *file.get("mirrors", [])]


def list_models() -> list[dict[str, Any]]:
    """One row per registry entry: name, kind, size_bytes, downloaded, path (of the weights),
    unavailable (why it cannot be downloaded, or None)."""
    rows = []
    for name, entry in _read_registry().items():
        paths = model_paths(name)
        rows.append(
            {
                "name": name,
                "kind": entry["kind"],
                "size_bytes": sum(f["size_bytes"] for f in entry["files"]),
                "downloaded": is_downloaded(name),
                "path": paths[0],
                "unavailable": entry.get("unavailable"),
            }
        )
    return rows


def download(
    name: str,
    *,
    progress: bool = True,
    timeout: float = 30,
    entry: dict[str, Any] | None = None,
) -> list[Path]:
    """Fetch every file of registry entry `name` into `model_dir()`; files present are kept.
    Each file comes from the first of its urls (url, then mirrors) that delivers it.

    `entry` overrides the registry entry (tests point it at a local server).
    """
    if name == "tiny" and entry is None:
        raise ModelError("tiny models are built on this machine when first used; no download")
    entry = entry if entry is not None else _entry(name)
    missing = [f for f in entry["files"] if not (model_dir() / f["name"]).exists()]
    if entry.get("unavailable") and missing:
        places = ", ".join(str(model_dir() / f["name"]) for f in missing)
        raise ModelError(f"{name} cannot be downloaded: {entry['unavailable']} (place {places})")
    paths = []
    for f in entry["files"]:
        dest = model_dir() / f["name"]
        try:
            path = fetch_any(
                urls(f),
                dest,
                sha256=f.get("sha256"),
                approx_size=f.get("size_bytes"),
                progress=progress,
                timeout=timeout,
            )
        except DownloadError as exc:
            raise ModelError(str(exc)) from exc
        paths.append(path)
    return paths


def entry_of_kind(kind: str, name: str) -> dict[str, Any]:
    """The registry entry `name`, which must be of `kind`."""
    entry = _entry(name)
    if entry["kind"] != kind:
        raise ModelError(f"{name} is a {entry['kind']} model, not a {kind} model")
    return entry


def weights_path(name: str) -> Path:
    """The downloaded weights of registry entry `name`, or ModelMissing."""
    path = model_paths(name)[0]
    if not path.is_file():
        raise ModelMissing(name, path)
    return path

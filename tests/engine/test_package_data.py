"""The shipped JSON (model registry, presets) is package data: a built wheel carries it.

The wheel is built offline from a copy of the sources (`pip wheel --no-deps
--no-build-isolation --no-index`: the setuptools of this venv, no download, nothing written
into the checkout) and unpacked; a fresh interpreter that imports engine from the unpacked
wheel, away from any checkout, reads the registry and the presets from it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from engine import registry
from engine.entrance import load_presets

REPO = Path(__file__).resolve().parents[2]
DATA = ("engine/data/models.json", "engine/data/presets.json")

READ_FROM_THE_WHEEL = """
import json, sys
import engine
from engine import registry, taskfile
from engine.entrance import load_presets

print(json.dumps({
    "engine": engine.__file__,
    "registry": registry.registry(),
    "taskfile_models": taskfile._registry_models(),
    "presets": sorted(load_presets()),
    "model_dir": str(registry.model_dir()),
    "torch": "torch" in sys.modules,
}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of the project, built offline from a copy of its sources."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("engine", "bot"):
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    command += ["--no-index", "--quiet", "--wheel-dir", str(root / "dist"), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (built,) = (root / "dist").glob("doorways-*.whl")
    return built


def test_the_wheel_carries_the_json(wheel: Path) -> None:
    """engine/data/models.json and presets.json are in the wheel, byte for byte."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        for name in DATA:
            assert name in names, f"{name} is not in {wheel.name}"
            assert archive.read(name) == (REPO / name).read_bytes(), name


def test_an_installed_copy_reads_its_own_json(wheel: Path, tmp_path: Path) -> None:
    """engine imported from the unpacked wheel reads the registry and presets shipped in it,
    and keeps models in the user cache (or $DOORWAYS_MODELS), not in site-packages."""
    site = tmp_path / "site-packages"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    env = {k: v for k, v in os.environ.items() if k != "DOORWAYS_MODELS"}
    env.update(PYTHONPATH=str(site), XDG_CACHE_HOME=str(tmp_path / "cache"))
    command = [sys.executable, "-c", READ_FROM_THE_WHEEL]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout)
    assert Path(seen["engine"]).resolve() == (site / "engine" / "__init__.py").resolve()
    assert seen["registry"] == registry.registry()
    assert seen["taskfile_models"] == {n: e["kind"] for n, e in registry.registry().items()}
    assert seen["presets"] == sorted(load_presets())
    assert seen["model_dir"] == str(tmp_path.resolve() / "cache" / "doorways" / "models")
    assert not seen["torch"]

    env["DOORWAYS_MODELS"] = str(tmp_path / "mine")
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout)["model_dir"] == str((tmp_path / "mine").resolve())

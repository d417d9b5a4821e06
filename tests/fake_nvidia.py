"""A stand-in for the GPU probe: an `nvidia-smi` written by the test and put first on PATH,
answering as a machine with an NVIDIA GPU and the given driver would (or failing, as it does
when the driver is not loaded)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SCRIPT = """#!/bin/sh
if [ -n "$FAIL" ]; then
    echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." >&2
    exit 9
fi
echo "{driver}, {name}"
"""


def fake_nvidia_smi(
    folder: Path, monkeypatch: pytest.MonkeyPatch, *, driver: str = "550.54.15",
    name: str = "NVIDIA GeForce RTX 3090", fail: bool = False,
) -> Path:  # fmt: skip
    """Write folder/nvidia-smi and put `folder` first on PATH (for this process and the ones
    it starts); returns the script."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "nvidia-smi"
    body = SCRIPT.format(driver=driver, name=name)
    script.write_text(body.replace('"$FAIL"', '"yes"' if fail else '""'))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    return script

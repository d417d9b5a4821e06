"""Fixtures for the whole test session: no network, models in a temp dir, tiny models."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from engine.models import CLIP, VQGAN, load_clip, load_vqgan, write_tiny_clip
from engine.toy import ToyModels, ensure_toy_models

# pytest-xdist workers (`make test`) share the machine's cores: one torch thread each, and in
# the processes they start, rather than two threads each fighting over every core.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


class NetworkBlocked(ConnectionRefusedError):
    """Raised when a test tries to reach anything but this machine."""


def _is_local(address: Any) -> bool:
    """True for AF_UNIX paths and loopback hosts (127.0.0.0/8, ::1, localhost)."""
    if isinstance(address, (str, bytes)):  # AF_UNIX
        return True
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, bytes):
        host = host.decode()
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True, scope="session")
def _isolated_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Put DOORWAYS_MODELS in a temp dir and refuse connections beyond loopback."""
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex
    create_connection = socket.create_connection

    def guard(address: Any) -> None:
        if not _is_local(address):
            raise NetworkBlocked(f"network access is blocked in tests (tried {address!r})")

    def guarded_connect(self: socket.socket, address: Any) -> None:
        guard(address)
        return connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        guard(address)
        return connect_ex(self, address)

    def guarded_create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        guard(address)
        return create_connection(address, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DOORWAYS_MODELS", str(tmp_path_factory.mktemp("models")))
        mp.setattr(socket.socket, "connect", guarded_connect)
        mp.setattr(socket.socket, "connect_ex", guarded_connect_ex)
        mp.setattr(socket, "create_connection", guarded_create_connection)
        yield


@pytest.fixture(scope="session")
def tiny_vqgan(_isolated_session: None) -> VQGAN:
    """The tiny VQGAN adapter on CPU, built once per session."""
    return load_vqgan("tiny", torch.device("cpu"))


@pytest.fixture(scope="session")
def tiny_clip(_isolated_session: None) -> CLIP:
    """The tiny CLIP adapter on CPU, built once per session."""
    return load_clip("tiny", torch.device("cpu"))


@pytest.fixture(scope="session")
def small_clip_path(_isolated_session: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny CLIP with another input size (128, tiny's is 224), saved as a real
    TorchScript file: a CLIP named by its path, for several models at once."""
    return write_tiny_clip(tmp_path_factory.mktemp("clips") / "clip_tiny_128.pt", 128)


@pytest.fixture(scope="session")
def toy_models(_isolated_session: None) -> ToyModels:
    """The toy CLIP and VQGAN (engine/toy.py), trained once per session into the session's
    model folder, where `doorways quality` finds them: about 15 s of CPU."""
    return ensure_toy_models()


@pytest.fixture(scope="session")
def toy_vqgan(toy_models: ToyModels) -> VQGAN:
    """The toy VQGAN, read back from its checkpoint by the engine's loader."""
    return load_vqgan(str(toy_models.vqgan), torch.device("cpu"))


@pytest.fixture(scope="session")
def toy_clip(toy_models: ToyModels) -> CLIP:
    """The toy CLIP, read back from its state dict by the engine's loader."""
    return load_clip(str(toy_models.clip), torch.device("cpu"))

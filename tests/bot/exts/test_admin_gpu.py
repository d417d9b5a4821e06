"""/admin status on a machine whose NVIDIA GPU torch cannot use: the worker (started with
--device auto, a stand-in nvidia-smi on PATH) reports it with its health, and the admin sees
why and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.fakediscord import FakeDiscord, Permission, point_discord_py_at
from engine.worker import WorkerHandle
from engine.worker.pool import Pool
from tests.bot.running import running_bot, tiny_settings
from tests.fake_nvidia import fake_nvidia_smi


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_admin_status_shows_the_unused_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_nvidia_smi(tmp_path / "bin", monkeypatch)  # the worker process inherits PATH …
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # … and this (hides a real GPU, if any)
    pool = Pool([WorkerHandle("auto", threads=1, preload=("tiny", "tiny"))])
    async with FakeDiscord() as fake:
        restore = point_discord_py_at(fake.base_url)
        admin = fake.create_user("ada", roles=[fake.create_role("A", int(Permission.MANAGE_GUILD))])
        try:
            async with running_bot(fake, tiny_settings(tmp_path), pool=pool) as bot:
                [health] = bot.scheduler.pool.health()
                assert health.device == "cpu" and health.gpu_warning is not None
                assert "CUDA_VISIBLE_DEVICES='' hides it" in health.gpu_warning
                handle = await fake.slash(admin, fake.channel, "admin", {}, subcommand="status")
                await handle.wait_response(timeout=3.0)
                assert handle.ephemeral and handle.original is not None
                status = handle.original.content
                assert "**Device:** cpu" in status
                assert "⚠️ WARNING: --device auto paints on the CPU" in status
                assert "NVIDIA GeForce RTX 3090" in status
        finally:
            restore()

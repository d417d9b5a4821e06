"""The bot with two CPU workers (engine.devices = ["cpu", "cpu"]): two people's jobs paint
at once, /admin status lists both painters with what each paints, and /queue names them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.fakediscord import FakeDiscord, Permission, point_discord_py_at
from tests.bot.running import command, job_id_of, running_bot, tiny_settings


@pytest.mark.timeout(150)
async def test_status_and_queue_show_every_worker(tmp_path: Path) -> None:
    settings = tiny_settings(tmp_path, devices=("cpu", "cpu"), max_iterations=400)
    async with FakeDiscord() as fake:
        restore = point_discord_py_at(fake.base_url)
        role = fake.create_role("A", int(Permission.MANAGE_GUILD))
        admin = fake.create_user("ada", roles=[role])
        try:
            async with running_bot(fake, settings) as bot:
                options = {"prompt": "a door", "iterations": 400}
                people = [fake.create_user(name) for name in ("bo", "cy")]
                handles = [await command(fake, person, "imagine", options) for person in people]
                ids = [job_id_of(h.original) for h in handles if h.original is not None]
                async with asyncio.timeout(60):  # both paint at once, one on each worker
                    while {h.job_id for h in bot.scheduler.pool.health()} != {str(i) for i in ids}:
                        await asyncio.sleep(0.05)

                handle = await fake.slash(admin, fake.channel, "admin", {}, subcommand="status")
                await handle.wait_response(timeout=3.0)
                assert handle.original is not None
                status = handle.original.content
                assert "**Painters:** 2 of 2 running" in status
                devices = [line for line in status.splitlines() if line.startswith("**Device:**")]
                assert len(devices) == 2 and all("cpu · running (pid" in d for d in devices)
                assert {f"painting job #{i}" in status for i in ids} == {True}
                assert f"job #{ids[0]} and job #{ids[1]} painting" in status

                queue = await command(fake, people[0], "queue", {})
                assert queue.original is not None
                text = queue.original.content
                assert "2 painting, 0 waiting" in text and "**2 painters:** cpu (job #" in text
                for job_id in ids:
                    assert await bot.scheduler.cancel(job_id) is not None
        finally:
            restore()

"""A bot whose engine.clip names two CLIP models: the real bot against a FakeDiscord, a real
worker process holding both (tiny at 224 px, a second tiny at 128, read from its file)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.fakediscord import FakeDiscord, Permission, point_discord_py_at
from engine.request import Request
from engine.worker.pool import local_pool
from tests.bot.running import command, png_size, result_of, running_bot, tiny_settings

CALL = re.compile(r"```sh\n(?P<call>doorways generate .*)\n```", re.DOTALL)


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_a_job_paints_with_both_models_and_status_names_them(
    tmp_path: Path, small_clip_path: Path
) -> None:
    """/imagine paints with both models and posts the picture, its call string carrying the
    list; /admin status names every resident model."""
    clips = f"tiny,{small_clip_path}:0.5"
    settings = tiny_settings(tmp_path, clip=clips)
    pool = local_pool(["cpu"], threads=1, progress_interval=0.1, preload=("tiny", clips))
    async with FakeDiscord() as fake:
        restore = point_discord_py_at(fake.base_url)
        try:
            async with running_bot(fake, settings, pool=pool):
                person = fake.create_user("painter")
                options = {"prompt": "a door", "iterations": 3, "width": 64, "height": 64}
                handle = await command(fake, person, "imagine", {**options, "seed": 5})
                result = await result_of(fake, handle)
                assert png_size(result) == (64, 64)
                match = CALL.search(result.content)
                assert match is not None, result.content
                request = Request.from_call_string(match["call"])
                assert request.clip == clips and request.seed == 5
                admin = fake.create_user(
                    "admin", roles=[fake.create_role("Admins", int(Permission.MANAGE_GUILD))]
                )
                status = await fake.slash(admin, fake.channel, "admin", {}, subcommand="status")
                await status.wait_response(timeout=3.0)
                assert status.original is not None
                shown = status.original.content
                assert f"vqgan:tiny, clip:tiny, clip:{small_clip_path}" in shown, shown
        finally:
            restore()

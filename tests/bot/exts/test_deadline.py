"""Discord's 3 seconds, under load: with 300 jobs queued and a 20 MiB PNG coming slowly from
the CDN, every command gets its first answer in time — the slow ones a private "thinking…"
that is filled in once the download is done — and a /params link to someone's upload says
why it cannot work and what does. The fake refuses any first answer after 3 s (10062), so a
command that answered late would fail here."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from bot.bot import DoorwaysBot
from bot.fakediscord import FakeDiscord, Upload, point_discord_py_at
from bot.fakediscord.interactions import CallbackType
from bot.parameters import LINK_WITHOUT_CONTENT
from bot.store import NewJob
from engine.outputs import png_metadata
from engine.prompts import Prompt
from engine.request import Request
from tests.bot.running import answer_of, running_bot, tiny_settings

MiB = 2**20
CDN_RATE = 4 * MiB  # bytes per second: a 20 MiB picture takes 5 s to download
QUEUED = 300
PICTURE = Request(prompts=(Prompt("a door"),), vqgan="tiny", clip="tiny", seed=5)


def big_png(request: Request) -> bytes:
    """A Doorways PNG of about 20 MiB: noise (which does not compress), stored uncompressed,
    with the request in its metadata."""
    side = 2650
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=png_metadata(request, "cpu"), compress_level=0)
    return out.getvalue()


@pytest.fixture
async def busy(tmp_path: Path) -> AsyncIterator[tuple[FakeDiscord, DoorwaysBot]]:
    """A server allowed 50 MiB uploads, its bot, and 300 jobs waiting (painting is paused)."""
    settings = tiny_settings(tmp_path, daily_images=1000, max_pending=1000)
    async with FakeDiscord(upload_limit=50 * MiB) as fake:
        restore = point_discord_py_at(fake.base_url)
        try:
            async with running_bot(fake, settings, wait_for_worker=False) as bot:
                await bot.scheduler.pause()
                for n in range(QUEUED):
                    await bot.store.add(
                        NewJob("imagine", 1000 + n % 30, fake.guild.id, fake.channel.id, PICTURE)
                    )
                yield fake, bot
        finally:
            restore()


def task_file() -> Upload:
    """100 images: 4 styles × each 25."""
    fields = {
        "text": ["a lighthouse"],
        "style": ["", "a", "b", "c"],
        "each": [25],
        "iterations": [2],
        "out_file": ["many"],
    }
    return Upload("hundred.json", json.dumps(fields).encode())


async def test_every_command_answers_within_3_seconds_under_load(
    busy: tuple[FakeDiscord, DoorwaysBot],
) -> None:
    fake, bot = busy
    person, tasker = fake.create_user("painter"), fake.create_user("tasker")
    picture = Upload("big.png", big_png(PICTURE), "image/png")
    assert len(picture.data) > 20 * MiB
    upload = await fake.send_message(person, fake.channel, "look", attachments=[picture])
    mentioned = await fake.send_message(
        person, fake.channel, f"{fake.bot_user.mention} what made this?", attachments=[picture]
    )
    link = f"https://discord.com/channels/{fake.guild.id}/{fake.channel.id}/{mentioned.id}"
    fake.slow_cdn(CDN_RATE)

    started = time.monotonic()
    slow = {
        "Get parameters": await fake.context_menu(person, upload, "Get parameters"),
        "/params": await fake.slash(person, fake.channel, "params", {"target": link}),
        "/task": await fake.slash(tasker, fake.channel, "task", {"file": task_file()}),
    }
    quick = {
        name: await fake.slash(person, fake.channel, name, options)
        for name, options in (
            ("queue", {}),
            ("quota", {}),
            ("history", {}),
            ("imagine", {"prompt": "a gate", "iterations": 2}),
        )
    }
    for name, handle in {**slow, **quick}.items():
        response = await handle.wait_response(timeout=3.0)
        assert response.latency < 3.0 and not handle.errors, (name, handle.errors)
    for name, handle in slow.items():
        assert handle.response is not None
        assert handle.response.type == CallbackType.DEFERRED_CHANNEL_MESSAGE, name
        assert handle.response.ephemeral, name
    assert "in line" in quick["imagine"].original.content  # type: ignore[union-attr]

    for name in ("Get parameters", "/params"):
        answer = await answer_of(fake, slow[name])
        assert "**A Doorways picture** · from the metadata of big.png" in answer.content, name
        assert "seed 5" in answer.content and answer.ephemeral
    assert time.monotonic() - started > 20 * MiB / CDN_RATE  # the download really was slow
    private = await answer_of(fake, slow["/task"])
    assert private.content.startswith("Queued: `hundred.json`, 100 image(s)"), private.content
    [status] = [m for m in slow["/task"].followups if not m.ephemeral]
    assert "**hundred.json** · 100 images queued" in status.content
    jobs = [job for job in await bot.store.jobs(["queued"]) if job.owner_id == tasker.id]
    assert len(jobs) == 100 and all(job.status_message_id == status.id for job in jobs)
    assert not [h.errors for h in (*slow.values(), *quick.values()) if h.errors]


async def test_params_link_to_someones_upload_points_to_get_parameters(
    busy: tuple[FakeDiscord, DoorwaysBot],
) -> None:
    """Without the Message Content intent the bot fetches someone's message without its
    attachments (the fake, like Discord, empties them); /params says so and points to Apps →
    Get parameters, which gets the message whole and works."""
    fake, _ = busy
    person = fake.create_user("painter")
    small = Upload("door.png", _small_png(), "image/png")
    upload = await fake.send_message(person, fake.channel, "my door", attachments=[small])
    link = f"https://discord.com/channels/{fake.guild.id}/{fake.channel.id}/{upload.id}"
    handle = await fake.slash(person, fake.channel, "params", {"target": link})
    await handle.wait_response(timeout=3.0)
    assert (await answer_of(fake, handle)).content == LINK_WITHOUT_CONTENT
    menu = await fake.context_menu(person, upload, "Get parameters")
    await menu.wait_response(timeout=3.0)
    assert "from the metadata of door.png" in (await answer_of(fake, menu)).content


def _small_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "PNG", pnginfo=png_metadata(PICTURE, "cpu"))
    return out.getvalue()

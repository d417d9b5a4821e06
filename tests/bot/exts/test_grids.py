"""Grids end to end: the real discord.py client against the fake Discord, a real worker with
the tiny models. `/imagine count:4` posts a 2×2 grid whose 🖼 buttons post one picture
alone (also after a restart), and the quota counts pictures."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from PIL import Image

from bot.bot import DoorwaysBot
from bot.fakediscord import FakeDiscord, User, point_discord_py_at
from bot.quota import COUNTED
from bot.store import count_images
from bot.views import job_custom_id
from engine.outputs import read_request_bytes
from tests.bot.exts.test_tasks import task_file
from tests.bot.running import command, job_id_of, result_of, running_bot, tiny_settings

module_loop = pytest.mark.asyncio(loop_scope="module")


class World:
    """The fake Discord and the running bot (which `restart` replaces)."""

    def __init__(self, fake: FakeDiscord, tmp: Path) -> None:
        self.fake = fake
        self.settings = tiny_settings(tmp, max_pending=20, daily_images=6, max_iterations=400)
        self.stack = contextlib.AsyncExitStack()
        self.bot: DoorwaysBot

    async def start(self) -> None:
        self.bot = await self.stack.enter_async_context(running_bot(self.fake, self.settings))

    async def restart(self) -> None:
        await self.stack.aclose()
        await self.fake.wait_for_bot(connected=False)
        self.stack = contextlib.AsyncExitStack()
        await self.start()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with FakeDiscord() as fake:
        restore = point_discord_py_at(fake.base_url)
        world = World(fake, tmp_path_factory.mktemp("grids"))
        try:
            await world.start()
            yield world
        finally:
            await world.stack.aclose()
            restore()


def png_of(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


async def images_today(world: World, user: User) -> int:
    async with world.bot.store.lock:
        return await count_images(world.bot.store.db, user.id, COUNTED)


@module_loop
async def test_a_grid_posts_with_a_pick_button_per_picture_across_a_restart(
    world: World,
) -> None:
    """count:4 → one job, a 2×2 grid with 🖼 1-4, 🔀 1-4, 🎲 📋 🗑; after a restart 🖼 2 posts
    that picture alone with its own buttons and its `--count 4 --index 2` call string; 📋 on
    the grid lists every picture's call string; 🔀 3 varies picture 3; the quota counts
    pictures."""
    person = world.fake.create_user("painter")
    handle = await command(
        world.fake, person, "imagine", {"prompt": "a door", "iterations": 2, "count": 4}
    )
    assert handle.original is not None
    grid_id = job_id_of(handle.original)
    assert "a grid of 4 at 32×16" in handle.original.content  # 450×300 on a 64² cap
    assert "shared by 4 pictures" in handle.original.content
    grid_message = await result_of(world.fake, handle)
    picks, varies = [f"pick{i}" for i in range(1, 5)], [f"vary{i}" for i in range(1, 5)]
    actions = (*picks, *varies, "reroll", "parameters", "delete")
    assert grid_message.custom_ids() == [job_custom_id(grid_id, a) for a in actions]
    grid_png = grid_message.attachments[0].data
    grid_request = read_request_bytes(grid_png)
    assert grid_request.count == 4 and grid_request.index is None
    width, height = grid_request.size  # each picture's: the four share the 64×64 cap
    assert width * height * 4 <= 64 * 64
    assert png_of(grid_png).size == (2 * width, 2 * height)
    assert await images_today(world, person) == 4

    await world.restart()
    click = await world.fake.click(person, grid_message, job_custom_id(grid_id, "pick2"))
    alone = await click.wait_followup()
    assert not click.ephemeral
    picked = read_request_bytes(alone.attachments[0].data)
    assert (picked.count, picked.index, picked.seed) == (4, 2, grid_request.seed)
    assert png_of(alone.attachments[0].data).size == (width, height)
    assert png_of(grid_png).crop((width, 0, 2 * width, height)).tobytes() == (
        png_of(alone.attachments[0].data).tobytes()
    )  # the grid's top right is picture 2
    assert "--count 4 --index 2" in alone.content
    pick_id = int(alone.content.split("as job **#")[1].split("**")[0])
    own = ("reroll", "variation", "parameters", "delete")
    assert alone.custom_ids() == [job_custom_id(pick_id, a) for a in own]
    assert await images_today(world, person) == 4  # picking is free

    params = await world.fake.click(person, grid_message, job_custom_id(grid_id, "parameters"))
    await params.wait_response()
    assert params.ephemeral and params.original is not None
    for index in range(1, 5):
        assert f"--count 4 --index {index}" in params.original.content

    reroll = await world.fake.click(person, alone, job_custom_id(pick_id, "reroll"))
    await reroll.wait_response()
    assert reroll.original is not None
    child = await world.bot.store.get(job_id_of(reroll.original))
    assert child is not None and (child.request.count, child.request.index) == (1, None)
    assert await images_today(world, person) == 5

    varied = await world.fake.click(person, grid_message, job_custom_id(grid_id, "vary3"))
    await varied.wait_response()
    assert varied.original is not None
    variation = await world.bot.store.get(job_id_of(varied.original))
    assert variation is not None and variation.parent_job == grid_id
    assert (variation.request.count, variation.request.index) == (1, None)
    assert variation.request.init_image == (await world.bot.store.get(grid_id)).pictures[2]  # type: ignore[union-attr]
    assert await images_today(world, person) == 6


@module_loop
async def test_a_task_files_batch_posts_as_a_grid_that_works_across_a_restart(
    world: World,
) -> None:
    """/task with each 2, count 2 posts one grid; after a restart 🖼 1 posts the picture kept
    as door_1.png in the person's task folder, and 📋 lists each picture's call string."""
    person = world.fake.create_user("tasker")
    upload = task_file("pair.json", out_file=["door"], each=[2], count=[2], seed=[5])
    handle = await world.fake.slash(person, world.fake.channel, "task", {"file": upload})
    status = await handle.wait_followup(timeout=30)
    grid_message = await world.fake.wait_for_message(
        world.fake.channel,
        lambda m: m.reference_id == status.id and m.author is world.fake.bot_user,
        timeout=60,
    )
    grid_id = int(grid_message.content.split("job **#")[1].split("**")[0])
    kept = world.settings.outputs / "tasks" / str(person.id) / "output" / "door_1.png"
    assert await images_today(world, person) == 2

    await world.restart()
    click = await world.fake.click(person, grid_message, job_custom_id(grid_id, "pick1"))
    alone = await click.wait_followup()
    assert alone.attachments[0].data == kept.read_bytes()
    assert "--seed 5 --count 2 --index 1" in alone.content
    params = await world.fake.click(person, grid_message, job_custom_id(grid_id, "parameters"))
    await params.wait_response()
    assert params.original is not None
    for index in (1, 2):
        assert f"--seed 5 --count 2 --index {index}" in params.original.content


@module_loop
async def test_a_grid_bigger_than_the_quota_left_is_refused_whole(world: World) -> None:
    """With 2 of 6 images left, count:4 is refused privately, saying how many are left."""
    person = world.fake.create_user("thrifty")
    handle = await command(
        world.fake, person, "imagine", {"prompt": "a door", "iterations": 2, "count": 4}
    )
    await result_of(world.fake, handle)
    refused = await command(
        world.fake, person, "imagine", {"prompt": "a door", "iterations": 2, "count": 4}
    )
    await refused.wait_response()
    assert refused.ephemeral and refused.original is not None
    assert "That is 4 images, and you have 2 of today's 6 left" in refused.original.content


@module_loop
async def test_settings_count_is_a_persons_default(world: World) -> None:
    """/settings count:2 makes /imagine paint two unless the command says otherwise."""
    person = world.fake.create_user("twice")
    shown = await command(world.fake, person, "settings", {"count": 2})
    await shown.wait_response()
    assert shown.original is not None
    assert "**Pictures per command (count):** 2" in shown.original.content
    handle = await command(world.fake, person, "imagine", {"prompt": "a gate", "iterations": 2})
    await handle.wait_response()
    assert handle.original is not None
    job = await world.bot.store.get(job_id_of(handle.original))
    assert job is not None and job.request.count == 2
    alone = await command(
        world.fake, person, "imagine", {"prompt": "a gate", "iterations": 2, "count": 1}
    )
    await alone.wait_response()
    assert alone.original is not None
    job = await world.bot.store.get(job_id_of(alone.original))
    assert job is not None and job.request.count == 1
    await result_of(world.fake, handle)
    await result_of(world.fake, alone)


@module_loop
async def test_a_reroll_reaction_on_a_grid_paints_a_new_grid(world: World) -> None:
    """🎲 on a grid queues a new grid of as many pictures, with a new seed."""
    person = world.fake.create_user("reactor")
    handle = await command(
        world.fake, person, "imagine", {"prompt": "a arch", "iterations": 2, "count": 2}
    )
    grid_message = await result_of(world.fake, handle)
    assert handle.original is not None
    grid = await world.bot.store.get(job_id_of(handle.original))
    assert grid is not None
    await world.fake.react(person, grid_message, "🎲")
    answer = await world.fake.wait_for_message(
        world.fake.channel, lambda m: f"rerolls job #{grid.id}" in m.content, timeout=10
    )
    child = await world.bot.store.get(int(answer.content.split("**#")[1].split("**")[0]))
    assert child is not None and child.parent_job == grid.id
    assert child.request.count == 2 and child.request.seed != grid.request.seed

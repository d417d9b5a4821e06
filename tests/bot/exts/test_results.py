"""Buttons, reactions and parameters on job messages, end to end: a FakeDiscord, the real bot,
a real worker process with tiny models. Last, a restart: the buttons and reactions of a
message posted before it still work.

One fake, one bot and one worker serve the module (the restart test starts a second bot).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from PIL import Image

from bot import rules
from bot.bot import DoorwaysBot
from bot.fakediscord import (
    FakeDiscord,
    Message,
    Permission,
    Role,
    Upload,
    User,
    point_discord_py_at,
)
from bot.parameters import LINK_WITHOUT_CONTENT
from bot.store import Job
from bot.views import job_custom_id
from engine.outputs import read_request_bytes
from engine.request import Request
from tests import hostile_images as hostile
from tests.bot.running import (
    answer_of,
    command,
    eventually,
    job_id_of,
    result_of,
    running_bot,
    tiny_settings,
)

module_loop = pytest.mark.asyncio(loop_scope="module")
SQUARE = {"width": 64, "height": 64}


class World:
    """The module's fake Discord and the running bot (which `restart` replaces)."""

    def __init__(self, fake: FakeDiscord, tmp: Path, moderator: Role) -> None:
        self.fake = fake
        self.settings = tiny_settings(tmp, max_pending=20, daily_images=100, max_iterations=400)
        self.moderator = moderator
        self.stack = contextlib.AsyncExitStack()
        self.bot: DoorwaysBot
        self.users = 0

    async def start(self) -> None:
        self.bot = await self.stack.enter_async_context(running_bot(self.fake, self.settings))

    async def restart(self) -> None:
        await self.stack.aclose()
        await self.fake.wait_for_bot(connected=False)
        self.stack = contextlib.AsyncExitStack()
        await self.start()

    def user(self, *roles: Role) -> User:
        self.users += 1
        return self.fake.create_user(f"person{self.users}", roles=list(roles))

    async def job(self, job_id: int) -> Job:
        job = await self.bot.store.get(job_id)
        assert job is not None
        return job

    async def paint(self, user: User, prompt: str = "a door") -> tuple[Message, Message]:
        """(status, result) of a quick /imagine by `user`."""
        handle = await command(
            self.fake, user, "imagine", {"prompt": prompt, "iterations": 2, **SQUARE}
        )
        result = await result_of(self.fake, handle)
        assert handle.original is not None
        return handle.original, result


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with FakeDiscord() as fake:
        restore = point_discord_py_at(fake.base_url)
        moderator = fake.create_role("Moderators", int(Permission.MANAGE_MESSAGES))
        world = World(fake, tmp_path_factory.mktemp("results"), moderator)
        try:
            await world.start()
            yield world
        finally:
            await world.stack.aclose()
            restore()


async def click(world: World, user: User, message: Message, job_id: int, action: str):  # type: ignore[no-untyped-def]
    handle = await world.fake.click(user, message, job_custom_id(job_id, action))
    await handle.wait_response(timeout=3.0)
    return handle


# Buttons ------------------------------------------------------------------------------------


@module_loop
async def test_result_has_buttons_and_the_status_loses_cancel(world: World) -> None:
    """The status message offers ✖ Cancel while the job waits; the result offers 🎲 🔀 📋 🗑."""
    person = world.user()
    handle = await command(world.fake, person, "imagine", {"prompt": "x", "iterations": 2})
    status = handle.original
    assert status is not None
    job_id = job_id_of(status)
    assert status.custom_ids() == [job_custom_id(job_id, "cancel")]
    result = await result_of(world.fake, handle)
    actions = ("reroll", "variation", "parameters", "timelapse", "delete")
    assert result.custom_ids() == [job_custom_id(job_id, action) for action in actions]
    await world.fake.wait_until(lambda: True if not status.custom_ids() else None)


@module_loop
async def test_reroll_by_another_person_is_theirs(world: World) -> None:
    """🎲 by someone else: same request, new seed, the parent recorded, charged to them."""
    owner, other = world.user(), world.user()
    status, result = await world.paint(owner, "a red door")
    parent = await world.job(job_id_of(status))
    handle = await click(world, other, result, parent.id, "reroll")
    assert handle.original is not None and not handle.ephemeral
    child = await world.job(job_id_of(handle.original))
    assert (child.owner_id, child.parent_job, child.kind) == (other.id, parent.id, "reroll")
    assert child.request.replace(seed=parent.request.seed) == parent.request
    assert child.request.seed != parent.request.seed
    rerolled = await result_of(world.fake, handle)
    assert f"<@{other.id}>" in rerolled.content and rerolled.attachments


@module_loop
async def test_variation_starts_from_the_picture(world: World) -> None:
    """🔀: the same prompts, the result as init image, half the iterations, a new seed."""
    owner = world.user()
    handle = await command(
        world.fake, owner, "imagine", {"prompt": "a green door", "iterations": 4, **SQUARE}
    )
    result = await result_of(world.fake, handle)
    assert handle.original is not None
    parent = await world.job(job_id_of(handle.original))
    varied = await click(world, owner, result, parent.id, "variation")
    assert varied.original is not None
    child = await world.job(job_id_of(varied.original))
    assert child.request.init_image == parent.output_path
    assert (child.iterations, child.kind, child.parent_job) == (2, "variation", parent.id)
    assert child.request.prompts == parent.request.prompts
    assert (await result_of(world.fake, varied)).attachments


@module_loop
async def test_timelapse_button_posts_the_painting_forming(world: World) -> None:
    """🎞: an animated GIF in the channel, from the random start to the finished picture."""
    owner, other = world.user(), world.user()
    status, result = await world.paint(owner, "a green door")
    job_id = job_id_of(status)
    handle = await click(world, other, result, job_id, "timelapse")
    answer = await handle.wait_followup()
    assert not handle.ephemeral and f"Job #{job_id}" in answer.content
    [gif] = answer.attachments
    assert gif.filename == f"doorways-{job_id}-timelapse.gif"
    with Image.open(io.BytesIO(gif.data)) as animation:
        assert animation.format == "GIF" and animation.n_frames == 2  # iteration 1, the result
        assert animation.size == (64, 64)


@module_loop
async def test_parameters_button_answers_privately_with_json(world: World) -> None:
    """📋: the call string in a code block, seed, models, size, and the request JSON."""
    owner, other = world.user(), world.user()
    status, result = await world.paint(owner, "a blue door")
    job = await world.job(job_id_of(status))
    handle = await click(world, other, result, job.id, "parameters")
    answer = handle.original
    assert answer is not None and handle.ephemeral
    assert f"```sh\n{job.call_string}\n```" in answer.content
    assert f"seed {job.seed}" in answer.content and "VQGAN tiny" in answer.content
    assert "64×64" in answer.content and "2 iterations" in answer.content
    [attached] = answer.attachments
    assert attached.filename == f"job-{job.id}.json"
    assert Request.from_dict(json.loads(attached.data)) == job.request


@module_loop
async def test_parameters_of_a_reuploaded_png_come_from_its_metadata(world: World) -> None:
    """ "Get parameters" on a message the bot never saw: the PNG's own metadata answers; on
    the result itself, the database does; /params takes a job number or a message link."""
    owner = world.user()
    status, result = await world.paint(owner, "a golden door")
    job = await world.job(job_id_of(status))
    [png] = [a for a in result.attachments if a.filename.endswith(".png")]
    upload = await world.fake.send_message(
        owner, world.fake.channel, "look", attachments=[Upload("mine.png", png.data)]
    )
    handle = await world.fake.context_menu(owner, upload, "Get parameters")
    await handle.wait_response()
    answer = await answer_of(world.fake, handle)
    assert handle.ephemeral
    assert "from the metadata of mine.png" in answer.content
    recovered = read_request_bytes(png.data)
    assert f"```sh\n{recovered.to_call_string()}\n```" in answer.content
    assert Request.from_dict(json.loads(answer.attachments[0].data)) == recovered

    on_result = await world.fake.context_menu(owner, result, "Get parameters")
    await on_result.wait_response()
    assert f"**Job #{job.id}**" in (await answer_of(world.fake, on_result)).content

    by_number = await command(world.fake, owner, "params", {"target": f"#{job.id}"})
    assert job.call_string in (await answer_of(world.fake, by_number)).content
    where = f"https://discord.com/channels/{world.fake.guild.id}/{upload.channel_id}"
    by_link = await command(world.fake, owner, "params", {"target": f"{where}/{result.id}"})
    assert f"**Job #{job.id}**" in (await answer_of(world.fake, by_link)).content
    # Someone's upload comes over the API without its attachments (no Message Content intent).
    to_upload = await command(world.fake, owner, "params", {"target": f"{where}/{upload.id}"})
    assert (await answer_of(world.fake, to_upload)).content == LINK_WITHOUT_CONTENT
    plain = await world.fake.send_message(owner, world.fake.channel, "no picture")
    refused = await world.fake.context_menu(owner, plain, "Get parameters")
    await refused.wait_response()
    assert refused.ephemeral
    assert "not a Doorways job" in (await answer_of(world.fake, refused)).content


@module_loop
@pytest.mark.parametrize(
    ("data", "says"),
    [
        (hostile.png_declaring(30000, 30000), "bomb.png declares 30000×30000 pixels"),
        (hostile.truncated_png(), "cannot read bomb.png as an image: image file is truncated"),
        (hostile.png_with_text("zTXt", 64 << 20), "bomb.png carries more than 1,048,576 bytes"),
        (hostile.animated("PNG"), "bomb.png carries no Doorways parameters"),
    ],
)
async def test_parameters_of_a_hostile_png_are_refused_privately(
    world: World, data: bytes, says: str
) -> None:
    """A PNG that is a decompression bomb, cut short, full of text or animated: a private
    one-line answer, and the bot goes on answering."""
    owner = world.user()
    upload = await world.fake.send_message(
        owner, world.fake.channel, "look", attachments=[Upload("bomb.png", data)]
    )
    handle = await world.fake.context_menu(owner, upload, "Get parameters")
    await handle.wait_response()
    answer = await answer_of(world.fake, handle)
    assert handle.ephemeral
    assert answer.content.startswith("That message has no Doorways parameters: ")
    assert says in answer.content and "\n" not in answer.content


@module_loop
async def test_cancel_button_stops_the_running_job_and_refuses_others(world: World) -> None:
    """✖ by someone else is refused; by the requester it stops the painting job within an
    iteration, and the status says Cancelled without buttons."""
    owner, other = world.user(), world.user()
    handle = await command(
        world.fake, owner, "imagine", {"prompt": "a slow door", "iterations": 400, **SQUARE}
    )
    status = handle.original
    assert status is not None
    job_id = job_id_of(status)
    await world.fake.wait_until(lambda: "█" in status.content or None, timeout=60)
    refused = await click(world, other, status, job_id, "cancel")
    assert refused.ephemeral and "Only the requester" in refused.original.content  # type: ignore[union-attr]
    done = await click(world, owner, status, job_id, "cancel")
    assert done.ephemeral and f"Cancelled job #{job_id}" in done.original.content  # type: ignore[union-attr]
    await world.fake.wait_until(lambda: "Cancelled." in status.content or None, timeout=10)
    assert not status.custom_ids()
    assert (await world.job(job_id)).status == "cancelled"

    async def freed() -> bool | None:
        return True if not world.bot.scheduler.running_job_ids else None

    await eventually(freed)


@module_loop
async def test_delete_by_requester_or_moderator_only(world: World) -> None:
    """🗑 by someone else: "only the requester"; by a moderator or the requester: deleted,
    and the job is marked deleted (its row stays)."""
    owner, other, moderator = world.user(), world.user(), world.user(world.moderator)
    status, result = await world.paint(owner, "a door to delete")
    job_id = job_id_of(status)
    refused = await click(world, other, result, job_id, "delete")
    assert refused.ephemeral and "Only the requester" in refused.original.content  # type: ignore[union-attr]
    assert not result.deleted
    deleted = await click(world, moderator, result, job_id, "delete")
    await deleted.wait_done()
    assert result.deleted and (await world.job(job_id)).deleted_at is not None
    status2, result2 = await world.paint(owner, "another door to delete")
    mine = await click(world, owner, result2, job_id_of(status2), "delete")
    await mine.wait_done()
    assert result2.deleted


# Reactions ----------------------------------------------------------------------------------


@module_loop
async def test_reaction_reroll_is_charged_to_the_reacting_person(world: World) -> None:
    """🎲 and 🔁 on a result queue rerolls owned by whoever reacted, acknowledged in the
    channel; a reacting person over their quota is told by DM."""
    owner, other = world.user(), world.user()
    status, result = await world.paint(owner, "a door to reroll")
    parent = job_id_of(status)
    for emoji in ("🎲", "🔁"):
        await world.fake.react(other, result, emoji)
        ack = await world.fake.wait_for_message(
            world.fake.channel,
            lambda m: m.reference_id == result.id and f"rerolls job #{parent}" in m.content,
            timeout=5,
        )
        child = await world.job(_ack_job(ack))
        assert (child.owner_id, child.parent_job, child.kind) == (other.id, parent, "reroll")
        await world.fake.wait_for_message(
            world.fake.channel, lambda m, a=ack: m.reference_id == a.id, timeout=60
        )
        await world.fake.unreact(other, result, emoji)
    assert world.fake.guild is not None
    await rules.set_quota(
        world.bot.store, world.fake.guild.id, "user", other.id, rules.QuotaOverride(0)
    )
    await world.fake.react(other, result, "🎲")
    dm = world.fake.dm_channel(other)
    refusal = await world.fake.wait_for_message(dm, lambda m: "refused" in m.content, timeout=5)
    assert "used your 0 images" in refusal.content


def _ack_job(ack: Message) -> int:
    """The job id in a reaction's acknowledgement (its second line is the status)."""
    return int(ack.content.split("**#", 1)[1].split("**", 1)[0])


@module_loop
async def test_envelope_reaction_sends_the_picture_by_dm(world: World) -> None:
    """✉️ on a result: the reacting person gets the PNG and the call string by DM."""
    owner, other = world.user(), world.user()
    status, result = await world.paint(owner, "a door by mail")
    job = await world.job(job_id_of(status))
    await world.fake.react(other, result, "✉️")
    dm = await world.fake.wait_for_message(world.fake.dm_channel(other), timeout=5)
    assert f"Job **#{job.id}**" in dm.content and job.call_string in dm.content
    assert [a.filename for a in dm.attachments] == [f"doorways-{job.id}.png"]


# Restart (last: it replaces the module's bot) -------------------------------------------------


@module_loop
async def test_buttons_and_reactions_work_after_a_restart(world: World) -> None:
    """A result posted before a restart: its 🎲 button, 📋 button and 🎲 reaction still work."""
    owner, other = world.user(), world.user()
    status, result = await world.paint(owner, "a door before the restart")
    parent = job_id_of(status)
    await world.restart()
    handle = await click(world, other, result, parent, "reroll")
    assert handle.original is not None and not handle.ephemeral
    child = await world.job(job_id_of(handle.original))
    assert (child.owner_id, child.parent_job) == (other.id, parent)
    params = await click(world, other, result, parent, "parameters")
    assert params.ephemeral and f"**Job #{parent}**" in params.original.content  # type: ignore[union-attr]
    dm = world.fake.dm_channel(owner)
    refusals_before = len(world.fake.messages(dm))
    await world.fake.react(owner, result, "🎲")

    def answer() -> Message | None:
        """The acknowledgement in the channel, or a refusal by DM (shown if the test fails)."""
        acks = [
            m
            for m in world.fake.messages(world.fake.channel)
            if f"rerolls job #{parent}" in m.content
        ]
        return (acks or world.fake.messages(dm)[refusals_before:] or [None])[-1]

    reply = await world.fake.wait_until(answer, timeout=10, what="an answer to the 🎲 reaction")
    assert f"rerolls job #{parent}" in reply.content, reply.content
    assert (await result_of(world.fake, handle)).attachments

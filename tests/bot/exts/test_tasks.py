"""/task end to end: a FakeDiscord, the real bot, a real worker process with tiny models. A task
file is uploaded as the command's attachment; what is asserted is what a person sees: the
acknowledgement (in time, how many images, the place in line), the posted images with their
call strings, and the private refusals that queue nothing.

One fake, one bot and one worker serve the whole module (a worker start costs seconds).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from PIL import Image

from bot import rules
from bot.bot import DoorwaysBot
from bot.exts.tasks import _upload
from bot.fakediscord import FakeDiscord, Message, Upload, User, point_discord_py_at
from bot.fakediscord.interactions import CallbackType, Interaction
from bot.quota import COUNTED, Limits, Policy
from bot.rules import QuotaOverride
from bot.store import Job, NewJob, count_images
from bot.views import job_custom_id
from engine import cli
from engine.prompts import Prompt
from engine.request import Request
from engine.taskfile import expand_task
from tests.bot.running import add_done, eventually, png_size, running_bot, tiny_settings

module_loop = pytest.mark.asyncio(loop_scope="module")
CALL = re.compile(r"```sh\n(?P<call>doorways generate .*)\n```", re.DOTALL)
DAILY = 3


class World:
    """The module's fake Discord and the running bot."""

    def __init__(self, fake: FakeDiscord, bot: DoorwaysBot) -> None:
        self.fake = fake
        self.bot = bot
        self.users = 0

    def user(self) -> User:
        self.users += 1
        return self.fake.create_user(f"tasker{self.users}")

    async def jobs_of(self, person: User) -> list[Job]:
        return [job for job in await self.bot.store.jobs() if job.owner_id == person.id]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    settings = tiny_settings(tmp_path_factory.mktemp("tasks"), daily_images=DAILY, max_pending=10)
    async with FakeDiscord() as fake:
        restore = point_discord_py_at(fake.base_url)
        try:
            async with running_bot(fake, settings) as bot:
                yield World(fake, bot)
        finally:
            restore()


def task_file(name: str = "lighthouse.json", **fields: Any) -> Upload:
    fields = {"text": ["a lighthouse"], "out_file": ["lighthouse"], "iterations": [2], **fields}
    return Upload(name, json.dumps(fields).encode())


async def run_task(world: World, person: User, upload: Upload) -> Interaction:
    """/task file:<upload> as `person`: a private "thinking…" within Discord's 3 s, then its
    answer filled in (and, for a queued file, the status message posted in the channel)."""
    handle = await world.fake.slash(person, world.fake.channel, "task", {"file": upload})
    response = await handle.wait_response(timeout=3.0)
    assert response.type == CallbackType.DEFERRED_CHANNEL_MESSAGE and response.ephemeral

    def answered() -> bool | None:
        private = handle.original
        if private is None or private.loading:
            return None
        queued = private.content.startswith("Queued:")
        return True if not queued or any(not m.ephemeral for m in handle.followups) else None

    await world.fake.wait_until(answered, timeout=30, what="the answer to /task")
    return handle


def status_of(handle: Interaction) -> Message:
    """The public status message a queued task file gets (its pictures reply to it)."""
    [status] = [m for m in handle.followups if not m.ephemeral]
    return status


async def refused(world: World, person: User, upload: Upload) -> str:
    """The private answer to a task file that must not run; nothing of it is queued."""
    before = len(await world.jobs_of(person))
    handle = await run_task(world, person, upload)
    assert handle.original is not None and handle.original.ephemeral
    assert not handle.followups or handle.followups == [handle.original]
    assert len(await world.jobs_of(person)) == before
    return handle.original.content


def call_request(result: Message) -> Request:
    match = CALL.search(result.content)
    assert match is not None, result.content
    return Request.from_call_string(match["call"])


# The whole path ---------------------------------------------------------------------------------


@module_loop
async def test_task_is_registered_with_a_file_option(world: World) -> None:
    """/task takes one required attachment."""
    [task] = [c for c in world.fake.commands() if c["name"] == "task"]
    [option] = task["options"]
    assert option["name"] == "file" and option["type"] == 11 and option["required"]


@module_loop
async def test_task_file_images_are_queued_painted_and_posted(world: World) -> None:
    """2 styles × each 1: acknowledged at once with both images queued (clamped to the size
    limit, the bot's own cutn), then each is painted as an ordinary job and posted as a reply,
    its call string carrying its style; the seeds are the file's."""
    fake, person = world.fake, world.user()
    upload = task_file(style=["", "Banksy"], each=[1], seed=[7], cutn=[64])
    handle = await run_task(world, person, upload)
    assert handle.response is not None and handle.response.latency < 3.0
    assert handle.original is not None and handle.original.ephemeral
    assert handle.original.content.startswith("Queued: `lighthouse.json`, 2 image(s), jobs #")
    status = status_of(handle)
    assert "**lighthouse.json** · 2 images queued, #1 in line, all ready in" in status.content
    assert 'styles none, "Banksy" × each 1 · 80×48, 2 iterations' in status.content
    assert "450×300 is over the size limit here (4,096 pixels): painted at 80×48." in (
        status.content
    )
    assert "The task file's cutn (64) is not used here" in status.content

    def results() -> list[Message] | None:
        posted = [
            m
            for m in fake.messages(fake.world.channel(status.channel_id))
            if m.reference_id == status.id and m.author is fake.bot_user and m.attachments
        ]
        return posted if len(posted) == 2 else None

    posted = await fake.wait_until(results, timeout=60)
    requests = [call_request(m) for m in posted]
    assert sorted(tuple(p.text for p in r.prompts) for r in requests) == [
        ("a lighthouse",),
        ("a lighthouse in the style of Banksy",),
    ]
    assert all((r.seed, r.iterations, r.size, r.cutn) == (7, 2, (80, 48), 2) for r in requests)
    assert all(png_size(m) == (80, 48) for m in posted)  # the size the status said
    assert all(f"<@{person.id}>" in m.content for m in posted)
    assert any('lighthouse.json: image 2 of 2 (style "Banksy", repetition 1)' in m.content
               for m in posted)  # fmt: skip

    async def delivered() -> list[Job] | None:
        jobs = await world.jobs_of(person)
        return jobs if all(job.delivered for job in jobs) else None

    jobs = await eventually(delivered)
    assert [(job.kind, job.status, job.status_message_id) for job in jobs] == [
        ("task", "done", status.id)
    ] * 2


async def posted_results(world: World, status: Message, count: int) -> list[Message]:
    """The `count` pictures posted in reply to a /task acknowledgement, once all are there."""
    fake = world.fake

    def results() -> list[Message] | None:
        posted = [
            m
            for m in fake.messages(fake.world.channel(status.channel_id))
            if m.reference_id == status.id and m.author is fake.bot_user and m.attachments
        ]
        return posted if len(posted) == count else None

    return await fake.wait_until(results, timeout=60)


async def delivered_jobs(world: World, person: User) -> list[Job]:
    async def check() -> list[Job] | None:
        jobs = await world.jobs_of(person)
        return jobs if jobs and all(job.delivered for job in jobs) else None

    return await eventually(check)


@module_loop
async def test_pictures_land_in_the_task_files_folder_per_person(world: World) -> None:
    """A task file's pictures are kept under its out_folder, in a folder of the person's own,
    named the runvqgan way OUT_FILE_N.png (+ the call string in OUT_FILE_N.txt); a second file
    with the same names goes on numbering, another person's starts at 1 in theirs."""
    outputs = world.bot.settings.outputs
    ada, ben = world.user(), world.user()
    folder = outputs / "tasks" / str(ada.id) / "robots" / "night"

    first = await run_task(world, ada, task_file(out_folder=["robots/night"], each=[2]))
    posted = await posted_results(world, status_of(first), 2)
    second = await run_task(world, ada, task_file(out_folder=["robots/night"]))
    posted += await posted_results(world, status_of(second), 1)
    other = await run_task(world, ben, task_file(out_folder=["robots/night"]))
    await posted_results(world, status_of(other), 1)

    assert sorted(p.name for p in folder.iterdir()) == [
        f"lighthouse_{n}.{ext}" for n in (1, 2, 3) for ext in ("gif", "png", "txt")
    ]  # each picture with its call string and timelapse; no hidden temporary files left
    jobs = await delivered_jobs(world, ada)
    assert [job.output_path for job in jobs] == [
        str(folder / f"lighthouse_{n}.png") for n in (1, 2, 3)
    ]
    by_job = {job.id: job for job in jobs}
    for message in posted:  # what was posted is what was kept
        [job_id] = [i for i in by_job if f"job **#{i}**" in message.content]
        [png] = [a for a in message.attachments if a.filename.endswith(".png")]
        saved = Path(str(by_job[job_id].output_path))
        assert png.data == saved.read_bytes()
        call = saved.with_suffix(".txt").read_text().strip()
        assert call == call_request(message).to_call_string() and "--output" not in call
    [ben_job] = await delivered_jobs(world, ben)
    ben_folder = outputs / "tasks" / str(ben.id) / "robots" / "night"
    assert ben_job.output_path == str(ben_folder / "lighthouse_1.png")
    assert not list(outputs.glob("job-*.png"))  # only other jobs are named job-<id>.png


@module_loop
async def test_a_task_files_count_paints_its_batches_as_grids(world: World, tmp_path: Path) -> None:
    """each 4, count 2: two jobs, each painted as one batch and posted as a grid (🖼 and 🔀 a
    picture); the quota is charged 4 images; the acknowledgement says so. Each picture is
    kept as door_N.png in picture order with the engine's own call string for it (`--count 2
    --index I`), which repaints it exactly; the grid goes where grids go."""
    fake, bot, person = world.fake, world.bot, world.user()
    await rules.set_quota(bot.store, fake.guild.id, "user", person.id, QuotaOverride(4))
    fields = {"out_file": ["door"], "out_folder": ["pairs"], "each": [4], "count": [2],
              "seed": [10]}  # fmt: skip
    upload = task_file("pairs.json", **fields)
    handle = await run_task(world, person, upload)
    assert handle.original is not None
    assert handle.original.content.startswith("Queued: `pairs.json`, 4 image(s) in 2 batches")
    status = status_of(handle)
    assert "**pairs.json** · 4 images in 2 batches queued, #1 in line" in status.content
    assert "× each 4 in batches of 2, each posted as a grid · 48×32" in status.content
    assert "not used here" not in status.content  # count is used
    async with bot.store.lock:
        assert await count_images(bot.store.db, person.id, COUNTED) == 4

    grids = await posted_results(world, status, 2)
    jobs = await delivered_jobs(world, person)
    assert [(j.request.seed, j.request.count, j.request.index) for j in jobs] == [
        (10, 2, None), (12, 2, None)
    ]  # fmt: skip
    assert any("pairs.json: images 3-4 of 4 (no style, repetitions 3-4)" in m.content
               for m in grids)  # fmt: skip
    outputs = bot.settings.outputs
    folder = outputs / "tasks" / str(person.id) / "pairs"
    assert sorted(p.name for p in folder.iterdir()) == [
        f"door_{n}.{ext}" for n in (1, 2, 3, 4) for ext in ("png", "txt")
    ]
    assert [j.pictures for j in jobs] == [
        [str(folder / "door_1.png"), str(folder / "door_2.png")],
        [str(folder / "door_3.png"), str(folder / "door_4.png")],
    ]
    assert [j.output_path for j in jobs] == [str(outputs / f"job-{j.id}.png") for j in jobs]
    engine_own = [
        job.request.replace(size=(48, 32), **bot.settings.engine_fields()).recipe()
        for job in expand_task(upload.data.decode(), defaults=bot.settings.engine_fields())
    ]
    calls = [(folder / f"door_{n}.txt").read_text().strip() for n in (1, 2, 3, 4)]
    assert calls == [request.to_call_string() for request in engine_own]
    assert "--seed 12 --count 2 --index 2" in calls[3]

    [second] = [m for m in grids if f"job **#{jobs[1].id}**" in m.content]
    [grid_png] = [a for a in second.attachments if a.filename.endswith(".png")]
    assert grid_png.filename == "door_3-4.png" and png_size(second) == (96, 32)
    actions = ("pick1", "pick2", "vary1", "vary2", "reroll", "parameters", "delete")
    assert second.custom_ids() == [job_custom_id(jobs[1].id, a) for a in actions]
    click = await fake.click(person, second, job_custom_id(jobs[1].id, "pick2"))
    alone = await click.wait_followup()
    assert "--seed 12 --count 2 --index 2" in alone.content
    assert alone.attachments[0].data == (folder / "door_4.png").read_bytes()

    again = tmp_path / "again.png"  # the call string repaints the picture, pixel for pixel
    assert cli.main([*shlex.split(calls[3])[1:], "-o", str(again)]) == 0
    with Image.open(again) as repainted, Image.open(folder / "door_4.png") as kept:
        assert repainted.tobytes() == kept.tobytes()


@module_loop
async def test_the_same_file_again_is_not_queued_twice(world: World) -> None:
    """Someone who sends the same task file again (nothing seemed to happen) is told which
    jobs it already queued; nothing more is queued. A changed file is a new one."""
    person = world.user()
    upload = task_file("retry.json", iterations=[1], out_file=["retry"])
    first = await run_task(world, person, upload)
    jobs = await world.jobs_of(person)
    assert len(jobs) == 1 and jobs[0].source_sha256 is not None
    text = await refused(world, person, upload)
    assert text.startswith(
        f"`retry.json` is the same file you queued <t:{int(jobs[0].created_at)}:R>"
    )
    assert f"jobs #{jobs[0].id}–#{jobs[0].id} (1 image(s)), so nothing was queued again" in text
    changed = await run_task(world, person, task_file("retry.json", iterations=[2]))
    assert len(await world.jobs_of(person)) == 2
    await posted_results(world, status_of(first), 1)
    await posted_results(world, status_of(changed), 1)


# Refusals ---------------------------------------------------------------------------------------


@module_loop
async def test_bad_fields_are_listed_privately(world: World) -> None:
    """Every problem of the file at once, privately; nothing is queued."""
    person = world.user()
    text = await refused(
        world,
        person,
        task_file(iterations=["many"], colour=["red"], init_image=["door.png"]),
    )
    assert text.startswith("`lighthouse.json` cannot run, so nothing was queued:\n- ")
    assert '- iterations: "many" is not a whole number' in text
    assert '- unknown field(s) "colour"' in text
    assert "- init_image: this task file cannot refer to image files" in text


async def painted_today(world: World, person: User, images: int) -> None:
    """Record `images` pictures `person` had painted today already."""
    bot = world.bot
    request = Request(prompts=(Prompt("a door"),), vqgan="tiny", clip="tiny")
    for _ in range(images):
        new = NewJob("imagine", person.id, world.fake.guild.id, 1, request)
        await add_done(bot.store, new, delivered=1)


@module_loop
async def test_a_file_over_the_quota_is_refused_whole(world: World) -> None:
    """The daily quota covers every image of the file, or none is queued: the refusal says
    how many are left; a file bigger than a whole day's quota is a problem of the file."""
    person = world.user()
    await painted_today(world, person, DAILY - 1)
    text = await refused(world, person, task_file(style=["", "Banksy"]))
    reset = (int(time.time()) // 86400 + 1) * 86400
    assert f"That is 2 images, and you have 1 of today's {DAILY} left: nothing was queued." in text
    assert f"<t:{reset}:R>" in text

    text = await refused(world, world.user(), task_file(style=["a", "b"], each=[2]))
    assert f"2 style(s) × each 2 = 4 images; this server makes at most {DAILY}" in text


@module_loop
async def test_batches_are_charged_every_picture_or_none(world: World) -> None:
    """each 4 in batches of 2 is 4 images of the quota, not 2 jobs: with 3 left it is
    refused whole."""
    person = world.user()
    await rules.set_quota(world.bot.store, world.fake.guild.id, "user", person.id,
                          QuotaOverride(5))  # fmt: skip
    await painted_today(world, person, 2)
    text = await refused(world, person, task_file(each=[4], count=[2]))
    assert "That is 4 images, and you have 3 of today's 5 left: nothing was queued." in text


@module_loop
async def test_files_that_are_not_task_files_are_refused_clearly(world: World) -> None:
    """Not JSON, too big, not UTF-8, not an object: a private answer saying so."""
    person = world.user()
    cases = [
        (Upload("notes.txt", b"paint me a door"), "not valid JSON: line 1, column 1"),
        (Upload("trailing.json", b'{"text": ["a"],}'), "column 15: a comma after the last item"),
        (Upload("list.json", b"[1, 2]"), "one JSON object in curly braces {...}, not a list"),
        (
            Upload("big.json", b" " * 70_000),
            "`big.json` is 70,000 bytes; a task file may be at most 64 KiB here",
        ),
        (Upload("photo.png", b"\x89PNG\r\n\x1a\n"), "`photo.png` is not a text file in UTF-8"),
    ]
    for upload, expected in cases:
        text = await refused(world, person, upload)
        assert expected in text, text


@module_loop
async def test_a_banned_person_cannot_run_a_task_file(world: World) -> None:
    """The guild's rules apply to task files as to every job from Discord."""
    person = world.user()
    await rules.ban(world.bot.store, world.fake.guild.id, person.id, by=1)
    text = await refused(world, person, task_file())
    assert "stopped you from painting here" in text


def test_a_count_over_the_servers_limit_is_split_with_a_note(tmp_path: Path) -> None:
    """A file's count over limits.max_count is not refused: its batches are split to the
    limit, each picture keeping its seed, with a note; every batch is painted at the size
    the largest fits (the picture left over alone too), with the bot's models."""
    text = json.dumps({"text": ["a door"], "out_file": ["door"], "each": 5, "count": 4,
                       "seed": 10})  # fmt: skip
    settings = tiny_settings(tmp_path)
    limits = dataclasses.replace(Policy(settings).limits_for([]), max_count=2)
    prepared = _upload.prepare("a.txt", text, settings, limits, tmp_path)
    assert [(p.pictures, p.request.seed, p.request.count, p.request.index) for p in prepared] == [
        (2, 10, 2, None), (2, 12, 2, None), (1, 14, 1, None)
    ]  # fmt: skip
    assert [job.seed for p in prepared for job in p.task_jobs] == [10, 11, 12, 13, 14]
    assert [job.request.index for job in prepared[1].task_jobs] == [1, 2]
    assert {p.request.size for p in prepared} == {(48, 32)}  # 2,048 pixels each, in tokens
    assert {(p.request.vqgan, p.request.cutn) for p in prepared} == {("tiny", 2)}
    note = "The task file's count (4) is over the limit here: painted in batches of 2."
    assert all(note in p.notes for p in prepared), prepared[0].notes
    assert all("shared by 2 pictures" in " ".join(p.notes) for p in prepared)
    assert _upload.images_text(prepared) == "5 images in 3 batches"


def test_limits_map_the_bots_caps() -> None:
    """Hard bounds are refused; the member's iteration and area caps are left to clamping;
    a file has at most a day's quota of images."""
    limits = _upload.task_limits(Limits(3, 10, 8, 4096, 350))
    assert limits.max_iterations == 6000 and limits.max_each == 25
    assert limits.max_resolution == (2048, 2048) and limits.max_images == 3
    assert _upload.task_limits(Limits(None, None, 6000, None, None)).max_images == 100
    assert _upload.task_limits(Limits(0, None, 6000, None, None)).max_images == 1

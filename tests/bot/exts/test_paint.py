"""/entrance and /imagine end to end: a FakeDiscord, the real bot, a real worker process with
tiny models. What is asserted is what a person sees: the acknowledgement (in time, with the
place in line), the status message's progress, the posted PNG and call string, refusals.

One fake, one bot and one worker serve the whole module (a worker start costs seconds).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from PIL import Image

from bot.bot import DoorwaysBot
from bot.errors import BadOptions
from bot.exts.paint import _build
from bot.fakediscord import ChangeKind, FakeDiscord, Message, Role, User, point_discord_py_at
from bot.messages import CRASH_NOTE
from bot.settings import RoleLimits, Settings
from bot.store import Job, NewJob
from engine.entrance import load_presets
from engine.request import Request
from tests.bot.running import (
    add_done,
    command,
    eventually,
    job_id_of,
    png_size,
    result_of,
    running_bot,
    tiny_settings,
    wait_idle,
)

module_loop = pytest.mark.asyncio(loop_scope="module")
CALL = re.compile(r"```sh\n(?P<call>doorways generate .*)\n```", re.DOTALL)


class World:
    """The module's fake Discord, its roles, and the running bot."""

    def __init__(self, fake: FakeDiscord, bot: DoorwaysBot, roles: dict[str, Role]) -> None:
        self.fake = fake
        self.bot = bot
        self.roles = roles
        self.users = 0

    def user(self, *roles: str) -> User:
        self.users += 1
        return self.fake.create_user(
            f"person{self.users}", roles=[self.roles[name] for name in roles]
        )

    async def idle(self, timeout: float = 60.0) -> None:
        """Until no job waits or runs and every outcome has been posted."""
        await wait_idle(self.bot, timeout)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    settings = tiny_settings(
        tmp_path_factory.mktemp("paint"),
        daily_images=3,
        max_pending=2,
        unlimited_roles=("Unlimited",),
        role_limits={
            "Busy": RoleLimits(max_pending=20, daily_images=100),
            "Patient": RoleLimits(max_iterations=40),
        },
        allowed_channels=("general", "painting"),
    )
    async with FakeDiscord() as fake:
        restore = point_discord_py_at(fake.base_url)
        roles = {name: fake.create_role(name) for name in ("Unlimited", "Busy", "Patient")}
        try:
            async with running_bot(fake, settings) as bot:
                yield World(fake, bot, roles)
        finally:
            restore()


def call_string(result: Message) -> str:
    match = CALL.search(result.content)
    assert match is not None, result.content
    return match["call"]


def status_updates(fake: FakeDiscord, status: Message) -> list[tuple[float, dict[str, object]]]:
    """(time, payload) of every edit of the status message, oldest first."""
    return [
        (change.at, change.payload)
        for change in fake.changes.since(0)
        if change.kind is ChangeKind.MESSAGE_UPDATE and change.message is status
    ]


# Commands as registered -----------------------------------------------------------------------


@module_loop
async def test_commands_are_registered_with_ranges_and_choices(world: World) -> None:
    """The sync registered both commands with typed, bounded options."""
    registered = {c["name"]: c for c in world.fake.commands()}
    assert {"entrance", "imagine"} <= set(registered)
    entrance = {o["name"]: o for o in registered["entrance"]["options"]}
    assert entrance["realms"]["required"] and entrance["realms"]["autocomplete"]
    assert [c["value"] for c in entrance["door"]["choices"]][:2] == ["entrance", "doorway"]
    assert (entrance["iterations"]["min_value"], entrance["iterations"]["max_value"]) == (1, 6000)
    imagine = {o["name"]: o for o in registered["imagine"]["options"]}
    assert {"prompt", "aspect", "width", "height", "iterations", "seed", "symmetry"} <= set(imagine)
    assert {"lr", "style", "panorama"} <= set(imagine)
    assert "3:2" in [c["value"] for c in imagine["aspect"]["choices"]]
    assert (imagine["lr"]["min_value"], imagine["lr"]["max_value"]) == (0.001, 1.0)
    assert imagine["width"]["type"] == 4 and imagine["lr"]["type"] == 10


@module_loop
async def test_autocomplete_offers_presets(world: World) -> None:
    """Typing into `realms` suggests the gallery's juxtapositions."""
    person = world.user()
    choices = await world.fake.autocomplete(
        person, world.fake.channel, "entrance", "realms", {"realms": "summer"}
    )
    assert choices == [{"name": "Summer / Winter (Nature)", "value": "summer-winter"}]
    everything = await world.fake.autocomplete(person, world.fake.channel, "entrance", "realms")
    assert len(everything) == 25
    picked = await command(
        world.fake, person, "entrance", {"realms": "summer-winter", "iterations": 2}
    )
    assert picked.original is not None and not picked.ephemeral
    assert "entrance to the summer realm by James Gurney \\| entrance to the winter realm" in (
        picked.original.content
    )


# The whole path ---------------------------------------------------------------------------------


@module_loop
async def test_entrance_is_acknowledged_then_painted_and_posted(world: World) -> None:
    """/entrance heaven | hell: answered at once with the place in line, the status message
    shows progress (with a preview), and the PNG is posted as a reply that mentions the
    person, with the call string that reproduces it and the job id."""
    fake, person = world.fake, world.user("Patient")  # 40 iterations: long enough, on a
    await world.idle()  # fast machine too, for progress edits between start and end
    started = time.monotonic()
    handle = await command(
        fake, person, "entrance", {"realms": "heaven | hell", "iterations": 40, "seed": 3}
    )
    assert time.monotonic() - started < 3.0 and handle.ack_latency is not None
    assert handle.response is not None and not handle.response.ephemeral
    status = handle.original
    assert status is not None
    job_id = job_id_of(status)
    assert "#1 in line, ready in" in status.content
    # The prompt as typed, Markdown escaped (a | would read as half a spoiler mark).
    assert "entrance to heaven by James Gurney \\| entrance to hell by James Gurney" in (
        status.content
    )
    assert "painted at 80×48" in status.content  # 512×256 is over this module's 64×64 area

    result = await result_of(fake, handle)
    assert f"<@{person.id}>" in result.content and person.id in result.mention_ids
    assert f"job **#{job_id}**" in result.content and "(seed 3)" in result.content
    assert png_size(result) == (80, 48)  # the size the status said
    request = Request.from_call_string(call_string(result))

    async def delivered() -> Job | None:
        job = await world.bot.store.get(job_id)
        return job if job is not None and job.delivered else None

    job = await eventually(delivered)
    assert job.status == "done" and job.result_message_id == result.id
    assert request == job.request.recipe()  # what the call string carries of the job
    assert request.seed == 3 and request.iterations == 40 and request.size == (80, 48)
    assert [p.text for p in request.prompts] == [
        "entrance to heaven by James Gurney",
        "entrance to hell by James Gurney",
    ]

    await fake.wait_until(lambda: "Done in" in status.content or None)
    assert status.attachments == []  # the preview goes when the painting is posted
    updates = status_updates(fake, status)
    assert any("█" in str(payload["content"]) for _, payload in updates)
    assert any(
        a["filename"] == "preview.png"
        for _, payload in updates
        for a in payload["attachments"]  # type: ignore[union-attr]
    )
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(updates)]
    assert all(gap >= world.bot.settings.edit_interval / 2 for gap in gaps), gaps


@module_loop
async def test_imagine_clamps_iterations_and_size_and_says_so(world: World) -> None:
    """Over the caps, the job is clamped (not refused) and the reply says how."""
    fake, person = world.fake, world.user()
    handle = await command(
        fake,
        person,
        "imagine",
        {"prompt": "a lighthouse | stormy sea:0.5", "iterations": 50, "width": 512,
         "height": 256, "seed": 5, "symmetry": "both", "lr": 0.05},
    )  # fmt: skip
    status = handle.original
    assert status is not None
    assert "50 iterations is over the limit here: clamped to 8." in status.content
    assert "512×256 is over the size limit here (4,096 pixels): painted at 80×48." in (
        status.content
    )
    result = await result_of(fake, handle)
    request = Request.from_call_string(call_string(result))
    assert (request.iterations, request.size, request.seed, request.lr) == (8, (80, 48), 5, 0.05)
    assert request.mirror == 0.5 and request.semantic_weight == 0.1 and request.tone_weight == 1
    assert "clamped to 8" in result.content  # the notes come along with the result

    square = await command(fake, person, "imagine", {"prompt": "a door", "aspect": "1:1"})
    assert square.original is not None and "64×64" in square.original.content
    await result_of(fake, square)


@module_loop
async def test_bad_options_are_refused_ephemerally(world: World) -> None:
    """What the option types let through but the bot does not accept gets a private,
    specific answer, and queues nothing."""
    fake, person = world.fake, world.user()
    cases = [
        ("entrance", {"realms": "heaven"}, "two or three realms separated by `|`"),
        ("entrance", {"realms": "a | b | c | d"}, "At most 3 realms"),
        ("entrance", {"realms": "heaven | "}, "empty realm"),
        ("imagine", {"prompt": "a door | "}, "is empty"),
        ("imagine", {"prompt": "a", "aspect": "1:1", "width": 64, "height": 64}, "not all three"),
        ("imagine", {"prompt": "a", "style": "oil | ink"}, "without `|`"),
        ("imagine", {"prompt": "x" * 400}, "the limit here is 350"),
    ]
    for name, options, expected in cases:
        handle = await command(fake, person, name, options)
        assert handle.response is not None and handle.response.ephemeral, options
        assert expected in handle.response.content, handle.response.content
    assert [j for j in await world.bot.store.jobs() if j.owner_id == person.id] == []


PRESETS = load_presets()


def test_builders_check_values_again() -> None:
    """The option builders refuse out-of-range values even if a client sent them."""
    settings = Settings(vqgan="tiny", clip="tiny")
    bad = [
        lambda: _build.entrance("a | b", settings, PRESETS, door="portal"),
        lambda: _build.entrance("a | b", settings, PRESETS, iterations=6001),
        lambda: _build.entrance("a | b", settings, PRESETS, seed=-1),
        lambda: _build.imagine("a", settings, max_area=4096, width=10_000),
        lambda: _build.imagine("a", settings, max_area=4096, aspect="5:4"),
        lambda: _build.imagine("a", settings, max_area=4096, lr=5.0),
        lambda: _build.imagine("a", settings, max_area=4096, symmetry="radial"),
        lambda: _build.imagine("a", settings, max_area=4096, iterations=0),
    ]
    for build in bad:
        with pytest.raises(BadOptions):
            build()
    preset = _build.entrance("Bodhi-Samsara", settings, PRESETS, seed=1)
    assert "the bodhi realm of enlightenment" in preset.prompts[0].text
    assert _build.imagine("a", settings, max_area=135_000, aspect="3:2").size == (450, 300)
    fast = settings.replace(precision="bf16", compile="max-autotune")
    request = _build.imagine("a", fast, max_area=4096)
    assert (request.precision, request.compile) == ("bf16", "max-autotune")  # the operator's


# Quotas and caps ----------------------------------------------------------------------------------


@module_loop
async def test_quota_refusals_are_specific_and_ephemeral(world: World) -> None:
    """Pending jobs per person, images per day (with when it resets), the channel list."""
    fake, bot = world.fake, world.bot
    busy = world.user()
    for _ in range(2):
        handle = await command(fake, busy, "imagine", {"prompt": "a door", "iterations": 2})
        assert handle.response is not None and not handle.response.ephemeral
    third = await command(fake, busy, "imagine", {"prompt": "a door", "iterations": 2})
    assert third.response is not None and third.response.ephemeral
    assert "You already have 2 jobs waiting or running" in third.response.content

    spent = world.user()
    request = _build.imagine("a door", bot.settings, max_area=4096)
    for _ in range(3):  # three images today already
        new = NewJob("imagine", spent.id, fake.guild.id, 1, request)
        await add_done(bot.store, new, delivered=1)
    refused = await command(fake, spent, "imagine", {"prompt": "a door"})
    assert refused.response is not None and refused.response.ephemeral
    reset = (int(time.time()) // 86400 + 1) * 86400
    assert "You have used your 3 images for today" in refused.response.content
    assert f"<t:{reset}:R>" in refused.response.content

    elsewhere = fake.create_channel("off-topic")
    outside = await command(fake, world.user(), "imagine", {"prompt": "a door"}, elsewhere)
    assert outside.response is not None and outside.response.ephemeral
    assert "Painting is not enabled in this channel; try #general, #painting." in (
        outside.response.content
    )


@module_loop
async def test_unlimited_role_lifts_the_caps(world: World) -> None:
    """A member with the unlimited role is not clamped."""
    fake, person = world.fake, world.user("Unlimited")
    options = {"prompt": "a door", "iterations": 10, "width": 64, "height": 64}
    handle = await command(fake, person, "imagine", options)
    assert handle.original is not None and "clamped" not in handle.original.content
    assert "10 iterations" in handle.original.content
    await result_of(fake, handle)


# Fairness ---------------------------------------------------------------------------------------


@module_loop
async def test_one_persons_jobs_do_not_hold_back_anothers(world: World) -> None:
    """Three jobs from one person, then one from another: the other's goes second."""
    fake = world.fake
    await world.idle()
    first, second = world.user("Busy"), world.user()
    handles = [
        await command(fake, first, "imagine", {"prompt": f"door {n}", "iterations": 8})
        for n in range(3)
    ]
    late = await command(fake, second, "imagine", {"prompt": "a gate", "iterations": 2})
    assert late.original is not None and "#2 in line" in late.original.content
    results = [await result_of(fake, h) for h in [*handles, late]]
    posted = sorted(results, key=lambda m: m.id)
    assert [m.id for m in posted] == [results[i].id for i in (0, 3, 1, 2)]


# Trouble ----------------------------------------------------------------------------------------


@module_loop
async def test_worker_killed_mid_job_retries_it_once(world: World) -> None:
    """kill -9 of the worker while it paints: the job is queued again with a note, a fresh
    worker paints it, and the result is posted saying so."""
    fake, bot = world.fake, world.bot
    await world.idle()
    person = world.user("Unlimited")
    options = {"prompt": "a door", "iterations": 40, "width": 64, "height": 64}
    handle = await command(fake, person, "imagine", options)
    status = handle.original
    assert status is not None
    await fake.wait_until(lambda: "█" in status.content or None, timeout=60)
    [health] = bot.scheduler.pool.health()
    pid = health.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await fake.wait_until(lambda: CRASH_NOTE in status.content or None, timeout=10)
    result = await result_of(fake, handle, timeout=120)
    assert CRASH_NOTE in result.content and png_size(result) == (64, 64)
    job = await bot.store.get(job_id_of(status))
    assert job is not None and job.status == "done" and job.attempts == 2
    assert bot.scheduler.pool.health()[0].pid != pid


# Load -----------------------------------------------------------------------------------------


@module_loop
async def test_fifty_commands_at_once_are_acknowledged_in_time(world: World) -> None:
    """50 commands from 10 people at once, while a job paints: every one is answered within
    3 s with its place in line. Prints the acknowledgement latency p50/p99."""
    fake, bot = world.fake, world.bot
    await world.idle()
    runner = world.user("Unlimited")
    options = {"prompt": "a long door", "iterations": 200, "width": 64, "height": 64}
    long = await command(fake, runner, "imagine", options)
    assert long.original is not None
    await fake.wait_until(lambda: "█" in long.original.content or None, timeout=60)  # type: ignore[union-attr]
    people = [world.user("Busy") for _ in range(10)]
    handles = await asyncio.gather(
        *(
            fake.slash(person, fake.channel, "imagine", {"prompt": f"door {n}", "iterations": 2})
            for n in range(5)
            for person in people
        )
    )
    responses = await asyncio.gather(*(h.wait_response(timeout=5.0) for h in handles))
    latencies = sorted(h.ack_latency for h in handles if h.ack_latency is not None)
    assert len(latencies) == 50
    p50 = statistics.median(latencies)
    p99 = latencies[min(49, round(0.99 * 50) - 1)]
    print(
        "\nack latency, 50 commands from 10 users while a job runs: "
        f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
    )
    assert latencies[-1] < 3.0
    assert all(not r.ephemeral and " in line, ready in " in r.content for r in responses)
    # Clean up without painting them all: the queued ones are dropped, the long one cancelled.
    async with bot.store.lock:
        await bot.store.db.execute(
            "UPDATE jobs SET status = 'cancelled', delivered = 1 WHERE status = 'queued'"
        )
    assert await bot.scheduler.cancel(job_id_of(long.original)) is not None
    await world.idle()


# Outcomes that do not fit, and failures ---------------------------------------------------------


@module_loop
async def test_long_call_string_is_attached_and_oversized_png_is_not(
    world: World, tmp_path: Path
) -> None:
    """A call string too long for a message comes as job-<id>.txt; a PNG over the upload
    limit stays on disk and the post says why."""
    fake, bot = world.fake, world.bot
    png = tmp_path / "big.png"
    Image.new("RGB", (64, 64), "red").save(png)
    person = world.user()
    request = _build.imagine("a door", bot.settings, max_area=4096)
    long_call = "doorways generate " + "'a very long prompt' " * 120
    new = NewJob("imagine", person.id, fake.guild.id, fake.channel.id, request, upload_limit=100)
    job = await add_done(
        bot.store, new, call_string=long_call, output_path=str(png), seed=9, total_s=1
    )
    await bot.reporter.deliver(job)
    posted = await fake.wait_for_message(fake.channel, lambda m: f"**#{job.id}**" in m.content)
    assert f"attached (job-{job.id}.txt)" in posted.content and "```" not in posted.content
    [text] = posted.attachments
    assert text.filename == f"job-{job.id}.txt" and text.data.decode() == long_call
    assert "over this server's upload limit" in posted.content


@module_loop
async def test_failed_job_is_posted_with_its_reason(world: World) -> None:
    """A job the worker cannot run (its model is not downloaded) is posted as a failure that
    mentions the person and says what to do."""
    fake, bot = world.fake, world.bot
    await world.idle()
    person = world.user()
    request = _build.imagine("a door", bot.settings, max_area=4096).replace(
        vqgan="vqgan_imagenet_f16_1024"
    )
    job = await bot.store.add(NewJob("imagine", person.id, fake.guild.id, fake.channel.id, request))
    bot.scheduler.wake()
    posted = await fake.wait_for_message(
        fake.channel, lambda m: f"job **#{job.id}** failed" in m.content, timeout=30
    )
    assert f"<@{person.id}>" in posted.content and person.id in posted.mention_ids
    assert "doorways models download vqgan_imagenet_f16_1024" in posted.content
    failed = await bot.store.get(job.id)
    assert failed is not None and failed.status == "failed"
    assert failed.error_kind == "model_missing"

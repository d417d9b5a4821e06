"""The quota policy and its atomic admission, on a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.errors import BadOptions, QuotaExceeded
from bot.quota import (
    DAY,
    UNLIMITED,
    Limits,
    Policy,
    admit,
    admit_all,
    day_start,
    fit_request,
    fit_size,
    size_for_aspect,
)
from bot.settings import RoleLimits, Settings
from bot.store import NewJob, Store
from engine import memory
from engine.prompts import Prompt
from engine.request import Request

NOON = 1_700_000_000.0 // DAY * DAY + DAY / 2  # a day's noon, UTC


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "jobs.sqlite3", clock=Clock(NOON))
    yield opened
    await opened.close()


def new_job(owner: int, count: int = 1) -> NewJob:
    request = Request(prompts=(Prompt("a door"),), size=(64, 64), iterations=5, seed=1, count=count)
    return NewJob("imagine", owner, 1, 2, request)


LIMITS = Limits(
    daily_images=5, max_pending=3, max_iterations=100, max_area=4096, max_prompt_length=50
)


async def test_fifty_at_once_never_pass_the_pending_limit(store: Store) -> None:
    """Concurrent admissions for one person: exactly max_pending get in."""
    results = await asyncio.gather(
        *(admit(store, new_job(1), LIMITS) for _ in range(50)), return_exceptions=True
    )
    admitted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, QuotaExceeded)]
    assert len(admitted) == 3 and len(refused) == 47
    assert "the most you can have at once (3)" in refused[0].message
    assert sorted(a.waiting.position for a in admitted) == [1, 2, 3]


async def test_daily_limit_counts_today_and_says_when_it_resets(store: Store) -> None:
    """Done jobs count toward the day, failed and cancelled ones don't; the next day is new."""
    clock = store.clock
    assert isinstance(clock, Clock)
    for status in ("done", "done", "done", "done", "failed", "cancelled"):
        job = (await admit(store, new_job(7), LIMITS)).job
        await store.db.execute("UPDATE jobs SET status = ? WHERE id = ?", (status, job.id))
    await admit(store, new_job(7), LIMITS)  # the fifth image of the day
    with pytest.raises(QuotaExceeded) as refused:
        await admit(store, new_job(7), LIMITS)
    tomorrow = int(day_start(NOON) + DAY)
    assert refused.value.resets_at == tomorrow
    assert f"resets <t:{tomorrow}:R> (00:00 UTC)" in refused.value.message
    assert "used your 5 images for today" in refused.value.message
    await store.db.execute("UPDATE jobs SET status = 'done' WHERE status = 'queued'")
    clock.now = tomorrow + 1.0
    assert (await admit(store, new_job(7), LIMITS)).job.owner_id == 7
    assert (await admit(store, new_job(8), LIMITS)).job.owner_id == 8  # others unaffected


async def test_the_daily_limit_counts_pictures_not_commands(store: Store) -> None:
    """A grid of four is four of the day's images; a batch bigger than what is left is
    refused whole, saying how many are left."""
    await store.db.execute("UPDATE jobs SET status = 'done'")
    first = (await admit(store, new_job(7, count=4), LIMITS)).job
    await store.db.execute("UPDATE jobs SET status = 'done' WHERE id = ?", (first.id,))
    with pytest.raises(QuotaExceeded) as refused:
        await admit(store, new_job(7, count=2), LIMITS)
    assert "That is 2 images, and you have 1 of today's 5 left" in refused.value.message
    await admit(store, new_job(7), LIMITS)  # the fifth
    with pytest.raises(QuotaExceeded, match="used your 5 images"):
        await admit(store, new_job(7), LIMITS)
    with pytest.raises(QuotaExceeded, match="That is 8 images, and you have 5"):
        await admit_all(store, [new_job(9, count=4), new_job(9, count=4)], LIMITS)


async def test_unlimited_admits_everything(store: Store) -> None:
    for _ in range(10):
        await admit(store, new_job(3), UNLIMITED)
    assert len(await store.jobs(["queued"])) == 10


def test_roles_loosen_limits_and_unlimited_lifts_them() -> None:
    """A member gets the most generous value among the settings and their roles."""
    settings = Settings(
        daily_images=25,
        max_pending=3,
        max_iterations=1000,
        unlimited_roles=(42, "Admins"),
        role_limits={
            "Patron": RoleLimits(daily_images=100, max_size=(640, 480)),
            "123": RoleLimits(max_pending=1, max_iterations=3000),
        },
    )
    policy = Policy(settings)
    cpu = tuple(135_000 // count for count in range(1, 5))  # a CPU: the wait, shared
    assert policy.limits_for([]) == Limits(25, 3, 1000, 135_000, 350, memory_areas=cpu)
    assert policy.limits_for([(9, "Patron")]) == Limits(100, 3, 1000, 307_200, 350)
    both = policy.limits_for([(9, "Patron"), (123, "x")])
    assert both == Limits(100, 3, 3000, 307_200, 350)  # a stricter role never tightens
    assert policy.limits_for([(42, "y")]) is UNLIMITED
    assert policy.limits_for([(7, "Admins")]) is UNLIMITED
    assert UNLIMITED.max_iterations == 6000  # the hard maximum holds even then


def test_size_cap_follows_the_workers_gpu_unless_configured() -> None:
    """Unset, the cap is what fits the worker's GPU memory (450×300 on a CPU or before the
    worker reports); a configured max_size always wins."""
    gpu: list[int | None] = [None]
    policy = Policy(Settings(cutn=32), lambda: gpu[0])
    assert policy.base.max_area == 450 * 300  # no GPU (yet)
    gpu[0] = 8 * 2**30
    eight = policy.base.max_area
    gpu[0] = 24 * 2**30
    twenty_four = policy.base.max_area
    assert 450 * 300 < eight < twenty_four
    assert memory.peak_bytes(twenty_four, 32) <= 24 * 2**30
    assert policy.limits_for([]).max_area == twenty_four
    gpu[0] = 2 * 2**30  # the estimate fits nothing: still small pictures, not none
    assert policy.base.max_area == 64 * 64
    fixed = Policy(Settings(max_size=(640, 480)), lambda: 24 * 2**30)
    assert fixed.base.max_area == 640 * 480


def test_a_batchs_size_cap_is_what_the_gpu_holds_for_the_batch() -> None:
    """On a GPU the cap of each picture of a batch of N is what fits beside N − 1 others
    (the weights once, every picture's activations and cutouts), which is less than a
    single picture's cap over N; a configured size, or a role's larger one, is shared by
    the batch instead; a channel's smaller cap still holds."""
    gpu = 8 * 2**30
    roles = {"Big": RoleLimits(max_size=(4096, 4096)), "Daily": RoleLimits(daily_images=99)}
    policy = Policy(Settings(cutn=32, role_limits=roles), lambda: gpu)
    limits = policy.limits_for([])
    for count in (1, 2, 4):
        each = limits.area_each(count)
        assert each == memory.largest_area(gpu, 32, count)
        assert memory.peak_bytes(each, 32, count) <= gpu
        assert memory.peak_bytes(each + 64**2, 32, count) > gpu  # the most that fits
    assert limits.area_each(4) < limits.max_area // 4  # the cutouts' memory is per picture
    request = Request(prompts=(Prompt("a door"),), size=(1024, 768), count=4)
    fitted, notes = fit_request(request, limits)
    assert memory.peak_bytes(fitted.size[0] * fitted.size[1], 32, 4) <= gpu
    assert "shared by 4 pictures" in notes[0]

    daily = policy.limits_for([(6, "Daily")])  # a role that leaves the size alone
    assert daily.daily_images == 99 and daily.area_each(4) == limits.area_each(4)
    big = policy.limits_for([(5, "Big")])  # the admin's word over the estimate
    assert big.memory_areas == () and big.area_each(4) == 4096 * 4096 // 4
    channel = replace(limits, max_area=200_000)  # bot.rules: a channel's smaller cap
    assert channel.area_each(1) == 200_000 and channel.area_each(4) == limits.area_each(4)
    assert Policy(Settings(max_size=(640, 480)), lambda: gpu).base.memory_areas == ()
    cpu = Policy(Settings(cutn=32)).limits_for([])
    assert cpu.area_each(2) == 450 * 300 // 2  # on a CPU: a 450×300 picture's wait, shared


def test_every_clip_model_of_the_settings_shrinks_the_size_cap() -> None:
    """engine.clip with two models: the cap on the same GPU is smaller than with one, and
    is what the memory estimate of both allows."""
    gib24 = 24 * 2**30
    one = Policy(Settings(cutn=32, clip="ViT-B/32"), lambda: gib24).base.max_area
    two = Policy(Settings(cutn=32, clip="ViT-B/32,ViT-B/16:0.5"), lambda: gib24).base.max_area
    assert two < one
    assert two == memory.largest_area(gib24, 32, clips=("ViT-B/32", "ViT-B/16"))
    assert memory.peak_bytes(two, 32, clips=("ViT-B/32", "ViT-B/16")) <= gib24
    batch = Policy(Settings(cutn=32, clip="ViT-B/32,ViT-B/16"), lambda: gib24).limits_for([])
    assert batch.area_each(4) == memory.largest_area(gib24, 32, 4, ("ViT-B/32", "ViT-B/16"))


def test_channel_allow_list() -> None:
    assert Policy(Settings()).channel_allowed(1)
    policy = Policy(Settings(allowed_channels=(11, "painting")))
    assert policy.channel_allowed(11) and policy.channel_allowed(5, ["painting"])
    assert policy.channel_allowed(99, ["thread"], 11)  # a thread in an allowed channel
    assert not policy.channel_allowed(12, ["general"])


def test_fit_request_clamps_with_notes_and_refuses_long_prompts() -> None:
    request = Request(prompts=(Prompt("a door"),), size=(512, 256), iterations=500)
    fitted, notes = fit_request(request, LIMITS)
    assert fitted.iterations == 100 and fitted.size == (80, 48)  # whole 16-pixel tokens
    assert notes == [
        "500 iterations is over the limit here: clamped to 100.",
        "512×256 is over the size limit here (4,096 pixels): painted at 80×48.",
    ]
    assert fit_request(fitted, LIMITS) == (fitted, [])
    with pytest.raises(BadOptions, match="55 characters long"):
        fit_request(request.replace(prompts=(Prompt("x" * 55),)), LIMITS)


@pytest.mark.parametrize(
    ("aspect", "area", "expected"),
    [("3:2", 135_000, (450, 300)), ("1:1", 4096, (64, 64)), ("2:1", 131_072, (512, 256))],
)
def test_size_for_aspect(aspect: str, area: int, expected: tuple[int, int]) -> None:
    width, height = size_for_aspect(aspect, area)
    assert (width, height) == expected and width * height <= area


def test_fit_size_is_the_painted_size_within_the_limit() -> None:
    """The size that comes out: whole VQGAN tokens (16 px, or 8 for an f8 model), as the
    engine rounds; over the limit, scaled down within it, keeping the aspect near."""
    assert fit_size(96, 48, None) == (96, 48) and fit_size(100, 50, None) == (96, 48)
    assert fit_size(60, 60, 4096) == (64, 64) and fit_size(450, 300, None) == (448, 304)
    assert fit_size(90, 50, None) == (96, 48) and fit_size(90, 50, None, factor=8) == (88, 48)
    assert fit_size(181, 90, 128 * 128) == (176, 80)  # 176×96 would be over 16,384 pixels
    width, height = fit_size(4096, 1024, 135_000)
    assert width % 16 == height % 16 == 0
    assert width * height <= 135_000 and abs(width / height - 4) < 0.1
    assert fit_size(64, 64, 100) == (16, 16)  # one token a side at the least


async def set_status(store: Store, job_id: int, status: str) -> None:
    await store.db.execute("UPDATE jobs SET status = ? WHERE id = ?", (status, job_id))


async def test_the_daily_quota_counts_queued_and_running_jobs(store: Store) -> None:
    """A painting job and a waiting one are two of today's images already: with a quota of
    three, one more gets in and the next is refused (pending limit out of the way)."""
    limits = Limits(daily_images=3, max_pending=None, max_iterations=100, max_area=None,
                    max_prompt_length=None)  # fmt: skip
    running = (await admit(store, new_job(5), limits)).job
    await set_status(store, running.id, "running")
    await admit(store, new_job(5), limits)  # queued
    await admit(store, new_job(5), limits)
    with pytest.raises(QuotaExceeded, match="used your 3 images for today"):
        await admit(store, new_job(5), limits)
    assert len(await store.jobs(["queued", "running"])) == 3


async def test_admit_all_takes_the_batch_as_one_command_against_pending_jobs(
    store: Store,
) -> None:
    """With two of three pending slots taken, a batch of four still gets in whole (it counts
    as one command); with all three taken, nothing of a batch does."""
    roomy = Limits(daily_images=None, max_pending=3, max_iterations=100, max_area=None,
                   max_prompt_length=None)  # fmt: skip
    for _ in range(2):
        await admit(store, new_job(4), roomy)
    batch = await admit_all(store, [new_job(4) for _ in range(4)], roomy)
    assert [a.waiting.position for a in batch] == [3, 4, 5, 6]
    assert len(await store.jobs(["queued"])) == 6
    other = [await admit(store, new_job(6), roomy) for _ in range(3)]
    await set_status(store, other[0].job.id, "running")  # running counts as pending too
    with pytest.raises(QuotaExceeded, match=r"You already have 3 jobs waiting or running"):
        await admit_all(store, [new_job(6)], roomy)
    assert len(await store.jobs(["queued", "running"])) == 9


async def test_admit_all_counts_todays_pending_and_done_images_and_queues_all_or_none(
    store: Store,
) -> None:
    """A quota of 5 with one done, one running and one queued today leaves 2: a batch of 3 is
    refused whole, saying so, and queues nothing; a batch of 2 fits exactly."""
    daily = Limits(daily_images=5, max_pending=None, max_iterations=100, max_area=None,
                   max_prompt_length=None)  # fmt: skip
    jobs = [(await admit(store, new_job(9), daily)).job for _ in range(3)]
    await set_status(store, jobs[0].id, "done")
    await set_status(store, jobs[1].id, "running")
    with pytest.raises(QuotaExceeded) as refused:
        await admit_all(store, [new_job(9) for _ in range(3)], daily)
    assert "That is 3 images, and you have 2 of today's 5 left: nothing was queued" in (
        refused.value.message
    )
    assert refused.value.resets_at == int(day_start(NOON) + DAY)
    assert len(await store.jobs()) == 3
    assert len(await admit_all(store, [new_job(9) for _ in range(2)], daily)) == 2
    with pytest.raises(QuotaExceeded, match="you have 0 of today's 5 left"):
        await admit_all(store, [new_job(9)], daily)


async def test_admit_all_takes_one_persons_jobs(store: Store) -> None:
    with pytest.raises(ValueError, match="one person's jobs"):
        await admit_all(store, [new_job(1), new_job(2)], LIMITS)
    with pytest.raises(ValueError, match="at least one"):
        await admit_all(store, [], LIMITS)


def test_every_role_override_counts_whatever_order_the_roles_come_in() -> None:
    """A role without overrides before the one with them changes nothing; each overridden
    limit (pending, prompt length, daily, iterations, size) is loosened by it."""
    settings = Settings(
        daily_images=25, max_pending=3, max_iterations=1000, max_prompt_length=350,
        role_limits={"Patron": RoleLimits(
            daily_images=100, max_pending=8, max_iterations=2000, max_size=(640, 480),
            max_prompt_length=900,
        )},
    )  # fmt: skip
    patron = Limits(100, 8, 2000, 307_200, 900)
    policy = Policy(settings)
    assert policy.limits_for([(9, "Patron")]) == patron
    assert policy.limits_for([(1, "Everyone"), (2, "Artists"), (9, "Patron")]) == patron


def test_fit_size_keeps_16_pixels_a_side_and_aspect_sizes_stay_under_4096() -> None:
    """A very long picture scaled into a small area keeps at least 16 px on its short side;
    a very large area for an aspect stops at 4096 px on the long side."""
    assert fit_size(4096, 64, 4096) == (512, 16)
    assert fit_size(64, 4096, 4096) == (16, 512)
    assert size_for_aspect("4:1", 10**8) == (4096, 1024)
    assert size_for_aspect("1:4", 10**8) == (1024, 4096)


def test_a_prompt_exactly_at_the_limit_is_accepted() -> None:
    request = Request(prompts=(Prompt("x" * 50),), size=(64, 64), iterations=5)
    assert fit_request(request, LIMITS) == (request, [])


async def test_the_pending_refusal_says_how_many_in_words(store: Store) -> None:
    one = Limits(daily_images=None, max_pending=1, max_iterations=100, max_area=None,
                 max_prompt_length=None)  # fmt: skip
    await admit(store, new_job(2), one)
    with pytest.raises(QuotaExceeded) as refused:
        await admit(store, new_job(2), one)
    assert refused.value.message == (
        "You already have 1 job waiting or running, the most you can have at once (1). "
        "Send this again when one of them has finished."
    )


async def test_admit_all_counts_only_today_and_returns_the_queued_jobs(store: Store) -> None:
    """Yesterday's five images leave today's quota whole: a batch of five fits, and each
    admission carries its queued job, in order."""
    clock = store.clock
    assert isinstance(clock, Clock)
    daily = Limits(daily_images=5, max_pending=None, max_iterations=100, max_area=None,
                   max_prompt_length=None)  # fmt: skip
    for job in await admit_all(store, [new_job(3) for _ in range(5)], daily):
        await set_status(store, job.job.id, "done")
    clock.now = NOON + DAY
    admitted = await admit_all(store, [new_job(3) for _ in range(5)], daily)
    assert [a.job.status for a in admitted] == ["queued"] * 5
    assert [a.job.id for a in admitted] == sorted(a.job.id for a in admitted)
    assert all(a.job.owner_id == 3 and a.job.created_at == NOON + DAY for a in admitted)


def test_fit_size_keeps_the_nearest_aspect_and_a_size_exactly_at_the_limit() -> None:
    """Over the limit, of the whole-token sizes that fit, the one nearest the asked aspect
    (not the squarest, nor the one that keeps most pixels); exactly the limit fits."""
    # 1060×570 (1.86:1) in 15,468 px: 160×96 (1.67:1), 176×80 (2.2:1) and 160×80 (2:1) fit.
    assert fit_size(1060, 570, 15_468) == (160, 80)
    # 256×128 in 30,720 px: 240×128 is exactly the limit, and nearer 2:1 than 240×112.
    assert fit_size(256, 128, 30_720) == (240, 128)


def test_fit_request_uses_the_models_tokens_and_a_clamped_batch_drops_its_index() -> None:
    """An f8 VQGAN paints in 8-px tokens, so 88×48 stays 88×48; `--count 4 --index 3` (one
    picture of a batch) clamped to 2 pictures becomes a batch of 2, not an invalid index."""
    f8 = Request(prompts=(Prompt("a door"),), size=(88, 48), vqgan="vqgan_gumbel_f8_8192")
    assert fit_request(f8, UNLIMITED)[0].size == (88, 48)
    pick = Request(prompts=(Prompt("a door"),), size=(64, 64), seed=5, count=4, index=3)
    fitted, _ = fit_request(pick, Limits(None, None, 100, None, None, max_count=2))
    assert (fitted.count, fitted.index, fitted.seed) == (2, None, 5)


def test_fit_request_clamps_the_count_and_shares_the_size_cap() -> None:
    """A batch over limits.max_count is clamped; its pictures share the size cap."""
    request = Request(prompts=(Prompt("a door"),), size=(64, 64), iterations=5, count=4)
    limits = Limits(None, None, 100, 64 * 64, None, max_count=2)
    fitted, notes = fit_request(request, limits)
    assert fitted.count == 2 and fitted.size == (32, 32)  # whole tokens, 2 × 32² ≤ 64²
    assert notes[0] == "4 pictures is over the limit here: clamped to 2."
    assert "shared by 2 pictures" in notes[1]
    assert fit_request(request.replace(count=1), limits)[0].size == (64, 64)
    policy = Policy(Settings(max_count=3))
    assert policy.limits_for([]).max_count == 3

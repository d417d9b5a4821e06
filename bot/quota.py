"""The quota policy: who may paint how much, where, and how big; checked atomically.

`Policy.limits_for(roles)` gives a member's `Limits` (the settings, loosened by role
overrides; an unlimited role lifts them all except the hard iteration maximum).
`fit_request` clamps what may be clamped (iterations, size) and says so; `admit` counts the
person's jobs and inserts the new one in one `BEGIN IMMEDIATE` transaction, so fifty commands
at once can never slip past a limit together.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import aiosqlite

from bot.errors import BadOptions, QuotaExceeded
from bot.settings import HARD_MAX_ITERATIONS, Settings
from bot.store import (
    PENDING,
    Job,
    NewJob,
    Store,
    Waiting,
    count_images,
    count_jobs,
    insert_job,
    place_in_line,
)
from engine import memory
from engine.clips import model_names
from engine.prompts import render_prompts
from engine.registry import DEFAULT_FACTOR, token_grid, vqgan_factor
from engine.request import MAX_COUNT, Request

DAY = 86_400.0
MIN_SIDE = 64
COUNTED: tuple[str, ...] = ("queued", "running", "done")  # failed and cancelled jobs are free


@dataclass(frozen=True)
class Limits:
    """One member's limits; None means no limit."""

    daily_images: int | None
    max_pending: int | None
    max_iterations: int
    max_area: int | None
    max_prompt_length: int | None
    max_count: int = MAX_COUNT  # pictures per command (limits.max_count; not per role)
    # What the GPU's memory holds: the largest picture of a batch of 1, 2, …, MAX_COUNT
    # (engine.memory: the weights once, each picture's activations). Empty when a configured
    # size cap stands instead of the memory's.
    memory_areas: tuple[int, ...] = ()

    @property
    def max_size_text(self) -> str:
        return "no limit" if self.max_area is None else f"{self.max_area:,} pixels"

    def area_each(self, count: int) -> int | None:
        """The size cap of each picture of a batch of `count`: the batch shares max_area,
        and each picture fits beside the others in the GPU's memory."""
        if self.max_area is None:
            return None
        shared = self.max_area // count
        return min(shared, self.memory_areas[count - 1]) if self.memory_areas else shared


UNLIMITED = Limits(None, None, HARD_MAX_ITERATIONS, None, None)


class Policy:
    """The configured limits and channel allow-list.

    `device_memory` reports the worker's GPU memory in bytes (None: a CPU, or not started
    yet); with `limits.max_size` unset, the size cap is what fits in it.
    """

    def __init__(
        self, settings: Settings, device_memory: Callable[[], int | None] = lambda: None
    ) -> None:
        self.settings = settings
        self.device_memory = device_memory

    @property
    def max_area(self) -> int:
        """The size cap in pixels: configured, or what the worker's GPU memory allows."""
        if self.settings.max_area is not None:
            return self.settings.max_area
        return self.memory_areas()[0]

    def memory_areas(self) -> tuple[int, ...]:
        """The largest picture of a batch of 1, 2, …, MAX_COUNT that the worker's GPU memory
        holds with every model of engine.clip (on a CPU: a 450×300 picture's wait, shared
        by the batch)."""
        device_memory, cutn = self.device_memory(), self.settings.cutn
        clips = model_names(self.settings.clip)
        # A small card still paints small pictures; an out-of-memory failure says so.
        return tuple(
            max(memory.largest_area(device_memory, cutn, count, clips), MIN_SIDE**2)
            for count in range(1, MAX_COUNT + 1)
        )

    @property
    def base(self) -> Limits:
        """Everyone's limits before role overrides."""
        s = self.settings
        areas = self.memory_areas() if s.max_area is None else ()
        area = s.max_area if s.max_area is not None else areas[0]
        return Limits(
            s.daily_images, s.max_pending, s.max_iterations, area, s.max_prompt_length,
            s.max_count, areas,
        )  # fmt: skip

    def limits_for(self, roles: Iterable[tuple[int, str]] = ()) -> Limits:
        """The limits of a member with these (role id, role name) pairs: the most generous
        value of each limit among the settings and the member's role overrides."""
        roles = list(roles)
        unlimited = {str(r) for r in self.settings.unlimited_roles}
        if any(str(role_id) in unlimited or name in unlimited for role_id, name in roles):
            return UNLIMITED
        limits = self.base
        for role_id, name in roles:
            override = self.settings.role_limits.get(str(role_id)) or self.settings.role_limits.get(
                name
            )
            if override is None:
                continue
            size = override.max_size
            area = None if size is None else size[0] * size[1]
            most = _most(limits.max_area, area)
            limits = Limits(
                _most(limits.daily_images, override.daily_images),
                _most(limits.max_pending, override.max_pending),
                max(limits.max_iterations, override.max_iterations or 0),
                most,
                _most(limits.max_prompt_length, override.max_prompt_length),
                limits.max_count,
                # A role's larger max_size is the admin's word over the memory estimate.
                limits.memory_areas if most == limits.max_area else (),
            )
        return limits

    def channel_allowed(self, channel_id: int, names: Iterable[str] = (), *parents: int) -> bool:
        """True if painting is allowed in this channel (by id, name, or a parent's id:
        a thread inherits its channel's permission)."""
        allowed = self.settings.allowed_channels
        if not allowed:
            return True
        wanted = {str(a) for a in allowed}
        return bool(wanted & ({str(channel_id), *(str(p) for p in parents), *names}))


def _most(current: int | None, override: int | None) -> int | None:
    """The more generous of two limits (None: unlimited)."""
    if current is None or override is None:
        return current if override is None else None
    return max(current, override)


# Fitting a request to the limits -----------------------------------------------------------------


def fit_size(
    width: int, height: int, max_area: int | None, factor: int = DEFAULT_FACTOR
) -> tuple[int, int]:
    """The size a picture is painted at: whole tokens of `factor` pixels (the VQGAN's grid, as
    the engine rounds), scaled down to at most `max_area` pixels when it is bigger, keeping
    the aspect as near as the grid allows (one token a side at the least)."""
    grid = token_grid((width, height), factor)
    if max_area is not None and grid[0] * grid[1] * factor**2 > max_area:
        scale = math.sqrt(max_area / (width * height))
        across, down = width * scale / factor, height * scale / factor
        ways = {
            (max(1, round_x(across)), max(1, round_y(down)))
            for round_x in (round, math.floor)
            for round_y in (round, math.floor)
        }
        fitting = [w for w in ways if w[0] * w[1] * factor**2 <= max_area] or [min(ways)]
        aspect = width / height
        grid = min(fitting, key=lambda w: (abs(math.log(w[0] / w[1] / aspect)), -w[0] * w[1]))
    return grid[0] * factor, grid[1] * factor


def size_for_aspect(aspect: str, max_area: int, *, max_side: int = 4096) -> tuple[int, int]:
    """The largest whole-pixel size with aspect `W:H` (e.g. `3:2`) within `max_area`."""
    left, _, right = aspect.partition(":")
    a, b = int(left), int(right)
    height = math.sqrt(max_area * b / a)
    width, height = math.floor(height * a / b), math.floor(height)
    scale = min(1.0, max_side / max(width, height))
    return max(16, math.floor(width * scale)), max(16, math.floor(height * scale))


def fit_request(request: Request, limits: Limits) -> tuple[Request, list[str]]:
    """Clamp iterations and size to `limits`, with a note for each change; refuse prompts that
    are too long (BadOptions)."""
    notes = []
    prompt = render_prompts(request.prompts)
    if limits.max_prompt_length is not None and len(prompt) > limits.max_prompt_length:
        raise BadOptions(
            f"The prompt is {len(prompt)} characters long (with the door words and style); "
            f"the limit here is {limits.max_prompt_length}. Shorten it and try again."
        )
    if request.iterations > limits.max_iterations:
        notes.append(
            f"{request.iterations} iterations is over the limit here: clamped to "
            f"{limits.max_iterations}."
        )
        request = request.replace(iterations=limits.max_iterations)
    if request.count > limits.max_count:
        notes.append(
            f"{request.count} pictures is over the limit here: clamped to {limits.max_count}."
        )
        request = request.replace(count=limits.max_count, index=None)
    width, height = request.size
    area = limits.area_each(request.count)
    fitted = fit_size(width, height, area, vqgan_factor(request.vqgan))
    if area is not None and width * height > area:
        shared = f", shared by {request.count} pictures" if request.count > 1 else ""
        notes.append(
            f"{width}×{height} is over the size limit here ({limits.max_size_text}{shared}): "
            f"painted at {fitted[0]}×{fitted[1]}."
        )
    # The size that comes out (whole VQGAN tokens): what the status, the call string and the
    # PNG all say.
    request = request.replace(size=fitted)
    return request, notes


# Admission --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Admission:
    job: Job
    waiting: Waiting


def day_start(now: float) -> float:
    """The start (00:00 UTC) of the day `now` falls in."""
    return math.floor(now / DAY) * DAY


async def _check_pending(db: aiosqlite.Connection, owner_id: int, limits: Limits) -> None:
    """Raise QuotaExceeded if the person already has as many jobs waiting as they may."""
    if limits.max_pending is None:
        return
    pending = await count_jobs(db, owner_id, PENDING)
    if pending >= limits.max_pending:
        raise QuotaExceeded(
            f"You already have {pending} job{'s' if pending != 1 else ''} waiting or "
            f"running, the most you can have at once ({limits.max_pending}). "
            "Send this again when one of them has finished."
        )


async def admit(store: Store, new: NewJob, limits: Limits) -> Admission:
    """Check the person's pending and daily counts and queue the job, atomically.

    Raises QuotaExceeded (saying when it frees up) and inserts nothing when a limit is met.
    """
    async with store.transaction() as db:
        now = store.clock()
        await _check_pending(db, new.owner_id, limits)
        if limits.daily_images is not None:
            start = day_start(now)
            used = await count_images(db, new.owner_id, COUNTED, since=start)  # type: ignore[arg-type]
            left = max(0, limits.daily_images - used)
            resets = int(start + DAY)
            if left == 0:
                raise QuotaExceeded(
                    f"You have used your {limits.daily_images} images for today. "
                    f"The quota resets <t:{resets}:R> (00:00 UTC).",
                    resets_at=resets,
                )
            if new.request.count > left:
                raise QuotaExceeded(
                    f"That is {new.request.count} images, and you have {left} of today's "
                    f"{limits.daily_images} left: ask for {left} (count) or wait until the "
                    f"quota resets <t:{resets}:R> (00:00 UTC).",
                    resets_at=resets,
                )
        job_id = await insert_job(db, new, now)
        waiting = await place_in_line(db, job_id)
    assert waiting is not None
    job = await store.get(job_id)
    assert job is not None
    return Admission(job, waiting)


async def admit_all(store: Store, news: Sequence[NewJob], limits: Limits) -> list[Admission]:
    """Queue several jobs of one person (a task file's images) under one check: all or none.

    The pending limit takes the batch as one command (refused only if the person already has
    as many jobs waiting as they may); the daily quota counts every image. Raises
    QuotaExceeded, saying how many images are left today, and inserts nothing when the batch
    does not fit.
    """
    if not news or len({new.owner_id for new in news}) != 1:
        raise ValueError("admit_all takes one person's jobs, at least one")
    owner = news[0].owner_id
    async with store.transaction() as db:
        now = store.clock()
        await _check_pending(db, owner, limits)
        if limits.daily_images is not None:
            start = day_start(now)
            used = await count_images(db, owner, COUNTED, since=start)  # type: ignore[arg-type]
            left = max(0, limits.daily_images - used)
            wanted = sum(new.request.count for new in news)
            if wanted > left:
                resets = int(start + DAY)
                raise QuotaExceeded(
                    f"That is {wanted} images, and you have {left} of today's "
                    f"{limits.daily_images} left: nothing was queued. The quota resets "
                    f"<t:{resets}:R> (00:00 UTC).",
                    resets_at=resets,
                )
        ids = [await insert_job(db, new, now) for new in news]
        places = [await place_in_line(db, job_id) for job_id in ids]
    admissions = []
    for job_id, waiting in zip(ids, places, strict=True):
        job = await store.get(job_id)
        assert job is not None and waiting is not None
        admissions.append(Admission(job, waiting))
    return admissions

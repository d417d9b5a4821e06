"""What admins and people set from Discord, kept in the database (migrations/V2): the
painter's pause, each guild's caps, quota overrides for a user or a role, bans, and each
person's /settings. Plain functions over the store; `apply_rules`, which every job that is
queued from Discord goes through (bot.jobs); and who counts as an admin or a moderator.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import aiosqlite
import discord
from discord.ext import commands

from bot.errors import DoorwaysError
from bot.quota import Limits
from bot.settings import Settings
from bot.store import Store


class Banned(DoorwaysError):
    """The person may not paint in this guild (/admin ban)."""


# The pauses: of every guild (one GPU serves them all), and of one guild --------------------------


async def is_paused(store: Store) -> bool:
    async with store.lock:
        cursor = await store.db.execute("SELECT value FROM bot_state WHERE key = 'paused'")
        row = await cursor.fetchone()
    return row is not None and row[0] == "1"


async def set_paused(store: Store, paused: bool) -> None:
    async with store.lock:
        await store.db.execute(
            "INSERT INTO bot_state (key, value) VALUES ('paused', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            ("1" if paused else "0",),
        )


async def set_guild_paused(store: Store, guild_id: int, paused: bool, by: int) -> bool:
    """Pause (or resume) one guild's queued jobs; False if it already was (or was not)."""
    async with store.lock:
        if paused:
            cursor = await store.db.execute(
                "INSERT INTO paused_guilds VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (guild_id, by, store.clock()),
            )
        else:
            cursor = await store.db.execute(
                "DELETE FROM paused_guilds WHERE guild_id = ?", (guild_id,)
            )
        return cursor.rowcount > 0


async def paused_guilds(store: Store) -> set[int]:
    async with store.lock:
        cursor = await store.db.execute("SELECT guild_id FROM paused_guilds")
        return {row[0] for row in await cursor.fetchall()}


# Guild caps -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caps:
    """A guild's own limits (None: the configured one)."""

    max_iterations: int | None = None
    max_width: int | None = None
    max_height: int | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.max_iterations, self.max_width, self.max_height))


async def get_caps(store: Store, guild_id: int | None) -> Caps:
    if guild_id is None:
        return Caps()
    async with store.lock:
        cursor = await store.db.execute(
            "SELECT max_iterations, max_width, max_height FROM guild_caps WHERE guild_id = ?",
            (guild_id,),
        )
        row = await cursor.fetchone()
    return Caps() if row is None else Caps(*row)


async def set_caps(store: Store, guild_id: int, caps: Caps) -> None:
    async with store.lock:
        await store.db.execute(
            "INSERT INTO guild_caps (guild_id, max_iterations, max_width, max_height)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (guild_id) DO UPDATE SET"
            " max_iterations = excluded.max_iterations, max_width = excluded.max_width,"
            " max_height = excluded.max_height",
            (guild_id, caps.max_iterations, caps.max_width, caps.max_height),
        )


# Quota overrides --------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaOverride:
    """A user's or a role's quota in one guild (None: the configured one)."""

    daily_images: int | None = None
    max_pending: int | None = None


async def set_quota(
    store: Store, guild_id: int, kind: str, target_id: int, quota: QuotaOverride | None
) -> None:
    """Set (or, with None, remove) the override of user or role `target_id`."""
    async with store.lock:
        if quota is None:
            await store.db.execute(
                "DELETE FROM quota_overrides WHERE guild_id = ? AND target_kind = ?"
                " AND target_id = ?",
                (guild_id, kind, target_id),
            )
            return
        await store.db.execute(
            "INSERT INTO quota_overrides VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (guild_id, target_kind, target_id) DO UPDATE SET"
            " daily_images = excluded.daily_images, max_pending = excluded.max_pending",
            (guild_id, kind, target_id, quota.daily_images, quota.max_pending),
        )


async def _overrides(
    db: aiosqlite.Connection, guild_id: int, user_id: int, role_ids: Iterable[int]
) -> tuple[QuotaOverride | None, list[QuotaOverride]]:
    roles = tuple(role_ids)
    marks = ",".join("?" * len(roles)) or "NULL"
    cursor = await db.execute(
        "SELECT target_kind, daily_images, max_pending FROM quota_overrides WHERE guild_id = ?"
        f" AND ((target_kind = 'user' AND target_id = ?) OR (target_kind = 'role'"
        f" AND target_id IN ({marks})))",
        (guild_id, user_id, *roles),
    )
    user, by_role = None, []
    for kind, daily, pending in await cursor.fetchall():
        if kind == "user":
            user = QuotaOverride(daily, pending)
        else:
            by_role.append(QuotaOverride(daily, pending))
    return user, by_role


# Bans -------------------------------------------------------------------------------------------


async def ban(store: Store, guild_id: int, user_id: int, by: int, reason: str = "") -> bool:
    """Ban `user_id` from painting in the guild; False if they already were."""
    async with store.lock:
        cursor = await store.db.execute(
            "INSERT INTO bans VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (guild_id, user_id, by, reason, store.clock()),
        )
        return cursor.rowcount > 0


async def unban(store: Store, guild_id: int, user_id: int) -> bool:
    """Lift a ban; False if there was none."""
    async with store.lock:
        cursor = await store.db.execute(
            "DELETE FROM bans WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        )
        return cursor.rowcount > 0


async def is_banned(store: Store, guild_id: int | None, user_id: int) -> bool:
    if guild_id is None:
        return False
    async with store.lock:
        cursor = await store.db.execute(
            "SELECT 1 FROM bans WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        )
        return await cursor.fetchone() is not None


# The rules applied to a job ---------------------------------------------------------------------


async def apply_rules(
    store: Store, guild_id: int | None, user_id: int, role_ids: Iterable[int], limits: Limits
) -> Limits:
    """`limits` (from the settings and roles) with the guild's rules: raises Banned; the
    user's quota override, else the most generous of their roles' overrides, replaces the
    daily and pending limits; the guild's caps tighten iterations and size."""
    if guild_id is None:
        return limits
    if await is_banned(store, guild_id, user_id):
        raise Banned("An admin of this server has stopped you from painting here.")
    async with store.lock:
        user, by_role = await _overrides(store.db, guild_id, user_id, role_ids)
    quota = user or _most_generous(by_role)
    if quota is not None:
        if quota.daily_images is not None:
            limits = replace(limits, daily_images=quota.daily_images)
        if quota.max_pending is not None:
            limits = replace(limits, max_pending=quota.max_pending)
    caps = await get_caps(store, guild_id)
    if caps.max_iterations is not None:
        limits = replace(limits, max_iterations=min(limits.max_iterations, caps.max_iterations))
    side = caps.max_width or caps.max_height
    if side is not None:  # an area, as limits.max_size; one side alone caps a square
        area = (caps.max_width or side) * (caps.max_height or side)
        if limits.max_area is None or area < limits.max_area:
            limits = replace(limits, max_area=area)
    return limits


def _most_generous(overrides: list[QuotaOverride]) -> QuotaOverride | None:
    if not overrides:
        return None
    daily = [o.daily_images for o in overrides if o.daily_images is not None]
    pending = [o.max_pending for o in overrides if o.max_pending is not None]
    return QuotaOverride(max(daily) if daily else None, max(pending) if pending else None)


# Personal settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserSettings:
    """A person's defaults for their commands (None: the command's own default)."""

    style: str | None = None
    iterations: int | None = None
    width: int | None = None
    height: int | None = None
    dm: bool = False
    count: int | None = None  # V5: pictures per command (a grid)

    @property
    def size(self) -> tuple[int, int] | None:
        if self.width is None or self.height is None:
            return None
        return self.width, self.height


async def get_user_settings(store: Store, user_id: int) -> UserSettings:
    async with store.lock:
        cursor = await store.db.execute(
            "SELECT style, iterations, width, height, dm, count FROM user_settings"
            " WHERE user_id = ?",
            (user_id,),
        )
        row = await cursor.fetchone()
    if row is None:
        return UserSettings()
    style, iterations, width, height, dm, count = row
    return UserSettings(style, iterations, width, height, bool(dm), count)


async def set_user_settings(store: Store, user_id: int, settings: UserSettings | None) -> None:
    """Save (or, with None, forget) a person's settings."""
    async with store.lock:
        if settings is None:
            await store.db.execute("DELETE FROM user_settings WHERE user_id = ?", (user_id,))
            return
        await store.db.execute(
            "INSERT INTO user_settings (user_id, style, iterations, width, height, dm, count)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE"
            " SET style = excluded.style, iterations = excluded.iterations,"
            " width = excluded.width, height = excluded.height, dm = excluded.dm,"
            " count = excluded.count",
            (user_id, settings.style, settings.iterations, settings.width, settings.height,
             int(settings.dm), settings.count),
        )  # fmt: skip


# Who may do what ------------------------------------------------------------------------------


def is_admin(settings: Settings, interaction: discord.Interaction) -> bool:
    """Manage Server, or one of the configured `discord.admin_roles`."""
    if interaction.guild_id is None:
        return False
    if interaction.permissions.manage_guild or interaction.permissions.administrator:
        return True
    wanted = {str(role) for role in settings.admin_roles}
    roles = getattr(interaction.user, "roles", [])
    return any(str(role.id) in wanted or role.name in wanted for role in roles)


async def is_operator(
    client: commands.Bot, settings: Settings, interaction: discord.Interaction
) -> bool:
    """Who may act on every server (pause them all, run the task folder): the bot's owner —
    the application's owner, or its team's admins and developers, as Discord reports them
    (discord.py's `is_owner`) — or an admin of the home server (`discord.home_guild`), there."""
    if await client.is_owner(interaction.user):
        return True
    home = settings.home_guild
    return home is not None and interaction.guild_id == home and is_admin(settings, interaction)


def is_moderator(settings: Settings, interaction: discord.Interaction) -> bool:
    """Manage Messages in the channel, or an admin."""
    return interaction.permissions.manage_messages or is_admin(settings, interaction)

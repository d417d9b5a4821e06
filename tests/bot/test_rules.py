"""bot.rules on a real SQLite file: how bans, quota overrides and caps combine with the
configured limits, and that they and the pause survive reopening the database."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import rules
from bot.quota import Limits
from bot.store import Store

BASE = Limits(daily_images=5, max_pending=2, max_iterations=500, max_area=450 * 300,
              max_prompt_length=350)  # fmt: skip
GUILD, USER, ROLE_A, ROLE_B = 10, 20, 30, 40


async def test_overrides_caps_and_bans(tmp_path: Path) -> None:
    """A member's own override beats their roles'; among roles the most generous wins; caps
    only tighten; a ban refuses; other guilds and DMs are untouched."""
    store = await Store.open(tmp_path / "db.sqlite3")
    try:
        assert await rules.apply_rules(store, GUILD, USER, [ROLE_A], BASE) == BASE
        await rules.set_quota(store, GUILD, "role", ROLE_A, rules.QuotaOverride(daily_images=8))
        await rules.set_quota(store, GUILD, "role", ROLE_B, rules.QuotaOverride(20, 4))
        both = await rules.apply_rules(store, GUILD, USER, [ROLE_A, ROLE_B], BASE)
        assert (both.daily_images, both.max_pending) == (20, 4)
        await rules.set_quota(store, GUILD, "user", USER, rules.QuotaOverride(daily_images=1))
        own = await rules.apply_rules(store, GUILD, USER, [ROLE_A, ROLE_B], BASE)
        assert (own.daily_images, own.max_pending) == (1, 2)
        await rules.set_caps(store, GUILD, rules.Caps(max_iterations=900, max_width=64))
        capped = await rules.apply_rules(store, 99, USER, [], BASE)
        assert capped == BASE  # another guild
        capped = await rules.apply_rules(store, GUILD, 21, [], BASE)
        assert capped.max_iterations == 500 and capped.max_area == 64 * 64
        assert await rules.ban(store, GUILD, USER, by=1) and not await rules.ban(
            store, GUILD, USER, 1
        )
        with pytest.raises(rules.Banned):
            await rules.apply_rules(store, GUILD, USER, [], BASE)
        assert await rules.apply_rules(store, None, USER, [], BASE) == BASE  # a DM
        await rules.set_paused(store, True)
        await rules.set_user_settings(store, USER, rules.UserSettings("by X", 3, 64, 64, True))
    finally:
        await store.close()
    again = await Store.open(tmp_path / "db.sqlite3")
    try:
        assert await rules.is_paused(again) and await rules.is_banned(again, GUILD, USER)
        assert await rules.get_user_settings(again, USER) == rules.UserSettings(
            "by X", 3, 64, 64, True
        )
        assert await rules.unban(again, GUILD, USER) and not await rules.unban(again, GUILD, USER)
        await rules.set_user_settings(again, USER, None)
        assert await rules.get_user_settings(again, USER) == rules.UserSettings()
    finally:
        await again.close()

"""The playground's switches for the bot's permissions in its channel."""

from __future__ import annotations

import pytest

from bot.fakediscord import FakeDiscord, Permission
from bot.playground.permissions import bot_permissions, set_bot_permission


def allowed(fake: FakeDiscord) -> dict[str, bool]:
    return {p["name"]: p["allowed"] for p in bot_permissions(fake, fake.channel)}


def test_each_needed_permission_can_be_denied_and_allowed_again() -> None:
    """A switch changes one bit of the bot's own overwrite; the others it set stay."""
    fake = FakeDiscord()
    assert set(allowed(fake).values()) == {True}
    assert [p["name"] for p in bot_permissions(fake, fake.channel)][:2] == [
        "View Channel",
        "Send Messages",
    ]
    set_bot_permission(fake, fake.channel, "Attach Files", False)
    set_bot_permission(fake, fake.channel, "Read Message History", False)
    assert [name for name, ok in allowed(fake).items() if not ok] == [
        "Attach Files",
        "Read Message History",
    ]
    assert fake.overwrite_of(fake.channel, fake.bot_user) == (
        0,
        Permission.ATTACH_FILES | Permission.READ_MESSAGE_HISTORY,
    )
    set_bot_permission(fake, fake.channel, "Attach Files", True)
    assert [name for name, ok in allowed(fake).items() if not ok] == ["Read Message History"]
    set_bot_permission(fake, fake.channel, "Send Messages", False)  # Discord: no files then
    assert not allowed(fake)["Attach Files"]
    with pytest.raises(ValueError, match="'Administrator' is not a permission the bot needs"):
        set_bot_permission(fake, fake.channel, "Administrator", False)

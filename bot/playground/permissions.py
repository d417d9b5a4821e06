"""The bot's permissions in the playground's channel, as a server admin would set them: each
permission the bot needs there (bot.permissions.NEEDED) allowed or denied through the bot's
own overwrite in the channel. Deny Attach Files and watch `/imagine` be refused privately,
naming it; deny it while a picture paints and watch the picture come by DM.
"""

from __future__ import annotations

from typing import Any

from bot.fakediscord import Channel, FakeDiscord
from bot.permissions import NEEDED


def bot_permissions(fake: FakeDiscord, channel: Channel) -> list[dict[str, Any]]:
    """Each needed permission: its name, whether the bot has it in `channel`, and why it
    needs it."""
    have = fake.world.permissions(fake.bot_user, channel)
    return [
        {"name": need.label, "allowed": bool(have & need.bit), "why": need.why} for need in NEEDED
    ]


def set_bot_permission(fake: FakeDiscord, channel: Channel, name: str, allowed: bool) -> None:
    """Allow or deny the bot one needed permission in `channel` (its own overwrite there; the
    others it sets stay). ValueError for a name that is not one of them."""
    need = next((n for n in NEEDED if n.label == name), None)
    if need is None:
        names = ", ".join(n.label for n in NEEDED)
        raise ValueError(f"{name!r} is not a permission the bot needs; one of {names}")
    allow, deny = fake.overwrite_of(channel, fake.bot_user)
    if allowed:
        allow, deny = allow | need.bit, deny & ~need.bit
    else:
        allow, deny = allow & ~need.bit, deny | need.bit
    fake.set_overwrite(channel, fake.bot_user, allow=allow, deny=deny)

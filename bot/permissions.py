"""The Discord permissions the bot needs in a channel, in one place: what the invite link
asks for (`doorways-bot --invite`), and how to say which are missing. Plain bits (Discord's,
as in https://discord.com/developers/docs/topics/permissions); discord.py objects are only
read, never imported here.

What the bot does in a channel: it answers commands there (interaction responses need no
channel permission), posts a status message and edits it with progress, replies to it with
the PNG and its call string, and fetches a message a /params link points to; it sends no
embeds and adds no reactions (people react; the bot only reads reaction events), so the
invite asks for neither. Discord delivers slash commands and button clicks even where
the bot cannot see the channel, post, attach files or read its history (a private channel, a
thread, a #general whose overwrites deny @everyone Attach Files): a job queued there would
be painted, charged and never shown. So before anything is queued the bot reads what Discord
computed for it there — `interaction.app_permissions`; for a reaction, which has no
interaction, what discord.py computes from its cache, `channel.permissions_for(guild.me)` —
and refuses, naming what is missing.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import discord

SCOPES = ("bot", "applications.commands")


@dataclass(frozen=True)
class Needed:
    """One permission: its bit, discord.Permissions' name for it, Discord's label, and why."""

    bit: int
    flag: str
    label: str
    why: str


NEEDED = (
    Needed(
        1 << 10,
        "view_channel",
        "View Channel",
        "see the channel a command came from, to post its status message and result there",
    ),
    Needed(1 << 11, "send_messages", "Send Messages", "post the status message and the result"),
    Needed(
        1 << 38,
        "send_messages_in_threads",
        "Send Messages in Threads",
        "the same when the command is used in a thread",
    ),
    Needed(
        1 << 15, "attach_files", "Attach Files", "attach the picture, its previews and call string"
    ),
    Needed(
        1 << 16,
        "read_message_history",
        "Read Message History",
        "post the result as a reply to its status message, and read the message a /params "
        "link points to",
    ),
)
_THREAD_TYPES = (10, 11, 12)  # discord.ChannelType: news, public and private threads


def needed_in(thread: bool) -> tuple[Needed, ...]:
    """What delivering a painting needs: in a thread Send Messages in Threads counts, in a
    channel Send Messages."""
    other = "send_messages" if thread else "send_messages_in_threads"
    return tuple(need for need in NEEDED if need.flag != other)


def is_thread(channel: object) -> bool:
    kind = getattr(channel, "type", None)
    return kind is not None and getattr(kind, "value", kind) in _THREAD_TYPES


def missing(permissions: discord.Permissions, *, thread: bool) -> list[str]:
    """The labels of the needed permissions that `permissions` lacks."""
    return [need.label for need in needed_in(thread) if not getattr(permissions, need.flag)]


def names_text(names: list[str]) -> str:
    """`**Attach Files**`, `**View Channel** and **Attach Files**`, `**A**, **B** and **C**`."""
    bold = [f"**{name}**" for name in names]
    return bold[0] if len(bold) == 1 else ", ".join(bold[:-1]) + " and " + bold[-1]


def refusal_text(names: list[str], where: str = "this channel") -> str:
    """Why the bot will not paint in `where`, and who can change it."""
    plural = len(names) != 1
    them = "them" if plural else "it"
    return (
        f"I can't paint in {where}: I don't have the {names_text(names)} "
        f"permission{'s' if plural else ''} there, and I need {them} to post your picture. "
        f"Nothing was queued or counted. A server admin can grant {them} to my role, or in "
        "the channel's settings (Edit Channel → Permissions); until then, paint in another "
        "channel."
    )


def missing_here(interaction: discord.Interaction) -> list[str]:
    """What Discord says the bot lacks where `interaction` happened."""
    return missing(interaction.app_permissions, thread=is_thread(interaction.channel))


def missing_in_cache(client: discord.Client, channel_id: int) -> list[str] | None:
    """What discord.py's cache says the bot lacks in `channel_id` (None: not cached, so
    unknown; a DM lacks nothing)."""
    channel = client.get_channel(channel_id)
    if channel is None:
        return None
    guild = getattr(channel, "guild", None)
    if guild is None:
        return []  # a DM
    if guild.me is None or (is_thread(channel) and getattr(channel, "parent", None) is None):
        return None  # a thread whose parent is not cached has no permissions to compute
    return missing(channel.permissions_for(guild.me), thread=is_thread(channel))  # type: ignore[union-attr]


def needed_permissions() -> int:
    """Every permission in NEEDED, as the integer an invite link carries."""
    return sum(need.bit for need in NEEDED)


def invite_url(application_id: int | str = "APPLICATION_ID") -> str:
    """The link that adds the bot to a server with NEEDED (a server install: integration type
    0, which is the only one the bot's commands are registered for)."""
    return (
        f"https://discord.com/oauth2/authorize?client_id={application_id}"
        f"&scope={'+'.join(SCOPES)}&permissions={needed_permissions()}"
        "&integration_type=0"
    )


def application_id_from_token(token: str) -> int:
    """The bot's user id, which is its application's id, from the token's first part
    (base64 of the id). ValueError if the token does not look like a bot token."""
    head = token.strip().split(".", 1)[0]
    try:
        text = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        text = ""
    if not text.isdigit() or not 15 <= len(text) <= 21:
        raise ValueError(
            "this is not a Discord bot token (its first part, before the first dot, should be "
            "the application id in base64)"
        )
    return int(text)

"""What the bot needs in a channel to deliver a painting there, and how to say what is missing.

Discord delivers slash commands and button clicks even where the bot cannot see the channel,
post, attach files or read its history (a private channel, a thread, a #general whose
overwrites deny @everyone Attach Files). A job queued there would be painted, charged and
never shown. So before anything is queued the bot reads what Discord computed for it in that
channel — `interaction.app_permissions`; for a reaction, which has no interaction, what
discord.py computes from its cache, `channel.permissions_for(guild.me)` — and refuses, naming
what is missing, while it lacks any of:

- View Channel: to edit the status message and post the result at all;
- Send Messages (in a thread: Send Messages in Threads): to post the result;
- Attach Files: the result is a PNG (and the progress previews are too);
- Read Message History: the result is posted as a reply to the status message.
"""

from __future__ import annotations

import discord

from bot.errors import DoorwaysError

# (discord.Permissions attribute, what Discord's client calls it)
VIEW = ("view_channel", "View Channel")
SEND = ("send_messages", "Send Messages")
SEND_IN_THREADS = ("send_messages_in_threads", "Send Messages in Threads")
ATTACH = ("attach_files", "Attach Files")
HISTORY = ("read_message_history", "Read Message History")
_THREADS = (
    discord.ChannelType.public_thread,
    discord.ChannelType.private_thread,
    discord.ChannelType.news_thread,
)


class MissingChannelPermissions(DoorwaysError):
    """The bot lacks a permission it needs to deliver a painting in this channel."""


def needed(thread: bool) -> tuple[tuple[str, str], ...]:
    """The permissions a painting needs, in a thread or in a channel."""
    return (VIEW, SEND_IN_THREADS if thread else SEND, ATTACH, HISTORY)


def is_thread(channel: object) -> bool:
    return getattr(channel, "type", None) in _THREADS


def missing(permissions: discord.Permissions, *, thread: bool) -> list[str]:
    """The names of the needed permissions that `permissions` lacks."""
    return [name for attribute, name in needed(thread) if not getattr(permissions, attribute)]


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


def check_interaction(interaction: discord.Interaction) -> None:
    """Raise MissingChannelPermissions unless Discord says the bot may deliver where
    `interaction` happened."""
    lacking = missing(interaction.app_permissions, thread=is_thread(interaction.channel))
    if lacking:
        raise MissingChannelPermissions(refusal_text(lacking))


def missing_in_cache(client: discord.Client, channel_id: int) -> list[str] | None:
    """What discord.py's cache says the bot lacks in `channel_id` (None: not cached, so
    unknown; a DM lacks nothing)."""
    channel = client.get_channel(channel_id)
    if isinstance(channel, discord.abc.PrivateChannel):
        return []
    guild = getattr(channel, "guild", None)
    if channel is None or guild is None or guild.me is None:
        return None
    try:
        permissions = channel.permissions_for(guild.me)
    except discord.ClientException:  # a thread whose parent is not cached
        return None
    return missing(permissions, thread=is_thread(channel))

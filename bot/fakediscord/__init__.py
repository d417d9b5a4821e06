"""A local stand-in for Discord that speaks the real gateway and REST protocols over loopback,
so an unmodified discord.py bot can connect to it and be driven end to end.

- ``state``: the world (users, guilds, roles, members, channels, messages, attachments)
- ``payloads``: the world as Discord's JSON
- ``gateway``: the websocket (HELLO, IDENTIFY, READY, GUILD_CREATE, DISPATCH, RESUME)
- ``rest``: the HTTP API under /api/v10 (each request recorded as a ``Call``), with Discord's
  permission checks and 403s, and the attachment "CDN"
- ``effects``: every change, with its gateway event and change-feed entry
- ``interactions`` / ``commands``: app commands, interactions and the bot's answers
- ``changes``: the ordered stream of what happened (for tests and a UI)
- ``server``: ``FakeDiscord``, tying it together, with the driver that acts as people
"""

from .changes import Change, ChangeFeed, ChangeKind
from .discordpy import point_discord_py_at, set_discord_endpoints
from .errors import DiscordError
from .gateway import Intent
from .interactions import CallbackType, Interaction, InteractionResponse, InteractionType
from .rest import Call
from .server import FakeDiscord
from .state import (
    Attachment,
    Channel,
    Emoji,
    Guild,
    Member,
    Message,
    MessageFlag,
    Permission,
    Role,
    Upload,
    User,
)

__all__ = [
    "Attachment",
    "Call",
    "CallbackType",
    "Change",
    "ChangeFeed",
    "ChangeKind",
    "Channel",
    "DiscordError",
    "Emoji",
    "FakeDiscord",
    "Guild",
    "Intent",
    "Interaction",
    "InteractionResponse",
    "InteractionType",
    "Member",
    "Message",
    "MessageFlag",
    "Permission",
    "Role",
    "Upload",
    "User",
    "point_discord_py_at",
    "set_discord_endpoints",
]

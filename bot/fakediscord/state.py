"""The fake Discord's world: snowflakes, users, guilds, roles, members, channels, messages.

Plain data and lookups, no I/O. Everything is keyed by snowflake ints; ``payloads.py`` renders
it as Discord JSON, ``effects.py`` changes it and tells the bot and any watchers.
"""

from __future__ import annotations

import datetime
import enum
import re
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import errors

if TYPE_CHECKING:
    from .interactions import Interaction

DISCORD_EPOCH_MS = 1_420_070_400_000
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # 10 MiB, Discord's limit for servers without boosts


class Snowflakes:
    """Monotonic snowflake ids: milliseconds since Discord's epoch << 22, never repeating."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        candidate = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last = max(candidate, self._last + 1)
        return self._last


def snowflake_time(snowflake: int) -> datetime.datetime:
    """When a snowflake was made (UTC), as discord.utils.snowflake_time computes it."""
    ms = (snowflake >> 22) + DISCORD_EPOCH_MS
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)


class Permission(enum.IntFlag):
    """Discord permission bits (the subset a bot usually meets)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    SEND_TTS_MESSAGES = 1 << 12
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CHANGE_NICKNAME = 1 << 26
    MANAGE_ROLES = 1 << 28
    MANAGE_WEBHOOKS = 1 << 29
    USE_APPLICATION_COMMANDS = 1 << 31
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    CREATE_PRIVATE_THREADS = 1 << 36
    SEND_MESSAGES_IN_THREADS = 1 << 38


ALL_PERMISSIONS = (1 << 51) - 1
# The bits that channel overwrites can change for a text channel (Discord's "T" permissions);
# without View Channel all of them are gone.
TEXT_CHANNEL_PERMISSIONS = (
    Permission.CREATE_INSTANT_INVITE
    | Permission.MANAGE_CHANNELS
    | Permission.ADD_REACTIONS
    | Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.SEND_TTS_MESSAGES
    | Permission.MANAGE_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.MENTION_EVERYONE
    | Permission.USE_EXTERNAL_EMOJIS
    | Permission.MANAGE_ROLES
    | Permission.MANAGE_WEBHOOKS
    | Permission.USE_APPLICATION_COMMANDS
    | Permission.MANAGE_THREADS
    | Permission.CREATE_PUBLIC_THREADS
    | Permission.CREATE_PRIVATE_THREADS
    | Permission.SEND_MESSAGES_IN_THREADS
)
# What whoever cannot send messages (in a thread: in threads) cannot do either.
NEEDS_SENDING = (
    Permission.SEND_TTS_MESSAGES
    | Permission.MENTION_EVERYONE
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
)
# What @everyone gets in a new server (the parts a text-only bot cares about).
DEFAULT_EVERYONE_PERMISSIONS = (
    Permission.CREATE_INSTANT_INVITE
    | Permission.ADD_REACTIONS
    | Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.MENTION_EVERYONE
    | Permission.USE_EXTERNAL_EMOJIS
    | Permission.CHANGE_NICKNAME
    | Permission.USE_APPLICATION_COMMANDS
    | Permission.SEND_MESSAGES_IN_THREADS
)
# What the bot's own (managed) role gets when it is invited.
DEFAULT_BOT_PERMISSIONS = DEFAULT_EVERYONE_PERMISSIONS
# What anyone may do in a DM.
DM_PERMISSIONS = (
    Permission.ADD_REACTIONS
    | Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.USE_EXTERNAL_EMOJIS
    | Permission.USE_APPLICATION_COMMANDS
)

# What Discord's client calls each permission, for refusals a person reads.
PERMISSION_NAMES = {
    Permission.CREATE_INSTANT_INVITE: "Create Invite",
    Permission.KICK_MEMBERS: "Kick Members",
    Permission.BAN_MEMBERS: "Ban Members",
    Permission.ADMINISTRATOR: "Administrator",
    Permission.MANAGE_CHANNELS: "Manage Channels",
    Permission.MANAGE_GUILD: "Manage Server",
    Permission.ADD_REACTIONS: "Add Reactions",
    Permission.VIEW_AUDIT_LOG: "View Audit Log",
    Permission.VIEW_CHANNEL: "View Channel",
    Permission.SEND_MESSAGES: "Send Messages",
    Permission.MANAGE_MESSAGES: "Manage Messages",
    Permission.EMBED_LINKS: "Embed Links",
    Permission.ATTACH_FILES: "Attach Files",
    Permission.READ_MESSAGE_HISTORY: "Read Message History",
    Permission.MENTION_EVERYONE: "Mention Everyone",
    Permission.USE_EXTERNAL_EMOJIS: "Use External Emojis",
    Permission.CHANGE_NICKNAME: "Change Nickname",
    Permission.MANAGE_ROLES: "Manage Roles",
    Permission.USE_APPLICATION_COMMANDS: "Use Application Commands",
    Permission.SEND_MESSAGES_IN_THREADS: "Send Messages in Threads",
}


def needed_permissions_text(bits: int) -> str:
    """`the Manage Server permission`, `the Ban Members and Manage Server permissions`, as a
    person reads a command's default_member_permissions ("0": administrators only)."""
    if bits == 0:
        return "the Administrator permission"
    names = [name for flag, name in PERMISSION_NAMES.items() if bits & flag]
    unknown = bits & ~sum(PERMISSION_NAMES)
    if unknown:
        names.append(f"permission bits {unknown}")
    if len(names) == 1:
        return f"the {names[0]} permission"
    return f"the {', '.join(names[:-1])} and {names[-1]} permissions"


def has_permissions(permissions: int, needed: int) -> bool:
    """Whether ``permissions`` meet a command's default_member_permissions ("0": admins)."""
    if needed == 0:
        return bool(permissions & Permission.ADMINISTRATOR)
    return permissions & needed == needed


class ChannelType(enum.IntEnum):
    GUILD_TEXT = 0
    DM = 1
    PUBLIC_THREAD = 11


class MessageFlag(enum.IntFlag):
    SUPPRESS_EMBEDS = 1 << 2
    EPHEMERAL = 1 << 6
    LOADING = 1 << 7
    SUPPRESS_NOTIFICATIONS = 1 << 12
    IS_COMPONENTS_V2 = 1 << 15


class MessageType(enum.IntEnum):
    DEFAULT = 0
    REPLY = 19
    CHAT_INPUT_COMMAND = 20
    CONTEXT_MENU_COMMAND = 23


@dataclass(eq=False)
class User:
    """A Discord account: a person or a bot."""

    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    accepts_dms: bool = True  # False: the bot's DMs are refused (403 / 50007)

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"


@dataclass(eq=False)
class TeamMember:
    """A member of the team that owns an application; ``role`` is Discord's: "admin",
    "developer" or "read_only"."""

    user: User
    role: str = "admin"


@dataclass(eq=False)
class Application:
    """The bot's application: its id is the bot user's id, as for every modern bot. Owned by
    ``owner``, or, when ``team`` is not empty, by a team (id ``team_id``) of those members."""

    id: int
    name: str
    owner: User
    bot: User
    team: list[TeamMember] = field(default_factory=list)
    team_id: int = 0


@dataclass(eq=False)
class Role:
    id: int
    guild_id: int
    name: str
    permissions: int = 0
    position: int = 0
    color: int = 0
    managed: bool = False
    bot_id: int | None = None  # set on the bot's own managed role

    @property
    def mention(self) -> str:
        return f"<@&{self.id}>"


@dataclass(eq=False)
class Member:
    """A user's membership of one guild: role ids (without @everyone), nickname, join time."""

    user: User
    guild_id: int
    role_ids: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: datetime.datetime = field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC)
    )


@dataclass(eq=False)
class Overwrite:
    """A channel permission overwrite for a role (type 0) or a member (type 1)."""

    id: int
    type: int
    allow: int = 0
    deny: int = 0


@dataclass(eq=False)
class Channel:
    """A guild text channel, a public thread in one, or a DM. ``message_ids`` is the public
    history, oldest first. A thread has no overwrites of its own: its parent's apply."""

    id: int
    type: ChannelType
    guild_id: int | None = None
    name: str | None = None
    position: int = 0
    topic: str | None = None
    overwrites: list[Overwrite] = field(default_factory=list)
    recipient_ids: list[int] = field(default_factory=list)  # DMs: the person and the bot
    message_ids: list[int] = field(default_factory=list)
    parent_id: int | None = None  # threads: the text channel they are in
    owner_id: int | None = None  # threads: who started it

    @property
    def is_dm(self) -> bool:
        return self.type is ChannelType.DM

    @property
    def is_thread(self) -> bool:
        return self.type is ChannelType.PUBLIC_THREAD

    @property
    def send_permission(self) -> Permission:
        """What posting here takes: Send Messages, or in a thread Send Messages in Threads."""
        return Permission.SEND_MESSAGES_IN_THREADS if self.is_thread else Permission.SEND_MESSAGES

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"


@dataclass(eq=False)
class Guild:
    """A server. Its @everyone role has the guild's id, as on Discord."""

    id: int
    name: str
    owner_id: int
    roles: dict[int, Role] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    channel_ids: list[int] = field(default_factory=list)
    thread_ids: list[int] = field(default_factory=list)  # active threads
    locale: str = "en-US"

    @property
    def everyone(self) -> Role:
        return self.roles[self.id]


@dataclass
class Upload:
    """A file a person (or the bot) sends: what ``discord.File`` carries."""

    filename: str
    data: bytes
    content_type: str | None = None
    description: str | None = None


@dataclass(eq=False)
class Attachment:
    """A stored file; the fake serves its bytes at ``/attachments/{channel_id}/{id}/{filename}``."""

    id: int
    channel_id: int
    filename: str
    data: bytes
    content_type: str | None = None
    description: str | None = None
    ephemeral: bool = False

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def path(self) -> str:
        return f"/attachments/{self.channel_id}/{self.id}/{self.filename}"

    def image_size(self) -> tuple[int, int] | None:
        """(width, height) read from a PNG header, else None."""
        if self.data[:8] == b"\x89PNG\r\n\x1a\n" and self.data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", self.data[16:24])
            return width, height
        return None


_CUSTOM_EMOJI = re.compile(r"<?(?P<animated>a)?:?(?P<name>[A-Za-z0-9_~]+):(?P<id>[0-9]{15,25})>?")


@dataclass(frozen=True)
class Emoji:
    """A reaction emoji: unicode (``id`` None) or custom (``name:id``)."""

    name: str
    id: int | None = None
    animated: bool = False

    @classmethod
    def parse(cls, text: str) -> Emoji:
        """Read ``👍``, ``name:id``, ``<:name:id>`` or ``<a:name:id>``."""
        match = _CUSTOM_EMOJI.fullmatch(text)
        if match:
            return cls(match["name"], int(match["id"]), bool(match["animated"]))
        if not text or ":" in text:
            raise errors.unknown_emoji()
        return cls(text)

    def __str__(self) -> str:
        return (
            self.name
            if self.id is None
            else f"<{'a' if self.animated else ''}:{self.name}:{self.id}>"
        )


@dataclass(eq=False)
class Reaction:
    emoji: Emoji
    user_ids: list[int] = field(default_factory=list)


@dataclass(eq=False)
class Message:
    """A message in a channel, or an ephemeral one (``visible_to`` set, not in channel history).

    ``embeds`` and ``components`` are kept as the raw JSON the sender gave.
    """

    id: int
    channel_id: int
    guild_id: int | None
    author: User
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    reactions: list[Reaction] = field(default_factory=list)
    reference: dict[str, Any] | None = None  # message_reference as sent
    type: MessageType = MessageType.DEFAULT
    flags: int = 0
    edited_at: datetime.datetime | None = None
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_metadata: dict[str, Any] | None = None
    mention_ids: list[int] = field(default_factory=list)
    mention_role_ids: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    allowed_mentions: dict[str, Any] | None = None
    tts: bool = False
    nonce: str | int | None = None
    visible_to: int | None = None
    deleted: bool = False

    @property
    def created_at(self) -> datetime.datetime:
        return snowflake_time(self.id)

    @property
    def ephemeral(self) -> bool:
        return self.visible_to is not None

    @property
    def loading(self) -> bool:
        """True while this is a deferred response's "Bot is thinking..." placeholder."""
        return bool(self.flags & MessageFlag.LOADING)

    @property
    def reference_id(self) -> int | None:
        """The id of the message this one replies to."""
        if self.reference is None or self.reference.get("message_id") is None:
            return None
        return int(self.reference["message_id"])

    def reaction(self, emoji: Emoji | str) -> Reaction | None:
        wanted = Emoji.parse(emoji) if isinstance(emoji, str) else emoji
        return next((r for r in self.reactions if _same_emoji(r.emoji, wanted)), None)

    def reactors(self, emoji: Emoji | str) -> list[int]:
        """Ids of the users who reacted with ``emoji``."""
        found = self.reaction(emoji)
        return list(found.user_ids) if found else []

    def iter_components(self) -> Iterator[dict[str, Any]]:
        """Every component, depth first (action rows, sections, containers and their children)."""
        yield from walk_components(self.components)

    def component(self, custom_id: str) -> dict[str, Any] | None:
        return next((c for c in self.iter_components() if c.get("custom_id") == custom_id), None)

    def custom_ids(self) -> list[str]:
        return [c["custom_id"] for c in self.iter_components() if "custom_id" in c]


def walk_components(components: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Depth-first walk over raw component JSON (rows, sections, labels, containers)."""
    for component in components:
        yield component
        yield from walk_components(component.get("components", []))
        for key in ("accessory", "component"):
            if isinstance(component.get(key), dict):
                yield from walk_components([component[key]])


def _overwritten(perms: int, overwrites: list[Overwrite], guild: Guild, member: Member) -> int:
    """Base permissions with a channel's overwrites applied in Discord's order."""
    by_target = {(o.type, o.id): o for o in overwrites}
    if (everyone := by_target.get((0, guild.id))) is not None:
        perms = (perms & ~everyone.deny) | everyone.allow
    allow = deny = 0
    for role_id in member.role_ids:
        if (role := by_target.get((0, role_id))) is not None:
            allow, deny = allow | role.allow, deny | role.deny
    perms = (perms & ~deny) | allow
    if (own := by_target.get((1, member.user.id))) is not None:
        perms = (perms & ~own.deny) | own.allow
    return perms


def _same_emoji(a: Emoji, b: Emoji) -> bool:
    return a.id == b.id if a.id is not None or b.id is not None else a.name == b.name


class World:
    """All the state: the application and its bot, users, guilds, channels, messages, commands.

    Lookups raise the ``DiscordError`` Discord would answer with, so REST handlers can use
    them directly.
    """

    def __init__(self, *, bot_name: str = "Doorways", owner_name: str = "owner") -> None:
        self.snowflakes = Snowflakes()
        self.base_url = ""  # http://127.0.0.1:PORT once the server runs
        self.users: dict[int, User] = {}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.attachments: dict[int, Attachment] = {}
        # Registered application commands: key None holds the global ones, else a guild id.
        self.commands: dict[int | None, list[dict[str, Any]]] = {}
        self.interactions: dict[int, Interaction] = {}
        owner = self.add_user(owner_name)
        bot = self.add_user(bot_name, bot=True)
        self.application = Application(id=bot.id, name=bot_name, owner=owner, bot=bot)

    @property
    def bot(self) -> User:
        return self.application.bot

    # Building ---------------------------------------------------------------------------------

    def add_user(self, username: str, *, bot: bool = False, global_name: str | None = None) -> User:
        user = User(self.snowflakes.next(), username, global_name, bot)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str, owner: User, *, with_bot: bool = True) -> Guild:
        """A guild with @everyone, the owner and (unless ``with_bot`` is False: a server that
        never added the bot) the bot with its managed role as members."""
        guild_id = self.snowflakes.next()
        guild = Guild(guild_id, name, owner.id)
        guild.roles[guild_id] = Role(guild_id, guild_id, "@everyone", DEFAULT_EVERYONE_PERMISSIONS)
        self.guilds[guild_id] = guild
        self.add_member(guild, owner)
        if with_bot:
            bot_role = self.add_role(guild, self.bot.username, DEFAULT_BOT_PERMISSIONS)
            bot_role.managed, bot_role.bot_id = True, self.bot.id
            self.add_member(guild, self.bot, [bot_role])
        return guild

    def bot_guilds(self) -> list[Guild]:
        """The guilds the bot is in (the only ones its gateway hears of)."""
        return [g for g in self.guilds.values() if self.bot.id in g.members]

    def add_role(self, guild: Guild, name: str, permissions: int = 0, *, color: int = 0) -> Role:
        """A new role, placed just above @everyone (position 1) as Discord does."""
        for other in guild.roles.values():
            if other.id != guild.id:
                other.position += 1
        role = Role(self.snowflakes.next(), guild.id, name, int(permissions), 1, color)
        guild.roles[role.id] = role
        return role

    def add_member(
        self, guild: Guild, user: User, roles: list[Role] | tuple[Role, ...] = ()
    ) -> Member:
        member = Member(user, guild.id, [r.id for r in roles])
        guild.members[user.id] = member
        return member

    def add_channel(self, guild: Guild, name: str, *, topic: str | None = None) -> Channel:
        channel = Channel(
            self.snowflakes.next(), ChannelType.GUILD_TEXT, guild.id, name, len(guild.channel_ids)
        )
        channel.topic = topic
        self.channels[channel.id] = channel
        guild.channel_ids.append(channel.id)
        return channel

    def add_thread(self, parent: Channel, name: str, owner: User) -> Channel:
        """A public thread in the text channel ``parent``."""
        if parent.type is not ChannelType.GUILD_TEXT or parent.guild_id is None:
            raise ValueError(f"threads live in guild text channels, not in {parent.name!r}")
        thread = Channel(
            self.snowflakes.next(),
            ChannelType.PUBLIC_THREAD,
            parent.guild_id,
            name,
            parent_id=parent.id,
            owner_id=owner.id,
        )
        self.channels[thread.id] = thread
        self.guilds[parent.guild_id].thread_ids.append(thread.id)
        return thread

    def dm_with(self, user: User) -> Channel:
        """The DM channel between ``user`` and the bot (made on first use)."""
        for channel in self.channels.values():
            if channel.is_dm and user.id in channel.recipient_ids:
                return channel
        channel = Channel(
            self.snowflakes.next(), ChannelType.DM, recipient_ids=[user.id, self.bot.id]
        )
        self.channels[channel.id] = channel
        return channel

    # Lookups ----------------------------------------------------------------------------------

    def user(self, user_id: int | str) -> User:
        try:
            return self.users[int(user_id)]
        except (KeyError, ValueError):
            raise errors.unknown_user() from None

    def guild(self, guild_id: int | str) -> Guild:
        try:
            return self.guilds[int(guild_id)]
        except (KeyError, ValueError):
            raise errors.unknown_guild() from None

    def channel(self, channel_id: int | str) -> Channel:
        try:
            return self.channels[int(channel_id)]
        except (KeyError, ValueError):
            raise errors.unknown_channel() from None

    def member(self, guild: Guild, user_id: int | str) -> Member:
        try:
            return guild.members[int(user_id)]
        except (KeyError, ValueError):
            raise errors.unknown_member() from None

    def role(self, guild: Guild, role_id: int | str) -> Role:
        try:
            return guild.roles[int(role_id)]
        except (KeyError, ValueError):
            raise errors.unknown_role() from None

    def message(self, channel: Channel, message_id: int | str) -> Message:
        """A message of ``channel`` (ephemeral ones are not reachable this way, as on Discord)."""
        try:
            message = self.messages[int(message_id)]
        except (KeyError, ValueError):
            raise errors.unknown_message() from None
        if message.channel_id != channel.id or message.deleted or message.ephemeral:
            raise errors.unknown_message()
        return message

    def guild_of(self, channel: Channel) -> Guild | None:
        return None if channel.guild_id is None else self.guilds[channel.guild_id]

    def history(self, channel: Channel) -> list[Message]:
        """The channel's public messages, oldest first."""
        return [self.messages[i] for i in channel.message_ids if not self.messages[i].deleted]

    # Permissions ------------------------------------------------------------------------------

    def permissions(
        self, user: User, channel: Channel | None = None, guild: Guild | None = None
    ) -> int:
        """The user's permission bits in a channel (or guild-wide), as Discord computes them
        (https://discord.com/developers/docs/topics/permissions): the owner has all; else
        @everyone's and the member's roles' bits, where Administrator means all; then the
        channel's overwrites in order — @everyone's, the member's roles' (their denies, then
        their allows), the member's own. A thread uses its parent's. Last the implicit rules:
        without View Channel no channel permission is left, and whoever cannot send (in a
        thread: in threads) cannot attach files, embed links, mention everyone or use TTS."""
        if channel is not None and channel.is_dm:
            return int(DM_PERMISSIONS)
        guild = guild or (self.guild_of(channel) if channel is not None else None)
        if guild is None:
            raise ValueError("permissions() needs a guild channel or a guild")
        member = guild.members.get(user.id)
        if member is None:
            return 0
        if user.id == guild.owner_id:
            return ALL_PERMISSIONS
        perms = guild.everyone.permissions
        for role_id in member.role_ids:
            perms |= guild.roles[role_id].permissions
        if perms & Permission.ADMINISTRATOR:
            return ALL_PERMISSIONS
        if channel is None:
            return perms
        perms = _overwritten(perms, self._overwrites_of(channel), guild, member)
        if not perms & channel.send_permission:
            perms &= ~NEEDS_SENDING
        if not perms & Permission.VIEW_CHANNEL:
            perms &= ~TEXT_CHANNEL_PERMISSIONS
        return perms

    def _overwrites_of(self, channel: Channel) -> list[Overwrite]:
        if channel.is_thread and channel.parent_id is not None:
            return self.channel(channel.parent_id).overwrites
        return channel.overwrites

    def content_exempt(self, message: Message) -> bool:
        """Whether the bot sees ``message``'s content, embeds, attachments and components
        without the privileged Message Content intent: in a DM, its own messages, and
        messages that mention it (Discord's exemptions; a message command's target is the
        fourth, and comes whole in the interaction)."""
        bot_id = self.bot.id
        return (
            message.guild_id is None or message.author.id == bot_id or bot_id in message.mention_ids
        )

    def has(self, user: User, channel: Channel, permission: int) -> bool:
        return self.permissions(user, channel) & permission == permission

"""Every change to the world goes through here: update the state, tell the bot over the
gateway (as Discord would), and publish it on the change feed (for tests and a UI).

Message bodies are the JSON Discord's REST API takes (``content``, ``embeds``, ``components``,
``attachments``, ``flags``, ``message_reference``, ...) plus the uploaded files; the REST layer
and the test driver both build them, so both go through the same checks.
"""

from __future__ import annotations

import datetime
import mimetypes
import re
import time
from collections.abc import Sequence
from typing import Any

from . import errors, payloads
from .changes import ChangeFeed, ChangeKind
from .gateway import Gateway, Intent
from .state import (
    Attachment,
    Channel,
    Emoji,
    Guild,
    Member,
    Message,
    MessageFlag,
    MessageType,
    Permission,
    Reaction,
    Role,
    Upload,
    User,
    World,
    walk_components,
)

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_CUSTOM_ID = 100
_EDITABLE_FLAGS = MessageFlag.SUPPRESS_EMBEDS | MessageFlag.SUPPRESS_NOTIFICATIONS
_USER_MENTION = re.compile(r"<@!?([0-9]+)>")
_ROLE_MENTION = re.compile(r"<@&([0-9]+)>")


def safe_filename(name: str) -> str:
    """Discord's filename clean-up: anything but letters, digits, ``.``, ``_``, ``-`` -> ``_``."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name.strip()) or "file"
    return cleaned[:200]


class Effects:
    """State changes with their gateway events and change-feed entries."""

    def __init__(self, world: World, gateway: Gateway, feed: ChangeFeed) -> None:
        self.world = world
        self.gateway = gateway
        self.feed = feed

    # Permissions ------------------------------------------------------------------------------

    def require(self, user: User, channel: Channel, permission: int = 0) -> None:
        """Raise Discord's 403 unless ``user`` can see ``channel`` and has ``permission`` there."""
        if channel.is_dm:
            if user.id not in channel.recipient_ids:
                raise errors.missing_access()
            return
        perms = self.world.permissions(user, channel)
        if not perms & Permission.VIEW_CHANNEL:
            raise errors.missing_access()
        if perms & permission != permission:
            raise errors.missing_permissions()

    # Messages ---------------------------------------------------------------------------------

    def post_message(
        self,
        channel: Channel,
        author: User,
        body: dict[str, Any],
        uploads: Sequence[Upload] = (),
        *,
        type: MessageType = MessageType.DEFAULT,
        webhook_id: int | None = None,
        interaction_metadata: dict[str, Any] | None = None,
        visible_to: int | None = None,
        extra_flags: int = 0,
    ) -> Message:
        """Create a message from a REST-style body, store it and announce it.

        Ephemeral messages (``visible_to`` set) stay out of the channel history and the gateway.
        """
        _validate_body(body)
        message = Message(
            id=self.world.snowflakes.next(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=author,
            type=type,
            webhook_id=webhook_id,
            application_id=self.world.application.id if webhook_id is not None else None,
            interaction_metadata=interaction_metadata,
            visible_to=visible_to,
            flags=(int(body.get("flags") or 0) & _EDITABLE_FLAGS) | extra_flags,
            tts=bool(body.get("tts", False)),
            nonce=body.get("nonce"),
        )
        self._apply_body(message, body, uploads, creating=True)
        if not message.loading:
            _require_something(message)
        if body.get("message_reference"):
            message.reference = self._reference(channel, body["message_reference"])
            if message.type is MessageType.DEFAULT:
                message.type = MessageType.REPLY
        self.world.messages[message.id] = message
        if visible_to is None:
            channel.message_ids.append(message.id)
            self._announce_message("MESSAGE_CREATE", message)
        self.feed.publish(ChangeKind.MESSAGE_CREATE, **self._message_fields(message))
        return message

    def edit_message(
        self, message: Message, body: dict[str, Any], uploads: Sequence[Upload] = ()
    ) -> Message:
        """Apply a PATCH body; a loading (deferred) message becomes a normal one."""
        _validate_body(body)
        was_loading = message.loading
        before = dict(vars(message))
        try:
            self._apply_body(message, body, uploads, creating=False)
            if "flags" in body and body["flags"] is not None:
                kept = message.flags & ~_EDITABLE_FLAGS
                message.flags = kept | (int(body["flags"]) & _EDITABLE_FLAGS)
            message.flags &= ~MessageFlag.LOADING
            _require_something(message)
        except errors.DiscordError:
            vars(message).update(before)  # a rejected edit changes nothing
            raise
        if not was_loading:
            message.edited_at = datetime.datetime.now(datetime.UTC)
        if not message.ephemeral:
            self._announce_message("MESSAGE_UPDATE", message)
        self.feed.publish(ChangeKind.MESSAGE_UPDATE, **self._message_fields(message))
        return message

    def delete_message(self, message: Message) -> None:
        message.deleted = True
        data = {"id": str(message.id), "channel_id": str(message.channel_id)}
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        if not message.ephemeral:
            self.gateway.dispatch("MESSAGE_DELETE", data, intent=self._message_intent(message))
        self.feed.publish(
            ChangeKind.MESSAGE_DELETE,
            channel_id=message.channel_id,
            guild_id=message.guild_id,
            visible_to=message.visible_to,
            message=message,
            payload=data,
        )

    def _apply_body(
        self, message: Message, body: dict[str, Any], uploads: Sequence[Upload], *, creating: bool
    ) -> None:
        if "content" in body:
            message.content = str(body["content"] or "")
            message.mention_ids = [int(i) for i in _USER_MENTION.findall(message.content)]
            message.mention_role_ids = [int(i) for i in _ROLE_MENTION.findall(message.content)]
            message.mention_everyone = "@everyone" in message.content
        if "embeds" in body:
            message.embeds = list(body["embeds"] or [])
        if "components" in body:
            message.components = list(body["components"] or [])
        if "allowed_mentions" in body:
            message.allowed_mentions = body["allowed_mentions"]
        if "attachments" in body or uploads:
            message.attachments = self._attachments(
                message, body.get("attachments"), uploads, [] if creating else message.attachments
            )

    def _attachments(
        self,
        message: Message,
        specs: list[dict[str, Any]] | None,
        uploads: Sequence[Upload],
        current: list[Attachment],
    ) -> list[Attachment]:
        """Discord's rule: ``attachments`` lists what to keep (by id) and which uploads (by index)
        to add; without it, uploads are appended to what is there."""
        if specs is None:
            return current + [self._store_upload(message, u) for u in uploads]
        existing = {a.id: a for a in current}
        used: set[int] = set()
        result = []
        for spec in specs:
            key = int(spec["id"])
            if key in existing:
                result.append(existing[key])
            elif 0 <= key < len(uploads):
                used.add(key)
                upload = uploads[key]
                result.append(
                    self._store_upload(
                        message,
                        Upload(
                            spec.get("filename") or upload.filename,
                            upload.data,
                            upload.content_type,
                            spec.get("description") or upload.description,
                        ),
                    )
                )
            else:
                raise errors.invalid_form("attachments", f"Unknown attachment id {key}")
        result += [self._store_upload(message, u) for i, u in enumerate(uploads) if i not in used]
        return result

    def _store_upload(self, message: Message, upload: Upload) -> Attachment:
        return self.store_attachment(
            message.channel_id, upload, ephemeral=message.visible_to is not None
        )

    def store_attachment(
        self, channel_id: int, upload: Upload, *, ephemeral: bool = False
    ) -> Attachment:
        """Keep an uploaded file; it is then served over HTTP at ``attachment.path``."""
        filename = safe_filename(upload.filename)
        content_type = upload.content_type
        if content_type in (None, "application/octet-stream"):
            content_type = mimetypes.guess_type(filename)[0] or content_type
        attachment = Attachment(
            self.world.snowflakes.next(),
            channel_id,
            filename,
            upload.data,
            content_type,
            upload.description,
            ephemeral,
        )
        self.world.attachments[attachment.id] = attachment
        return attachment

    def _reference(self, channel: Channel, reference: dict[str, Any]) -> dict[str, Any]:
        target_channel = self.world.channel(reference.get("channel_id") or channel.id)
        try:
            target = self.world.message(target_channel, reference["message_id"])
        except errors.DiscordError:
            if reference.get("fail_if_not_exists", True):
                raise errors.invalid_form(
                    "message_reference", "Unknown message", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE"
                ) from None
            return {"message_id": str(reference["message_id"]), "channel_id": str(channel.id)}
        result = {"message_id": str(target.id), "channel_id": str(target.channel_id)}
        if target.guild_id is not None:
            result["guild_id"] = str(target.guild_id)
        return result

    def _message_intent(self, message: Message) -> int:
        return Intent.GUILD_MESSAGES if message.guild_id is not None else Intent.DIRECT_MESSAGES

    def _announce_message(self, event: str, message: Message) -> None:
        self.gateway.dispatch(
            event,
            payloads.message(self.world, message),
            intent=self._message_intent(message),
            content_visible=self.world.content_exempt(message),
        )

    def _message_fields(self, message: Message) -> dict[str, Any]:
        viewer = message.visible_to if message.visible_to is not None else self.world.bot.id
        return {
            "channel_id": message.channel_id,
            "guild_id": message.guild_id,
            "user_id": message.author.id,
            "visible_to": message.visible_to,
            "message": message,
            "payload": payloads.message(self.world, message, viewer_id=viewer),
        }

    # Reactions and typing ---------------------------------------------------------------------

    def add_reaction(self, message: Message, user: User, emoji: Emoji) -> bool:
        """Add ``user``'s reaction; False if it was already there (Discord answers 204 anyway)."""
        reaction = message.reaction(emoji)
        if reaction is None:
            reaction = Reaction(emoji)
            message.reactions.append(reaction)
        if user.id in reaction.user_ids:
            return False
        reaction.user_ids.append(user.id)
        data = self._reaction_event(message, user, emoji)
        data["message_author_id"] = str(message.author.id)
        if message.guild_id is not None:
            member = self.world.guilds[message.guild_id].members.get(user.id)
            if member is not None:
                data["member"] = payloads.member(member)
        self.gateway.dispatch("MESSAGE_REACTION_ADD", data, intent=self._reaction_intent(message))
        self.feed.publish(ChangeKind.REACTION_ADD, **self._reaction_fields(message, user, data))
        return True

    def remove_reaction(self, message: Message, user: User, emoji: Emoji) -> bool:
        reaction = message.reaction(emoji)
        if reaction is None or user.id not in reaction.user_ids:
            return False
        reaction.user_ids.remove(user.id)
        if not reaction.user_ids:
            message.reactions.remove(reaction)
        data = self._reaction_event(message, user, emoji)
        self.gateway.dispatch(
            "MESSAGE_REACTION_REMOVE", data, intent=self._reaction_intent(message)
        )
        self.feed.publish(ChangeKind.REACTION_REMOVE, **self._reaction_fields(message, user, data))
        return True

    def _reaction_event(self, message: Message, user: User, emoji: Emoji) -> dict[str, Any]:
        data: dict[str, Any] = {
            "user_id": str(user.id),
            "channel_id": str(message.channel_id),
            "message_id": str(message.id),
            "emoji": payloads.emoji(emoji),
            "burst": False,
            "burst_colors": [],
            "type": 0,
        }
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        return data

    def _reaction_intent(self, message: Message) -> int:
        if message.guild_id is not None:
            return Intent.GUILD_MESSAGE_REACTIONS
        return Intent.DIRECT_MESSAGE_REACTIONS

    def _reaction_fields(
        self, message: Message, user: User, data: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "channel_id": message.channel_id,
            "guild_id": message.guild_id,
            "user_id": user.id,
            "message": message,
            "payload": data,
        }

    def typing(self, channel: Channel, user: User) -> None:
        data: dict[str, Any] = {
            "channel_id": str(channel.id),
            "user_id": str(user.id),
            "timestamp": int(time.time()),
        }
        intent = Intent.DIRECT_MESSAGE_TYPING
        if channel.guild_id is not None:
            intent = Intent.GUILD_MESSAGE_TYPING
            data["guild_id"] = str(channel.guild_id)
            member = self.world.guilds[channel.guild_id].members.get(user.id)
            if member is not None:
                data["member"] = payloads.member(member)
        if user.id != self.world.bot.id:
            self.gateway.dispatch("TYPING_START", data, intent=intent)
        self.feed.publish(
            ChangeKind.TYPING,
            channel_id=channel.id,
            guild_id=channel.guild_id,
            user_id=user.id,
            payload=data,
        )

    # Guild structure --------------------------------------------------------------------------

    def guild_created(self, guild: Guild) -> None:
        if self.world.bot.id not in guild.members:  # nothing to tell the bot
            data = payloads.guild(guild)
        else:
            data = payloads.guild_create(self.world, guild)
            self.gateway.dispatch("GUILD_CREATE", data, intent=Intent.GUILDS)
        self._guild_changed(guild, "GUILD_CREATE", data)

    def channel_created(self, channel: Channel) -> None:
        data = payloads.channel(self.world, channel)
        if channel.guild_id is not None:
            self.gateway.dispatch("CHANNEL_CREATE", data, intent=Intent.GUILDS)
            self._guild_changed(self.world.guilds[channel.guild_id], "CHANNEL_CREATE", data)

    def thread_created(self, thread: Channel) -> None:
        assert thread.guild_id is not None
        data = {**payloads.channel(self.world, thread), "newly_created": True}
        self.gateway.dispatch("THREAD_CREATE", data, intent=Intent.GUILDS)
        self._guild_changed(self.world.guilds[thread.guild_id], "THREAD_CREATE", data)

    def channel_updated(self, channel: Channel) -> None:
        """CHANNEL_UPDATE: e.g. its permission overwrites changed."""
        assert channel.guild_id is not None
        data = payloads.channel(self.world, channel)
        self.gateway.dispatch("CHANNEL_UPDATE", data, intent=Intent.GUILDS)
        self._guild_changed(self.world.guilds[channel.guild_id], "CHANNEL_UPDATE", data)

    def role_created(self, guild: Guild, role: Role) -> None:
        data = {"guild_id": str(guild.id), "role": payloads.role(role)}
        self.gateway.dispatch("GUILD_ROLE_CREATE", data, intent=Intent.GUILDS)
        self._guild_changed(guild, "GUILD_ROLE_CREATE", data)

    def role_updated(self, guild: Guild, role: Role) -> None:
        data = {"guild_id": str(guild.id), "role": payloads.role(role)}
        self.gateway.dispatch("GUILD_ROLE_UPDATE", data, intent=Intent.GUILDS)
        self._guild_changed(guild, "GUILD_ROLE_UPDATE", data)

    def member_added(self, guild: Guild, member: Member) -> None:
        data = {**payloads.member(member), "guild_id": str(guild.id)}
        self.gateway.dispatch("GUILD_MEMBER_ADD", data, intent=Intent.GUILD_MEMBERS)
        self._guild_changed(guild, "GUILD_MEMBER_ADD", data)

    def member_updated(self, guild: Guild, member: Member) -> None:
        data = {**payloads.member(member), "guild_id": str(guild.id)}
        # Discord sends the bot its own member updates (its roles) whatever its intents.
        intent = 0 if member.user is self.world.bot else Intent.GUILD_MEMBERS
        self.gateway.dispatch("GUILD_MEMBER_UPDATE", data, intent=intent)
        self._guild_changed(guild, "GUILD_MEMBER_UPDATE", data)

    def _guild_changed(self, guild: Guild, event: str, data: dict[str, Any]) -> None:
        self.feed.publish(
            ChangeKind.GUILD_UPDATE, guild_id=guild.id, payload={"event": event, **data}
        )


def _validate_body(body: dict[str, Any]) -> None:
    """The limits Discord enforces that a bot is most likely to hit."""
    content = body.get("content")
    if content is not None and len(str(content)) > MAX_CONTENT:
        raise errors.invalid_form(
            "content", f"Must be {MAX_CONTENT} or fewer in length.", "BASE_TYPE_MAX_LENGTH"
        )
    embeds = body.get("embeds") or []
    if len(embeds) > MAX_EMBEDS:
        raise errors.invalid_form("embeds", f"Must be {MAX_EMBEDS} or fewer in length.")
    for component in walk_components(body.get("components") or []):
        custom_id = component.get("custom_id")
        if custom_id is not None and len(custom_id) > MAX_CUSTOM_ID:
            raise errors.invalid_form(
                "components.custom_id",
                f"Must be {MAX_CUSTOM_ID} or fewer in length.",
                "BASE_TYPE_MAX_LENGTH",
            )


def _require_something(message: Message) -> None:
    if not (message.content or message.embeds or message.components or message.attachments):
        raise errors.empty_message()

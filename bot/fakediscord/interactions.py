"""Interactions: what a person's click or command sends the bot (INTERACTION_CREATE), and what
the bot's answers do (https://discord.com/developers/docs/interactions/receiving-and-responding).

The initial answer goes to ``POST /interactions/{id}/{token}/callback`` within
``response_timeout`` seconds (3 on Discord, else 10062 Unknown interaction); later messages go
through the webhook ``/webhooks/{application_id}/{token}`` while the token lives (15 minutes).
Each :class:`Interaction` records all of it, with the time of the first answer.
"""

from __future__ import annotations

import contextlib
import enum
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from . import errors, payloads
from .changes import ChangeFeed, ChangeKind
from .effects import Effects
from .gateway import Gateway
from .state import (
    Channel,
    Guild,
    Message,
    MessageFlag,
    MessageType,
    Role,
    Upload,
    User,
    World,
)

Integration = Literal["guild", "user"]  # installed to a server, or to the person's account


class InteractionType(enum.IntEnum):
    PING = 1
    APPLICATION_COMMAND = 2
    MESSAGE_COMPONENT = 3
    AUTOCOMPLETE = 4
    MODAL_SUBMIT = 5


class CallbackType(enum.IntEnum):
    PONG = 1
    CHANNEL_MESSAGE = 4
    DEFERRED_CHANNEL_MESSAGE = 5
    DEFERRED_UPDATE_MESSAGE = 6
    UPDATE_MESSAGE = 7
    AUTOCOMPLETE_RESULT = 8
    MODAL = 9


_ALLOWED_CALLBACKS = {
    InteractionType.APPLICATION_COMMAND: {4, 5, 9},
    InteractionType.MESSAGE_COMPONENT: {4, 5, 6, 7, 9},
    InteractionType.AUTOCOMPLETE: {8},
    InteractionType.MODAL_SUBMIT: {4, 5, 6, 7},
}


@dataclass(eq=False)
class InteractionResponse:
    """The bot's initial answer (the callback)."""

    type: CallbackType
    at: float  # time.monotonic() when the callback arrived
    latency: float  # seconds from dispatching the interaction to the callback
    data: dict[str, Any]

    @property
    def flags(self) -> int:
        return int(self.data.get("flags") or 0)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & MessageFlag.EPHEMERAL)

    @property
    def content(self) -> str:
        return str(self.data.get("content") or "")

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return list(self.data.get("embeds") or [])

    @property
    def components(self) -> list[dict[str, Any]]:
        return list(self.data.get("components") or [])

    @property
    def choices(self) -> list[dict[str, Any]]:
        """Autocomplete choices (type 8): ``[{"name": ..., "value": ...}]``."""
        return list(self.data.get("choices") or [])


@dataclass(eq=False)
class Interaction:
    """One interaction and everything the bot did with it.

    ``original`` is the response message (for a deferred update or update, the message the
    component is on); ``followups`` the webhook messages (after a deferral the first followup
    fills in the "thinking" message, so it is also ``original``).
    """

    id: int
    token: str
    type: InteractionType
    user: User
    channel: Channel
    guild: Guild | None
    data: dict[str, Any]
    payload: dict[str, Any]
    created_at: float  # time.monotonic() when dispatched
    message: Message | None = None  # the message a component (or a modal's component) is on
    response: InteractionResponse | None = None
    original: Message | None = None
    followups: list[Message] = field(default_factory=list)
    modal: dict[str, Any] | None = None
    # The errors the fake answered the bot's calls for this interaction with, e.g.
    # "10062 Unknown interaction (callback 3.104 s after dispatch)" for a late answer.
    errors: list[str] = field(default_factory=list)
    _feed: ChangeFeed | None = field(default=None, repr=False)

    @property
    def ack_latency(self) -> float | None:
        """Seconds from dispatch to the bot's first answer (None while unanswered)."""
        return None if self.response is None else self.response.latency

    @property
    def ephemeral(self) -> bool:
        return self.original is not None and self.original.ephemeral

    @property
    def choices(self) -> list[dict[str, Any]] | None:
        if self.response is None or self.response.type != CallbackType.AUTOCOMPLETE_RESULT:
            return None
        return self.response.choices

    @property
    def messages(self) -> list[Message]:
        """The original response and the followups, without repeats, in order."""
        found = [self.original] if self.original is not None else []
        found += [m for m in self.followups if m is not self.original]
        return [m for m in found if not m.deleted]

    async def wait_response(self, timeout: float = 3.0) -> InteractionResponse:
        """The bot's initial answer, waiting up to ``timeout`` seconds for it."""
        assert self._feed is not None
        return await self._feed.wait_until(
            lambda: self.response, timeout=timeout, what=f"a response to interaction {self.id}"
        )

    async def wait_followup(self, count: int = 1, timeout: float = 5.0) -> Message:
        """The ``count``-th followup message, waiting for it."""
        assert self._feed is not None
        return await self._feed.wait_until(
            lambda: self.followups[count - 1] if len(self.followups) >= count else None,
            timeout=timeout,
            what=f"followup #{count} to interaction {self.id}",
        )

    async def wait_done(self, timeout: float = 5.0) -> Message:
        """The original response once it is a real message (not "thinking..." any more)."""
        assert self._feed is not None

        def done() -> Message | None:
            if self.original is not None and not self.original.loading:
                return self.original
            return None

        return await self._feed.wait_until(
            done, timeout=timeout, what=f"interaction {self.id} to finish"
        )


class Resolved:
    """Builds ``data.resolved`` for the objects a person picked (users, roles, channels, files)."""

    def __init__(self, world: World, effects: Effects, invoker: User, channel: Channel) -> None:
        self.world = world
        self.effects = effects
        self.invoker = invoker
        self.where = channel  # where the person is
        self.guild = world.guild_of(channel)
        self.data: dict[str, dict[str, Any]] = {}

    def _put(self, kind: str, key: int, value: dict[str, Any]) -> str:
        self.data.setdefault(kind, {})[str(key)] = value
        return str(key)

    def user(self, value: Any) -> str:
        user = value if isinstance(value, User) else self.world.user(_id_of(value))
        if self.guild is not None and (member := self.guild.members.get(user.id)) is not None:
            perms = self.world.permissions(user, self.where)
            self._put(
                "members", user.id, payloads.member(member, with_user=False, permissions=perms)
            )
        return self._put("users", user.id, payloads.user(user))

    def role(self, value: Any) -> str:
        if self.guild is None:
            raise ValueError("roles can only be picked in a guild channel")
        role = value if isinstance(value, Role) else self.world.role(self.guild, _id_of(value))
        return self._put("roles", role.id, payloads.role(role))

    def channel(self, value: Any, channel_types: list[int] | None = None) -> str:
        channel = value if isinstance(value, Channel) else self.world.channel(_id_of(value))
        if channel_types and int(channel.type) not in channel_types:
            raise ValueError(f"channel {channel.name!r} is not one of the types {channel_types}")
        # Discord adds the invoking person's permissions in that channel.
        perms = None if channel.is_dm else self.world.permissions(self.invoker, channel)
        entry = payloads.channel(self.world, channel, permissions=perms)
        return self._put("channels", channel.id, entry)

    def mentionable(self, value: Any) -> str:
        return self.role(value) if isinstance(value, Role) else self.user(value)

    def attachment(self, value: Any) -> str:
        if not isinstance(value, Upload):
            raise ValueError(f"attachment options take an Upload(filename, data), not {value!r}")
        stored = self.effects.store_attachment(self.where.id, value, ephemeral=True)
        return self._put("attachments", stored.id, payloads.attachment(self.world, stored))

    def message(self, message: Message, viewer: User) -> str:
        return self._put(
            "messages", message.id, payloads.message(self.world, message, viewer_id=viewer.id)
        )

    def payload(self) -> dict[str, Any]:
        return dict(self.data)


def _owners(integration: Integration, user: User, guild: Guild | None, bot: User) -> dict[str, str]:
    """``authorizing_integration_owners``: which installs of the app let this interaction
    through — the server's ("0": its id, or "0" in the bot's DMs) when the server added the
    bot, the person's ("1": their id) for a user install."""
    owners: dict[str, str] = {}
    if guild is None or bot.id in guild.members:
        owners["0"] = "0" if guild is None else str(guild.id)
    if integration == "user":
        owners["1"] = str(user.id)
    return owners


def _id_of(value: Any) -> int:
    return int(getattr(value, "id", value))


class Interactions:
    """Opens interactions and applies the bot's answers (callback, followups, edits)."""

    def __init__(
        self,
        world: World,
        effects: Effects,
        gateway: Gateway,
        feed: ChangeFeed,
        *,
        upload_limit: int,
        response_timeout: float = 3.0,
        token_ttl: float = 15 * 60.0,
    ) -> None:
        self.world = world
        self.effects = effects
        self.gateway = gateway
        self.feed = feed
        self.upload_limit = upload_limit
        self.response_timeout = response_timeout
        self.token_ttl = token_ttl

    # Opening ----------------------------------------------------------------------------------

    def open(
        self,
        type: InteractionType,
        user: User,
        channel: Channel,
        data: dict[str, Any],
        *,
        message: Message | None = None,
        locale: str = "en-US",
        integration: Integration = "guild",
    ) -> Interaction:
        """Dispatch INTERACTION_CREATE for ``user`` in ``channel`` and return its record;
        ``integration`` "user": through a copy of the app installed to ``user``'s account."""
        guild = self.world.guild_of(channel)
        interaction = Interaction(
            id=self.world.snowflakes.next(),
            token=secrets.token_urlsafe(48),
            type=type,
            user=user,
            channel=channel,
            guild=guild,
            data=data,
            payload={},
            created_at=time.monotonic(),
            message=message,
            _feed=self.feed,
        )
        interaction.payload = self._payload(interaction, locale, integration)
        self.world.interactions[interaction.id] = interaction
        self.gateway.dispatch("INTERACTION_CREATE", interaction.payload)
        self.feed.publish(
            ChangeKind.INTERACTION_CREATE,
            channel_id=channel.id,
            guild_id=channel.guild_id,
            user_id=user.id,
            visible_to=user.id,
            interaction=interaction,
            payload=interaction.payload,
        )
        return interaction

    def _payload(
        self, interaction: Interaction, locale: str, integration: Integration
    ) -> dict[str, Any]:
        user, channel, guild = interaction.user, interaction.channel, interaction.guild
        bot = self.world.bot
        payload: dict[str, Any] = {
            "id": str(interaction.id),
            "application_id": str(self.world.application.id),
            "type": int(interaction.type),
            "data": interaction.data,
            "token": interaction.token,
            "version": 1,
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": self.upload_limit,
            "channel_id": str(channel.id),
            "channel": payloads.channel(
                self.world, channel, permissions=self.world.permissions(user, channel)
            ),
            "app_permissions": str(self.world.permissions(bot, channel)),
        }
        if guild is not None:
            member = self.world.member(guild, user.id)
            perms = self.world.permissions(user, channel)
            payload.update(
                guild_id=str(guild.id),
                guild_locale=guild.locale,
                guild={"id": str(guild.id), "locale": guild.locale, "features": []},
                member=payloads.member(member, permissions=perms),
                authorizing_integration_owners=_owners(integration, user, guild, bot),
                context=0,
            )
        else:
            payload.update(
                user=payloads.user(user),
                authorizing_integration_owners=_owners(integration, user, None, bot),
                context=1,
            )
        if interaction.message is not None:  # components, and modals opened from one
            payload["message"] = payloads.message(
                self.world, interaction.message, viewer_id=user.id
            )
        return payload

    # Lookups by id and token ------------------------------------------------------------------

    def by_id(self, interaction_id: int | str, token: str) -> Interaction:
        try:
            interaction = self.world.interactions[int(interaction_id)]
        except (KeyError, ValueError):
            raise errors.unknown_interaction() from None
        if interaction.token != token:
            raise errors.unknown_interaction()
        return interaction

    def by_token(self, application_id: int | str, token: str) -> Interaction:
        """The interaction behind a webhook token, if the token still lives."""
        if str(application_id) != str(self.world.application.id):
            raise errors.unknown_webhook()
        interaction = next((i for i in self.world.interactions.values() if i.token == token), None)
        if interaction is None:
            raise errors.unknown_webhook()
        with self._recording(interaction, "webhook call"):
            if time.monotonic() - interaction.created_at > self.token_ttl:
                raise errors.invalid_webhook_token()
            if interaction.response is None:
                raise errors.unknown_webhook()  # no webhook until the interaction is answered
        return interaction

    @contextlib.contextmanager
    def _recording(self, interaction: Interaction, call: str) -> Iterator[None]:
        """Note on the interaction (and the change feed) any error a bot call gets."""
        try:
            yield
        except errors.DiscordError as error:
            age = time.monotonic() - interaction.created_at
            note = f"{error.code} {error.message} ({call} {age:.3f} s after dispatch)"
            interaction.errors.append(note)
            self.feed.publish(
                ChangeKind.INTERACTION_RESPONSE,
                channel_id=interaction.channel.id,
                guild_id=interaction.channel.guild_id,
                user_id=interaction.user.id,
                visible_to=interaction.user.id,
                interaction=interaction,
                payload={"error": note},
            )
            raise

    # The callback -----------------------------------------------------------------------------

    def callback(
        self, interaction: Interaction, body: dict[str, Any], uploads: Sequence[Upload]
    ) -> dict[str, Any]:
        """Apply the initial answer; returns the ``with_response`` body."""
        with self._recording(interaction, "callback"):
            return self._callback(interaction, body, uploads)

    def _callback(
        self, interaction: Interaction, body: dict[str, Any], uploads: Sequence[Upload]
    ) -> dict[str, Any]:
        now = time.monotonic()
        if interaction.response is not None:
            raise errors.already_acknowledged()
        if now - interaction.created_at > self.response_timeout:
            raise errors.unknown_interaction()
        try:
            kind = CallbackType(int(body.get("type", 0)))
        except ValueError:
            raise errors.invalid_form(
                "type", f"Value {body.get('type')!r} is not a valid enum value."
            ) from None
        if kind not in _ALLOWED_CALLBACKS.get(interaction.type, set()):
            raise errors.invalid_form(
                "type", f"Callback {kind.name} is not valid for {interaction.type.name}"
            )
        data: dict[str, Any] = body.get("data") or {}
        ephemeral = bool(int(data.get("flags") or 0) & MessageFlag.EPHEMERAL)

        message: Message | None = None
        if kind == CallbackType.CHANNEL_MESSAGE:
            message = self._post(interaction, data, uploads, ephemeral=ephemeral)
        elif kind == CallbackType.DEFERRED_CHANNEL_MESSAGE:
            message = self._post(interaction, {}, (), ephemeral=ephemeral, loading=True)
        elif kind in (CallbackType.DEFERRED_UPDATE_MESSAGE, CallbackType.UPDATE_MESSAGE):
            if interaction.message is None:
                raise errors.invalid_form("type", "There is no message to update")
            message = interaction.message
            if kind == CallbackType.UPDATE_MESSAGE:
                self.effects.edit_message(message, data, uploads)
        elif kind == CallbackType.AUTOCOMPLETE_RESULT:
            if len(data.get("choices") or []) > 25:
                raise errors.invalid_form("data.choices", "Must be 25 or fewer in length.")
        elif kind == CallbackType.MODAL:
            if not data.get("custom_id") or not data.get("components"):
                raise errors.invalid_form("data", "A modal needs a custom_id and components")
            interaction.modal = data

        interaction.original = message
        interaction.response = InteractionResponse(kind, now, now - interaction.created_at, data)
        self.feed.publish(
            ChangeKind.INTERACTION_RESPONSE,
            channel_id=interaction.channel.id,
            guild_id=interaction.channel.guild_id,
            user_id=interaction.user.id,
            # A message answer is seen by whoever sees the message; choices and modals are
            # pop-ups only the person sees.
            visible_to=message.visible_to if message is not None else interaction.user.id,
            message=message,
            interaction=interaction,
            payload={"type": int(kind), "data": data},
        )
        interaction_part: dict[str, Any] = {
            "id": str(interaction.id),
            "type": int(interaction.type),
            "response_message_loading": kind == CallbackType.DEFERRED_CHANNEL_MESSAGE,
            "response_message_ephemeral": message is not None and message.ephemeral,
        }
        resource: dict[str, Any] = {"type": int(kind)}
        if message is not None:
            interaction_part["response_message_id"] = str(message.id)
            resource["message"] = payloads.message(
                self.world, message, viewer_id=interaction.user.id
            )
        return {"interaction": interaction_part, "resource": resource}

    def _post(
        self,
        interaction: Interaction,
        data: dict[str, Any],
        uploads: Sequence[Upload],
        *,
        ephemeral: bool,
        loading: bool = False,
        original_id: int | None = None,
    ) -> Message:
        metadata: dict[str, Any] = {
            "id": str(interaction.id),
            "type": int(interaction.type),
            "user": payloads.user(interaction.user),
            "authorizing_integration_owners": interaction.payload["authorizing_integration_owners"],
        }
        message_type = MessageType.DEFAULT
        if interaction.type == InteractionType.APPLICATION_COMMAND:
            metadata["name"] = interaction.data.get("name")
            metadata["command_type"] = interaction.data.get("type", 1)
            message_type = MessageType.CHAT_INPUT_COMMAND
            if interaction.data.get("type", 1) != 1:
                message_type = MessageType.CONTEXT_MENU_COMMAND
        if interaction.message is not None:
            metadata["interacted_message_id"] = str(interaction.message.id)
        if original_id is not None:
            metadata["original_response_message_id"] = str(original_id)
        flags = (MessageFlag.EPHEMERAL if ephemeral else 0) | (
            MessageFlag.LOADING if loading else 0
        )
        return self.effects.post_message(
            interaction.channel,
            self.world.bot,
            data,
            uploads,
            type=message_type,
            webhook_id=self.world.application.id,
            interaction_metadata=metadata,
            visible_to=interaction.user.id if ephemeral else None,
            extra_flags=int(flags),
        )

    # The webhook ------------------------------------------------------------------------------

    def followup(
        self, interaction: Interaction, body: dict[str, Any], uploads: Sequence[Upload]
    ) -> Message:
        """A followup message; the first one after a deferral fills in the "thinking" message."""
        with self._recording(interaction, "followup"):
            return self._followup(interaction, body, uploads)

    def _followup(
        self, interaction: Interaction, body: dict[str, Any], uploads: Sequence[Upload]
    ) -> Message:
        original = interaction.original
        if original is not None and original.loading and not original.deleted:
            message = self.effects.edit_message(original, body, uploads)
        else:
            ephemeral = bool(int(body.get("flags") or 0) & MessageFlag.EPHEMERAL)
            original_id = original.id if original is not None else None
            message = self._post(
                interaction, body, uploads, ephemeral=ephemeral, original_id=original_id
            )
        interaction.followups.append(message)
        self.feed.publish(
            ChangeKind.INTERACTION_RESPONSE,
            channel_id=interaction.channel.id,
            guild_id=interaction.channel.guild_id,
            user_id=interaction.user.id,
            visible_to=message.visible_to,
            message=message,
            interaction=interaction,
            payload={"followup": True},
        )
        return message

    def webhook_message(self, interaction: Interaction, message_id: str) -> Message:
        """``@original`` or the id of one of this interaction's messages."""
        if message_id == "@original":
            if interaction.original is None or interaction.original.deleted:
                raise errors.unknown_message()
            return interaction.original
        for message in interaction.messages:
            if str(message.id) == message_id:
                return message
        raise errors.unknown_message()

    def edit(
        self,
        interaction: Interaction,
        message_id: str,
        body: dict[str, Any],
        uploads: Sequence[Upload],
    ) -> Message:
        with self._recording(interaction, "edit"):
            return self.effects.edit_message(
                self.webhook_message(interaction, message_id), body, uploads
            )

    def delete(self, interaction: Interaction, message_id: str) -> None:
        with self._recording(interaction, "delete"):
            self.effects.delete_message(self.webhook_message(interaction, message_id))

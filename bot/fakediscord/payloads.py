"""Render the world as the JSON Discord sends (ids as strings, timestamps in ISO 8601).

Shapes follow https://discord.com/developers/docs/resources and what discord.py 2.7 parses
(``discord/types/*.py``); fields discord.py reads with ``data[...]`` are always present.
"""

from __future__ import annotations

import datetime
from typing import Any

from .state import (
    Application,
    Attachment,
    Channel,
    Emoji,
    Guild,
    Member,
    Message,
    Reaction,
    Role,
    User,
    World,
    snowflake_time,
)


def iso(moment: datetime.datetime) -> str:
    return moment.isoformat()


def user(u: User) -> dict[str, Any]:
    return {
        "id": str(u.id),
        "username": u.username,
        "discriminator": "0",
        "global_name": u.global_name,
        "avatar": None,
        "bot": u.bot,
        "system": False,
        "public_flags": 0,
        "flags": 0,
    }


def role(r: Role) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": str(r.id),
        "name": r.name,
        "permissions": str(r.permissions),
        "position": r.position,
        "color": r.color,
        "colors": {"primary_color": r.color, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "managed": r.managed,
        "mentionable": False,
        "flags": 0,
    }
    if r.bot_id is not None:
        payload["tags"] = {"bot_id": str(r.bot_id)}
    return payload


def member(m: Member, *, with_user: bool = True, permissions: int | None = None) -> dict[str, Any]:
    """A guild member; ``permissions`` is added in interaction payloads (channel-level bits)."""
    payload: dict[str, Any] = {
        "roles": [str(r) for r in m.role_ids],
        "nick": m.nick,
        "avatar": None,
        "banner": None,
        "joined_at": iso(m.joined_at),
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "pending": False,
        "flags": 0,
        "communication_disabled_until": None,
    }
    if with_user:
        payload["user"] = user(m.user)
    if permissions is not None:
        payload["permissions"] = str(permissions)
    return payload


def channel(world: World, c: Channel, *, permissions: int | None = None) -> dict[str, Any]:
    last = c.message_ids[-1] if c.message_ids else None
    payload: dict[str, Any] = {
        "id": str(c.id),
        "type": int(c.type),
        "last_message_id": None if last is None else str(last),
        "flags": 0,
    }
    if c.is_dm:
        others = [world.users[i] for i in c.recipient_ids if i != world.bot.id]
        payload["recipients"] = [user(u) for u in others]
    elif c.is_thread:
        payload.update(
            guild_id=str(c.guild_id),
            name=c.name,
            parent_id=str(c.parent_id),
            owner_id=str(c.owner_id),
            rate_limit_per_user=0,
            message_count=len(c.message_ids),
            total_message_sent=len(c.message_ids),
            member_count=1,
            thread_metadata={
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": iso(snowflake_time(c.id)),
                "locked": False,
            },
        )
    else:
        payload.update(
            guild_id=str(c.guild_id),
            name=c.name,
            position=c.position,
            topic=c.topic,
            nsfw=False,
            parent_id=None,
            rate_limit_per_user=0,
            permission_overwrites=[
                {"id": str(o.id), "type": o.type, "allow": str(o.allow), "deny": str(o.deny)}
                for o in c.overwrites
            ],
        )
    if permissions is not None:
        payload["permissions"] = str(permissions)
    return payload


def guild(g: Guild) -> dict[str, Any]:
    """The REST shape of a guild (GET /guilds/{id}): no members or channels."""
    return {
        "id": str(g.id),
        "name": g.name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(g.owner_id),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": [role(r) for r in g.roles.values()],
        "emojis": [],
        "stickers": [],
        "features": [],
        "mfa_level": 0,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "vanity_url_code": None,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": g.locale,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
    }


def guild_create(world: World, g: Guild) -> dict[str, Any]:
    """GUILD_CREATE: the guild with every channel, role and member (member_count matches, so
    discord.py considers it chunked and does not ask for members)."""
    payload = guild(g)
    payload.update(
        unavailable=False,
        large=False,
        joined_at=iso(g.members[world.bot.id].joined_at),
        member_count=len(g.members),
        members=[member(m) for m in g.members.values()],
        channels=[channel(world, world.channels[c]) for c in g.channel_ids],
        threads=[channel(world, world.channels[t]) for t in g.thread_ids],
        presences=[],
        voice_states=[],
        stage_instances=[],
        guild_scheduled_events=[],
        soundboard_sounds=[],
        _bot_id=str(world.bot.id),  # for the gateway's intent filter; never sent
    )
    return payload


def attachment(world: World, a: Attachment) -> dict[str, Any]:
    url = world.base_url + a.path
    payload: dict[str, Any] = {
        "id": str(a.id),
        "filename": a.filename,
        "size": a.size,
        "url": url,
        "proxy_url": url,
        "content_type": a.content_type,
        "description": a.description,
        "flags": 0,
    }
    if (dimensions := a.image_size()) is not None:
        payload["width"], payload["height"] = dimensions
    if a.ephemeral:
        payload["ephemeral"] = True
    return payload


def emoji(e: Emoji) -> dict[str, Any]:
    if e.id is None:
        return {"id": None, "name": e.name}
    return {"id": str(e.id), "name": e.name, "animated": e.animated}


def reaction(r: Reaction, viewer_id: int) -> dict[str, Any]:
    return {
        "count": len(r.user_ids),
        "count_details": {"burst": 0, "normal": len(r.user_ids)},
        "me": viewer_id in r.user_ids,
        "me_burst": False,
        "burst_colors": [],
        "emoji": emoji(r.emoji),
    }


def message(world: World, m: Message, *, viewer_id: int | None = None) -> dict[str, Any]:
    """A message as ``viewer_id`` (default: the bot) sees it, with ``member`` for guild authors."""
    viewer = world.bot.id if viewer_id is None else viewer_id
    payload: dict[str, Any] = {
        "id": str(m.id),
        "channel_id": str(m.channel_id),
        "type": int(m.type),
        "author": user(m.author),
        "content": m.content,
        "timestamp": iso(m.created_at),
        "edited_timestamp": None if m.edited_at is None else iso(m.edited_at),
        "tts": m.tts,
        "mention_everyone": m.mention_everyone,
        "mentions": [user(world.users[i]) for i in m.mention_ids if i in world.users],
        "mention_roles": [str(i) for i in m.mention_role_ids],
        "attachments": [attachment(world, a) for a in m.attachments],
        "embeds": m.embeds,
        "components": m.components,
        "reactions": [reaction(r, viewer) for r in m.reactions],
        "pinned": False,
        "flags": m.flags,
    }
    if m.guild_id is not None:
        payload["guild_id"] = str(m.guild_id)
        author_member = world.guilds[m.guild_id].members.get(m.author.id)
        if author_member is not None and m.webhook_id is None:
            payload["member"] = member(author_member, with_user=False)
    if m.nonce is not None:
        payload["nonce"] = m.nonce
    if m.webhook_id is not None:
        payload["webhook_id"] = str(m.webhook_id)
    if m.application_id is not None:
        payload["application_id"] = str(m.application_id)
    if m.interaction_metadata is not None:
        payload["interaction_metadata"] = m.interaction_metadata
    if m.reference is not None:
        payload["message_reference"] = {"type": 0, **m.reference}
        referenced = world.messages.get(m.reference_id or 0)
        if referenced is not None and not referenced.deleted:
            payload["referenced_message"] = message(world, referenced, viewer_id=viewer)
        else:
            payload["referenced_message"] = None
    return payload


def application(app: Application, *, flags: int) -> dict[str, Any]:
    """GET /oauth2/applications/@me."""
    return {
        "id": str(app.id),
        "name": app.name,
        "icon": None,
        "description": "",
        "summary": "",
        "type": None,
        "bot": user(app.bot),
        "bot_public": True,
        "bot_require_code_grant": False,
        "owner": user(app.owner) if not app.team else team_owner(app),
        "team": team(app) if app.team else None,
        "verify_key": "0" * 64,
        "flags": flags,
        "tags": [],
        "redirect_uris": [],
        "interactions_endpoint_url": None,
        "install_params": None,
        "approximate_guild_count": 0,
    }


def team(app: Application) -> dict[str, Any]:
    """The team that owns ``app`` (its first admin is the team's owner)."""
    admins = [m.user for m in app.team if m.role == "admin"] or [app.team[0].user]
    return {
        "id": str(app.team_id),
        "name": f"{app.name} team",
        "icon": None,
        "owner_user_id": str(admins[0].id),
        "members": [
            {
                "membership_state": 2,  # accepted
                "team_id": str(app.team_id),
                "permissions": ["*"],
                "role": m.role,
                "user": user(m.user),
            }
            for m in app.team
        ],
    }


def team_owner(app: Application) -> dict[str, Any]:
    """A team-owned application's ``owner``: a stand-in user for the team, as Discord sends."""
    return {
        **user(User(app.team_id, f"team{app.team_id}")),
        "flags": 1024,  # TEAM_PSEUDO_USER
    }


def ready(world: World, *, session_id: str, resume_url: str, flags: int) -> dict[str, Any]:
    """READY: guilds arrive as unavailable stubs, each followed by its GUILD_CREATE."""
    return {
        "v": 10,
        "user": {**user(world.bot), "verified": True, "mfa_enabled": False, "email": None},
        "guilds": [{"id": str(g.id), "unavailable": True} for g in world.bot_guilds()],
        "session_id": session_id,
        "session_type": "normal",
        "resume_gateway_url": resume_url,
        "application": {"id": str(world.application.id), "flags": flags},
        "private_channels": [],
        "relationships": [],
        "presences": [],
        "guild_join_requests": [],
        "geo_ordered_rtc_regions": [],
        "user_settings": {},
        "_trace": ["fakediscord"],
    }

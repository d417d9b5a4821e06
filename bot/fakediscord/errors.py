"""Discord's JSON errors: ``{"code": ..., "message": ...}`` with the HTTP status Discord uses.

Raise a :class:`DiscordError` anywhere in the fake; the REST layer turns it into a response.
The codes are Discord's own (https://discord.com/developers/docs/topics/opcodes-and-status-codes).
"""

from __future__ import annotations

from typing import Any


class DiscordError(Exception):
    """An API error as Discord reports it: HTTP status, JSON code, message, optional details."""

    def __init__(
        self, status: int, code: int, message: str, errors: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def payload(self) -> dict[str, Any]:
        """The JSON body Discord sends for this error."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors:
            body["errors"] = self.errors
        return body


def unauthorized() -> DiscordError:
    return DiscordError(401, 0, "401: Unauthorized")


def unknown(what: str, code: int) -> DiscordError:
    """``404 Unknown <what>``, e.g. ``unknown("Channel", 10003)``."""
    return DiscordError(404, code, f"Unknown {what}")


def unknown_channel() -> DiscordError:
    return unknown("Channel", 10003)


def unknown_guild() -> DiscordError:
    return unknown("Guild", 10004)


def unknown_member() -> DiscordError:
    return unknown("Member", 10007)


def unknown_message() -> DiscordError:
    return unknown("Message", 10008)


def unknown_role() -> DiscordError:
    return unknown("Role", 10011)


def unknown_user() -> DiscordError:
    return unknown("User", 10013)


def unknown_emoji() -> DiscordError:
    return unknown("Emoji", 10014)


def unknown_webhook() -> DiscordError:
    return unknown("Webhook", 10015)


def unknown_interaction() -> DiscordError:
    return DiscordError(404, 10062, "Unknown interaction")


def unknown_command() -> DiscordError:
    return unknown("application command", 10063)


def already_acknowledged() -> DiscordError:
    return DiscordError(400, 40060, "Interaction has already been acknowledged.")


def too_large(limit: int) -> DiscordError:
    return DiscordError(413, 40005, f"Request entity too large (limit {limit} bytes per file)")


def missing_access() -> DiscordError:
    return DiscordError(403, 50001, "Missing Access")


def not_author() -> DiscordError:
    return DiscordError(403, 50005, "Cannot edit a message authored by another user")


def empty_message() -> DiscordError:
    return DiscordError(400, 50006, "Cannot send an empty message")


def cannot_dm() -> DiscordError:
    return DiscordError(403, 50007, "Cannot send messages to this user")


def missing_permissions() -> DiscordError:
    return DiscordError(403, 50013, "Missing Permissions")


def invalid_webhook_token() -> DiscordError:
    return DiscordError(401, 50027, "Invalid Webhook Token")


def invalid_form(field: str, message: str, code: str = "BASE_TYPE_INVALID") -> DiscordError:
    """``400 Invalid Form Body`` with Discord's nested ``errors`` object for one field path."""
    errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(field.split(".")):
        errors = {part: errors}
    return DiscordError(400, 50035, "Invalid Form Body", errors)

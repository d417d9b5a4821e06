"""Typed errors with a message for the person, and the one app-command error handler.

A command raises one of these; `on_app_command_error` gives it one ephemeral reply and one log
line. Anything else is a bug: the person gets a short apology, the log gets the traceback.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands

log = logging.getLogger(__name__)


class DoorwaysError(app_commands.AppCommandError):
    """An error whose message is written for the person who ran the command."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadOptions(DoorwaysError):
    """An option value the bot does not accept (whatever the client let through)."""


class QuotaExceeded(DoorwaysError):
    """A limit of the person's quota; `resets_at` (unix time) when it frees up, if known."""

    def __init__(self, message: str, resets_at: float | None = None) -> None:
        super().__init__(message)
        self.resets_at = resets_at


class ChannelNotAllowed(DoorwaysError):
    """Painting commands are not enabled in this channel."""


class MissingChannelPermissions(DoorwaysError):
    """The bot lacks a permission it needs to deliver a painting in this channel."""


class JobNotFound(DoorwaysError):
    """No such job (or not one of the person's)."""


class NotReady(DoorwaysError):
    """The bot is starting or stopping and cannot take the command now."""


async def on_app_command_error(
    interaction: discord.Interaction, error: app_commands.AppCommandError
) -> None:
    """The tree's error handler: one ephemeral reply and one log line per error."""
    original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
    command = interaction.command.qualified_name if interaction.command else "?"
    if isinstance(original, DoorwaysError):
        log.info(
            "/%s by %s refused (%s): %s",
            command,
            interaction.user.id,
            type(original).__name__,
            original.message,
        )
        text = original.message
    elif isinstance(original, app_commands.CheckFailure | app_commands.TransformerError):
        log.info("/%s by %s: %s", command, interaction.user.id, original)
        text = str(original)
    else:
        log.error("/%s by %s failed", command, interaction.user.id, exc_info=original)
        text = f"Sorry, something went wrong with /{command}; it has been logged."
    await reply_ephemeral(interaction, text)


async def reply_ephemeral(interaction: discord.Interaction, text: str) -> None:
    """Answer (or follow up) ephemerally, never raising: the interaction may have expired."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text[:2000], ephemeral=True)
        else:
            await interaction.response.send_message(text[:2000], ephemeral=True)
    except discord.HTTPException as error:
        log.warning("could not reply to interaction %s: %s", interaction.id, error)

"""Where the bot's commands exist: only where a server has added the bot.

Discord lets an app be installed to a server (integration type 0) or to a person's account
(1), and a command say in which contexts it may run: a server (0), a DM with the bot (1), or
other DMs and group DMs (2). A copy installed to someone's account could take a painting job
in a server or a DM the bot is not in, and then never post the picture there. So every command
is registered for server installs only; the painting commands (and /admin, /nightly) only in
servers, the private ones (/queue, /params, Get parameters, …) also in a DM with the bot.
Discord enforces the registration; `DoorwaysTree.interaction_check` refuses anything that
reaches the bot otherwise (commands registered by an older version, or an app whose portal
settings allow user installs and commands that did not say).
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from bot.errors import reply_ephemeral

log = logging.getLogger(__name__)

# Every command's default (the tree's): server installs; servers and the bot's DMs.
SERVER_INSTALL = app_commands.AppInstallationType(guild=True, user=False)
SERVERS_AND_BOT_DMS = app_commands.AppCommandContext(
    guild=True, dm_channel=True, private_channel=False
)

# For commands that only make sense in a server: painting, /admin, /nightly. (discord.py's
# guild_only leaves the other contexts to the tree's default, which allows the bot's DMs.)
servers_only = app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)

NOT_INSTALLED = (
    "Doorways works only in servers that have added it, and in DMs with it. It is not added "
    "to this server, so it could not post your picture here: a server admin can add it "
    "(installing it to your own account is not supported)."
)


def install_problem(interaction: discord.Interaction) -> str | None:
    """Why the bot will not take this interaction, or None: it must come through a server
    install — in a server that added the bot, or in a DM with the bot."""
    if interaction.guild_id is not None:
        return None if interaction.is_guild_integration() else NOT_INSTALLED
    if interaction.context.dm_channel:
        return None
    return NOT_INSTALLED  # a group DM or a DM between other people: a user install


class DoorwaysTree(app_commands.CommandTree):
    """The command tree, with one check before every command: the install (above)."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        problem = install_problem(interaction)
        if problem is None:
            return True
        command = interaction.command.qualified_name if interaction.command else "?"
        log.info("refused /%s by %s: not through a server install", command, interaction.user.id)
        if interaction.type is discord.InteractionType.autocomplete:
            await interaction.response.autocomplete([])  # suggestions cannot carry a message
        else:
            await reply_ephemeral(interaction, problem)
        return False

"""The Results cog: registers what the job buttons do, listens to raw reactions (so messages
from before a restart count too), and adds the "Get parameters" message command."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import parameters, views
from bot.exts.results import _actions

if TYPE_CHECKING:
    from bot.bot import DoorwaysBot

GET_PARAMETERS = "Get parameters"


class Results(commands.Cog):
    """Buttons, reactions and "Get parameters" on job messages."""

    def __init__(self, bot: DoorwaysBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name=GET_PARAMETERS, callback=self.get_parameters)

    async def cog_load(self) -> None:
        views.register_actions(self.bot, _actions.bound_actions(self.bot))
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        views.unregister_actions(self.bot)
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        await _actions.on_reaction(self.bot, payload)

    async def get_parameters(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        """Apps > Get parameters: from the job database, or the PNG's own metadata."""
        await parameters.think(interaction)
        found = await parameters.of_message(self.bot.store, message)
        await parameters.answer(interaction, found)

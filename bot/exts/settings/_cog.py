"""The PersonalSettings cog: /settings shows or changes a person's defaults, kept in the
database (bot.rules.UserSettings). /entrance and /imagine use them for options not given;
the limits still apply; `dm` makes results come by DM too."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.app_commands import Range
from discord.ext import commands

from bot import rules
from bot.exts.paint._build import MAX_SIDE, MAX_STYLE, MIN_SIDE, style_text
from bot.messages import code
from bot.settings import HARD_MAX_ITERATIONS
from engine.request import MAX_COUNT

if TYPE_CHECKING:
    from bot.bot import DoorwaysBot


def describe(settings: rules.UserSettings) -> str:
    style = "the command's default" if settings.style is None else code(settings.style or "none")
    size = "the command's default" if settings.size is None else "{}×{}".format(*settings.size)
    iterations = settings.iterations or "the command's default"
    return "\n".join(
        [
            f"**Style:** {style}",
            f"**Iterations:** {iterations}",
            f"**Size (/imagine):** {size}",
            f"**Pictures per command (count):** {settings.count or 1}",
            f"**Results by DM too:** {'yes' if settings.dm else 'no'}",
            "-# Options you give a command win; the limits here always apply.",
        ]
    )


class PersonalSettings(commands.Cog):
    """/settings."""

    def __init__(self, bot: DoorwaysBot) -> None:
        self.bot = bot

    @app_commands.command(description="Your defaults for /entrance and /imagine; no options: show")
    @app_commands.describe(
        style="words after each prompt, like: by James Gurney (none for none)",
        iterations="default iterations",
        width="default /imagine width (with height)",
        height="default /imagine height (with width)",
        dm="also send your results to you by DM",
        count="pictures per /entrance or /imagine, painted together and posted as a grid",
        reset="forget all your settings",
    )
    async def settings(
        self,
        interaction: discord.Interaction,
        style: Range[str, 1, MAX_STYLE] | None = None,
        iterations: Range[int, 1, HARD_MAX_ITERATIONS] | None = None,
        width: Range[int, MIN_SIDE, MAX_SIDE] | None = None,
        height: Range[int, MIN_SIDE, MAX_SIDE] | None = None,
        dm: bool | None = None,
        count: Range[int, 1, MAX_COUNT] | None = None,
        reset: bool = False,
    ) -> None:
        store, user_id = self.bot.store, interaction.user.id
        if reset:
            await rules.set_user_settings(store, user_id, None)
        current = await rules.get_user_settings(store, user_id)
        changes: dict[str, Any] = {
            "style": None if style is None else style_text(style, ""),
            "iterations": iterations,
            "width": width,
            "height": height,
            "dm": dm,
            "count": count,
        }
        if (width is None) != (height is None) and current.size is None:
            changes["width"] = changes["height"] = None
            note = "\n-# Give both width and height for a default size."
        else:
            note = ""
        given = {name: value for name, value in changes.items() if value is not None}
        if given:
            current = dataclasses.replace(current, **given)
            await rules.set_user_settings(store, user_id, current)
        head = "Your settings were reset." if reset else "Your settings:"
        await interaction.response.send_message(
            f"{head}\n{describe(current)}{note}", ephemeral=True
        )

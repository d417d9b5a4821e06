"""The Paint cog: declares the commands and their options, and defers to `_build` (options →
request) and `bot.jobs` (quota, queue, acknowledgement). A person's /settings fill in the
options they did not give."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.app_commands import Choice, Range
from discord.ext import commands

from bot.exts.paint import _build
from bot.installs import servers_only
from bot.jobs import check_channel, limits_for, queue_job
from bot.rules import get_user_settings
from bot.settings import HARD_MAX_ITERATIONS
from engine.entrance import DOOR_WORDS, load_presets
from engine.request import MAX_COUNT

if TYPE_CHECKING:
    from bot.bot import DoorwaysBot

AUTOCOMPLETE_CHOICES = 25  # Discord's maximum
COUNT_HELP = "pictures, painted together and posted as a grid to pick from (default: 1)"


class Paint(commands.Cog):
    """/entrance and /imagine."""

    def __init__(self, bot: DoorwaysBot) -> None:
        self.bot = bot
        self.presets = load_presets()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Every command of this cog: only in the allowed channels."""
        check_channel(self.bot, interaction)
        return True

    @app_commands.command(description="Paint an entrance juxtaposition, like heaven | hell")
    @servers_only
    @app_commands.describe(
        realms="two or three realms, left to right: heaven | hell (or pick a preset)",
        door="the door word (default: entrance)",
        style="words after each prompt (default: by James Gurney; none for none)",
        seed="random seed (default: a new one)",
        iterations="optimisation steps (default: 500; more than the limit here is clamped)",
        count=COUNT_HELP,
    )
    @app_commands.choices(door=[Choice(name=word, value=word) for word in DOOR_WORDS])
    async def entrance(
        self,
        interaction: discord.Interaction,
        realms: Range[str, 1, 300],
        door: str | None = None,
        style: Range[str, 1, _build.MAX_STYLE] | None = None,
        seed: Range[int, 0, _build.MAX_SEED] | None = None,
        iterations: Range[int, 1, HARD_MAX_ITERATIONS] | None = None,
        count: Range[int, 1, MAX_COUNT] | None = None,
    ) -> None:
        limits = limits_for(self.bot, interaction)
        mine = await get_user_settings(self.bot.store, interaction.user.id)  # /settings
        request = _build.entrance(
            realms,
            self.bot.settings,
            self.presets,
            door=door,
            style=style if style is not None else mine.style,
            seed=seed,
            iterations=iterations or mine.iterations,
        )
        request = request.replace(count=count or mine.count or 1)
        await queue_job(self.bot, interaction, "entrance", request, limits)

    @entrance.autocomplete("realms")
    async def realms_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[Choice[str]]:
        """Presets whose name, title or group contains what was typed."""
        typed = current.casefold().strip()
        found = [
            Choice(name=f"{p.title} ({p.group})"[:100], value=p.name)
            for p in self.presets.values()
            if typed in p.name or typed in p.title.casefold() or typed in p.group.casefold()
        ]
        return found[:AUTOCOMPLETE_CHOICES]

    @app_commands.command(description="Paint prompts in the engine's syntax: a | b:0.5 | c:-1")
    @servers_only
    @app_commands.describe(
        prompt="prompts split by |, each text or text:weight (negative weights push away)",
        aspect="picture shape: the largest size of this aspect allowed here",
        width="width in pixels (scaled down to the size limit here)",
        height="height in pixels (scaled down to the size limit here)",
        iterations="optimisation steps (default: 300; more than the limit here is clamped)",
        seed="random seed (default: a new one)",
        symmetry="mirror symmetry: tone, semantic (mirrored objects) or both",
        panorama="place the prompts left to right across the width",
        lr="learning rate (default: 0.1; around 0.025 for symmetric work)",
        style="words after each positive prompt, like: by James Gurney",
        count=COUNT_HELP,
    )
    @app_commands.choices(
        aspect=[Choice(name=a, value=a) for a in _build.ASPECTS],
        symmetry=[Choice(name=s.label, value=key) for key, s in _build.SYMMETRIES.items()],
        panorama=[Choice(name=p, value=p) for p in _build.PANORAMAS],
    )
    async def imagine(
        self,
        interaction: discord.Interaction,
        prompt: Range[str, 1, 1000],
        aspect: str | None = None,
        width: Range[int, _build.MIN_SIDE, _build.MAX_SIDE] | None = None,
        height: Range[int, _build.MIN_SIDE, _build.MAX_SIDE] | None = None,
        iterations: Range[int, 1, HARD_MAX_ITERATIONS] | None = None,
        seed: Range[int, 0, _build.MAX_SEED] | None = None,
        symmetry: str | None = None,
        panorama: str | None = None,
        lr: Range[float, _build.LR_RANGE[0], _build.LR_RANGE[1]] | None = None,
        style: Range[str, 1, _build.MAX_STYLE] | None = None,
        count: Range[int, 1, MAX_COUNT] | None = None,
    ) -> None:
        limits = limits_for(self.bot, interaction)
        mine = await get_user_settings(self.bot.store, interaction.user.id)  # /settings
        if aspect is None and width is None and height is None and mine.size is not None:
            width, height = mine.size
        if iterations is None:
            iterations = mine.iterations
        if style is None:
            style = mine.style
        request = _build.imagine(
            prompt,
            self.bot.settings,
            max_area=limits.max_area or self.bot.policy.max_area,
            aspect=aspect,
            width=width,
            height=height,
            iterations=iterations,
            seed=seed,
            symmetry=symmetry,
            panorama=panorama,
            lr=lr,
            style=style,
        ).replace(count=count or mine.count or 1)
        await queue_job(self.bot, interaction, "imagine", request, limits)

"""An interaction token lives 15 minutes on Discord: a deferred answer filled in later than
that is refused with 401 Invalid Webhook Token (50027). Here the fake's life is shortened."""

from __future__ import annotations

import asyncio

import discord
from discord.ext import commands

from bot.fakediscord import FakeDiscord
from tests.bot.conftest import StartBot


async def test_a_followup_after_the_tokens_life_is_refused(
    fake_discord: FakeDiscord, start_bot: StartBot
) -> None:
    fake_discord.interactions.token_ttl = 0.5
    refused: list[discord.HTTPException] = []
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.none(), guild_ready_timeout=0.05)

    @bot.tree.command(name="slow", description="answers too late")
    async def slow(interaction: discord.Interaction, wait: float) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await asyncio.sleep(wait)
        try:
            await interaction.followup.send("done")
        except discord.HTTPException as error:
            refused.append(error)

    await start_bot(bot)
    await bot.tree.sync()
    in_time = await fake_discord.slash(
        fake_discord.owner, fake_discord.channel, "slow", {"wait": 0.0}
    )
    await in_time.wait_response(timeout=3.0)
    await fake_discord.wait_until(lambda: in_time.followups or None)
    late = await fake_discord.slash(fake_discord.owner, fake_discord.channel, "slow", {"wait": 0.8})
    await late.wait_response(timeout=3.0)
    await fake_discord.wait_until(lambda: refused or None)
    assert (refused[0].status, refused[0].code) == (401, 50027)
    assert late.errors and late.errors[0].startswith("50027 Invalid Webhook Token")
    assert late.original is not None and late.original.loading  # still "thinking…"

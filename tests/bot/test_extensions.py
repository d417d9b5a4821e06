"""Every extension imports and loads, and no two commands share a name."""

from __future__ import annotations

import importlib
from collections import Counter

import discord
from discord.ext import commands

from bot.bot import walk_extensions


def test_extensions_are_found_and_private_modules_skipped() -> None:
    names = list(walk_extensions())
    assert "bot.exts.paint" in names
    assert not [name for name in names if any(p.startswith("_") for p in name.split("."))]


async def test_every_extension_loads_and_command_names_are_unique() -> None:
    """Load each extension into a bare bot (its cog needs only the attributes it reads at
    load time) and collect the app command names."""
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.none())
    for name in walk_extensions():
        module = importlib.import_module(name)
        assert callable(module.setup), name
        await bot.load_extension(name)
    names = Counter(command.name for command in bot.tree.walk_commands())
    assert names and all(count == 1 for count in names.values()), names
    assert {"entrance", "imagine"} <= set(names)
    await bot.close()

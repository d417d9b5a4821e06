"""Every extension imports and loads, and no two commands share a name."""

from __future__ import annotations

import importlib
import subprocess
import sys
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


def test_the_bot_process_does_not_import_torch() -> None:
    """The bot, its extensions and the worker handle load without torch (the worker process
    imports it)."""
    code = (
        "import sys, bot.launcher, bot.bot, bot.exts.paint, engine.worker\n"
        "from bot.bot import walk_extensions\n"
        "list(walk_extensions())\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

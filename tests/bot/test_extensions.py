"""Every extension imports and loads, and no two commands share a name."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections import Counter
from pathlib import Path

import discord
import pytest
from discord.ext import commands

from bot.bot import DoorwaysBot, walk_extensions
from bot.settings import Settings
from bot.store import Store
from engine.worker.pool import local_pool


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
    names = Counter(command.qualified_name for command in bot.tree.walk_commands())
    assert names and all(count == 1 for count in names.values()), names
    assert {"entrance", "imagine", "queue", "settings", "admin pause", "admin status"} <= set(names)
    await bot.close()


def test_the_bot_process_does_not_import_torch() -> None:
    """The bot, its extensions and the worker handle load without torch (the worker process
    imports it)."""
    code = (
        "import sys, bot.launcher, bot.bot, bot.exts.paint, bot.parameters, engine.worker\n"
        "import bot.playground.run\n"
        "from bot.bot import walk_extensions\n"
        "from engine.request import Request\n"
        "list(walk_extensions())\n"
        "Request.from_call_string('doorways generate x --vqgan tiny').check_inputs()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_without_a_cluster_nothing_imports_ray() -> None:
    """Without engine.cluster the bot, its pool of local workers, the task runner and the CLI
    never import Ray (an optional dependency); with it, the pool is Ray's, still not imported
    until it starts."""
    code = (
        "import asyncio, sys, bot.launcher, bot.bot, bot.scheduler, engine.cli, engine.tasks\n"
        "import engine.worker, engine.worker.pool\n"
        "from bot.bot import walk_extensions\n"
        "from bot.launcher import build_pool\n"
        "from bot.settings import Settings\n"
        "list(walk_extensions())\n"
        "pool = asyncio.run(build_pool(Settings(device='cpu', devices=('cpu', 'cpu'))))\n"
        "assert len(pool.workers) == 2\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
        "cluster = asyncio.run(build_pool(Settings(cluster='auto')))\n"
        "assert type(cluster).__name__ == 'RayCluster' and 'ray' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_a_broken_extension_is_logged_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One extension that fails to import is logged and skipped; the others load, and
    private modules are not loaded at all."""
    package = tmp_path / "someexts"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "good.py").write_text(
        "from discord import app_commands\n"
        "@app_commands.command()\n"
        "async def hello(interaction) -> None:\n"
        "    '''Say hello.'''\n"
        "async def setup(bot):\n"
        "    bot.tree.add_command(hello)\n"
    )
    (package / "bad.py").write_text("raise RuntimeError('broken on purpose')\n")
    (package / "_helper.py").write_text("raise RuntimeError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    store = await Store.open(tmp_path / "jobs.sqlite3")
    bot = DoorwaysBot(Settings(), store, local_pool(["cpu"]), extensions="someexts")
    await bot.load_extensions()
    assert list(bot.extensions) == ["someexts.good"]
    assert list(bot.failed_extensions) == ["someexts.bad"]
    assert "Failed to load extension someexts.bad." in caplog.text
    assert [c.name for c in bot.tree.get_commands()] == ["hello"]
    await bot.close()
    await store.close()

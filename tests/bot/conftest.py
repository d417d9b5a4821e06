"""Fixtures for bot tests: a FakeDiscord with discord.py pointed at it, and a way to run real
discord.py bots against it until each has seen ``on_ready``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from discord.ext import commands

from bot.fakediscord import FakeDiscord, point_discord_py_at

BotT = commands.Bot
StartBot = Callable[[BotT], Awaitable[BotT]]


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A running FakeDiscord; discord.py's endpoint globals point at it until the test ends."""
    async with FakeDiscord() as fake:
        restore = point_discord_py_at(fake.base_url)
        try:
            yield fake
        finally:
            restore()


@pytest.fixture
async def start_bot(fake_discord: FakeDiscord) -> AsyncIterator[StartBot]:
    """``await start_bot(bot)`` logs ``bot`` in to the fake and returns once ``on_ready`` fired
    (give bots a short ``guild_ready_timeout``); every bot started is closed at the end."""
    running: list[tuple[BotT, asyncio.Task[None]]] = []

    async def start(bot: BotT, timeout: float = 5.0) -> BotT:
        ready = asyncio.Event()

        async def on_ready() -> None:
            ready.set()

        bot.add_listener(on_ready, "on_ready")
        task = asyncio.create_task(bot.start(fake_discord.token), name="test-bot")
        running.append((bot, task))
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait(
            {task, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        if task in done:
            task.result()  # raises what stopped the bot
            raise RuntimeError("the bot stopped before on_ready")
        if not ready.is_set():
            raise TimeoutError(f"the bot was not ready within {timeout} s")
        return bot

    yield start

    for bot, task in reversed(running):
        await bot.close()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(task, 5.0)

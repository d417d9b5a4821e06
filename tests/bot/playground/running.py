"""The playground as the tests run it: the fake, the page on a free loopback port, and the
real bot with a tiny worker, all in this process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from bot.fakediscord import FakeDiscord, point_discord_py_at
from bot.playground import Banner, Playground
from bot.playground.run import playground_discord
from tests.bot.running import running_bot, tiny_settings


@dataclass
class Running:
    fake: FakeDiscord
    playground: Playground
    runner: web.AppRunner  # the page's server; a test may stop it and serve again
    url: str

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@contextlib.asynccontextmanager
async def playground(tmp_path: Path, *, wait_for_worker: bool = True) -> AsyncIterator[Running]:
    """The fake, the page on a free loopback port, and the real bot with a tiny worker."""
    async with FakeDiscord() as fake:
        restore = point_discord_py_at(fake.base_url)
        page = Playground(fake, Banner(tiny_models=True, text="untrained stand-in models"))
        runner = await page.serve("127.0.0.1", 0)
        run = Running(fake, page, runner, f"http://127.0.0.1:{runner.addresses[0][1]}")
        settings = playground_discord(tiny_settings(tmp_path, edit_interval=0.2), fake)
        try:
            async with running_bot(fake, settings, wait_for_worker=wait_for_worker):
                await fake.wait_until(lambda: fake.commands(fake.guild) or None, timeout=10)
                yield run
        finally:
            await run.runner.cleanup()
            restore()

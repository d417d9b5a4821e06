"""The bot: a small `commands.Bot` that wires the job store, quota policy and scheduler
together and loads the feature extensions under `bot/exts/`.

Import-safe: nothing happens until `setup_hook` (after login). The launcher builds the store
and the pool of workers and passes them in; tests do the same with a fake Discord.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Iterator

import discord
from discord.ext import commands

from bot import views
from bot.errors import on_app_command_error
from bot.installs import SERVER_INSTALL, SERVERS_AND_BOT_DMS, DoorwaysTree
from bot.quota import Policy
from bot.results import DiscordReporter
from bot.scheduler import Pool, Scheduler
from bot.settings import Settings
from bot.store import Store

log = logging.getLogger(__name__)

EXTENSIONS_PACKAGE = "bot.exts"


def walk_extensions(package: str = EXTENSIONS_PACKAGE) -> Iterator[str]:
    """Dotted names of the extensions in `package`: modules and packages with a `setup`
    function, skipping anything whose name starts with `_` (private helpers)."""
    root = importlib.import_module(package)

    def on_error(name: str) -> None:
        raise ImportError(name=name)

    for info in pkgutil.walk_packages(root.__path__, f"{package}.", onerror=on_error):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        if info.ispkg:
            module = importlib.import_module(info.name)
            if not callable(getattr(module, "setup", None)):
                continue  # a plain folder of extensions
        yield info.name


def smallest_memory(pool: Pool) -> int | None:
    """The memory of the smallest GPU among the workers (a job may go to any of them); None
    until a worker on a GPU has started."""
    sizes = [h.device_memory for h in pool.health() if h.device_memory is not None]
    return min(sizes, default=None)


class DoorwaysBot(commands.Bot):
    """The Doorways bot.

    Parameters
    ----------
    settings:
        The process settings (bot.settings).
    store:
        The open job store.
    pool:
        The engine's pool of workers (not started: the scheduler starts it).
    extensions:
        The package whose extensions are loaded at start-up.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        pool: Pool,
        *,
        extensions: str = EXTENSIONS_PACKAGE,
    ) -> None:
        # The bot never speaks: no warnings about voice libraries at start-up.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        intents = discord.Intents.default()  # guilds, members' roles in interactions, reactions
        intents.message_content = False
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=settings.guild_ready_timeout,
            tree_cls=DoorwaysTree,
            allowed_installs=SERVER_INSTALL,
            allowed_contexts=SERVERS_AND_BOT_DMS,
        )
        self.settings = settings
        self.store = store
        self.policy = Policy(settings, lambda: smallest_memory(pool))
        self.reporter = DiscordReporter(
            self,
            store,
            interval=settings.edit_interval,
            global_edits=settings.global_edits,
            global_period=settings.global_period,
        )
        self.scheduler = Scheduler(
            store,
            pool,
            self.reporter,
            outputs=settings.outputs,
            seconds_per_iteration=settings.seconds_per_iteration,
        )
        self.extensions_package = extensions
        self.failed_extensions: dict[str, BaseException] = {}
        self.tree.error(on_app_command_error)

    async def setup_hook(self) -> None:
        """Load the extensions, register persistent buttons, start the scheduler, sync."""
        await self.load_extensions()
        if views.DYNAMIC_ITEMS:
            self.add_dynamic_items(*views.DYNAMIC_ITEMS)
        await self.scheduler.start()
        await self.sync_commands()

    async def load_extensions(self) -> None:
        """Load every extension; one that fails is logged and skipped, not fatal."""
        try:
            names = list(walk_extensions(self.extensions_package))
        except ImportError as error:
            log.exception("could not list the extensions in %s", self.extensions_package)
            self.failed_extensions[self.extensions_package] = error
            return
        for name in names:
            try:
                await self.load_extension(name)
            except Exception as error:
                log.exception("Failed to load extension %s.", name)
                self.failed_extensions[name] = error
            else:
                log.info("loaded extension %s", name)

    async def sync_commands(self) -> list[discord.app_commands.AppCommand]:
        """Sync the command tree: to the configured guild (at once) or globally."""
        if self.settings.guild is not None:
            guild = discord.Object(id=self.settings.guild)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to guild %s", len(synced), self.settings.guild)
        else:
            synced = await self.tree.sync()
            log.info("synced %d global commands", len(synced))
        return synced

    async def close(self) -> None:
        """Stop the scheduler (and the workers) before the connection closes, so outcomes
        being posted can finish."""
        await self.scheduler.stop()
        await super().close()

"""Starting the playground: a FakeDiscord on loopback, the page beside it, and the real bot
(launcher.run, the same code as with Discord) connected to the fake through the real
gateway and REST protocols. What `doorways-bot` does when it has no token.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bot.playground.server import Banner, Playground
from bot.settings import Settings
from engine.clips import model_names
from engine.registry import is_downloaded

if TYPE_CHECKING:
    from bot.fakediscord import FakeDiscord

log = logging.getLogger("doorways.playground")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
ANY_HOST = "0.0.0.0"  # the one non-loopback address allowed, and only when asked for
DOWNLOAD_COMMAND = "doorways models download vqgan_imagenet_f16_16384 ViT-B/32"
# With the tiny stand-in models on a CPU: small, quick pictures with previews.
TINY = {
    "vqgan": "tiny",
    "clip": "tiny",
    "cutn": 8,
    "max_size": (128, 128),
    "max_iterations": 60,
    "preview_every": 10,
    "edit_interval": 1.0,
    "seconds_per_iteration": 0.2,
}


def check_host(host: str) -> str | None:
    """Refuse a host other than loopback or 0.0.0.0 (a ValueError); a warning for 0.0.0.0."""
    if host == "localhost":
        return None
    if host == ANY_HOST:
        return (
            "the playground listens on every network interface (0.0.0.0): anyone who can "
            "reach this machine can use it, with no login"
        )
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    raise ValueError(
        f"the playground listens on loopback (127.0.0.1, ::1, localhost) or, explicitly, "
        f"on 0.0.0.0; not on {host!r}"
    )


def playground_settings(settings: Settings) -> tuple[Settings, Banner]:
    """The configured models when they are on disk, else the tiny ones with a banner."""
    clips = model_names(settings.clip)
    if is_downloaded(settings.vqgan) and all(is_downloaded(name) for name in clips):
        return settings, Banner(tiny_models=False)
    banner = Banner(
        tiny_models=True,
        text=(
            "These pictures come from untrained stand-in models (tiny, random weights), so "
            "they look like noise. For real paintings download the real models "
            f"(about 1.3 GB, once): .venv/bin/{DOWNLOAD_COMMAND} — then start the "
            "playground again."
        ),
    )
    if settings.vqgan != "tiny" or set(clips) != {"tiny"}:
        log.warning(
            "models %s and %s are not downloaded: using the tiny stand-ins (pictures look "
            "like noise); for real ones: %s",
            settings.vqgan,
            settings.clip,
            DOWNLOAD_COMMAND,
        )
    changes = dict(TINY)
    if settings.vqgan == "tiny" and settings.clip == "tiny":
        changes = {}  # tiny was asked for: keep the configured limits
    return settings.replace(**changes), banner


def playground_discord(settings: Settings, fake: FakeDiscord) -> Settings:
    """The settings pointed at the stand-in: its token, and its one server as the bot's
    server and home server (whoever runs the playground is its operator: mod, an admin
    there, may use /nightly run and /admin pause everywhere:True)."""
    return settings.replace(
        token=fake.token,
        guild=fake.guild.id,
        home_guild=fake.guild.id,
        api_base=None,
        gateway_url=None,
    )


async def run_playground(
    settings: Settings, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
) -> None:
    """Run the fake Discord, the page at http://host:port and the bot until SIGINT/SIGTERM."""
    from bot.fakediscord import FakeDiscord, point_discord_py_at
    from bot.launcher import StartupError, run

    settings, banner = playground_settings(settings)
    with contextlib.ExitStack() as stack:
        if settings.database == Settings.database:  # the fake world is new each time
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="doorways-")))
            settings = settings.replace(database=folder / "playground.sqlite3")
        if settings.outputs == Settings.outputs:
            settings = settings.replace(outputs=Path("data/playground/outputs"))
        async with FakeDiscord() as fake:
            restore = point_discord_py_at(fake.base_url)
            playground = Playground(fake, banner)
            try:
                runner = await playground.serve(host, port)
            except OSError as error:
                restore()
                raise StartupError(
                    f"cannot serve the playground at {host}:{port} ({error.strerror or error}); "
                    "choose another port with --playground-port"
                ) from None
            shown = f"[{host}]" if ":" in host else host
            log.info(
                "no DISCORD_TOKEN: starting the local playground at http://%s:%d — open it "
                "in a browser",
                shown,
                port or runner.addresses[0][1],
            )
            try:
                await run(playground_discord(settings, fake))
            finally:
                await runner.cleanup()
                restore()

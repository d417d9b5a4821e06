"""`doorways-bot`: the composition root. Reads the settings, opens the job store, makes the
worker handle and the bot, points discord.py at the configured endpoints, and runs until
SIGINT or SIGTERM. Start-up failures become one plain line and an exit status: 2 for bad
settings, 1 for anything that stops the bot from starting (token refused, Discord
unreachable, database unusable).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot.permissions import (
    NEEDED,
    SCOPES,
    application_id_from_token,
    invite_url,
    needed_permissions,
)
from bot.settings import CONFIG_ENV, Settings, SettingsError, describe_settings, load_settings

if TYPE_CHECKING:
    import discord

    from engine.worker.pool import Pool

log = logging.getLogger("doorways.bot")


class StartupError(Exception):
    """The bot cannot start; the message says why in one line."""


def permissions_help() -> str:
    """The invite's permissions, one line each with why the bot needs it."""
    return "\n".join(f"  {need.label}: {need.why}" for need in NEEDED)


def settings_help() -> str:
    """Every config key with its default, variable or flag, and meaning."""
    lines = ["config keys ([section] key = default; the variable or option that overrides it):"]
    for key, default, also, help in describe_settings():
        head = f"  {key} = {default}" + (f"   ({also})" if also else "")
        lines.append(head)
        lines += textwrap.wrap(help, 88, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)


EPILOG = f"""\
environment:
  DISCORD_TOKEN        the bot token (Developer Portal > your application > Bot > Reset Token);
                       without one, the local playground starts: a stand-in Discord and a
                       page like one channel at http://127.0.0.1:8765 (no account needed)
  DISCORD_API_BASE     REST base URL instead of Discord's (a rate-limit proxy, a fake Discord)
  DISCORD_GATEWAY_URL  gateway websocket URL instead of Discord's
  {CONFIG_ENV:<20} the config file when --config is not given
  DOORWAYS_MODELS      where the worker finds the models (default: data/models)

{{settings}}

invite the bot with `doorways-bot --invite` (the link, with your application id read from
the token), or with the scopes `{" ".join(SCOPES)}` and these permissions
({needed_permissions()}):
{permissions_help()}
  {invite_url()}
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="doorways-bot",
        description="The Doorways Discord bot: /entrance and /imagine paint on this machine's "
        "GPU through a durable job queue. Settings come from a TOML file (see "
        "data/bot.example.toml), the environment and these options, later ones winning.",
        epilog=EPILOG.format(settings=settings_help()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        default=os.environ.get(CONFIG_ENV) or None,
        help=f"TOML settings file (default: ${CONFIG_ENV}, else built-in defaults)",
    )
    parser.add_argument(
        "--db", type=Path, metavar="PATH", help="the job database (storage.database)"
    )
    parser.add_argument(
        "--guild",
        type=int,
        metavar="ID",
        help="sync commands to this guild at start-up (discord.guild)",
    )
    parser.add_argument(
        "--vqgan",
        metavar="NAME",
        help="VQGAN: registry name, tiny, random:NAME or a path (engine.vqgan)",
    )
    parser.add_argument(
        "--clip",
        metavar="MODELS",
        help="CLIP: registry name, tiny, random:NAME or a path, or several with weights, "
        "ViT-B/32,ViT-B/16:0.5 (engine.clip)",
    )
    parser.add_argument("--device", metavar="D", help="auto, cpu, cuda or cuda:N (engine.device)")
    parser.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="paint on a Ray cluster's GPUs: auto or HEAD:6379 (engine.cluster)",
    )
    parser.add_argument(
        "--devices",
        metavar="LIST",
        help="one worker per device: cuda:0,cuda:1 or all (engine.devices)",
    )
    parser.add_argument(
        "--playground-host",
        metavar="HOST",
        help="with no token: where the local playground page listens, loopback by default; "
        "0.0.0.0 for every interface (playground.host)",
    )
    parser.add_argument(
        "--playground-port",
        type=int,
        metavar="PORT",
        help="with no token: the playground page's port, default 8765 (playground.port)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="check the token, database, models and device, one line each, and exit "
        "(status 1 if any check fails)",
    )
    parser.add_argument(
        "--invite",
        action="store_true",
        help="print the link that adds the bot to a server, with the permissions it needs "
        "(the application id is read from the token; nothing is sent anywhere), and exit",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="logging level (default: INFO)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    logging.getLogger("discord").setLevel(max(logging.INFO, logging.getLevelName(args.log_level)))
    warning: str | None = None
    try:
        settings = load_settings(
            args.config,
            os.environ,
            {
                "database": args.db,
                "guild": args.guild,
                "vqgan": args.vqgan,
                "clip": args.clip,
                "device": args.device,
                "devices": args.devices,
                "cluster": args.cluster,
                "playground_host": args.playground_host,
                "playground_port": args.playground_port,
            },
        )
        if not settings.token:
            warning = check_playground_host(settings.playground_host)
    except SettingsError as error:
        print(f"doorways-bot: {error}", file=sys.stderr)
        return 2
    if args.invite:
        return print_invite(settings)
    if args.check:
        from bot.check import run_checks

        checks = run_checks(settings)
        print("\n".join(map(str, checks)))
        return 0 if all(check.ok for check in checks) else 1
    try:
        if settings.token:
            asyncio.run(run(settings))
        else:
            from bot.playground import run_playground

            if warning:
                log.warning("%s", warning)
            asyncio.run(
                run_playground(
                    settings, host=settings.playground_host, port=settings.playground_port
                )
            )
    except StartupError as error:
        print(f"doorways-bot: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def print_invite(settings: Settings) -> int:
    """`--invite`: the link for this token's application, then what each permission is for."""
    if not settings.token:
        print(
            "doorways-bot: --invite reads the application id from the bot token: set "
            "DISCORD_TOKEN (or discord.token). The link, with the id from the Developer "
            f"Portal's General Information page:\n  {invite_url()}",
            file=sys.stderr,
        )
        return 2
    try:
        application_id = application_id_from_token(settings.token)
    except ValueError as error:
        print(f"doorways-bot: DISCORD_TOKEN: {error}", file=sys.stderr)
        return 2
    print(invite_url(application_id))
    print(f"\npermissions ({needed_permissions()}):\n{permissions_help()}")
    return 0


def check_playground_host(host: str) -> str | None:
    """A warning for 0.0.0.0, None for loopback; any other host is a SettingsError."""
    from bot.playground import check_host

    try:
        return check_host(host)
    except ValueError as error:
        raise SettingsError(f"playground.host: {error}") from None


def apply_endpoints(settings: Settings) -> None:
    """Send discord.py's REST calls and gateway connection where the settings say.

    discord.py keeps both as class attributes (process-wide): `discord.http.Route.BASE` and
    `discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`.
    """
    import discord.gateway
    import discord.http
    import yarl

    if settings.api_base:
        discord.http.Route.BASE = settings.api_base.rstrip("/")
        log.info("Discord REST API at %s", discord.http.Route.BASE)
    if settings.gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url)
        log.info("Discord gateway at %s", settings.gateway_url)


async def run(settings: Settings) -> None:
    """Run the bot until it is closed (SIGINT / SIGTERM)."""
    import aiohttp
    import discord

    from bot.bot import DoorwaysBot
    from bot.store import MigrationError, Store

    apply_endpoints(settings)
    pool = await build_pool(settings)
    try:
        store = await Store.open(settings.database)
    except (sqlite3.Error, MigrationError, OSError) as error:
        raise StartupError(f"cannot open the database {settings.database}: {error}") from None
    bot = DoorwaysBot(settings, store, pool)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, _close, bot, signum)
    try:
        async with bot:
            assert settings.token is not None
            await bot.start(settings.token)
    except discord.LoginFailure as error:
        raise StartupError(f"Discord refused the token (DISCORD_TOKEN): {error}") from None
    except (aiohttp.ClientConnectionError, OSError) as error:
        where = settings.api_base or "discord.com"
        raise StartupError(f"cannot reach Discord at {where}: {error}") from None
    finally:
        await store.close()
        log.info("stopped")


async def build_pool(settings: Settings) -> Pool:
    """The workers the settings ask for: one Ray actor per GPU of the cluster at
    `engine.cluster`, else one local process per device of `engine.devices` (or one on
    `engine.device`). Not started: the scheduler starts them (and joins the cluster)."""
    from engine.worker import WorkerError
    from engine.worker.pool import local_pool, resolve_devices

    preload = (settings.vqgan, settings.clip) if settings.preload else None
    if settings.cluster is not None:
        from engine.worker.cluster import RayCluster  # imports Ray only when it starts

        return RayCluster(
            settings.cluster, device=settings.device, threads=settings.threads or None,
            preload=preload,
        )  # fmt: skip

    try:
        devices = await asyncio.to_thread(resolve_devices, settings.devices, settings.device)
    except WorkerError as error:
        raise StartupError(f"engine.devices: {error}") from None
    return local_pool(devices, threads=settings.threads or None, preload=preload)


def _close(bot: discord.Client, signum: int) -> None:
    log.info("%s: stopping", signal.Signals(signum).name)
    asyncio.get_running_loop().create_task(bot.close())

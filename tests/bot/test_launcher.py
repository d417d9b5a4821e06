"""`doorways-bot` as a real process: --help documents everything, bad settings and a refused
token end with a plain line and an exit status, and against a FakeDiscord (found through
DISCORD_API_BASE / DISCORD_GATEWAY_URL) it connects, syncs to --guild and answers."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import discord

from bot.fakediscord import FakeDiscord, point_discord_py_at
from bot.permissions import NEEDED, application_id_from_token, invite_url, needed_permissions
from bot.settings import describe_settings

SCRIPT = Path(sys.executable).with_name("doorways-bot")
CONFIG = """\
[discord]
guild_ready_timeout = 0.1

[engine]
cutn = 2
threads = 1
preload = false

[limits]
max_size = [64, 64]
"""


def run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_help_documents_every_key_and_variable() -> None:
    """--help lists every option, config key, environment variable, and the invite."""
    shown = run_script("--help")
    assert shown.returncode == 0
    for option in (
        "--config",
        "--db",
        "--guild",
        "--vqgan",
        "--clip",
        "--device",
        "--devices",
        "--cluster",
    ):
        assert option in shown.stdout
    for key, _default, _also, _help in describe_settings():
        assert f"  {key} = " in shown.stdout, key
    for variable in ("DISCORD_TOKEN", "DISCORD_API_BASE", "DISCORD_GATEWAY_URL"):
        assert variable in shown.stdout
    assert "bot applications.commands" in shown.stdout and invite_url() in shown.stdout


def test_invite_permissions_are_what_the_bot_uses() -> None:
    """The bits are discord.py's for each named permission: View Channel, Send Messages, Send
    Messages in Threads, Attach Files and Read Message History — no Embed Links or Add
    Reactions, which the bot never uses."""
    for need in NEEDED:
        assert discord.Permissions(**{need.flag: True}).value == need.bit, need.label
    asked = discord.Permissions(needed_permissions())
    assert asked.view_channel and asked.send_messages and asked.send_messages_in_threads
    assert asked.attach_files and asked.read_message_history
    assert not (asked.embed_links or asked.add_reactions or asked.administrator)


async def test_invite_prints_the_link_for_the_tokens_application() -> None:
    """`doorways-bot --invite` reads the application id from the token, without the network:
    the id discord.py gets when it logs in with that token, and the needed permissions."""
    async with FakeDiscord() as fake:
        shown = await asyncio.to_thread(
            run_script, "--invite", env={"DISCORD_TOKEN": fake.token, "DISCORD_API_BASE": ""}
        )
        assert shown.returncode == 0, shown.stderr
        link = shown.stdout.splitlines()[0]
        fields = dict(part.split("=", 1) for part in link.split("?", 1)[1].split("&"))
        restore = point_discord_py_at(fake.base_url)
        client = discord.Client(intents=discord.Intents.none())
        try:
            await client.login(fake.token)
            assert client.application_id is not None
            assert fields["client_id"] == str(client.application_id)
        finally:
            await client.close()
            restore()
    asked = discord.Permissions(int(fields["permissions"]))
    assert asked.view_channel and asked.send_messages_in_threads
    assert fields["scope"] == "bot+applications.commands" and fields["integration_type"] == "0"
    for need in NEEDED:
        assert f"{need.label}: {need.why}" in shown.stdout


def test_invite_needs_a_bot_token() -> None:
    """Without a token, or with something else, --invite says why (status 2)."""
    missing = run_script("--invite", env={"DISCORD_TOKEN": ""})
    assert missing.returncode == 2 and "set DISCORD_TOKEN" in missing.stderr
    assert invite_url() in missing.stderr
    wrong = run_script("--invite", env={"DISCORD_TOKEN": "not-a-token"})
    assert wrong.returncode == 2 and "this is not a Discord bot token" in wrong.stderr
    assert application_id_from_token("MTIzNDU2Nzg5MDEyMzQ1Njc4.x.y") == 123456789012345678


def test_bad_settings_exit_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bot.toml"
    config.write_text("[limits]\nmax_iterations = 9000\n")
    failed = run_script("--config", str(config), env={"DISCORD_TOKEN": "x"})
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines()[-1] == (
        "doorways-bot: limits.max_iterations: must be from 1 to 6000, not 9000"
    )
    config.write_text("[limits]\nmax_iteration = 9\n")
    typo = run_script("--config", str(config), env={"DISCORD_TOKEN": "x"})
    assert typo.returncode == 2 and "unknown setting limits.max_iteration" in typo.stderr
    # No token starts the local playground, which listens on loopback or, asked, 0.0.0.0 only.
    outside = run_script("--playground-host", "10.1.2.3", env={"DISCORD_TOKEN": ""})
    assert outside.returncode == 2 and "doorways-bot: playground.host: " in outside.stderr


async def test_wrong_token_and_unreachable_discord_exit_1(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        env = {
            "DISCORD_TOKEN": "not-the-token",
            "DISCORD_API_BASE": fake.api_base,
            "DISCORD_GATEWAY_URL": fake.gateway_url,
        }
        args = ("--db", str(tmp_path / "db.sqlite3"))
        refused = await asyncio.to_thread(run_script, *args, env=env)
    assert refused.returncode == 1
    assert "doorways-bot: Discord refused the token (DISCORD_TOKEN)" in refused.stderr
    gone = await asyncio.to_thread(run_script, *args, env=env)  # the fake has stopped
    assert gone.returncode == 1 and "doorways-bot: cannot reach Discord at http://" in gone.stderr


async def test_process_connects_syncs_to_guild_and_answers(tmp_path: Path) -> None:
    """The console script, pointed at the fake by environment, answers /entrance in time
    and stops cleanly on SIGTERM."""
    config = tmp_path / "bot.toml"
    config.write_text(CONFIG)
    log = tmp_path / "bot.log"
    async with FakeDiscord() as fake:
        env = {
            **os.environ,
            "DISCORD_TOKEN": fake.token,
            "DISCORD_API_BASE": fake.api_base,
            "DISCORD_GATEWAY_URL": fake.gateway_url,
        }
        with log.open("w") as output:
            process = await asyncio.create_subprocess_exec(
                str(SCRIPT),
                *("--config", str(config), "--db", str(tmp_path / "jobs.sqlite3")),
                *("--guild", str(fake.guild.id), "--vqgan", "tiny", "--clip", "tiny"),
                *("--device", "cpu"),
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            await fake.wait_for_bot(timeout=30)
            await fake.wait_until(lambda: fake.commands(fake.guild) or None, timeout=30)
            assert fake.commands() == []  # synced to the guild, not globally
            handle = await fake.slash(
                fake.owner, fake.channel, "entrance", {"realms": "heaven | hell", "seed": 1}
            )
            response = await handle.wait_response(timeout=3.0)
            assert "#1 in line, ready in" in response.content
            assert "entrance to heaven by James Gurney" in response.content
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 30)
    text = log.read_text()
    assert code == 0, text
    assert re.search(rf"synced \d+ commands to guild {fake.guild.id}", text)
    assert "SIGTERM: stopping" in text and "stopped" in text
    assert "Traceback" not in text and "voice will NOT be supported" not in text


def test_bot_docs_document_every_key_and_variable() -> None:
    """docs/bot.md names every config key, variable and option."""
    section = (Path(__file__).resolve().parents[2] / "docs" / "bot.md").read_text(encoding="utf-8")
    for key, _default, _also, _help in describe_settings():
        assert f"`{key}" in section or f", `{key}`" in section, key
    for name in ("DISCORD_TOKEN", "DISCORD_API_BASE", "DISCORD_GATEWAY_URL", "DOORWAYS_BOT_CONFIG"):
        assert f"`{name}`" in section, name
    for option in (
        "--config",
        "--db",
        "--guild",
        "--vqgan",
        "--clip",
        "--device",
        "--devices",
        "--cluster",
    ):
        assert f"`{option}" in section, option
    assert "bot applications.commands" in section and str(needed_permissions()) in section
    assert invite_url() in section and "doorways-bot --invite" in section
    for need in NEEDED:
        assert need.label in section, need.label

"""The local playground: its web API over a FakeDiscord with the real bot and a tiny worker,
`doorways-bot` without a token, and the page itself in a real headless Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from bot.fakediscord import FakeDiscord, point_discord_py_at
from bot.playground import Banner, Playground, check_host
from bot.playground.run import playground_settings
from tests.bot.running import running_bot, tiny_settings

SCRIPT = Path(sys.executable).with_name("doorways-bot")
# Set DOORWAYS_SCREENSHOTS=DIR to keep a screenshot of the page the browser test saw.
SCREENSHOTS = (
    Path(os.environ["DOORWAYS_SCREENSHOTS"]) if os.environ.get("DOORWAYS_SCREENSHOTS") else None
)


@dataclass
class Running:
    fake: FakeDiscord
    playground: Playground
    url: str


@contextlib.asynccontextmanager
async def playground(tmp_path: Path, *, wait_for_worker: bool = True) -> AsyncIterator[Running]:
    """The fake, the page on a free loopback port, and the real bot with a tiny worker."""
    async with FakeDiscord() as fake:
        restore = point_discord_py_at(fake.base_url)
        page = Playground(fake, Banner(tiny_models=True, text="untrained stand-in models"))
        runner = await page.serve("127.0.0.1", 0)
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        settings = tiny_settings(tmp_path, guild=fake.guild.id, edit_interval=0.2)
        try:
            async with running_bot(fake, settings, wait_for_worker=wait_for_worker):
                await fake.wait_until(lambda: fake.commands(fake.guild) or None, timeout=10)
                yield Running(fake, page, url)
        finally:
            await runner.cleanup()
            restore()


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, object]) -> dict:
    async with session.post(url, json=body) as response:
        data = await response.json()
        data["status"] = response.status
        return data


async def test_state_commands_feed_and_ephemeral_visibility(tmp_path: Path) -> None:
    """The state lists the people (mod is the admin), the banner and the commands the bot
    registered; a command posted as ada reaches the bot and its answer comes down ada's feed;
    a private refusal is in ada's state and feed only; autocomplete asks the bot."""
    async with playground(tmp_path, wait_for_worker=False) as run, aiohttp.ClientSession() as http:
        async with http.get(f"{run.url}/") as page:
            assert page.status == 200 and "app.js" in await page.text()
        async with http.get(f"{run.url}/api/state?user=ada") as response:
            state = await response.json()
        assert [p["name"] for p in state["people"]] == ["ada", "ben", "cy", "mod"]
        assert [p["name"] for p in state["people"] if p["admin"]] == ["mod"]
        assert state["banner"] == {"tiny_models": True, "text": "untrained stand-in models"}
        registered = {c["name"] for c in run.fake.commands(run.fake.guild)}
        assert {c["name"] for c in state["commands"]} == registered >= {"entrance", "imagine"}
        entrance = next(c for c in state["commands"] if c["name"] == "entrance")
        assert entrance["options"][0]["name"] == "realms" and entrance["options"][0]["autocomplete"]

        feeds = {}
        for name in ("ada", "ben"):
            feeds[name] = await http.get(f"{run.url}/api/events?user={name}")

        async def next_message(name: str) -> dict:
            while True:
                line = (await asyncio.wait_for(feeds[name].content.readline(), 10)).decode()
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    if event["kind"] == "message":
                        return event["message"]

        sent = await post(
            http,
            f"{run.url}/api/command",
            {
                "user": "ada",
                "name": "entrance",
                "options": {"realms": "heaven | hell", "seed": "3"},
            },
        )
        assert sent["ok"], sent
        ack = await next_message("ada")
        assert "in line" in ack["content"] and not ack["ephemeral"]
        assert ack["interaction_metadata"]["user"]["username"] == "ada"
        assert (await next_message("ben"))["id"] == ack["id"]  # public: everyone sees it

        refused = await post(
            http,
            f"{run.url}/api/command",
            {"user": "ada", "name": "entrance", "options": {"realms": "heaven"}},
        )
        assert refused["ok"], refused
        private = await next_message("ada")
        while not private["ephemeral"]:
            private = await next_message("ada")
        async with http.get(f"{run.url}/api/state?user=ben") as response:
            ben_sees = {m["id"] for m in (await response.json())["messages"]}
        async with http.get(f"{run.url}/api/state?user=ada") as response:
            ada_sees = {m["id"] for m in (await response.json())["messages"]}
        assert private["id"] in ada_sees and private["id"] not in ben_sees
        assert ack["id"] in ben_sees

        bad = await post(
            http,
            f"{run.url}/api/command",
            {"user": "ada", "name": "entrance", "options": {"realms": "a | b", "seed": "x"}},
        )
        assert bad["status"] == 400 and "seed: expected a whole number" in bad["error"]
        nobody = await post(http, f"{run.url}/api/command", {"user": "eve", "name": "entrance"})
        assert nobody["status"] == 400 and "no such person" in nobody["error"]

        offered = await post(
            http,
            f"{run.url}/api/autocomplete",
            {"user": "ben", "name": "entrance", "focused": "realms", "options": {"realms": "he"}},
        )
        assert any("Heaven" in c["name"] for c in offered["choices"]), offered
        for feed in feeds.values():
            feed.close()


def test_models_and_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Models not downloaded: the tiny ones with a banner naming the download command; the
    page listens on loopback, or on 0.0.0.0 with a warning, nowhere else."""
    monkeypatch.setenv("DOORWAYS_MODELS", str(tmp_path))
    settings, banner = playground_settings(tiny_settings(tmp_path).replace(vqgan="wikiart_16384"))
    assert banner.tiny_models and banner.text and "doorways models download" in banner.text
    assert (settings.vqgan, settings.clip, settings.max_size) == ("tiny", "tiny", (128, 128))
    assert check_host("127.0.0.1") is None and check_host("::1") is None
    assert check_host("localhost") is None
    assert "every network interface" in (check_host("0.0.0.0") or "")
    with pytest.raises(ValueError, match="loopback"):
        check_host("192.168.1.5")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_no_token_starts_the_playground(tmp_path: Path) -> None:
    """`doorways-bot` without a token says where the playground is and serves it there, with
    the bot connected and its commands registered; SIGTERM stops it cleanly."""
    port = free_port()
    log = tmp_path / "playground.log"
    env = {**os.environ, "DISCORD_TOKEN": "", "DOORWAYS_MODELS": str(tmp_path / "models")}
    config = tmp_path / "bot.toml"
    config.write_text(f'[storage]\noutputs = "{tmp_path / "out"}"\n[engine]\npreload = false\n')
    with log.open("w") as output:
        process = await asyncio.create_subprocess_exec(
            str(SCRIPT),
            *("--config", str(config), "--playground-port", str(port), "--device", "cpu"),
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{port}/api/state") as response:
                        state = await response.json()
                        if state["bot"]["connected"] and state["commands"]:
                            break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(log.read_text())
        assert state["banner"]["tiny_models"]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
    text = log.read_text()
    assert code == 0, text
    assert (
        f"no DISCORD_TOKEN: starting the local playground at http://127.0.0.1:{port} — open it "
        "in a browser" in text
    )
    assert "Traceback" not in text


# The browser ------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (`make test` installs it as root)")
async def test_the_page_in_a_real_browser(tmp_path: Path) -> None:
    """Type /entrance heaven | hell, see the picture; 🎲 paints a second one; 📋 shows the
    call string."""
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playground(tmp_path) as run, playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,  # Playwright gives it a fresh --user-data-dir
        )
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 900})
            await page.goto(f"{run.url}/?user=ada")
            await page.wait_for_selector("#bot-status.online")
            assert "stand-in" in await page.inner_text("#banner")
            await page.locator("#input").press_sequentially("/entrance heaven | hell")
            await page.keyboard.press("Enter")
            # The answer, `#1 in line`, may already be edited into the progress when seen.
            await page.wait_for_selector("text=/in line|Painting|\\d+%/", timeout=10_000)
            results = page.locator("article.msg img:not([alt='preview.png'])")
            await results.first.wait_for(timeout=45_000)

            reroll = page.locator("article.msg button.button", has_text="🎲").first
            await reroll.click()
            await page.wait_for_function(
                "document.querySelectorAll(\"article.msg img:not([alt='preview.png'])\")"
                ".length >= 2",
                timeout=45_000,
            )
            await page.locator("article.msg button.button", has_text="📋").first.click()
            call = page.locator("article.msg.ephemeral", has_text="doorways generate")
            await call.first.wait_for(timeout=10_000)
            assert "heaven" in await call.first.inner_text()
            if SCREENSHOTS is not None:
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(SCREENSHOTS / "playground.png"), full_page=False)
        finally:
            await browser.close()

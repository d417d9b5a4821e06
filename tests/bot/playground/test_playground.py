"""The local playground: its state and WebSocket over a FakeDiscord with the real bot and a
tiny worker, and `doorways-bot` without a token (the page in a browser: test_page.py)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from bot.playground import check_host
from bot.playground.run import playground_settings
from bot.playground.server import Banner
from engine.outputs import read_request_bytes
from engine.registry import model_paths
from tests.bot.playground.running import playground
from tests.bot.running import tiny_settings

SCRIPT = Path(sys.executable).with_name("doorways-bot")


class Page:
    """One tab's WebSocket: its first state, then events and replies."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.requests = 0
        self.unread: list[dict] = []  # events received but not asked for yet

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, url: str, user: str) -> tuple[Page, dict]:
        page = cls(await http.ws_connect(f"{url}/api/socket?user={user}"))
        return page, await page.next("state")

    async def next(self, kind: str, check: Callable[[dict], bool] = lambda e: True) -> dict:
        """The first event of this kind that passes ``check``, received or to come."""
        for event in self.unread:
            if event["kind"] == kind and check(event):
                self.unread.remove(event)
                return event
        while True:
            event = json.loads(await asyncio.wait_for(self.socket.receive_str(), 10))
            if event["kind"] == kind and check(event):
                return event
            self.unread.append(event)

    async def ask(self, action: str, **body: object) -> dict:
        self.requests += 1
        number = self.requests
        await self.socket.send_json({"id": number, "action": action, **body})
        return await self.next("reply", lambda e: e["id"] == number)

    async def message(self, check: Callable[[dict], bool] = lambda m: True) -> dict:
        event = await self.next("message", lambda e: check(e["message"]))
        return event["message"]


async def test_state_commands_and_the_socket(tmp_path: Path) -> None:
    """The state lists the people (mod is the admin), the banner and the commands each person
    is offered (/admin and /nightly hidden from those without Manage Server, with the reason
    in words); a command sent on ada's socket reaches the bot and its answer comes down every
    socket; a private answer reaches ada's only; subcommands work for mod and are refused for
    ben; autocomplete asks the bot; a DM reaches its person only; a bot too slow is named."""
    async with playground(tmp_path, wait_for_worker=False) as run, aiohttp.ClientSession() as http:
        async with http.get(f"{run.url}/") as page:
            assert page.status == 200 and "app.js" in await page.text()
        async with http.get(f"{run.url}/api/state?user=ada") as response:
            state = await response.json()
        assert [p["name"] for p in state["people"]] == ["ada", "ben", "cy", "mod"]
        assert [p["name"] for p in state["people"] if p["admin"]] == ["mod"]
        assert state["banner"] == {"tiny_models": True, "text": "untrained stand-in models"}
        registered = {c["name"] for c in run.fake.commands(run.fake.guild)}
        offered = {c["name"] for c in state["commands"]}
        assert offered | {h["name"] for h in state["hidden"]} == registered
        assert {"entrance", "imagine"} <= offered and not {"admin", "nightly"} & offered
        admin = next(h for h in state["hidden"] if h["name"] == "admin")
        assert admin["reason"] == "/admin needs the Manage Server permission"
        entrance = next(c for c in state["commands"] if c["name"] == "entrance")
        assert entrance["options"][0]["name"] == "realms" and entrance["options"][0]["autocomplete"]

        ada, ada_state = await Page.open(http, run.url, "ada")
        ben, _ = await Page.open(http, run.url, "ben")
        mod, mod_state = await Page.open(http, run.url, "mod")
        assert ada_state["dm"]["id"] != mod_state["dm"]["id"]
        assert {"admin", "nightly"} <= {c["name"] for c in mod_state["commands"]}

        sent = await ada.ask(
            "command", name="entrance", options={"realms": "heaven | hell", "seed": "3"}
        )
        assert sent["ok"], sent
        ack = await ada.message()
        # `#1 in line`, perhaps already edited into the status when the event is made
        assert ack["content"].startswith("**#1** · entrance to heaven") and not ack["ephemeral"]
        assert ack["interaction_metadata"]["user"]["username"] == "ada"
        assert (await ben.message())["id"] == ack["id"]  # public: everyone sees it

        assert (await ada.ask("command", name="entrance", options={"realms": "heaven"}))["ok"]
        private = await ada.message(lambda m: m["ephemeral"])
        async with http.get(f"{run.url}/api/state?user=ben") as response:
            ben_sees = {m["id"] for m in (await response.json())["messages"]}
        assert private["id"] not in ben_sees and ack["id"] in ben_sees

        status = await mod.ask("command", name="admin", subcommand="status")
        assert status["ok"], status
        assert "**Painter:**" in (await mod.message(lambda m: m["ephemeral"]))["content"]
        refused = await ben.ask("command", name="admin", subcommand="status")
        assert refused["error"] == (
            "/admin needs the Manage Server permission; ben does not have it"
        )
        with pytest.raises(PermissionError, match="ben cannot use /admin: it needs the Manage "):
            await run.fake.slash(run.playground.people["ben"], run.fake.channel, "admin")
        quota = await mod.ask(
            "command",
            name="admin",
            subcommand="quota",
            options={"target": "ben", "daily_images": "3"},
        )
        assert quota["ok"], quota
        ben_id = run.playground.people["ben"].id
        set_quota = await mod.message(lambda m: m["content"].startswith(f"<@{ben_id}>"))
        assert set_quota["content"] == f"<@{ben_id}> (user): 3 images a day."

        bad = await ada.ask("command", name="entrance", options={"realms": "a | b", "seed": "x"})
        assert bad["error"] == "seed: expected a whole number, not 'x'"
        choices = await ben.ask(
            "autocomplete", name="entrance", focused="realms", options={"realms": "he"}
        )
        assert any("Heaven" in c["name"] for c in choices["choices"]), choices

        dm = run.fake.dm_channel(run.playground.people["ada"])
        await run.fake.send_message(run.playground.people["ada"], dm, "only for ada")
        mine = await ada.message(lambda m: m["content"] == "only for ada")
        assert mine["channel_id"] == str(dm.id)
        async with http.get(f"{run.url}/api/state?user=ben") as response:
            assert "only for ada" not in json.dumps(await response.json())

        run.playground.response_timeout = 0.0  # the bot has no time at all to answer
        slow = await ada.ask("command", name="quota")
        assert slow["error"] == "Doorways did not respond."

        stranger = await http.ws_connect(f"{run.url}/api/socket?user=eve")
        hello = json.loads(await stranger.receive_str())
        assert hello["kind"] == "unknown_person" and "no such person 'eve'" in hello["error"]
        for socket in (ada, ben, mod):
            await socket.socket.close()
        await stranger.close()


def custom_ids(message: dict) -> list[str]:
    """The custom ids of a message's buttons, row by row."""
    return [c["custom_id"] for row in message["components"] for c in row["components"]]


async def test_a_grid_and_its_pick_button(tmp_path: Path) -> None:
    """/entrance with count 4 on the page's socket posts the grid, one picture with a row
    of 🖼 1-4 (and 🔀 1-4) buttons; pressing 🖼 2 posts that picture alone, a quarter of the
    grid, with its own buttons and the call string that repaints it (`--count 4 --index 2`);
    everyone's page sees both."""
    async with playground(tmp_path) as run, aiohttp.ClientSession() as http:
        ada, _ = await Page.open(http, run.url, "ada")
        ben, _ = await Page.open(http, run.url, "ben")
        sent = await ada.ask(
            "command", name="entrance", options={"realms": "sky | sea", "count": "4"}
        )
        assert sent["ok"], sent
        grid = await ada.message(
            lambda m: bool(m["attachments"]) and any(i.endswith(":pick1") for i in custom_ids(m))
        )
        job = re.search(r"doorways:job:(\d+):", custom_ids(grid)[0])
        assert job is not None
        picks = [f"doorways:job:{job[1]}:pick{n}" for n in range(1, 5)]
        assert custom_ids(grid)[:4] == picks
        labels = [c["label"] for c in grid["components"][0]["components"]]
        assert labels == ["1", "2", "3", "4"]
        assert grid["components"][0]["components"][0]["emoji"]["name"] == "🖼"
        async with http.get(f"{run.url}{grid['attachments'][0]['url']}") as response:
            grid_png = await response.read()
        assert read_request_bytes(grid_png).count == 4
        await ben.message(lambda m: m["id"] == grid["id"] and bool(m["attachments"]))

        clicked = await ada.ask("click", message_id=grid["id"], custom_id=picks[1])
        assert clicked["ok"], clicked
        alone = await ada.message(
            lambda m: bool(m["attachments"]) and "--count 4 --index 2" in m["content"]
        )
        assert not alone["ephemeral"] and len(custom_ids(alone)) == 4  # 🎲 🔀 📋 🗑
        async with http.get(f"{run.url}{alone['attachments'][0]['url']}") as response:
            picture_png = await response.read()
        picked = read_request_bytes(picture_png)
        assert (picked.count, picked.index) == (4, 2)
        with Image.open(io.BytesIO(grid_png)) as tiled, Image.open(io.BytesIO(picture_png)) as one:
            width, height = one.size
            assert tiled.size == (2 * width, 2 * height)
            assert tiled.crop((width, 0, 2 * width, height)).tobytes() == one.tobytes()
        await ben.message(lambda m: m["id"] == alone["id"] and bool(m["attachments"]))
        for page in (ada, ben):
            await page.socket.close()


def test_models_and_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Models not downloaded: the tiny ones with a banner naming the download command; the
    page listens on loopback, or on 0.0.0.0 with a warning, nowhere else."""
    monkeypatch.setenv("DOORWAYS_MODELS", str(tmp_path))
    settings, banner = playground_settings(tiny_settings(tmp_path).replace(vqgan="wikiart_16384"))
    assert banner.tiny_models and banner.text and "doorways models download" in banner.text
    assert (settings.vqgan, settings.clip, settings.max_size) == ("tiny", "tiny", (128, 128))

    def on_disk(name: str) -> None:  # as far as the playground looks
        for path in model_paths(name):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()

    on_disk("vqgan_imagenet_f16_1024")
    on_disk("ViT-B/32")
    real = tiny_settings(tmp_path).replace(vqgan="vqgan_imagenet_f16_1024", clip="ViT-B/32")
    assert playground_settings(real) == (real, Banner(tiny_models=False))
    pair = real.replace(clip="ViT-B/32,ViT-B/16:0.5")  # every CLIP of a list must be there
    assert playground_settings(pair)[0].clip == "tiny"
    on_disk("ViT-B/16")
    assert playground_settings(pair) == (pair, Banner(tiny_models=False))
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
    the bot connected and its commands registered. Tabs that close, or vanish without a word,
    while answers are on their way print nothing in the terminal; SIGTERM says goodbye to the
    open ones (1001) and stops it cleanly."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
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
                    async with http.get(f"{url}/api/state") as response:
                        state = await response.json()
                        if state["bot"]["connected"] and state["commands"]:
                            break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(log.read_text())
            assert state["banner"]["tiny_models"]

            await vanish(port, "ben")  # a tab killed: no close frame
            closed, _ = await Page.open(http, url, "ben")
            await closed.socket.close()
            ben, _ = await Page.open(http, url, "ben")
            assert (await ben.ask("command", name="quota"))["ok"]  # goes to ben's tabs
            await ben.message(lambda m: m["ephemeral"])
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 60)  # the worker may be starting
            goodbye = await asyncio.wait_for(ben.socket.receive(), 10)
            while goodbye.type == aiohttp.WSMsgType.TEXT:  # "the bot went offline", ...
                goodbye = await asyncio.wait_for(ben.socket.receive(), 10)
            assert goodbye.type == aiohttp.WSMsgType.CLOSE and goodbye.data == 1001
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 60)
    text = log.read_text()
    assert code == 0, text
    assert (
        f"no DISCORD_TOKEN: starting the local playground at http://127.0.0.1:{port} — open it "
        "in a browser" in text
    )
    assert "Traceback" not in text and "ERROR" not in text, text


async def vanish(port: int, user: str) -> None:
    """Open the page's socket as ``user`` and drop the connection without a close frame."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /api/socket?user={user} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101"), head
    await asyncio.wait_for(reader.read(100), 10)  # the start of the state
    writer.transport.abort()

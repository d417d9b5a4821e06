"""Make docs/playground.png, the README's picture of the playground, as a newcomer sees it.

    .venv/bin/python docs/screenshot.py

Starts `doorways-bot` with no token (the playground, as `make run` does) in a scratch
folder, types `/entrance heaven | hell` as ada in the system's headless Chromium, waits for
the picture, shows its parameters, and saves the page. With no models downloaded the bot
paints with the tiny stand-ins, so the picture is noise and the banner says so: that is what
a fresh checkout shows. Emoji need a colour emoji font (Debian: fonts-noto-color-emoji).
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image
from playwright.async_api import async_playwright

OUT = Path(__file__).resolve().parent / "playground.png"
BOT = Path(sys.executable).with_name("doorways-bot")
WIDTH, HEIGHT = 1000, 1040


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, bot: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if bot.poll() is not None:
            raise SystemExit(f"doorways-bot stopped (status {bot.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the playground did not answer at {url}")


async def shoot(url: str, chromium: str) -> bytes:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            await page.goto(f"{url}/?user=ada")
            await page.wait_for_selector("#bot-status.online", timeout=60_000)
            await page.locator("#input").press_sequentially("/entrance heaven | hell")
            await page.keyboard.press("Enter")
            result = page.locator("article.msg img:not([alt='preview.png'])")
            await result.first.wait_for(timeout=180_000)
            await page.locator("article.msg button.button", has_text="📋").first.click()
            call = page.locator("article.msg.ephemeral", has_text="doorways generate")
            await call.first.wait_for(timeout=20_000)
            await page.mouse.move(5, 5)  # no hover toolbar on the last message touched
            await page.wait_for_timeout(500)  # let the last images decode and the page settle
            return await page.screenshot(full_page=False)
        finally:
            await browser.close()


def main() -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium here (Debian: apt-get install chromium)")
    port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
        env.setdefault("DOORWAYS_MODELS", str(Path(scratch) / "models"))
        command = [str(BOT), "--playground-port", str(port), "--device", "cpu"]
        bot = subprocess.Popen(command, cwd=scratch, env=env, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_up(url, bot)
            png = asyncio.run(shoot(url, chromium))
        finally:
            bot.terminate()
            bot.wait(30)
    # A palette of 256 colours keeps the file small (the page is mostly flat colour).
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(256, dither=Image.Dither.NONE)
    image.save(OUT, optimize=True)
    print(f"{OUT}: {OUT.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()

"""The local playground: try the whole bot without a Discord account.

`doorways-bot` with no token starts a FakeDiscord on loopback, the real bot connected to it
(the real discord.py client, the real gateway and REST protocols, the worker process as
always) and a small web page that looks and behaves like a Discord server's channel and each
person's direct messages, by default at http://127.0.0.1:8765. The page acts as made-up
people through the fake's driver; it never talks to the bot or the engine itself.

- ``server``: the web app (the page, its state and one WebSocket per tab)
- ``run``: putting the fake, the page and the bot together; model and host checks
- ``static/``: index.html, app.js and style.css — hand-written, nothing from the internet
"""

from bot.playground.run import DEFAULT_HOST, DEFAULT_PORT, check_host, run_playground
from bot.playground.server import Banner, Playground

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "Banner", "Playground", "check_host", "run_playground"]

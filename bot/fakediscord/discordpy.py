"""Point discord.py at a Discord that is not discord.com (FakeDiscord, or a proxy).

discord.py has no per-client setting for this: the REST base is the class attribute
``discord.http.Route.BASE`` and the gateway the class attribute
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY``. Changing them changes module globals for
the whole process, so every client in it goes there; tests restore them afterwards.
"""

from __future__ import annotations

from collections.abc import Callable


def set_discord_endpoints(api_base: str, gateway_url: str) -> Callable[[], None]:
    """Send REST calls to ``api_base`` (e.g. ``http://127.0.0.1:PORT/api/v10``) and the gateway
    to ``gateway_url`` (e.g. ``ws://127.0.0.1:PORT/``).

    Changes two module globals of discord.py (see the module docstring). Returns a function that
    puts the previous values back.
    """
    import discord.gateway
    import discord.http
    import yarl

    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = api_base.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)

    def restore() -> None:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    return restore


def point_discord_py_at(base_url: str) -> Callable[[], None]:
    """Send all of discord.py's traffic to the Discord at ``base_url`` (``http://HOST:PORT``):
    REST to ``{base_url}/api/v10``, the gateway to ``ws://HOST:PORT/``.

    Changes discord.py's module globals ``discord.http.Route.BASE`` and
    ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` for the whole process. Returns a
    function that restores them.
    """
    base = base_url.rstrip("/")
    scheme, _, rest = base.partition("://")
    ws_scheme = "wss" if scheme == "https" else "ws"
    return set_discord_endpoints(f"{base}/api/v10", f"{ws_scheme}://{rest}/")

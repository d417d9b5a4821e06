"""The fake's gateway heartbeat as discord.py measures it: its latency is the ACK's round trip,
not the heartbeat interval (discord.py logs "Can't keep up, … websocket is 41.3s behind"
when it is over 10 s)."""

from __future__ import annotations

import asyncio
import threading

import discord

from bot.fakediscord import FakeDiscord

INTERVAL_S = 0.4


async def test_heartbeat_latency_is_the_round_trip_not_the_interval(
    fake_discord: FakeDiscord,
) -> None:
    """With another Python thread busy (as the bot's own threads are), every heartbeat's
    measured latency stays far below the interval."""
    fake_discord.gateway.heartbeat_interval_ms = int(INTERVAL_S * 1000)
    stop = threading.Event()

    def busy() -> None:  # competes with discord.py's keep-alive thread for the GIL
        while not stop.is_set():
            sum(range(1000))

    spinner = threading.Thread(target=busy, daemon=True)
    spinner.start()
    client = discord.Client(intents=discord.Intents.none())
    task = asyncio.create_task(client.start(fake_discord.token))
    latencies: set[float] = set()
    try:
        await fake_discord.wait_for_bot()
        for _ in range(int(12 * INTERVAL_S / 0.05)):  # about 12 heartbeats
            await asyncio.sleep(0.05)
            if client.latency != float("inf"):
                latencies.add(client.latency)
    finally:
        stop.set()
        await client.close()
        await asyncio.wait_for(task, 5)
    assert len(latencies) >= 6, f"too few heartbeats were acknowledged: {sorted(latencies)}"
    # No lower bound: discord.py notes a heartbeat's send time in its keep-alive thread,
    # which a busy machine may run late, so a measured round trip can come out shorter.
    assert max(latencies) < INTERVAL_S / 2, f"latencies (s): {sorted(latencies)}"

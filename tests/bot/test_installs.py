"""Install contexts: the commands are registered for server installs only (painting in servers
only), and a command that comes through a copy installed to someone's account is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.fakediscord import FakeDiscord
from bot.installs import NOT_INSTALLED
from tests.bot.running import running_bot, tiny_settings

SERVERS_ONLY = {"entrance", "imagine", "task", "admin", "nightly"}


async def test_commands_are_registered_for_server_installs(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    """integration_types [0] everywhere; contexts [0] for painting and admin, [0, 1] (servers
    and the bot's DMs) for the rest; the fake keeps both, and offers nothing to a user install."""
    fake = fake_discord
    async with running_bot(fake, tiny_settings(tmp_path), wait_for_worker=False):
        registered = {c["name"]: c for c in fake.commands()}
        assert SERVERS_ONLY.issubset(registered)
        for name, command in registered.items():
            assert command["integration_types"] == [0], name
            expected = [0] if name in SERVERS_ONLY else [0, 1]
            assert command["contexts"] == expected, name
        person = fake.create_user("visitor")
        with pytest.raises(ValueError, match="does not offer it"):
            await fake.slash(person, fake.channel, "queue", integration="user")
        with pytest.raises(ValueError, match="not offered in DMs"):
            await fake.slash(person, fake.dm_channel(person), "entrance", {"realms": "a | b"})


async def test_a_user_installed_copy_is_refused(fake_discord: FakeDiscord, tmp_path: Path) -> None:
    """Commands registered for user installs (by an older version, say) reach the bot from a
    server that never added it: the refusal is private and nothing is queued."""
    fake = fake_discord
    async with running_bot(fake, tiny_settings(tmp_path), wait_for_worker=False) as bot:
        for command in fake.world.commands[None]:
            command["integration_types"] = [0, 1]
        elsewhere = fake.create_guild("Someone else's server", with_bot=False)
        channel = fake.create_channel("general", guild=elsewhere)
        person = fake.create_user("visitor", guild=elsewhere)
        for name, options in (("entrance", {"realms": "heaven | hell"}), ("queue", {})):
            handle = await fake.slash(person, channel, name, options, integration="user")
            response = await handle.wait_response(timeout=3.0)
            assert response.ephemeral and response.content == NOT_INSTALLED, name
        suggested = await fake.autocomplete(
            person, channel, "entrance", "realms", {"realms": "he"}, integration="user"
        )
        assert suggested == []
        assert await bot.store.jobs() == []
        # The same person in the bot's own server is served (both installs authorize it).
        fake.add_member(fake.guild, person)
        handle = await fake.slash(
            person, fake.channel, "entrance", {"realms": "heaven | hell"}, integration="user"
        )
        response = await handle.wait_response(timeout=3.0)
        assert "#1 in line" in response.content
        suggested = await fake.autocomplete(
            person, fake.channel, "entrance", "realms", {"realms": "he"}, integration="user"
        )
        assert suggested  # the presets refused above

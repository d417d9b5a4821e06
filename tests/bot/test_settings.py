"""Settings from TOML, the environment and the command line; errors name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bot.settings import RoleLimits, Settings, SettingsError, describe_settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "data" / "bot.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bot.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file() -> None:
    settings = load_settings(None, {})
    assert settings == Settings()
    assert (settings.daily_images, settings.max_pending, settings.max_iterations) == (25, 3, 1000)
    assert settings.max_area == 450 * 300 and settings.token is None


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[discord]
token = "from-file"
api_base = "http://127.0.0.1:1/api/v10"
allowed_channels = [123, "painting", "#art"]

[storage]
database = "~/jobs.sqlite3"

[engine]
vqgan = "wikiart_16384"

[limits]
max_size = [640, 480]
unlimited_roles = ["Admins", "42"]

[limits.roles."Patron"]
daily_images = 100
max_pending = 5
""",
    )
    env = {"DISCORD_TOKEN": "from-env", "DISCORD_GATEWAY_URL": "ws://127.0.0.1:1/"}
    settings = load_settings(path, env, {"vqgan": "tiny", "guild": 99, "database": None})
    assert settings.token == "from-env" and settings.gateway_url == "ws://127.0.0.1:1/"
    assert settings.api_base == "http://127.0.0.1:1/api/v10"
    assert settings.allowed_channels == (123, "painting", "art")
    assert settings.database == Path("~/jobs.sqlite3").expanduser()
    assert settings.vqgan == "tiny" and settings.guild == 99
    assert settings.max_area == 640 * 480 and settings.unlimited_roles == ("Admins", 42)
    assert settings.role_limits == {"Patron": RoleLimits(daily_images=100, max_pending=5)}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[limits]\nmax_iterations = 6001", "limits.max_iterations: must be from 1 to 6000"),
        ("[limits]\nmax_size = [10, 300]", "limits.max_size: sides must be from 64"),
        ("[limits]\nmax_size = 450", "limits.max_size: expected two whole numbers"),
        ("[limits]\ndaily_images = 'many'", "limits.daily_images: expected a whole number"),
        ("[limits]\nmax_pendng = 3", "unknown setting limits.max_pendng (known: limits.daily"),
        ("[limit]\nx = 1", "unknown setting limit.x (known: sections: discord, engine"),
        ("[limits.roles.Patron]\nmax_pending = 0", "limits.roles.Patron.max_pending: must be"),
        ("[limits.roles.Patron]\nunlimited = true", "limits.roles.Patron: unknown limit(s)"),
        ("[discord]\napi_base = 'discord.com'", "discord.api_base: must start with http://"),
        ("[engine]\ndevice = 'tpu'", "engine.device: must be auto, cpu, cuda or cuda:N"),
        ("[engine]\npreload = 1", "engine.preload: expected true or false"),
        ("[progress]\nedit_interval = 0", "progress.edit_interval: must be a positive number"),
        ("[discord\n", "is not valid TOML"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(write(tmp_path, text), {})
    assert message in str(caught.value)


def test_environment_values_are_checked_too() -> None:
    with pytest.raises(SettingsError, match=r"discord\.api_base: must start with"):
        load_settings(None, {"DISCORD_API_BASE": "ftp://x"})
    with pytest.raises(SettingsError, match="config file not found"):
        load_settings(Path("/nonexistent/bot.toml"), {})


def test_example_config_documents_every_key_and_loads() -> None:
    """data/bot.example.toml names every key (commented or set) and is valid as shipped."""
    text = EXAMPLE.read_text(encoding="utf-8")
    tomllib.loads(text)
    load_settings(EXAMPLE, {})
    for key, _default, _also, _help in describe_settings():
        section, name = key.split(".")
        assert f"[{section}]" in text, section
        assert f"{name} = " in text or f"# {name} = " in text or name == "roles", key
    assert '[limits.roles."Patron"]' in text

"""Settings from TOML, the environment and the command line; errors name the key."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import pytest

from bot.settings import RoleLimits, Settings, SettingsError, describe_settings, load_settings
from engine.config import TasksConfig, load_config
from engine.taskfile import TaskLimits

EXAMPLE = Path(__file__).resolve().parents[2] / "data" / "bot.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bot.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file() -> None:
    settings = load_settings(None, {})
    assert settings == Settings()
    assert (settings.daily_images, settings.max_pending, settings.max_iterations) == (25, 3, 1000)
    assert settings.max_area is None and settings.token is None  # the size follows the GPU


def test_max_size_auto_follows_the_gpu(tmp_path: Path) -> None:
    """max_size = "auto" is the default: no fixed cap (bot.quota.Policy asks the worker)."""
    auto = load_settings(write(tmp_path, '[limits]\nmax_size = "auto"\n'), {})
    assert auto.max_size is None and auto.max_area is None
    fixed = load_settings(write(tmp_path, "[limits]\nmax_size = [640, 480]\n"), {})
    assert fixed.max_area == 640 * 480
    shown = {key: default for key, default, _, _ in describe_settings()}
    assert shown["limits.max_size"] == '"auto"'  # --help's default column


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
        ('[engine]\nprecision = "fp8"', "engine.precision: must be one of auto, fp32, bf16"),
        ('[engine]\ncompile = "fast"', "engine.compile: must be one of off, default"),
        ("[limits]\ndaily_images = 'many'", "limits.daily_images: expected a whole number"),
        ("[limits]\nmax_pendng = 3", "unknown setting limits.max_pendng (known: limits.daily"),
        ("[limit]\nx = 1", "unknown setting limit.x (known: sections: discord, engine"),
        ("[limits.roles.Patron]\nmax_pending = 0", "limits.roles.Patron.max_pending: must be"),
        ("[limits.roles.Patron]\nunlimited = true", "limits.roles.Patron: unknown limit(s)"),
        ("[discord]\napi_base = 'discord.com'", "discord.api_base: must start with http://"),
        ("[engine]\ndevice = 'tpu'", "engine.device: must be auto, cpu, cuda or cuda:N"),
        ("[engine]\ndevices = ['cuda:0', 'gpu']", "engine.devices: 'gpu' is not a device"),
        ("[engine]\ndevices = 'any'", "engine.devices: 'any' is not a device"),
        ("[engine]\ndevices = 2", 'engine.devices: expected a list of devices, or "all"'),
        ("[engine]\ncluster = 'head'", "engine.cluster: must be auto or HEAD:PORT"),
        ("[engine]\ncluster = 'ray://h:10001'", "engine.cluster: Ray Client (ray://) cannot"),
        ("[engine]\ncluster = 'auto'\ndevices = 'all'", "engine.cluster: paints on the cluster"),
        ("[engine]\npreload = 1", "engine.preload: expected true or false"),
        ("[engine]\nclip = 'tiny,,RN50'", "engine.clip: CLIP list entry 2 of 3 is empty"),
        ("[engine]\nclip = 'tiny,RN50:0'", "engine.clip: CLIP RN50 has weight 0"),
        ("[engine]\nclip = 'tiny,tiny'", "engine.clip: CLIP tiny is listed twice"),
        ("[engine]\nclip = ''", "engine.clip: no CLIP model given"),
        (
            "[engine]\nclip = ['ViT-B/32', 'ViT-B/16']",
            'engine.clip: expected one string such as "ViT-B/32,ViT-B/16:0.5" (several models:'
            " commas, not a list), not ['ViT-B/32', 'ViT-B/16']",
        ),
        ("[progress]\nedit_interval = 0", "progress.edit_interval: must be a positive number"),
        ("[discord\n", "is not valid TOML"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(write(tmp_path, text), {})
    assert message in str(caught.value)


def test_clip_takes_a_list_of_models_as_the_command_line_does(tmp_path: Path) -> None:
    """engine.clip (or --clip) is one string: several models, each with a weight."""
    listed = load_settings(write(tmp_path, '[engine]\nclip = "ViT-B/32, ViT-B/16:0.5"'), {})
    assert listed.clip == "ViT-B/32, ViT-B/16:0.5"
    assert listed.engine_fields()["clip"] == "ViT-B/32, ViT-B/16:0.5"
    assert load_settings(None, {}, {"clip": "tiny,RN50:2"}).clip == "tiny,RN50:2"


def test_devices_from_the_file_and_the_flag(tmp_path: Path) -> None:
    """engine.devices: a list (a device may repeat), "all", or --devices a,b."""
    listed = load_settings(write(tmp_path, '[engine]\ndevices = ["cuda:0", "cuda:1"]'), {})
    assert listed.devices == ("cuda:0", "cuda:1")
    assert load_settings(write(tmp_path, '[engine]\ndevices = "all"'), {}).devices == ("all",)
    flagged = load_settings(None, {}, {"devices": "cpu, cpu"})
    assert flagged.devices == ("cpu", "cpu") and Settings().devices == ()


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


# One file for the bot and the task runner ----------------------------------------------------

SHARED = """
[discord]
allowed_channels = ["painting"]

[limits]
daily_images = 10

[tasks]
output_root = "/srv/doorways/outputs"
max_iterations = 800
max_resolution = [512, 512]
folder = "/srv/doorways/tasks"
run_at = "23:00"
"""


def test_one_file_serves_the_bot_and_the_task_runner(tmp_path: Path) -> None:
    """`doorways-bot --config F` and `doorways tasks run --config F` read the same file: the
    bot takes [tasks] as the engine reads it, the engine ignores the bot's sections."""
    path = write(tmp_path, SHARED)
    settings = load_settings(path, {})
    config = load_config(path)
    assert settings.tasks == config
    assert config.output_root == Path("/srv/doorways/outputs")
    assert config.limits == TaskLimits(max_iterations=800, max_resolution=(512, 512))
    assert (config.folder, config.run_at) == (Path("/srv/doorways/tasks"), dt.time(23, 0))
    assert settings.allowed_channels == ("painting",) and settings.daily_images == 10
    assert load_settings(None, {}).tasks == TasksConfig()
    # The shipped example is such a file too.
    assert load_settings(EXAMPLE, {}).tasks == load_config(EXAMPLE) == TasksConfig()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("max_iteration = 800", "unknown setting(s) tasks.max_iteration (known: tasks.output_"),
        ("max_each = 0", "tasks.max_each must be a whole number ≥ 1, not 0"),
        ("max_resolution = 450", "tasks.max_resolution must be [W, H], not 450"),
        ("output_root = 3", "tasks.output_root must be a path in quotes, not 3"),
        ('folder = "t"\nrun_at = "11pm"', 'tasks.run_at must be a time as "HH:MM" on the 24-hour'),
        ('folder = "t"\nrun_at = "24:00"', "tasks.run_at must be a time"),
        ('run_at = "23:00"', "tasks.run_at needs tasks.folder: the folder to run"),
    ],
)
def test_a_bad_tasks_key_is_the_same_error_from_both(
    tmp_path: Path, table: str, message: str
) -> None:
    """A typo in [tasks] stops the bot and the task runner, each naming the key."""
    path = write(tmp_path, f"[discord]\nguild = 5\n\n[tasks]\n{table}\n")
    with pytest.raises(SettingsError) as bot_error:
        load_settings(path, {})
    with pytest.raises(ValueError) as engine_error:
        load_config(path)
    assert message in str(bot_error.value)
    assert message in str(engine_error.value) and str(path) in str(engine_error.value)


def test_an_unknown_section_still_stops_the_bot(tmp_path: Path) -> None:
    """The bot knows every section of the shared file; a misspelt one is an error that lists
    them, [tasks] among them (the engine, reading only [tasks], does not mind)."""
    path = write(tmp_path, "[taks]\nmax_each = 3\n")
    with pytest.raises(SettingsError, match=r"unknown setting taks\.max_each .*tasks"):
        load_settings(path, {})
    assert load_config(path) == TasksConfig()
    with pytest.raises(SettingsError, match=r"tasks: expected a \[tasks\] table"):
        load_settings(write(tmp_path, "tasks = 3\n"), {})


def test_run_at_may_be_a_toml_time(tmp_path: Path) -> None:
    """`run_at = 23:00:00` (a TOML local time) is the same as "23:00"."""
    path = write(tmp_path, '[tasks]\nfolder = "~/tasks"\nrun_at = 23:00:00\n')
    settings = load_settings(path, {})
    assert settings.tasks.run_at == dt.time(23, 0)
    assert settings.tasks.folder == Path("~/tasks").expanduser()

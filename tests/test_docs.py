"""The docs are complete and their links hold: every `doorways` command and option, every
`doorways-bot` option and setting, and every command the bot registers with Discord is
named in README.md or docs/*.md, and every page is reachable from the README.

The names come from the programs themselves (the argparse parsers, the settings table, the
command tree the extensions build), so a new option without documentation fails here."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import discord
import pytest
from discord.ext import commands

from bot import launcher
from bot.bot import walk_extensions
from bot.settings import describe_settings
from engine import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def pages_naming(text: str) -> list[str]:
    """The README and docs pages that name `text` as a whole word (`--clip` is not in
    `--clip-foo`, `/queue` is not in `/queued`)."""
    return [read(p) for p in (README, *PAGES) if names(read(p), text)]


def names(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def walk_parser(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, list[str]]]:
    """(`doorways models download`, its --options) for a parser and each sub-command."""
    options = [
        flag
        for action in parser._actions
        for flag in action.option_strings
        if flag.startswith("--") and flag != "--help"
    ]
    yield path, options
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk_parser(sub, f"{path} {name}")


def undocumented_options(parser: argparse.ArgumentParser, prog: str) -> list[str]:
    """Commands that no page names, and options that no page naming their command names."""
    missing = []
    for path, options in walk_parser(parser, prog):
        pages = pages_naming(path)
        if not pages:
            missing.append(path)
        missing += [f"{path} {o}" for o in options if not any(names(p, o) for p in pages)]
    return missing


def test_every_doorways_command_and_option_is_documented() -> None:
    assert undocumented_options(cli.build_parser(), "doorways") == []


def test_every_bot_option_and_setting_is_documented() -> None:
    assert undocumented_options(launcher.build_parser(), "doorways-bot") == []
    keys = [key for key, _default, _also, _help in describe_settings()]
    assert "engine.cutn" in keys and "tasks.run_at" in keys  # the table is what we think
    assert [key for key in keys if not pages_naming(key)] == []


async def registered_commands() -> list[tuple[str, list[str]]]:
    """(`/admin caps`, its options) for each slash command the extensions register, and
    (`Get parameters`, []) for each message and user command."""
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.none())
    for name in walk_extensions():
        await bot.load_extension(name)
    found = [
        (f"/{command.qualified_name}", [p.display_name for p in command.parameters])
        for command in bot.tree.walk_commands()
        if isinstance(command, discord.app_commands.Command)
    ]
    for kind in (discord.AppCommandType.message, discord.AppCommandType.user):
        found += [(menu.name, []) for menu in bot.tree.get_commands(type=kind)]
    await bot.close()
    return found


async def test_every_bot_command_and_option_is_documented() -> None:
    """Each slash command is named with all its options on one line of the docs (a table
    row such as `/imagine prompt [aspect] …`), and each context-menu command by its name."""
    found = await registered_commands()
    assert {"/entrance", "/admin caps", "Get parameters"} <= {name for name, _ in found}
    lines = [line for page in (README, *PAGES) for line in read(page).splitlines()]
    missing = []
    for command, options in found:
        rows = [line for line in lines if names(line, command)]
        if not rows:
            missing.append(command)
        missing += [
            f"{command} {option}"
            for option in options
            if not any(names(row, option) for row in rows)
        ]
    assert missing == []


def markdown_links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", text)


def anchors(text: str) -> set[str]:
    """GitHub's anchors for a page's headings (lower case, punctuation dropped, spaces to -)."""
    found = set()
    for line in text.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", heading).replace(" ", "-"))
    return found


def leads_somewhere(page: Path, link: str) -> bool:
    """A relative link names a file that exists and, with #anchor, a heading in it."""
    target, _, anchor = link.partition("#")
    path = (page.parent / target).resolve() if target else page
    if not path.exists():
        return False
    return not anchor or path.suffix != ".md" or anchor in anchors(read(path))


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.name)
def test_links_lead_somewhere(page: Path) -> None:
    links = [link for link in markdown_links(read(page)) if not re.match(r"[a-z]+:", link)]
    assert links  # https: and mailto: links are left out
    assert [link for link in links if not leads_somewhere(page, link)] == []


def test_the_readme_is_a_front_door_to_every_page() -> None:
    """The README stays short and links every docs page."""
    text = read(README)
    assert len(text.splitlines()) <= 160
    assert "make run" in text and "make test" in text
    assert PAGES
    linked = {Path(link).name for link in markdown_links(text) if link.startswith("docs/")}
    assert [p.name for p in PAGES if p.name not in linked] == []
    (picture,) = [link for link in markdown_links(text) if link.endswith(".png")]
    assert (ROOT / picture).stat().st_size < 300 * 1024  # small enough for every clone


def test_every_task_file_field_is_documented() -> None:
    """docs/task-folders.md names every field a task file may hold."""
    from engine.taskfile import KNOWN_FIELDS

    page = read(ROOT / "docs" / "task-folders.md")
    assert "kernels" in KNOWN_FIELDS
    assert [name for name in KNOWN_FIELDS if f"`{name}`" not in page] == []


def test_the_project_layout_names_every_module() -> None:
    """docs/development.md's layout names each module and package of engine/ and bot/."""
    page = read(ROOT / "docs" / "development.md")
    layout = page.split("## Project layout", 1)[1].split("```")[1]
    missing = []
    for package in ("engine", "bot"):
        for path in sorted((ROOT / package).iterdir()):
            if path.name.startswith(("_", ".")) or path.name == "migrations":
                continue
            if path.suffix == ".py":
                name = path.name
            elif path.is_dir() and (path / "__init__.py").exists():
                name = f"{path.name}/"
            else:
                continue
            if not names(layout, name):
                missing.append(f"{package}/{name}")
    assert missing == []

"""Application commands: the registry the bot syncs to, and the option payloads a Discord
client would send when a person fills a command in.

Option values are typed from the registered schema (discord.py reads ``option["value"]`` as
given), and anything the Discord client would refuse (unknown option, wrong type, missing
required option, value outside the choices or limits) raises ``ValueError`` naming it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any, Protocol

from . import errors
from .state import World

_NAME = re.compile(r"^[-_\w]{1,32}$")


class CommandType(enum.IntEnum):
    CHAT_INPUT = 1
    USER = 2
    MESSAGE = 3


class OptionType(enum.IntEnum):
    SUB_COMMAND = 1
    SUB_COMMAND_GROUP = 2
    STRING = 3
    INTEGER = 4
    BOOLEAN = 5
    USER = 6
    CHANNEL = 7
    ROLE = 8
    MENTIONABLE = 9
    NUMBER = 10
    ATTACHMENT = 11


_NESTING = (OptionType.SUB_COMMAND, OptionType.SUB_COMMAND_GROUP)


# Registry -------------------------------------------------------------------------------------


def overwrite(
    world: World, guild_id: int | None, commands: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Bulk overwrite (PUT): replace the set, keeping the ids of commands that stay."""
    existing = {(c["name"], c["type"]): c for c in world.commands.get(guild_id, [])}
    seen: set[tuple[str, int]] = set()
    stored = []
    for raw in commands:
        command = _validated(raw)
        key = (command["name"], command["type"])
        if key in seen:
            raise errors.invalid_form(
                "name", f"Duplicate command name {key[0]!r}", "APPLICATION_COMMANDS_DUPLICATE_NAME"
            )
        seen.add(key)
        previous = existing.get(key)
        stored.append(_stamp(world, guild_id, command, previous["id"] if previous else None))
    world.commands[guild_id] = stored
    return stored


def upsert(world: World, guild_id: int | None, raw: dict[str, Any]) -> dict[str, Any]:
    """Create or replace one command (POST), matched by name and type."""
    command = _validated(raw)
    current = world.commands.setdefault(guild_id, [])
    key = (command["name"], command["type"])
    for index, old in enumerate(current):
        if (old["name"], old["type"]) == key:
            current[index] = _stamp(world, guild_id, command, old["id"])
            return current[index]
    current.append(_stamp(world, guild_id, command, None))
    return current[-1]


def get(world: World, guild_id: int | None, command_id: int | str) -> dict[str, Any]:
    for command in world.commands.get(guild_id, []):
        if command["id"] == str(command_id):
            return command
    raise errors.unknown_command()


def remove(world: World, guild_id: int | None, command_id: int | str) -> None:
    world.commands[guild_id] = [
        c for c in world.commands.get(guild_id, []) if c["id"] != str(command_id)
    ]


def find(world: World, guild_id: int | None, name: str, type: CommandType) -> dict[str, Any]:
    """The command a person in ``guild_id`` would pick: guild commands first, then global."""
    scopes = [guild_id, None] if guild_id is not None else [None]
    for scope in scopes:
        for command in world.commands.get(scope, []):
            if command["name"] == name and command["type"] == type:
                return command
    known = sorted(
        c["name"] for s in scopes for c in world.commands.get(s, []) if c["type"] == type
    )
    raise ValueError(f"no {type.name} command {name!r} is registered here; registered: {known}")


def _validated(raw: dict[str, Any]) -> dict[str, Any]:
    command = dict(raw)
    command["type"] = int(command.get("type") or CommandType.CHAT_INPUT)
    name = command.get("name") or ""
    if command["type"] == CommandType.CHAT_INPUT:
        if not _NAME.match(name) or name != name.lower():
            raise errors.invalid_form(
                "name", f"Invalid command name {name!r}", "APPLICATION_COMMAND_INVALID_NAME"
            )
        if not 1 <= len(command.get("description") or "") <= 100:
            raise errors.invalid_form("description", "Must be between 1 and 100 in length.")
    elif not 1 <= len(name) <= 32:
        raise errors.invalid_form("name", f"Invalid command name {name!r}")
    command.setdefault("options", [])
    return command


def _stamp(
    world: World, guild_id: int | None, command: dict[str, Any], command_id: str | None
) -> dict[str, Any]:
    command = {
        "description": "",
        "default_member_permissions": None,
        "nsfw": False,
        **command,
        "id": command_id or str(world.snowflakes.next()),
        "application_id": str(world.application.id),
        "version": str(world.snowflakes.next()),
    }
    if guild_id is not None:
        command["guild_id"] = str(guild_id)
    return command


# Options --------------------------------------------------------------------------------------


class Resolver(Protocol):
    """Turns an object given to the driver (a User, Role, Channel, Upload...) into the snowflake
    string Discord puts in the option value, recording it in the interaction's ``resolved``."""

    def user(self, value: Any) -> str: ...

    def role(self, value: Any) -> str: ...

    def channel(self, value: Any, channel_types: list[int] | None) -> str: ...

    def mentionable(self, value: Any) -> str: ...

    def attachment(self, value: Any) -> str: ...


def build_options(
    command: dict[str, Any],
    values: Mapping[str, Any],
    resolver: Resolver,
    *,
    subcommand: str | None = None,
    group: str | None = None,
    focused: str | None = None,
) -> list[dict[str, Any]]:
    """The ``data.options`` a Discord client sends for ``command`` filled in with ``values``."""
    path = command["name"]
    schema: list[dict[str, Any]] = command.get("options", [])
    wrappers: list[tuple[OptionType, str]] = []
    for wanted, kind in (
        (group, OptionType.SUB_COMMAND_GROUP),
        (subcommand, OptionType.SUB_COMMAND),
    ):
        nested = [o for o in schema if o["type"] == kind]
        if wanted is None:
            if nested:
                names = [o["name"] for o in nested]
                raise ValueError(f"/{path} needs a {kind.name.lower()}: one of {names}")
            continue
        option = next((o for o in nested if o["name"] == wanted), None)
        if option is None:
            raise ValueError(
                f"/{path} has no {kind.name.lower()} {wanted!r}; "
                f"it has {[o['name'] for o in nested]}"
            )
        path += f" {wanted}"
        schema = option.get("options", [])
        wrappers.append((kind, wanted))
    if any(o["type"] in _NESTING for o in schema):
        raise ValueError(f"/{path} needs a subcommand: one of {[o['name'] for o in schema]}")

    by_name = {o["name"]: o for o in schema}
    options = []
    for name, value in values.items():
        option = by_name.get(name)
        if option is None:
            raise ValueError(f"/{path} has no option {name!r}; its options are {list(by_name)}")
        if name == focused:
            if not option.get("autocomplete"):
                raise ValueError(f"/{path} option {name!r} has no autocomplete")
            options.append(
                {"name": name, "type": option["type"], "value": str(value), "focused": True}
            )
        else:
            options.append(
                {
                    "name": name,
                    "type": option["type"],
                    "value": _value(path, option, value, resolver),
                }
            )
    if focused is None:
        missing = [o["name"] for o in schema if o.get("required") and o["name"] not in values]
        if missing:
            raise ValueError(f"/{path} is missing required option(s) {missing}")
    elif focused not in values:
        raise ValueError(
            f"/{path}: the focused option {focused!r} needs a value (the text typed so far)"
        )

    for kind, name in reversed(wrappers):
        options = [{"name": name, "type": int(kind), "options": options}]
    return options


def _value(path: str, option: dict[str, Any], value: Any, resolver: Resolver) -> Any:
    kind = OptionType(option["type"])
    where = f"/{path} option {option['name']!r}"
    match kind:
        case OptionType.STRING:
            if not isinstance(value, str):
                raise ValueError(f"{where} takes a str, not {value!r}")
            if not option.get("min_length", 0) <= len(value) <= option.get("max_length", 6000):
                raise ValueError(f"{where}: length {len(value)} is outside its limits")
        case OptionType.INTEGER:
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{where} takes an int, not {value!r}")
        case OptionType.NUMBER:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError(f"{where} takes a number, not {value!r}")
        case OptionType.BOOLEAN:
            if not isinstance(value, bool):
                raise ValueError(f"{where} takes a bool, not {value!r}")
        case OptionType.USER:
            return resolver.user(value)
        case OptionType.ROLE:
            return resolver.role(value)
        case OptionType.CHANNEL:
            return resolver.channel(value, option.get("channel_types"))
        case OptionType.MENTIONABLE:
            return resolver.mentionable(value)
        case OptionType.ATTACHMENT:
            return resolver.attachment(value)
        case _:
            raise ValueError(f"{where} has type {kind.name}, which cannot take a value")
    if kind in (OptionType.INTEGER, OptionType.NUMBER):
        low, high = option.get("min_value"), option.get("max_value")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(f"{where}: {value} is outside [{low}, {high}]")
    choices = option.get("choices")
    if choices and value not in [c["value"] for c in choices]:
        raise ValueError(
            f"{where}: {value!r} is not one of the choices {[c['value'] for c in choices]}"
        )
    return value

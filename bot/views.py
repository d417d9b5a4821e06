"""Message components of job messages: persistent `DynamicItem`s whose state is the job id in
their custom_id (`doorways:job:<id>:<action>`, at most 100 characters), reloaded from the
store when clicked, so they keep working across restarts.

Issue 6 adds the items (🎲 reroll, 🔀 variation, 📋 parameters, ✖ cancel, 🗑 delete): each is a
`discord.ui.DynamicItem[discord.ui.Button]` with `template=JOB_TEMPLATE.format(action=...)`,
and goes in `DYNAMIC_ITEMS`, which the bot registers in `setup_hook`.
"""

from __future__ import annotations

import re
from typing import Any

import discord

CUSTOM_ID_PREFIX = "doorways:job:"
JOB_TEMPLATE = r"doorways:job:(?P<job_id>[0-9]{{1,20}}):{action}"  # str.format it
ACTIONS = ("reroll", "variation", "parameters", "cancel", "delete")

# The registered DynamicItem classes (none yet: issue 6).
DYNAMIC_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = ()


def job_custom_id(job_id: int, action: str) -> str:
    """`doorways:job:<id>:<action>` for a job's button."""
    if action not in ACTIONS:
        raise ValueError(f"unknown job action {action!r}: one of {', '.join(ACTIONS)}")
    custom_id = f"{CUSTOM_ID_PREFIX}{job_id}:{action}"
    assert len(custom_id) <= 100
    return custom_id


def parse_job_custom_id(custom_id: str) -> tuple[int, str] | None:
    """(job id, action) of a job button's custom_id, or None."""
    match = re.fullmatch(JOB_TEMPLATE.format(action=r"(?P<action>[a-z]+)"), custom_id)
    if match is None or match["action"] not in ACTIONS:
        return None
    return int(match["job_id"]), match["action"]

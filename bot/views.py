"""Message components of job messages: persistent `DynamicItem`s whose state is the job id in
their custom_id (`doorways:job:<id>:<action>`, at most 100 characters), reloaded from the
store when clicked, so they keep working across restarts.

The status message carries ✖ Cancel while the job waits or paints; the result carries
🎲 Reroll, 🔀 Variation, 📋 Parameters and 🗑 Delete; a grid (a batch of `count` pictures)
carries 🖼 1 … 🖼 N (`pick1`…: that picture alone) and 🔀 1 … 🔀 N (`vary1`…: a variation
of that picture) instead of the one variation, a row each. One
`JobButton` class matches every action; what an action does is registered per bot by the
results extension (`register_actions`), and a button whose action is not registered (the
extension is not loaded) answers "Sorry, this button does not work at the moment".
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import discord

from bot.errors import DoorwaysError, reply_ephemeral
from bot.store import Job
from engine.request import MAX_COUNT

log = logging.getLogger(__name__)

CUSTOM_ID_PREFIX = "doorways:job:"
JOB_TEMPLATE = r"doorways:job:(?P<job_id>[0-9]{{1,20}}):{action}"  # str.format it
PICKS = tuple(f"pick{i}" for i in range(1, MAX_COUNT + 1))  # a grid's picture i, alone
VARIES = tuple(f"vary{i}" for i in range(1, MAX_COUNT + 1))  # a variation of picture i
ACTIONS = ("reroll", "variation", "parameters", "timelapse", "cancel", "delete", *PICKS, *VARIES)
BUTTONS: dict[str, tuple[str, str, discord.ButtonStyle]] = {  # action: emoji, label, style
    "reroll": ("🎲", "Reroll", discord.ButtonStyle.secondary),
    "variation": ("🔀", "Variation", discord.ButtonStyle.secondary),
    "parameters": ("📋", "Parameters", discord.ButtonStyle.secondary),
    "timelapse": ("🎞", "Timelapse", discord.ButtonStyle.secondary),
    "cancel": ("✖", "Cancel", discord.ButtonStyle.danger),
    "delete": ("🗑", "Delete", discord.ButtonStyle.danger),
    **{pick: ("🖼", pick[4:], discord.ButtonStyle.primary) for pick in PICKS},
    **{vary: ("🔀", vary[4:], discord.ButtonStyle.secondary) for vary in VARIES},
}

JobAction = Callable[[discord.Interaction, int], Awaitable[None]]
_ACTIONS: weakref.WeakKeyDictionary[discord.Client, dict[str, JobAction]] = (
    weakref.WeakKeyDictionary()
)


def job_custom_id(job_id: int, action: str) -> str:
    """`doorways:job:<id>:<action>` for a job's button."""
    if action not in ACTIONS:
        raise ValueError(f"unknown job action {action!r}: one of {', '.join(ACTIONS)}")
    custom_id = f"{CUSTOM_ID_PREFIX}{job_id}:{action}"
    assert len(custom_id) <= 100
    return custom_id


def parse_job_custom_id(custom_id: str) -> tuple[int, str] | None:
    """(job id, action) of a job button's custom_id, or None."""
    match = re.fullmatch(JOB_TEMPLATE.format(action=r"(?P<action>[a-z0-9]+)"), custom_id)
    if match is None or match["action"] not in ACTIONS:
        return None
    return int(match["job_id"]), match["action"]


def register_actions(client: discord.Client, actions: Mapping[str, JobAction]) -> None:
    """What `client`'s job buttons do (the results extension, at load)."""
    _ACTIONS[client] = dict(actions)


def unregister_actions(client: discord.Client) -> None:
    _ACTIONS.pop(client, None)


class JobButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=JOB_TEMPLATE.format(action="(?P<action>" + "|".join(ACTIONS) + ")"),
):
    """A job's button; everything it needs is in its custom_id."""

    def __init__(self, job_id: int, action: str, row: int | None = None) -> None:
        emoji, label, style = BUTTONS[action]
        super().__init__(
            discord.ui.Button(
                style=style,
                label=label,
                emoji=emoji,
                custom_id=job_custom_id(job_id, action),
                row=row,
            )
        )
        self.job_id = job_id
        self.action = action

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> JobButton:
        return cls(int(match["job_id"]), match["action"])

    async def callback(self, interaction: discord.Interaction) -> None:
        action = _ACTIONS.get(interaction.client, {}).get(self.action)
        if action is None:
            await interaction.response.send_message(
                "Sorry, this button does not work at the moment.", ephemeral=True
            )
            return
        try:
            await action(interaction, self.job_id)
        except DoorwaysError as error:  # one ephemeral reply, as the tree's handler gives
            log.info("%s of job %s by %s refused: %s", self.action, self.job_id,
                     interaction.user.id, error.message)  # fmt: skip
            await reply_ephemeral(interaction, error.message)
        except Exception:
            log.exception("%s of job %s by %s failed", self.action, self.job_id,
                          interaction.user.id)  # fmt: skip
            await reply_ephemeral(interaction, "Sorry, something went wrong; it has been logged.")


# The registered DynamicItem classes (the bot adds them in setup_hook).
DYNAMIC_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (JobButton,)


def job_view(job_id: int, *rows: tuple[str, ...]) -> discord.ui.View:
    """The job's buttons: one row of actions, or several (each its own row)."""
    view = discord.ui.View(timeout=None)
    for number, actions in enumerate(rows):
        for action in actions:
            view.add_item(JobButton(job_id, action, row=number if len(rows) > 1 else None))
    return view


def status_view(job: Job) -> discord.ui.View:
    """The status message's buttons while the job waits or paints: ✖ Cancel."""
    return job_view(job.id, ("cancel",))


def timelapse_path(job: Job) -> Path:
    """Where the worker keeps a job's timelapse: beside its PNG, under its name."""
    return Path(job.output_path or "").with_suffix(".gif")


def result_view(job: Job) -> discord.ui.View:
    """The result's buttons: a painting gets all four, a failure no variation; a grid a row
    of 🖼 (a picture alone, with these buttons of its own), a row of 🔀 (a variation of a
    picture), then 🎲 for a new grid."""
    pictures = len(job.pictures) if job.status == "done" else 0
    if pictures > 1:
        return job_view(
            job.id, PICKS[:pictures], VARIES[:pictures], ("reroll", "parameters", "delete")
        )
    if job.status == "done" and job.output_path is not None:
        if timelapse_path(job).is_file():
            return job_view(job.id, ("reroll", "variation", "parameters", "timelapse", "delete"))
        return job_view(job.id, ("reroll", "variation", "parameters", "delete"))
    return job_view(job.id, ("reroll", "parameters", "delete"))

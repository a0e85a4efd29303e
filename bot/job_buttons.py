"""The buttons on storyboard and status messages: persistent, stateless, job id in the custom id.

A `DynamicItem` is rebuilt from its custom id on every click, so the buttons of a message posted
days ago — or before a restart — still work as long as the class is registered in `setup_hook`.
"""

from __future__ import annotations

from typing import Any, Protocol

import discord
from discord import ui

from pipeline.action_rules import Action, allows
from pipeline.formats import FORMATS
from pipeline.models import Job

CUSTOM_ID_TEMPLATE = r"jant:(?P<action>approve|replan|edit|cancel|retry|rerender|reroll|formats):(?P<job>[0-9a-f]{8})"

_LOOKS: dict[str, tuple[str, discord.ButtonStyle]] = {
    "approve": ("Approve", discord.ButtonStyle.success),
    "replan": ("New storyboard", discord.ButtonStyle.secondary),
    "edit": ("Edit scene", discord.ButtonStyle.primary),
    "cancel": ("Cancel", discord.ButtonStyle.danger),
    "retry": ("Retry failed", discord.ButtonStyle.primary),
    "rerender": ("Re-render", discord.ButtonStyle.primary),
    "reroll": ("Reroll scene", discord.ButtonStyle.secondary),
    "formats": ("Formats", discord.ButtonStyle.secondary),
}


class ActionHandler(Protocol):
    async def handle(self, interaction: discord.Interaction[Any], action: str, job_id: str) -> None: ...


class JobButton(ui.DynamicItem[ui.Button], template=CUSTOM_ID_TEMPLATE):
    def __init__(self, action: str, job_id: str, *, disabled: bool = False) -> None:
        label, style = _LOOKS[action]
        super().__init__(ui.Button(label=label, style=style, custom_id=f"jant:{action}:{job_id}", disabled=disabled))
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: ui.Item[Any], match: Any, /
    ) -> JobButton:
        return cls(match["action"], match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        handler: ActionHandler = interaction.client.job_actions
        await handler.handle(interaction, self.action, self.job_id)


def _view(*buttons: JobButton) -> ui.View:
    view = ui.View(timeout=None)
    for button in buttons:
        view.add_item(button)
    return view


def storyboard_buttons(job_id: str, *, disabled: bool = False) -> ui.View:
    return _view(*(JobButton(a, job_id, disabled=disabled) for a in ("approve", "replan", "edit", "cancel")))


def status_buttons(job: Job) -> ui.View | None:
    """Cancel while it runs, Retry failed when some scenes failed; nothing once it is settled."""
    if allows(job.status, Action.CANCEL):
        return _view(JobButton("cancel", job.id))
    if allows(job.status, Action.RETRY) and job.storyboard is not None:
        return _view(JobButton("retry", job.id))
    return None


def result_buttons(job: Job) -> ui.View | None:
    """On the finished ad: compose it again (the brand kit as it is now), make one scene again, or cut
    it into the shapes it was not asked in (none left when /makead asked for every one)."""
    actions = ["rerender", "reroll"]
    if len(set(job.request.formats)) < len(FORMATS):
        actions.append("formats")
    buttons = [JobButton(a, job.id) for a in actions if allows(job.status, a)]
    return _view(*buttons) if buttons else None

"""Reroll scene: the result message's button opens this private pick of a scene and what to make again
of it — the choices `/reroll` takes — and the pick goes through the same path as `/reroll`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import ui

from bot.display_text import cap
from bot.error_replies import reply_error
from pipeline.models import Job, StageName

if TYPE_CHECKING:
    from bot.job_actions import JobActions

PICKER_TIMEOUT_S = 600.0  # an ephemeral message's view lives at most 15 minutes anyway
PARTS = ((StageName.SEED, "new seed image and clip"), (StageName.CLIP, "new clip, same image"))


def reroll_options(job: Job) -> list[discord.SelectOption]:
    """One option per scene and part (7 scenes × 2 stay under Discord's 25 options); value "scene:part"."""
    assert job.storyboard is not None
    return [
        discord.SelectOption(
            label=cap(f"#{s.index} · {s.beat.value} · {words}", 100),
            description=cap(s.description, 100),
            value=f"{s.index}:{part.value}",
        )
        for s in job.storyboard.scenes
        for part, words in PARTS
    ]


class RerollPicker(ui.View):
    def __init__(self, actions: JobActions, job: Job) -> None:
        super().__init__(timeout=PICKER_TIMEOUT_S)
        self.actions = actions
        self.job_id = job.id
        select: ui.Select[RerollPicker] = ui.Select(
            custom_id=f"jant:rerollpick:{job.id}", placeholder="Choose the scene to make again",
            options=reroll_options(job),
        )  # fmt: skip
        select.callback = self._picked  # type: ignore[method-assign]
        self.add_item(select)
        self.select = select

    async def _picked(self, interaction: discord.Interaction[Any]) -> None:
        index, part = self.select.values[0].split(":")
        await self.actions.handle(interaction, "reroll", self.job_id, scene=int(index), part=StageName(part))

    async def on_error(self, interaction: discord.Interaction[Any], error: Exception, item: ui.Item[Any]) -> None:
        await reply_error(interaction, error, job_id=self.job_id)

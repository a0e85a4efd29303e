"""Edit scene: an ephemeral select of the scenes, then a modal with the scene's description, its spoken
line and its duration."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import ui

from bot.display_text import cap
from bot.error_replies import reply_error
from pipeline.errors import InvalidRequest
from pipeline.models import (
    DESCRIPTION_MAX_CHARS,
    SCENE_MAX_S,
    SCENE_MIN_S,
    TOTAL_MAX_S,
    TOTAL_MIN_S,
    VOICEOVER_MAX_CHARS,
    Job,
)
from pipeline.spoken_text import max_spoken_words

if TYPE_CHECKING:
    from bot.job_actions import JobActions

PICKER_TIMEOUT_S = 600.0  # an ephemeral message's view lives at most 15 minutes anyway


def duration_range(job: Job, index: int) -> tuple[float, float]:
    """The durations scene `index` may take with every other scene unchanged."""
    assert job.storyboard is not None
    others = sum(s.duration for s in job.storyboard.scenes if s.index != index)
    return max(SCENE_MIN_S, round(TOTAL_MIN_S - others, 2)), min(SCENE_MAX_S, round(TOTAL_MAX_S - others, 2))


def parse_duration(text: str) -> float:
    cleaned = text.strip().lower().removesuffix("seconds").removesuffix("s").strip().replace(",", ".")
    try:
        value = float(cleaned)
    except ValueError:
        raise InvalidRequest(
            f"The duration must be a number of seconds, like 4 or 4.5 (got “{cap(text.strip(), 20)}”)."
        ) from None
    if value != value or value in (float("inf"), float("-inf")):  # NaN / inf
        raise InvalidRequest("The duration must be a number of seconds, like 4 or 4.5.")
    return value


class ScenePicker(ui.View):
    """The ephemeral 'which scene?' select."""

    def __init__(self, actions: JobActions, job: Job) -> None:
        super().__init__(timeout=PICKER_TIMEOUT_S)
        assert job.storyboard is not None
        self.actions = actions
        self.job_id = job.id
        select: ui.Select[ScenePicker] = ui.Select(
            custom_id=f"jant:pick:{job.id}",
            placeholder="Choose the scene to change",
            options=[
                discord.SelectOption(
                    label=cap(f"#{s.index} · {s.beat.value} · {s.duration:g}s", 100),
                    description=cap(s.description, 100),
                    value=str(s.index),
                )
                for s in job.storyboard.scenes
            ],
        )
        select.callback = self._picked  # type: ignore[method-assign]
        self.add_item(select)
        self.select = select

    async def _picked(self, interaction: discord.Interaction[Any]) -> None:
        await self.actions.open_scene_editor(interaction, self.job_id, int(self.select.values[0]))

    async def on_error(self, interaction: discord.Interaction[Any], error: Exception, item: ui.Item[Any]) -> None:
        await reply_error(interaction, error, job_id=self.job_id)


class SceneEditModal(ui.Modal):
    def __init__(self, actions: JobActions, job: Job, index: int) -> None:
        assert job.storyboard is not None
        scene = job.storyboard.scenes[index - 1]
        super().__init__(
            title=cap(f"Edit scene {index} · {scene.beat.value}", 45), custom_id=f"jant:scene:{job.id}:{index}"
        )
        self.actions, self.job_id, self.index = actions, job.id, index
        low, high = duration_range(job, index)
        self.description: ui.TextInput[SceneEditModal] = ui.TextInput(
            custom_id="description",
            style=discord.TextStyle.paragraph,
            default=scene.description,
            min_length=1,
            max_length=DESCRIPTION_MAX_CHARS,
        )
        # Optional so a storyboard from before voiceovers can be edited without writing one; clearing an
        # existing line is refused by the model's "not empty" rule with a message that names the scene.
        self.voiceover: ui.TextInput[SceneEditModal] = ui.TextInput(
            custom_id="voiceover",
            style=discord.TextStyle.paragraph,
            default=scene.voiceover or "",
            required=False,
            max_length=VOICEOVER_MAX_CHARS,
        )
        self.duration: ui.TextInput[SceneEditModal] = ui.TextInput(
            custom_id="duration", default=f"{scene.duration:g}", min_length=1, max_length=6
        )
        self.add_item(ui.Label(text="What the scene shows", component=self.description))
        said = (
            f"At most {max_spoken_words(scene.duration)} words in {scene.duration:g} s; "
            "write addresses and prices in words"
        )
        self.add_item(ui.Label(text="What is said", description=cap(said, 100), component=self.voiceover))
        hint = (
            f"{low:g}–{high:g} s keeps the ad at {TOTAL_MIN_S:g}–{TOTAL_MAX_S:g} s"
            if low <= high
            else f"{SCENE_MIN_S:g}–{SCENE_MAX_S:g} s per scene"
        )
        self.add_item(ui.Label(text="Duration in seconds", description=cap(hint, 100), component=self.duration))
        # Only when the request has the team's product photo: without one the choice changes nothing.
        self.photo: ui.Checkbox[SceneEditModal] | None = None
        if job.request.photo:
            self.photo = ui.Checkbox(custom_id="shows_product", default=scene.shows_product)
            about = "Your photo is this scene's picture instead of a generated one"
            self.add_item(ui.Label(text="Show your product photo", description=about, component=self.photo))

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await self.actions.apply_scene_edit(
            interaction,
            self.job_id,
            self.index,
            description=self.description.value,
            duration=self.duration.value,
            voiceover=self.voiceover.value,
            shows_product=None if self.photo is None else self.photo.value,
        )

    # discord.py calls a modal's on_error with (interaction, error); its BaseView annotation adds an item.
    async def on_error(self, interaction: discord.Interaction[Any], error: Exception) -> None:  # type: ignore[override]
        await reply_error(interaction, error, job_id=self.job_id)

"""The Formats button on a finished ad: a teammate who has seen the 9:16 ad asks for its other shapes
(4:5, 1:1, 16:9) and gets them from the same clips and soundtrack, free, posted where they asked.

Pressed, it offers the shapes the ad does not have yet (one missing shape is simply made); the pick goes
through `JobActions.handle` like every button, so who may press and the job's state are checked the
same way as for Re-render. The presser's private note shows each step, then where the files went.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from discord import ui

from bot.display_text import NO_PINGS, shown
from bot.error_replies import reply_ephemeral, reply_error
from bot.result_delivery import FILE_TOO_LARGE, MISSING_PERMISSIONS, format_batches, format_files, formats_text
from pipeline.errors import JantError
from pipeline.events import EventKind, ProgressEvent
from pipeline.format_choice import in_table_order
from pipeline.formats import FORMATS, MASTER_FORMAT, FormatResult, MadeFormat, made_formats
from pipeline.incidents import report_unexpected
from pipeline.models import Job

if TYPE_CHECKING:
    from bot.job_actions import JobActions

log = logging.getLogger(__name__)

PICKER_TIMEOUT_S = 600.0  # an ephemeral message's view lives at most 15 minutes anyway
EDIT_EVERY_S = 2.0  # the presser's progress note: at most one edit this often
FORMATS_PICK = (
    "Which shapes of job `{job_id}` do you want? They are cut from the same footage and soundtrack: nothing "
    "new is generated or charged."
)
FORMATS_STARTED = (
    "🎞️ Cutting job `{job_id}` into {keys} from the same footage and soundtrack: nothing new is generated or "
    "charged. They are posted here when they are done."
)
FORMATS_DONE = "✅ Job `{job_id}` in {keys}: posted below."
FORMATS_NONE_MADE = "⚠️ No new format of job `{job_id}` could be made; the ad itself is unchanged."
FORMATS_FAILED = "⚠️ Cutting job `{job_id}` into other formats failed: {why} The ad itself is unchanged."
FORMATS_NOT_POSTED = (
    "⚠️ Job `{job_id}` was cut into {keys}, but posting them failed: {why}. They are kept on the bot's disk; "
    "`/job id:{job_id}` posts the ad with every format."
)
_REFUSED_UPLOADS = {
    FILE_TOO_LARGE: "Discord refused the files as too large for this server",
    MISSING_PERMISSIONS: "I may not attach files here (give me **Attach Files**)",
}


def listed(keys: Sequence[str]) -> str:
    """ "4:5", "4:5 and 1:1", "4:5, 1:1 and 16:9"."""
    return keys[0] if len(keys) == 1 else ", ".join(keys[:-1]) + " and " + keys[-1]


class FormatsPicker(ui.View):
    """The private choice: any of the missing shapes from the menu, or all of them with one button."""

    def __init__(self, actions: JobActions, job_id: str, missing: Sequence[str]) -> None:
        super().__init__(timeout=PICKER_TIMEOUT_S)
        self.actions = actions
        self.job_id = job_id
        self.missing = tuple(missing)
        select: ui.Select[FormatsPicker] = ui.Select(
            custom_id=f"jant:formatspick:{job_id}", placeholder="Choose the shapes to make",
            min_values=1, max_values=len(self.missing),
            options=[discord.SelectOption(label=k, description=FORMATS[k].where, value=k) for k in self.missing],
        )  # fmt: skip
        select.callback = self._picked  # type: ignore[method-assign]
        self.add_item(select)
        self.select = select
        every: ui.Button[FormatsPicker] = ui.Button(
            label=f"All {len(self.missing)}: {', '.join(self.missing)}", style=discord.ButtonStyle.primary,
            custom_id=f"jant:formatsall:{job_id}",
        )  # fmt: skip
        every.callback = self._all  # type: ignore[method-assign]
        self.add_item(every)

    async def _picked(self, interaction: discord.Interaction[Any]) -> None:
        await self.actions.handle(interaction, "formats", self.job_id, keys=tuple(self.select.values))

    async def _all(self, interaction: discord.Interaction[Any]) -> None:
        await self.actions.handle(interaction, "formats", self.job_id, keys=self.missing)

    async def on_error(self, interaction: discord.Interaction[Any], error: Exception, item: ui.Item[Any]) -> None:
        await reply_error(interaction, error, job_id=self.job_id)


class FormatsFlow:
    """What the Formats button does once `JobActions` has checked the presser and the job's state."""

    def __init__(self, actions: JobActions) -> None:
        self.actions = actions
        self._followers: set[asyncio.Task[None]] = set()  # renders whose files are still to be posted

    async def pressed(self, interaction: discord.Interaction[Any], job: Job, keys: tuple[str, ...] | None) -> None:
        orch = self.actions.orchestrator
        if why := await orch.formats_problem(job, keys):
            await reply_ephemeral(interaction, why)
            return
        if keys is None:
            _, missing = await orch.formats_state(job)
            if len(missing) > 1:
                picker = FormatsPicker(self.actions, job.id, missing)
                await interaction.response.send_message(FORMATS_PICK.format(job_id=job.id), view=picker, ephemeral=True)
                return
            keys = missing
        keys = in_table_order(keys)  # as picked, in the order the menu lists them
        steps: list[str] = []

        def on_event(event: ProgressEvent) -> None:
            if event.job_id == job.id and event.kind is EventKind.FORMATTING and event.detail:
                steps.append(event.detail)

        unsubscribe = orch.bus.subscribe(on_event)  # before it starts: its first step is not missed
        try:
            task = await orch.start_formats(job, keys)
        except BaseException:
            unsubscribe()
            raise
        started = FORMATS_STARTED.format(job_id=job.id, keys=listed(keys))
        where = interaction.channel_id or (int(job.channel_id) if job.channel_id else 0)
        # Followed before the reply: the files are posted even if the presser's note cannot be sent.
        follower = asyncio.create_task(self._follow(interaction, job, task, where, started, steps, unsubscribe))
        self._followers.add(follower)
        follower.add_done_callback(self._followers.discard)
        await reply_ephemeral(interaction, started)

    async def _follow(
        self,
        interaction: discord.Interaction[Any],
        job: Job,
        task: asyncio.Task[list[FormatResult]],
        channel_id: int,
        started: str,
        steps: list[str],
        unsubscribe: Callable[[], None],
    ) -> None:
        """Show the render's latest step in the presser's note, then post what it made."""
        shown_step = None
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=EDIT_EVERY_S)
                if steps and steps[-1] != shown_step and not task.done():
                    shown_step = steps[-1]
                    await self._note(interaction, f"{started}\n⏳ Now {shown_step}…")
        finally:
            unsubscribe()
        if task.cancelled():  # the bot is shutting down: nothing was posted, the button works again later
            return
        if (exc := task.exception()) is not None:
            where = f"job {job.id}: formats"
            why = exc.user_message if isinstance(exc, JantError) else report_unexpected(log, exc, where)
            await self._note(interaction, FORMATS_FAILED.format(job_id=job.id, why=why))
            return
        results = task.result()
        keys = [r.format.key for r in results]
        assert job.final_path is not None
        made = await made_formats(Path(job.final_path), [r.format.key for r in results if r.path])
        limit = self.actions.bot.status_tracker.delivery.upload_limit(job)
        # The job as if these were all it asked for: formats_text's lines then cover exactly this press.
        asked = job.model_copy(update={"request": job.request.model_copy(update={"formats": (MASTER_FORMAT, *keys)})})
        why_not = formats_text(asked, made, limit)
        try:
            posted = await self.post(job, made, why_not, limit, channel_id)
        except discord.HTTPException as refused:
            reason = _REFUSED_UPLOADS.get(refused.code)
            if reason is None and refused.status == 413:
                reason = _REFUSED_UPLOADS[FILE_TOO_LARGE]
            if reason is None:
                reason = report_unexpected(log, refused, f"job {job.id}: posting its formats")
            await self._note(interaction, FORMATS_NOT_POSTED.format(job_id=job.id, keys=listed(keys), why=reason))
            return
        head = (
            FORMATS_DONE.format(job_id=job.id, keys=listed(posted))
            if posted
            else FORMATS_NONE_MADE.format(job_id=job.id)
        )
        await self._note(interaction, "\n".join(t for t in (head, why_not) if t))

    async def post(self, job: Job, made: Sequence[MadeFormat], why_not: str, limit: int, channel_id: int) -> list[str]:
        """Post the formats made in `channel_id`, with the master's batching rules; returns the keys posted."""
        first, later = format_batches(0, made, limit)
        batches = [b for b in (first, *later) if b]
        if not batches:
            return []
        channel = self.actions.bot.get_partial_messageable(
            channel_id, guild_id=int(job.guild_id) if job.guild_id else None
        )
        title = shown(job.storyboard.title, 120) if job.storyboard else "Your ad"
        keys = [m.format.key for batch in batches for m in batch]
        head = f"🎞️ **{title}** · job `{job.id}` · {listed(keys)}, cut from the same footage"
        text = "\n".join(t for t in (head, why_not) if t)
        await channel.send(text, files=await format_files(batches[0], job.id), allowed_mentions=NO_PINGS)
        for batch in batches[1:]:
            shapes = ", ".join(m.format.key for m in batch)
            await channel.send(f"🎞️ Job `{job.id}` · {shapes}", files=await format_files(batch, job.id))
        return keys

    @staticmethod
    async def _note(interaction: discord.Interaction[Any], text: str) -> None:
        """Rewrite the presser's private note (the interaction token lasts 15 minutes: best effort)."""
        try:
            await interaction.edit_original_response(content=text, allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            log.info("could not update the formats note of interaction %s: %s", interaction.id, exc)

"""What the job buttons do: Approve, New storyboard, Edit scene, Cancel, Retry failed, Re-render,
Reroll scene and Formats (bot/formats_button.py).

Every click reloads the job (the live copy while it runs, else SQLite's), checks who clicked and
whether the job is still in a state where the button means something, and only then acts — under a
per-job lock, so two quick clicks never approve (or re-plan) twice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Literal

import discord

from bot.access_policy import may_act, moved_on, refusal
from bot.display_text import NO_PINGS, cap, shown
from bot.error_replies import RESTARTING, reply_ephemeral, reply_error
from bot.formats_button import FormatsFlow
from bot.job_buttons import status_buttons, storyboard_buttons
from bot.reroll_picker import RerollPicker
from bot.scene_editor import SceneEditModal, ScenePicker, duration_range, parse_duration
from bot.server_approver import actor_of, server_approver
from bot.status_view import render_status
from bot.storyboard_embed import COLOUR_APPROVED, render_storyboard
from pipeline.errors import InvalidRequest, JantError
from pipeline.events import EventKind, ProgressEvent
from pipeline.incidents import report_unexpected
from pipeline.models import Job, JobStatus, StageName, utcnow

if TYPE_CHECKING:
    from discord.abc import MessageableChannel

    from bot.app import JantBot
    from pipeline.orchestrator import Orchestrator

log = logging.getLogger(__name__)

# Channels a status message can be posted in as they are (a forum or a category cannot take one).
_POSTABLE = (
    discord.TextChannel, discord.VoiceChannel, discord.StageChannel, discord.DMChannel, discord.GroupChannel,
    discord.PartialMessageable,
)  # fmt: skip

BUSY = "I'm still working on the previous click for this job; try again in a moment."
NO_THREAD = (
    "ℹ️ Progress is posted in this channel, not in a thread ({why}). "
    "Give me **Create Public Threads** for a thread per ad."
)
THREAD_ARCHIVE_MINUTES: Literal[60, 1440, 4320, 10080] = 1440
RERENDER_EDIT_EVERY_S = 2.0  # the presser's progress note: at most one edit this often
RERENDER_STARTED = (
    "🎞️ Re-rendering job `{job_id}` with this server's brand kit as it is now: the scenes on disk are cut "
    "again, nothing new is generated or charged. The new ad is posted here as a new message."
)
RERENDER_DONE = "✅ Re-rendered job `{job_id}`: the new ad is posted below{kept}."
RERENDER_FAILED = "⚠️ The re-render of job `{job_id}` failed: {why} The previous ad is unchanged."


class JobActions:
    def __init__(self, bot: JantBot) -> None:
        self.bot = bot
        self._locks: dict[str, asyncio.Lock] = {}
        self._followers: set[asyncio.Task[None]] = set()  # re-renders whose result is still to be posted
        self.formats_flow = FormatsFlow(self)

    @property
    def orchestrator(self) -> Orchestrator:
        return self.bot.runtime.orchestrator

    # -- dispatch -------------------------------------------------------------------------------

    async def handle(self, interaction: discord.Interaction[Any], action: str, job_id: str, **options: Any) -> None:
        """A button (or `/cancel`, `/reroll`): `action` is the button's name, `options` the command's extras."""
        if await self.refuse_while_closing(interaction):
            return
        with self.bot.in_flight.track():
            await self._handle(interaction, action, job_id, options)

    async def refuse_while_closing(self, interaction: discord.Interaction[Any]) -> bool:
        """While the bot shuts down it starts nothing new: say so instead of half-doing it."""
        if not self.bot.closing:
            return False
        await reply_ephemeral(interaction, RESTARTING)
        return True

    async def _handle(
        self, interaction: discord.Interaction[Any], action: str, job_id: str, options: dict[str, Any]
    ) -> None:
        interaction.extras["job_id"] = job_id
        try:
            job = await self._checked(interaction, action, job_id)
            if job is None:
                return
            lock = self._locks.setdefault(job_id, asyncio.Lock())
            if lock.locked():
                await reply_ephemeral(interaction, BUSY)
                return
            try:
                async with lock:
                    job = await self._checked(interaction, action, job_id)  # fresh, now that we hold the lock
                    if job is not None:
                        await getattr(self, f"_{action}")(interaction, job, **options)
            finally:
                self._locks.pop(job_id, None)  # nobody waits on it: a second click is answered BUSY
        except Exception as exc:
            await reply_error(interaction, exc, job_id=job_id)

    async def _checked(self, interaction: discord.Interaction[Any], action: str, job_id: str) -> Job | None:
        """The job, if this member may do `action` to it now; otherwise answers why and returns None."""
        job = await self.bot.records.load(job_id)
        if job is None or (job.guild_id and interaction.guild_id and job.guild_id != str(interaction.guild_id)):
            await reply_ephemeral(interaction, f"I have no job `{job_id}` any more; `/jobs` lists yours.")
            return None
        approver = await server_approver(self.bot, interaction)
        if not may_act(job, actor_of(interaction), approver):
            await reply_ephemeral(interaction, refusal(job, action, approver))
            return None
        if why := moved_on(job, action):
            await reply_ephemeral(interaction, why)
            return None
        return job

    # -- the storyboard's buttons ---------------------------------------------------------------

    async def _approve(self, interaction: discord.Interaction[Any], job: Job) -> None:
        user = interaction.user
        tracker = self.bot.status_tracker
        # Approve first: a quota refusal must leave the storyboard untouched. Events the job emits
        # before its status message exists are held by the tracker and shown once it is attached.
        tracker.expect(job.id)
        try:
            await self.orchestrator.approve(job, approved_by=str(user.id))
        except BaseException:
            tracker.forget(job.id)
            raise
        embed = render_storyboard(job, self.bot.settings, banner=f"✅ Approved by {user.mention} · generating now.")
        embed.colour = COLOUR_APPROVED
        await interaction.response.edit_message(
            embed=embed, view=storyboard_buttons(job.id, disabled=True), allowed_mentions=NO_PINGS
        )

        home, thread, note = await self._status_home(interaction, job)
        ui: dict[str, Any] = {"approved_by": user.id}
        if thread is not None:
            ui["thread_id"] = thread.id
        snapshot = job.model_copy(deep=True)
        try:
            embed, buttons = render_status(snapshot, utcnow()).embed, status_buttons(snapshot)
            message = await (home.send(embed=embed) if buttons is None else home.send(embed=embed, view=buttons))
        except discord.HTTPException as exc:
            tracker.forget(job.id)
            log.warning("job %s: could not post the status message in %s: %s", job.id, home.id, exc)
            await self.bot.records.save_ui(job, **ui)
            await reply_ephemeral(
                interaction,
                f"I can't post progress here ({exc.text or exc.status}). The ad is being made anyway: "
                f"`/job id:{job.id}` shows how it is going and posts the result.",
            )
            return
        tracker.attach(job.id, home.id, message.id)  # before save_ui: events then carry the ids too
        await self.bot.records.save_ui(job, status_channel_id=home.id, status_message_id=message.id, **ui)
        if note:
            await reply_ephemeral(interaction, note)

    async def _status_home(
        self, interaction: discord.Interaction[Any], job: Job
    ) -> tuple[MessageableChannel, discord.Thread | None, str | None]:
        """A thread from the storyboard message when the bot may open one, else the channel itself
        (and a private note saying why, so the requester knows where to look and what to grant)."""
        channel = interaction.channel
        if isinstance(channel, discord.Thread):
            return channel, None, None
        note = None
        perms = interaction.app_permissions
        if isinstance(channel, discord.TextChannel) and interaction.message is not None:
            if perms.create_public_threads and perms.send_messages_in_threads:
                title = job.storyboard.title if job.storyboard else job.request.product
                try:
                    thread = await interaction.message.create_thread(
                        name=cap(f"Ad {job.id} · {discord.utils.escape_mentions(title)}", 100),
                        auto_archive_duration=THREAD_ARCHIVE_MINUTES,
                    )
                    return thread, thread, None
                except discord.HTTPException as exc:
                    log.warning("job %s: no thread (%s); posting progress in the channel", job.id, exc)
                    note = NO_THREAD.format(why=exc.text or exc.status)
            else:
                note = NO_THREAD.format(why="I may not create public threads or talk in them here")
        if isinstance(channel, _POSTABLE):
            return channel, None, note
        return self.bot.get_partial_messageable(interaction.channel_id or 0, guild_id=interaction.guild_id), None, note

    async def _replan(self, interaction: discord.Interaction[Any], job: Job) -> None:
        user = interaction.user
        settings = self.bot.settings
        waiting = render_storyboard(job, settings, banner="⏳ Writing a new storyboard…")
        await interaction.response.edit_message(
            embed=waiting, view=storyboard_buttons(job.id, disabled=True), allowed_mentions=NO_PINGS
        )
        take = (job.ui.replans or 0) + 1
        try:
            await self.orchestrator.plan(job, feedback=f"a different take (#{take})")
        except JantError as exc:
            banner = f"⚠️ No new storyboard: {exc.user_message} The previous one is kept."
        else:
            await self.bot.records.save_ui(job, replans=take)
            banner = f"🔄 New storyboard (take {take + 1}) written for {user.mention}."
        budget = await self.orchestrator.spend_caps.left(job.guild_id)
        embed = render_storyboard(job, settings, banner=banner, budget=budget)
        await interaction.edit_original_response(
            embed=embed, view=storyboard_buttons(job.id), allowed_mentions=NO_PINGS
        )

    async def _edit(self, interaction: discord.Interaction[Any], job: Job) -> None:
        await interaction.response.send_message(
            "Which scene do you want to change?", view=ScenePicker(self, job), ephemeral=True
        )

    async def open_scene_editor(self, interaction: discord.Interaction[Any], job_id: str, index: int) -> None:
        if await self.refuse_while_closing(interaction):
            return
        with self.bot.in_flight.track():
            await self._open_scene_editor(interaction, job_id, index)

    async def _open_scene_editor(self, interaction: discord.Interaction[Any], job_id: str, index: int) -> None:
        interaction.extras["job_id"] = job_id
        job = await self._checked(interaction, "edit", job_id)
        if job is None:
            return
        assert job.storyboard is not None
        if not 1 <= index <= len(job.storyboard.scenes):
            raise InvalidRequest(f"There is no scene {index} any more; press Edit scene again.")
        await interaction.response.send_modal(SceneEditModal(self, job, index))

    async def apply_scene_edit(
        self,
        interaction: discord.Interaction[Any],
        job_id: str,
        index: int,
        *,
        description: str,
        duration: str,
        voiceover: str | None = None,
        shows_product: bool | None = None,
    ) -> None:
        interaction.extras["job_id"] = job_id
        if await self.refuse_while_closing(interaction):
            return
        lock = self._locks.setdefault(job_id, asyncio.Lock())
        if lock.locked():
            await reply_ephemeral(interaction, BUSY)
            return
        with self.bot.in_flight.track():
            try:
                async with lock:
                    job = await self._checked(interaction, "edit", job_id)
                    if job is not None:
                        await self._apply_scene_edit(
                            interaction, job, index, description, duration, voiceover, shows_product
                        )
            finally:
                self._locks.pop(job_id, None)

    async def _apply_scene_edit(
        self,
        interaction: discord.Interaction[Any],
        job: Job,
        index: int,
        description: str,
        duration: str,
        voiceover: str | None = None,
        shows_product: bool | None = None,
    ) -> None:
        assert job.storyboard is not None
        if not 1 <= index <= len(job.storyboard.scenes):
            raise InvalidRequest(f"There is no scene {index} any more; press Edit scene again.")
        seconds = parse_duration(duration)
        before = job.storyboard.scenes[index - 1]
        text = description.strip()
        line = None if voiceover is None else voiceover.strip()
        try:
            await self.orchestrator.edit_scene(
                job,
                index,
                description=text if text != before.description else None,
                duration=seconds,
                voiceover=line if line != (before.voiceover or "") else None,
                shows_product=shows_product if shows_product != before.shows_product else None,
            )
        except InvalidRequest as exc:
            low, high = duration_range(job, index)
            hint = (
                f" With the other scenes as they are, scene {index} can be {low:g}–{high:g} s." if low <= high else ""
            )
            raise InvalidRequest(f"{exc}{hint} Nothing was changed.") from exc
        assert job.storyboard is not None
        said = job.storyboard.scenes[index - 1].voiceover
        heard = f" Its line now says “{shown(said, 300)}”." if said and said != before.voiceover else ""
        if shows_product is not None and shows_product != before.shows_product:
            heard += " It shows your product photo." if shows_product else " Its picture is generated."
        await reply_ephemeral(
            interaction,
            f"✏️ Scene {index} is now {seconds:g} s; the ad runs {job.storyboard.total_duration:g} s.{heard}",
        )
        await self.edit_storyboard_message(job, banner=f"✏️ Scene {index} edited by {interaction.user.mention}.")

    async def edit_storyboard_message(self, job: Job, *, banner: str | None = None) -> None:
        """Rewrite the storyboard message with the bot token (the /makead token may have expired)."""
        channel_id, message_id = job.ui.storyboard_channel_id, job.ui.storyboard_message_id
        if not channel_id or not message_id:
            return
        channel = self.bot.get_partial_messageable(channel_id, guild_id=_int(job.guild_id))
        budget = (
            await self.orchestrator.spend_caps.left(job.guild_id) if job.status is JobStatus.AWAITING_APPROVAL else None
        )
        embed = render_storyboard(job, self.bot.settings, banner=banner, budget=budget)
        view = storyboard_buttons(job.id, disabled=job.status is not JobStatus.AWAITING_APPROVAL)
        try:
            await channel.get_partial_message(message_id).edit(embed=embed, view=view, allowed_mentions=NO_PINGS)
        except discord.NotFound:
            message = await channel.send(embed=embed, view=view)
            await self.bot.records.save_ui(job, storyboard_message_id=message.id)

    # -- buttons on either message --------------------------------------------------------------

    async def _cancel(self, interaction: discord.Interaction[Any], job: Job) -> None:
        """From a button, or from `/cancel id:` (then the storyboard message is edited with the bot token)."""
        user = interaction.user
        if job.status is JobStatus.AWAITING_APPROVAL:
            await self.orchestrator.cancel(job, by=str(user.id))
            banner = f"⏹️ Cancelled by {user.mention}. Nothing was generated."
            if interaction.type is discord.InteractionType.component:
                embed = render_storyboard(job, self.bot.settings, banner=banner)
                await interaction.response.edit_message(
                    embed=embed, view=storyboard_buttons(job.id, disabled=True), allowed_mentions=NO_PINGS
                )
                return
            await reply_ephemeral(interaction, f"⏹️ Cancelled job `{job.id}` before anything was generated.")
            await self.edit_storyboard_message(job, banner=banner)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.orchestrator.cancel(job, by=str(user.id))
        await interaction.followup.send(
            f"⏹️ Stopped job `{job.id}`. Finished scenes are kept; nothing more will be generated or charged.",
            ephemeral=True,
        )

    async def _retry(self, interaction: discord.Interaction[Any], job: Job) -> None:
        failed = [str(s.index) for s in job.scenes if not s.done]
        await self.orchestrator.reserve_rerun(job)  # over a budget: refused before the status message revives
        await self._again(job)
        await self.orchestrator.retry_failed(job)
        which = f"scene{'s' if len(failed) != 1 else ''} {', '.join(failed)}"
        await reply_ephemeral(
            interaction,
            f"🔁 Re-making {which} of job `{job.id}`; finished scenes are reused. The status message follows along.",
        )

    async def _reroll(
        self, interaction: discord.Interaction[Any], job: Job, *, scene: int | None = None,
        part: StageName | None = None,
    ) -> None:  # fmt: skip
        if scene is None or part is None:  # the Reroll scene button: first, which scene and what of it
            await interaction.response.send_message(
                "Which scene do you want to make again?", view=RerollPicker(self, job), ephemeral=True
            )
            return
        self.orchestrator.check_reroll(job, scene, part)  # before anything changes: a refusal leaves no trace
        await self.orchestrator.reserve_rerun(job, scene, part)
        await self._again(job)
        await self.orchestrator.reroll_scene(job, scene, part)
        what = "a new seed image and clip" if part is StageName.SEED else "a new clip from the same seed image"
        await reply_ephemeral(
            interaction,
            f"🎲 Re-rolling scene {scene} of job `{job.id}`: {what}. The other scenes are kept and the ad is "
            "joined again; the status message follows along.",
        )

    async def _rerender(self, interaction: discord.Interaction[Any], job: Job) -> None:
        """The Re-render button or `/rerender id:`: compose the ad again with the server's kit now and
        post it as a new message where it was asked for; the presser sees the progress privately."""
        if why := await self.orchestrator.rerender_problem(job):
            await reply_ephemeral(interaction, why)
            return
        kit = await self.bot.runtime.store.guild_brand(job.guild_id)
        task = await self.orchestrator.start_rerender(job, brand=kit)
        await reply_ephemeral(interaction, RERENDER_STARTED.format(job_id=job.id))
        where = interaction.channel_id or (int(job.channel_id) if job.channel_id else 0)
        follower = asyncio.create_task(self._follow_rerender(interaction, job.id, task, where))
        self._followers.add(follower)
        follower.add_done_callback(self._followers.discard)

    async def _follow_rerender(
        self, interaction: discord.Interaction[Any], job_id: str, task: asyncio.Task[Job], channel_id: int
    ) -> None:
        steps: list[str] = []
        kept: list[str] = []  # the name the previous final is kept under

        def on_event(event: ProgressEvent) -> None:
            if event.job_id == job_id and event.detail:
                if event.kind is EventKind.RERENDERING:
                    steps.append(event.detail)
                elif event.kind is EventKind.RERENDERED:
                    kept.append(event.detail)

        unsubscribe = self.orchestrator.bus.subscribe(on_event)
        shown_step = None
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=RERENDER_EDIT_EVERY_S)
                if steps and steps[-1] != shown_step and not task.done():
                    shown_step = steps[-1]
                    await self._note(interaction, f"{RERENDER_STARTED.format(job_id=job_id)}\n⏳ Now {shown_step}…")
        finally:
            unsubscribe()
        if task.cancelled():  # the bot is shutting down: the old ad stays, the button works again later
            return
        if (exc := task.exception()) is not None:
            why = (
                exc.user_message
                if isinstance(exc, JantError)
                else report_unexpected(log, exc, f"job {job_id}: re-render")
            )
            await self._note(interaction, RERENDER_FAILED.format(job_id=job_id, why=why))
            return
        job = task.result()
        try:
            await self.bot.status_tracker.delivery.deliver(job, channel_id)
        except Exception as posting:
            why = report_unexpected(log, posting, f"job {job_id}: posting the re-rendered ad")
            await self._note(interaction, f"⚠️ Job `{job_id}` was re-rendered, but posting it failed: {why}. "
                                          f"`/job id:{job_id}` posts it.")  # fmt: skip
            return
        previous = f"; the previous one is kept as `{kept[0]}`" if kept else ""
        await self._note(interaction, RERENDER_DONE.format(job_id=job_id, kept=previous))

    @staticmethod
    async def _note(interaction: discord.Interaction[Any], text: str) -> None:
        """Rewrite the presser's private note (the interaction token lasts 15 minutes: best effort)."""
        try:
            await interaction.edit_original_response(content=text, allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            log.info("could not update the re-render note of interaction %s: %s", interaction.id, exc)

    async def _formats(
        self, interaction: discord.Interaction[Any], job: Job, *, keys: tuple[str, ...] | None = None
    ) -> None:
        """The Formats button (then `keys` is None: which shapes is asked first) or its pick."""
        await self.formats_flow.pressed(interaction, job, keys)

    async def _again(self, job: Job) -> None:
        """The job runs again: its status message comes back to life and its new result must be posted."""
        self.bot.status_tracker.revive(job.id)
        await self.bot.records.save_ui(job, settled=None, delivered=None, status_unavailable=None)


def _int(value: str | None) -> int | None:
    return int(value) if value else None

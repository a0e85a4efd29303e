"""Keeps each job's status message in step with the orchestrator's progress events.

The orchestrator publishes a job snapshot on every step; this subscriber only hands the snapshot to
the edit throttle (so a burst of events costs one edit every couple of seconds) and never awaits
Discord itself, so a slow or rate-limited Discord cannot stall the pipeline. When a job ends, the
final state is flushed first and then the result is delivered next to the status message; only then
is the job marked `settled` in `job.ui`. A bot that stopped between the end of a job and that mark
(a crash, a kill -9) writes the final state and posts the result when it starts again.

The status message is a normal message edited with the bot token (interaction tokens die after
15 minutes). If someone deletes it, the next edit posts it again and remembers the new id; if its
thread is deleted, progress moves to the channel the ad was asked for in; if that is gone too, the
job goes on without a status message and `/job id:` shows it. A heartbeat re-renders running jobs
every so often, so elapsed time, ETA and the place in the queue move even when no event arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import discord

from bot.display_text import NO_PINGS
from bot.edit_throttle import EditThrottle
from bot.job_buttons import status_buttons
from bot.result_delivery import DELIVERY_FAILED, channel_gone, delivery_failed_text
from bot.status_edit_gate import Where
from bot.status_view import render_status
from pipeline.config import DiscordSettings
from pipeline.events import EventKind, ProgressEvent
from pipeline.incidents import report_unexpected
from pipeline.models import Job, JobStatus, utcnow

if TYPE_CHECKING:
    from bot.app import JantBot
    from bot.result_delivery import ResultDelivery

log = logging.getLogger(__name__)

UNKNOWN_MESSAGE = 10008
FINAL_FLUSH_TIMEOUT_S = 60.0
# A job that ended this recently without being settled gets its final state and result on start-up;
# older ones (say, from before the bot kept this mark) are left alone rather than re-posted.
RESETTLE_WITHIN = timedelta(days=2)
ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value, JobStatus.COMPOSING.value)
ENDED = (JobStatus.COMPLETED.value, JobStatus.PARTIAL.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value)


@dataclass
class StatusTarget:
    channel_id: int
    message_id: int


_HEARTBEAT_S: float = DiscordSettings.model_fields["status_heartbeat_s"].default  # JANT_STATUS_HEARTBEAT_S


class StatusTracker:
    def __init__(
        self, bot: JantBot, throttle: EditThrottle[Job], delivery: ResultDelivery, *, heartbeat_s: float = _HEARTBEAT_S
    ) -> None:
        self.bot = bot
        self.throttle = throttle
        self.delivery = delivery
        self.heartbeat_s = heartbeat_s
        self._targets: dict[str, StatusTarget] = {}
        self._gone: dict[str, str] = {}  # job id → why its status message cannot be shown any more
        self._tasks: set[asyncio.Task[Any]] = set()
        self._held: dict[str, ProgressEvent | None] = {}  # latest event of jobs whose message is being posted
        self._heartbeat: asyncio.Task[None] | None = None

    # -- where the status messages are ------------------------------------------------------------

    def expect(self, job_id: str) -> None:
        """A status message for `job_id` is about to be posted: hold its events until `attach`."""
        self._held.setdefault(job_id, None)

    def forget(self, job_id: str) -> None:
        self._held.pop(job_id, None)

    def attach(self, job_id: str, channel_id: int, message_id: int, *, just_posted: bool = True) -> None:
        self._gone.pop(job_id, None)
        self._targets[job_id] = StatusTarget(int(channel_id), int(message_id))
        if just_posted:
            self.throttle.note_write(job_id)
        held = self._held.pop(job_id, None)
        if held is not None:  # the job moved on while its status message was being posted
            self.on_event(held)

    def revive(self, job_id: str) -> None:
        """The job runs again (Retry failed, a re-roll): try its status message again."""
        self._gone.pop(job_id, None)

    def where(self, job_id: Hashable) -> Where | None:
        """Where the status message of `job_id` is now (the shared edit gate's budgets are per message)."""
        target = self._targets.get(str(job_id))
        return Where(target.channel_id, target.message_id) if target is not None else None

    def target(self, job: Job) -> StatusTarget | None:
        if job.id in self._gone:
            return None
        target = self._targets.get(job.id)
        if target is None and job.ui.status_channel_id and job.ui.status_message_id:
            target = self._targets[job.id] = StatusTarget(job.ui.status_channel_id, job.ui.status_message_id)
        return target

    async def reattach_unfinished(self) -> int:
        """After a restart: find the status messages of jobs that are still going."""
        count = 0
        for job in await self.bot.runtime.store.list(statuses=list(ACTIVE), limit=10_000):
            if self.target(job) is not None:
                count += 1
        return count

    async def settle_unfinished(self) -> int:
        """After a restart: jobs that ended while the bot was down (or just before it stopped) and whose
        final state or result never reached Discord get both now."""
        cutoff = utcnow() - RESETTLE_WITHIN
        count = 0
        for job in await self.bot.runtime.store.list(statuses=list(ENDED), limit=500):
            if job.ui.settled or job.finished_at is None or job.finished_at < cutoff:
                continue
            if self.target(job) is None:
                continue
            log.info("job %s ended (%s) without its result reaching Discord; posting it now", job.id, job.status)
            self._submit(job)
            self._spawn(self._finish(job), f"finish-{job.id}")
            count += 1
        return count

    # -- events -------------------------------------------------------------------------------------

    def on_event(self, event: ProgressEvent) -> None:
        if event.kind in (EventKind.RERENDERING, EventKind.RERENDERED, EventKind.FORMATTING, EventKind.FORMATTED):
            return  # the ad's status does not change: the presser's own note follows a re-render or formats
        job = event.job
        if self.target(job) is None:
            if job.id in self._held:
                self._held[job.id] = event  # latest wins; it carries the whole job
            elif job.id in self._gone and event.kind is EventKind.JOB_FINISHED:
                self._spawn(self._finish(job), f"finish-{job.id}")  # the result may still find a channel
            return  # not approved through Discord (or its status could not be posted)
        self._submit(job)
        if event.kind is EventKind.JOB_FINISHED:
            self._spawn(self._finish(job), f"finish-{job.id}")

    def _submit(self, job: Job) -> None:
        job_id = job.id

        async def write(snapshot: Job) -> None:
            await self._write(job_id, snapshot)

        self.throttle.submit(job_id, job, write)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, job: Job) -> None:
        try:
            if not await self.throttle.flush(job.id, wait_s=FINAL_FLUSH_TIMEOUT_S):
                log.warning("job %s: the final status edit is still pending; delivering anyway", job.id)
            stored = await self.bot.runtime.store.get(job.id)
            ui = stored.ui if stored is not None else job.ui
            if job.status in (JobStatus.COMPLETED, JobStatus.PARTIAL) and not ui.delivered:
                target = self._targets.get(job.id)
                home = target.channel_id if target is not None else ui.status_channel_id or job.channel_id
                if home:
                    try:
                        await self.delivery.deliver(job, int(home))
                    except Exception as exc:
                        await self._delivery_failed(job, int(home), exc)
            await self.bot.records.save_ui(job, settled=True)
        except Exception:
            log.exception("job %s: could not finish its Discord side", job.id)
        finally:
            # Nothing more to edit unless someone presses Retry failed; the ids are in job.ui for that.
            self._targets.pop(job.id, None)

    async def _delivery_failed(self, job: Job, home: int, exc: Exception) -> None:
        """Posting crashed. The ad is made and intact on disk, so the job stays done (marking it failed
        would hide a good ad, and `/job id:` posts only finished ones); what failed is recorded beside
        it, logged once under an id, and said on the status message and in the channel."""
        reason = report_unexpected(log, exc, f"job {job.id}: posting the finished ad")
        job.ui = await self.bot.records.save_ui(job, delivered=DELIVERY_FAILED, delivery_error=reason)
        await self.bot.runtime.store.event(job, "delivery_failed", detail=reason)
        if self.target(job) is not None:
            self._submit(job)
            await self.throttle.flush(job.id, wait_s=FINAL_FLUSH_TIMEOUT_S)
        channel = self.bot.get_partial_messageable(home, guild_id=_int(job.guild_id))
        try:
            await channel.send(delivery_failed_text(job, reason), allowed_mentions=NO_PINGS)
        except discord.HTTPException as send_exc:
            log.warning("job %s: could not say that posting failed: %s", job.id, send_exc)

    async def _write(self, job_id: str, job: Job) -> None:
        target = self._targets.get(job_id)
        if target is None:
            return  # its channel went away since this edit was queued
        render = render_status(job, utcnow(), queue_position=self.bot.runtime.orchestrator.queue_position(job))
        view = status_buttons(job)
        channel = self.bot.get_partial_messageable(target.channel_id, guild_id=_int(job.guild_id))
        try:
            await channel.get_partial_message(target.message_id).edit(
                embed=render.embed, view=view, allowed_mentions=NO_PINGS
            )
            return
        except discord.NotFound as exc:
            if exc.code != UNKNOWN_MESSAGE and not channel_gone(exc):
                raise
            gone_channel = exc.code != UNKNOWN_MESSAGE
        except discord.Forbidden as exc:
            if not channel_gone(exc):
                raise
            gone_channel = True
        if not gone_channel:
            log.info("job %s: status message %s was deleted; posting it again", job_id, target.message_id)
        else:
            fallback = int(job.channel_id) if job.channel_id else None
            if fallback is None or fallback == target.channel_id:
                await self._give_up(job, "its channel was deleted (or I can no longer see it)")
                return
            log.info("job %s: its thread is gone; posting progress in the channel", job_id)
            channel = self.bot.get_partial_messageable(fallback, guild_id=_int(job.guild_id))
        try:
            message = await (
                channel.send(embed=render.embed) if view is None else channel.send(embed=render.embed, view=view)
            )
        except discord.HTTPException as exc:
            if not channel_gone(exc):
                raise
            await self._give_up(job, "its thread and channel were deleted (or I can no longer see them)")
            return
        self._targets[job_id] = StatusTarget(channel.id, message.id)
        await self.bot.records.save_ui(job, status_channel_id=channel.id, status_message_id=message.id)

    async def _give_up(self, job: Job, why: str) -> None:
        """No place left to show progress: the job goes on, `/job id:` shows it and posts the result."""
        log.warning("job %s: no status message any more, %s; the job goes on", job.id, why)
        self._gone[job.id] = why
        self._targets.pop(job.id, None)
        await self.bot.records.save_ui(job, status_unavailable=why)

    # -- heartbeat ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._heartbeat is None and self.heartbeat_s > 0:
            self._heartbeat = asyncio.create_task(self._beat(), name="status-heartbeat")

    async def _beat(self) -> None:
        orchestrator = self.bot.runtime.orchestrator
        while True:
            await asyncio.sleep(self.heartbeat_s)
            for job_id in list(self._targets):
                live = orchestrator.live_job(job_id)
                if live is None or live.status.is_terminal or self.throttle.pending(job_id):
                    continue
                self._submit(live.model_copy(deep=True))

    async def close(self, grace_s: float = 5.0) -> None:
        """Write pending edits and let result uploads in flight finish (bounded), then stop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self.throttle.close(grace_s=max(0.1, grace_s * 0.6))
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=max(0.1, deadline - loop.time()))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


def _int(value: str | None) -> int | None:
    return int(value) if value else None

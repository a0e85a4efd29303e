"""Keeps each job's status message in step with the orchestrator's progress events.

The orchestrator publishes a job snapshot on every step; this subscriber only hands the snapshot to
the edit throttle (so a burst of events costs one edit every couple of seconds) and never awaits
Discord itself, so a slow or rate-limited Discord cannot stall the pipeline. When a job ends, the
final state is flushed first and then the result is delivered next to the status message.

The status message is a normal message edited with the bot token (interaction tokens die after
15 minutes). If someone deletes it, the next edit posts it again and remembers the new id.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord

from bot.display_text import NO_PINGS
from bot.edit_throttle import EditThrottle
from bot.job_buttons import status_buttons
from bot.status_view import render_status
from pipeline.events import EventKind, ProgressEvent
from pipeline.models import Job, JobStatus, utcnow

if TYPE_CHECKING:
    from bot.app import JantBot
    from bot.result_delivery import ResultDelivery

log = logging.getLogger(__name__)

UNKNOWN_MESSAGE, UNKNOWN_CHANNEL = 10008, 10003
FINAL_FLUSH_TIMEOUT_S = 60.0


@dataclass
class StatusTarget:
    channel_id: int
    message_id: int


class StatusTracker:
    def __init__(self, bot: JantBot, throttle: EditThrottle[Job], delivery: ResultDelivery) -> None:
        self.bot = bot
        self.throttle = throttle
        self.delivery = delivery
        self._targets: dict[str, StatusTarget] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._held: dict[str, ProgressEvent | None] = {}  # latest event of jobs whose message is being posted

    # -- where the status messages are ------------------------------------------------------------

    def expect(self, job_id: str) -> None:
        """A status message for `job_id` is about to be posted: hold its events until `attach`."""
        self._held.setdefault(job_id, None)

    def forget(self, job_id: str) -> None:
        self._held.pop(job_id, None)

    def attach(self, job_id: str, channel_id: int, message_id: int, *, just_posted: bool = True) -> None:
        self._targets[job_id] = StatusTarget(int(channel_id), int(message_id))
        if just_posted:
            self.throttle.note_write(job_id)
        held = self._held.pop(job_id, None)
        if held is not None:  # the job moved on while its status message was being posted
            self.on_event(held)

    def target(self, job: Job) -> StatusTarget | None:
        target = self._targets.get(job.id)
        if target is None and job.ui.get("status_channel_id") and job.ui.get("status_message_id"):
            target = self._targets[job.id] = StatusTarget(
                int(job.ui["status_channel_id"]), int(job.ui["status_message_id"])
            )
        return target

    async def reattach_unfinished(self) -> int:
        """After a restart: find the status messages of jobs that are still going."""
        statuses = [JobStatus.QUEUED.value, JobStatus.RUNNING.value, JobStatus.COMPOSING.value]
        count = 0
        for job in await self.bot.runtime.store.list(statuses=statuses, limit=10_000):
            if self.target(job) is not None:
                count += 1
        return count

    # -- events -------------------------------------------------------------------------------------

    def on_event(self, event: ProgressEvent) -> None:
        job = event.job
        if self.target(job) is None:
            if job.id in self._held:
                self._held[job.id] = event  # latest wins; it carries the whole job
            return  # not approved through Discord (or its status could not be posted)
        self.throttle.submit(job.id, job, lambda snapshot, job_id=job.id: self._write(job_id, snapshot))
        if event.kind is EventKind.JOB_FINISHED:
            self._spawn(self._finish(job), f"finish-{job.id}")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, job: Job) -> None:
        try:
            if not await self.throttle.flush(job.id, wait_s=FINAL_FLUSH_TIMEOUT_S):
                log.warning("job %s: the final status edit is still pending; delivering anyway", job.id)
            target = self._targets.get(job.id)
            if target is not None and job.status in (JobStatus.COMPLETED, JobStatus.PARTIAL):
                await self.delivery.deliver(job, target.channel_id)
        except Exception:
            log.exception("job %s: could not finish its Discord side", job.id)
        finally:
            # Nothing more to edit unless someone presses Retry failed; the ids are in job.ui for that.
            self._targets.pop(job.id, None)

    async def _write(self, job_id: str, job: Job) -> None:
        target = self._targets[job_id]
        render = render_status(job, utcnow(), queue_position=self.bot.runtime.orchestrator.queue_position(job))
        view = status_buttons(job)
        channel = self.bot.get_partial_messageable(target.channel_id, guild_id=_int(job.guild_id))
        try:
            await channel.get_partial_message(target.message_id).edit(
                embed=render.embed, view=view, allowed_mentions=NO_PINGS
            )
        except discord.NotFound as exc:
            if exc.code == UNKNOWN_MESSAGE:
                log.info("job %s: status message %s was deleted; posting it again", job_id, target.message_id)
            elif exc.code == UNKNOWN_CHANNEL and job.channel_id and int(job.channel_id) != target.channel_id:
                log.info("job %s: its thread is gone; posting progress in the channel", job_id)
                channel = self.bot.get_partial_messageable(int(job.channel_id), guild_id=_int(job.guild_id))
            else:
                raise
            message = await channel.send(embed=render.embed, view=view)
            self._targets[job_id] = StatusTarget(channel.id, message.id)
            await self.bot.records.save_ui(job, status_channel_id=channel.id, status_message_id=message.id)

    async def close(self, grace_s: float = 5.0) -> None:
        """Write pending edits and let result uploads in flight finish (bounded), then stop."""
        await self.throttle.close()
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


def _int(value: str | None) -> int | None:
    return int(value) if value else None

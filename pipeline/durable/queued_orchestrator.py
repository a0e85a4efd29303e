"""The orchestrator of a front end that runs no job itself (`jant makead --no-worker`, `jant bot --no-worker`).

Everything before a job runs is the parent's, in this process: the request's checks, planning, the
storyboard, approval with its quotas, brand kit and budget hold. Running is not: `start` (which
approval, Retry failed and a re-roll all go through) queues the job's run for the workers, and the
job's progress comes back through the database (`DatabaseEvents`) on this orchestrator's own bus,
where the terminal's bars or the bot's status tracker listen as they do when the job runs here.
"""

from __future__ import annotations

import asyncio
import logging

from pipeline.action_rules import Action
from pipeline.config import Settings
from pipeline.database_events import DatabaseEvents
from pipeline.durable.job_queue import JobQueue
from pipeline.errors import InvalidRequest
from pipeline.events import EventKind, ProgressEvent
from pipeline.models import Job, JobStatus
from pipeline.orchestrator import Orchestrator, _check_allowed
from pipeline.providers.base import Providers
from pipeline.store import JobStore
from pipeline.task_stop import cancel_and_wait

log = logging.getLogger(__name__)

ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.COMPOSING)


class QueuedOrchestrator(Orchestrator):
    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        providers: Providers,
        queue: JobQueue,
    ) -> None:
        super().__init__(settings, store, providers)
        self.queue = queue
        self.database_events = DatabaseEvents(store, self.bus)
        self._closed = False

    def follow_active_jobs(self) -> None:
        """Follow every job being made, not only the ones this process starts: a restarted bot's status
        messages keep moving, whoever started their jobs."""
        self.database_events.discover = ACTIVE_STATUSES
        self.database_events.start()

    def start(self, job: Job) -> asyncio.Task[Job]:
        """Queue the job's next run for the workers; the task follows it and ends with it (the job as
        stored then). Cancelling the task stops the following, not the job."""
        task = self._tasks.get(job.id)
        if task is not None and not task.done():
            return task
        task = asyncio.create_task(self._queue_and_follow(job), name=f"follow-{job.id}")
        self._tasks[job.id] = task
        task.add_done_callback(lambda t: self._forget(job.id, t))
        return task

    async def _queue_and_follow(self, job: Job) -> Job:
        ended: asyncio.Future[Job] = asyncio.get_running_loop().create_future()

        def on_event(event: ProgressEvent) -> None:
            if event.job_id == job.id and event.kind is EventKind.JOB_FINISHED and not ended.done():
                ended.set_result(event.job)

        unsubscribe = self.bus.subscribe(on_event)
        try:
            run_id = await self.queue.enqueue(job.id)
            log.info("job %s queued for the workers as run %s", job.id, run_id)
            self.database_events.watch(job.id, known=job)
            return await ended
        finally:
            unsubscribe()

    def live_job(self, job_id: str) -> Job | None:
        return self.database_events.latest(job_id)

    async def resume_all(self) -> list[asyncio.Task[Job]]:
        """The workers resume the jobs (DBOS recovery); this process runs none."""
        return []

    async def cancel(self, job: Job, *, by: str | None = None) -> Job:
        """A job no worker has taken yet is cancelled here (its run cancelled in DBOS first, so no worker
        takes it after). One a worker is making cannot be stopped from this process yet: it says so."""
        _check_allowed(job, Action.CANCEL)
        if await self.queue.cancel_waiting(job.id) is False:
            raise InvalidRequest(
                f"Job {job.id} is being made by a worker, and a job cannot be cancelled from another "
                "process yet: it will finish there."
            )
        task = self._tasks.get(job.id)
        if task is not None and not task.done():
            await cancel_and_wait(task)
        self.database_events.forget(job.id)  # `_after_cancel` tells its end
        self._user_cancelled.add(job.id)
        await self._after_cancel(job)  # nothing runs: its stages are marked cancelled, its hold settled
        await self.store.event(job, "cancelled", detail=by)
        return job

    async def shutdown(self, grace_s: float = 8.0) -> None:
        """Stop following; the jobs go on on the workers."""
        await self.database_events.close()
        await super().shutdown(grace_s)
        if not self._closed:
            self._closed = True
            await self.queue.close()

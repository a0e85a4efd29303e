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
from pipeline.durable import engine
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
# How long a cancel waits for the worker making the job to end it, before doing it from here; how often
# it looks.
WORKER_CANCEL_WAIT_S = 30.0
_CANCEL_POLL_S = 0.25


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
        self.worker_cancel_wait_s = WORKER_CANCEL_WAIT_S

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
        """Cancel a job this process does not run. A request is recorded on the job first (the event
        `cancel_requested`, naming its live run), so that whichever worker runs that run — or takes it
        from the queue in the same instant — cancels it as a local cancel does: its predictions in flight
        cancelled on Replicate, its stages and the job marked cancelled, its workflows cancelled in DBOS.
        Then:

        - a run no worker has taken is cancelled in DBOS here, and the job marked cancelled here;
        - a run a worker is making: this waits for the worker to end the job (its progress comes back
          through the database as always). A job that ended otherwise meanwhile (it finished first) is
          said so. A worker that does not answer within `worker_cancel_wait_s` is down (its run waits
          for a restart or a takeover): the run is cancelled in DBOS, so no launch recovers it, and its
          predictions in flight are cancelled from here."""
        _check_allowed(job, Action.CANCEL)
        run = await self.queue.live_run(job.id)
        if run is not None:
            run_id, status = run
            await self.store.event(job, engine.CANCEL_REQUESTED, detail=engine.cancel_request(run_id, by))
            if status == "PENDING":
                return await self._cancel_on_worker(job, run_id, by)
            await self.queue.cancel_run(run_id)
        else:
            # No run left in DBOS: the job may have ended since the asker read it (a Cancel pressed as
            # the ad was finishing). Judge the job as stored, or a finished ad would be marked cancelled.
            stored = await self.store.get(job.id)
            if stored is not None:
                _check_allowed(stored, Action.CANCEL)
        await self._cancel_here(job, by)
        return job

    async def _cancel_on_worker(self, job: Job, run_id: str, by: str | None) -> Job:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.worker_cancel_wait_s
        while True:
            stored = await self.store.get(job.id)
            if stored is None:
                raise InvalidRequest(f"Job {job.id} was deleted.")
            if stored.status is JobStatus.CANCELLED:
                return stored
            if stored.status not in ACTIVE_STATUSES:
                raise InvalidRequest(
                    f"Job {job.id} ended ({stored.status.value}) before the cancel reached the worker making it."
                )
            if loop.time() >= give_up:
                break
            await asyncio.sleep(_CANCEL_POLL_S)
        log.warning(
            "job %s: no worker answered its cancel within %.0f s (its worker is down?): cancelling its run %s "
            "in DBOS and its predictions from here", job.id, self.worker_cancel_wait_s, run_id,
        )  # fmt: skip
        await self.queue.cancel_run(run_id)
        await self._cancel_here(stored, f"{by or 'unknown'}, no worker answered")
        return stored

    async def _cancel_here(self, job: Job, by: str | None) -> None:
        """The job's run is cancelled in DBOS (or it never had one): end it here as a local cancel does."""
        task = self._tasks.get(job.id)
        if task is not None and not task.done():
            await cancel_and_wait(task)
        self.database_events.forget(job.id)  # `_after_cancel` tells its end
        self._user_cancelled.add(job.id)
        await self._after_cancel(job)  # its predictions in flight cancelled, its stages marked, its hold settled
        await self.store.event(job, "cancelled", detail=by)

    async def shutdown(self, grace_s: float = 8.0) -> None:
        """Stop following; the jobs go on on the workers."""
        await self.database_events.close()
        await super().shutdown(grace_s)
        if not self._closed:
            self._closed = True
            await self.queue.close()

"""Starting jobs for the workers from a process that runs none (`--no-worker`).

Such a process must not launch DBOS: a launch recovers the pending workflows of its executor id and
dequeues work, which is exactly what a front end must not do. DBOS's client (`DBOSClient`, 3.4) only
talks to the system database: it enqueues a job's run on `JOBS_QUEUE` under the job workflow's name
and the pinned application version, where a `jant worker` (or a `jant bot` that runs jobs) takes it,
and it lists and cancels workflows. Verified against the installed package: `DBOSClient` never
launches, never recovers, never dequeues.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pipeline.config import Settings
from pipeline.durable import engine


class JobQueue:
    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    async def open(cls, settings: Settings) -> JobQueue:
        engine.require_dbos()
        from dbos import DBOS, DBOSClient

        url = settings.storage.dbos_system_database_url
        await asyncio.to_thread(settings.storage.dbos_db_path.parent.mkdir, parents=True, exist_ok=True)
        if settings.storage.database_url is None:  # before anyone creates DBOS's tables in it
            await asyncio.to_thread(engine.use_wal, settings.storage.dbos_db_path)
        # The client never creates DBOS's tables; a front end may start before any worker ever has.
        await asyncio.to_thread(lambda: DBOS.migrate(url, schema=engine.DBOS_SCHEMA))
        client = await asyncio.to_thread(
            lambda: DBOSClient(
                system_database_url=url, dbos_system_schema=engine.DBOS_SCHEMA, application_name=engine.APP_NAME
            )
        )
        # Workers register it too (with the settings that are theirs to choose): never overwrite theirs.
        await client.register_queue_async(engine.JOBS_QUEUE, on_conflict="never_update")
        return cls(client)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.destroy)

    async def enqueue(self, job_id: str) -> str:
        """Queue the job's next run for the workers; its workflow id."""
        run_id = engine.run_id_after(await self._run_ids(job_id), job_id)
        options = {
            "workflow_name": engine.JOB_WORKFLOW,
            "queue_name": engine.JOBS_QUEUE,
            "workflow_id": run_id,
            "app_version": engine.APPLICATION_VERSION,  # a worker runs only the workflows of its version
            "application_name": engine.APP_NAME,
        }
        await self._client.enqueue_async(options, job_id)
        return run_id

    async def live_run(self, job_id: str) -> tuple[str, str] | None:
        """The job's run that has not ended in DBOS, and its status (ENQUEUED or DELAYED: no worker has
        taken it; PENDING: a worker runs it, or will recover it), or None."""
        runs = await self._client.list_workflows_async(
            workflow_id_prefix=job_id, name=engine.JOB_WORKFLOW, has_parent=False, load_input=False,
            load_output=False, sort_desc=True,
        )  # fmt: skip
        live = [w for w in runs if w.status in ("ENQUEUED", "PENDING", "DELAYED")]
        return (live[0].workflow_id, live[0].status) if live else None

    async def cancel_run(self, run_id: str) -> None:
        """Cancel a run and its chains in DBOS, so that no launch recovers them."""
        await self._client.cancel_workflow_async(run_id, cancel_children=True)

    async def cancel_waiting(self, job_id: str) -> bool | None:
        """Cancel the job's run if no worker has taken it yet: True when cancelled, False when a worker
        runs it, None when it has no run in DBOS."""
        runs = await self._client.list_workflows_async(
            workflow_id_prefix=job_id, name=engine.JOB_WORKFLOW, has_parent=False, load_input=False,
            load_output=False, sort_desc=True,
        )  # fmt: skip
        live = [w for w in runs if w.status in ("ENQUEUED", "PENDING", "DELAYED")]
        if not live:
            return None
        if any(w.status == "PENDING" for w in live):
            return False
        await self._client.cancel_workflows_async([w.workflow_id for w in live])
        return True

    async def _run_ids(self, job_id: str) -> set[str]:
        runs = await self._client.list_workflows_async(
            workflow_id_prefix=job_id, name=engine.JOB_WORKFLOW, has_parent=False, load_input=False,
            load_output=False,
        )  # fmt: skip
        return {w.workflow_id for w in runs}

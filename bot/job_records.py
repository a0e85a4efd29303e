"""Reading jobs for the bot and keeping `job.ui` (message ids, thread id …) in SQLite."""

from __future__ import annotations

from typing import Any

from pipeline.models import Job, JobUi
from pipeline.runtime import Runtime


class JobRecords:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def load(self, job_id: str) -> Job | None:
        """The running copy when the job is live (it is the one the orchestrator mutates), else SQLite's."""
        return self.runtime.orchestrator.live_job(job_id) or await self.runtime.store.get(job_id)

    async def save_ui(self, job: Job, **changes: Any) -> JobUi:
        """Set `changes` in the stored ui, key by key (never overwriting keys another step wrote)."""
        ui = await self.runtime.store.update_ui(job, **changes)
        live = self.runtime.orchestrator.live_job(job.id)
        if live is not None and live is not job:
            live.ui = ui.model_copy()
        return ui

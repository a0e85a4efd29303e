"""Reading jobs for the bot and keeping `job.ui` (message ids, thread id …) in SQLite."""

from __future__ import annotations

from typing import Any

from pipeline.models import Job
from pipeline.runtime import Runtime


class JobRecords:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def load(self, job_id: str) -> Job | None:
        """The running copy when the job is live (it is the one the orchestrator mutates), else SQLite's."""
        return self.runtime.orchestrator.live_job(job_id) or await self.runtime.store.get(job_id)

    async def save_ui(self, job: Job, **changes: Any) -> dict[str, Any]:
        """Merge `changes` into the stored ui dict (never overwrite keys another step wrote)."""
        stored = await self.runtime.store.get(job.id)
        merged = {**job.ui, **(stored.ui if stored else {}), **changes}
        await self.runtime.store.update(job, ui=merged)
        live = self.runtime.orchestrator.live_job(job.id)
        if live is not None and live is not job:
            live.ui = dict(merged)
        return merged

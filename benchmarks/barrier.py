"""The seed-then-clip barrier design, kept here only as the benchmark's baseline.

All seed images first; only when every one of them is done do the clips start. The product runs
each scene's clip as soon as ITS seed is ready (`Orchestrator._run_scene`); this variant shows
what that buys on the same scripted latencies.
"""

from __future__ import annotations

import asyncio
import logging
import time

from pipeline.events import EventKind
from pipeline.models import Job, JobStatus, utcnow
from pipeline.orchestrator import Orchestrator

log = logging.getLogger(__name__)


class BarrierOrchestrator(Orchestrator):
    async def _run(self, job: Job) -> Job:
        assert job.storyboard is not None
        started = time.monotonic()
        await self.store.update(job, status=JobStatus.RUNNING, started_at=job.started_at or utcnow(), error=None)
        await self._publish(EventKind.JOB_STARTED, job)
        self.job_dir(job).mkdir(parents=True, exist_ok=True)
        scenes = [s for s in job.storyboard.scenes if not job.scene(s.index).done]
        try:
            seeds = await asyncio.gather(*(self._make_seed(job, scene) for scene in scenes))
            await asyncio.gather(
                *(self._make_clip(job, scene, path) for scene, path in zip(scenes, seeds, strict=True) if path)
            )
        except asyncio.CancelledError:
            await self._after_cancel(job)
            raise
        await self._finish(job)
        log.info("job %s %s in %.1f s (barrier)", job.id, job.status.value, time.monotonic() - started)
        return job


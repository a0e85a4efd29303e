"""The seed-then-clip barrier design, kept here only as the benchmark's baseline.

All seed images first; only when every one of them is done do the clips start. The product runs
each scene's clip as soon as ITS seed is ready (`Orchestrator._run_scene`); this variant shows
what that buys on the same scripted latencies. Everything else (state, events, finishing) is the
product's own `Orchestrator._run`.
"""

from __future__ import annotations

import asyncio

from pipeline.models import Job, Scene
from pipeline.orchestrator import Orchestrator


class BarrierOrchestrator(Orchestrator):
    async def _run_scenes(self, job: Job, scenes: list[Scene]) -> None:
        seeds = await asyncio.gather(*(self._make_seed(job, scene) for scene in scenes))
        await asyncio.gather(
            *(self._make_clip(job, scene, path) for scene, path in zip(scenes, seeds, strict=True) if path)
        )

"""The seed-then-clip barrier design, kept here only as the benchmark's baseline.

All seed images first; only when every one of them is done do the clips start. The product runs
each scene's clip as soon as ITS seed is ready (`Orchestrator._run_scenes`); this variant shows
what that buys on the same scripted latencies. Everything else (state, events, finishing) is the
product's own `Orchestrator._run`.
"""

from __future__ import annotations

import asyncio

from pipeline.models import Job, Scene, StageName
from pipeline.orchestrator import Orchestrator


class BarrierOrchestrator(Orchestrator):
    async def _run_scenes(self, job: Job, scenes: list[Scene]) -> None:
        # Every seed first; the product's own pass then finds them done and runs the rest.
        seeds = [job.scene(scene.index).stages[StageName.SEED] for scene in scenes]
        paths = await asyncio.gather(
            *(self.run_stage(job, seed, scene) for seed, scene in zip(seeds, scenes, strict=True))
        )
        for seed, path in zip(seeds, paths, strict=True):
            if path is None:
                await self._skip(job, job.scene(seed.scene_index).clip, "its seed image failed")
        await super()._run_scenes(job, [scene for scene, path in zip(scenes, paths, strict=True) if path])

"""A job run by the real orchestrator in a process of its own, for `tests/test_database_events.py`.

`python -m tests.job_in_another_process DATA_DIR OUT.json`: plans a job with scripted providers (fast,
no network, no ffmpeg), prints its id, waits for a line on stdin, then approves and runs it, and
writes the events its own bus carried — the order the front end in the test's process must see
them in — to OUT.json.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from pipeline.config import Settings
from pipeline.events import ProgressEvent
from pipeline.models import AdRequest
from pipeline.orchestrator import Orchestrator
from pipeline.providers.base import Providers
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.store import JobStore
from tests.scripted_providers import CopyComposer, ScriptedImages, ScriptedVideo

PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm, dims at night and charges your phone"


async def main(data: Path, out: Path) -> None:
    settings = Settings(JANT_DATA_DIR=str(data), JANT_OFFLINE="1", JANT_RETRY_BACKOFF_S="0.3")
    store = await JobStore.open(settings.storage.db_path)
    images, video = ScriptedImages("seed"), ScriptedVideo("clip")
    # Staggered, so the stages of different scenes change between different polls; scene 2's clip
    # fails once (a retry the front end must see) before it succeeds.
    images.latency = {i: 0.4 * i for i in range(1, 8)}
    video.latency = {i: 0.8 + 0.3 * i for i in range(1, 8)} | {2: 2.0}  # each attempt of 2 outlasts a slow poll
    video.outcomes = {2: ["flaky", "ok"]}
    providers = Providers(OfflineStoryboardPlanner(), images, video)  # type: ignore[arg-type]
    orch = Orchestrator(settings, store, providers, composer=CopyComposer())  # type: ignore[arg-type]
    seen: list[ProgressEvent] = []
    orch.bus.subscribe(seen.append)
    try:
        job = await orch.create_job(AdRequest(product=PRODUCT, mood="tech"))
        await orch.plan(job)
        print(job.id, flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        await (await orch.approve(job, approved_by="test"))
    finally:
        await orch.shutdown()
        await store.close()
    rows = [[e.kind.value, e.scene_index, e.stage] for e in seen]
    await asyncio.to_thread(out.write_text, json.dumps(rows))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))

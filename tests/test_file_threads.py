"""File work waiting on the disk does not queue behind other file work: a running Jant has enough
threads behind `asyncio.to_thread` for many blocking calls at once (asyncio's own default is six on
two cores, which fsyncs of voice and music downloads filled while seeds waited; benchmarks/README.md)."""

from __future__ import annotations

import asyncio
import threading

from pipeline.config import Settings
from pipeline.runtime import FILE_THREADS, Runtime


async def test_a_running_jant_runs_many_blocking_file_calls_at_once(settings: Settings) -> None:
    at_once = 16  # more than asyncio's default on any machine with up to 11 cores
    assert FILE_THREADS >= at_once
    runtime = await Runtime.open(settings)
    try:
        # Each call returns only once all of them are running: with fewer threads than calls, the
        # barrier times out (BrokenBarrierError) instead of passing.
        barrier = threading.Barrier(at_once, timeout=10)
        waited = await asyncio.wait_for(asyncio.gather(*(asyncio.to_thread(barrier.wait) for _ in range(at_once))), 20)
        assert sorted(waited) == list(range(at_once))
    finally:
        await runtime.close()

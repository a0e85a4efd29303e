"""Persists stages' progress behind the work instead of in front of it.

A stage's progress is saved so that `jant show` and a restart see roughly where it was; nothing
waits on it. It used to be awaited inside the prediction's poll loop, and every write in the process
goes through one SQLite write queue: when fifty voice lines and their music beds are approved
together with the seeds, that queue is hundreds of writes deep, and each seed waited up to 3 s
behind it before it could poll again — so a seed that had finished was noticed seconds late and its
clip started late (benchmarks/README.md, "Voice, music and captions"). Now the poll loop only notes
the new value; one write per stage at a time carries the newest value when its turn comes, so a
burst of reports costs one queued write, not one each.

A write sets the progress column only, from the stage as it is when the write is queued, and the
store's writes run in the order they were queued: so a late progress write can neither undo the
stage's outcome nor bring back an older figure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from pipeline.models import StageState

log = logging.getLogger(__name__)

SaveProgress = Callable[[StageState], Awaitable[None]]


class ProgressWriter:
    """At most one progress write in flight per stage; the newest value wins."""

    def __init__(self, save: SaveProgress) -> None:
        self._save = save
        self._writing: dict[int, asyncio.Task[None]] = {}  # by id(stage): its write in flight
        self._stale: set[int] = set()  # stages whose progress changed while their write was queued

    def note(self, stage: StageState) -> None:
        """The stage's progress changed: have it written soon, without waiting for the write."""
        key = id(stage)
        if key in self._writing:
            self._stale.add(key)
            return
        task = asyncio.create_task(self._write(stage, key))
        self._writing[key] = task

    async def _write(self, stage: StageState, key: int) -> None:
        try:
            while True:
                self._stale.discard(key)
                try:
                    await self._save(stage)  # reads stage.progress now: the newest value, not the noted one
                except Exception:  # a progress figure is not worth failing the stage over
                    log.warning("could not save the progress of job %s stage %s", stage.job_id, stage.stage,
                                exc_info=True)  # fmt: skip
                    return
                if key not in self._stale:
                    return
        finally:
            self._writing.pop(key, None)
            self._stale.discard(key)

    async def close(self) -> None:
        """Wait for every write in flight (before the store closes)."""
        tasks = list(self._writing.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

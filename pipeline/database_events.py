"""Progress events read from the database, for a front end whose jobs run in another process.

In one process the orchestrator publishes `ProgressEvent`s on its `EventBus` as it goes. A front end
that only starts jobs (`jant makead --no-worker`, `jant bot --no-worker`) has no such orchestrator:
the job runs on a worker. Every event is made of state the store already holds — the job row, its
stage rows, its cut scenes, its events — so this source polls those rows and publishes the same
events on the front end's own bus, where its progress bars or its status tracker already listen.

A poll first asks the store for one small "change mark" per job and reads a job again only when
its mark moved; the events are the difference between the job as last seen and as read now. What
changed and changed back between two polls is not seen (a stage queued and running within half a
second shows as running): a renderer draws from the latest snapshot, so it misses nothing it shows.
SQLite has no notifications, so this polls (every `POLL_INTERVAL_S`); Postgres could wake it with
LISTEN/NOTIFY instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.events import EventBus, EventKind, ProgressEvent
from pipeline.models import Job, JobStatus, StageState, StageStatus
from pipeline.stage_kinds import STAGE_KINDS
from pipeline.store import JobStore
from pipeline.task_stop import cancel_and_wait

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.5

_STAGE_EVENTS = {
    StageStatus.QUEUED: EventKind.STAGE_QUEUED,
    StageStatus.RUNNING: EventKind.STAGE_RUNNING,
    StageStatus.RETRYING: EventKind.STAGE_RETRYING,
    StageStatus.DONE: EventKind.STAGE_DONE,
    StageStatus.FAILED: EventKind.STAGE_FAILED,
}
# What a job first seen in a status has been through, as the event a renderer starts from.
_FIRST_SIGHT = {
    JobStatus.PLANNING: EventKind.JOB_CREATED,
    JobStatus.AWAITING_APPROVAL: EventKind.STORYBOARD_READY,
    JobStatus.QUEUED: EventKind.JOB_QUEUED,
    JobStatus.RUNNING: EventKind.JOB_STARTED,
    JobStatus.COMPOSING: EventKind.COMPOSING,
}
_KIND_ORDER = {name: n for n, name in enumerate(STAGE_KINDS)}


def changes(before: Job | None, after: Job) -> list[ProgressEvent]:
    """The events that take a front end from `before` (None: it knows nothing of the job) to `after`,
    each carrying `after` as its snapshot: the job's own steps in their order around the stages' changes,
    and the stages' changes ordered by each stage's last write (close to the order they were published:
    a progress figure or a prediction id written later moves a stage later)."""
    if before is None:
        status = after.status
        kind = EventKind.JOB_FINISHED if status.is_terminal else _FIRST_SIGHT[status]
        return [ProgressEvent(kind, after)]
    out: list[ProgressEvent] = []
    was, now = before.status, after.status
    if now is not was:
        if now is JobStatus.AWAITING_APPROVAL:
            out.append(ProgressEvent(EventKind.STORYBOARD_READY, after))
        elif now is JobStatus.QUEUED:
            out.append(ProgressEvent(EventKind.JOB_QUEUED, after))
        elif now is JobStatus.RUNNING:
            out.append(ProgressEvent(EventKind.JOB_STARTED, after))
    elif now is JobStatus.AWAITING_APPROVAL and after.storyboard != before.storyboard:
        out.append(ProgressEvent(EventKind.STORYBOARD_READY, after))  # a new take, an edited scene
    out += _stage_changes(before, after)
    out += _cuts(before, after)
    if now is not was:
        if now is JobStatus.COMPOSING:
            out.append(ProgressEvent(EventKind.COMPOSING, after))
        elif now.is_terminal:
            out.append(ProgressEvent(EventKind.JOB_FINISHED, after, detail=after.error))
    return out


def _stages(job: Job) -> dict[tuple[int, str], StageState]:
    return {(st.scene_index, str(st.stage)): st for st in job.all_stages()}


def _stage_changes(before: Job, after: Job) -> list[ProgressEvent]:
    old = _stages(before)
    moved: list[tuple[Any, ...]] = []
    for key, st in _stages(after).items():
        prev = old.get(key)
        kind: EventKind | None = None
        if prev is None or (prev.status, prev.attempt) != (st.status, st.attempt):
            kind = _STAGE_EVENTS.get(st.status)
        elif st.status is StageStatus.RUNNING and st.progress != prev.progress:
            kind = EventKind.STAGE_PROGRESS
        if kind is None:
            continue
        detail = st.error if kind in (EventKind.STAGE_RETRYING, EventKind.STAGE_FAILED) else None
        order = (st.updated_at, st.scene_index, _KIND_ORDER.get(str(st.stage), len(_KIND_ORDER)))
        moved.append((order, ProgressEvent(kind, after, st.scene_index, str(st.stage), detail)))
    moved.sort(key=lambda pair: pair[0])
    return [event for _, event in moved]


def _cuts(before: Job, after: Job) -> list[ProgressEvent]:
    """A scene whose footage was cut (normalised) since: the orchestrator's CLIP_NORMALIZED."""
    old = {s.index: s.normalized_path for s in before.scenes}
    return [
        ProgressEvent(EventKind.CLIP_NORMALIZED, after, s.index, "clip")
        for s in after.scenes
        if s.normalized_path and s.normalized_path != old.get(s.index)
    ]


@dataclass
class _Seen:
    mark: tuple[Any, ...] | None
    job: Job | None


class DatabaseEvents:
    """Polls the store for the jobs it watches and publishes their changes on `bus`.

    It watches the jobs given to `watch` (until each has ended) and, with `discover`, every job
    in one of those statuses (a restarted front end finds the jobs still being made)."""

    def __init__(
        self,
        store: JobStore,
        bus: EventBus,
        *,
        interval_s: float = POLL_INTERVAL_S,
        discover: Sequence[JobStatus] = (),
    ) -> None:
        self.store = store
        self.bus = bus
        self.interval_s = interval_s
        self.discover = tuple(discover)
        self._seen: dict[str, _Seen] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, job_id: str, known: Job | None = None) -> None:
        """Follow `job_id` until it ends. `known`: the job as this front end already shows it (the
        events start from there); without it the first event is where the job is now."""
        if job_id not in self._seen or known is not None:
            self._seen[job_id] = _Seen(None, known.model_copy(deep=True) if known is not None else None)
        self.start()

    def latest(self, job_id: str) -> Job | None:
        """A copy of the job as last read, while it is watched (the copy: what the caller changes must not
        change what the next poll is compared with)."""
        seen = self._seen.get(job_id)
        return seen.job.model_copy(deep=True) if seen is not None and seen.job is not None else None

    def forget(self, job_id: str) -> None:
        """Stop following a job (its end was told another way)."""
        self._seen.pop(job_id, None)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="database-events")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception:  # a locked or briefly unreadable database: the next poll tries again
                log.warning("could not read job progress from the database", exc_info=True)
            await asyncio.sleep(self.interval_s)

    async def poll(self) -> list[ProgressEvent]:
        """Read what moved since the last poll and publish it; the events published, in order."""
        marks = await self.store.change_marks(list(self._seen), self.discover)
        for job_id, mark in marks.items():
            if job_id not in self._seen and mark[0] in {s.value for s in self.discover}:
                self._seen[job_id] = _Seen(None, None)
        published: list[ProgressEvent] = []
        for job_id, seen in list(self._seen.items()):
            now = marks.get(job_id)
            if now is None or now == seen.mark:
                continue  # not written yet (or deleted), or nothing moved
            job = await self.store.get(job_id)
            if job is None:
                continue
            events = changes(seen.job, job)
            seen.mark, seen.job = now, job
            if job.status.is_terminal:
                self._seen.pop(job_id, None)  # it ended: `watch` it again when it runs again
            for event in events:
                await self.bus.publish(event)
            published += events
        return published

    async def follow(self, job_id: str, known: Job | None = None) -> AsyncIterator[ProgressEvent]:
        """The job's events as they are read, ending with its JOB_FINISHED."""
        queue: asyncio.Queue[ProgressEvent] = asyncio.Queue()
        unsubscribe = self.bus.subscribe(lambda e: queue.put_nowait(e) if e.job_id == job_id else None)
        try:
            self.watch(job_id, known)
            while True:
                event = await queue.get()
                yield event
                if event.kind is EventKind.JOB_FINISHED:
                    return
        finally:
            unsubscribe()

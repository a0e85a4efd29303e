"""Progress events: what the orchestrator tells front ends (CLI bars, Discord status message).

Every event carries a snapshot of the whole job, so a renderer can draw from the latest event
alone — that is what lets the Discord status message coalesce edits ("latest state wins").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pipeline.models import Job, SceneState, StageState, utcnow

log = logging.getLogger(__name__)


class EventKind(StrEnum):
    JOB_CREATED = "job_created"
    STORYBOARD_READY = "storyboard_ready"
    JOB_QUEUED = "job_queued"
    JOB_STARTED = "job_started"
    STAGE_QUEUED = "stage_queued"
    STAGE_RUNNING = "stage_running"
    STAGE_PROGRESS = "stage_progress"
    STAGE_RETRYING = "stage_retrying"
    STAGE_DONE = "stage_done"
    STAGE_FAILED = "stage_failed"
    CLIP_NORMALIZED = "clip_normalized"
    COMPOSING = "composing"
    JOB_FINISHED = "job_finished"
    # A finished ad composed again (its status does not change): each step, then the new final.
    RERENDERING = "rerendering"
    RERENDERED = "rerendered"
    # Other formats cut from a finished ad (Formats button, `jant formats`): each step, then the end.
    FORMATTING = "formatting"
    FORMATTED = "formatted"


def snapshot(job: Job) -> Job:
    """A copy of `job` that later changes to it cannot reach, made for every event (many a second).

    Only what the orchestrator changes in place is copied: scene, job and stage states and the ui/providers
    dicts. The request and storyboard are shared: they are replaced, never changed in place, and a
    deep copy of them was most of the CPU time of a busy bot (measured in benchmarks/).
    """
    scenes = [_scene_copy(s) for s in job.scenes]
    return job.model_copy(
        update={
            "scenes": scenes,
            "job_stages": _stages_copy(job.job_stages),
            "ui": job.ui.model_copy(),
            "providers": dict(job.providers),
        }
    )


def _stages_copy(stages: dict[str, StageState]) -> dict[str, StageState]:
    return {kind: st.model_copy() for kind, st in stages.items()}


def _scene_copy(scene: SceneState) -> SceneState:
    return scene.model_copy(update={"stages": _stages_copy(scene.stages)})


@dataclass(frozen=True)
class ProgressEvent:
    kind: EventKind
    job: Job  # snapshot at the time of the event
    scene_index: int | None = None  # 0: a job-level stage
    stage: str | None = None  # the stage's kind
    detail: str | None = None
    at: datetime = field(default_factory=utcnow)

    @property
    def job_id(self) -> str:
        return self.job.id


Subscriber = Callable[[ProgressEvent], Awaitable[None] | None]


class EventBus:
    """Fan-out of progress events. A slow or broken subscriber never stalls the pipeline."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn) if fn in self._subscribers else None

    async def publish(self, event: ProgressEvent) -> None:
        for fn in list(self._subscribers):
            try:
                result = fn(event)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("progress subscriber failed on %s for job %s", event.kind, event.job_id)

"""Any exception, whatever its type, ends the job as failed with a reason a user can read, logs its
traceback once under an id, and tells the front ends — at every stage: seed, clip, normalise, join.
(Upload, the bot's delivery, is in tests/test_bot_delivery_failure.py.)"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest

from bot.cli import list_jobs, show_job
from pipeline.config import Settings
from pipeline.events import EventKind, ProgressEvent
from pipeline.models import AdRequest, Job, JobStatus, StageStatus
from pipeline.orchestrator import Orchestrator
from pipeline.providers.base import ClipRequest, Providers, SeedRequest, StageContext, StageResult
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.store import JobStore
from tests.scripted_providers import CopyComposer, ScriptedImages, ScriptedVideo

PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm"
STAGES = ("seed", "clip", "normalise", "join")
ERRORS: tuple[type[Exception], ...] = (RuntimeError, KeyError, ZeroDivisionError)
INCIDENT = re.compile(r"(?i:a)n unexpected error \(logged as (ERR-[0-9A-F]{6})\)")


class Injected:
    """Where the exception goes: a provider, the normaliser or the join, on every call."""

    def __init__(self, stage: str, error: type[Exception]) -> None:
        self.stage, self.error = stage, error

    def raise_if(self, stage: str) -> None:
        if stage == self.stage:
            raise self.error("injected") if self.error is not ZeroDivisionError else ZeroDivisionError()


class FaultyImages(ScriptedImages):
    def __init__(self, fault: Injected) -> None:
        super().__init__("seed")
        self.fault = fault

    async def generate(self, request: SeedRequest, ctx: StageContext) -> StageResult:
        self.fault.raise_if("seed")
        return await super().generate(request, ctx)


class FaultyVideo(ScriptedVideo):
    def __init__(self, fault: Injected) -> None:
        super().__init__("clip")
        self.fault = fault

    async def animate(self, request: ClipRequest, ctx: StageContext) -> StageResult:
        await ctx.record_prediction(f"clip-{request.scene.index}-paid")  # paid before the crash
        self.fault.raise_if("clip")
        return await super().animate(request, ctx)


class FaultyComposer(CopyComposer):
    def __init__(self, fault: Injected) -> None:
        super().__init__()
        self.fault = fault

    async def normalize_clip(self, src: Path, dst: Path, duration: float, **kw: object) -> Path:
        self.fault.raise_if("normalise")
        return await super().normalize_clip(src, dst, duration, **kw)  # type: ignore[arg-type]

    async def join(self, clips: list[Path], dst: Path, *, byte_limit: int | None = None):  # type: ignore[no-untyped-def]
        self.fault.raise_if("join")
        return await super().join(clips, dst, byte_limit=byte_limit)


async def run_with_fault(settings: Settings, fault: Injected) -> tuple[Job, list[ProgressEvent], Orchestrator]:
    store = await JobStore.open(settings.db_path)
    providers = Providers(OfflineStoryboardPlanner(), FaultyImages(fault), FaultyVideo(fault))  # type: ignore[arg-type]
    orch = Orchestrator(settings, store, providers, composer=FaultyComposer(fault))  # type: ignore[arg-type]
    events: list[ProgressEvent] = []
    orch.bus.subscribe(events.append)
    job = await orch.create_job(AdRequest(product=PRODUCT), requester_id="alice")
    await orch.plan(job)
    task = await orch.approve(job)
    job = await asyncio.wait_for(task, 10)  # returns: the failure is the job's, not the task's
    assert not orch.is_running(job.id)
    return job, events, orch


@pytest.mark.parametrize("error", ERRORS, ids=[e.__name__ for e in ERRORS])
@pytest.mark.parametrize("stage", STAGES)
async def test_an_unexpected_error_in_any_stage_ends_the_job_as_failed_with_a_reason(
    settings: Settings, caplog: pytest.LogCaptureFixture, stage: str, error: type[Exception]
) -> None:
    caplog.set_level(logging.WARNING)
    job, events, orch = await run_with_fault(settings, Injected(stage, error))
    try:
        stored = await orch.store.get(job.id)
    finally:
        await orch.store.close()
    assert stored is not None
    assert job.status is stored.status is JobStatus.FAILED
    assert stored.finished_at is not None
    incidents = INCIDENT.findall(stored.error or "")
    assert incidents, stored.error
    # Each incident's traceback is logged once, under its id, with the exception injected.
    for incident in incidents:
        logged = [r for r in caplog.records if incident in r.getMessage()]
        assert len(logged) == 1 and logged[0].exc_info is not None
        assert logged[0].exc_info[0] is error
    # Nothing is left waiting, running or queued: the task ended and so did every stage.
    assert all(st.status.is_terminal for st in stored.all_stages()), [st.status for st in stored.all_stages()]
    finished = [e for e in events if e.kind is EventKind.JOB_FINISHED]
    assert len(finished) == 1 and finished[0].job.status is JobStatus.FAILED and finished[0].job.error == stored.error
    if stage in ("normalise", "join"):
        # It escaped the stages: one incident for the job, and its paid work in flight was cancelled.
        assert len(incidents) == 1 and stored.error.startswith("The ad could not be made: an unexpected error")
        video = orch.providers.video
        for st in stored.all_stages():
            if st.status is StageStatus.CANCELLED and st.prediction_id:
                assert st.prediction_id in video.cancelled  # type: ignore[attr-defined]
    else:
        # Inside a stage the retry policy decides (never retried), and each scene says why it failed.
        assert len(incidents) == len(stored.scenes)
        assert all(getattr(s, stage).status is StageStatus.FAILED for s in stored.scenes)


async def test_jant_jobs_and_show_print_the_failure_and_its_reason(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    job, _, orch = await run_with_fault(settings, Injected("join", KeyError))
    await orch.store.close()
    capsys.readouterr()
    assert await list_jobs(settings, 20) == 0
    listed = capsys.readouterr().out
    row = next(line for line in listed.splitlines() if job.id in line)
    [incident] = INCIDENT.findall(job.error or "")
    assert "failed" in row and incident in listed
    assert await show_job(settings, job.id) == 0
    shown = " ".join(capsys.readouterr().out.split())  # the console wraps long lines when not on a terminal
    assert f"Job {job.id}: failed — The ad could not be made: an unexpected error (logged as {incident})." in shown

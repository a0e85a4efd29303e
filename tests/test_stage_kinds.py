"""Stages are data: a kind is an entry in `STAGE_KINDS` plus a provider under its name. Optional kinds
(voice per scene, music per job) run through the same path as seeds and clips when they have a
provider, never hold up or fail the ad, and are simply absent when they have none."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.errors import SafetyRejection
from pipeline.models import AdRequest, Job, JobStatus, StageName, StageStatus
from pipeline.orchestrator import Orchestrator
from pipeline.providers.base import MusicRequest, Providers, StageContext, StageResult, VoiceRequest
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.stage_kinds import JOB_LEVEL_INDEX, STAGE_KINDS, StageInputs
from pipeline.store import JobStore
from tests.scripted_providers import CopyComposer, ScriptedImages, ScriptedVideo

PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm"


class ScriptedVoice:
    name, offline = "scripted-voice", True

    def __init__(self) -> None:
        self.spoken: dict[int, str] = {}
        self.creates: dict[int, int] = defaultdict(int)
        self.cancelled: list[str] = []
        self.gate: asyncio.Event | None = None

    async def synthesize(self, request: VoiceRequest, ctx: StageContext) -> StageResult:
        self.creates[ctx.scene_index] += 1
        await ctx.record_prediction(f"voice-{ctx.scene_index}-{ctx.attempt}")
        self.spoken[ctx.scene_index] = request.text
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.to_thread(request.dest.write_bytes, b"RIFF")
        return StageResult(path=request.dest, duration=2.0, prediction_id=f"voice-{ctx.scene_index}-{ctx.attempt}")

    async def cancel(self, prediction_id: str) -> None:
        self.cancelled.append(prediction_id)


class ScriptedMusic:
    name, offline = "scripted-music", True

    def __init__(self, outcome: str = "ok") -> None:
        self.outcome = outcome
        self.requests: list[tuple[int, MusicRequest]] = []

    async def compose(self, request: MusicRequest, ctx: StageContext) -> StageResult:
        self.requests.append((ctx.scene_index, request))
        if self.outcome == "refused":
            raise SafetyRejection("The music model refused the prompt.")
        await asyncio.to_thread(request.dest.write_bytes, b"RIFF")
        return StageResult(path=request.dest, duration=request.duration)

    async def cancel(self, prediction_id: str) -> None:
        return None


async def _speak_the_description(provider: ScriptedVoice, s: StageInputs, ctx: StageContext) -> StageResult:
    # Until the storyboard writes a voiceover line (issue 12 §1), this test's voice reads the description.
    assert s.scene is not None
    return await provider.synthesize(VoiceRequest(text=s.scene.description, dest=s.dest), ctx)


@pytest.fixture
def voice_reads_descriptions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replacing a kind's entry is all it takes to change what it does: no orchestrator code."""
    monkeypatch.setitem(
        STAGE_KINDS, StageName.VOICE, dataclasses.replace(STAGE_KINDS[StageName.VOICE], start=_speak_the_description)
    )


async def _orchestrator(settings: Settings, **stages: object) -> Orchestrator:
    store = await JobStore.open(settings.db_path)
    providers = Providers(OfflineStoryboardPlanner(), ScriptedImages("seed"), ScriptedVideo("clip"), stages=stages)  # type: ignore[arg-type]
    return Orchestrator(settings, store, providers, composer=CopyComposer())  # type: ignore[arg-type]


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():  # noqa: ASYNC110 - callers bound it with wait_for
        await asyncio.sleep(0.01)


async def _planned(orch: Orchestrator) -> Job:
    job = await orch.create_job(AdRequest(product=PRODUCT), requester_id="alice")
    return await orch.plan(job)


async def test_without_a_voice_or_music_provider_a_job_has_no_such_stages(settings: Settings) -> None:
    orch = await _orchestrator(settings)
    try:
        job = await asyncio.wait_for(await orch.approve(await _planned(orch)), 10)
        assert job.status is JobStatus.COMPLETED
        assert job.job_stages == {}
        assert all(list(s.stages) == ["seed", "clip"] for s in job.scenes)
        assert set(job.providers) == {"planner", "seed", "clip"}
        rows = {(p["scene_index"], p["stage"]) for p in await orch.store.predictions(job.id)}
        assert {stage for _, stage in rows} == {"seed", "clip"}
    finally:
        await orch.shutdown()
        await orch.store.close()


async def test_voice_runs_beside_the_seeds_and_music_once_per_job(
    settings: Settings, voice_reads_descriptions: None
) -> None:
    voice, music = ScriptedVoice(), ScriptedMusic()
    orch = await _orchestrator(settings, voice=voice, music=music)
    images: ScriptedImages = orch.providers.images  # type: ignore[assignment]
    try:
        job = await _planned(orch)
        n = len(job.scenes)
        for scene in range(1, n + 1):
            images.gates[scene] = asyncio.Event()  # no seed finishes…
        task = await orch.approve(job)
        await asyncio.wait_for(_until(lambda: len(voice.spoken) == n), 5)
        assert not any(images.finished[s].is_set() for s in range(1, n + 1))  # …and yet every line is spoken
        for gate in images.gates.values():
            gate.set()
        job = await asyncio.wait_for(task, 10)
        assert job.status is JobStatus.COMPLETED
        assert voice.spoken == {s.index: s.description for s in job.storyboard.scenes}  # type: ignore[union-attr]
        assert [(index, req.duration) for index, req in music.requests] == [
            (JOB_LEVEL_INDEX, job.storyboard.total_duration)  # type: ignore[union-attr]
        ]
        reloaded = await orch.store.get(job.id)
        assert reloaded is not None
        assert reloaded.job_stages[StageName.MUSIC].status is StageStatus.DONE
        assert all(s.stages[StageName.VOICE].status is StageStatus.DONE for s in reloaded.scenes)
        assert Path(reloaded.scene(1).stages[StageName.VOICE].path or "").name == "voice-1.wav"
        voice_rows = [p for p in await orch.store.predictions(job.id) if p["stage"] == "voice"]
        assert sorted(p["scene_index"] for p in voice_rows) == list(range(1, n + 1))
    finally:
        await orch.shutdown()
        await orch.store.close()


async def test_an_optional_stage_that_fails_does_not_fail_the_ad(settings: Settings) -> None:
    # The music model refuses: the ad is made all the same, every scene with its voice.
    orch = await _orchestrator(settings, voice=ScriptedVoice(), music=ScriptedMusic("refused"))
    try:
        job = await asyncio.wait_for(await orch.approve(await _planned(orch)), 10)
        assert job.status is JobStatus.COMPLETED and job.error is None
        music = job.job_stages[StageName.MUSIC]
        assert music.status is StageStatus.FAILED and "refused" in (music.error or "")
        assert all(s.stages[StageName.VOICE].status is StageStatus.DONE for s in job.scenes)
        assert all(s.done and not s.failed for s in job.scenes)
    finally:
        await orch.shutdown()
        await orch.store.close()


async def test_cancel_and_retry_reach_every_kind(settings: Settings, voice_reads_descriptions: None) -> None:
    voice = ScriptedVoice()
    voice.gate = asyncio.Event()  # the lines hang until cancelled
    orch = await _orchestrator(settings, voice=voice)
    try:
        job = await _planned(orch)
        await orch.approve(job)
        await asyncio.wait_for(_until(lambda: len(voice.spoken) == len(job.scenes)), 5)
        await asyncio.wait_for(orch.cancel(job), 5)
        assert sorted(voice.cancelled) == sorted(f"voice-{s.index}-1" for s in job.scenes)
        stored = await orch.store.get(job.id)
        assert stored is not None and stored.status is JobStatus.CANCELLED
        assert all(s.stages[StageName.VOICE].status is StageStatus.CANCELLED for s in stored.scenes)
    finally:
        await orch.shutdown()
        await orch.store.close()

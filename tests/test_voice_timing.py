"""The voice shapes the ad (issue 12 §3, §4, §6, §7), through the orchestrator with scripted providers:
scenes retimed to the measured lines and the same numbers after a restart, caption words placed on
the scene's timeline, the soundtrack mixed before the last clip lands and reused when nothing it is
made of changed, what is missing said once in the job's notes, per-unit costs counted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.errors import InvalidRequest, ProviderError, VoiceUnavailable
from pipeline.models import AdRequest, Job, JobStatus, StageName, StageStatus
from pipeline.orchestrator import Orchestrator
from pipeline.providers.base import MusicRequest, Providers, StageContext, StageResult, VoiceRequest
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.scene_timing import VOICE_TAIL_S
from pipeline.soundtrack import LINE_LEAD_S
from pipeline.speech_timing import WordTiming
from pipeline.store import JobStore
from tests.scripted_providers import CopyComposer, ScriptedImages, ScriptedVideo

PRODUCT = "Lumen, a smart desk lamp that follows your circadian rhythm and dims itself at night"
PRICE_PER_CHAR = 0.0001


class MeasuredVoice:
    """Speaks each line for a scripted length; word timings only when asked to give them."""

    name, offline = "scripted-voice", True

    def __init__(
        self, lengths: dict[int, float] | None = None, *, words: bool = False, fail: Collection[int] = ()
    ) -> None:
        self.lengths = lengths or {}
        self.words = words
        self.fail = fail
        self.requests: dict[int, VoiceRequest] = {}
        self.attempts: dict[int, int] = {}
        self.gate: asyncio.Event | None = None

    async def synthesize(self, request: VoiceRequest, ctx: StageContext) -> StageResult:
        self.requests[ctx.scene_index] = request
        self.attempts[ctx.scene_index] = self.attempts.get(ctx.scene_index, 0) + 1
        if self.gate is not None:
            await self.gate.wait()
        if ctx.scene_index in self.fail:
            raise ProviderError("The speech model timed out (code: TTS).", retryable=False)
        length = self.lengths.get(ctx.scene_index, 1.5)
        await asyncio.to_thread(request.dest.write_bytes, b"RIFF" + bytes(ctx.scene_index))
        words = None
        if self.words:
            words = tuple(WordTiming(w, 0.1 * i, 0.1 * i + 0.1) for i, w in enumerate(request.text.split()))
        return StageResult(
            path=request.dest, duration=length, words=words, cost_usd=round(len(request.text) * PRICE_PER_CHAR, 6)
        )

    async def cancel(self, prediction_id: str) -> None:
        return None


class FrenchlessVoice(MeasuredVoice):
    async def synthesize(self, request: VoiceRequest, ctx: StageContext) -> StageResult:
        self.attempts[ctx.scene_index] = self.attempts.get(ctx.scene_index, 0) + 1
        raise VoiceUnavailable("This offline voice does not speak French; the ad goes on with captions and music.")


class Music:
    name, offline = "scripted-music", True

    async def compose(self, request: MusicRequest, ctx: StageContext) -> StageResult:
        await asyncio.to_thread(request.dest.write_bytes, b"RIFF-music")
        return StageResult(path=request.dest, duration=request.duration, cost_usd=0.2)

    async def cancel(self, prediction_id: str) -> None:
        return None


async def _orchestrator(settings: Settings, **stages: object) -> Orchestrator:
    store = await JobStore.open(settings.db_path)
    providers = Providers(
        OfflineStoryboardPlanner(), ScriptedImages("seed"), ScriptedVideo("clip"), stages=stages,  # type: ignore[arg-type]
        reasons={"music": "JANT_MUSIC=none: ads are made without a music bed."},
    )  # fmt: skip
    return Orchestrator(settings, store, providers, composer=CopyComposer())  # type: ignore[arg-type]


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():  # noqa: ASYNC110 - callers bound it with wait_for
        await asyncio.sleep(0.01)


async def _made(orch: Orchestrator, request: AdRequest | None = None) -> Job:
    job = await orch.plan(await orch.create_job(request or AdRequest(product=PRODUCT)))
    return await asyncio.wait_for(await orch.approve(job), 15)


@pytest.fixture
async def closing() -> AsyncIterator[list[Orchestrator]]:
    made: list[Orchestrator] = []
    yield made
    for orch in made:
        await orch.shutdown()
        await orch.store.close()


async def test_a_long_line_retimes_the_scenes_and_a_restart_keeps_the_numbers(
    settings: Settings, closing: list[Orchestrator]
) -> None:
    orch = await _orchestrator(settings, voice=MeasuredVoice({2: 5.6}), music=Music())
    closing.append(orch)
    job = await _made(orch)
    assert job.status is JobStatus.COMPLETED and job.storyboard is not None and job.timing is not None
    planned = [s.duration for s in job.storyboard.scenes]
    timing = job.timing
    assert timing.durations[1] >= 5.6 + LINE_LEAD_S + VOICE_TAIL_S > planned[1]  # scene 2 took the time it needs
    assert 29.0 <= timing.total <= 31.0 and timing.speeds == [1.0] * len(planned)
    composer: CopyComposer = orch.composer  # type: ignore[assignment]
    assert sorted(composer.normalized) == list(enumerate(timing.durations, start=1))  # clips cut to the timing
    reloaded = await orch.store.get(job.id)
    assert reloaded is not None and reloaded.timing == timing
    assert reloaded.scene(2).stages[StageName.VOICE].duration == 5.6
    # The voice line is spoken in the storyboard's language, with the settings' speed.
    request = orch.providers.get("voice").requests[1]  # type: ignore[union-attr]
    assert (request.language, request.speed) == (job.storyboard.language or job.request.language, 1.0)


async def test_caption_words_sit_on_the_scene_timeline_and_a_failed_line_is_spread_over_its_scene(
    settings: Settings, closing: list[Orchestrator]
) -> None:
    orch = await _orchestrator(settings, voice=MeasuredVoice({1: 1.2}, words=True, fail={3}), music=Music())
    closing.append(orch)
    job = await _made(orch)
    assert job.storyboard is not None and job.timing is not None
    composer: CopyComposer = orch.composer  # type: ignore[assignment]
    first = composer.words[1]
    assert first is not None
    assert [w.word for w in first] == (job.storyboard.scenes[0].voiceover or "").split()
    assert first[0].start == pytest.approx(LINE_LEAD_S) and first[1].start == pytest.approx(LINE_LEAD_S + 0.1)
    unspoken = composer.words[3]
    assert unspoken is not None and unspoken[0].start == pytest.approx(LINE_LEAD_S)
    assert unspoken[-1].end == pytest.approx(job.timing.durations[2] - VOICE_TAIL_S, abs=0.01)
    assert job.status is JobStatus.COMPLETED  # a missing line never fails the ad…
    assert any(n.startswith("Scene 3 has no voiceover") and "timed out" in n for n in job.notes), job.notes


async def test_the_soundtrack_is_mixed_before_the_last_clip_lands_and_reused_by_a_reroll(
    settings: Settings, closing: list[Orchestrator]
) -> None:
    orch = await _orchestrator(settings, voice=MeasuredVoice(), music=Music())
    closing.append(orch)
    video: ScriptedVideo = orch.providers.video  # type: ignore[assignment]
    composer: CopyComposer = orch.composer  # type: ignore[assignment]
    job = await orch.plan(await orch.create_job(AdRequest(product=PRODUCT)))
    last = len(job.scenes)
    video.gates[last] = asyncio.Event()
    task = await orch.approve(job)
    await asyncio.wait_for(_until(lambda: bool(composer.mixes)), 5)
    assert not video.finished[last].is_set()  # mixed while the last clip is still generating
    video.gates[last].set()
    job = await asyncio.wait_for(task, 10)
    assert job.timing is not None and job.soundtrack is not None
    [(placed, music, duration)] = composer.mixes
    assert [start for _, start in placed] == [job.timing.start(i) + LINE_LEAD_S for i in range(1, last + 1)]
    assert music is not None and music.name == "music.wav" and duration == job.timing.total
    assert composer.audio == [Path(job.soundtrack.path)]  # muxed in the join

    job = await asyncio.wait_for(await orch.reroll_scene(job, 2, "clip"), 10)
    assert job.status is JobStatus.COMPLETED
    assert job.soundtrack is not None
    assert len(composer.mixes) == 1 and composer.audio[-1] == Path(job.soundtrack.path)  # same lines: same mix


async def test_a_partial_ad_moves_the_lines_up_with_their_pictures(
    settings: Settings, closing: list[Orchestrator]
) -> None:
    orch = await _orchestrator(settings, voice=MeasuredVoice(), music=Music())
    closing.append(orch)
    video: ScriptedVideo = orch.providers.video  # type: ignore[assignment]
    video.outcomes[2] = ["nsfw"]
    job = await _made(orch)
    assert job.status is JobStatus.PARTIAL and job.timing is not None
    composer: CopyComposer = orch.composer  # type: ignore[assignment]
    placed, _, duration = composer.mixes[-1]
    kept = [i for i in range(1, len(job.scenes) + 1) if i != 2]
    assert duration == pytest.approx(sum(job.timing.durations[i - 1] for i in kept))
    assert placed[1][1] == pytest.approx(job.timing.durations[0] + LINE_LEAD_S)  # scene 3's line follows scene 1
    assert composer.audio[-1] is not None and composer.audio[-1].name == "soundtrack-partial.m4a"


async def test_a_voice_that_does_not_speak_the_language_is_not_retried_and_noted_once(
    settings: Settings, closing: list[Orchestrator]
) -> None:
    voice = FrenchlessVoice()
    orch = await _orchestrator(settings, voice=voice, music=Music())
    closing.append(orch)
    job = await _made(orch)
    assert job.status is JobStatus.COMPLETED
    assert set(voice.attempts.values()) == {1}
    assert all(s.stages[StageName.VOICE].status is StageStatus.FAILED for s in job.scenes)
    speaking = [n for n in job.notes if "does not speak French" in n]
    assert len(speaking) == 1 and speaking[0].startswith("The ad has no voiceover"), job.notes
    composer: CopyComposer = orch.composer  # type: ignore[assignment]
    [(placed, music, _)] = composer.mixes
    assert placed == [] and music is not None  # music alone


async def test_per_unit_costs_are_added_to_the_gpu_cost(settings: Settings, closing: list[Orchestrator]) -> None:
    orch = await _orchestrator(settings, voice=MeasuredVoice(), music=Music())
    closing.append(orch)
    job = await _made(orch)
    assert job.storyboard is not None
    gpu = 2.0 * 2 * len(job.scenes)  # each scripted seed and clip bills 2 GPU-seconds
    chars = sum(len(s.voiceover or "") for s in job.storyboard.scenes)
    expected = gpu * settings.replicate.price_per_gpu_second + chars * PRICE_PER_CHAR + 0.2
    assert job.gpu_seconds == pytest.approx(gpu)
    assert job.cost_usd == pytest.approx(expected, abs=1e-3)
    stored = await orch.store.get(job.id)
    assert stored is not None and stored.scene(1).stages[StageName.VOICE].cost_usd == pytest.approx(
        len(job.storyboard.scenes[0].voiceover or "") * PRICE_PER_CHAR
    )


async def test_a_voice_the_provider_does_not_have_is_refused_before_any_job_exists(
    settings: Settings, closing: list[Orchestrator]
) -> None:
    voice = MeasuredVoice()
    voice.name = "offline-piper"
    orch = await _orchestrator(settings, voice=voice)
    closing.append(orch)
    with pytest.raises(InvalidRequest, match=r"'Wise_Woman' is not one of the voices of offline-piper.*en_US-joe"):
        await orch.create_job(AdRequest(product=PRODUCT, voice="Wise_Woman"))
    with pytest.raises(InvalidRequest, match="no voice at all"):
        await orch.create_job(AdRequest(product=PRODUCT, voice="en_US-joe-medium", speak=False))
    assert await orch.store.count() == 0
    job = await _made(orch, AdRequest(product=PRODUCT, voice="en_US-joe-medium"))
    assert {r.voice_id for r in voice.requests.values()} == {"en_US-joe-medium"}
    silent = await _made(orch, AdRequest(product=PRODUCT, speak=False))
    assert job.status is silent.status is JobStatus.COMPLETED
    assert all(StageName.VOICE not in s.stages for s in silent.scenes)
    assert any("--no-voice" in n for n in silent.notes), silent.notes


def test_the_makead_voice_option_suggests_the_providers_voices_and_none() -> None:
    from bot.commands import voice_choices
    from pipeline.providers.replicate_voice import minimax_voices

    voice = MeasuredVoice()
    voice.name = "replicate-minimax-tts"
    providers = Providers(OfflineStoryboardPlanner(), stages={"voice": voice})
    every = [c.value for c in voice_choices(providers, "")]
    assert every == [*minimax_voices(), "none"] and len(every) <= 25
    assert [c.value for c in voice_choices(providers, "wise")] == ["Wise_Woman"]
    assert [c.value for c in voice_choices(Providers(OfflineStoryboardPlanner()), "")] == ["none"]


async def test_a_restarted_job_keeps_its_measured_voice_and_timing(
    settings: Settings, closing: list[Orchestrator]
) -> None:
    first = await _orchestrator(settings, voice=MeasuredVoice({2: 5.6}, words=True), music=Music())
    video: ScriptedVideo = first.providers.video  # type: ignore[assignment]
    job = await first.plan(await first.create_job(AdRequest(product=PRODUCT)))
    for scene in job.scenes:
        video.gates[scene.index] = asyncio.Event()  # every clip is still generating at the "crash"
    await first.approve(job)
    await asyncio.wait_for(_until(lambda: job.timing is not None), 5)
    timing = job.timing
    await first.shutdown()
    await first.store.close()

    # Asked again, this voice would measure other lengths: the stored ones must be used instead.
    again = MeasuredVoice({2: 2.0})
    second = await _orchestrator(settings, voice=again, music=Music())
    closing.append(second)
    [task] = await second.resume_all()
    resumed = await asyncio.wait_for(task, 10)
    assert resumed.status is JobStatus.COMPLETED
    assert again.requests == {}  # no line spoken twice
    assert resumed.timing == timing
    composer: CopyComposer = second.composer  # type: ignore[assignment]
    assert timing is not None and sorted(composer.normalized) == list(enumerate(timing.durations, start=1))
    words = composer.words[1]
    assert words is not None and words[0].start == pytest.approx(LINE_LEAD_S)  # the stored word timings


async def test_voice_and_music_never_wait_for_a_seed_or_clip_slot(
    settings: Settings, closing: list[Orchestrator]
) -> None:
    settings = settings.model_copy(update={"max_concurrent_predictions": 1})  # one slot for seeds and clips
    orch = await _orchestrator(settings, voice=MeasuredVoice(), music=Music())
    closing.append(orch)
    images: ScriptedImages = orch.providers.images  # type: ignore[assignment]
    images.gates[1] = asyncio.Event()  # scene 1's seed holds that slot until we let it go
    job = await orch.plan(await orch.create_job(AdRequest(product=PRODUCT)))
    task = await orch.approve(job)
    await asyncio.wait_for(images.started[1].wait(), 5)
    live = orch.live_job(job.id)
    assert live is not None
    sound = [st for st in live.all_stages() if st.stage in (StageName.VOICE, StageName.MUSIC)]
    assert len(sound) == len(live.scenes) + 1
    # Every line and the bed are made while the seed still holds the only media slot.
    await asyncio.wait_for(_until(lambda: all(st.status is StageStatus.DONE for st in sound)), 5)
    assert images.running == 1 and not images.finished[1].is_set()
    images.gates[1].set()
    assert (await asyncio.wait_for(task, 15)).status is JobStatus.COMPLETED

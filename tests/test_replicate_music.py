"""The music bed through the real `replicate` client against the local Replicate emulator.

The emulator holds stable-audio-2.5's schema (duration 1-190, default 190; steps 4-8; prompt
required) and answers with real MP3 bytes, so what is checked here is what Replicate would see and
what the mixer would get.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.errors import ProviderError, StageTimeout
from pipeline.ffmpeg import ffmpeg_exe
from pipeline.moods import MUSIC_STYLES, Mood, mood_preset
from pipeline.providers.base import MusicRequest, StageContext
from pipeline.providers.offline_music import OfflineMusicGenerator, build_music_provider
from pipeline.providers.replicate_music import ReplicateMusicGenerator, stable_audio_input
from pipeline.providers.replicate_predictions import TERMINAL
from pipeline.retry import classify
from tests.emulators.fake_replicate import STABLE_AUDIO_REF, FakeReplicate, validate_input

MODEL_PATH = f"/v1/models/{STABLE_AUDIO_REF}/predictions"


@pytest.fixture
async def fake() -> AsyncIterator[FakeReplicate]:
    async with FakeReplicate(time_factor=0.1) as f:
        yield f


def _settings(fake: FakeReplicate, tmp_path: Path, **env: Any) -> Settings:
    values = {
        "REPLICATE_API_TOKEN": FakeReplicate.API_TOKEN, "REPLICATE_BASE_URL": fake.base_url,
        "JANT_ALLOWED_MEDIA_HOSTS": "127.0.0.1", "JANT_POLL_INTERVAL_S": 0.01, "JANT_MUSIC_DEADLINE_S": 10, **env,
    }  # fmt: skip
    return Settings(JANT_DATA_DIR=tmp_path / "data", **values)


@pytest.fixture
async def gen(fake: FakeReplicate, tmp_path: Path) -> AsyncIterator[ReplicateMusicGenerator]:
    g = ReplicateMusicGenerator(_settings(fake, tmp_path))
    yield g
    await g.aclose()


class Recorder:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.notes: list[str | None] = []

    def ctx(self, *, existing: str | None = None, check: Any = None) -> StageContext:
        async def on_prediction(pid: str) -> None:
            if check is not None:
                check(pid)
            self.ids.append(pid)

        async def on_progress(_: float, note: str | None) -> None:
            self.notes.append(note)

        return StageContext(
            job_id="j1", scene_index=-1, stage="music", attempt=1,  # type: ignore[arg-type]
            existing_prediction_id=existing, on_progress=on_progress, on_prediction=on_prediction,
        )  # fmt: skip


def _request(tmp_path: Path, duration: float = 29.6, mood: str = "luxury", seed: int | None = 42) -> MusicRequest:
    return MusicRequest(mood=mood_preset(mood), duration=duration, dest=tmp_path / "music.mp3", seed=seed)


def _creates(fake: FakeReplicate) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and r.path in (MODEL_PATH, "/v1/predictions")]


def _audio_seconds(path: Path) -> float:
    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    assert re.search(r"Stream #\d+:\d+.*?: Audio: mp3", err), err
    m = re.search(r"Duration: (\d+):(\d+):([\d.]+)", err)
    assert m, err
    return int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])


async def test_one_bed_is_created_by_model_with_its_duration_and_an_instrumental_prompt(
    fake: FakeReplicate, gen: ReplicateMusicGenerator, tmp_path: Path
) -> None:
    rec = Recorder()

    def not_finished_yet(pid: str) -> None:
        assert fake.predictions[pid].status not in TERMINAL, "the id must be stored before the prediction ends"

    result = await gen.compose(_request(tmp_path), rec.ctx(check=not_finished_yet))
    (create,) = _creates(fake)
    # An official model: created by name, no version in the body.
    assert create.path == MODEL_PATH and "version" not in create.json
    inp = create.json["input"]
    schema = fake.models[STABLE_AUDIO_REF].versions[fake.models[STABLE_AUDIO_REF].latest_version].openapi_schema
    assert validate_input(schema, inp) == [] and fake.unknown_inputs == []
    assert inp["duration"] == 30  # always sent (the default is 190 s), whole seconds, never short
    assert inp["seed"] == 42 == result.seed
    style = MUSIC_STYLES[Mood.LUXURY]
    assert inp["prompt"].startswith(style.prompt) and "no vocals" in inp["prompt"]
    assert rec.ids == [result.prediction_id]
    assert result.predict_time == pytest.approx(fake.prediction(result.prediction_id)["metrics"]["predict_time"])
    assert result.cost_usd == pytest.approx(0.20)
    # Downloaded at once, as real audio of the length that was asked for.
    assert _audio_seconds(result.path) == pytest.approx(30.0, abs=0.1)
    assert rec.notes[0] == "waiting for a GPU" and any(n and n.startswith("composing the music") for n in rec.notes)


def test_the_emulator_rejects_what_stable_audio_rejects() -> None:
    model = FakeReplicate().models[STABLE_AUDIO_REF]
    schema = model.versions[model.latest_version].openapi_schema
    fields = {e["field"] for e in validate_input(schema, {"duration": 191, "steps": 50, "cfg_scale": 0.5})}
    assert fields == {"input", "input.duration", "input.steps", "input.cfg_scale"}  # input: prompt is required
    assert validate_input(schema, {"prompt": "x", "duration": 2.5})  # an integer, not a fraction
    # Longer ads are clamped to the model's limit rather than refused after paying.
    assert stable_audio_input(MusicRequest(mood_preset("tech"), 400.0, Path("x")), 1)["duration"] == 190


async def test_the_client_is_refused_without_a_duration_in_range(fake: FakeReplicate, tmp_path: Path) -> None:
    import replicate
    from replicate.exceptions import ReplicateError

    client = replicate.Client(api_token=FakeReplicate.API_TOKEN, base_url=fake.base_url)
    with pytest.raises(ReplicateError) as ei:
        await client.predictions.async_create(model=STABLE_AUDIO_REF, input={"prompt": "a bed", "duration": 0})
    assert ei.value.status == 422 and "duration" in str(ei.value.detail)


@pytest.mark.parametrize(
    ("outcome", "retry", "words"),
    [
        ("aborted", True, "aborted"),
        ("fail_infra", True, "code: PA"),
        ("fail:Prompt contains disallowed content", False, "disallowed content"),
    ],
)
async def test_a_failed_or_aborted_bed_surfaces_as_the_usual_errors(
    fake: FakeReplicate, gen: ReplicateMusicGenerator, tmp_path: Path, outcome: str, retry: bool, words: str
) -> None:
    fake.script(STABLE_AUDIO_REF, outcome)
    with pytest.raises(ProviderError) as ei:
        await gen.compose(_request(tmp_path), Recorder().ctx())
    assert words in str(ei.value) and "Music bed" in str(ei.value)
    assert classify(ei.value).retry is retry
    assert fake.counts.creates[STABLE_AUDIO_REF] == 1
    assert not (tmp_path / "music.mp3").exists()


async def test_a_bed_past_its_deadline_is_cancelled(fake: FakeReplicate, tmp_path: Path) -> None:
    fake.script(STABLE_AUDIO_REF, "never")
    g = ReplicateMusicGenerator(_settings(fake, tmp_path, JANT_MUSIC_DEADLINE_S=0.5))
    try:
        with pytest.raises(StageTimeout):
            await g.compose(_request(tmp_path), Recorder().ctx())
    finally:
        await g.aclose()
    (pid,) = fake.predictions
    assert fake.prediction(pid)["status"] == "canceled"


async def test_a_restart_resumes_the_stored_prediction_without_creating_another(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    fake.set_latency(STABLE_AUDIO_REF, processing=5.0)  # ×0.1
    first = ReplicateMusicGenerator(_settings(fake, tmp_path))
    rec = Recorder()
    task = asyncio.create_task(first.compose(_request(tmp_path), rec.ctx()))
    async with asyncio.timeout(5):
        while not rec.ids:  # noqa: ASYNC110 - bounded by the timeout
            await asyncio.sleep(0.01)
    task.cancel()  # the bot dies; the id is in storage
    with pytest.raises(asyncio.CancelledError):
        await task
    await first.aclose()
    again = ReplicateMusicGenerator(_settings(fake, tmp_path))
    try:
        result = await again.compose(_request(tmp_path), Recorder().ctx(existing=rec.ids[0]))
    finally:
        await again.aclose()
    assert result.prediction_id == rec.ids[0]
    assert fake.counts.creates[STABLE_AUDIO_REF] == 1 and len(_creates(fake)) == 1
    assert _audio_seconds(result.path) == pytest.approx(30.0, abs=0.1)


def test_jant_music_picks_the_provider(tmp_path: Path) -> None:
    token = {"REPLICATE_API_TOKEN": "r8_fake_test_token"}
    cases = [
        ({}, OfflineMusicGenerator, "REPLICATE_API_TOKEN is not set"),
        (token, ReplicateMusicGenerator, None),
        ({**token, "JANT_OFFLINE": "1"}, OfflineMusicGenerator, "JANT_OFFLINE"),
        ({**token, "JANT_MUSIC": "offline"}, OfflineMusicGenerator, "JANT_MUSIC=offline"),
        ({"JANT_MUSIC": "replicate"}, OfflineMusicGenerator, "REPLICATE_API_TOKEN is not set"),
        ({**token, "JANT_MUSIC": "replicate", "JANT_OFFLINE": "1"}, OfflineMusicGenerator, "JANT_OFFLINE"),
        ({**token, "JANT_MUSIC": "none"}, type(None), "without a music bed"),
    ]
    for env, kind, notice in cases:
        provider, said = build_music_provider(Settings(JANT_DATA_DIR=tmp_path, **env))
        assert type(provider) is kind, env
        assert (said is None) if notice is None else (said is not None and notice in said), (env, said)

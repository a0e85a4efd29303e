"""Scene voiceover lines through the real clients: MiniMax TTS on the Replicate emulator, an
OpenAI-protocol speech server on the OpenAI emulator, and the offline Piper voice for real.

Stories: a French line becomes one schema-valid prediction whose audio lands on disk and is measured;
a bot killed mid-line resumes by the stored prediction id without paying again; a failed or aborted
prediction gets the usual verdict; a voice MiniMax does not have is refused before anything is paid;
a self-hosted speech server's WAV is written and measured; the offline voice speaks English and says
plainly that it does not speak French.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
import replicate
from replicate.exceptions import ReplicateError

from pipeline.config import Settings
from pipeline.errors import ProviderError, StageTimeout, VoiceInputRejected, VoiceUnavailable
from pipeline.models import StageName
from pipeline.providers import offline_voice, voice_selection
from pipeline.providers.audio_length import measured_duration
from pipeline.providers.base import StageContext, VoiceRequest
from pipeline.providers.media_download import looks_like
from pipeline.providers.openai_voice import OpenAICompatibleVoiceGenerator, speech_retirement_warning
from pipeline.providers.replicate_voice import ReplicateVoiceGenerator, minimax_voices
from pipeline.retry import classify
from tests.emulators.fake_openai import SPEECH_CONTENT_TYPES, FakeOpenAI
from tests.emulators.fake_replicate import MINIMAX_VOICES, FakeReplicate, validate_input
from tests.emulators.speech_audio import speech_bytes, speech_seconds

TTS = "minimax/speech-02-turbo"
LINE_FR = "Lumen suit votre journée : une lumière froide le matin, douce le soir."
LINE_EN = "Meet Lumen. The desk lamp that follows your day, and dims itself at night."


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture
async def fake() -> AsyncIterator[FakeReplicate]:
    async with FakeReplicate(time_factor=0.1) as f:
        yield f


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as f:
        yield f


class Recorder:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.seen = asyncio.Event()

    def ctx(self, existing: str | None = None) -> StageContext:
        async def on_prediction(pid: str) -> None:
            self.ids.append(pid)
            self.seen.set()

        return StageContext(
            job_id="j1", scene_index=2, stage=StageName.SEED, attempt=1, existing_prediction_id=existing,
            on_prediction=on_prediction,
        )  # fmt: skip


def replicate_settings(fake: FakeReplicate, tmp_path: Path, **env: Any) -> Settings:
    values = {
        "REPLICATE_API_TOKEN": FakeReplicate.API_TOKEN, "REPLICATE_BASE_URL": fake.base_url,
        "JANT_ALLOWED_MEDIA_HOSTS": "127.0.0.1", "JANT_POLL_INTERVAL_S": 0.01, "JANT_RETRY_BACKOFF_S": 0.02,
        "JANT_VOICE_DEADLINE_S": 10, **env,
    }  # fmt: skip
    return Settings(JANT_DATA_DIR=tmp_path / "data", **values)


@pytest.fixture
async def tts(fake: FakeReplicate, tmp_path: Path) -> AsyncIterator[ReplicateVoiceGenerator]:
    gen = ReplicateVoiceGenerator(replicate_settings(fake, tmp_path))
    yield gen
    await gen.aclose()


def creates(fake: FakeReplicate) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and r.path.endswith("/predictions")]


def wav_seconds(path: Path) -> float:
    with wave.open(io.BytesIO(path.read_bytes())) as w:
        return w.getnframes() / w.getframerate()


# ------------------------------------------------------------------------------------ Replicate


async def test_a_french_line_is_one_schema_valid_prediction_measured_and_priced(
    fake: FakeReplicate, tts: ReplicateVoiceGenerator, tmp_path: Path
) -> None:
    rec = Recorder()
    result = await tts.synthesize(VoiceRequest(LINE_FR, tmp_path / "voice-2.wav", language="fr"), rec.ctx())
    (create,) = creates(fake)
    assert create.path == f"/v1/models/{TTS}/predictions" and "version" not in create.json
    inp = create.json["input"]
    schema = fake.models[TTS].versions[fake.models[TTS].latest_version].openapi_schema
    assert validate_input(schema, inp) == [] and fake.unknown_inputs == []
    assert (inp["text"], inp["voice_id"], inp["language_boost"], inp["audio_format"]) == (
        LINE_FR, "Wise_Woman", "French", "wav",
    )  # fmt: skip
    assert "english_normalization" not in inp
    assert rec.ids == [result.prediction_id] and fake.counts.creates[TTS] == 1
    assert wav_seconds(result.path) == pytest.approx(speech_seconds(LINE_FR), abs=0.02)
    assert result.duration == pytest.approx(speech_seconds(LINE_FR), abs=0.02)
    assert result.cost_usd == pytest.approx(len(LINE_FR) * 0.015 / 1000)
    assert result.words is not None and [w.word for w in result.words] == LINE_FR.split()
    assert result.words[-1].end == pytest.approx(result.duration, abs=0.01)


async def test_english_lines_ask_for_english_and_number_reading(
    fake: FakeReplicate, tts: ReplicateVoiceGenerator, tmp_path: Path
) -> None:
    req = VoiceRequest(LINE_EN, tmp_path / "v.wav", language="en-US", voice_id="Deep_Voice_Man", speed=1.25)
    await tts.synthesize(req, Recorder().ctx())
    inp = creates(fake)[0].json["input"]
    assert (inp["language_boost"], inp["english_normalization"], inp["voice_id"], inp["speed"]) == (
        "English", True, "Deep_Voice_Man", 1.25,
    )  # fmt: skip


async def test_the_emulator_answers_out_of_schema_inputs_with_replicates_422(fake: FakeReplicate) -> None:
    client = replicate.Client(api_token=FakeReplicate.API_TOKEN, base_url=fake.base_url)
    bad = {"text": "hi", "speed": 3, "emotion": "excited", "sample_rate": 48000, "language_boost": "fr"}
    with pytest.raises(ReplicateError) as err:
        await client.predictions.async_create(model=TTS, input=bad)
    assert err.value.status == 422 and err.value.title == "Input validation failed"
    for field in ("input.speed", "input.emotion", "input.sample_rate", "input.language_boost"):
        assert field in (err.value.detail or "")
    assert fake.counts.total_creates == 0


async def test_a_bot_killed_mid_line_resumes_by_its_stored_id_without_a_second_create(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    fake.script(TTS, "slow:1.5")
    first = ReplicateVoiceGenerator(replicate_settings(fake, tmp_path))
    rec = Recorder()
    task = asyncio.create_task(first.synthesize(VoiceRequest(LINE_EN, tmp_path / "v.wav"), rec.ctx()))
    await asyncio.wait_for(rec.seen.wait(), timeout=5)
    task.cancel()  # the process dies; only the stored id survives
    with pytest.raises(asyncio.CancelledError):
        await task
    await first.aclose()
    assert fake.predictions[rec.ids[0]].status not in ("succeeded", "failed")

    second = ReplicateVoiceGenerator(replicate_settings(fake, tmp_path))
    try:
        result = await second.synthesize(VoiceRequest(LINE_EN, tmp_path / "v.wav"), Recorder().ctx(rec.ids[0]))
    finally:
        await second.aclose()
    assert result.prediction_id == rec.ids[0] and fake.counts.creates[TTS] == 1
    assert result.duration == pytest.approx(speech_seconds(LINE_EN), abs=0.02)


@pytest.mark.parametrize(
    ("outcome", "retry", "says"),
    [("fail_infra", True, "Replicate's side"), ("fail:invalid params, unsupported characters", False, "failed"),
     ("aborted", True, "aborted")],
)  # fmt: skip
async def test_failed_and_aborted_predictions_get_the_usual_verdict(
    fake: FakeReplicate, tts: ReplicateVoiceGenerator, tmp_path: Path, outcome: str, retry: bool, says: str
) -> None:
    fake.script(TTS, outcome)
    with pytest.raises(ProviderError) as err:
        await tts.synthesize(VoiceRequest(LINE_EN, tmp_path / "v.wav"), Recorder().ctx())
    assert classify(err.value).retry is retry and says in str(err.value) and "Voiceover" in str(err.value)
    assert not (tmp_path / "v.wav").exists()


@pytest.mark.parametrize(
    ("text", "voice", "speed", "says"),
    [(LINE_EN, "Morgan_Freeman", 1.0, "not one of MiniMax's voices"), ("x" * 5001, None, 1.0, "5001 characters"),
     ("Buy now <#30#> please", None, 1.0, "pause marker"), ("   ", None, 1.0, "empty"),
     (LINE_EN, None, 2.5, "outside MiniMax's range")],
)  # fmt: skip
async def test_what_minimax_would_refuse_is_refused_before_anything_is_paid(
    fake: FakeReplicate,
    tts: ReplicateVoiceGenerator,
    tmp_path: Path,
    text: str,
    voice: str | None,
    speed: float,
    says: str,
) -> None:
    with pytest.raises(VoiceInputRejected) as err:
        await tts.synthesize(VoiceRequest(text, tmp_path / "v.wav", voice_id=voice, speed=speed), Recorder().ctx())
    assert says in str(err.value) and classify(err.value).retry is False
    assert fake.counts.total_creates == 0 and creates(fake) == []
    if voice is not None:
        assert "Wise_Woman" in err.value.hint and "jant doctor" in err.value.hint


async def test_the_emulator_fails_a_voice_minimax_does_not_have_after_the_create(fake: FakeReplicate) -> None:
    """Why the check above matters: past it, the create is paid and the prediction fails."""
    client = replicate.Client(api_token=FakeReplicate.API_TOKEN, base_url=fake.base_url)
    p = await client.predictions.async_create(model=TTS, input={"text": "Hello", "voice_id": "Morgan_Freeman"})
    done = await fake.wait_for_status(p.id)
    assert done["status"] == "failed" and "voice id not exist" in done["error"] and fake.counts.creates[TTS] == 1


async def test_a_line_stuck_past_its_deadline_is_cancelled_on_replicate(fake: FakeReplicate, tmp_path: Path) -> None:
    fake.script(TTS, "never")
    gen = ReplicateVoiceGenerator(replicate_settings(fake, tmp_path, JANT_VOICE_DEADLINE_S=0.5))
    rec = Recorder()
    try:
        with pytest.raises(StageTimeout):
            await gen.synthesize(VoiceRequest(LINE_EN, tmp_path / "v.wav"), rec.ctx())
    finally:
        await gen.aclose()
    assert fake.predictions[rec.ids[0]].status == "canceled" and fake.counts.cancels == 1


def test_the_voice_list_for_doctor_is_minimaxs() -> None:
    assert minimax_voices() == MINIMAX_VOICES and "Wise_Woman" in minimax_voices()


# --------------------------------------------------------------------------------- openai-compatible


def speech_settings(fake_openai: FakeOpenAI, tmp_path: Path, **env: Any) -> Settings:
    values = {"JANT_TTS_BASE_URL": fake_openai.base_url, "JANT_TTS_API_KEY": FakeOpenAI.API_KEY, **env}
    return Settings(JANT_DATA_DIR=tmp_path / "data", JANT_VOICE="openai-compatible", **values)


async def test_a_speech_server_line_is_written_as_playable_audio_of_the_right_length(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    gen = OpenAICompatibleVoiceGenerator(speech_settings(fake_openai, tmp_path, JANT_VOICE_ID="nova"))
    try:
        result = await gen.synthesize(VoiceRequest(LINE_EN, tmp_path / "v.wav", speed=1.5), Recorder().ctx())
    finally:
        await gen.aclose()
    (req,) = fake_openai.speech_requests
    assert req.json == {"model": "tts-1", "voice": "nova", "input": LINE_EN, "response_format": "wav", "speed": 1.5}
    expected = speech_seconds(LINE_EN, 1.5)
    assert wav_seconds(result.path) == pytest.approx(expected, abs=0.02)
    assert result.duration == pytest.approx(expected, abs=0.02)
    assert result.words is not None and len(result.words) == len(LINE_EN.split())


@pytest.mark.parametrize(
    ("status", "kwargs", "error", "retry", "says"),
    [(404, {"model": "tts-2"}, ProviderError, False, "JANT_OPENAI_TTS_MODEL"),
     (400, {"voice": "bob"}, VoiceInputRejected, False, "Invalid value: 'bob'"),
     (400, {"text": "y" * 4097}, VoiceInputRejected, False, "4097 characters"),
     (401, {"key": "sk-wrong-key"}, ProviderError, False, "JANT_TTS_API_KEY"),
     (429, {"script": 429}, openai.RateLimitError, True, "Rate limit")],
)  # fmt: skip
async def test_speech_server_errors_say_what_to_change(
    fake_openai: FakeOpenAI,
    tmp_path: Path,
    status: int,
    kwargs: dict[str, Any],
    error: type[Exception],
    retry: bool,
    says: str,
) -> None:
    env: dict[str, Any] = {}
    if "model" in kwargs:
        env["JANT_OPENAI_TTS_MODEL"] = kwargs["model"]
    if "key" in kwargs:
        env["JANT_TTS_API_KEY"] = kwargs["key"]
    if "script" in kwargs:
        fake_openai.fail_speech(429, retry_after=0.5)
    gen = OpenAICompatibleVoiceGenerator(speech_settings(fake_openai, tmp_path, **env))
    req = VoiceRequest(kwargs.get("text", LINE_EN), tmp_path / "v.wav", voice_id=kwargs.get("voice"))
    try:
        with pytest.raises(error) as err:
            await gen.synthesize(req, Recorder().ctx())
    finally:
        await gen.aclose()
    full = str(err.value) + " " + getattr(err.value, "hint", "")
    assert says in full and classify(err.value).retry is retry
    sent = [r.status for r in fake_openai.speech_requests]
    assert sent == ([] if "text" in kwargs else [status])  # too long: refused before the request
    assert not (tmp_path / "v.wav").exists()


# What OpenAI's speech endpoint answers per response_format: (content type, how the bytes start).
OPENAI_SPEECH_FORMATS = {
    "mp3": ("audio/mpeg", (b"ID3", b"\xff\xfb", b"\xff\xf3")), "opus": ("audio/opus", (b"OggS",)),
    "aac": ("audio/aac", (b"\xff\xf1", b"\xff\xf9")), "flac": ("audio/flac", (b"fLaC",)),
    "wav": ("audio/wav", (b"RIFF",)), "pcm": ("audio/pcm", (b"",)),
}  # fmt: skip


async def test_the_speech_emulator_answers_each_format_with_its_content_type(fake_openai: FakeOpenAI) -> None:
    assert set(OPENAI_SPEECH_FORMATS) == set(SPEECH_CONTENT_TYPES)
    client = openai.AsyncOpenAI(api_key=FakeOpenAI.API_KEY, base_url=fake_openai.base_url, max_retries=0)
    try:
        for fmt, (ctype, magic) in OPENAI_SPEECH_FORMATS.items():
            raw = await client.audio.speech.with_raw_response.create(
                model="gpt-4o-mini-tts",
                voice="coral",
                input="Hello there.",
                response_format=fmt,  # type: ignore[arg-type]
            )
            assert raw.headers["content-type"] == ctype and len(raw.content) > 500
            assert raw.content.startswith(magic), fmt
    finally:
        await client.close()


def test_doctor_warns_when_the_speech_server_is_openai_itself(tmp_path: Path) -> None:
    at_openai = Settings(JANT_DATA_DIR=tmp_path, JANT_VOICE="openai-compatible")
    warning = speech_retirement_warning(at_openai, today=dt.date(2026, 12, 4))
    assert warning is not None and "2027-01-06" in warning and "33 days" in warning
    assert "JANT_TTS_BASE_URL" in warning
    self_hosted = Settings(JANT_DATA_DIR=tmp_path, JANT_TTS_BASE_URL="http://speech.lan:8000/v1")
    assert speech_retirement_warning(self_hosted) is None


def test_the_openai_key_never_goes_to_a_third_party_speech_server(tmp_path: Path) -> None:
    third = OpenAICompatibleVoiceGenerator(
        Settings(JANT_DATA_DIR=tmp_path, OPENAI_API_KEY="sk-secret-openai", JANT_TTS_BASE_URL="http://speech.lan/v1")
    )
    assert third.client.api_key != "sk-secret-openai"
    openai_itself = OpenAICompatibleVoiceGenerator(Settings(JANT_DATA_DIR=tmp_path, OPENAI_API_KEY="sk-secret-openai"))
    assert openai_itself.client.api_key == "sk-secret-openai"


# ------------------------------------------------------------------------------------------- offline

needs_piper = pytest.mark.skipif(not offline_voice.piper_installed(), reason="the jant[voice] extra is not installed")


@needs_piper
async def test_the_offline_voice_speaks_an_english_line_and_measures_it(tmp_path: Path) -> None:
    gen = offline_voice.PiperVoiceGenerator()
    result = await gen.synthesize(VoiceRequest(LINE_EN, tmp_path / "v.wav"), Recorder().ctx())
    decoded = await measured_duration(result.path)  # ffmpeg decodes every sample
    assert result.duration == pytest.approx(decoded, abs=0.02)
    # People speak 10–20 characters a second; an empty or truncated file would not.
    assert len(LINE_EN) / 20 < result.duration < len(LINE_EN) / 8
    assert result.words is not None and [w.word for w in result.words] == LINE_EN.split()
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and result.words[-1].end == pytest.approx(result.duration, abs=0.01)
    # The second sentence starts after the first one's audio and the breath between them.
    second = LINE_EN.split().index("The")
    assert result.words[second].start > result.words[second - 1].end
    with wave.open(str(result.path)) as w:
        pcm = w.readframes(w.getnframes())
    samples = memoryview(pcm).cast("h")
    assert max(abs(s) for s in samples) > 8000  # speech, not silence


@needs_piper
async def test_the_offline_voice_says_it_does_not_speak_french(tmp_path: Path) -> None:
    gen = offline_voice.PiperVoiceGenerator()
    with pytest.raises(VoiceUnavailable) as err:
        await gen.synthesize(VoiceRequest(LINE_FR, tmp_path / "v.wav", language="fr"), Recorder().ctx())
    assert str(err.value) == "This offline voice does not speak French; the ad goes on with captions and music."
    assert err.value.language == "fr" and classify(err.value).retry is False
    assert not (tmp_path / "v.wav").exists()


# ----------------------------------------------------------------------------------------- selection


async def test_auto_picks_replicate_with_a_token_then_offline_then_none(
    fake: FakeReplicate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    voice, notice = voice_selection.build_voice_provider(replicate_settings(fake, tmp_path))
    assert isinstance(voice, ReplicateVoiceGenerator) and notice is None
    await voice.aclose()

    if offline_voice.piper_installed():  # `make test` installs the extra; a bare dev install has none
        voice, notice = voice_selection.build_voice_provider(Settings(JANT_DATA_DIR=tmp_path))
        assert isinstance(voice, offline_voice.PiperVoiceGenerator) and notice and "offline voice" in notice

    monkeypatch.setattr(voice_selection, "piper_installed", lambda: False)
    for choice in ("auto", "offline"):
        voice, notice = voice_selection.build_voice_provider(Settings(JANT_DATA_DIR=tmp_path, JANT_VOICE=choice))
        assert voice is None and notice is not None and notice.startswith("NO VOICEOVER")
        assert "jant[voice]" in notice and "\n" not in notice

    voice, notice = voice_selection.build_voice_provider(Settings(JANT_DATA_DIR=tmp_path, JANT_VOICE="none"))
    assert voice is None and notice is not None and "no voiceover" in notice


def test_doctor_lists_the_voices_when_the_voice_id_is_wrong(tmp_path: Path) -> None:
    env = {"REPLICATE_API_TOKEN": "r8_fake_doctor", "JANT_DATA_DIR": tmp_path}
    wrong = voice_selection.voice_doctor_problems(Settings(**env, JANT_VOICE_ID="Morgan_Freeman"))
    assert len(wrong) == 1 and "Morgan_Freeman" in wrong[0] and all(v in wrong[0] for v in MINIMAX_VOICES)
    assert voice_selection.voice_doctor_problems(Settings(**env, JANT_VOICE_ID="Calm_Woman")) == []
    at_openai = Settings(JANT_DATA_DIR=tmp_path, JANT_VOICE="openai-compatible")
    assert any("2027-01-06" in p for p in voice_selection.voice_doctor_problems(at_openai))


def test_audio_downloads_are_recognised_by_their_first_bytes() -> None:
    for fmt in ("wav", "mp3", "flac"):
        assert looks_like("audio", speech_bytes(0.5, fmt)[:16]), fmt
    assert not looks_like("audio", b"<html><body>502 Bad Gateway</body></html>"[:16])
    assert not looks_like("audio", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

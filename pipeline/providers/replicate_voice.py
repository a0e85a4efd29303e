"""Scene voiceover lines on Replicate's MiniMax text-to-speech, behind the VoiceGenerator interface.

One prediction per line, created by model name (an official model has no version to pin), with the
same lifecycle as seeds and clips (`PredictionRunner`: create pacer, id stored before the await,
shared poll budget, deadline then cancel) and the audio downloaded at once. Everything MiniMax would
refuse — an empty or over-long line, a pause marker smuggled into it, a voice it does not have, a
speed out of range — is refused here first, before a create is paid for.
"""

from __future__ import annotations

import re
from typing import Any

from pipeline.config import Settings
from pipeline.errors import VoiceInputRejected
from pipeline.providers.audio_length import measured_duration
from pipeline.providers.base import StageContext, StageResult, VoiceRequest
from pipeline.providers.replicate_media import AccountLimits, _ReplicateStage, output_url
from pipeline.providers.replicate_predictions import PredictionState
from pipeline.providers.voice_languages import base_language, minimax_language_boost
from pipeline.speech_timing import proportional_word_timings

# The system voices every MiniMax speech model on Replicate accepts (its `voice_id` description).
MINIMAX_SYSTEM_VOICES: tuple[str, ...] = (
    "Wise_Woman", "Friendly_Person", "Inspirational_girl", "Deep_Voice_Man", "Calm_Woman", "Casual_Guy",
    "Lively_Girl", "Patient_Man", "Young_Knight", "Determined_Man", "Lovely_Girl", "Decent_Boy",
    "Imposing_Manner", "Elegant_Man", "Abbess", "Sweet_Girl_2", "Exuberant_Girl",
)  # fmt: skip
MINIMAX_DEFAULT_VOICE = "Wise_Woman"
MINIMAX_MAX_CHARS = 5000  # speech-02-turbo; newer models take 10,000, the lower limit is safe for both
MINIMAX_SPEED_RANGE = (0.5, 2.0)
MINIMAX_SAMPLE_RATE = 32000
# WAV, not MP3: no encoder padding, so the measured length is the spoken length.
MINIMAX_AUDIO_FORMAT = "wav"
MINIMAX_EMOTION = "auto"  # the model reads the mood from the words

# MiniMax reads `<#1.5#>` as a 1.5 s pause: user text must not stretch the ad with it.
_PAUSE_MARKER = re.compile(r"<#\s*[\d.]+\s*#>")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def minimax_voices() -> tuple[str, ...]:
    """The voice ids `JANT_VOICE_ID` may name with the Replicate voice (for `jant doctor`)."""
    return MINIMAX_SYSTEM_VOICES


def check_minimax_request(text: str, voice_id: str, speed: float) -> None:
    """Raise VoiceInputRejected, naming what to change, for a line MiniMax would refuse or misread."""
    if voice_id not in MINIMAX_SYSTEM_VOICES:
        raise VoiceInputRejected(
            f"The voice {voice_id!r} is not one of MiniMax's voices on Replicate.",
            hint="Set JANT_VOICE_ID to one of: " + ", ".join(MINIMAX_SYSTEM_VOICES) + " (`jant doctor` lists them).",
        )
    low, high = MINIMAX_SPEED_RANGE
    if not low <= speed <= high:
        raise VoiceInputRejected(
            f"A voice speed of {speed:g} is outside MiniMax's range ({low:g}–{high:g}).",
            hint="Set JANT_VOICE_SPEED between 0.5 and 2.",
        )
    if not text.strip():
        raise VoiceInputRejected("The voiceover line is empty.", hint="Edit the scene and write what is said.")
    if len(text) > MINIMAX_MAX_CHARS:
        raise VoiceInputRejected(
            f"The voiceover line is {len(text)} characters; MiniMax speaks at most {MINIMAX_MAX_CHARS}.",
            hint="Shorten the scene's line.",
        )
    if _PAUSE_MARKER.search(text):
        raise VoiceInputRejected(
            "The voiceover line contains a pause marker like <#2#>, which the voice would read as silence.",
            hint="Remove the <#…#> from the scene's line.",
        )
    if _CONTROL.search(text):
        raise VoiceInputRejected(
            "The voiceover line contains control characters the voice cannot read.",
            hint="Retype the scene's line as plain text.",
        )


def minimax_input(request: VoiceRequest, voice_id: str) -> dict[str, Any]:
    """The prediction input: every value inside the model's schema (limits and enums)."""
    inp: dict[str, Any] = {
        "text": request.text.strip(),
        "voice_id": voice_id,
        "speed": round(float(request.speed), 2),
        "emotion": MINIMAX_EMOTION,
        "language_boost": minimax_language_boost(request.language),
        "sample_rate": MINIMAX_SAMPLE_RATE,
        "audio_format": MINIMAX_AUDIO_FORMAT,
        "channel": "mono",
    }
    if base_language(request.language) == "en":
        inp["english_normalization"] = True  # "$49" and "24/7" read the way a person says them
    return inp


def tts_progress(state: PredictionState) -> tuple[float, str] | None:
    if state.status == "starting":
        return 0.0, "waiting for the voice model"
    if state.status == "processing":
        return 30.0, "speaking"
    if state.status == "succeeded":
        return 90.0, "downloading"
    return None


class ReplicateVoiceGenerator(_ReplicateStage):
    name = "replicate-minimax-tts"

    def __init__(self, settings: Settings, *, limits: AccountLimits | None = None) -> None:
        super().__init__(
            settings, label="Voiceover", version=settings.audio.tts_model, deadline_s=settings.audio.voice_deadline_s,
            limits=limits, setting="JANT_TTS_MODEL",
            background_creates=True,  # a line takes seconds; the clips take a minute
        )  # fmt: skip
        self.price_per_char = settings.audio.tts_price_per_1k_chars / 1000

    async def synthesize(self, request: VoiceRequest, ctx: StageContext) -> StageResult:
        voice_id = request.voice_id or self.settings.audio.voice_id or MINIMAX_DEFAULT_VOICE
        if ctx.existing_prediction_id is None:  # a resumed prediction was checked when it was created
            check_minimax_request(request.text, voice_id, request.speed)
        inp = minimax_input(request, voice_id)
        state = await self.runner.run(inp, ctx, tts_progress)
        await self.downloader.fetch(output_url(state.output), request.dest, "audio")
        duration = await measured_duration(request.dest)
        spoken = str(state.input.get("text") or inp["text"])
        return StageResult(
            path=request.dest, prediction_id=state.id, predict_time=state.predict_time, duration=duration,
            words=proportional_word_timings(spoken, duration), cost_usd=round(len(spoken) * self.price_per_char, 6),
        )  # fmt: skip

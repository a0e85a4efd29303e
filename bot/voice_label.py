"""Which voice reads the lines: a provider's voice id as the storyboard card and `jant doctor` show it."""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.providers.offline_voice import PIPER_VOICE_ID, PiperVoiceGenerator
from pipeline.providers.openai_voice import DEFAULT_VOICE as OPENAI_DEFAULT_VOICE
from pipeline.providers.openai_voice import OpenAICompatibleVoiceGenerator
from pipeline.providers.replicate_voice import MINIMAX_DEFAULT_VOICE, ReplicateVoiceGenerator

# What each provider speaks in when neither the request nor JANT_VOICE_ID names a voice.
_DEFAULT_VOICE = {
    ReplicateVoiceGenerator.name: MINIMAX_DEFAULT_VOICE,
    OpenAICompatibleVoiceGenerator.name: OPENAI_DEFAULT_VOICE,
}


def voice_id_for(provider: str, settings: Settings, asked: str | None = None) -> str:
    """The voice `provider` will use: the one `asked` for with the request, else JANT_VOICE_ID, else
    the provider's default. The offline voice ships one voice, so no id applies to it."""
    if provider == PiperVoiceGenerator.name:
        return PIPER_VOICE_ID
    return asked or settings.audio.voice_id or _DEFAULT_VOICE.get(provider, "default voice")

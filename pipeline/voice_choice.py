"""Which voice one job asks for (`/makead voice:`, `jant makead --voice ID | --no-voice`), checked
against the voice provider before the storyboard is written, so a typo costs nothing."""

from __future__ import annotations

from pipeline.errors import InvalidRequest
from pipeline.providers.base import Providers, StageProvider
from pipeline.stage_kinds import StageName

NO_VOICE = "none"  # the `/makead voice:` value that means "no voiceover"


def provider_voices(provider: StageProvider | None) -> tuple[str, ...] | None:
    """The voice ids `provider` accepts, when it has a fixed list (None: any id, or no provider)."""
    if provider is None:
        return None
    if provider.name == "replicate-minimax-tts":
        from pipeline.providers.replicate_voice import minimax_voices

        return minimax_voices()
    if provider.name == "offline-piper":
        from pipeline.providers.offline_voice import PIPER_VOICE_ID

        return (PIPER_VOICE_ID,)
    settings = getattr(provider, "settings", None)
    if provider.name == "openai-compatible-tts" and settings is not None:
        from pipeline.providers.openai_voice import OPENAI_VOICES, points_at_openai

        # A self-hosted speech server has voices of its own; only OpenAI's list is known.
        return OPENAI_VOICES if points_at_openai(settings) else None
    return None


def check_voice_choice(providers: Providers, voice: str | None, speak: bool) -> None:
    """Raise InvalidRequest, saying what to pick instead, for a voice this Jant cannot speak in."""
    if voice is None:
        return
    if not speak:
        raise InvalidRequest(f"You asked for the voice {voice!r} and for no voice at all: pick one of the two.")
    provider = providers.get(StageName.VOICE)
    if provider is None:
        why = providers.reasons.get(StageName.VOICE, "no voice provider is set up")
        raise InvalidRequest(f"There is no voice to choose {voice!r} from: {why}")
    voices = provider_voices(provider)
    if voices is not None and voice not in voices:
        raise InvalidRequest(
            f"{voice!r} is not one of the voices of {provider.name}; choose one of: {', '.join(voices)}."
        )


def check_brand_voice(providers: Providers, kit_voice: str | None, *, request_voice: str | None, speak: bool) -> None:
    """Raise InvalidRequest for a brand kit's voice that the voice provider does not have, when the
    kit's voice is the one the ad would be spoken in (the request names none and the ad speaks).
    A provider that takes any id, or no voice provider at all, accepts it: the ad is then made as
    the provider can."""
    if kit_voice is None or request_voice is not None or not speak:
        return
    provider = providers.get(StageName.VOICE)
    voices = provider_voices(provider)
    if provider is not None and voices is not None and kit_voice not in voices:
        raise InvalidRequest(
            f"The brand kit's voice {kit_voice!r} is not one of the voices of {provider.name}; "
            f"set voice to one of: {', '.join(voices)}."
        )

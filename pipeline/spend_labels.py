"""What `/spend` and `jant spend` call each model a server paid for: the names a marketer knows.

Clips are named by the video model the job chose (its registry label and key: "Wan 2.2 i2v fast
(wan-2.2-i2v-fast)"), read from the job's request, so two ads on two models are two rows. Seeds, voice
and music are named by the model id their setting holds (JANT_SDXL_MODEL, JANT_TTS_MODEL, …): a
prediction row records its provider, not the model id it ran, so a setting changed this month renames
that month's earlier rows too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from pipeline.config import Settings
from pipeline.stage_kinds import STAGE_KINDS, StageName
from pipeline.video_models import VIDEO_MODELS, video_model

# Provider name (as stored with each prediction) → the setting holding the model it calls.
_MODEL_OF_PROVIDER: Mapping[str, Callable[[Settings], str]] = {
    "replicate-sdxl": lambda s: s.replicate.sdxl_model,
    "replicate-minimax-tts": lambda s: s.audio.tts_model,
    "openai-compatible-tts": lambda s: s.audio.openai_tts_model,
    "replicate-music": lambda s: s.audio.music_model,
}
_ROLES: Mapping[str, str] = {
    StageName.SEED: "seed images",
    StageName.CLIP: "clips",
    StageName.VOICE: "voice",
    StageName.MUSIC: "music bed",
}


def model_label(stage: str, provider: str, video_key: str | None, settings: Settings) -> str:
    """The name of what one prediction ran, for a spend report."""
    if stage == StageName.CLIP:
        if video_key is None or video_key in VIDEO_MODELS:  # None: a job from before the registry (SVD)
            entry = video_model(video_key)
            return f"{entry.label} ({entry.key})"
        return video_key  # a model a newer jant knows
    kind = STAGE_KINDS.get(stage)
    role = _ROLES.get(stage) or (kind.noun if kind is not None else stage)
    model = _MODEL_OF_PROVIDER.get(provider)
    return f"{model(settings) if model is not None else provider} ({role})"


def spend_by_model(
    rows: Iterable[tuple[str, str, str | None, float, int]], settings: Settings
) -> list[tuple[str, float, int]]:
    """(stage, provider, video model key, usd, predictions) rows → (label, usd, predictions), rows with
    the same label summed, dearest first."""
    totals: dict[str, tuple[float, int]] = {}
    for stage, provider, video_key, usd, count in rows:
        label = model_label(stage, provider, video_key, settings)
        had_usd, had_count = totals.get(label, (0.0, 0))
        totals[label] = (had_usd + usd, had_count + count)
    return sorted(((k, round(u, 6), n) for k, (u, n) in totals.items()), key=lambda r: (-r[1], r[0]))

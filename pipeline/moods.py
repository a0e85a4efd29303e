"""Mood presets: the look every scene of an ad shares.

A mood is more than an adjective: its style keywords, palette and aesthetic direction are folded
into every scene's image prompt (real providers) and drive the colours of offline previews, so the
scenes of one ad look like one ad.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Mood(StrEnum):
    ENERGETIC = "energetic"
    LUXURY = "luxury"
    PLAYFUL = "playful"
    MINIMAL = "minimal"
    CINEMATIC = "cinematic"
    TECH = "tech"


class MoodPreset(BaseModel):
    model_config = ConfigDict(frozen=True)

    mood: Mood
    label: str
    style_keywords: tuple[str, ...]
    palette: tuple[str, ...]  # hex colours, darkest/background first
    aesthetic: str
    motion_bucket_id: int  # SVD motion amount: calm moods move less


MOOD_PRESETS: dict[Mood, MoodPreset] = {
    Mood.ENERGETIC: MoodPreset(
        mood=Mood.ENERGETIC,
        label="Energetic",
        style_keywords=("dynamic angles", "motion blur accents", "bold saturated colour", "high contrast"),
        palette=("#1a0933", "#ff3d00", "#ffc400", "#00e5ff"),
        aesthetic="fast, punchy sports-commercial look with bold diagonals and bursts of colour",
        motion_bucket_id=160,
    ),
    Mood.LUXURY: MoodPreset(
        mood=Mood.LUXURY,
        label="Luxury",
        style_keywords=("soft rim light", "rich textures", "gold accents", "shallow depth of field"),
        palette=("#0b0b0f", "#1f1b16", "#c9a227", "#f5e6c4"),
        aesthetic="slow, elegant editorial photography with deep shadows and warm gold highlights",
        motion_bucket_id=90,
    ),
    Mood.PLAYFUL: MoodPreset(
        mood=Mood.PLAYFUL,
        label="Playful",
        style_keywords=("bright pastel colours", "rounded shapes", "whimsical props", "soft daylight"),
        palette=("#fff4e6", "#ff6f91", "#ffc75f", "#4d8076"),
        aesthetic="cheerful, toy-like sets with candy colours and a sense of fun",
        motion_bucket_id=140,
    ),
    Mood.MINIMAL: MoodPreset(
        mood=Mood.MINIMAL,
        label="Minimal",
        style_keywords=("clean negative space", "soft even light", "matte surfaces", "single subject"),
        palette=("#f4f4f2", "#d9d9d6", "#2b2b2b", "#8a8a85"),
        aesthetic="calm Scandinavian product photography, one subject, lots of air",
        motion_bucket_id=80,
    ),
    Mood.CINEMATIC: MoodPreset(
        mood=Mood.CINEMATIC,
        label="Cinematic",
        style_keywords=("anamorphic lens", "volumetric light", "film grain", "teal and orange grade"),
        palette=("#06141b", "#11212d", "#ff8c42", "#4ecdc4"),
        aesthetic="moody film still with dramatic lighting and a story in every frame",
        motion_bucket_id=110,
    ),
    Mood.TECH: MoodPreset(
        mood=Mood.TECH,
        label="Tech",
        style_keywords=("sleek surfaces", "neon edge light", "clean UI glow", "studio product shot"),
        palette=("#050a1a", "#0f1f3d", "#3d8bff", "#7df9ff"),
        aesthetic="crisp launch-keynote look: dark studio, glowing accents, precise reflections",
        motion_bucket_id=127,
    ),
}


def mood_preset(mood: Mood | str) -> MoodPreset:
    """The preset for a mood name; raises ValueError naming the valid moods."""
    try:
        return MOOD_PRESETS[Mood(str(mood).strip().lower())]
    except ValueError:
        valid = ", ".join(m.value for m in Mood)
        raise ValueError(f"unknown mood {mood!r}; choose one of: {valid}") from None

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


# -- The music bed each mood gets ------------------------------------------------------------------


class MusicStyle(BaseModel):
    """How a mood sounds: the offline synthesiser plays it, the music model is prompted with it."""

    model_config = ConfigDict(frozen=True)

    bpm: int
    root_midi: int  # the key's tonic (MIDI note number, 57 = A3)
    # Chords as semitones above the tonic; one chord per bar, looped.
    progression: tuple[tuple[int, ...], ...]
    pad_attack_s: float  # how slowly each chord swells in: no hard onsets
    pulse: int  # plucked notes per beat over the pad (0: pad only)
    pluck_decay_s: float
    # Relative strength of partials 1..n of every note: few, falling partials sound soft.
    harmonics: tuple[float, ...]
    lowpass_hz: int  # the top of the bed: nothing bright enough to fight the voice
    bass: bool
    prompt: str  # for a text-to-music model; always an instrumental


MUSIC_STYLES: dict[Mood, MusicStyle] = {
    Mood.ENERGETIC: MusicStyle(
        bpm=124,
        root_midi=52,
        progression=((0, 4, 7), (9, 12, 16), (5, 9, 12), (7, 11, 14)),  # E: I-vi-IV-V
        pad_attack_s=0.08,
        pulse=2,
        pluck_decay_s=0.16,
        harmonics=(1.0, 0.45, 0.25, 0.12),
        lowpass_hz=3200,
        bass=True,
        prompt="upbeat energetic electronic pop instrumental, driving four-on-the-floor beat, bright synth "
        "plucks, 124 BPM, E major, advertising background music",
    ),
    Mood.LUXURY: MusicStyle(
        bpm=72,
        root_midi=50,
        progression=((0, 4, 7, 11), (9, 12, 16, 19), (2, 5, 9, 12), (7, 11, 14, 17)),  # D maj7
        pad_attack_s=0.9,
        pulse=0,
        pluck_decay_s=0.6,
        harmonics=(1.0, 0.3, 0.08),
        lowpass_hz=2000,
        bass=True,
        prompt="elegant slow luxury lounge instrumental, warm electric piano and soft strings, 72 BPM, D major "
        "seventh chords, sophisticated fashion advert background music",
    ),
    Mood.PLAYFUL: MusicStyle(
        bpm=112,
        root_midi=60,
        progression=((0, 4, 7), (5, 9, 12), (7, 11, 14), (0, 4, 7)),  # C: I-IV-V-I
        pad_attack_s=0.25,
        pulse=2,
        pluck_decay_s=0.12,
        harmonics=(1.0, 0.0, 0.3, 0.0, 0.1),
        lowpass_hz=3600,
        bass=True,
        prompt="playful bouncy ukulele and glockenspiel instrumental, 112 BPM, C major, "
        "cheerful quirky advert background music",
    ),
    Mood.MINIMAL: MusicStyle(
        bpm=84,
        root_midi=57,
        progression=((0, 7, 12), (5, 12, 17), (3, 10, 15), (7, 14, 19)),  # A: open fifths
        pad_attack_s=1.2,
        pulse=0,
        pluck_decay_s=0.8,
        harmonics=(1.0, 0.15),
        lowpass_hz=1800,
        bass=False,
        prompt="calm minimal ambient instrumental, soft felt piano and airy pad, 84 BPM, A minor, sparse and "
        "clean, Scandinavian design advert background music",
    ),
    Mood.CINEMATIC: MusicStyle(
        bpm=90,
        root_midi=50,
        progression=((0, 3, 7), (8, 12, 15), (3, 7, 10), (10, 14, 17)),  # D minor: i-VI-III-VII
        pad_attack_s=1.0,
        pulse=1,
        pluck_decay_s=0.5,
        harmonics=(1.0, 0.5, 0.3, 0.15, 0.08),
        lowpass_hz=2400,
        bass=True,
        prompt="cinematic emotional orchestral instrumental, swelling strings, low piano ostinato, 90 BPM, "
        "D minor, epic film trailer style advert background music",
    ),
    Mood.TECH: MusicStyle(
        bpm=118,
        root_midi=55,
        progression=((0, 3, 7), (0, 3, 8), (-2, 2, 5), (-4, 0, 3)),  # G minor, moving bass
        pad_attack_s=0.3,
        pulse=4,
        pluck_decay_s=0.07,
        harmonics=(1.0, 0.5, 0.33, 0.25),
        lowpass_hz=2800,
        bass=True,
        prompt="modern tech product launch instrumental, pulsing arpeggiated synths, deep sub bass, 118 BPM, "
        "G minor, clean futuristic keynote background music",
    ),
}


def music_style(mood: Mood | str) -> MusicStyle:
    return MUSIC_STYLES[mood_preset(mood).mood]

"""Prompt text for the image model: every scene carries the mood's look, so the ad looks like one ad."""

from __future__ import annotations

from pipeline.models import Scene
from pipeline.moods import MoodPreset

NEGATIVE_PROMPT = (
    "text, watermark, logo, signature, letters, caption, blurry, low quality, jpeg artifacts, deformed, "
    "distorted, extra limbs, bad anatomy, disfigured, cropped subject, oversaturated, ugly, nsfw"
)


def mood_direction(mood: MoodPreset) -> str:
    """The shared art direction, also handed to the storyboard writer."""
    return f"{mood.aesthetic}; style: {', '.join(mood.style_keywords)}; colour palette {', '.join(mood.palette)}"


def seed_prompt(scene: Scene, mood: MoodPreset) -> str:
    return (
        f"{scene.visual_prompt}. {mood_direction(mood)}. "
        "Vertical 9:16 composition, subject centred with headroom for captions, commercial advertising "
        "photography, highly detailed, sharp focus"
    )

"""Prompt text: for the image model every scene carries the mood's look, so the ad looks like one ad;
for the storyboard writer, the rules a spoken line obeys (the same ones `pipeline.models` checks)."""

from __future__ import annotations

import math

from pipeline.language import language_name
from pipeline.models import Scene
from pipeline.moods import MoodPreset
from pipeline.spoken_text import WORDS_PER_SECOND

# Words, logos and prices are drawn by us (captions, headline, end card), never painted: image
# models misspell text, and a painted logo or label would fight the brand's real one.
NEGATIVE_PROMPT = (
    "text, words, letters, typography, caption, subtitles, label text, price tag, watermark, logo, "
    "brand name, signature, blurry, low quality, jpeg artifacts, deformed, distorted, extra limbs, "
    "bad anatomy, disfigured, cropped subject, oversaturated, ugly, nsfw"
)
NO_TEXT = "no text, no lettering, no logos, no watermarks"


def mood_direction(mood: MoodPreset) -> str:
    """The shared art direction, also handed to the storyboard writer."""
    return f"{mood.aesthetic}; style: {', '.join(mood.style_keywords)}; colour palette {', '.join(mood.palette)}"


def seed_prompt(scene: Scene, mood: MoodPreset, palette: tuple[str, ...] = ()) -> str:
    """`palette`: the product photo's colours, named; the painted scenes then match the photo's."""
    matching = f"Colours matching the product: {', '.join(palette)}. " if palette else ""
    return (
        f"{scene.visual_prompt}. {mood_direction(mood)}. {matching}"
        "Vertical 9:16 composition, subject centred with headroom for captions, commercial advertising "
        f"photography, highly detailed, sharp focus, {NO_TEXT}"
    )


def clip_prompt(scene: Scene, mood: MoodPreset) -> str:
    """For the video models that take a prompt: what moves, not what is there (the image says that)."""
    return (
        f"{scene.visual_prompt}. Subtle, natural motion and a slow, smooth camera move, "
        f"{mood.style_keywords[0]}; no text, no cuts, the subject stays in frame"
    )


def voiceover_rules(language: str) -> str:
    """What the writer is told about each scene's `voiceover`, in the request's language."""
    name = language_name(language)
    return f"""Voiceover: every scene has a voiceover, the exact words a narrator says during that scene, written \
in {name} (ISO 639-1 "{language}") whatever language the rest of the request is in. The hook's line grabs \
attention within its first 2 seconds; the cta scene's line says the call to action. Rules that are checked:
- never empty; at most {WORDS_PER_SECOND:g} words per second of the scene, rounded up (a 4 s scene: at most \
{math.ceil(WORDS_PER_SECOND * 4)} words), and a little shorter is better: the line must end before the scene does;
- written the way a person says it: no web address (write "lumen dot example", keep "lumen.example" in \
on_screen_text), no digits with a currency (write "forty-nine dollars", not "$49"), no symbols such as \
/ & % # @ * + = or emoji (write them as words);
- plain sentences, no stage directions, no speaker names, no quotation marks around the whole line."""

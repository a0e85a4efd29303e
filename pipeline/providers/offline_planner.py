"""A storyboard writer that needs no network: deterministic, and shaped like GPT-4o's output.

It reads the product text for a name and a list of features and lays them on the classic ad arc
(hook → intro → features → call to action), so the offline preview tells the right story even if
its pictures are placeholders.
"""

from __future__ import annotations

import hashlib
import re

from pipeline.models import AdRequest, Beat, Scene, Storyboard
from pipeline.moods import mood_preset

# Durations per storyboard size, each summing to 30 s: hook 3–4 s, intro 4–6 s, features 12–16 s, CTA 4–6 s.
_LAYOUTS: dict[int, list[float]] = {
    2: [4.0, 6.0, 7.0, 7.0, 6.0],
    3: [3.5, 5.0, 5.5, 5.5, 5.5, 5.0],
    4: [3.0, 5.0, 4.0, 4.0, 4.0, 4.0, 6.0],
}
_HOOKS = (
    "Still putting up with {pain}?",
    "What if {name} changed everything?",
    "Stop scrolling: meet {name}.",
    "You have never seen {name} like this.",
)
_GENERIC_FEATURES = ("designed for everyday life", "made to last", "effortless to use", "loved by its users")


def product_name(text: str) -> str:
    """The leading name of a description: 'Lumen — a smart desk lamp…' → 'Lumen'."""
    head = re.split(r"\s[—–-]\s|[:,.;!?(]|\s(?:is|are|helps|lets|makes)\s", text, maxsplit=1)[0].strip()
    words = head.split()
    if not words:
        return "Our product"
    return " ".join(words[:4])


def features(text: str, name: str) -> list[str]:
    """Feature phrases: the clauses of the description after the name."""
    body = text[len(name) :] if text.startswith(name) else text
    body = re.sub(r"^\s*[—–:,-]?\s*(?:is\s+|are\s+)?(?:an?\s+|the\s+)?", "", body)
    parts = [p.strip(" .!") for p in re.split(r",|;|\.\s|\sand\s|\swith\s|\sthat\s", body)]
    found = [p for p in parts if len(p.split()) >= 2][:4]
    for extra in _GENERIC_FEATURES:
        if len(found) >= 2:
            break
        found.append(extra)
    return found


class OfflineStoryboardPlanner:
    name = "offline-planner"
    offline = True

    async def plan(self, request: AdRequest, *, feedback: str | None = None) -> Storyboard:
        text = request.product
        name = product_name(text)
        feats = features(text, name)
        mood = mood_preset(request.mood)
        digest = hashlib.sha256(f"{text}|{request.mood}|{feedback or ''}".encode()).digest()
        hook_line = _HOOKS[digest[0] % len(_HOOKS)].format(name=name, pain="the old way")
        audience = request.audience or "people who want better"
        cta = request.cta or f"Get {name} today"
        layout = _LAYOUTS[len(feats)]
        look = mood.style_keywords[0]
        scenes = [
            Scene(
                index=1, beat=Beat.HOOK, duration=layout[0],
                description=f"Hook: {hook_line} An arresting opening shot for {audience}.",
                visual_prompt=f"dramatic close-up teaser of {name}, {look}, intriguing reveal",
                on_screen_text=hook_line,
            ),
            Scene(
                index=2, beat=Beat.INTRO, duration=layout[1],
                description=f"Introduce {name}: {text[:140]}",
                visual_prompt=f"hero product shot of {name}, {text[:120]}, {look}",
                on_screen_text=f"Meet {name}",
            ),
        ]  # fmt: skip
        for i, feat in enumerate(feats):
            scenes.append(
                Scene(
                    index=3 + i,
                    beat=Beat.FEATURE,
                    duration=layout[2 + i],
                    description=f"Feature: {name} — {feat}.",
                    visual_prompt=f"{name} in use, {feat}, lifestyle scene for {audience}, {look}",
                    on_screen_text=feat[:1].upper() + feat[1:],
                )
            )
        scenes.append(
            Scene(
                index=len(scenes) + 1,
                beat=Beat.CTA,
                duration=layout[-1],
                description=f"Call to action: {cta}.",
                visual_prompt=f"{name} centred on a clean backdrop, logo space, confident final frame, {look}",
                on_screen_text=cta,
            )
        )
        return Storyboard(title=f"{name} — {mood.label} 30 s ad (offline preview)", scenes=scenes)

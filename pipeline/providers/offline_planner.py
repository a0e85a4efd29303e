"""A storyboard writer that needs no network: deterministic, and shaped like GPT-4o's output.

It reads the product text for a name and a list of features and lays them on the classic ad arc
(hook → intro → features → call to action), so the offline preview tells the right story even if
its pictures are placeholders. Each scene gets a spoken line in the request's language (templates in
`pipeline.offline_lines`), filled with the product's own words and made speakable.
"""

from __future__ import annotations

import hashlib

from pipeline.models import AdRequest, Beat, Scene, Storyboard
from pipeline.moods import mood_preset
from pipeline.offline_lines import (
    capitalised,
    features,
    first_clause,
    fit_line,
    product_name,
    rotated,
    templates_for,
    trimmed,
)
from pipeline.spoken_text import spoken_form
from pipeline.video_models import video_model
from pipeline.video_scenes import fit_to_clip_length

__all__ = ["OfflineStoryboardPlanner", "features", "product_name"]

# Durations per storyboard size, each summing to 30 s: hook 3–4 s, intro 4–6 s, features 12–16 s, CTA 4–6 s.
_LAYOUTS: dict[int, list[float]] = {
    2: [4.0, 6.0, 7.0, 7.0, 6.0],
    3: [3.5, 5.0, 5.5, 5.5, 5.5, 5.0],
    4: [3.0, 5.0, 4.0, 4.0, 4.0, 4.0, 6.0],
}


# The other ways into the first shot a hook A/B test tries: the first is a close-up teaser (scene 1).
_HOOK_ANGLES = (
    ("a bold macro shot", "extreme macro detail of {name}, striking contrast, {look}, shallow depth of field"),
    ("a surprising everyday moment", "an unexpected everyday moment transformed by {name}, candid, {look}"),
)


class OfflineStoryboardPlanner:
    name = "offline-planner"
    offline = True

    async def plan(self, request: AdRequest, *, feedback: str | None = None) -> Storyboard:
        text = request.product
        wanted = request.language or "en"
        language, lines = templates_for(wanted)
        name = product_name(text, wanted)
        feats = features(text, name, wanted)
        model = video_model(request.model)
        # A fixed-length video model needs enough scenes of at most one clip each (6 x 5 s for Wan).
        spare = [f for f in lines.generic_features if f not in feats] or list(lines.generic_features)
        while len(feats) + 3 < model.min_scenes:
            feats.append(spare[(len(feats)) % len(spare)])
        mood = mood_preset(request.mood)
        digest = hashlib.sha256(f"{text}|{request.mood}|{feedback or ''}".encode()).digest()
        hook_line = lines.hooks[digest[0] % len(lines.hooks)].format(name=name)
        audience = request.audience or "people who want better"
        cta = request.cta or lines.ctas[0].format(name=name).rstrip(".。")
        layout = fit_to_clip_length(_LAYOUTS[len(feats)], model) or _LAYOUTS[len(feats)]
        look = mood.style_keywords[0]

        def say(options: tuple[str, ...], turn: int, duration: float, **words: str) -> str:
            """The digest picks the template; the others, and shorter cuts of the user's words, follow
            until one can be said in the scene's time."""
            candidates = []
            for cut in (None, 8, 5, 3):
                shortened = {k: v if cut is None else trimmed(v, cut, lines.cjk) for k, v in words.items()}
                shortened |= {k.capitalize(): capitalised(v) for k, v in shortened.items()}
                candidates += [t.format(name=name, **shortened) for t in rotated(options, digest[turn])]
            return fit_line(candidates, duration, language, fallback=lines.hooks[0])

        what = first_clause(text, name, wanted)
        scenes = [
            Scene(
                index=1, beat=Beat.HOOK, duration=layout[0],
                description=f"Hook: {hook_line} An arresting opening shot for {audience}.",
                visual_prompt=f"dramatic close-up teaser of {name}, {look}, intriguing reveal",
                on_screen_text=hook_line,
                voiceover=say(lines.hooks, 0, layout[0]),
            ),
            Scene(
                index=2, beat=Beat.INTRO, duration=layout[1],
                description=f"Introduce {name}: {text[:140]}",
                visual_prompt=f"hero product shot of {name}, {text[:120]}, {look}",
                on_screen_text=lines.meet.format(name=name),
                voiceover=say(lines.intros, 1, layout[1], what=what), shows_product=True,
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
                    voiceover=say(lines.features, 2 + i, layout[2 + i], feat=feat),
                    shows_product=i == 0,  # the product up close once between intro and CTA
                )
            )
        scenes.append(
            Scene(
                index=len(scenes) + 1,
                beat=Beat.CTA,
                duration=layout[-1],
                description=f"Call to action: {cta}.",
                visual_prompt=f"{name} centred on a clean backdrop, open space around it, final frame, {look}",
                on_screen_text=cta,
                voiceover=self._cta_line(request.cta, lines.ctas, digest[7], layout[-1], language, name),
                shows_product=True,
            )
        )
        alt_hooks = [
            self._alt_hook(n, scenes[0].duration, lines.hooks, digest[0], name, look, audience, language)
            for n in range(1, request.hooks)
        ]
        return Storyboard(
            title=f"{name} — {mood.label} 30 s ad (offline preview)", scenes=scenes, language=language,
            alt_hooks=alt_hooks,
        )  # fmt: skip

    @staticmethod
    def _alt_hook(
        n: int, duration: float, hooks: tuple[str, ...], turn: int, name: str, look: str, audience: str, language: str
    ) -> Scene:
        """Alternative hook `n` (B, C): the next hook template and another way into the first shot."""
        line = hooks[(turn + n) % len(hooks)].format(name=name)
        angle, prompt = _HOOK_ANGLES[(n - 1) % len(_HOOK_ANGLES)]
        spoken = fit_line([t.format(name=name) for t in rotated(hooks, turn + n)], duration, language,
                          fallback=hooks[0].format(name=name))  # fmt: skip
        return Scene(
            index=1, beat=Beat.HOOK, duration=duration,
            description=f"Hook ({angle}): {line} For {audience}.",
            visual_prompt=prompt.format(name=name, look=look), on_screen_text=line, voiceover=spoken,
        )  # fmt: skip

    @staticmethod
    def _cta_line(cta: str | None, ctas: tuple[str, ...], turn: int, duration: float, language: str, name: str) -> str:
        """The teammate's call to action, said as written when it can be (in English an address or a
        price is spelled out); otherwise — another language that would lose the address — the template."""
        candidates = [t.format(name=name) for t in rotated(ctas, turn)]
        if cta and (language == "en" or spoken_form(cta, language) == spoken_form(cta, "en")):
            candidates.insert(0, cta)
        return fit_line(candidates, duration, language, fallback=ctas[0].format(name=name))

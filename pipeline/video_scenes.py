"""Scene lengths the chosen video model can fill: a pure policy, no I/O.

SVD's clips (≤ 4.2 s) are spread over their scenes, as they always were. Every other model makes
clips of a fixed length (Wan 5.06 s, Kling 5 s, Hailuo 6 s) that are played at their own speed and
cut at the scene's end, so no scene may be longer than the clip: the planner is told, and what it
writes is fitted (each scene at most one clip, 29–31 s in all, as close to the plan as possible).
"""

from __future__ import annotations

import math

from pydantic import ValidationError

from pipeline.errors import PlannerError
from pipeline.models import TOTAL_MAX_S, TOTAL_MIN_S, Storyboard, storyboard_problem
from pipeline.video_models import VideoModel


def fit_to_clip_length(durations: list[float], model: VideoModel) -> list[float] | None:
    """Scene durations with none longer than the model's clip, summing to 29–31 s, as close to the
    plan as possible; None when the scenes are too few for that. Retiming models keep the plan."""
    if model.retimes:
        return list(durations)
    cap = round(model.scene_max_s * 100)
    planned = [round(d * 100) for d in durations]
    low, high = round(TOTAL_MIN_S * 100), round(TOTAL_MAX_S * 100)
    if cap * len(planned) < low:
        return None
    target = min(max(sum(planned), low), high, cap * len(planned))
    # Water-filling: share the time left among the scenes not yet at the cap, in proportion to the
    # plan, until none passes it.
    fixed: dict[int, int] = {}
    while True:
        free = [i for i in range(len(planned)) if i not in fixed]
        left = target - sum(fixed.values())
        weight = sum(planned[i] for i in free)
        over = [i for i in free if weight and planned[i] * left / weight > cap]
        if not over:
            break
        for i in over:
            fixed[i] = cap
    out = [fixed.get(i, math.floor(planned[i] * left / weight) if weight else cap) for i in range(len(planned))]
    # The centiseconds lost to rounding down, one each, to the longest planned scenes below the cap.
    short = sorted((i for i in range(len(out)) if out[i] < cap), key=lambda i: (-planned[i], i))
    for i in short[: target - sum(out)]:
        out[i] += 1
    return [c / 100 for c in out]


def planner_rule(model: VideoModel) -> str | None:
    """The sentence a storyboard writer needs about this model's clips (None: the usual rules hold)."""
    if model.retimes:
        return None
    return (
        f"The video model ({model.label}) makes clips of {model.clip_seconds:g} s: write at least "
        f"{model.min_scenes} scenes and keep every scene at most {model.scene_max_s:g} s long."
    )


def clip_length_problem(storyboard: Storyboard, model: VideoModel) -> str | None:
    """Why the storyboard's scenes cannot be filled by the model's clips without slowing them down."""
    if model.retimes:
        return None
    n = len(storyboard.scenes)
    if n < model.min_scenes:
        return (
            f"{model.label} makes {model.clip_seconds:g} s clips, so a {TOTAL_MIN_S:g}–{TOTAL_MAX_S:g} s ad "
            f"needs at least {model.min_scenes} scenes (this storyboard has {n})"
        )
    long = [s for s in storyboard.scenes if s.duration > model.scene_max_s]
    if long:
        which = ", ".join(f"scene {s.index} ({s.duration:g} s)" for s in long)
        most = f"a scene may last at most {model.scene_max_s:g} s"
        return f"{model.label} makes {model.clip_seconds:g} s clips: {most} ({which})"
    return None


def fit_storyboard_to_clips(storyboard: Storyboard, model: VideoModel) -> Storyboard:
    """The storyboard with every scene fillable by one of the model's clips, or `PlannerError` saying
    why it cannot be (too few scenes, or a line too long for its shortened scene)."""
    durations = fit_to_clip_length([s.duration for s in storyboard.scenes], model)
    if durations is None:
        problem = clip_length_problem(storyboard, model)
        raise PlannerError(f"The storyboard does not fit the video model: {problem}. Ask for a new take.")
    if durations == [s.duration for s in storyboard.scenes]:
        return storyboard
    data = storyboard.model_dump()
    for scene, seconds in zip(data["scenes"], durations, strict=True):
        scene["duration"] = seconds
    try:
        return Storyboard.model_validate(data)
    except ValidationError as exc:
        raise PlannerError(
            f"The storyboard does not fit {model.label}'s {model.clip_seconds:g} s clips once its scenes are "
            f"shortened: {storyboard_problem(exc)}. Ask for a new take."
        ) from exc

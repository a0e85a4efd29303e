"""Hook A/B: the same ad with another opening scene, for the team to test which hook stops the scroll.

Hook A is the storyboard's own first scene and `final.mp4`; hooks B and C are `Storyboard.alt_hooks`,
each made by one more seed, clip and line (the `seed_b`, `clip_b`, `voice_b`… stage kinds of scene 1).
A variant is cut into scene 1's time slot, so every other scene's cut file and the music are shared and
its ad is a join of one new scene with the master's others, with its own mix of the lines.

Pure functions of the job's state; the orchestrator renders (`Orchestrator._hook_variants`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from pipeline.models import Job, Scene, SceneState, SceneTiming, StageState, StageStatus, hook_letter
from pipeline.scene_timing import MAX_SPEED, VOICE_TAIL_S
from pipeline.soundtrack import LINE_LEAD_S, spoken_length
from pipeline.stage_kinds import StageName, hook_kind_name

HOOK_FINAL = "final-hook-{letter}.mp4"
# How the job's notes about a hook's version begin ("Hook B's version was not made: …").
HOOK_NOTE_PREFIX = "Hook "


def hook_final_name(n: int) -> str:
    """0 → final-hook-A.mp4 (the master's hook), 1 → final-hook-B.mp4, …"""
    return HOOK_FINAL.format(letter=hook_letter(n))


def alt_hook_stages(job: Job, hook: int) -> dict[str, StageState]:
    """Alternative hook `hook`'s stages (seed, clip and, when spoken, voice) by their base kind."""
    if not job.scenes:
        return {}
    stages = job.scene(1).stages
    return {base: stages[name] for base in StageName if (name := hook_kind_name(base, hook)) in stages}


def variant_problem(job: Job, hook: int) -> str | None:
    """Why alternative hook `hook`'s ad cannot be cut (its clip did not make it), None when it can."""
    stages = alt_hook_stages(job, hook)
    seed, clip = stages.get(StageName.SEED), stages.get(StageName.CLIP)
    if clip is None:
        return "it was not planned"
    if clip.status is StageStatus.DONE and clip.path:
        return None
    # A clip skipped because its seed failed: the seed's reason is the one the team can act on.
    if seed is not None and seed.status is StageStatus.FAILED and seed.error:
        return seed.error.rstrip(".")
    return (clip.error or f"its clip is {clip.status.value}").rstrip(".")


def variant_timing(master: SceneTiming, line_s: float | None, letter: str) -> SceneTiming:
    """The master's timing with hook `letter`'s line in scene 1's slot: the slot keeps its length (the
    rest of the ad is shared), so a longer line is sped up, at most as much as any line may be."""
    room = master.durations[0] - VOICE_TAIL_S - LINE_LEAD_S
    speed, problem = 1.0, None
    if line_s is not None and line_s > room:
        speed = math.ceil(line_s / room * 1000) / 1000 if room > 0 else math.inf
        if speed > MAX_SPEED:
            problem = (
                f"Hook {letter}'s line lasts {line_s:.1f} s: even {MAX_SPEED:g}× faster it runs past its "
                f"{master.durations[0]:g} s scene, so its end is cut. Shorten the line."
            )
            speed = MAX_SPEED
    return master.model_copy(
        update={
            "speeds": [speed, *master.speeds[1:]],
            "voice": [line_s, *master.voice[1:]],
            "problems": [problem, *master.problems[1:]] if master.problems else [problem],
        }
    )


def variant_job(job: Job, hook: int) -> tuple[Job, Scene]:
    """The job as the ad with alternative hook `hook` in scene 1: its storyboard opens on that hook and
    scene 1's seed, clip and voice are the alternative's (under their base kinds' names), so the
    functions that cut a scene, time its captions and mix the lines read it like any job. A copy."""
    assert job.storyboard is not None and job.timing is not None
    alt = job.storyboard.alt_hooks[hook - 1]
    stages = alt_hook_stages(job, hook)
    board = job.storyboard.model_copy(update={"scenes": [alt, *job.storyboard.scenes[1:]]})
    first = SceneState(index=1, stages=dict(stages), normalized_path=None)
    timing = variant_timing(job.timing, spoken_length(stages.get(StageName.VOICE)), hook_letter(hook))
    view = job.model_copy(update={"storyboard": board, "scenes": [first, *job.scenes[1:]], "timing": timing})
    return view, alt


@dataclass(frozen=True)
class MadeHook:
    letter: str
    path: Path
    bytes: int
    line: str  # what the hook says (its voiceover, else its on-screen text)


def hook_line(scene: Scene) -> str:
    return scene.voiceover or scene.on_screen_text or scene.description


def hook_finals(job: Job, directory: Path) -> list[tuple[str, Path, Scene]]:
    """(letter, file, hook scene) of every hook the job tests, made or not: none for a one-hook ad."""
    if job.storyboard is None or job.request.hooks < 2:
        return []
    return [
        (hook_letter(n), directory / hook_final_name(n), scene) for n, scene in enumerate(job.storyboard.hook_scenes())
    ]


def made_hooks(job: Job, directory: Path) -> list[MadeHook]:
    """The hook variants on disk, in order (blocking: a few stats)."""
    out = []
    for letter, path, scene in hook_finals(job, directory):
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        out.append(MadeHook(letter, path, size, hook_line(scene)))
    return out

"""The kinds of paid, slow steps a job is made of, as data: one entry per kind.

An entry says whether the kind runs once per scene or once per job, which stage of the same level it
waits for (its output is then one of the request's inputs), how long its provider may take, how its
request is built from the job and scene, and how much of a scene's progress bar it is. The
orchestrator runs every kind through the same path (`Orchestrator.run_stage`) and looks its provider
up by the kind's name in `Providers`; an optional kind whose provider is absent simply has no stages.

Adding a kind is an entry in `STAGE_KINDS` plus a provider registered under its name in
`runtime.build_providers` — no new code path in the orchestrator.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import InvalidRequest
from pipeline.job_choices import job_choices
from pipeline.moods import mood_preset
from pipeline.photo_palette import matching_colours
from pipeline.providers.base import (
    ClipRequest,
    MusicRequest,
    SeedRequest,
    StageContext,
    StageResult,
    VoiceRequest,
)

if TYPE_CHECKING:
    from pipeline.config import Settings
    from pipeline.models import Job, Scene, StageState

JOB_LEVEL_INDEX = 0  # job-level stages live in the `stages` table under this scene index
# The entry of `Providers` that makes a seed from the team's own product photo (local, unpaid). It is
# a provider of the seed kind, not a kind: a scene's seed stage is made by it or by the painter.
PHOTO_SEED = "seed.photo"


class StageName(StrEnum):
    """The names of the kinds shipped in `STAGE_KINDS`, for code that means one of them. A stage's
    kind is a plain string: a kind needs an entry in `STAGE_KINDS`, not a member here."""

    SEED = "seed"
    CLIP = "clip"
    VOICE = "voice"
    MUSIC = "music"


class StageLevel(StrEnum):
    SCENE = "scene"  # one stage per scene
    JOB = "job"  # one stage for the whole ad


@dataclass(frozen=True)
class StageInputs:
    """What a stage's request is built from."""

    job: Job
    scene: Scene | None  # None for a job-level stage
    state: StageState
    settings: Settings
    dest: Path
    inputs: Mapping[str, Path]  # the outputs of the stages it waited for, by kind


Start = Callable[[Any, StageInputs, StageContext], Awaitable[StageResult]]


@dataclass(frozen=True)
class StageKind:
    name: str
    level: StageLevel
    noun: str  # "seed image": for messages ("its seed image failed") and `jant doctor`
    output: str  # file name in the job's directory; "{index}" is the scene's number
    deadline_s: Callable[[Settings], float]  # the provider's own deadline for one attempt
    start: Start  # build the request and hand it to the provider
    after: str | None = None  # the kind (same level) whose output this one needs
    optional: bool = False  # an ad can be made without it; absent provider → no such stage
    weight: float = 1.0  # share of its scene's progress bar
    footage: bool = False  # its output is the scene's picture: normalised for the join, then the scene is done
    # A scene-level kind only some scenes have (a voice for scenes with a line); None: every scene.
    applies: Callable[[Scene], bool] | None = None
    # Whose prediction slots it takes (`Orchestrator`): "media", or "sound" for the short voice and
    # music runs, which must never queue behind the seeds and clips the ad waits on.
    slots: str = "media"
    # Which entry of `Providers` makes a scene's stage of this kind; None: the one under the kind's
    # name. A function of the stored request and storyboard, so a resumed job picks the same one.
    source: Callable[[Job, Scene], str] | None = None
    # The kind whose provider makes this one, when it is a variant of it (hook B's clip is made by the
    # clip provider); None: the provider under its own name.
    maker: str | None = None
    # For a hook variant's kind: which alternative hook it makes (1: hook B, 2: hook C); 0 otherwise.
    hook: int = 0

    @property
    def base(self) -> str:
        """The shipped kind this one is, or is a variant of: what it is priced and provided as."""
        return self.maker or self.name

    def dest(self, directory: Path, scene_index: int) -> Path:
        return directory / self.output.format(index=scene_index)

    def provider_key(self, job: Job, scene: Scene | None) -> str:
        """The key in `Providers` of the provider that makes this kind's stage for `scene`."""
        return self.source(job, scene) if self.source is not None and scene is not None else self.base


def _scene(s: StageInputs) -> Scene:
    assert s.scene is not None, "a scene-level stage is always built with its scene"
    return s.scene


def uses_product_photo(job: Job, scene: Scene) -> bool:
    """The scene shows the product and the team gave us a photo of it: the photo is its seed."""
    return job.request.photo is not None and scene.shows_product


def _seed_source(job: Job, scene: Scene) -> str:
    return PHOTO_SEED if uses_product_photo(job, scene) else StageName.SEED


async def _seed(provider: Any, s: StageInputs, ctx: StageContext) -> StageResult:
    profile, scene = s.settings.media.profile, _scene(s)
    assert s.job.storyboard is not None
    photo = Path(s.job.request.photo) if s.job.request.photo else None
    # A painted seed takes the photo's colours, so it looks like the same ad as the photo's scenes.
    palette = await matching_colours(photo) if photo is not None and not uses_product_photo(s.job, scene) else ()
    request = SeedRequest(
        storyboard=s.job.storyboard, scene=scene, mood=mood_preset(s.job.request.mood), product=s.job.request.product,
        width=profile.seed_width, height=profile.seed_height, steps=profile.seed_steps, dest=s.dest,
        seed=s.state.seed, photo=photo, palette=palette,
    )  # fmt: skip
    result: StageResult = await provider.generate(request, ctx)
    return result


async def _clip(provider: Any, s: StageInputs, ctx: StageContext) -> StageResult:
    from pipeline.video_models import video_model

    scene, mood = _scene(s), mood_preset(s.job.request.mood)
    model = video_model(s.job.request.model)
    width, height = model.input_size
    request = ClipRequest(
        scene=scene, mood=mood, seed_image=s.inputs[StageName.SEED], dest=s.dest,
        width=width, height=height, fps=s.settings.replicate.svd_fps,
        video_length=s.settings.replicate.svd_video_length, motion_bucket_id=mood.motion_bucket_id, seed=s.state.seed,
        model=model.key,
    )  # fmt: skip
    result: StageResult = await provider.animate(request, ctx)
    return result


def spoken_language(job: Job) -> str:
    """The language the lines are written in: the storyboard's (the writer may have fallen back to
    English), else the request's."""
    language = (job.storyboard.language if job.storyboard else None) or job.request.language
    return language or "en"


def _has_line(scene: Scene) -> bool:
    return bool(scene.voiceover)


async def _voice(provider: Any, s: StageInputs, ctx: StageContext) -> StageResult:
    scene = _scene(s)
    if not scene.voiceover:  # stages are only made for scenes with a line; an edit may have removed it
        raise InvalidRequest(f"Scene {scene.index} has no voiceover line to speak.")
    request = VoiceRequest(
        text=scene.voiceover, dest=s.dest, language=spoken_language(s.job),
        voice_id=job_choices(s.job, s.settings).voice_id, speed=s.settings.audio.voice_speed,
    )  # fmt: skip
    result: StageResult = await provider.synthesize(request, ctx)
    return result


async def _music(provider: Any, s: StageInputs, ctx: StageContext) -> StageResult:
    assert s.job.storyboard is not None
    mood = job_choices(s.job, s.settings).music
    if mood is None:  # approval drops the stage when the kit turns music off; a stage left over is refused
        raise InvalidRequest("The brand kit turns the music off for this ad: there is no bed to make.")
    request = MusicRequest(
        mood=mood_preset(mood), duration=s.job.storyboard.total_duration, dest=s.dest, seed=s.state.seed
    )
    result: StageResult = await provider.compose(request, ctx)
    return result


def _is_hook(scene: Scene) -> bool:
    return scene.index == 1


def hook_kind_name(base: str, hook: int) -> str:
    """The kind of alternative hook `hook`'s stage of `base`: ("clip", 1) → "clip_b"."""
    return f"{base}_{'abc'[hook]}"


def _on_alt_hook(start: Start, hook: int) -> Start:
    """`start` for alternative hook `hook`: the same request, built from that hook's scene (and from
    the output of the same alternative's earlier stage)."""

    async def run(provider: Any, s: StageInputs, ctx: StageContext) -> StageResult:
        board = s.job.storyboard
        if board is None or len(board.alt_hooks) < hook:
            raise InvalidRequest(f"The storyboard has no hook {'ABC'[hook]}: plan it again to test hooks.")
        inputs: dict[str, Path] = {
            str(base): s.inputs[name] for base in StageName if (name := hook_kind_name(base, hook)) in s.inputs
        }
        return await start(provider, replace(s, scene=board.alt_hooks[hook - 1], inputs=inputs), ctx)

    return run


def _hook_variant_kinds(hook: int) -> tuple[StageKind, ...]:
    """Alternative hook `hook`'s seed, clip and line: stages of scene 1, optional (the master ad never
    waits for them), made by the seed, clip and voice providers. The photo is never its seed: an
    alternative hook is another idea for the opening shot."""
    letter = "abc"[hook]
    name = functools.partial(hook_kind_name, hook=hook)
    return (
        StageKind(
            name(StageName.SEED), StageLevel.SCENE, f"hook {letter.upper()} seed image", f"seed-{{index}}{letter}.png",
            deadline_s=lambda s: s.seed_deadline_s, start=_on_alt_hook(_seed, hook), optional=True, weight=1.0,
            applies=_is_hook, maker=StageName.SEED, hook=hook,
        ),
        StageKind(
            name(StageName.CLIP), StageLevel.SCENE, f"hook {letter.upper()} clip", f"clip-{{index}}{letter}.mp4",
            deadline_s=lambda s: s.clip_deadline_s, start=_on_alt_hook(_clip, hook), after=name(StageName.SEED),
            optional=True, weight=4.0, applies=_is_hook, maker=StageName.CLIP, hook=hook,
        ),
        StageKind(
            name(StageName.VOICE), StageLevel.SCENE, f"hook {letter.upper()} voiceover", f"voice-{{index}}{letter}.wav",
            deadline_s=lambda s: s.audio.voice_deadline_s, start=_on_alt_hook(_voice, hook), optional=True,
            weight=0.5, applies=_is_hook, slots="sound", maker=StageName.VOICE, hook=hook,
        ),
    )  # fmt: skip


STAGE_KINDS: Mapping[str, StageKind] = {
    k.name: k
    for k in (
        StageKind(
            StageName.SEED, StageLevel.SCENE, "seed image", "seed-{index}.png",
            deadline_s=lambda s: s.seed_deadline_s, start=_seed, weight=1.0, source=_seed_source,
        ),
        StageKind(
            StageName.CLIP, StageLevel.SCENE, "clip", "clip-{index}.mp4",
            deadline_s=lambda s: s.clip_deadline_s, start=_clip, after=StageName.SEED, weight=4.0, footage=True,
        ),
        # Spoken at approval, beside the seeds: a line takes seconds, a clip a minute.
        StageKind(
            StageName.VOICE, StageLevel.SCENE, "voiceover", "voice-{index}.wav",
            deadline_s=lambda s: s.audio.voice_deadline_s, start=_voice, optional=True, weight=0.5, applies=_has_line,
            slots="sound",
        ),
        StageKind(
            StageName.MUSIC, StageLevel.JOB, "music bed", "music.wav",
            deadline_s=lambda s: s.audio.music_deadline_s, start=_music, optional=True, slots="sound",
        ),
        *_hook_variant_kinds(1),
        *_hook_variant_kinds(2),
    )
}  # fmt: skip


def kind_of(name: str) -> StageKind:
    try:
        return STAGE_KINDS[name]
    except KeyError:
        raise ValueError(f"unknown stage kind {name!r}; known: {', '.join(STAGE_KINDS)}") from None


def dependents(name: str) -> list[StageKind]:
    """The kinds that wait for `name`'s output."""
    return [k for k in STAGE_KINDS.values() if k.after == name]


def required_kinds() -> list[str]:
    return [k.name for k in STAGE_KINDS.values() if not k.optional]

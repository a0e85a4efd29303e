"""What an ad will cost before it is approved, and what a finished prediction did cost. Pure policy.

The estimate is what the storyboard card and the command line show, what the per-job cap and the
server's budgets are checked against, and what approval reserves. Each part is billed only when its
provider is a paid one: an offline preview costs $0 and never touches a budget.

Prices: seeds by typical SDXL GPU time × `JANT_PRICE_PER_GPU_SECOND`; a clip by `clip_price_usd`
(one call, so the video model's own price replaces it in one place); the voice by character, the
music bed by run. The real figures come from each prediction's `metrics.predict_time` (or the
model's unit price) and are recorded as the job runs: `prediction_cost_usd`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.config import Settings
from pipeline.models import Job, Scene, StageState
from pipeline.providers.base import StageResult
from pipeline.stage_kinds import StageName
from pipeline.video_models import video_model

# Typical billed GPU seconds on Replicate (A100-class), from public run times: an SDXL seed at the
# dev/prod profile and one SVD clip. Only an estimate; the real figure is `metrics.predict_time`.
TYPICAL_SEED_GPU_S = {"dev": 6.0, "prod": 20.0}
TYPICAL_CLIP_GPU_S = {"14_frames_with_svd": 50.0, "25_frames_with_svd_xt": 90.0}
COMPOSE_WALL_S = 30.0


@dataclass(frozen=True)
class CostLine:
    """One part of the ad: what it is estimated to cost and how that was counted."""

    usd: float
    billed: bool  # made by a paid provider; False: made locally, free
    detail: str = ""  # "6 × ~6 GPU-s", "108 characters × $0.015/1k", "one run"

    def text(self) -> str:
        if not self.billed or not self.usd:
            return "free (local)"
        return f"${self.usd:.2f}" if self.usd >= 0.005 else "<$0.01"


@dataclass(frozen=True)
class CostEstimate:
    seeds: CostLine
    clips: CostLine
    voice: CostLine | None  # None: the ad has no voice
    music: CostLine | None  # None: the ad has no music bed
    gpu_seconds: float  # typical GPU time of the seeds and clips
    wall_seconds: float  # about how long until the ad is ready
    offline: bool  # a local preview (its storyboard or footage is placeholder work)
    voice_chars: int = 0
    photo_scenes: tuple[int, ...] = ()  # seeded from the team's product photo: no SDXL run for them
    extra_hooks: int = 0  # alternative hooks of an A/B test: one more seed, clip and line each

    @property
    def footage_usd(self) -> float:
        return self.seeds.usd + self.clips.usd

    @property
    def total_usd(self) -> float:
        parts = [self.seeds, self.clips, self.voice, self.music]
        return round(sum(p.usd for p in parts if p is not None), 4)

    @property
    def free(self) -> bool:
        """Nothing in it is paid for: it never counts against a budget."""
        return self.total_usd <= 0

    def parts_text(self) -> str:
        """'seeds $0.03, clips $0.39, voice <$0.01, music $0.20' (parts the ad has)."""
        named = [("seeds", self.seeds), ("clips", self.clips), ("voice", self.voice), ("music", self.music)]
        return ", ".join(f"{name} {line.text()}" for name, line in named if line is not None)


def paid_provider(job: Job, kind: str) -> bool:
    """The job's provider of `kind` bills us (Replicate); offline and local ones are free."""
    return job.providers.get(kind, "").startswith("replicate")


def clip_gpu_seconds(settings: Settings) -> float:
    return TYPICAL_CLIP_GPU_S.get(settings.replicate.svd_video_length, 90.0)


def clip_price_usd(job: Job, scene: Scene, settings: Settings) -> float:
    """What one clip of `scene` costs with the job's video model: the registry's price for a model
    billed per clip or per output second; for one billed by GPU time (SVD), its typical GPU time for
    the configured clip length × the account's GPU-second price."""
    model = video_model(job.request.model)
    if model.clip.usd is not None:
        return model.clip_price_usd(scene.duration)
    return clip_gpu_seconds(settings) * settings.replicate.price_per_gpu_second


def _clips_detail(job: Job, count: int, settings: Settings) -> str:
    model = video_model(job.request.model)
    if model.clip.usd is not None:
        return f"{count} × {model.label} clip (${model.clip.usd:.2f})"
    return f"{count} × ~{clip_gpu_seconds(settings):g} GPU-s"


def prediction_cost_usd(result: StageResult, settings: Settings) -> float:
    """What a finished prediction cost: its unit price when the provider bills per unit (a voice's
    characters, a music run), else its billed GPU time × the GPU-second price. Never both."""
    if result.cost_usd is not None:
        return result.cost_usd
    return (result.predict_time or 0.0) * settings.replicate.price_per_gpu_second


def voice_estimate(job: Job, settings: Settings) -> tuple[CostLine | None, int]:
    """(what the lines cost to speak, None when the ad has no voice; how many characters are spoken)."""
    if StageName.VOICE not in job.providers or job.storyboard is None or not job.request.speak:
        return None, 0
    chars = sum(len(s.voiceover or "") for s in [*job.storyboard.scenes, *tested_hooks(job)])
    per_1k = settings.audio.tts_price_per_1k_chars
    if not paid_provider(job, StageName.VOICE):  # offline, or a speech server we know no price of
        return CostLine(0.0, False), chars
    return CostLine(round(chars * per_1k / 1000, 4), True, f"{chars} characters × ${per_1k:g}/1k"), chars


def music_estimate(job: Job, settings: Settings) -> CostLine | None:
    if StageName.MUSIC not in job.providers:
        return None
    if not paid_provider(job, StageName.MUSIC):
        return CostLine(0.0, False)
    return CostLine(settings.audio.music_price_per_run, True, "one run")


def tested_hooks(job: Job) -> list[Scene]:
    """The alternative hooks this job makes (each one seed, one clip and one line more)."""
    if job.storyboard is None or job.request.hooks < 2:
        return []
    return job.storyboard.alt_hooks[: job.request.hooks - 1]


def estimate_job_cost(job: Job, settings: Settings) -> CostEstimate:
    """The whole ad as its storyboard stands: one seed and one clip per scene, its lines, its music."""
    scenes = job.storyboard.scenes if job.storyboard else []
    seed_s = TYPICAL_SEED_GPU_S.get(job.env, TYPICAL_SEED_GPU_S["dev"])
    clip_s = clip_gpu_seconds(settings)
    price = settings.replicate.price_per_gpu_second
    seeds_paid, clips_paid = paid_provider(job, StageName.SEED), paid_provider(job, StageName.CLIP)
    # A scene seeded from the team's product photo paints nothing: only its clip is paid for. Each
    # alternative hook of an A/B test is one more painted seed and one more clip.
    photo = tuple(job.photo_scenes())
    hooks = tested_hooks(job)
    painted = len(scenes) - len(photo) + len(hooks)
    footage = [*scenes, *hooks]
    extra = f" (incl. {len(hooks)} extra hook{'s' if len(hooks) > 1 else ''})" if hooks else ""
    seeds = CostLine(
        round(painted * seed_s * price, 4) if seeds_paid else 0.0, seeds_paid, f"{painted} × ~{seed_s:g} GPU-s{extra}"
    )
    clips = CostLine(
        round(sum(clip_price_usd(job, s, settings) for s in footage), 4) if clips_paid else 0.0,
        clips_paid,
        _clips_detail(job, len(footage), settings) + extra,
    )
    voice, chars = voice_estimate(job, settings)
    music = music_estimate(job, settings)
    gpu = painted * seed_s + len(footage) * clip_s
    if job.offline:
        wall = max(20.0, 6.0 * len(scenes) + COMPOSE_WALL_S)
    else:
        # Scenes run side by side up to the prediction limit (a seed and a clip slot each). The voice and
        # the music run beside them and take less time than a clip: they add no wall time.
        waves = math.ceil(len(scenes) / max(1, settings.limits.max_concurrent_predictions // 2)) if scenes else 0
        wall = waves * (seed_s + clip_s) + COMPOSE_WALL_S
    return CostEstimate(
        seeds,
        clips,
        voice,
        music,
        gpu,
        wall,
        job.offline,
        voice_chars=chars,
        photo_scenes=photo,
        extra_hooks=len(hooks),
    )


def stages_cost_usd(job: Job, stages: Iterable[StageState], settings: Settings) -> float:
    """What making `stages` again costs (Retry failed, a re-roll): each at the same price as in the
    whole-ad estimate; a stage whose provider is free costs nothing."""
    assert job.storyboard is not None
    scenes = {s.index: s for s in job.storyboard.scenes}
    price = settings.replicate.price_per_gpu_second
    total = 0.0
    for stage in stages:
        kind = stage.kind
        if not paid_provider(job, kind.base):
            continue
        scene = scenes.get(stage.scene_index)
        if kind.hook and len(job.storyboard.alt_hooks) >= kind.hook:  # an alternative hook's own scene
            scene = job.storyboard.alt_hooks[kind.hook - 1]
        if kind.base == StageName.SEED:
            if not kind.hook and stage.scene_index in job.photo_scenes():
                continue  # made from the team's photo, locally
            total += TYPICAL_SEED_GPU_S.get(job.env, TYPICAL_SEED_GPU_S["dev"]) * price
        elif kind.base == StageName.CLIP and scene is not None:
            total += clip_price_usd(job, scene, settings)
        elif kind.base == StageName.VOICE and scene is not None:
            total += len(scene.voiceover or "") * settings.audio.tts_price_per_1k_chars / 1000
        elif kind.base == StageName.MUSIC:
            total += settings.audio.music_price_per_run
    return round(total, 4)

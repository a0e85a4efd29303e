"""What the benchmark pretends the world is: scripted Replicate latencies, compressed time, one storyboard.

Time is compressed by `TimeScale.factor` (0.1: a 120 s clip takes 12 s). Everything that is a rate
or a duration on Replicate's side is compressed with it, or the ratios mean nothing: the emulator's
rate-limit window (60 s → 6 s), our poll budget per minute (2400 → 24000 per real minute) and base
poll interval (1 s → 0.1 s), deadlines and retry back-off. Request rates are reported back in
real-equivalent per-minute figures (peak count in any compressed minute). Discord is NOT compressed:
its rate limits and our 2 s edit throttle run on the wall clock, which is what users see.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

SDXL, SVD = "stability-ai/sdxl", "stability-ai/stable-video-diffusion"
WAN = "wan-video/wan-2.2-i2v-fast"  # the registry's `wan-2.2-i2v-fast` (pipeline/video_models.py)
TTS, MUSIC = "minimax/speech-02-turbo", "stability-ai/stable-audio-2.5"
SEED_LATENCY_S = (5.0, 15.0)  # SDXL, 20 steps at 640x1136, warm
CLIP_LATENCY_S = (40.0, 120.0)  # SVD-XT, 25 frames at 576x1024, warm
# Assumed, not measured (no key here): a MiniMax turbo line of a few words, a 30 s Stable Audio bed.
VOICE_LATENCY_S = (2.0, 6.0)
MUSIC_LATENCY_S = (10.0, 30.0)
# Assumed, not measured either: Wan's clips take as long as SVD's, so a run with Wan differs from
# one with SVD only in what the clips are (81 frames of 720x1280 at 16 fps, six scenes of 5 s).
WAN_LATENCY_S = CLIP_LATENCY_S
LATENCY_S = {
    SDXL: SEED_LATENCY_S, SVD: CLIP_LATENCY_S, WAN: WAN_LATENCY_S, TTS: VOICE_LATENCY_S, MUSIC: MUSIC_LATENCY_S,
}  # fmt: skip
# `JANT_VOICE`/`JANT_MUSIC` for the runs "with voice and music on" (Replicate's models, the emulator's),
# and for silent ads: with a Replicate token, `auto` (the default) turns both on.
SOUND_ENV = {"JANT_VOICE": "replicate", "JANT_MUSIC": "replicate"}
SILENT_ENV = {"JANT_VOICE": "none", "JANT_MUSIC": "none"}


def model_from_argv(argv: list[str]) -> str:
    """A section's `--model KEY` (a registry entry of MODEL_SCENES); default svd."""
    if "--model" not in argv:
        return "svd"
    key = argv[argv.index("--model") + 1]
    if key not in MODEL_SCENES:
        raise SystemExit(f"--model: one of {', '.join(MODEL_SCENES)} (got {key!r})")
    return key


def sound_from_argv(argv: list[str]) -> dict[str, str] | None:
    """A section's `--sound` (voice and music on) or `--silent` (off); neither: the settings' own
    `auto`, which turns both on with a Replicate token."""
    if "--sound" in argv:
        return SOUND_ENV
    if "--silent" in argv:
        return SILENT_ENV
    return None


SCENE_DURATIONS = (4.0, 5.0, 6.0, 6.0, 5.0, 4.0)  # 30 s, six scenes
# A Wan job's storyboard: no scene longer than its 5.06 s clip (the planner is told so), 30 s in all.
WAN_SCENE_DURATIONS = (5.0,) * 6
# `JANT_VIDEO_MODEL` per registry entry the benchmarks run, and the scene lengths its storyboard has.
MODEL_SCENES = {"svd": SCENE_DURATIONS, "wan-2.2-i2v-fast": WAN_SCENE_DURATIONS}
BEATS = ("hook", "intro", "feature", "feature", "feature", "cta")
TAKE = re.compile(r"\(take (\d+)\)$")  # "… (take 7)": the n-th teammate's request in a run
PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm, dims at night and charges your phone"

# Replicate's limits per account (PLATFORM-FACTS A) and our share of the non-create one.
CREATES_PER_MIN, OTHERS_PER_MIN, POLL_BUDGET_PER_MIN = 600, 3000, 2400
POLL_BASE_S = 1.0


def scripted_latency(model: str, seed: int | str | None) -> float:
    """Seconds (real scale) a prediction of `model` with input `seed` takes: uniform in the model's
    range, a pure function of the seed, so a run that sets the same stage seeds gets the same
    latencies (the pipelined and barrier designs are compared on identical scripts). A voice line
    has no seed: its text stands in for it."""
    low, high = LATENCY_S.get(model, CLIP_LATENCY_S)
    digest = hashlib.sha256(f"{model}:{seed}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return low + (high - low) * u


def stage_seeds(job_number: int, scene_index: int) -> tuple[int, int]:
    """(seed image seed, clip seed) for one scene of the n-th job of a run: fixed, so latencies are too."""
    base = 1_000_003 * (job_number + 1) + 101 * scene_index
    return base, base + 50


def barrier_penalty(job_number: int, scenes: int = len(SCENE_DURATIONS)) -> float:
    """For job n's script: ideal of the barrier design (slowest seed + slowest clip) over the ideal
    of the pipelined one (slowest seed+clip of one scene)."""
    seeds = [scripted_latency(SDXL, stage_seeds(job_number, i)[0]) for i in range(1, scenes + 1)]
    clips = [scripted_latency(SVD, stage_seeds(job_number, i)[1]) for i in range(1, scenes + 1)]
    return (max(seeds) + max(clips)) / max(s + c for s, c in zip(seeds, clips, strict=True))


def typical_job(candidates: int = 200) -> int:
    """A job number whose barrier penalty is the median one: the single-job comparison shows the
    typical case, not a script where the slowest clip happens to have the slowest seed too."""
    ranked = sorted(range(candidates), key=barrier_penalty)
    return ranked[len(ranked) // 2]


def storyboard_draft(tag: str = "", durations: tuple[float, ...] = SCENE_DURATIONS) -> dict[str, Any]:
    """The planner's (GPT-4o emulator's) answer: six scenes, 30 s."""
    return {
        "title": "Lumen: light that knows the time",
        "scenes": [
            {
                "beat": beat,
                "duration_seconds": duration,
                "description": f"Lumen {beat} scene {i}{tag}",
                "visual_prompt": f"Lumen desk lamp on an oak desk, {beat} shot, scene {i}{tag}",
                "on_screen_text": "Get Lumen" if beat == "cta" else None,
                "voiceover": "Get Lumen today." if beat == "cta" else f"Lumen, scene {i}.",
                "shows_product": beat in ("intro", "cta"),
            }
            for i, (beat, duration) in enumerate(zip(BEATS, durations, strict=True), start=1)
        ],
    }


@dataclass(frozen=True)
class TimeScale:
    factor: float = 0.1

    def wall(self, real_s: float) -> float:
        """Real-scale seconds → seconds on this run's clock."""
        return real_s * self.factor

    def real(self, wall_s: float) -> float:
        return wall_s / self.factor

    @property
    def minute(self) -> float:
        """One real minute on this run's clock: the emulator's rate window, our budget's period."""
        return 60.0 * self.factor

    def replicate_env(self) -> dict[str, str]:
        """Settings that carry Replicate-side time: compressed with the emulator's clock."""
        f = self.factor
        return {
            "JANT_POLL_INTERVAL_S": f"{POLL_BASE_S * f:g}",
            "JANT_REPLICATE_POLL_BUDGET_PER_MIN": f"{POLL_BUDGET_PER_MIN / f:g}",
            "JANT_REPLICATE_RATE_WINDOW_S": f"{60 * f:g}",  # the create pacer's minute
            "JANT_SEED_DEADLINE_S": f"{90 * f:g}",
            "JANT_CLIP_DEADLINE_S": f"{300 * f:g}",
            "JANT_RETRY_BACKOFF_S": f"{2.0 * f:g}",
        }

"""A music bed from a Replicate text-to-music model (default `stability-ai/stable-audio-2.5`).

One prediction per job through the same lifecycle as seeds and clips (`_ReplicateStage`: the
shared create pacer and poll scheduler, the id stored before we wait, a deadline that cancels,
the output downloaded at once). Stable Audio 2.5 is an official model, created by name without a
version; `duration` is always sent, because one of its versions defaults to 190 s of (paid) audio.
The model returns whole seconds; the mixer cuts the bed to the ad's exact length.
"""

from __future__ import annotations

import math
from typing import Any

from pipeline.config import Settings
from pipeline.moods import music_style
from pipeline.providers.base import MusicRequest, StageContext, StageResult
from pipeline.providers.replicate_media import AccountLimits, _ReplicateStage, output_url, random_seed
from pipeline.providers.replicate_predictions import PredictionState, parse_log_progress

MAX_MODEL_SECONDS = 190  # stable-audio-2.5's limit
SAMPLING_SHARE = 95.0
# Said to every music model: the bed sits under a voiceover, so it must never sing or speak.
INSTRUMENTAL = "instrumental only, no vocals, no singing, no spoken words, steady background bed for a voiceover"


def music_prompt(request: MusicRequest) -> str:
    return f"{music_style(request.mood.mood).prompt}, {INSTRUMENTAL}"


def stable_audio_input(request: MusicRequest, seed: int) -> dict[str, Any]:
    # An integer in every version's schema (one takes a number, another only an integer); rounded
    # up so the bed is never shorter than the ad.
    seconds = max(1, min(MAX_MODEL_SECONDS, math.ceil(request.duration - 1e-6)))
    return {"prompt": music_prompt(request), "duration": seconds, "seed": seed}


def music_progress(state: PredictionState) -> tuple[float, str] | None:
    if state.status == "starting":
        return 0.0, "waiting for a GPU"
    if state.status == "succeeded":
        return SAMPLING_SHARE + 1, "downloading the music"
    if state.status != "processing":
        return None
    bar = parse_log_progress(state.logs)
    if bar is None:
        return 1.0, "composing the music"
    current, total = bar
    return SAMPLING_SHARE * min(1.0, current / max(1, total)), f"composing the music {current}/{total}"


class ReplicateMusicGenerator(_ReplicateStage):
    name = "replicate-music"

    def __init__(self, settings: Settings, *, limits: AccountLimits | None = None) -> None:
        super().__init__(
            settings, label="Music bed", version=settings.audio.music_model, deadline_s=settings.audio.music_deadline_s,
            limits=limits, setting="JANT_MUSIC_MODEL",
            background_creates=True,  # a bed takes seconds; the clips take a minute
        )  # fmt: skip

    async def compose(self, request: MusicRequest, ctx: StageContext) -> StageResult:
        seed = request.seed if request.seed is not None else random_seed()
        state = await self.runner.run(stable_audio_input(request, seed), ctx, music_progress)
        await self.downloader.fetch(output_url(state.output), request.dest, "audio")
        used = state.input.get("seed")
        return StageResult(
            path=request.dest,
            seed=used if isinstance(used, int) and not isinstance(used, bool) else seed,
            prediction_id=state.id,
            predict_time=state.predict_time,
            # Billed per run, not per GPU-second: the price comes from the settings.
            cost_usd=self.settings.audio.music_price_per_run,
        )

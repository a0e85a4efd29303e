"""SDXL seed images and video clips (SVD or another registry model) on Replicate, behind the
ImageGenerator / VideoGenerator interfaces.

Each stage is one prediction by pinned version (a POST the replicate client never retries, so the
orchestrator's attempt loop is the only retry of a paid create), its id stored before we wait on
it, our own poll loop with a deadline (`replicate_predictions`), then an immediate download of
the output (`media_download`): Replicate deletes outputs after about an hour.
"""

from __future__ import annotations

import asyncio
import base64
import io
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import replicate
from PIL import Image

from pipeline.config import Settings
from pipeline.errors import ProviderError
from pipeline.prompts import NEGATIVE_PROMPT, clip_prompt, seed_prompt
from pipeline.providers.base import ClipRequest, Providers, SeedRequest, StageContext, StageResult
from pipeline.providers.media_download import MediaDownloader, MediaKind
from pipeline.providers.poll_scheduler import CreatePacer, PollScheduler
from pipeline.providers.replicate_predictions import (
    PredictionRunner,
    PredictionState,
    ProgressFn,
    SamplingFn,
    parse_log_progress,
)
from pipeline.shared_limits import CREATE_HOLD_S, CREATES, Budget, SharedWindows, poll_budget
from pipeline.video_models import ProgressLog, VideoModel, video_registry

# SVD's sampling bar is the slow part; the rest (VAE decode, ffmpeg, our download) gets the last 4 %.
SVD_SAMPLING_SHARE = 96.0
SDXL_SAMPLING_SHARE = 95.0
# Inputs as data URIs are recommended by Replicate below 1 MB; a 576x1024 JPEG at q95 is ~0.1–0.3 MB,
# the same seed as PNG can pass 1 MB. No /v1/files round trip either way.
SVD_INPUT_JPEG_QUALITY = 95
SVD_COND_AUG = 0.02
SVD_DECODING_T = 7  # frames decoded at a time: 7 halves the VAE's peak memory vs 14, for little time
# Polls are paced by the poll scheduler, so few requests are in flight at once; keeping every
# connection alive (httpx keeps 20 of 100 by default) saves reconnecting after each burst of
# creates, and a small pool keeps httpcore's per-request scan of its connections cheap.
REPLICATE_CONNECTIONS = httpx.Limits(max_connections=32, max_keepalive_connections=32)


def random_seed() -> int:
    return secrets.randbelow(2**31)


def multiple_of_8(value: int) -> int:
    """Diffusers needs sides divisible by 8 (a bad size fails the prediction, after we paid for it)."""
    return max(8, round(value / 8) * 8)


def sdxl_input(request: SeedRequest, seed: int) -> dict[str, Any]:
    return {
        "prompt": seed_prompt(request.scene, request.mood, request.palette),
        "negative_prompt": NEGATIVE_PROMPT,
        "width": multiple_of_8(request.width),
        "height": multiple_of_8(request.height),
        "num_inference_steps": request.steps,
        "num_outputs": 1,
        "seed": seed,
    }


def svd_input(request: ClipRequest, image_data_uri: str, seed: int) -> dict[str, Any]:
    return {
        "input_image": image_data_uri,
        # The default, maintain_aspect_ratio, shrinks a 9:16 seed to 320x576.
        "sizing_strategy": "use_image_dimensions",
        "video_length": request.video_length,
        "frames_per_second": request.fps,
        "motion_bucket_id": request.motion_bucket_id,
        "cond_aug": SVD_COND_AUG,
        "decoding_t": SVD_DECODING_T,
        "seed": seed,
    }


def svd_input_image(path: Path, width: int, height: int) -> str:
    """The seed, cover-scaled and centre-cropped to exactly width x height, as a JPEG data URI."""
    with Image.open(path) as src:
        img = src.convert("RGB")
    scale = max(width / img.width, height / img.height)
    w, h = max(width, round(img.width * scale)), max(height, round(img.height * scale))
    img = img.resize((w, h), Image.Resampling.LANCZOS)
    left, top = (w - width) // 2, (h - height) // 2
    img = img.crop((left, top, left + width, top + height))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=SVD_INPUT_JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def sdxl_sampling(state: PredictionState) -> float | None:
    """Fraction of SDXL's denoising bar done (None before the bar appears)."""
    bar = parse_log_progress(state.logs)
    if bar is None:
        return None
    current, total = bar
    return min(1.0, current / max(1, total))


def svd_sampling(state: PredictionState) -> float | None:
    """Fraction of SVD's sampling done: its bar counts steps+1 but ends at steps (30/31, 25/26)."""
    bar = parse_log_progress(state.logs)
    if bar is None:
        return None
    current, total = bar
    return min(1.0, current / max(1, total - 1))


def _lifecycle_progress(state: PredictionState, sampling_share: float) -> tuple[float, str] | None:
    """Progress for the states without a sampling bar; None while processing (read the bar)."""
    if state.status == "starting":
        return 0.0, "waiting for a GPU"
    if state.status == "succeeded":
        return sampling_share + 1, "downloading"
    return None


def sdxl_progress(state: PredictionState) -> tuple[float, str] | None:
    if state.status != "processing":
        return _lifecycle_progress(state, SDXL_SAMPLING_SHARE)
    bar = parse_log_progress(state.logs)
    if bar is None:
        return 1.0, "painting"
    current, total = bar
    return SDXL_SAMPLING_SHARE * min(1.0, current / max(1, total)), f"painting {current}/{total}"


def svd_progress(state: PredictionState) -> tuple[float, str] | None:
    if state.status != "processing":
        return _lifecycle_progress(state, SVD_SAMPLING_SHARE)
    bar = parse_log_progress(state.logs)
    if bar is None:
        return 1.0, "loading the model"
    current, total = bar
    # tqdm counts steps+1 sigmas but the sampler runs `steps` times: the bar ends at 30/31 (25/26).
    steps = max(1, total - 1)
    if current >= steps:
        return SVD_SAMPLING_SHARE, "encoding the clip"
    return SVD_SAMPLING_SHARE * current / steps, f"animating {current}/{steps}"


def output_url(output: Any) -> str:
    """The first output's URL: http:// outputs come back as str, https:// ones as FileOutput."""
    first = output[0] if isinstance(output, list | tuple) and output else output
    url = getattr(first, "url", first)
    if not isinstance(url, str) or not url:
        raise ProviderError(f"Replicate returned no output file ({output!r}).", retryable=True)
    return url


@dataclass(frozen=True)
class AccountLimits:
    """What every runner on one Replicate account shares: the poll budget and the create pacer."""

    polls: PollScheduler
    creates: CreatePacer

    @classmethod
    def from_settings(cls, settings: Settings) -> AccountLimits:
        return cls(
            PollScheduler(settings.replicate.poll_budget_per_min, burst_s=settings.limits.poll_interval_s),
            CreatePacer(settings.replicate.creates_per_min, settings.replicate.rate_window_s),
        )


class _ReplicateStage:
    """What the SDXL and SVD generators share: one client, one downloader, the prediction runner."""

    offline = False

    def __init__(
        self,
        settings: Settings,
        *,
        label: str,
        version: str,
        deadline_s: float,
        limits: AccountLimits | None = None,
        setting: str | None = None,
        background_creates: bool = False,
    ) -> None:
        if settings.replicate.api_token is None:
            raise ProviderError("REPLICATE_API_TOKEN is not set.", retryable=False)
        self.settings = settings
        # Our own transport so aclose() can close the pool (replicate.Client has no close method).
        self._transport = httpx.AsyncHTTPTransport(limits=REPLICATE_CONNECTIONS)
        self.client = replicate.Client(
            api_token=settings.replicate.api_token.get_secret_value(),
            base_url=settings.replicate.base_url,
            transport=self._transport,
        )
        self.limits = limits or AccountLimits.from_settings(settings)
        self.background_creates = background_creates
        self.runner = self._runner(label, version, deadline_s, setting)
        self.downloader = MediaDownloader(
            settings.replicate.allowed_hosts,
            settings.replicate.max_download_bytes,
            backoff_s=min(1.0, settings.limits.retry_backoff_s / 2),
        )

    def _runner(self, label: str, version: str, deadline_s: float, setting: str | None) -> PredictionRunner:
        return PredictionRunner(
            self.client, label=label, version=version, deadline_s=deadline_s,
            poll_base_s=self.settings.limits.poll_interval_s, max_attempts=self.settings.limits.max_attempts,
            poll_budget_per_min=self.settings.replicate.poll_budget_per_min, scheduler=self.limits.polls,
            pacer=self.limits.creates, setting=setting, background_creates=self.background_creates,
        )  # fmt: skip

    async def cancel(self, prediction_id: str) -> None:
        await self.runner.cancel(prediction_id)

    async def aclose(self) -> None:
        await self.downloader.aclose()
        await self._transport.aclose()

    async def _predict(
        self,
        input: dict[str, Any],
        seed: int,
        ctx: StageContext,
        progress: ProgressFn,
        sampling: SamplingFn,
        dest: Path,
        kind: MediaKind,
    ) -> StageResult:
        """Run one prediction to success, download its output to `dest` (checked to be `kind`)."""
        state = await self.runner.run(input, ctx, progress, sampling)
        await self.downloader.fetch(output_url(state.output), dest, kind)
        return StageResult(
            path=dest, seed=_int_or(state.input.get("seed"), seed), prediction_id=state.id,
            predict_time=state.predict_time,
        )  # fmt: skip


class ReplicateImageGenerator(_ReplicateStage):
    name = "replicate-sdxl"

    def __init__(self, settings: Settings, *, limits: AccountLimits | None = None) -> None:
        super().__init__(
            settings, label="SDXL seed image", version=settings.replicate.sdxl_version,
            deadline_s=settings.limits.seed_deadline_s,
            limits=limits, setting="JANT_SDXL_VERSION",
        )  # fmt: skip

    async def generate(self, request: SeedRequest, ctx: StageContext) -> StageResult:
        seed = request.seed if request.seed is not None else random_seed()
        return await self._predict(
            sdxl_input(request, seed), seed, ctx, sdxl_progress, sdxl_sampling, request.dest, "png"
        )


class ReplicateVideoGenerator(_ReplicateStage):
    """Clips from any registry entry (`pipeline.video_models`): the request's `model` picks it, the
    entry says the reference, inputs and how to read progress; one runner (and tail estimate) each."""

    name = "replicate-video"

    def __init__(
        self,
        settings: Settings,
        *,
        limits: AccountLimits | None = None,
        models: Mapping[str, VideoModel] | None = None,
    ) -> None:
        self.models = dict(models or video_registry(settings.replicate.svd_reference))
        svd = self.models["svd"]
        super().__init__(
            settings, label="SVD clip", version=settings.replicate.svd_version,
            deadline_s=settings.limits.clip_deadline_s, limits=limits, setting=svd.setting,
        )  # fmt: skip
        self._runners: dict[str, PredictionRunner] = {"svd": self.runner}

    def runner_for(self, model: VideoModel) -> PredictionRunner:
        runner = self._runners.get(model.key)
        if runner is None:
            version = model.version or model.model_ref  # official models are created by name
            runner = self._runner(f"{model.label} clip", version, self.settings.limits.clip_deadline_s, model.setting)
            self._runners[model.key] = runner
        return runner

    async def animate(self, request: ClipRequest, ctx: StageContext) -> StageResult:
        model = self.models.get(request.model)
        if model is None:
            raise ProviderError(
                f"There is no video model called {request.model!r}; known: {', '.join(self.models)}.",
                retryable=False,
            )
        seed = request.seed if request.seed is not None else random_seed()
        image = "" if ctx.existing_prediction_id else await asyncio.to_thread(
            svd_input_image, request.seed_image, request.width, request.height
        )  # fmt: skip
        if model.key == "svd":
            inputs = svd_input(request, image, seed)
        else:
            inputs = model.inputs(image=image, prompt=clip_prompt(request.scene, request.mood), seed=seed)
        progress, sampling = CLIP_PROGRESS[model.progress]
        state = await self.runner_for(model).run(inputs, ctx, progress, sampling)
        await self.downloader.fetch(output_url(state.output), request.dest, "mp4")
        return StageResult(
            path=request.dest, seed=_int_or(state.input.get("seed"), seed) if model.takes_seed else None,
            prediction_id=state.id, predict_time=state.predict_time,
            cost_usd=model.clip.usd,  # a per-clip price; GPU-time models: None, from predict_time
        )  # fmt: skip

    async def cancel(self, prediction_id: str) -> None:
        # Any runner cancels any prediction of this account; the SVD one is always there.
        await self.runner.cancel(prediction_id)


def hosted_progress(state: PredictionState) -> tuple[float, str] | None:
    """A hosted model that logs no bar: only its status tells."""
    if state.status != "processing":
        return _lifecycle_progress(state, SVD_SAMPLING_SHARE)
    return 1.0, "animating"


def tqdm_clip_progress(state: PredictionState) -> tuple[float, str] | None:
    if state.status != "processing":
        return _lifecycle_progress(state, SVD_SAMPLING_SHARE)
    bar = parse_log_progress(state.logs)
    if bar is None:
        return 1.0, "loading the model"
    current, total = bar
    if current >= total:
        return SVD_SAMPLING_SHARE, "encoding the clip"
    return SVD_SAMPLING_SHARE * current / max(1, total), f"animating {current}/{total}"


CLIP_PROGRESS: Mapping[ProgressLog, tuple[ProgressFn, SamplingFn | None]] = {
    ProgressLog.TQDM_STEPS_PLUS_ONE: (svd_progress, svd_sampling),
    ProgressLog.TQDM: (tqdm_clip_progress, sdxl_sampling),
    ProgressLog.NONE: (hosted_progress, None),
}


def _int_or(value: Any, default: int) -> int:
    """The seed the prediction really used (it differs from ours when resuming another run's prediction)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def share_account_limits(settings: Settings, providers: Providers, windows: SharedWindows) -> int:
    """Make every Replicate account pacer of `providers` also keep to the budgets in the database.
    Returns how many (one per account; 0 with no Replicate provider)."""
    creates = windows.window(
        Budget(CREATES, settings.replicate.creates_per_min, settings.replicate.rate_window_s), hold_s=CREATE_HOLD_S
    )
    polls = windows.window(poll_budget(settings.replicate.poll_budget_per_min, settings.limits.poll_interval_s))
    shared: dict[int, AccountLimits] = {}
    for provider in providers.every():
        limits = getattr(provider, "limits", None)
        if isinstance(limits, AccountLimits) and id(limits) not in shared:
            limits.creates.share(creates)
            limits.polls.share(polls)
            shared[id(limits)] = limits
    return len(shared)

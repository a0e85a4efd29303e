"""The image-to-video models a job can be animated with, as data: one `VideoModel` per registry key.

Each entry says how to call the model on Replicate (its reference, its inputs), what it gives back
(clip lengths, frame rate, size, sound) and what it costs, so the provider, the planner's scene
lengths, the offline preview and the cost estimate all read the same facts. Sources: the models'
pages as stored in PLATFORM-FACTS (B: SVD's cog source; G: the others; prices marked 3P there are
third-party figures). Re-check them against `GET /v1/models/{owner}/{name}` when keys are available.

A reference is either `owner/name` (an official model: `POST /v1/models/{owner}/{name}/predictions`,
no version) or `owner/name:version` (a community model: `POST /v1/predictions` with the version).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from pipeline.models import SCENE_MAX_S, SCENES_MAX, SCENES_MIN, TOTAL_MIN_S

DEFAULT_VIDEO_MODEL = "svd"


class AspectHandling(StrEnum):
    KEEPS = "keeps"  # the clip follows the input image's aspect: a 9:16 seed gives a 9:16 clip
    NEEDS_ASPECT_RATIO = "needs-aspect-ratio"  # the model must be told (`aspect_ratio: "9:16"`)


class ProgressLog(StrEnum):
    """How a prediction's logs say how far it is."""

    TQDM_STEPS_PLUS_ONE = "tqdm-steps+1"  # generative-models: the bar counts steps+1, ends at steps
    TQDM = "tqdm"  # a plain tqdm bar that reaches its total
    NONE = "none"  # a hosted model that logs no bar: only its status is known


@dataclass(frozen=True)
class ClipLength:
    """One clip length the model makes: what to send for it and what comes back."""

    frames: int
    inputs: Mapping[str, Any]  # e.g. {"num_frames": 81} or {"duration": 5}
    usd: float | None = None  # the price of one such clip; None: billed by GPU time

    def seconds(self, fps: float) -> float:
        return self.frames / fps


@dataclass(frozen=True)
class VideoModel:
    key: str
    label: str  # for people: "Wan 2.2 i2v fast"
    reference: str  # "owner/name" (official) or "owner/name:version" (community)
    image_input: str
    prompt_input: str | None
    lengths: tuple[ClipLength, ...]  # what it can make; the first is what Jant asks for
    fps: float  # of the mp4 it returns
    input_size: tuple[int, int]  # the seed is cover-resized to this (width, height) before upload
    output_size: tuple[int, int]  # the clip's size for that input
    aspect: AspectHandling
    defaults: Mapping[str, Any] = field(default_factory=dict)  # sent with every prediction
    audio: bool = False  # it returns sound; ours replaces it (the composer maps video only)
    progress: ProgressLog = ProgressLog.TQDM
    # SVD's clips (≤ 4.2 s) are spread over the scene, as before the registry; every other model's
    # clip is played at its own speed and cut at the scene's end, never stretched.
    retimes: bool = False
    gpu_seconds_per_clip: float | None = None  # for GPU-time billing: a typical run, for estimates
    ends: date | None = None  # the announced end of the model, when there is one
    setting: str = "JANT_VIDEO_MODEL"  # what to change when the model is gone
    takes_seed: bool = True  # it has a `seed` input (hosted models may not)

    def __post_init__(self) -> None:
        if not self.lengths:
            raise ValueError(f"{self.key}: a video model needs at least one clip length")

    @property
    def official(self) -> bool:
        return ":" not in self.reference

    @property
    def model_ref(self) -> str:
        """owner/name, without a version."""
        return self.reference.split(":", 1)[0]

    @property
    def version(self) -> str | None:
        return self.reference.split(":", 1)[1] if ":" in self.reference else None

    @property
    def clip(self) -> ClipLength:
        return self.lengths[0]

    @property
    def clip_seconds(self) -> float:
        """The length of the clip Jant asks for: a scene may last this long at most (unless retimed)."""
        return round(self.clip.seconds(self.fps), 4)

    @property
    def allowed_seconds(self) -> tuple[float, ...]:
        return tuple(round(length.seconds(self.fps), 4) for length in self.lengths)

    @property
    def scene_max_s(self) -> float:
        """The longest scene this model's clip can fill without slowing down."""
        if self.retimes:
            return SCENE_MAX_S
        return min(SCENE_MAX_S, math.floor(self.clip_seconds * 100) / 100)

    @property
    def min_scenes(self) -> int:
        """Fewest scenes that reach the ad's minimum length with scenes of at most `scene_max_s`."""
        return max(SCENES_MIN, math.ceil(round(TOTAL_MIN_S / self.scene_max_s, 6)))

    @property
    def usable(self) -> bool:
        """Its clips can make a whole ad: enough scenes of at most `scene_max_s` fit the rules."""
        return self.min_scenes <= SCENES_MAX

    def clip_price_usd(self, seconds: float | None = None, *, usd_per_gpu_second: float | None = None) -> float:
        """What one clip costs for a scene of `seconds` (the clip made is always a whole clip, so
        a trimmed scene costs the same). GPU-time models need the account's rate per GPU second."""
        length = self.clip
        if length.usd is not None:
            return length.usd
        if self.gpu_seconds_per_clip is None or usd_per_gpu_second is None:
            raise ValueError(f"{self.key} is billed by GPU time: give usd_per_gpu_second")
        return self.gpu_seconds_per_clip * usd_per_gpu_second

    @property
    def price_text(self) -> str:
        if self.clip.usd is not None:
            per_s = self.clip.usd / self.clip_seconds
            return f"${self.clip.usd:.2f} per {self.clip_seconds:g} s clip (${per_s:.3f}/s)"
        return f"GPU time (~{self.gpu_seconds_per_clip:g} GPU-s per clip)"

    def inputs(self, *, image: str, prompt: str | None, seed: int | None) -> dict[str, Any]:
        """The prediction's input: defaults, the clip length's own inputs, the image, prompt, seed."""
        values: dict[str, Any] = {**self.defaults, **self.clip.inputs, self.image_input: image}
        if self.prompt_input is not None and prompt:
            values[self.prompt_input] = prompt
        if self.aspect is AspectHandling.NEEDS_ASPECT_RATIO:
            values["aspect_ratio"] = "9:16"
        if seed is not None and self.takes_seed:
            values["seed"] = seed
        return values


def _svd(reference: str) -> VideoModel:
    # cog-svd (PLATFORM-FACTS B): 25 frames at frames_per_second+1 = 7 fps ≈ 3.57 s, 576x1024 with
    # use_image_dimensions. The provider sends the job's motion bucket and JANT_SVD_* per request.
    return VideoModel(
        key="svd",
        label="Stable Video Diffusion",
        reference=reference,
        image_input="input_image",
        prompt_input=None,
        lengths=(
            ClipLength(25, {"video_length": "25_frames_with_svd_xt"}),
            ClipLength(14, {"video_length": "14_frames_with_svd"}),
        ),
        fps=7,
        input_size=(576, 1024),
        output_size=(576, 1024),
        aspect=AspectHandling.KEEPS,
        defaults={
            "sizing_strategy": "use_image_dimensions",
            "frames_per_second": 6,
            "cond_aug": 0.02,
            "decoding_t": 7,
        },
        progress=ProgressLog.TQDM_STEPS_PLUS_ONE,
        retimes=True,
        gpu_seconds_per_clip=75.0,  # an estimate (svd-xt, 30 steps at 576x1024 on an A100)
        setting="JANT_SVD_VERSION",
    )


def _others() -> tuple[VideoModel, ...]:
    return (
        VideoModel(
            key="wan-2.2-i2v-fast",
            label="Wan 2.2 i2v fast",
            reference="wan-video/wan-2.2-i2v-fast",
            image_input="image",
            prompt_input="prompt",
            # 81 frames at 16 fps = 5.06 s; 121 frames = 7.56 s (price scaled by frames: 3P estimate).
            lengths=(
                ClipLength(81, {"num_frames": 81}, usd=0.16),
                ClipLength(121, {"num_frames": 121}, usd=0.24),
            ),
            fps=16,
            input_size=(720, 1280),
            output_size=(720, 1280),
            aspect=AspectHandling.KEEPS,
            defaults={"frames_per_second": 16, "resolution": "720p", "go_fast": True, "interpolate_output": False},
        ),
        VideoModel(
            key="kling-v2.1",
            label="Kling 2.1",
            reference="kwaivgi/kling-v2.1",
            image_input="start_image",
            prompt_input="prompt",
            # Standard mode, 720p: $0.05 per second of output (3P).
            lengths=(ClipLength(120, {"duration": 5}, usd=0.25), ClipLength(240, {"duration": 10}, usd=0.50)),
            fps=24,
            input_size=(720, 1280),
            output_size=(720, 1280),
            aspect=AspectHandling.KEEPS,
            defaults={"mode": "standard", "negative_prompt": "text, watermark, logo, blurry, distorted"},
            progress=ProgressLog.NONE,
            takes_seed=False,
        ),
        VideoModel(
            key="hailuo-02",
            label="Hailuo 02",
            reference="minimax/hailuo-02",
            image_input="first_frame_image",
            prompt_input="prompt",
            # 1080p makes 6 s clips only (10 s needs 768p); ≈ $0.08 per second at 1080p (3P).
            lengths=(ClipLength(150, {"duration": 6}, usd=0.48),),
            fps=25,
            input_size=(768, 1344),
            output_size=(1080, 1920),
            aspect=AspectHandling.KEEPS,
            defaults={"resolution": "1080p", "prompt_optimizer": False},
            progress=ProgressLog.NONE,
            takes_seed=False,  # the model has no seed input
        ),
    )


def video_registry(svd_reference: str | None = None) -> dict[str, VideoModel]:
    """Every entry by key. SVD's reference follows JANT_SVD_MODEL/JANT_SVD_VERSION when given."""
    from pipeline.config import SVD_VERSION

    svd = _svd(svd_reference or f"stability-ai/stable-video-diffusion:{SVD_VERSION}")
    return {m.key: m for m in (svd, *_others())}


VIDEO_MODELS: Mapping[str, VideoModel] = video_registry()
VIDEO_MODEL_KEYS: tuple[str, ...] = tuple(VIDEO_MODELS)


class VideoModelChoiceError(ValueError):
    """A model key that is unknown or that this server does not allow; the message says what to do."""


def parse_keys(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(k.strip().lower() for k in text.split(",") if k.strip()))


def allowed_models(process_allowed: tuple[str, ...], server_allowed: tuple[str, ...] | None) -> tuple[str, ...]:
    """The keys a server may use: its own list when it has one, else the process's; only known keys."""
    chosen = server_allowed if server_allowed is not None else process_allowed
    return tuple(k for k in chosen if k in VIDEO_MODELS)


def choose_video_model(
    key: str | None, *, default: str, allowed: tuple[str, ...], where: str = "this server"
) -> VideoModel:
    """The entry for `key` (None: the default), or a `VideoModelChoiceError` saying what can be chosen."""
    wanted = (key or default).strip().lower()
    choices = ", ".join(allowed) or "none"
    if wanted not in VIDEO_MODELS:
        raise VideoModelChoiceError(
            f"There is no video model called {wanted[:40]!r}. Choose one of: {choices}"
            + ("." if key else " (or set JANT_VIDEO_MODEL to one of them).")
        )
    if wanted not in allowed:
        label = VIDEO_MODELS[wanted].label
        how = "choose another with model:" if key else "choose one with model:, or ask an admin to allow it"
        raise VideoModelChoiceError(
            f"{label} ({wanted}) is not allowed on {where}; allowed: {choices}. {how[0].upper()}{how[1:]}"
            " (JANT_ALLOWED_VIDEO_MODELS, or the server's own list)."
        )
    return VIDEO_MODELS[wanted]


def video_model(key: str | None, registry: Mapping[str, VideoModel] | None = None) -> VideoModel:
    """The entry a stored job uses: None (a job from before the registry) is SVD, as it was then."""
    models = registry or VIDEO_MODELS
    return models[key or DEFAULT_VIDEO_MODEL]

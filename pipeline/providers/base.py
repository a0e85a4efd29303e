"""The narrow interfaces every provider implements, offline or real.

The orchestrator only knows these. A provider gets a `StageContext` so it can report progress and
— before it awaits anything paid — record its prediction id, which is how a restarted bot resumes
polling instead of paying twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

from pipeline.moods import MoodPreset
from pipeline.speech_timing import WordTiming

if TYPE_CHECKING:  # `pipeline.models` knows the stage kinds, whose requests are defined here
    from pipeline.models import AdRequest, Scene, Storyboard


class AttemptStep(StrEnum):
    """Which part of one attempt at a stage a provider is asked to do. The local engine asks for the
    whole of it; the durable engine (docs/durable-jobs.md) asks for it in two steps it checkpoints, so a
    restart between them waits for the prediction already paid for instead of creating another."""

    WHOLE = "whole"  # create (or resume `existing_prediction_id`), wait, download
    CREATE = "create"  # create the prediction and record its id, then stop (`PredictionCreated`)
    WAIT = "wait"  # poll `existing_prediction_id` to its end and download: only reads, safe to run twice


class PredictionCreated(Exception):  # not an error: how a provider stops after its create step
    """Raised out of a provider asked for `AttemptStep.CREATE` once its prediction exists and its id is
    recorded. A provider that makes its output without a prediction (offline, OpenAI's voice) makes it
    in that step instead, and returns it as usual."""

    def __init__(self, prediction_id: str) -> None:
        super().__init__(prediction_id)
        self.prediction_id = prediction_id


@dataclass(frozen=True)
class PredictionIntent:
    """A create about to be sent, recorded before the POST: if the process dies before the prediction's
    id is stored, the next run of that attempt finds the prediction by these instead of paying again."""

    model: str  # "owner/name" (an official model, created by name) or the version id
    fingerprint: str  # of the input fields the provider echoes back unchanged (its own module says which)
    sent_at: datetime  # UTC, just before the POST


@dataclass
class StageContext:
    job_id: str
    scene_index: int  # 0 for a job-level stage
    stage: str  # the stage's kind: "seed", "clip", "voice", "music" …
    attempt: int
    # Set when resuming: a prediction created by an earlier run, to poll instead of creating anew; and
    # for `AttemptStep.WAIT`, the prediction its create step made.
    existing_prediction_id: str | None = None
    on_progress: Callable[[float, str | None], Awaitable[None]] | None = None
    on_prediction: Callable[[str], Awaitable[None]] | None = None
    # How many predictions are in flight process-wide; real providers widen their poll interval.
    in_flight: Callable[[], int] = field(default=lambda: 1)
    step: AttemptStep = AttemptStep.WHOLE
    # Set when resuming an attempt whose create was sent but whose prediction id was never stored (the
    # process died in between): the provider looks for that prediction before creating another.
    intent: PredictionIntent | None = None
    on_intent: Callable[[PredictionIntent], Awaitable[None]] | None = None

    async def progress(self, percent: float, note: str | None = None) -> None:
        if self.on_progress is not None:
            await self.on_progress(max(0.0, min(100.0, percent)), note)

    async def record_prediction(self, prediction_id: str) -> None:
        """Persist the id BEFORE awaiting the prediction: the window for a duplicate stays tiny."""
        if self.on_prediction is not None:
            await self.on_prediction(prediction_id)

    async def record_intent(self, intent: PredictionIntent) -> None:
        """Persist a create's intent BEFORE sending it (recording its id then supersedes it)."""
        if self.on_intent is not None:
            await self.on_intent(intent)


@dataclass(frozen=True)
class SeedRequest:
    storyboard: Storyboard
    scene: Scene
    mood: MoodPreset
    product: str
    width: int
    height: int
    steps: int
    dest: Path
    seed: int | None = None
    # The team's own product photo (a validated PNG under the data directory), when the request has
    # one: the photo seed provider fits it into the frame; the painter matches its colours.
    photo: Path | None = None
    palette: tuple[str, ...] = ()  # the photo's dominant colours, named, for a painted seed's prompt


@dataclass(frozen=True)
class ClipRequest:
    scene: Scene
    mood: MoodPreset
    seed_image: Path
    dest: Path
    width: int = 576
    height: int = 1024
    fps: int = 6
    video_length: str = "25_frames_with_svd_xt"
    motion_bucket_id: int = 127
    seed: int | None = None
    model: str = "svd"  # the video model's registry key (pipeline.video_models)


@dataclass(frozen=True)
class StageResult:
    path: Path
    seed: int | None = None
    prediction_id: str | None = None
    predict_time: float | None = None  # GPU seconds billed, when the provider reports it
    duration: float | None = None  # seconds of audio or video, when the provider measured it
    words: tuple[WordTiming, ...] | None = None  # word timings, when a voice provider gives them
    cost_usd: float | None = None  # when billed per unit (characters, runs) rather than GPU time


@dataclass(frozen=True)
class VoiceRequest:
    """One scene's voiceover line, spoken into `dest`."""

    text: str
    dest: Path
    language: str = "en"  # ISO 639-1
    voice_id: str | None = None  # None: the provider's default voice
    speed: float = 1.0


@dataclass(frozen=True)
class MusicRequest:
    """One instrumental bed for the whole ad, written to `dest`."""

    mood: MoodPreset
    duration: float  # seconds; always sent to the model
    dest: Path
    seed: int | None = None


@runtime_checkable
class StoryboardPlanner(Protocol):
    name: str
    offline: bool

    async def plan(self, request: AdRequest, *, feedback: str | None = None) -> Storyboard:
        """A valid storyboard for the request; `feedback` asks for a different take."""
        ...


@runtime_checkable
class ImageGenerator(Protocol):
    name: str
    offline: bool

    async def generate(self, request: SeedRequest, ctx: StageContext) -> StageResult: ...

    async def cancel(self, prediction_id: str) -> None: ...


@runtime_checkable
class VideoGenerator(Protocol):
    name: str
    offline: bool

    async def animate(self, request: ClipRequest, ctx: StageContext) -> StageResult: ...

    async def cancel(self, prediction_id: str) -> None: ...


@runtime_checkable
class VoiceGenerator(Protocol):
    """Text to speech: the result's `duration` is the measured audio length, `words` when known."""

    name: str
    offline: bool

    async def synthesize(self, request: VoiceRequest, ctx: StageContext) -> StageResult: ...

    async def cancel(self, prediction_id: str) -> None: ...


@runtime_checkable
class MusicGenerator(Protocol):
    name: str
    offline: bool

    async def compose(self, request: MusicRequest, ctx: StageContext) -> StageResult: ...

    async def cancel(self, prediction_id: str) -> None: ...


@runtime_checkable
class StageProvider(Protocol):
    """What every stage's provider has, whatever its kind's request (`pipeline.stage_kinds`)."""

    name: str
    offline: bool

    async def cancel(self, prediction_id: str) -> None: ...


class Providers:
    """The storyboard planner and one provider per stage kind, looked up by the kind's name.

    `Providers(planner, images, video)` fills the two kinds every ad needs; other kinds come in
    `stages` (`{"voice": …, "music": …}`). A kind with no provider here has no stages in new jobs.
    A kind may have more than one provider (`StageKind.source` picks one per scene): the product
    photo's seeds are under `stage_kinds.PHOTO_SEED`.
    """

    def __init__(
        self,
        planner: StoryboardPlanner,
        images: ImageGenerator | None = None,
        video: VideoGenerator | None = None,
        notices: list[str] | None = None,  # "OPENAI_API_KEY not set: offline planner"
        *,
        stages: Mapping[str, StageProvider] | None = None,
        reasons: Mapping[str, str] | None = None,
    ) -> None:
        self.planner = planner
        # Why an optional kind has no provider ("JANT_VOICE=none: …"): a job's notes repeat it.
        self.reasons: dict[str, str] = dict(reasons or {})
        self.stages: dict[str, StageProvider] = {}
        if images is not None:
            self.stages["seed"] = images
        if video is not None:
            self.stages["clip"] = video
        self.stages.update(stages or {})
        # Every Jant can seed a scene from the team's product photo: it is local and needs no key.
        from pipeline.providers.photo_seed import ProductPhotoSeeds
        from pipeline.stage_kinds import PHOTO_SEED

        self.stages.setdefault(PHOTO_SEED, ProductPhotoSeeds())
        self.notices = list(notices or [])

    def get(self, kind: str) -> StageProvider | None:
        return self.stages.get(kind)

    @property
    def images(self) -> ImageGenerator:
        return cast(ImageGenerator, self.stages["seed"])

    @property
    def video(self) -> VideoGenerator:
        return cast(VideoGenerator, self.stages["clip"])

    def every(self) -> Iterator[StoryboardPlanner | StageProvider]:
        """The planner and each distinct stage provider once (one object may serve two kinds)."""
        seen: set[int] = set()
        candidates: list[StoryboardPlanner | StageProvider] = [self.planner, *self.stages.values()]
        for provider in candidates:
            if id(provider) not in seen:
                seen.add(id(provider))
                yield provider

    @property
    def offline(self) -> bool:
        """The ad is a local preview: its storyboard or footage is placeholder work. (An offline
        voice or music bed is real sound, and does not make the ad a preview.)"""
        return self.planner.offline or any(self.stages[k].offline for k in ("seed", "clip") if k in self.stages)

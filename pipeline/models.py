"""The domain: what an ad request, a storyboard and a job are, and the rules they obey.

Validation lives here, in code, not in a JSON schema: the OpenAI strict schema stays simple and
every broken rule gets an error message that names it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.brand import BrandKit
from pipeline.formats import MASTER_FORMAT, formats_problem, parse_formats
from pipeline.language import detect_language, normalise_language
from pipeline.moods import Mood
from pipeline.speech_timing import WordTiming
from pipeline.spoken_text import voiceover_problem
from pipeline.stage_kinds import (
    JOB_LEVEL_INDEX,
    STAGE_KINDS,
    StageKind,
    StageLevel,
    StageName,
    kind_of,
    required_kinds,
    uses_product_photo,
)

PRODUCT_MAX_CHARS = 2000
TEXT_FIELD_MAX_CHARS = 200
SCENES_MIN, SCENES_MAX = 5, 7
TOTAL_MIN_S, TOTAL_MAX_S = 29.0, 31.0
SCENE_MIN_S, SCENE_MAX_S = 2.0, 8.0
DESCRIPTION_MAX_CHARS = 300
VISUAL_PROMPT_MAX_CHARS = 600
ON_SCREEN_TEXT_MAX_CHARS = 60
HOOKS_MAX = 3  # hook A (the storyboard's first scene) and up to two alternatives
VOICEOVER_MAX_CHARS = 400  # a ceiling for the text field; the real limit is words per second of the scene


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    """Short, URL- and custom_id-safe, hard to guess."""
    return secrets.token_hex(4)


def _clean_text(value: str) -> str:
    """Drop control characters (they break embeds and terminals) and fold runs of whitespace."""
    kept = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in value)
    return " ".join(kept.split())


class Beat(StrEnum):
    HOOK = "hook"
    INTRO = "intro"
    FEATURE = "feature"
    CTA = "cta"


class AdRequest(BaseModel):
    """What a teammate asked for."""

    model_config = ConfigDict(frozen=True)

    product: str = Field(description="Product description")
    mood: Mood = Mood.TECH
    audience: str | None = None
    cta: str | None = None
    # ISO 639-1; detected from the product text when not given, so a request always knows its language.
    language: str | None = None
    # The voice this ad is spoken in (a provider's voice id; None: JANT_VOICE_ID or the provider's
    # default), and whether it is spoken at all (`--no-voice`). Stored with the request so a restarted
    # job keeps the choice.
    voice: str | None = None
    speak: bool = True
    # The team's own product photo: the validated, re-encoded PNG under the data directory
    # (pipeline.uploaded_images), never the user's original file or a URL. Scenes the storyboard
    # marks `shows_product` use it instead of a painted seed.
    photo: str | None = None
    # The image-to-video model's registry key (pipeline.video_models). A new job always stores the
    # one it uses (the chosen one, or JANT_VIDEO_MODEL's at creation); None: a job from before the
    # registry, made with SVD.
    model: str | None = None
    # The shapes to deliver: the 9:16 master always, and any of pipeline.formats.FORMATS besides,
    # made from the same clips and soundtrack (no prediction of their own).
    formats: tuple[str, ...] = (MASTER_FORMAT,)
    # How many opening hooks to test (A/B/C): the planner writes `hooks - 1` alternative hook scenes,
    # each costing one more seed and clip; the rest of the ad is shared (pipeline.hook_variants).
    hooks: int = 1

    @field_validator("hooks", mode="before")
    @classmethod
    def _hooks(cls, v: Any) -> Any:
        try:
            n = int(v)
        except (TypeError, ValueError):
            raise ValueError(f"hooks must be a number from 1 to {HOOKS_MAX} (got {v!r})") from None
        if not (1 <= n <= HOOKS_MAX) or (isinstance(v, float) and v != n):
            raise ValueError(f"hooks must be 1, 2 or {HOOKS_MAX}: how many opening hooks to test (got {v!r})")
        return n

    @field_validator("formats", mode="before")
    @classmethod
    def _formats(cls, v: Any) -> Any:
        keys = parse_formats(v) if isinstance(v, str) else tuple(v)
        problem = formats_problem(keys)
        if problem is not None:
            raise ValueError(problem)
        return (MASTER_FORMAT, *(k for k in keys if k != MASTER_FORMAT))

    @model_validator(mode="before")
    @classmethod
    def _detect_language(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("language") and isinstance(data.get("product"), str):
            return {**data, "language": detect_language(data["product"])}
        return data

    @field_validator("language")
    @classmethod
    def _language(cls, v: str | None) -> str | None:
        return None if v is None else normalise_language(v)

    @field_validator("product")
    @classmethod
    def _product(cls, v: str) -> str:
        v = _clean_text(v)
        if not v:
            raise ValueError("the product description is empty: say what you are advertising")
        if len(v) > PRODUCT_MAX_CHARS:
            raise ValueError(f"the product description is {len(v)} characters; use at most {PRODUCT_MAX_CHARS}")
        return v

    @field_validator("audience", "cta")
    @classmethod
    def _optional_text(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = _clean_text(v)
        if len(v) > TEXT_FIELD_MAX_CHARS:
            raise ValueError(f"keep this under {TEXT_FIELD_MAX_CHARS} characters (got {len(v)})")
        return v or None

    @field_validator("mood", mode="before")
    @classmethod
    def _mood(cls, v: Any) -> Any:
        if isinstance(v, str):
            name = v.strip().lower()
            if name not in {m.value for m in Mood}:
                raise ValueError(f"unknown mood {v!r}; choose one of: {', '.join(m.value for m in Mood)}")
            return name
        return v


class Scene(BaseModel):
    index: int = Field(ge=1, description="1-based position in the ad")
    beat: Beat
    duration: float = Field(description="Seconds on screen")
    description: str
    visual_prompt: str
    on_screen_text: str | None = None
    # The words spoken during the scene. None only on storyboards stored before Jant wrote voiceovers:
    # those load as before and their scenes stay silent; every planner writes a line for every scene.
    voiceover: str | None = None
    # The product itself is the subject of the frame: when the request has the team's own photo of it,
    # the photo is this scene's seed (not a painted one). False on storyboards stored before it existed.
    shows_product: bool = False

    @field_validator("description", "visual_prompt")
    @classmethod
    def _required_text(cls, v: str) -> str:
        v = _clean_text(v)
        if not v:
            raise ValueError("must not be empty")
        return v

    @field_validator("description")
    @classmethod
    def _description_len(cls, v: str) -> str:
        return v[:DESCRIPTION_MAX_CHARS]

    @field_validator("visual_prompt")
    @classmethod
    def _prompt_len(cls, v: str) -> str:
        return v[:VISUAL_PROMPT_MAX_CHARS]

    @field_validator("on_screen_text")
    @classmethod
    def _overlay(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = _clean_text(v)[:ON_SCREEN_TEXT_MAX_CHARS]
        return v or None

    @field_validator("duration")
    @classmethod
    def _duration(cls, v: float) -> float:
        if not (SCENE_MIN_S <= v <= SCENE_MAX_S):
            raise ValueError(f"scene duration must be between {SCENE_MIN_S:g} and {SCENE_MAX_S:g} s (got {v:g} s)")
        return round(float(v), 2)

    @field_validator("voiceover")
    @classmethod
    def _voiceover_text(cls, v: str | None) -> str | None:
        return None if v is None else _clean_text(v)[:VOICEOVER_MAX_CHARS]

    @model_validator(mode="after")
    def _voiceover_rules(self) -> Scene:
        # After the fields, so the message can name the scene and use its validated duration.
        if self.voiceover is not None and (problem := voiceover_problem(self.voiceover, self.duration)):
            raise ValueError(f"scene {self.index} ({self.beat.value}): {problem}")
        return self


class Storyboard(BaseModel):
    """5–7 scenes, 29–31 s in all, opening on a hook and closing on a call to action."""

    title: str
    scenes: list[Scene]
    # The language the voiceover lines are written in (ISO 639-1): the request's, or English when the
    # writer could not write that language (the card says so). None on storyboards without lines.
    language: str | None = None
    # Trusted bot text shown on the storyboard card, e.g. that a fallback model wrote it.
    model_note: str | None = None
    # Alternative opening scenes for a hook A/B test (hook B, hook C): each replaces scene 1 in its
    # own cut of the ad, in scene 1's time slot, so everything after the hook is shared.
    alt_hooks: list[Scene] = Field(default_factory=list)

    @field_validator("title")
    @classmethod
    def _title(cls, v: str) -> str:
        return _clean_text(v)[:120] or "Untitled ad"

    @model_validator(mode="after")
    def _rules(self) -> Storyboard:
        n = len(self.scenes)
        if not (SCENES_MIN <= n <= SCENES_MAX):
            raise ValueError(f"a storyboard needs {SCENES_MIN} to {SCENES_MAX} scenes (got {n})")
        if [s.index for s in self.scenes] != list(range(1, n + 1)):
            raise ValueError("scenes must be numbered 1, 2, 3… in order")
        total = self.total_duration
        if not (TOTAL_MIN_S <= total <= TOTAL_MAX_S):
            raise ValueError(f"scene durations must add up to {TOTAL_MIN_S:g}–{TOTAL_MAX_S:g} s (got {total:g} s)")
        if self.scenes[0].beat is not Beat.HOOK:
            raise ValueError(f"the first scene must be the hook (got {self.scenes[0].beat.value})")
        if self.scenes[-1].beat is not Beat.CTA:
            raise ValueError(f"the last scene must be the call to action (got {self.scenes[-1].beat.value})")
        if len(self.alt_hooks) > HOOKS_MAX - 1:
            raise ValueError(f"at most {HOOKS_MAX - 1} alternative hooks (got {len(self.alt_hooks)})")
        for n, alt in enumerate(self.alt_hooks):
            if alt.beat is not Beat.HOOK or alt.index != 1:
                raise ValueError(
                    f"alternative hook {hook_letter(n + 1)} must be a hook scene numbered 1 "
                    f"(got {alt.beat.value} {alt.index})"
                )
            # An alternative plays in scene 1's slot, so it always lasts as long (an edit or a model's
            # clip length that changes scene 1 changes them all); a line too long for it is sped up.
            alt.duration = self.scenes[0].duration
        return self

    def hook_scenes(self) -> list[Scene]:
        """Every hook of the A/B test in order: scene 1 (hook A), then the alternatives (B, C)."""
        return [self.scenes[0], *self.alt_hooks]

    @property
    def total_duration(self) -> float:
        return round(sum(s.duration for s in self.scenes), 2)

    @property
    def has_voiceover(self) -> bool:
        return any(s.voiceover for s in self.scenes)


def hook_letter(n: int) -> str:
    """0 → "A" (the storyboard's own first scene), 1 → "B", 2 → "C"."""
    return "ABC"[n]


def storyboard_problem(exc: ValidationError) -> str:
    """One readable line per broken rule, for users and for the planner's retry prompt."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(lines)


class JobStatus(StrEnum):
    PLANNING = "planning"
    AWAITING_APPROVAL = "awaiting_approval"
    QUEUED = "queued"
    RUNNING = "running"
    COMPOSING = "composing"
    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in {JobStatus.COMPLETED, JobStatus.PARTIAL, JobStatus.FAILED, JobStatus.CANCELLED}


class StageStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in {StageStatus.DONE, StageStatus.FAILED, StageStatus.CANCELLED}


def _known_kind(value: str) -> str:
    """The `StageName` member for a shipped kind (so `stage.stage is StageName.SEED` holds after a
    reload), the plain name for any other kind."""
    return StageName(value) if value in StageName.__members__.values() else value


StageKindName = Annotated[str, AfterValidator(_known_kind)]


class StageState(BaseModel):
    """One paid, slow step of a scene (its seed image, its clip, its voiceover) or of the whole job
    (its music bed, at scene index 0). Its kind's rules are in `pipeline.stage_kinds`."""

    job_id: str
    scene_index: int  # JOB_LEVEL_INDEX (0) for a job-level stage
    stage: StageKindName
    status: StageStatus = StageStatus.PENDING
    progress: float = 0.0  # 0–100
    attempt: int = 0
    max_attempts: int = 3
    error: str | None = None
    path: str | None = None
    seed: int | None = None
    prediction_id: str | None = None
    # What the provider measured: a voice's length (s) and word timings, kept so a restarted job fits
    # its scenes and draws its captions without reading the audio again; and its price when billed per
    # unit (characters, runs) rather than by GPU time.
    duration: float | None = None
    words: list[WordTiming] | None = None
    cost_usd: float | None = None
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def kind(self) -> StageKind:
        return kind_of(self.stage)

    def reset(self) -> None:
        """Back to pending, for a new run of a stage that did not finish (its take is kept)."""
        self.status, self.error, self.progress, self.attempt, self.prediction_id = (
            StageStatus.PENDING, None, 0.0, 0, None
        )  # fmt: skip


class SceneState(BaseModel):
    index: int
    stages: dict[str, StageState]  # by kind, in `STAGE_KINDS` order
    normalized_path: str | None = None

    @property
    def seed(self) -> StageState:
        return self.stages[StageName.SEED]

    @property
    def clip(self) -> StageState:
        return self.stages[StageName.CLIP]

    def _required(self) -> list[StageState]:
        return [st for st in self.stages.values() if not st.kind.optional]

    @property
    def done(self) -> bool:
        """The scene's footage is made and normalised: it can be joined (optional parts aside)."""
        return self.footage_made and self.normalized_path is not None

    @property
    def footage_made(self) -> bool:
        """The stages whose output is the scene's picture are done (it may still need normalising)."""
        footage = [st for st in self.stages.values() if st.kind.footage]
        return bool(footage) and all(st.status is StageStatus.DONE for st in footage)

    @property
    def failed(self) -> bool:
        return any(st.status is StageStatus.FAILED for st in self._required())

    @property
    def error(self) -> str | None:
        return next((st.error for st in self._required() if st.error), None)

    @property
    def progress(self) -> float:
        """Each stage counts by its kind's weight (a seed a fifth of a seed and clip); the footage
        stops at 99 % until it is normalised."""
        if self.done:
            return 100.0
        total = weighted = 0.0
        for st in self.stages.values():
            kind = st.kind
            percent = 100.0 if st.status is StageStatus.DONE else st.progress
            if kind.footage:
                percent = min(st.progress, 99.0)
            total += kind.weight
            weighted += kind.weight * percent
        return round(weighted / total, 1) if total else 0.0


class JobUi(BaseModel):
    """What a front end remembers about a job (Discord message ids …), stored as JSON on the job's row.

    Every field is optional: a job made by the CLI has none of them. Keys that older versions wrote
    and this one no longer knows are ignored on read (the row keeps them). Updates go through
    `JobStore.update_ui`, one key at a time in SQL, so two writers never lose each other's keys.
    """

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    storyboard_channel_id: int | None = None
    storyboard_message_id: int | None = None
    status_channel_id: int | None = None
    status_message_id: int | None = None
    # Why no status message can be shown any more (its channel and thread are gone).
    status_unavailable: str | None = None
    thread_id: int | None = None
    approved_by: int | None = None
    replans: int | None = None
    result_channel_id: int | None = None
    result_message_id: int | None = None
    # How the result reached Discord, or why it did not (bot.result_delivery names the values).
    delivered: str | None = None
    # Why posting the finished ad failed, when `delivered` says it did.
    delivery_error: str | None = None
    # The job's end has reached Discord: a restarted bot need not post it again.
    settled: bool | None = None

    @classmethod
    def patch(cls, changes: dict[str, Any]) -> dict[str, Any]:
        """`changes` checked against the schema, as JSON values; None means "remove the key"."""
        unknown = set(changes) - set(cls.model_fields)
        if unknown:
            raise KeyError(f"unknown job.ui keys: {sorted(unknown)}")
        return cls.model_validate(changes).model_dump(mode="json", include=set(changes))

    def stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class SceneTiming(BaseModel):
    """The scenes' final durations once fitted to the measured voice, the speed each line is played at,
    and the line lengths it was fitted to (a resumed job with the same lines reuses these numbers)."""

    durations: list[float]
    speeds: list[float]
    voice: list[float | None]  # measured length of each scene's line; None: no line spoken
    problems: list[str | None] = Field(default_factory=list)

    def start(self, index: int) -> float:
        """Where scene `index` (1-based) starts on the ad's timeline."""
        return round(sum(self.durations[: index - 1]), 3)

    @property
    def total(self) -> float:
        return round(sum(self.durations), 2)


class Soundtrack(BaseModel):
    """The mixed audio of the ad, and what it was mixed from: a re-roll that changes neither the
    timing nor the lines nor the music joins the same file again."""

    path: str
    key: str


class Job(BaseModel):
    id: str = Field(default_factory=new_job_id)
    status: JobStatus = JobStatus.PLANNING
    request: AdRequest
    storyboard: Storyboard | None = None
    scenes: list[SceneState] = Field(default_factory=list)
    job_stages: dict[str, StageState] = Field(default_factory=dict)  # stages of the whole ad, by kind
    requester_id: str | None = None
    guild_id: str | None = None
    channel_id: str | None = None
    ui: JobUi = Field(default_factory=JobUi)  # front-end bookkeeping (message ids …)
    providers: dict[str, str] = Field(default_factory=dict)  # stage → provider name
    offline: bool = False
    env: str = "dev"
    byte_limit: int | None = None
    error: str | None = None
    final_path: str | None = None
    final_bytes: int | None = None
    gpu_seconds: float = 0.0
    cost_usd: float = 0.0
    timing: SceneTiming | None = None  # set once every voice stage has ended
    soundtrack: Soundtrack | None = None
    brand: BrandKit | None = None  # the kit as it was at approval (None: no kit, the defaults)
    # What the user should know about the ad that is not an error: a part missing and why, a line
    # that does not fit its scene, characters the captions cannot draw.
    notes: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def scene(self, index: int) -> SceneState:
        return self.scenes[index - 1]

    def photo_scenes(self) -> list[int]:
        """The scenes whose seed is the team's product photo: no painted seed, no SDXL prediction."""
        if self.storyboard is None:
            return []
        return [s.index for s in self.storyboard.scenes if uses_product_photo(self, s)]

    def stage(self, index: int, kind: str) -> StageState:
        """A scene's stage of `kind`, or the job-level one when `index` is JOB_LEVEL_INDEX."""
        return self.job_stages[kind] if index == JOB_LEVEL_INDEX else self.scene(index).stages[kind]

    def all_stages(self) -> list[StageState]:
        """Every stage of the job: the job-level ones, then each scene's."""
        return [*self.job_stages.values(), *(st for s in self.scenes for st in s.stages.values())]

    @property
    def progress(self) -> float:
        if not self.scenes:
            return 0.0
        if self.status is JobStatus.COMPLETED:
            return 100.0
        # Every stage counts by its kind's weight: a scene by the sum of its stages' weights, a job-level
        # stage (the music bed) by its own. A job-level stage that ended, done or not, leaves nothing to
        # wait for: a failed music bed must not hold the bar (and the ETA) short of the end.
        total = weighted = 0.0
        for scene in self.scenes:
            weight = sum(st.kind.weight for st in scene.stages.values())
            total += weight
            weighted += weight * scene.progress
        for st in self.job_stages.values():
            total += st.kind.weight
            weighted += st.kind.weight * (100.0 if st.status.is_terminal else st.progress)
        return round(weighted / total, 1) if total else 0.0

    def directory(self, data_dir: Path) -> Path:
        return data_dir / "jobs" / self.id


def fresh_scene_states(
    job_id: str, storyboard: Storyboard, max_attempts: int = 3, kinds: Iterable[str] | None = None
) -> list[SceneState]:
    """Pending stages for every scene: the scene-level kinds among `kinds` (default: the required ones)."""
    wanted = set(required_kinds() if kinds is None else kinds)
    scene_kinds = [k for k in STAGE_KINDS.values() if k.level is StageLevel.SCENE and k.name in wanted]
    return [
        SceneState(
            index=s.index,
            stages={
                k.name: StageState(job_id=job_id, scene_index=s.index, stage=k.name, max_attempts=max_attempts)
                for k in scene_kinds
                if k.applies is None or k.applies(s)
            },
        )
        for s in storyboard.scenes
    ]


def fresh_job_stages(job_id: str, max_attempts: int = 3, kinds: Iterable[str] | None = None) -> dict[str, StageState]:
    """Pending job-level stages for the job-level kinds among `kinds` (default: the required ones)."""
    wanted = set(required_kinds() if kinds is None else kinds)
    return {
        k.name: StageState(job_id=job_id, scene_index=JOB_LEVEL_INDEX, stage=k.name, max_attempts=max_attempts)
        for k in STAGE_KINDS.values()
        if k.level is StageLevel.JOB and k.name in wanted
    }

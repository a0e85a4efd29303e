"""The domain: what an ad request, a storyboard and a job are, and the rules they obey.

Validation lives here, in code, not in a JSON schema: the OpenAI strict schema stays simple and
every broken rule gets an error message that names it.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.language import detect_language, normalise_language
from pipeline.moods import Mood
from pipeline.spoken_text import voiceover_problem

PRODUCT_MAX_CHARS = 2000
TEXT_FIELD_MAX_CHARS = 200
SCENES_MIN, SCENES_MAX = 5, 7
TOTAL_MIN_S, TOTAL_MAX_S = 29.0, 31.0
SCENE_MIN_S, SCENE_MAX_S = 2.0, 8.0
DESCRIPTION_MAX_CHARS = 300
VISUAL_PROMPT_MAX_CHARS = 600
ON_SCREEN_TEXT_MAX_CHARS = 60
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
        return self

    @property
    def total_duration(self) -> float:
        return round(sum(s.duration for s in self.scenes), 2)

    @property
    def has_voiceover(self) -> bool:
        return any(s.voiceover for s in self.scenes)


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


class StageName(StrEnum):
    SEED = "seed"
    CLIP = "clip"


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


class StageState(BaseModel):
    """One paid, slow step of one scene: its seed image or its clip."""

    job_id: str
    scene_index: int
    stage: StageName
    status: StageStatus = StageStatus.PENDING
    progress: float = 0.0  # 0–100
    attempt: int = 0
    max_attempts: int = 3
    error: str | None = None
    path: str | None = None
    seed: int | None = None
    prediction_id: str | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class SceneState(BaseModel):
    index: int
    seed: StageState
    clip: StageState
    normalized_path: str | None = None

    @property
    def done(self) -> bool:
        return self.clip.status is StageStatus.DONE and self.normalized_path is not None

    @property
    def failed(self) -> bool:
        return StageStatus.FAILED in (self.seed.status, self.clip.status)

    @property
    def error(self) -> str | None:
        return self.seed.error or self.clip.error

    @property
    def progress(self) -> float:
        """Seed counts a fifth of a scene's work, the clip the rest."""
        if self.done:
            return 100.0
        seed = 100.0 if self.seed.status is StageStatus.DONE else self.seed.progress
        return round(0.2 * seed + 0.8 * min(self.clip.progress, 99.0), 1)


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


class Job(BaseModel):
    id: str = Field(default_factory=new_job_id)
    status: JobStatus = JobStatus.PLANNING
    request: AdRequest
    storyboard: Storyboard | None = None
    scenes: list[SceneState] = Field(default_factory=list)
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
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def scene(self, index: int) -> SceneState:
        return self.scenes[index - 1]

    def stage(self, index: int, stage: StageName) -> StageState:
        s = self.scene(index)
        return s.seed if stage is StageName.SEED else s.clip

    @property
    def progress(self) -> float:
        if not self.scenes:
            return 0.0
        if self.status is JobStatus.COMPLETED:
            return 100.0
        return round(sum(s.progress for s in self.scenes) / len(self.scenes), 1)

    def directory(self, data_dir: Path) -> Path:
        return data_dir / "jobs" / self.id


def fresh_scene_states(job_id: str, storyboard: Storyboard, max_attempts: int = 3) -> list[SceneState]:
    return [
        SceneState(
            index=s.index,
            seed=StageState(job_id=job_id, scene_index=s.index, stage=StageName.SEED, max_attempts=max_attempts),
            clip=StageState(job_id=job_id, scene_index=s.index, stage=StageName.CLIP, max_attempts=max_attempts),
        )
        for s in storyboard.scenes
    ]

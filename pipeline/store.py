"""Jobs in the domain's terms, persisted through `storage.JobRepository` (which speaks dicts)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.brand import BrandKit, GuildPolicy
from pipeline.errors import ConfigError, DatabaseSchemaError, JantError
from pipeline.models import (
    AdRequest,
    Job,
    JobStatus,
    JobUi,
    SceneState,
    StageState,
    Storyboard,
    fresh_job_stages,
    fresh_scene_states,
    utcnow,
)
from pipeline.providers.base import PredictionIntent
from pipeline.speech_timing import WordTiming
from pipeline.stage_kinds import JOB_LEVEL_INDEX, STAGE_KINDS, StageLevel, required_kinds
from storage.errors import DatabaseLocked, DatabaseTooNew, DatabaseUnavailable, MigrationFailed
from storage.rate_slots import RateSlots
from storage.repository import JobRepository
from storage.spend_ledger import Overrun, Window


def _stage_row(stage: StageState) -> dict[str, Any]:
    return {
        "scene_index": stage.scene_index,
        "stage": str(stage.stage),
        "status": stage.status.value,
        "progress": stage.progress,
        "attempt": stage.attempt,
        "max_attempts": stage.max_attempts,
        "error": stage.error,
        "path": stage.path,
        "seed": stage.seed,
        "prediction_id": stage.prediction_id,
        "duration": stage.duration,
        "words": None if stage.words is None else [[w.word, w.start, w.end] for w in stage.words],
        "cost_usd": stage.cost_usd,
    }


def _stage_rows(job: Job) -> list[dict[str, Any]]:
    return [_stage_row(st) for st in job.all_stages()]


def _job_row(job: Job) -> dict[str, Any]:
    data = job.model_dump(mode="json", exclude={"scenes", "job_stages"})
    return {
        **data,
        "ui": job.ui.stored(),
        "request": job.request.model_dump(mode="json"),
        "storyboard": job.storyboard.model_dump(mode="json") if job.storyboard else None,
    }


def job_from_record(rec: dict[str, Any]) -> Job:
    rows: dict[int, dict[str, dict[str, Any]]] = {}
    for r in rec.get("stages", []):
        rows.setdefault(r["scene_index"], {})[r["stage"]] = r
    normalized = rec.get("normalized", {})
    storyboard = Storyboard.model_validate(rec["storyboard"]) if rec.get("storyboard") else None
    job_id = rec["id"]

    def states(index: int, level: StageLevel) -> dict[str, StageState]:
        """The stages stored for `index`, in `STAGE_KINDS` order; a required kind with no row (a job
        written before it existed) gets a pending one, an unknown kind (a newer version's) is left out."""
        stored = rows.get(index, {})
        out: dict[str, StageState] = {}
        for kind in STAGE_KINDS.values():
            if kind.level is not level:
                continue
            row = stored.get(kind.name)
            if row is not None:
                fields = {k: v for k, v in row.items() if k != "job_id"}
                if fields.get("words") is not None:
                    fields["words"] = [WordTiming(w, start, end) for w, start, end in fields["words"]]
                out[kind.name] = StageState(job_id=job_id, **fields)
            elif not kind.optional:
                out[kind.name] = StageState(job_id=job_id, scene_index=index, stage=kind.name)
        return out

    scenes: list[SceneState] = []
    job_stages: dict[str, StageState] = {}
    if storyboard is not None:
        scenes = [
            SceneState(index=s.index, stages=states(s.index, StageLevel.SCENE), normalized_path=normalized.get(s.index))
            for s in storyboard.scenes
        ]
        job_stages = states(JOB_LEVEL_INDEX, StageLevel.JOB)
    fields = {k: v for k, v in rec.items() if k in Job.model_fields and k not in ("scenes", "storyboard", "job_stages")}
    fields["request"] = AdRequest.model_validate(rec["request"])
    return Job(**fields, storyboard=storyboard, scenes=scenes, job_stages=job_stages)


class JobStore:
    """Keeps the in-memory `Job` and its rows in step: every mutation is written before it returns.

    The only way into storage for the rest of the code: callers ask it, never its `repo`, so the
    database behind it can change in one place.
    """

    def __init__(self, repo: JobRepository) -> None:
        self.repo = repo

    @property
    def rate_slots(self) -> RateSlots:
        """Request budgets every process on this database spends together (`pipeline.shared_limits`)."""
        return self.repo.rate_slots

    @classmethod
    async def open(cls, db_path: Path | str) -> JobStore:
        """`db_path`: a SQLite file, or a `postgresql://` URL (`settings.storage.database` is either)."""
        try:
            return cls(await JobRepository.open(db_path))
        except DatabaseUnavailable as exc:
            raise JantError(
                str(exc), hint="Check JANT_DATABASE_URL and that the Postgres server is running and reachable."
            ) from exc
        except ModuleNotFoundError as exc:
            if exc.name != "asyncpg":
                raise
            raise ConfigError(
                "JANT_DATABASE_URL points at Postgres, but its driver (asyncpg) is not installed.",
                hint="Install it with `pip install 'jant[postgres]'`, or unset JANT_DATABASE_URL to use SQLite.",
            ) from None
        except DatabaseTooNew as exc:
            raise DatabaseSchemaError(
                str(exc),
                hint="Run the newer jant, or point JANT_DATA_DIR (or JANT_DB_PATH, or JANT_DATABASE_URL) elsewhere.",
            ) from exc
        except MigrationFailed as exc:
            raise DatabaseSchemaError(
                str(exc), hint="Keep using the jant release you had before, and report this message."
            ) from exc
        except DatabaseLocked as exc:
            raise JantError(str(exc), hint="Try again once the other jant process is done with it.") from exc

    async def close(self) -> None:
        await self.repo.close()

    @property
    def description(self) -> str:
        """Where the jobs are kept: the SQLite file, or the Postgres URL without its password."""
        return self.repo.description

    # -- per-server brand kit and policy -------------------------------------------------------

    async def guild_brand(self, guild_id: str | None) -> BrandKit:
        """The server's kit, or the defaults (a server with no kit, the CLI, a DM)."""
        rec = await self.repo.guild_settings(guild_id) if guild_id else None
        return BrandKit.model_validate(rec["brand"]) if rec else BrandKit()

    async def guild_policy(self, guild_id: str | None) -> GuildPolicy:
        rec = await self.repo.guild_settings(guild_id) if guild_id else None
        return GuildPolicy.model_validate(rec["policy"]) if rec else GuildPolicy()

    async def save_guild_brand(self, guild_id: str, brand: BrandKit, *, updated_by: str | None = None) -> None:
        await self.repo.save_guild_settings(
            guild_id, brand=brand.model_dump(mode="json", exclude_defaults=True), updated_by=updated_by
        )

    async def save_guild_policy(self, guild_id: str, policy: GuildPolicy, *, updated_by: str | None = None) -> None:
        await self.repo.save_guild_settings(
            guild_id, policy=policy.model_dump(mode="json", exclude_defaults=True), updated_by=updated_by
        )

    async def create(self, job: Job) -> Job:
        await self.repo.insert_job(_job_row(job), _stage_rows(job))
        return job

    async def get(self, job_id: str) -> Job | None:
        rec = await self.repo.get_job(job_id)
        return job_from_record(rec) if rec else None

    async def list(self, **filters: Any) -> list[Job]:
        return [job_from_record(rec) for rec in await self.repo.list_jobs(**filters)]

    async def count(
        self,
        *,
        requester_id: str | None = None,
        guild_id: str | None = None,
        statuses: Sequence[JobStatus | str] | None = None,
        since: datetime | None = None,
    ) -> int:
        """How many jobs match (all of them without filters)."""
        names = [JobStatus(s).value for s in statuses] if statuses is not None else None
        return await self.repo.count_jobs(requester_id=requester_id, guild_id=guild_id, statuses=names, since=since)

    async def change_marks(
        self, job_ids: Sequence[str] = (), statuses: Sequence[JobStatus | str] = ()
    ) -> dict[str, tuple[Any, ...]]:
        """A value per job that changes whenever anything a progress event is made of changes (its row,
        stages, cut scenes, events): for `job_ids` and every job in `statuses`. Comparable only with
        another value for the same job."""
        return await self.repo.change_marks(list(job_ids), [JobStatus(s).value for s in statuses])

    async def ended_with_media_before(self, cutoff: datetime) -> Sequence[str]:
        """Ids of jobs that ended before `cutoff` and whose media have not been purged yet."""
        return await self.repo.finished_before(cutoff)

    async def mark_media_purged(self, job_id: str, *, detail: str) -> None:
        """The job's media are gone from disk: forget its final file and say why in its events."""
        await self.repo.update_job(job_id, final_path=None)
        await self.repo.add_event(job_id, "media_purged", detail=detail)

    async def finish_prediction(
        self, prediction_id: str, status: str, predict_time: float | None, *, cost_usd: float | None = None
    ) -> None:
        """The prediction ended; `cost_usd` is what it cost (it counts toward its server's spend)."""
        await self.repo.finish_prediction(prediction_id, status, predict_time, cost_usd)

    # -- spend caps ------------------------------------------------------------------------------

    async def reserve_budget(
        self, job_id: str, guild_id: str | None, amount_usd: float, windows: Sequence[Window], at: datetime
    ) -> Overrun | None:
        """Check the budgets and hold `amount_usd` for the job in one transaction; None when held,
        else the first budget it would break."""
        return await self.repo.ledger.reserve(job_id, guild_id, amount_usd, windows, at.isoformat())

    async def settle_budget(self, job_id: str, at: datetime) -> tuple[float, float] | None:
        """The job ended: (reserved, spent) once its hold becomes what it spent; None if it held nothing."""
        return await self.repo.ledger.settle(job_id, at.isoformat())

    async def budget_used(self, guild_id: str | None, since: datetime) -> float:
        return await self.repo.ledger.used(guild_id, since.isoformat())

    async def reservation(self, job_id: str) -> dict[str, Any] | None:
        return await self.repo.ledger.reservation(job_id)

    async def spend(self, since: datetime, *, guild_id: str | None = None, every_guild: bool = False) -> dict[str, Any]:
        """What predictions cost since `since`, by day and by model, for one server (None: the command
        line) or every server."""
        return await self.repo.ledger.spend(since.isoformat(), guild_id=guild_id, every_guild=every_guild)

    async def predictions(self, job_id: str) -> Sequence[dict[str, Any]]:
        """The paid predictions of a job, one row per attempt."""
        return await self.repo.predictions(job_id)

    async def events(self, job_id: str) -> Sequence[dict[str, Any]]:
        return await self.repo.events(job_id)

    async def set_storyboard(
        self,
        job: Job,
        storyboard: Storyboard,
        status: JobStatus,
        max_attempts: int,
        kinds: Iterable[str] | None = None,
    ) -> None:
        """A new storyboard, with a pending stage of each of `kinds` (default: the required ones)."""
        kinds = list(required_kinds() if kinds is None else kinds)
        job.storyboard = storyboard
        job.scenes = fresh_scene_states(job.id, storyboard, max_attempts, kinds)
        job.job_stages = fresh_job_stages(job.id, max_attempts, kinds)
        job.status = status
        job.error = None
        job.updated_at = utcnow()
        await self.repo.replace_storyboard(
            job.id, storyboard.model_dump(mode="json"), _stage_rows(job), status=status.value, error=None
        )
        await self.repo.add_event(job.id, "storyboard_ready", detail=f"{len(storyboard.scenes)} scenes")

    async def update(self, job: Job, **fields: Any) -> None:
        """Set fields on the job and persist them (`ui` goes through `update_ui`)."""
        if "ui" in fields:
            raise ValueError("job.ui is written key by key: use JobStore.update_ui")
        for key, value in fields.items():
            setattr(job, key, value)
        job.updated_at = utcnow()
        row = {k: _db_value(v) for k, v in fields.items()}
        await self.repo.update_job(job.id, updated_at=job.updated_at, **row)

    async def update_without_job_stages(self, job: Job, kinds: Iterable[str], **fields: Any) -> None:
        """As `update`, and in the same transaction the job-level stages of `kinds` are removed (a
        brand kit that turns the music bed off at approval): the job never has one to run."""
        drop = [k for k in kinds if k in job.job_stages]
        for key, value in fields.items():
            setattr(job, key, value)
        for kind in drop:
            del job.job_stages[kind]
        job.updated_at = utcnow()
        row = {k: _db_value(v) for k, v in fields.items()}
        await self.repo.update_job_dropping_stages(
            job.id, [(JOB_LEVEL_INDEX, str(k)) for k in drop], updated_at=job.updated_at, **row
        )

    async def update_ui(self, job: Job, **changes: Any) -> JobUi:
        """Set (or, with None, remove) `job.ui` keys atomically; `job.ui` becomes what is stored,
        keys other writers added included."""
        stored = await self.repo.patch_job_json(job.id, "ui", JobUi.patch(changes))
        job.ui = JobUi.model_validate(stored)
        return job.ui

    async def save_stage(self, stage: StageState) -> None:
        stage.updated_at = utcnow()
        row = _stage_row(stage)
        await self.repo.update_stage(
            stage.job_id, stage.scene_index, str(stage.stage),
            **{k: v for k, v in row.items() if k not in ("scene_index", "stage")},
        )  # fmt: skip

    async def save_progress(self, stage: StageState) -> None:
        """Only the stage's progress (as it is now): a write that cannot overwrite its status."""
        await self.repo.update_stage(stage.job_id, stage.scene_index, str(stage.stage), progress=stage.progress)

    async def set_normalized(self, job: Job, scene_index: int, path: str | None) -> None:
        job.scene(scene_index).normalized_path = path
        await self.repo.set_normalized(job.id, scene_index, path)

    async def record_prediction(self, stage: StageState, provider: str, prediction_id: str) -> None:
        stage.prediction_id = prediction_id
        await self.repo.record_prediction(stage.job_id, stage.scene_index, str(stage.stage), provider, prediction_id)

    async def record_intent(self, stage: StageState, provider: str, intent: PredictionIntent) -> None:
        """The create `stage`'s current attempt is about to send (before the POST; see migration 007)."""
        await self.repo.record_intent(
            stage.job_id, stage.scene_index, str(stage.stage), attempt=stage.attempt, provider=provider,
            model=intent.model, fingerprint=intent.fingerprint, sent_at=intent.sent_at,
        )  # fmt: skip

    async def unanswered_intent(self, stage: StageState) -> PredictionIntent | None:
        """The create `stage`'s current attempt sent, when its prediction id was never stored (the process
        died between the POST and the store): the prediction may exist, paid for, on the provider."""
        row = await self.repo.prediction_intent(stage.job_id, stage.scene_index, str(stage.stage))
        if row is None or row["attempt"] != stage.attempt:
            return None
        return PredictionIntent(model=row["model"], fingerprint=row["fingerprint"], sent_at=row["sent_at"])

    async def event(
        self, job: Job, kind: str, *, scene_index: int | None = None, stage: str | None = None,
        detail: str | None = None,
    ) -> None:  # fmt: skip
        await self.repo.add_event(job.id, kind, scene_index=scene_index, stage=stage, detail=detail)


def _db_value(value: Any) -> Any:
    if isinstance(value, JobStatus):
        return value.value
    if isinstance(value, datetime | str | int | float | bool | dict | type(None)):
        return value
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value

"""Jobs in the domain's terms, persisted through `storage.JobRepository` (which speaks dicts)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.errors import DatabaseSchemaError, JantError
from pipeline.models import (
    AdRequest,
    Job,
    JobStatus,
    JobUi,
    SceneState,
    StageName,
    StageState,
    Storyboard,
    fresh_scene_states,
    utcnow,
)
from storage.errors import DatabaseLocked, DatabaseTooNew, MigrationFailed
from storage.repository import JobRepository


def _stage_row(stage: StageState) -> dict[str, Any]:
    return {
        "scene_index": stage.scene_index,
        "stage": stage.stage.value,
        "status": stage.status.value,
        "progress": stage.progress,
        "attempt": stage.attempt,
        "max_attempts": stage.max_attempts,
        "error": stage.error,
        "path": stage.path,
        "seed": stage.seed,
        "prediction_id": stage.prediction_id,
    }


def _stage_rows(job: Job) -> list[dict[str, Any]]:
    return [_stage_row(st) for s in job.scenes for st in (s.seed, s.clip)]


def _job_row(job: Job) -> dict[str, Any]:
    data = job.model_dump(mode="json", exclude={"scenes"})
    return {
        **data,
        "ui": job.ui.stored(),
        "request": job.request.model_dump(mode="json"),
        "storyboard": job.storyboard.model_dump(mode="json") if job.storyboard else None,
    }


def job_from_record(rec: dict[str, Any]) -> Job:
    stages = {(r["scene_index"], r["stage"]): r for r in rec.get("stages", [])}
    normalized = rec.get("normalized", {})
    storyboard = Storyboard.model_validate(rec["storyboard"]) if rec.get("storyboard") else None
    scenes: list[SceneState] = []
    if storyboard is not None:
        for scene in storyboard.scenes:
            pair = {}
            for name in StageName:
                row = stages.get((scene.index, name.value))
                pair[name.value] = (
                    StageState(job_id=rec["id"], **{k: v for k, v in row.items() if k != "job_id"})
                    if row
                    else StageState(job_id=rec["id"], scene_index=scene.index, stage=name)
                )
            scenes.append(SceneState(index=scene.index, normalized_path=normalized.get(scene.index), **pair))
    fields = {k: v for k, v in rec.items() if k in Job.model_fields and k not in ("scenes", "storyboard")}
    fields["request"] = AdRequest.model_validate(rec["request"])
    return Job(**fields, storyboard=storyboard, scenes=scenes)


class JobStore:
    """Keeps the in-memory `Job` and its rows in step: every mutation is written before it returns.

    The only way into storage for the rest of the code: callers ask it, never its `repo`, so the
    database behind it can change in one place.
    """

    def __init__(self, repo: JobRepository) -> None:
        self.repo = repo

    @classmethod
    async def open(cls, db_path: Path) -> JobStore:
        try:
            return cls(await JobRepository.open(db_path))
        except DatabaseTooNew as exc:
            raise DatabaseSchemaError(
                str(exc), hint="Run the newer jant, or point JANT_DATA_DIR (or JANT_DB_PATH) at another folder."
            ) from exc
        except MigrationFailed as exc:
            raise DatabaseSchemaError(
                str(exc), hint="Keep using the jant release you had before, and report this message."
            ) from exc
        except DatabaseLocked as exc:
            raise JantError(str(exc), hint="Try again once the other jant process is done with it.") from exc

    async def close(self) -> None:
        await self.repo.close()

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

    async def ended_with_media_before(self, cutoff: datetime) -> Sequence[str]:
        """Ids of jobs that ended before `cutoff` and whose media have not been purged yet."""
        return await self.repo.finished_before(cutoff)

    async def mark_media_purged(self, job_id: str, *, detail: str) -> None:
        """The job's media are gone from disk: forget its final file and say why in its events."""
        await self.repo.update_job(job_id, final_path=None)
        await self.repo.add_event(job_id, "media_purged", detail=detail)

    async def finish_prediction(self, prediction_id: str, status: str, predict_time: float | None) -> None:
        await self.repo.finish_prediction(prediction_id, status, predict_time)

    async def predictions(self, job_id: str) -> Sequence[dict[str, Any]]:
        """The paid predictions of a job, one row per attempt."""
        return await self.repo.predictions(job_id)

    async def events(self, job_id: str) -> Sequence[dict[str, Any]]:
        return await self.repo.events(job_id)

    async def set_storyboard(self, job: Job, storyboard: Storyboard, status: JobStatus, max_attempts: int) -> None:
        job.storyboard = storyboard
        job.scenes = fresh_scene_states(job.id, storyboard, max_attempts)
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
            stage.job_id, stage.scene_index, stage.stage.value,
            **{k: v for k, v in row.items() if k not in ("scene_index", "stage")},
        )  # fmt: skip

    async def set_normalized(self, job: Job, scene_index: int, path: str | None) -> None:
        job.scene(scene_index).normalized_path = path
        await self.repo.set_normalized(job.id, scene_index, path)

    async def record_prediction(self, stage: StageState, provider: str, prediction_id: str) -> None:
        stage.prediction_id = prediction_id
        await self.repo.record_prediction(stage.job_id, stage.scene_index, stage.stage.value, provider, prediction_id)

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

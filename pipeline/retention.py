"""Deletes old job media from disk; the database rows (what was made, by whom, at what cost) stay."""

from __future__ import annotations

import asyncio
import logging
import shutil
from datetime import timedelta
from pathlib import Path

from pipeline.models import utcnow
from pipeline.store import JobStore

log = logging.getLogger(__name__)


async def purge_old_media(store: JobStore, data_dir: Path, days: int) -> list[str]:
    """Remove `jobs/<id>/` for jobs that ended more than `days` ago. Returns the purged ids."""
    if days <= 0:
        return []
    purged = []
    for job_id in await store.repo.finished_before(utcnow() - timedelta(days=days)):
        directory = data_dir / "jobs" / job_id
        await asyncio.to_thread(shutil.rmtree, directory, ignore_errors=True)
        await store.repo.update_job(job_id, final_path=None)
        await store.repo.add_event(job_id, "media_purged", detail=f"older than {days} days")
        purged.append(job_id)
    if purged:
        log.info("retention: deleted the media of %d jobs older than %d days", len(purged), days)
    return purged

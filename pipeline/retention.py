"""Deletes old job media from disk; the database rows (what was made, by whom, at what cost) stay."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from pipeline.models import utcnow
from pipeline.store import JobStore

log = logging.getLogger(__name__)


async def purge_old_media(store: JobStore, data_dir: Path, days: int) -> list[str]:
    """Remove `jobs/<id>/` for jobs that ended more than `days` ago. Returns the purged ids."""
    if days <= 0:
        return []
    purged = []
    for job_id in await store.finished_before(utcnow() - timedelta(days=days)):
        directory = data_dir / "jobs" / job_id
        await asyncio.to_thread(shutil.rmtree, directory, ignore_errors=True)
        await store.media_purged(job_id, f"older than {days} days")
        purged.append(job_id)
    if purged:
        log.info("retention: deleted the media of %d jobs older than %d days", len(purged), days)
    return purged


RETENTION_EVERY_S = 24 * 3600.0


async def purge_periodically(
    store: JobStore,
    data_dir: Path,
    days: int,
    *,
    every_s: float = RETENTION_EVERY_S,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> None:
    """Run `purge_old_media` now and then every `every_s` (a day) until cancelled. A failed sweep is
    logged and tried again at the next one: retention must never take the bot down."""
    if days <= 0:
        return
    while True:
        try:
            await purge_old_media(store, data_dir, days)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("retention: this sweep failed; trying again in %.0f s", every_s, exc_info=True)
        await sleep(every_s)

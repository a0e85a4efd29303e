"""Migrations on an empty and an existing database; jobs survive a reopen. On SQLite and on Postgres
(`database` is parametrised over both: tests/conftest.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pipeline.models import AdRequest, Job, JobStatus, StageStatus
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.store import JobStore
from storage import postgres
from storage.database import connect, migrations, schema_version


async def test_migrations_on_an_empty_database(tmp_path: Path) -> None:
    conn = await connect(tmp_path / "new.db")
    try:
        assert await schema_version(conn) == len(migrations())
        async with conn.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone())[0] == "wal"
        async with conn.execute("SELECT name FROM sqlite_master WHERE type='table'") as cur:
            tables = {r[0] for r in await cur.fetchall()}
        assert {"jobs", "stages", "scenes", "predictions", "events", "schema_migrations"} <= tables
    finally:
        await conn.close()


async def test_a_new_postgres_database_gets_every_table_and_the_latest_version(postgres_url: str) -> None:
    pool = await postgres.connect(postgres_url)
    try:
        async with pool.acquire() as conn:
            assert await postgres.schema_version(conn) == len(migrations("postgres")) == len(migrations())
            tables = {r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"jobs", "stages", "scenes", "predictions", "events", "schema_migrations"} <= tables
    finally:
        await pool.close()


async def test_reopening_an_existing_database_keeps_data_and_applies_nothing_twice(database: Path | str) -> None:
    db = database
    store = await JobStore.open(db)
    job = await store.create(Job(request=AdRequest(product="Lumen lamp", mood="minimal")))
    await store.close()

    store = await JobStore.open(db)
    try:
        again = await store.get(job.id)
        assert again is not None and again.request.product == "Lumen lamp"
        [row] = await store.repo._db.fetch("SELECT COUNT(*) FROM schema_migrations")
        assert row[0] == len(migrations())
    finally:
        await store.close()


async def test_an_old_database_at_version_zero_is_upgraded(tmp_path: Path) -> None:
    """A database made before migrations existed (only an unrelated table) gets the schema added."""
    db = tmp_path / "old.db"
    raw = sqlite3.connect(db)
    raw.execute("CREATE TABLE notes (x TEXT)")
    raw.execute("INSERT INTO notes VALUES ('keep me')")
    raw.commit()
    raw.close()
    conn = await connect(db)
    try:
        assert await schema_version(conn) == len(migrations())
        async with conn.execute("SELECT x FROM notes") as cur:
            assert (await cur.fetchone())[0] == "keep me"
    finally:
        await conn.close()


async def test_storyboard_stages_and_predictions_round_trip(database: Path | str) -> None:
    store = await JobStore.open(database)
    try:
        job = await store.create(Job(request=AdRequest(product="Lumen — a lamp, bright and warm")))
        sb = await OfflineStoryboardPlanner().plan(job.request)
        await store.set_storyboard(job, sb, JobStatus.AWAITING_APPROVAL, 3)
        stage = job.scene(2).clip
        stage.status, stage.attempt, stage.progress = StageStatus.RUNNING, 1, 40.0
        await store.save_stage(stage)
        await store.record_prediction(stage, "replicate-svd", "pred-123")
        await store.set_normalized(job, 1, "/tmp/scene-1.mp4")

        loaded = await store.get(job.id)
        assert loaded is not None and loaded.storyboard == sb
        clip = loaded.scene(2).clip
        assert (clip.status, clip.attempt, clip.progress) == (StageStatus.RUNNING, 1, 40.0)
        assert clip.prediction_id == "pred-123"
        assert loaded.scene(1).normalized_path == "/tmp/scene-1.mp4"
        preds = await store.predictions(job.id)
        assert [(p["scene_index"], p["stage"], p["attempt"], p["prediction_id"]) for p in preds] == [
            (2, "clip", 1, "pred-123")
        ]
        kinds = [e["kind"] for e in await store.events(job.id)]
        assert kinds[:2] == ["job_created", "storyboard_ready"]
        await store.repo.patch_job_json(job.id, "ui", {"a": 1, "b": {"c": 2, "e": 5}})
        merged = await store.repo.patch_job_json(job.id, "ui", {"a": None, "b": {"c": None, "d": [3]}})
        assert merged == {"b": {"e": 5, "d": [3]}}  # RFC 7396, inside the database on both
        await store.set_normalized(job, 1, "/tmp/scene-1b.mp4")  # an upsert on both
        assert (await store.get(job.id)).scene(1).normalized_path == "/tmp/scene-1b.mp4"  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_retention_deletes_old_media_but_keeps_the_rows(tmp_path: Path, database: Path | str) -> None:
    from datetime import timedelta

    from pipeline.models import utcnow
    from pipeline.retention import purge_old_media

    store = await JobStore.open(database)
    try:
        old = await store.create(Job(request=AdRequest(product="Old lamp")))
        new = await store.create(Job(request=AdRequest(product="New lamp")))
        running = await store.create(Job(request=AdRequest(product="Running lamp")))
        for job, age in ((old, 20), (new, 2)):
            await store.update(job, status=JobStatus.COMPLETED, finished_at=utcnow() - timedelta(days=age),
                               final_path=str(job.directory(tmp_path) / "final.mp4"))  # fmt: skip
        for job in (old, new, running):
            job.directory(tmp_path).mkdir(parents=True)
            (job.directory(tmp_path) / "final.mp4").write_bytes(b"mp4")

        assert await purge_old_media(store, tmp_path, days=14) == [old.id]
        assert not old.directory(tmp_path).exists()
        assert new.directory(tmp_path).exists() and running.directory(tmp_path).exists()
        kept = await store.get(old.id)
        assert kept is not None and kept.status is JobStatus.COMPLETED and kept.final_path is None
        assert await purge_old_media(store, tmp_path, days=14) == []  # once only
        assert await purge_old_media(store, tmp_path, days=0) == []  # 0 keeps media forever
    finally:
        await store.close()

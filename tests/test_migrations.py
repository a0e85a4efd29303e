"""Migrations are all-or-nothing, refuse a database newer than the code, and say which file failed."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import aiosqlite
import pytest

from pipeline.config import Settings
from pipeline.models import AdRequest, Job, JobStatus
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.runtime import check_data_dir
from pipeline.store import JobStore
from storage import database
from storage.database import connect, migrate, migrations, split_statements
from storage.errors import DatabaseLocked, DatabaseTooNew, MigrationFailed

LATEST = len(migrations())
BROKEN_NAME = f"{LATEST + 1:03d}_add_job_tags.sql"
# Fails at its last statement, after a new table, a new column and changed rows.
BROKEN_SQL = """
CREATE TABLE tags (job_id TEXT NOT NULL REFERENCES jobs(id), tag TEXT NOT NULL);
ALTER TABLE jobs ADD COLUMN tag_count INTEGER NOT NULL DEFAULT 0;
INSERT INTO tags SELECT id, 'lamp' FROM jobs;
UPDATE jobs SET status = 'tagged';
CREATE INDEX tags_job ON tags(job_id, tag;
"""


def dump(db: Path) -> list[str]:
    """Schema and rows, every byte of them, as SQL text."""
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


async def db_with_a_planned_job(db: Path) -> Job:
    store = await JobStore.open(db)
    try:
        job = await store.create(Job(request=AdRequest(product="Lumen lamp")))
        await store.set_storyboard(
            job, await OfflineStoryboardPlanner().plan(job.request), JobStatus.AWAITING_APPROVAL, 3
        )
        return job
    finally:
        await store.close()


async def migrate_with(db: Path, available: list[tuple[int, str, str]]) -> list[int]:
    """`migrate` on a connection configured as `connect` configures it (foreign keys on)."""
    async with aiosqlite.connect(db, isolation_level=None) as conn:
        await conn.execute("PRAGMA foreign_keys=ON")
        try:
            return await migrate(conn, available)
        finally:
            async with conn.execute("PRAGMA foreign_keys") as cur:
                assert (await cur.fetchone())[0] == 1, "migrating must leave foreign keys on"


async def test_a_migration_failing_part_way_leaves_the_database_exactly_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "jant.db"
    await db_with_a_planned_job(db)
    before = dump(db)

    with pytest.raises(MigrationFailed) as failed:
        await migrate_with(db, [*migrations(), (LATEST + 1, BROKEN_NAME, BROKEN_SQL)])

    assert dump(db) == before
    message = str(failed.value)
    assert BROKEN_NAME in message and "syntax error" in message and f"unchanged at version {LATEST}" in message
    assert "\n" not in message
    # The lock was released and the connection left usable: the good migrations still apply later.
    assert await migrate_with(db, migrations()) == []


async def test_a_fresh_database_with_a_broken_later_migration_gets_no_tables_at_all(tmp_path: Path) -> None:
    db = tmp_path / "jant.db"
    with pytest.raises(MigrationFailed, match=BROKEN_NAME):
        await migrate_with(db, [*migrations(), (LATEST + 1, BROKEN_NAME, BROKEN_SQL)])
    assert dump(db) == ["BEGIN TRANSACTION;", "COMMIT;"]  # not even schema_migrations


async def test_a_migration_that_leaves_dangling_foreign_keys_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "jant.db"
    await db_with_a_planned_job(db)
    before = dump(db)
    orphaning = (LATEST + 1, f"{LATEST + 1:03d}_drop_jobs.sql", "DELETE FROM jobs;")
    with pytest.raises(MigrationFailed, match="foreign key points nowhere") as failed:
        await migrate_with(db, [*migrations(), orphaning])
    assert orphaning[1] in str(failed.value)
    assert dump(db) == before


async def test_rebuilding_a_parent_table_keeps_its_childrens_rows(tmp_path: Path) -> None:
    """SQLite's way to change a column is to copy the table, drop it and rename the copy; with foreign
    keys on while migrating, the drop would cascade and delete every job's stages."""
    db = tmp_path / "jant.db"
    job = await db_with_a_planned_job(db)
    rebuild = """
        CREATE TABLE jobs_new AS SELECT * FROM jobs;
        DROP TABLE jobs;
        ALTER TABLE jobs_new RENAME TO jobs;
        CREATE UNIQUE INDEX jobs_id ON jobs(id);
    """
    assert await migrate_with(db, [*migrations(), (LATEST + 1, f"{LATEST + 1:03d}_rebuild.sql", rebuild)]) == [
        LATEST + 1
    ]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM stages WHERE job_id = ?", (job.id,)).fetchone()[0] == 10


async def test_a_database_newer_than_the_code_is_refused_naming_both_versions(tmp_path: Path) -> None:
    db = tmp_path / "jant.db"
    await migrate_with(db, [*migrations(), (LATEST + 1, f"{LATEST + 1:03d}_future.sql", "CREATE TABLE f (x);")])
    before = dump(db)
    with pytest.raises(DatabaseTooNew) as refused:
        await connect(db)
    assert f"schema version {LATEST + 1}" in str(refused.value) and f"up to {LATEST}" in str(refused.value)
    assert dump(db) == before


async def test_a_current_database_is_opened_without_taking_the_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checking costs nothing when nothing is pending: a bot in the middle of a write does not hold up a
    `jant jobs` started beside it. Only a pending migration waits for the lock (and says so if it cannot)."""
    monkeypatch.setattr(database, "MIGRATION_LOCK_TIMEOUT_S", 0.2)
    db = tmp_path / "jant.db"
    await (await connect(db)).close()
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        conn = await connect(db)
        await conn.close()
        pending = [*migrations(), (LATEST + 1, f"{LATEST + 1:03d}_next.sql", "CREATE TABLE n (x);")]
        with pytest.raises(DatabaseLocked, match="stayed locked by another process"):
            await migrate_with(db, pending)
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_statements_are_split_where_sqlite_would_split_them() -> None:
    sql = """
        -- a comment; with a semicolon
        CREATE TABLE notes (body TEXT DEFAULT 'a; b');
        CREATE TRIGGER notes_touch AFTER INSERT ON notes BEGIN
            UPDATE notes SET body = body || ';' WHERE rowid = new.rowid;
        END;
        /* a closing comment; */
    """
    statements = split_statements(sql)
    assert len(statements) == 2
    assert statements[0].endswith("DEFAULT 'a; b');") and statements[1].rstrip().endswith("END;")
    with pytest.raises(ValueError, match="COMMIT is not allowed"):
        split_statements("CREATE TABLE a (x);\nCOMMIT;\nCREATE TABLE b (x);")


def test_the_write_probe_of_one_process_never_disturbs_another(tmp_path: Path) -> None:
    """Many starts probing one data directory at once: none is told a writable folder is unwritable."""
    settings = Settings(JANT_DATA_DIR=tmp_path / "data")
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def probe_repeatedly() -> None:
        start.wait(timeout=10)
        for _ in range(300):
            try:
                check_data_dir(settings)
            except BaseException as exc:  # collected: a failing thread must fail the test
                errors.append(exc)

    threads = [threading.Thread(target=probe_repeatedly) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors[0]
    assert list((tmp_path / "data").iterdir()) == []


# -- what the user sees: one line on stderr, exit status 2 ---------------------------------------------

_WITH_A_BROKEN_MIGRATION = f"""
import sys
import bot.cli
import storage.database as database
packaged = database.migrations()
database.migrations = lambda: [*packaged, ({LATEST + 1}, {BROKEN_NAME!r}, {BROKEN_SQL!r})]
sys.exit(bot.cli.main(sys.argv[1:]))
"""


def run_cli(code: str | None, *args: str, data: Path) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-c", code] if code else [sys.executable, "-m", "bot.cli"]
    return subprocess.run([*argv, *args], cwd=data.parent, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "JANT_DATA_DIR": str(data), "COLUMNS": "80"})  # fmt: skip


def stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


async def test_the_cli_names_the_failed_migration_in_one_line_and_exits_2(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await db_with_a_planned_job(data / "jant.db")
    before = dump(data / "jant.db")

    result = run_cli(_WITH_A_BROKEN_MIGRATION, "jobs", data=data)

    assert result.returncode == 2, result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr  # no traceback, not wrapped at 80 columns
    assert BROKEN_NAME in lines[0] and "syntax error" in lines[0] and "report this message" in lines[0]
    assert dump(data / "jant.db") == before


async def test_the_cli_refuses_a_newer_database_naming_both_versions_and_exits_2(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await db_with_a_planned_job(data / "jant.db")
    with sqlite3.connect(data / "jant.db") as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (LATEST + 7, "from_later.sql"))

    result = run_cli(None, "jobs", data=data)

    assert result.returncode == 2, result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert f"schema version {LATEST + 7}" in lines[0] and f"versions up to {LATEST}" in lines[0]
    assert "Run the newer jant" in lines[0]

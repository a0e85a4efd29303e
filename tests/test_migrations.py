"""Migrations are all-or-nothing, refuse a database newer than the code, and say which file failed; on
SQLite and on Postgres, where each SQLite file has a twin of the same number and name."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import aiosqlite
import asyncpg
import pytest

from pipeline.config import Settings
from pipeline.errors import DatabaseSchemaError, JantError
from pipeline.models import AdRequest, Job, JobStatus
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.runtime import check_data_dir
from pipeline.store import JobStore
from storage import database, postgres
from storage.database import connect, migrate, migrations, split_statements
from storage.errors import DatabaseLocked, DatabaseTooNew, MigrationFailed
from tests.postgres_server import PostgresServer

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


async def db_with_a_planned_job(db: Path | str) -> Job:
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


# -- the same guarantees on Postgres (storage/postgres.py) ---------------------------------------------

PG_BROKEN_NAME = BROKEN_NAME
# Postgres parses a whole file before running it, so a syntax error would stop it before its first
# statement: this one fails while running its last, after a table, a column and changed rows.
PG_BROKEN_SQL = BROKEN_SQL.replace("ON tags(job_id, tag;", "ON tags(no_such);")


async def pg_dump(url: str) -> list[object]:
    """Every table's columns, every index and every row of the public schema."""
    conn = await asyncpg.connect(url)
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY 1, 2"
        )
        indexes = await conn.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")
        rows: list[object] = []
        for table in sorted({r["table_name"] for r in columns}):
            rows.append((table, sorted(map(tuple, await conn.fetch(f'SELECT * FROM "{table}"')), key=repr)))
        return [list(map(tuple, columns)), list(map(tuple, indexes)), rows]
    finally:
        await conn.close()


def test_every_sqlite_migration_has_a_postgres_twin_of_the_same_number_and_name() -> None:
    assert [(v, n) for v, n, _ in migrations("postgres")] == [(v, n) for v, n, _ in migrations()]


async def test_postgres_processes_starting_together_apply_each_migration_exactly_once(postgres_url: str) -> None:
    pools = [await asyncpg.create_pool(postgres_url, min_size=1, max_size=1) for _ in range(6)]
    try:
        applied = await asyncio.gather(*(postgres.migrate(pool, "test") for pool in pools))
        assert sorted(applied) == [[]] * 5 + [list(range(1, LATEST + 1))]
        async with pools[0].acquire() as conn:
            versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == list(range(1, LATEST + 1))
    finally:
        for pool in pools:
            await pool.close()


async def test_a_postgres_migration_failing_part_way_leaves_the_database_exactly_as_it_was(postgres_url: str) -> None:
    await db_with_a_planned_job(postgres_url)
    before = await pg_dump(postgres_url)
    pool = await asyncpg.create_pool(postgres_url, min_size=1, max_size=1)
    try:
        broken = [*migrations("postgres"), (LATEST + 1, PG_BROKEN_NAME, PG_BROKEN_SQL)]
        with pytest.raises(MigrationFailed) as failed:
            await postgres.migrate(pool, "the test database", broken)
        message = str(failed.value)
        assert PG_BROKEN_NAME in message and "no_such" in message and f"unchanged at version {LATEST}" in message
        assert await pg_dump(postgres_url) == before
        assert await postgres.migrate(pool, "the test database") == []  # the lock was released
    finally:
        await pool.close()


async def test_a_postgres_database_newer_than_the_code_is_refused_naming_both_versions(postgres_url: str) -> None:
    await db_with_a_planned_job(postgres_url)
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_later.sql')", LATEST + 7)
    finally:
        await conn.close()
    with pytest.raises(DatabaseSchemaError) as refused:
        await JobStore.open(postgres_url)
    assert f"schema version {LATEST + 7}" in str(refused.value) and f"up to {LATEST}" in str(refused.value)


async def test_a_current_postgres_database_opens_while_another_holds_the_migration_lock(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on SQLite: only a pending migration waits for the lock, and says so if it cannot have it."""
    monkeypatch.setattr(database, "MIGRATION_LOCK_TIMEOUT_S", 0.2)
    await (await JobStore.open(postgres_url)).close()
    holder = await asyncpg.connect(postgres_url)
    pool = await asyncpg.create_pool(postgres_url, min_size=1, max_size=1)
    try:
        await holder.execute("SELECT pg_advisory_lock($1, 0)", postgres.LOCK_CLASS)
        await (await JobStore.open(postgres_url)).close()
        pending = [*migrations("postgres"), (LATEST + 1, f"{LATEST + 1:03d}_next.sql", "CREATE TABLE n (x TEXT);")]
        with pytest.raises(DatabaseLocked, match="stayed locked by another process"):
            await postgres.migrate(pool, "the test database", pending)
    finally:
        await pool.close()
        await holder.close()


async def test_a_postgres_url_with_a_password_never_shows_it(postgres_server: PostgresServer) -> None:
    url = postgres_server.url("no_such_database").replace("postgres@", "postgres:hunter2-secret@")
    with pytest.raises(JantError) as failed:
        await JobStore.open(url)
    assert "hunter2" not in failed.value.user_message and "postgres:***@" in failed.value.user_message
    assert "JANT_DATABASE_URL" in failed.value.user_message

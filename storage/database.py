"""The SQLite connection: WAL, foreign keys, numbered migrations applied at start (Postgres:
`storage.postgres`; both folders of migrations: `storage/migrations/__init__.py`).

Several processes may open one database at the same moment (a bot with a CLI job beside it, a
restarted container, a compose file starting workers together), so migrating is a check-then-write
done under one lock: the version is re-read once the lock is held, and every pending migration runs
in that same transaction. The schema is therefore either where it was or at the latest version,
never in between, and each migration is applied exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import aiosqlite

from storage.dialect import DialectName
from storage.errors import DatabaseLocked, DatabaseTooNew, MigrationFailed

log = logging.getLogger(__name__)

Migration = tuple[int, str, str]  # (version, file name, sql)

_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_BUSY_TIMEOUT_MS = 5000
# A migration on a large database can hold the lock for a while; processes starting meanwhile wait it out.
MIGRATION_LOCK_TIMEOUT_S = 60.0
# Statements that would end or nest the transaction every migration runs in, breaking its atomicity.
_TRANSACTION_CONTROL = re.compile(r"(BEGIN|COMMIT|END|ROLLBACK|VACUUM)\b", re.IGNORECASE)
_CREATE_SCHEMA_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"
)


def migrations(dialect: DialectName = "sqlite") -> list[Migration]:
    """(version, name, sql) for every file in storage/migrations (SQLite) or storage/migrations/postgres, in order."""
    folder = resources.files("storage.migrations")
    if dialect == "postgres":
        folder = folder / "postgres"
    found = []
    for entry in folder.iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migrations must be numbered 001, 002, … without gaps (found {versions})")
    return found


async def connect(db_path: Path) -> aiosqlite.Connection:
    """Open (creating the folder), configure and migrate the database."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = await aiosqlite.connect(db_path, isolation_level=None)  # autocommit; explicit transactions
    conn.row_factory = aiosqlite.Row
    try:
        # First: turning a brand-new file into WAL takes a lock that other starting processes contend for.
        await conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        await _wal(conn)
        await conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
        await conn.execute("PRAGMA foreign_keys=ON")
        await migrate(conn)
    except BaseException:
        await conn.close()
        raise
    return conn


async def _wal(conn: aiosqlite.Connection) -> None:
    """Switch to WAL, waiting as long as a migration may hold the file: the switch needs the database to
    itself, and processes starting together on a new file queue for it behind the one that migrates (its
    busy timeout alone let one of 160 such starts fail under load)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + MIGRATION_LOCK_TIMEOUT_S
    while True:
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or loop.time() >= deadline:
                raise
        await asyncio.sleep(0.05)


async def schema_version(conn: aiosqlite.Connection) -> int:
    """The highest migration applied; 0 for a database that has none (it is not created here)."""
    async with conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'") as cur:
        if await cur.fetchone() is None:
            return 0
    async with conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def migrate(conn: aiosqlite.Connection, available: Sequence[Migration] | None = None) -> list[int]:
    """Bring the schema to the latest of `available` (default: the packaged migrations) atomically.

    Returns the versions this call applied: empty when the database was already current, which is
    checked first without taking the lock. Raises `DatabaseTooNew` for a database a newer jant wrote,
    `MigrationFailed` (naming the file and SQLite's reason) after rolling everything back, and
    `DatabaseLocked` when another process holds the lock for longer than MIGRATION_LOCK_TIMEOUT_S.
    """
    known = list(migrations() if available is None else available)
    latest = known[-1][0] if known else 0
    if await schema_version(conn) == latest:
        return []
    db_path = await _file_of(conn)
    applied: list[int] = []
    async with _migration_lock(conn, db_path):
        current = await schema_version(conn)  # another process may have migrated while we waited
        if current > latest:
            raise DatabaseTooNew(db_path, current, latest)
        await conn.execute(_CREATE_SCHEMA_MIGRATIONS)
        for version, name, sql in known:
            if version > current:
                await _apply(conn, version, name, sql, db_path, unchanged_at=current)
                applied.append(version)
    for version, name, _ in known:
        if version in applied:
            log.info("applied migration %s", name)
    return applied


@asynccontextmanager
async def _migration_lock(conn: aiosqlite.Connection, db_path: Path) -> AsyncIterator[None]:
    """One transaction holding the database's write lock: committed when the body succeeds, rolled
    back (schema included: SQLite's DDL is transactional) when it raises.

    In WAL mode EXCLUSIVE keeps other writers (and other migrators) out while readers go on seeing
    the old schema until COMMIT. `storage.postgres.migrate` is the same with an advisory lock.

    Foreign keys are off while migrating (SQLite's documented procedure for rebuilding a table): with
    them on, dropping a rebuilt parent table would cascade-delete its children's rows. `_apply` runs
    `foreign_key_check` instead. The pragma is a no-op inside a transaction, hence set before BEGIN.
    """
    await conn.execute("PRAGMA foreign_keys=OFF")
    await conn.execute(f"PRAGMA busy_timeout={int(MIGRATION_LOCK_TIMEOUT_S * 1000)}")
    try:
        try:
            await conn.execute("BEGIN EXCLUSIVE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise DatabaseLocked(db_path, MIGRATION_LOCK_TIMEOUT_S) from exc
            raise
        try:
            yield
            await conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite rolls back by itself after some errors (disk full, I/O)
                await conn.execute("ROLLBACK")
            raise
    finally:
        await conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA foreign_keys=ON")


async def _apply(
    conn: aiosqlite.Connection, version: int, name: str, sql: str, db_path: Path, *, unchanged_at: int
) -> None:
    """Run one migration inside the caller's transaction; any failure is reported as that file's."""
    try:
        # executescript would COMMIT first; statement by statement keeps them in our transaction.
        for statement in split_statements(sql):
            await conn.execute(statement)
        async with conn.execute("PRAGMA foreign_key_check") as cur:
            dangling = list(await cur.fetchall())
        if dangling:
            table, rowid, parent, _ = dangling[0]
            raise ValueError(
                f"it leaves {len(dangling)} row(s) whose foreign key points nowhere"
                f" (first: {table} row {rowid} → {parent})"
            )
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (version, name))
    except (sqlite3.Error, ValueError) as exc:
        raise MigrationFailed(db_path, name, unchanged_at, " ".join(str(exc).split())) from exc


def split_statements(sql: str) -> list[str]:
    """The statements of a migration file, in order. A `;` inside a string, a comment or a trigger's
    BEGIN … END does not end a statement: `sqlite3.complete_statement` uses SQLite's own tokenizer."""
    statements: list[str] = []
    pending = ""
    pieces = sql.split(";")
    for piece in pieces[:-1]:
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            statements.append(pending)
            pending = ""
    pending += pieces[-1]
    if _body(pending):
        if not sqlite3.complete_statement(pending + ";"):
            raise ValueError(f"its last statement is unfinished: {' '.join(pending.split())[:80]!r}")
        statements.append(pending + ";")
    kept = [s.strip() for s in statements if _body(s) not in ("", ";")]
    for statement in kept:
        if control := _TRANSACTION_CONTROL.match(_body(statement)):
            raise ValueError(
                f"{control.group(1).upper()} is not allowed: each migration already runs in one transaction,"
                " which it must not end"
            )
    return kept


def _body(statement: str) -> str:
    """The statement without its leading whitespace and comments."""
    text = statement.lstrip()
    while text.startswith(("--", "/*")):
        end = text.find("\n") if text.startswith("--") else text.find("*/")
        text = "" if end < 0 else text[end + (1 if text.startswith("--") else 2) :].lstrip()
    return text


async def _file_of(conn: aiosqlite.Connection) -> Path:
    async with conn.execute("PRAGMA database_list") as cur:
        for _, schema, file in await cur.fetchall():
            if schema == "main":
                return Path(file)
    return Path("?")

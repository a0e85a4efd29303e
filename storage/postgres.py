"""Postgres (JANT_DATABASE_URL=postgresql://…): a pool of asyncpg connections, migrated when opened.

asyncpg (Apache-2.0, the `postgres` extra) rather than psycopg 3 (LGPL-3.0): it is async by design and
needs no C library of the system. DBOS keeps its own psycopg connections to the same server.

Migrations are `storage/migrations/postgres/NNN_*.sql` (the twins of the SQLite files, same numbers),
applied with the guarantees `storage.database` gives SQLite: every pending file in one transaction
(Postgres' DDL is transactional), so the schema is at its old version or the latest, never between;
the transaction first takes an advisory lock that every starting jant process asks for, then re-reads
the version, so concurrent starts apply each migration exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from storage import database
from storage.dialect import POSTGRES, numbered_placeholders
from storage.errors import DatabaseLocked, DatabaseTooNew, DatabaseUnavailable, MigrationFailed

log = logging.getLogger(__name__)

# Advisory locks, two-int form: (Jant's class, what). The class is "JANT" in ASCII, apart from the
# one-bigint lock DBOS takes for its own migrations in the same database.
LOCK_CLASS = 0x4A414E54
_MIGRATION_LOCK = 0  # the schema; named locks (`Backend.transaction(lock=…)`) hash into the int space
POOL_MAX = 10  # per process; the server's default max_connections is 100
CONNECT_TIMEOUT_S = 10.0
_CREATE_SCHEMA_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL,"
    " applied_at TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))"
)
# Statements that would end the transaction every migration runs in. A PL/pgSQL body's BEGIN … END
# has no `;` after BEGIN, so it is not mistaken for one.
_TRANSACTION_CONTROL = re.compile(
    r"^\s*(COMMIT|ROLLBACK|ABORT|START\s+TRANSACTION|BEGIN\s*(?:WORK|TRANSACTION)?\s*;|VACUUM)\b",
    re.IGNORECASE | re.MULTILINE,
)


def redacted(url: str) -> str:
    """The URL without its password: what messages and logs may show."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


async def connect(url: str) -> asyncpg.Pool:
    """Open a pool to `url` and migrate the database; `DatabaseUnavailable` when it cannot be reached."""
    where = redacted(url)
    try:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=POOL_MAX, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DatabaseUnavailable(where, reason) from exc
    try:
        await migrate(pool, where)
    except BaseException:
        await pool.close()
        raise
    return pool


async def schema_version(conn: asyncpg.Connection) -> int:
    """The highest migration applied; 0 for a database that has none."""
    # A query of the catalog, not to_regclass: a name lookup may answer from this session's cache, which
    # still says "no such table" after another process created it while we waited for the lock.
    exists = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables"
        " WHERE schemaname = current_schema() AND tablename = 'schema_migrations')"
    )
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))


async def migrate(pool: asyncpg.Pool, where: str, available: Sequence[database.Migration] | None = None) -> list[int]:
    """As `storage.database.migrate`, for Postgres: the versions this call applied."""
    known = list(database.migrations("postgres") if available is None else available)
    latest = known[-1][0] if known else 0
    async with pool.acquire() as conn:
        if await schema_version(conn) == latest:
            return []
        applied: list[int] = []
        try:
            async with conn.transaction():
                timeout_ms = int(database.MIGRATION_LOCK_TIMEOUT_S * 1000)
                await conn.execute(f"SET LOCAL lock_timeout = {timeout_ms}")
                await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", LOCK_CLASS, _MIGRATION_LOCK)
                current = await schema_version(conn)  # another process may have migrated while we waited
                if current > latest:
                    raise DatabaseTooNew(where, current, latest)
                await conn.execute(_CREATE_SCHEMA_MIGRATIONS)
                for version, name, sql in known:
                    if version > current:
                        await _apply(conn, version, name, sql, where, unchanged_at=current)
                        applied.append(version)
        except asyncpg.LockNotAvailableError as exc:
            raise DatabaseLocked(where, database.MIGRATION_LOCK_TIMEOUT_S) from exc
    for version, name, _ in known:
        if version in applied:
            log.info("applied migration postgres/%s", name)
    return applied


async def _apply(conn: asyncpg.Connection, version: int, name: str, sql: str, where: str, *, unchanged_at: int) -> None:
    if control := _TRANSACTION_CONTROL.search(_without_comments(sql)):
        raise MigrationFailed(
            where, name, unchanged_at,
            f"{control.group(1).split()[0].upper()} is not allowed: each migration already runs in one transaction",
        )  # fmt: skip
    try:
        # No parameters: asyncpg sends the file as one simple query, its statements run in our transaction.
        await conn.execute(sql)
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
    except asyncpg.LockNotAvailableError:
        raise
    except asyncpg.PostgresError as exc:
        raise MigrationFailed(where, name, unchanged_at, " ".join(str(exc).split())) from exc


def _without_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


class _Connection:
    """One pooled connection inside a transaction, taking the repository's `?` SQL."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self._conn.fetch(numbered_placeholders(sql), *params))


class PostgresBackend:
    """A statement outside a transaction runs on any pooled connection and commits by itself. A
    transaction holds one connection; its `lock` is a transaction-level advisory lock, so two processes
    checking and reserving the same server's budget take turns, and the second reads the first's row."""

    dialect = POSTGRES

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self.pool = pool
        self.description = redacted(url)

    @classmethod
    async def open(cls, url: str) -> PostgresBackend:
        return cls(await connect(url), url)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self.pool.fetch(numbered_placeholders(sql), *params))

    @asynccontextmanager
    async def transaction(self, *, lock: str | None = None) -> AsyncIterator[_Connection]:
        async with self.pool.acquire() as conn, conn.transaction():
            if lock is not None:
                await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_CLASS, lock)
            yield _Connection(conn)

    async def close(self) -> None:
        # Bounded: a connection still busy after this long belongs to a write that was cancelled.
        try:
            await asyncio.wait_for(self.pool.close(), 10)
        except TimeoutError:
            self.pool.terminate()

"""What the repository needs from a database, and the SQLite one (the default: a file, one process's
connection). `storage.postgres` is the other. Both take statements in the repository's one SQL text
(`storage.dialect`) and return rows readable by column name and by position.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import aiosqlite

from storage.database import connect
from storage.dialect import SQLITE, Dialect

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class Row(Protocol):
    """A result row: `row["column"]`, `row[0]`, `dict(row)` (aiosqlite.Row and asyncpg.Record both are)."""

    def __getitem__(self, key: int | str, /) -> Any: ...
    def keys(self) -> Iterable[str]: ...


class Queries(Protocol):
    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement; the rows it returned (none for most writes)."""
        ...


class Backend(Queries, Protocol):
    dialect: Dialect
    description: str  # where the data is, for messages (a file, or a URL without its password)

    def transaction(self, *, lock: str | None = None) -> AbstractAsyncContextManager[Queries]:
        """One transaction, committed when the block ends, rolled back when it raises. `lock` names what
        no other transaction with the same `lock` may hold at the same time, in any process: its reads
        and writes are then one step for everybody (a budget checked and reserved)."""
        ...

    async def close(self) -> None: ...


class SqliteBackend:
    """One aiosqlite connection. Statements outside a transaction are atomic on their own (autocommit);
    a transaction is `BEGIN IMMEDIATE`, which takes the database's write lock before its first read, so
    every transaction already has the effect of every `lock` at once."""

    dialect = SQLITE

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.description = str(path)

    @classmethod
    async def open(cls, path: Path) -> SqliteBackend:
        return cls(await connect(path), path)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(await self.conn.execute_fetchall(sql, params))

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Queries]:
        await self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
            await self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:  # SQLite rolls back by itself after some errors (disk full, I/O)
                await self.conn.execute("ROLLBACK")
            raise

    def transaction(self, *, lock: str | None = None) -> AbstractAsyncContextManager[Queries]:
        return self._transaction()

    async def close(self) -> None:
        await self.conn.close()


def is_postgres_url(where: Path | str) -> bool:
    return isinstance(where, str) and where.startswith(POSTGRES_SCHEMES)


async def open_backend(where: Path | str) -> Backend:
    """A `postgresql://` URL opens Postgres (needs the `postgres` extra); anything else is a SQLite file."""
    if is_postgres_url(where):
        from storage.postgres import PostgresBackend

        return await PostgresBackend.open(str(where))
    return await SqliteBackend.open(Path(where))


__all__ = ["Backend", "Queries", "Row", "SqliteBackend", "is_postgres_url", "open_backend"]

"""The SQL of worker leases (migration 005): who holds a worker id, its heartbeat, and its takeover.

Every write is ONE conditional statement whose `RETURNING` says whether it applied, so each is atomic
on its own, in SQLite as in Postgres, with no lock held between a read and a write: a process reads a
row, decides, and writes only if the row is still what it read (same `token`, same `heartbeat_at`).
Two survivors claiming one dead worker therefore cannot both win, and a worker that restarts while a
survivor claims it makes one of the two writes find nothing. Takes and returns plain data (dicts),
like `storage.repository`, which owns it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from storage.backend import Backend, Row

COLUMNS = (
    "id", "token", "host", "pid", "pid_started", "heartbeat_s", "started_at", "heartbeat_at", "stopped_at",
    "taken_over_by", "taken_over_at", "takeover_done_at",
)  # fmt: skip
# What a new holder writes; the rest (stop, takeover) starts empty again.
_HOLDER = ("token", "host", "pid", "pid_started", "heartbeat_s", "started_at", "heartbeat_at")


class WorkerLeases:
    def __init__(self, db: Backend, write_lock: asyncio.Lock) -> None:
        self._db = db
        self._write_lock = write_lock  # the repository's: one statement at a time on the shared connection

    async def _applied(self, sql: str, params: Sequence[Any]) -> bool:
        """Run one statement ending in `RETURNING id`: did it change a row?"""
        return bool(await asyncio.shield(self._write(sql, params)))

    async def _write(self, sql: str, params: Sequence[Any]) -> list[Row]:
        async with self._write_lock:
            return await self._db.fetch(sql, params)

    async def get(self, worker_id: str) -> dict[str, Any] | None:
        rows = await self._db.fetch("SELECT * FROM workers WHERE id = ?", (worker_id,))
        return dict(rows[0]) if rows else None

    async def every(self) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._db.fetch("SELECT * FROM workers ORDER BY id")]

    async def insert(self, holder: Mapping[str, Any]) -> bool:
        """Take an id nobody ever held; False if another process inserted it first."""
        cols = ("id", *_HOLDER)
        return await self._applied(
            f"INSERT INTO workers ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            " ON CONFLICT (id) DO NOTHING RETURNING id",
            [holder[c] for c in cols],
        )

    async def replace(self, seen: Mapping[str, Any], holder: Mapping[str, Any]) -> bool:
        """Take over the lease in row `seen` (its holder is dead or stopped) if it has not changed since."""
        sets = ", ".join(f"{c} = ?" for c in _HOLDER)
        return await self._applied(
            f"UPDATE workers SET {sets}, stopped_at = NULL, taken_over_by = NULL, taken_over_at = NULL,"
            " takeover_done_at = NULL WHERE id = ? AND token = ? AND heartbeat_at = ? RETURNING id",
            [*(holder[c] for c in _HOLDER), seen["id"], seen["token"], seen["heartbeat_at"]],
        )

    async def beat(self, worker_id: str, token: str, at: str) -> bool:
        """The holder is alive; False: it no longer holds the lease (taken over, or taken by a restart)."""
        return await self._applied(
            "UPDATE workers SET heartbeat_at = ? WHERE id = ? AND token = ? AND stopped_at IS NULL"
            " AND taken_over_by IS NULL RETURNING id",
            (at, worker_id, token),
        )

    async def release(self, worker_id: str, token: str, at: str) -> bool:
        """A clean stop: the id is free for a restart at once; what it left pending is taken over later."""
        return await self._applied(
            "UPDATE workers SET stopped_at = ?, heartbeat_at = ? WHERE id = ? AND token = ?"
            " AND taken_over_by IS NULL RETURNING id",
            (at, at, worker_id, token),
        )

    async def silent_since(self, cutoff: str, *, besides: str) -> list[dict[str, Any]]:
        """Workers (stopped or dead) whose last beat is older than `cutoff` and nobody has claimed."""
        rows = await self._db.fetch(
            "SELECT * FROM workers WHERE heartbeat_at < ? AND taken_over_by IS NULL AND id != ? ORDER BY heartbeat_at",
            (cutoff, besides),
        )
        return [dict(r) for r in rows]

    async def claim(self, seen: Mapping[str, Any], *, cutoff: str, by: str, at: str) -> bool:
        """Claim the silent worker `seen` for `by`: True for exactly one claimer, and only if the worker
        has neither beaten nor restarted since it was read."""
        return await self._applied(
            "UPDATE workers SET taken_over_by = ?, taken_over_at = ? WHERE id = ? AND token = ?"
            " AND heartbeat_at = ? AND heartbeat_at < ? AND taken_over_by IS NULL RETURNING id",
            (by, at, seen["id"], seen["token"], seen["heartbeat_at"], cutoff),
        )

    async def claim_done(self, worker_id: str, *, by: str, at: str) -> bool:
        """The claimer has resumed the worker's jobs elsewhere: a restart with its id need not wait."""
        return await self._applied(
            "UPDATE workers SET takeover_done_at = ? WHERE id = ? AND taken_over_by = ? RETURNING id",
            (at, worker_id, by),
        )

    async def unclaim(self, worker_id: str, *, by: str) -> bool:
        """The claimer could not resume the worker's jobs: leave it for the next try (its or another's)."""
        return await self._applied(
            "UPDATE workers SET taken_over_by = NULL, taken_over_at = NULL WHERE id = ? AND taken_over_by = ?"
            " AND takeover_done_at IS NULL RETURNING id",
            (worker_id, by),
        )

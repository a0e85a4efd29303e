"""The SQL of spend caps: per-server budget reservations and what predictions cost.

A job's share of its server's budget is whichever is more: what it reserved at approval (while it
runs) or what its predictions have actually cost (always). The check and the reservation are one
`BEGIN IMMEDIATE` transaction: SQLite then holds the database's write lock from the first read to
the commit, so a second approval — on this connection or another process's — reads the first one's
reservation before it decides. (A Postgres backend would take `pg_advisory_xact_lock` on a key made
from the server's id at the start of the same transaction.) Takes and returns plain data, like
`storage.repository`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

# What one reservation weighs against a budget now: its hold while held, and never less than what
# its job's predictions have cost (a re-roll after settling still counts).
_WEIGHT = (
    "MAX(CASE WHEN r.status = 'held' THEN r.reserved_usd ELSE 0 END,"
    " (SELECT COALESCE(SUM(p.cost_usd), 0) FROM predictions p WHERE p.job_id = r.job_id))"
)
_JOB_SPENT = "SELECT COALESCE(SUM(cost_usd), 0) FROM predictions WHERE job_id = ?"


@dataclass(frozen=True)
class Window:
    """One budget: its name ("daily", "monthly"), the ISO time it started, its cap in USD."""

    name: str
    since: str
    cap_usd: float


@dataclass(frozen=True)
class Overrun:
    """The first budget a reservation would break: how much of it is already used."""

    window: Window
    used_usd: float


class SpendLedger:
    def __init__(self, conn: aiosqlite.Connection, write_lock: asyncio.Lock) -> None:
        self._conn = conn
        self._write_lock = write_lock  # the repository's: one transaction at a time on the shared connection

    async def _scalar(self, sql: str, params: Sequence[Any]) -> float:
        rows = list(await self._conn.execute_fetchall(sql, params))
        return float(rows[0][0] or 0.0) if rows else 0.0

    async def _used(self, guild_id: str | None, since: str, *, besides: str) -> float:
        return await self._scalar(
            f"SELECT COALESCE(SUM({_WEIGHT}), 0) FROM budget_reservations r"
            " WHERE r.guild_id IS ? AND r.reserved_at >= ? AND r.job_id != ?",
            (guild_id, since, besides),
        )

    async def used(self, guild_id: str | None, since: str) -> float:
        """What the server's reservations weigh since `since` (ISO, UTC)."""
        return await self._used(guild_id, since, besides="")

    async def reserve(
        self, job_id: str, guild_id: str | None, amount_usd: float, windows: Sequence[Window], reserved_at: str
    ) -> Overrun | None:
        """Hold `amount_usd` for `job_id` unless that would take the server over one of `windows`.

        None when it is held. A job that already has a reservation (run again after it ended) holds
        what it has spent plus `amount_usd`, and keeps the day it was first reserved in.
        """
        return await asyncio.shield(self._reserve(job_id, guild_id, amount_usd, windows, reserved_at))

    async def _reserve(
        self, job_id: str, guild_id: str | None, amount_usd: float, windows: Sequence[Window], reserved_at: str
    ) -> Overrun | None:
        async with self._write_lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                spent = await self._scalar(_JOB_SPENT, (job_id,))
                for window in windows:
                    used = await self._used(guild_id, window.since, besides=job_id) + spent
                    if used + amount_usd > window.cap_usd + 1e-9:
                        await self._conn.execute("ROLLBACK")
                        return Overrun(window, round(used, 4))
                await self._conn.execute(
                    "INSERT INTO budget_reservations (job_id, guild_id, reserved_usd, status, reserved_at)"
                    " VALUES (?, ?, ?, 'held', ?) ON CONFLICT (job_id) DO UPDATE SET"
                    " reserved_usd = excluded.reserved_usd, status = 'held', settled_usd = NULL, settled_at = NULL",
                    (job_id, guild_id, round(spent + amount_usd, 6), reserved_at),
                )
                await self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    await self._conn.execute("ROLLBACK")
                raise
        return None

    async def settle(self, job_id: str, settled_at: str) -> tuple[float, float] | None:
        """The job ended: its reservation becomes what its predictions cost. (reserved, spent), or
        None when it held nothing (a free job, one settled already)."""
        async with self._write_lock:
            rows = list(
                await self._conn.execute_fetchall(
                    f"UPDATE budget_reservations SET status = 'settled', settled_usd = ({_JOB_SPENT}), settled_at = ?"
                    " WHERE job_id = ? AND status = 'held' RETURNING reserved_usd, settled_usd",
                    (job_id, settled_at, job_id),
                )
            )
        return (float(rows[0][0]), float(rows[0][1])) if rows else None

    async def reservation(self, job_id: str) -> dict[str, Any] | None:
        rows = list(await self._conn.execute_fetchall("SELECT * FROM budget_reservations WHERE job_id = ?", (job_id,)))
        return dict(rows[0]) if rows else None

    async def spend(self, since: str, *, guild_id: str | None = None, every_guild: bool = False) -> dict[str, Any]:
        """What predictions cost since `since`: {"by_day": [(day, usd)], "by_source": [(stage, provider,
        video model key or None, usd, predictions)], "held": (running jobs, usd reserved beyond their
        spend)} for one server (None: the command line's jobs) or, with `every_guild`, for the whole
        database."""
        where, params = ("", []) if every_guild else (" AND j.guild_id IS ?", [guild_id])
        base = f"FROM predictions p JOIN jobs j ON j.id = p.job_id WHERE p.cost_usd > 0 AND p.updated_at >= ?{where}"
        by_day = await self._conn.execute_fetchall(
            f"SELECT substr(p.updated_at, 1, 10) AS day, SUM(p.cost_usd) {base} GROUP BY day ORDER BY day",
            [since, *params],
        )
        # A clip is counted under the video model its job chose (the request's registry key; NULL: a
        # job from before the registry); every other prediction under its stage and provider.
        by_source = await self._conn.execute_fetchall(
            "SELECT p.stage, p.provider,"
            " CASE WHEN p.stage = 'clip' THEN json_extract(j.request_json, '$.model') END AS video_model,"
            f" SUM(p.cost_usd) AS usd, COUNT(*) {base} GROUP BY p.stage, p.provider, video_model"
            " ORDER BY usd DESC, p.provider",
            [since, *params],
        )
        held_where = "" if every_guild else " AND r.guild_id IS ?"
        held = list(
            await self._conn.execute_fetchall(
                "SELECT COUNT(*), COALESCE(SUM(MAX(r.reserved_usd - "
                "(SELECT COALESCE(SUM(p.cost_usd), 0) FROM predictions p WHERE p.job_id = r.job_id), 0)), 0)"
                f" FROM budget_reservations r WHERE r.status = 'held'{held_where}",
                params,
            )
        )
        return {
            "by_day": [(str(r[0]), float(r[1])) for r in by_day],
            "by_source": [
                (str(r[0]), str(r[1]), None if r[2] is None else str(r[2]), float(r[3]), int(r[4])) for r in by_source
            ],
            "held": (int(held[0][0]), float(held[0][1])),
        }

"""The SQL of spend caps: per-server budget reservations and what predictions cost.

A job's share of its server's budget is whichever is more: what it reserved at approval (while it
runs) or what its predictions have actually cost (always). The check and the reservation are one
transaction holding a lock named after the server, so a second approval — on this connection or
another process's — reads the first one's reservation before it decides. On SQLite that transaction
is `BEGIN IMMEDIATE` (the database's write lock, from the first read to the commit); on Postgres a
transaction-level advisory lock on the server's name (`storage.postgres`): a row lock could not
stand in for it, since what a racing approval must see is a row that does not exist yet. Takes and
returns plain data, like `storage.repository`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from storage.backend import Backend, Queries
from storage.dialect import Dialect

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


def _weight(dialect: Dialect) -> str:
    """What one reservation weighs against a budget now: its hold while held, and never less than what
    its job's predictions have cost (a re-roll after settling still counts)."""
    return dialect.greatest(
        "CASE WHEN r.status = 'held' THEN r.reserved_usd ELSE 0 END",
        "(SELECT COALESCE(SUM(p.cost_usd), 0) FROM predictions p WHERE p.job_id = r.job_id)",
    )


def _budget_lock(guild_id: str | None) -> str:
    return f"budget:{guild_id or ''}"


class SpendLedger:
    def __init__(self, db: Backend, write_lock: asyncio.Lock) -> None:
        self._db = db
        self._dialect = db.dialect
        self._write_lock = write_lock  # the repository's: one transaction at a time on the shared connection

    @staticmethod
    async def _scalar(queries: Queries, sql: str, params: Sequence[Any]) -> float:
        rows = await queries.fetch(sql, params)
        return float(rows[0][0] or 0.0) if rows else 0.0

    async def _used(self, queries: Queries, guild_id: str | None, since: str, *, besides: str) -> float:
        return await self._scalar(
            queries,
            f"SELECT COALESCE(SUM({_weight(self._dialect)}), 0) FROM budget_reservations r"
            f" WHERE {self._dialect.same('r.guild_id')} AND r.reserved_at >= ? AND r.job_id != ?",
            (guild_id, since, besides),
        )

    async def used(self, guild_id: str | None, since: str) -> float:
        """What the server's reservations weigh since `since` (ISO, UTC)."""
        return await self._used(self._db, guild_id, since, besides="")

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
        async with self._write_lock, self._db.transaction(lock=_budget_lock(guild_id)) as tx:
            spent = await self._scalar(tx, _JOB_SPENT, (job_id,))
            for window in windows:
                used = await self._used(tx, guild_id, window.since, besides=job_id) + spent
                if used + amount_usd > window.cap_usd + 1e-9:
                    return Overrun(window, round(used, 4))  # nothing was written: the commit is empty
            await tx.fetch(
                "INSERT INTO budget_reservations (job_id, guild_id, reserved_usd, status, reserved_at)"
                " VALUES (?, ?, ?, 'held', ?) ON CONFLICT (job_id) DO UPDATE SET"
                " reserved_usd = excluded.reserved_usd, status = 'held', settled_usd = NULL, settled_at = NULL",
                (job_id, guild_id, round(spent + amount_usd, 6), reserved_at),
            )
        return None

    async def settle(self, job_id: str, settled_at: str) -> tuple[float, float] | None:
        """The job ended: its reservation becomes what its predictions cost. (reserved, spent), or
        None when it held nothing (a free job, one settled already)."""
        async with self._write_lock:
            rows = await self._db.fetch(
                f"UPDATE budget_reservations SET status = 'settled', settled_usd = ({_JOB_SPENT}), settled_at = ?"
                " WHERE job_id = ? AND status = 'held' RETURNING reserved_usd, settled_usd",
                (job_id, settled_at, job_id),
            )
        return (float(rows[0][0]), float(rows[0][1])) if rows else None

    async def reservation(self, job_id: str) -> dict[str, Any] | None:
        rows = await self._db.fetch("SELECT * FROM budget_reservations WHERE job_id = ?", (job_id,))
        return dict(rows[0]) if rows else None

    async def spend(self, since: str, *, guild_id: str | None = None, every_guild: bool = False) -> dict[str, Any]:
        """What predictions cost since `since`: {"by_day": [(day, usd)], "by_source": [(stage, provider,
        video model key or None, usd, predictions)], "held": (running jobs, usd reserved beyond their
        spend)} for one server (None: the command line's jobs) or, with `every_guild`, for the whole
        database."""
        same = self._dialect.same
        where, params = ("", []) if every_guild else (f" AND {same('j.guild_id')}", [guild_id])
        base = f"FROM predictions p JOIN jobs j ON j.id = p.job_id WHERE p.cost_usd > 0 AND p.updated_at >= ?{where}"
        by_day = await self._db.fetch(
            f"SELECT substr(p.updated_at, 1, 10) AS day, SUM(p.cost_usd) {base} GROUP BY day ORDER BY day",
            [since, *params],
        )
        # A clip is counted under the video model its job chose (the request's registry key; NULL: a
        # job from before the registry); every other prediction under its stage and provider.
        model = self._dialect.json_text("j.request_json", "model")
        by_source = await self._db.fetch(
            "SELECT p.stage, p.provider,"
            f" CASE WHEN p.stage = 'clip' THEN {model} END AS video_model,"
            f" SUM(p.cost_usd) AS usd, COUNT(*) {base} GROUP BY p.stage, p.provider, video_model"
            " ORDER BY usd DESC, p.provider",
            [since, *params],
        )
        held_where = "" if every_guild else f" AND {same('r.guild_id')}"
        beyond = self._dialect.greatest(
            "r.reserved_usd - (SELECT COALESCE(SUM(p.cost_usd), 0) FROM predictions p WHERE p.job_id = r.job_id)", "0"
        )
        held = await self._db.fetch(
            f"SELECT COUNT(*), COALESCE(SUM({beyond}), 0) FROM budget_reservations r"
            f" WHERE r.status = 'held'{held_where}",
            params,
        )
        return {
            "by_day": [(str(r[0]), float(r[1])) for r in by_day],
            "by_source": [
                (str(r[0]), str(r[1]), None if r[2] is None else str(r[2]), float(r[3]), int(r[4])) for r in by_source
            ],
            "held": (int(held[0][0]), float(held[0][1])),
        }

"""The SQL of shared rate windows (migration 006): request budgets every process on the database spends
together — Replicate's creates and polls, Discord's edits of a status message and of a channel.

A budget of N requests per window is N rows (slots) under one name. A slot is free once its `free_at`
has passed; taking it is ONE conditional UPDATE that sets `free_at` to a window (plus a hold, for a
request whose answer is still to come) ahead and says through `RETURNING` whether it applied. It is
atomic on its own in SQLite (one writer at a time) as in Postgres (the row's lock, and the condition
checked again on the row as it is after any concurrent update), so two processes never take one slot,
and no more than N takes land within any window. Times are the database's own clock
(`Dialect.epoch_now`), so processes on hosts whose clocks disagree still agree on every window.

When no slot is free the caller learns how long until the next one frees (`Missed.wait_s`), so it can
sleep instead of asking again. One statement may take several slots (a process's waiting requests).
Slots are made the first time a budget is used (and again when its N grows); rows beyond a smaller N
are ignored. Takes and returns plain data, like `storage.repository`, which owns it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from storage.backend import Backend, Row

_INSERT_CHUNK = 400  # slots made per statement (two parameters each; well under either database's limit)


@dataclass(frozen=True)
class Taken:
    budget: str
    slot: int
    holder: str | None  # None: the take is the request itself (nothing to release)
    at: float  # when it was taken, by the database's clock (seconds since the epoch)


@dataclass(frozen=True)
class Missed:
    """Every slot is busy: the soonest frees in `wait_s` seconds at the latest (0: one freed meanwhile, ask
    again); `held` of them wait for a release, which may come sooner (an answer is back)."""

    wait_s: float
    held: int = 0


class RateSlots:
    def __init__(self, db: Backend, write_lock: asyncio.Lock) -> None:
        self._db = db
        self._write_lock = write_lock  # the repository's: one statement at a time on the shared connection
        now = db.dialect.epoch_now()
        self._take_sql = (
            f"UPDATE rate_slots SET free_at = {now} + ?, holder = ? WHERE budget = ? AND slot IN ("
            f"SELECT slot FROM rate_slots WHERE budget = ? AND slot < ? AND free_at <= {now}"
            f" ORDER BY free_at, slot LIMIT ?{db.dialect.skip_locked()}"
            f") AND free_at <= {now} RETURNING slot, free_at"
        )
        self._soonest_sql = (
            f"SELECT COUNT(*) AS slots, MIN(free_at) - {now} AS wait_s,"
            f" SUM(CASE WHEN holder IS NOT NULL AND free_at > {now} THEN 1 ELSE 0 END) AS held"
            " FROM rate_slots WHERE budget = ? AND slot < ?"
        )
        self._release_sql = (
            f"UPDATE rate_slots SET free_at = {now} + ?, holder = NULL"
            " WHERE budget = ? AND slot = ? AND holder = ? RETURNING slot"
        )
        self._prune_sql = f"DELETE FROM rate_slots WHERE budget LIKE ? AND free_at < {now} - ? AND holder IS NULL"

    async def _write(self, sql: str, params: Sequence[Any]) -> list[Row]:
        # Shielded: a caller cancelled mid-statement must not leave the shared connection mid-write.
        return await asyncio.shield(self._locked(sql, params))

    async def _locked(self, sql: str, params: Sequence[Any]) -> list[Row]:
        async with self._write_lock:
            return await self._db.fetch(sql, params)

    async def take(
        self, budget: str, limit: int, busy_s: float, holder: str | None = None, *, count: int = 1
    ) -> list[Taken] | Missed:
        """Take up to `count` free slots of `budget` (N = `limit`) and keep them busy for `busy_s` seconds
        from now: a window, plus a hold until `release` (naming `holder`) when the request's answer is
        still to come. Several at once: one statement for a process's waiting requests, not one each."""
        rows = await self._write(self._take_sql, (float(busy_s), holder, budget, budget, limit, count))
        if rows:
            return [Taken(budget, int(row[0]), holder, float(row[1]) - busy_s) for row in rows]
        soonest = await self._db.fetch(self._soonest_sql, (budget, limit))
        made, wait_s, held = int(soonest[0][0]), soonest[0][1], int(soonest[0][2] or 0)
        if made < limit:  # a budget used for the first time (or grown): its slots are made, free
            await self._make(budget, made, limit)
            return Missed(0.0)
        return Missed(max(0.0, float(wait_s)), held)

    async def _make(self, budget: str, first: int, limit: int) -> None:
        for start in range(first, limit, _INSERT_CHUNK):
            slots = range(start, min(limit, start + _INSERT_CHUNK))
            values = ", ".join("(?, ?, 0, NULL)" for _ in slots)
            params = [p for slot in slots for p in (budget, slot)]
            await self._write(
                f"INSERT INTO rate_slots (budget, slot, free_at, holder) VALUES {values}"
                " ON CONFLICT (budget, slot) DO NOTHING",
                params,
            )

    async def release(self, taken: Taken, busy_s: float) -> bool:
        """The request's answer is back: its slot stays busy `busy_s` more seconds (its window, counted
        from now), no longer for the hold. False if the slot is no longer this take's (the hold ran out)."""
        rows = await self._write(self._release_sql, (float(busy_s), taken.budget, taken.slot, taken.holder))
        return bool(rows)

    async def prune(self, prefix: str, idle_s: float) -> None:
        """Forget the slots of budgets under `prefix` (say, one status message's) idle for `idle_s` seconds."""
        await self._write(self._prune_sql, (prefix.replace("%", "") + "%", float(idle_s)))

    async def busy(self, budget: str) -> int:
        """Slots of `budget` busy now (tests and reports)."""
        now = self._db.dialect.epoch_now()
        rows = await self._db.fetch(f"SELECT COUNT(*) FROM rate_slots WHERE budget = ? AND free_at > {now}", (budget,))
        return int(rows[0][0])

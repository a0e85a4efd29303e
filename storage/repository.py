"""The only place that speaks SQL (with `storage.spend_ledger`, which it owns). It takes and returns
plain data (dicts), so `storage` imports nothing from `pipeline`; `pipeline.store` maps these rows
to the domain models.

Every write is committed before it returns: the orchestrator's next step starts only once the
state that led to it is on disk.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storage.backend import Backend, Row, open_backend
from storage.rate_slots import RateSlots
from storage.spend_ledger import SpendLedger
from storage.worker_leases import WorkerLeases

JOB_COLUMNS = (
    "id", "status", "request", "storyboard", "requester_id", "guild_id", "channel_id", "ui", "providers",
    "offline", "env", "byte_limit", "error", "final_path", "final_bytes", "gpu_seconds", "cost_usd",
    "created_at", "updated_at", "started_at", "finished_at", "timing", "soundtrack", "notes", "brand",
)  # fmt: skip
_JSON_COLUMNS = {"request": "request_json", "storyboard": "storyboard_json", "ui": "ui_json",
                 "providers": "providers_json", "timing": "timing_json", "soundtrack": "soundtrack_json",
                 "notes": "notes_json", "brand": "brand_json"}  # fmt: skip
STAGE_COLUMNS = (
    "status", "progress", "attempt", "max_attempts", "error", "path", "seed", "prediction_id", "duration", "words",
    "cost_usd",
)  # fmt: skip
_STAGE_JSON_COLUMNS = {"words": "words_json"}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _to_db(key: str, value: Any) -> tuple[str, Any]:
    if key in _JSON_COLUMNS:
        return _JSON_COLUMNS[key], None if value is None else json.dumps(value, separators=(",", ":"))
    if isinstance(value, datetime):
        return key, value.isoformat()
    if isinstance(value, bool):
        return key, int(value)
    return key, value


def _job_from_row(row: Row) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in JOB_COLUMNS:
        col = _JSON_COLUMNS.get(key, key)
        value = row[col]
        if key in _JSON_COLUMNS and value is not None:
            value = json.loads(value)
        out[key] = value
    out["offline"] = bool(out["offline"])
    return out


def _stage_to_db(key: str, value: Any) -> tuple[str, Any]:
    if key in _STAGE_JSON_COLUMNS:
        return _STAGE_JSON_COLUMNS[key], None if value is None else json.dumps(value, separators=(",", ":"))
    return key, value


def _stage_from_row(row: Row) -> dict[str, Any]:
    out = dict(row)
    for key, col in _STAGE_JSON_COLUMNS.items():
        value = out.pop(col, None)
        out[key] = None if value is None else json.loads(value)
    return out


class JobRepository:
    def __init__(self, db: Backend) -> None:
        self._db = db
        # SQLite: one connection is shared by every task, so a transaction must not interleave with
        # another's. Postgres has a pool, but the writes of one process keep the same order.
        self._write_lock = asyncio.Lock()
        # Budget reservations and spend: their own module, on this database and under this lock.
        self.ledger = SpendLedger(db, self._write_lock)
        # The durable engine's worker ids (migration 005): likewise.
        self.leases = WorkerLeases(db, self._write_lock)
        # Request budgets every process on this database spends together (migration 006): likewise.
        self.rate_slots = RateSlots(db, self._write_lock)

    @classmethod
    async def open(cls, where: Path | str) -> JobRepository:
        """A SQLite file (a path), or Postgres (a `postgresql://` URL)."""
        return cls(await open_backend(where))

    @property
    def dialect(self) -> str:
        return self._db.dialect.name

    @property
    def description(self) -> str:
        """Where the data is: the file, or the URL without its password."""
        return self._db.description

    async def close(self) -> None:
        # A shielded write may still be in flight after its caller was cancelled (shutdown): let it
        # commit before the connection goes away.
        async with self._write_lock:
            await self._db.close()

    async def _in_transaction(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> list[Row]:
        """Run `statements` in one transaction; the rows the last one returned (for `RETURNING`)."""
        # Shielded: a caller cancelled mid-write (job cancel, shutdown) must not leave a transaction
        # half-open on the shared connection; the write is small and finishes on its own.
        return await asyncio.shield(self._transaction(list(statements)))

    async def _transaction(self, statements: list[tuple[str, Sequence[Any]]]) -> list[Row]:
        # Every step is a round trip to the connection's thread (or server) and back through the event
        # loop, and all writers queue behind the lock: so each statement is one trip (execute and fetch
        # together), and a single statement, atomic by itself in autocommit, needs no BEGIN/COMMIT.
        # With sound on, an approval burst is hundreds of writes, and 5 trips each made stages wait
        # seconds for theirs (benchmarks/README.md, "Voice, music and captions").
        async with self._write_lock:
            if len(statements) == 1:
                sql, params = statements[0]
                return await self._db.fetch(sql, params)
            rows: list[Row] = []
            async with self._db.transaction() as tx:
                for sql, params in statements:
                    rows = await tx.fetch(sql, params)
            return rows

    # -- jobs ---------------------------------------------------------------------------------

    async def insert_job(self, job: dict[str, Any], stages: Sequence[dict[str, Any]] = ()) -> None:
        cols, values = zip(*(_to_db(k, job.get(k)) for k in JOB_COLUMNS), strict=True)
        statements: list[tuple[str, Sequence[Any]]] = [
            (f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", values)
        ]
        statements += self._stage_rows(job["id"], stages)
        statements.append(self._event_sql(job["id"], "job_created", None, None, None))
        await self._in_transaction(statements)

    async def update_job(self, job_id: str, **fields: Any) -> None:
        if not fields:
            return
        unknown = set(fields) - set(JOB_COLUMNS)
        if unknown:
            raise KeyError(f"unknown job fields: {sorted(unknown)}")
        await self._in_transaction([self._update_job_sql(job_id, fields)])

    async def update_job_dropping_stages(self, job_id: str, stages: Sequence[tuple[int, str]], **fields: Any) -> None:
        """Set job fields and delete the stage rows `stages` ((scene index, kind) pairs) in one
        transaction: a crash leaves both changes or neither."""
        unknown = set(fields) - set(JOB_COLUMNS)
        if unknown:
            raise KeyError(f"unknown job fields: {sorted(unknown)}")
        statements: list[tuple[str, Sequence[Any]]] = [self._update_job_sql(job_id, fields)]
        statements += [
            (f"DELETE FROM {table} WHERE job_id = ? AND scene_index = ? AND stage = ?", (job_id, index, stage))
            for index, stage in stages
            for table in ("stages", "prediction_intents")  # a stage made again must not find its old create
        ]
        await self._in_transaction(statements)

    async def patch_job_json(self, job_id: str, key: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge `patch` into one of the job's JSON columns in a single statement (RFC 7396: a None
        value removes its key) and return the stored result.

        The merge happens inside the database, so concurrent writers of different keys cannot lose each
        other's: there is no read in Python between which another write could land.
        """
        if key not in _JSON_COLUMNS:
            raise KeyError(f"not a JSON job field: {key}")
        col = _JSON_COLUMNS[key]
        rows = await self._in_transaction([(
            f"UPDATE jobs SET {col} = json_patch(COALESCE({col}, '{{}}'), ?), updated_at = ? WHERE id = ?"
            f" RETURNING {col}",
            (json.dumps(patch, separators=(",", ":")), _now(), job_id),
        )])  # fmt: skip
        if not rows:
            raise KeyError(f"no job {job_id}")
        merged: dict[str, Any] = json.loads(rows[0][0])
        return merged

    @staticmethod
    def _update_job_sql(job_id: str, fields: dict[str, Any]) -> tuple[str, Sequence[Any]]:
        pairs = [_to_db(k, v) for k, v in {"updated_at": _now(), **fields}.items()]
        sets = ", ".join(f"{c} = ?" for c, _ in pairs)
        return f"UPDATE jobs SET {sets} WHERE id = ?", [*(v for _, v in pairs), job_id]

    async def replace_storyboard(
        self, job_id: str, storyboard: dict[str, Any], stages: Sequence[dict[str, Any]], **fields: Any
    ) -> None:
        """A new or edited storyboard and fresh stage rows, atomically."""
        statements: list[tuple[str, Sequence[Any]]] = [
            self._update_job_sql(job_id, {"storyboard": storyboard, **fields}),
            ("DELETE FROM stages WHERE job_id = ?", (job_id,)),
            ("DELETE FROM scenes WHERE job_id = ?", (job_id,)),
            ("DELETE FROM prediction_intents WHERE job_id = ?", (job_id,)),  # creates of the old stages
        ]
        statements += self._stage_rows(job_id, stages)
        await self._in_transaction(statements)

    @staticmethod
    def _stage_rows(job_id: str, stages: Sequence[dict[str, Any]]) -> list[tuple[str, Sequence[Any]]]:
        rows: list[tuple[str, Sequence[Any]]] = []
        for s in stages:
            rows.append((
                "INSERT INTO stages (job_id, scene_index, stage, status, progress, attempt, max_attempts,"
                " error, path, seed, prediction_id, duration, words_json, cost_usd, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (job_id, s["scene_index"], s["stage"], s.get("status", "pending"),
                 s.get("progress", 0.0), s.get("attempt", 0), s.get("max_attempts", 3),
                 s.get("error"), s.get("path"), s.get("seed"), s.get("prediction_id"), s.get("duration"),
                 _stage_to_db("words", s.get("words"))[1], s.get("cost_usd"), _now()),
            ))  # fmt: skip
            if s["stage"] == "seed":
                rows.append(
                    (
                        "INSERT INTO scenes (job_id, scene_index, normalized_path) VALUES (?,?,?) ON CONFLICT"
                        " (job_id, scene_index) DO UPDATE SET normalized_path = excluded.normalized_path",
                        (job_id, s["scene_index"], s.get("normalized_path")),
                    )
                )
        return rows

    async def get_job(self, job_id: str) -> dict[str, Any] | None:
        rows = await self._db.fetch("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            return None
        job = _job_from_row(rows[0])
        stages = await self._db.fetch(
            "SELECT * FROM stages WHERE job_id = ? ORDER BY scene_index, stage DESC", (job_id,)
        )
        job["stages"] = [_stage_from_row(r) for r in stages]
        scenes = await self._db.fetch(
            "SELECT scene_index, normalized_path FROM scenes WHERE job_id = ? ORDER BY scene_index", (job_id,)
        )
        job["normalized"] = {r["scene_index"]: r["normalized_path"] for r in scenes}
        return job

    async def list_jobs(
        self,
        *,
        limit: int = 20,
        requester_id: str | None = None,
        guild_id: str | None = None,
        statuses: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Recent jobs, newest first, without their stages."""
        where, params = self._filters(requester_id=requester_id, guild_id=guild_id, statuses=statuses)
        sql = f"SELECT * FROM jobs {where} ORDER BY created_at DESC LIMIT ?"
        return [_job_from_row(r) for r in await self._db.fetch(sql, [*params, limit])]

    async def count_jobs(
        self,
        *,
        requester_id: str | None = None,
        guild_id: str | None = None,
        statuses: Sequence[str] | None = None,
        since: datetime | None = None,
    ) -> int:
        where, params = self._filters(requester_id=requester_id, guild_id=guild_id, statuses=statuses)
        if since is not None:
            where += (" AND" if where else "WHERE") + " created_at >= ?"
            params.append(since.isoformat())
        rows = await self._db.fetch(f"SELECT COUNT(*) FROM jobs {where}", params)
        return int(rows[0][0]) if rows else 0

    @staticmethod
    def _filters(
        *, requester_id: str | None, guild_id: str | None, statuses: Sequence[str] | None
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if requester_id is not None:
            clauses.append("requester_id = ?")
            params.append(requester_id)
        if guild_id is not None:
            clauses.append("guild_id = ?")
            params.append(guild_id)
        if statuses:
            clauses.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(statuses)
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    async def change_marks(
        self, job_ids: Sequence[str] = (), statuses: Sequence[str] = ()
    ) -> dict[str, tuple[Any, ...]]:
        """Per job (each of `job_ids`, and every job in one of `statuses`): a tuple that changes whenever
        its row, one of its stage rows, its cut scenes or its events change. A front end in another
        process compares it between polls and reads the whole job only when it moved."""
        clauses = []
        params: list[Any] = []
        if job_ids:
            clauses.append(f"j.id IN ({', '.join('?' * len(job_ids))})")
            params.extend(job_ids)
        if statuses:
            clauses.append(f"j.status IN ({', '.join('?' * len(statuses))})")
            params.extend(statuses)
        if not clauses:
            return {}
        sql = (
            "SELECT j.id, j.status, j.updated_at,"
            " (SELECT MAX(s.updated_at) FROM stages s WHERE s.job_id = j.id),"
            " (SELECT COUNT(*) FROM stages s WHERE s.job_id = j.id),"
            " (SELECT COUNT(n.normalized_path) FROM scenes n WHERE n.job_id = j.id),"
            " (SELECT MAX(e.id) FROM events e WHERE e.job_id = j.id)"
            f" FROM jobs j WHERE {' OR '.join(clauses)}"
        )
        return {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in await self._db.fetch(sql, params)}

    async def finished_before(self, cutoff: datetime) -> list[str]:
        """Ids of ended jobs whose media are still on disk and older than `cutoff`."""
        rows = await self._db.fetch(
            "SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ? AND NOT EXISTS"
            " (SELECT 1 FROM events e WHERE e.job_id = jobs.id AND e.kind = 'media_purged') ORDER BY finished_at",
            (cutoff.isoformat(),),
        )
        return [r[0] for r in rows]

    async def delete_job(self, job_id: str) -> None:
        await self._in_transaction([("DELETE FROM jobs WHERE id = ?", (job_id,))])

    # -- stages and scenes --------------------------------------------------------------------

    async def update_stage(self, job_id: str, scene_index: int, stage: str, **fields: Any) -> None:
        unknown = set(fields) - set(STAGE_COLUMNS)
        if unknown:
            raise KeyError(f"unknown stage fields: {sorted(unknown)}")
        pairs = [_stage_to_db(k, v) for k, v in {**fields, "updated_at": _now()}.items()]
        sets = ", ".join(f"{c} = ?" for c, _ in pairs)
        await self._in_transaction(
            [
                (
                    f"UPDATE stages SET {sets} WHERE job_id = ? AND scene_index = ? AND stage = ?",
                    [*(v for _, v in pairs), job_id, scene_index, stage],
                )
            ]
        )

    async def set_normalized(self, job_id: str, scene_index: int, path: str | None) -> None:
        await self._in_transaction(
            [
                (
                    "INSERT INTO scenes (job_id, scene_index, normalized_path) VALUES (?, ?, ?)"
                    " ON CONFLICT (job_id, scene_index) DO UPDATE SET normalized_path = excluded.normalized_path",
                    (job_id, scene_index, path),
                )
            ]
        )

    # -- predictions (paid work) --------------------------------------------------------------

    async def record_prediction(
        self, job_id: str, scene_index: int, stage: str, provider: str, prediction_id: str
    ) -> None:
        """Store a prediction id (and point the stage at it) in one transaction.

        Every paid prediction gets its own row, numbered per (job, scene, stage) across runs: a
        Retry failed or a re-roll starts its attempts at 1 again and must not overwrite the rows of
        predictions already paid for. Recording the same id twice is a no-op.
        """
        now = _now()
        await self._in_transaction([
            ("INSERT INTO predictions (job_id, scene_index, stage, attempt, provider, prediction_id, status,"
             " created_at, updated_at) SELECT ?, CAST(? AS INTEGER), ?,"  # a bare ? here is text to Postgres
             " (SELECT COALESCE(MAX(attempt), 0) + 1 FROM predictions WHERE job_id = ? AND scene_index = ?"
             " AND stage = ?), ?, ?, 'created', ?, ?"
             " WHERE NOT EXISTS (SELECT 1 FROM predictions WHERE prediction_id = ?)",
             (job_id, scene_index, stage, job_id, scene_index, stage, provider, prediction_id, now, now,
              prediction_id)),
            ("UPDATE stages SET prediction_id = ?, updated_at = ? WHERE job_id = ? AND scene_index = ?"
             " AND stage = ?", (prediction_id, now, job_id, scene_index, stage)),
            # The create's intent (migration 007) is answered: the id is what a resume needs now.
            ("DELETE FROM prediction_intents WHERE job_id = ? AND scene_index = ? AND stage = ?",
             (job_id, scene_index, stage)),
        ])  # fmt: skip

    async def record_intent(
        self, job_id: str, scene_index: int, stage: str, *, attempt: int, provider: str, model: str,
        fingerprint: str, sent_at: datetime,
    ) -> None:  # fmt: skip
        """Store the create a stage's attempt is about to send (one row per stage: it replaces the last)."""
        await self._in_transaction([
            ("INSERT INTO prediction_intents (job_id, scene_index, stage, attempt, provider, model, fingerprint,"
             " sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, scene_index, stage) DO UPDATE SET"
             " attempt = excluded.attempt, provider = excluded.provider, model = excluded.model,"
             " fingerprint = excluded.fingerprint, sent_at = excluded.sent_at",
             (job_id, scene_index, stage, attempt, provider, model, fingerprint, sent_at.isoformat())),
        ])  # fmt: skip

    async def prediction_intent(self, job_id: str, scene_index: int, stage: str) -> dict[str, Any] | None:
        """The stage's create intent whose prediction id was never stored, if any (`sent_at` a datetime)."""
        rows = await self._db.fetch(
            "SELECT attempt, provider, model, fingerprint, sent_at FROM prediction_intents"
            " WHERE job_id = ? AND scene_index = ? AND stage = ?",
            (job_id, scene_index, stage),
        )
        if not rows:
            return None
        out = dict(rows[0])
        out["sent_at"] = datetime.fromisoformat(str(out["sent_at"]))
        return out

    async def finish_prediction(
        self, prediction_id: str, status: str, predict_time: float | None, cost_usd: float | None = None
    ) -> None:
        await self._in_transaction(
            [
                (
                    "UPDATE predictions SET status = ?, predict_time = ?, cost_usd = ?, updated_at = ?"
                    " WHERE prediction_id = ?",
                    (status, predict_time, cost_usd, _now(), prediction_id),
                )
            ]
        )

    async def predictions(self, job_id: str) -> list[dict[str, Any]]:
        rows = await self._db.fetch(
            "SELECT * FROM predictions WHERE job_id = ? ORDER BY scene_index, stage, attempt", (job_id,)
        )
        return [dict(r) for r in rows]

    # -- events -------------------------------------------------------------------------------

    @staticmethod
    def _event_sql(
        job_id: str, kind: str, scene_index: int | None, stage: str | None, detail: str | None
    ) -> tuple[str, Sequence[Any]]:
        return (
            "INSERT INTO events (job_id, at, kind, scene_index, stage, detail) VALUES (?,?,?,?,?,?)",
            (job_id, _now(), kind, scene_index, stage, detail),
        )

    async def add_event(
        self,
        job_id: str,
        kind: str,
        *,
        scene_index: int | None = None,
        stage: str | None = None,
        detail: str | None = None,
    ) -> None:
        await self._in_transaction([self._event_sql(job_id, kind, scene_index, stage, detail)])

    async def events(self, job_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._db.fetch("SELECT * FROM events WHERE job_id = ? ORDER BY id", (job_id,))]

    async def events_of_kind(self, kind: str, job_ids: Sequence[str], *, after_id: int = 0) -> list[dict[str, Any]]:
        """The events of one kind on these jobs after event `after_id`, oldest first (the index on
        (job_id, id) answers it: a worker asks this about the jobs it runs every half second)."""
        if not job_ids:
            return []
        sql = (
            f"SELECT * FROM events WHERE job_id IN ({', '.join('?' * len(job_ids))}) AND kind = ? AND id > ?"
            " ORDER BY id"
        )
        return [dict(r) for r in await self._db.fetch(sql, (*job_ids, kind, after_id))]

    # -- per-server settings ------------------------------------------------------------------

    async def guild_settings(self, guild_id: str) -> dict[str, Any] | None:
        """{"brand": {...}, "policy": {...}, "updated_by", "updated_at"}, or None for a server
        that never changed anything."""
        rows = await self._db.fetch("SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,))
        if not rows:
            return None
        row = rows[0]
        return {
            "brand": json.loads(row["brand_json"]),
            "policy": json.loads(row["policy_json"]),
            "updated_by": row["updated_by"],
            "updated_at": row["updated_at"],
        }

    async def save_guild_settings(
        self,
        guild_id: str,
        *,
        brand: dict[str, Any] | None = None,
        policy: dict[str, Any] | None = None,
        updated_by: str | None = None,
    ) -> None:
        """Replace the brand and/or the policy of one server (a None part is left as it is)."""
        now = _now()
        statements: list[tuple[str, Sequence[Any]]] = [
            (
                "INSERT INTO guild_settings (guild_id, updated_by, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(guild_id) DO UPDATE SET updated_by = excluded.updated_by, "
                "updated_at = excluded.updated_at",
                (guild_id, updated_by, now),
            )
        ]
        for column, value in (("brand_json", brand), ("policy_json", policy)):
            if value is not None:
                statements.append(
                    (
                        f"UPDATE guild_settings SET {column} = ? WHERE guild_id = ?",
                        (json.dumps(value, separators=(",", ":")), guild_id),
                    )
                )
        await self._in_transaction(statements)

"""What the durable-engine tests share: `jant` processes against the emulators, and the rows they leave in
Jant's tables and DBOS's, read from outside as an operator would, on SQLite or on Postgres.

`db` is where Jant's tables are: the SQLite file (`<data>/jant.db`, DBOS's beside it in
`<data>/dbos.sqlite`) or a Postgres URL (JANT_DATABASE_URL: both there, DBOS's in the schema `dbos`).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.emulators import media
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import STABLE_AUDIO_REF, FakeReplicate
from tests.postgres_server import pg_rows
from tests.service_fakes import SVD, draft, service_env

REPO = Path(__file__).resolve().parents[1]
PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm, dims at night and charges your phone"
TTS, MUSIC = "minimax/speech-02-turbo", STABLE_AUDIO_REF
SCENES = 5  # the fake GPT-4o's storyboard (tests.service_fakes.draft)
# The job workflow's own steps, at the end of a run, in their order (DurableOrchestrator._end_run).
END_STEPS = ("jant.master", "jant.formats", "jant.hooks", "jant.finished")
HOLD_S = 6.0  # wall seconds each clip stays "processing" on Replicate: the window to kill in


@pytest.fixture
async def emulators() -> AsyncIterator[tuple[FakeOpenAI, FakeReplicate]]:
    await media.mp4_bytes(576, 1024, 14, 7)  # warm the emulator's encode cache
    async with FakeOpenAI() as oai, FakeReplicate(time_factor=0.1) as rep:
        oai.responder = lambda body: draft()
        rep.set_latency(SVD, processing=HOLD_S / rep.time_factor)
        yield oai, rep


def service_engine_env(
    oai: FakeOpenAI, rep: FakeReplicate, data: Path, *, db: Path | str | None = None, **values: str
) -> dict[str, str]:
    """The durable engine against the emulators, dev-sized. `db`: a Postgres URL puts Jant's tables and
    DBOS's system database there (JANT_DATABASE_URL)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REPLICATE_", "JANT_", "DISCORD_"))}
    if isinstance(db, str):
        values = {"JANT_DATABASE_URL": db, **values}
    return {
        **base, **service_env(oai, rep, data), "JANT_ENGINE": "dbos", "JANT_ENV": "dev",
        "JANT_SVD_VIDEO_LENGTH": "14_frames_with_svd", "JANT_CLIP_DEADLINE_S": "60",
        "JANT_VOICE": "replicate", "JANT_MUSIC": "replicate", "PYTHONPATH": str(REPO), "COLUMNS": "120", **values,
    }  # fmt: skip


async def jant(env: dict[str, str], cwd: Path, log: Path, *args: str) -> asyncio.subprocess.Process:
    with log.open("wb") as out:  # a file, not a pipe: a process nobody reads must never block on its output
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", *args, cwd=cwd, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


def db_rows(db: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Rows of a SQLite file, read from outside as another process would (raises if it is not made yet)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def dbos_rows(data: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    """DBOS's rows in its SQLite file."""
    return db_rows(data / "dbos.sqlite", sql, *params)


async def rows(db: Path | str, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Jant's rows: the SQLite file, or the Postgres database at the URL."""
    if isinstance(db, str):
        return await pg_rows(db, sql, *params)
    return await asyncio.to_thread(db_rows, db, sql, *params)


async def dbos_runs(db: Path | str, data: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    """DBOS's rows: <data>/dbos.sqlite, or the schema `dbos` of the Postgres database."""
    if isinstance(db, str):
        for table in ("workflow_status", "operation_outputs"):
            sql = sql.replace(f"FROM {table}", f"FROM dbos.{table}")
        return await pg_rows(db, sql, *params)
    return await asyncio.to_thread(dbos_rows, data, sql, *params)


async def recorded_steps(db: Path | str, data: Path, job_id: str) -> set[tuple[int, str, str]]:
    """The steps DBOS had recorded as finished, as (scene, stage kind, step name). A chain
    `<run>/<scene>/<root>` runs its root stage, then the stages that wait for it, each an attempt's
    create and wait (no retry happens in these tests), a clip followed by its cut: a seed chain is
    seed create, seed wait, clip create, clip wait, the clip's cut; a voice or music chain is that
    stage's create and wait."""
    found = await dbos_runs(
        db,
        data,
        "SELECT workflow_uuid, function_id, function_name FROM operation_outputs WHERE workflow_uuid LIKE ?"
        " AND function_name IN ('jant.create', 'jant.wait', 'jant.normalise') AND completed_at_epoch_ms IS NOT NULL",
        f"{job_id}/%",
    )
    order = {"seed": ["seed", "seed", "clip", "clip", "clip"], "voice": ["voice"] * 2, "music": ["music"] * 2}
    out = set()
    for workflow, function_id, step in found:
        _, scene, root = str(workflow).split("/")
        out.add((int(scene), order[root][int(function_id) - 1], str(step)))
    return out


async def steps_run(db: Path | str, job_id: str) -> Counter[tuple[int | None, str | None, str]]:
    """How many times each step of the job has run (its `dbos_step` events): (scene, stage kind, step);
    the job workflow's own steps (END_STEPS) have no scene and no stage."""
    sql = "SELECT scene_index, stage, detail FROM events WHERE job_id = ? AND kind = 'dbos_step'"
    found = await rows(db, sql, job_id)
    return Counter(
        (None if scene is None else int(str(scene)), None if stage is None else str(stage), str(detail).split()[0])
        for scene, stage, detail in found
    )


async def checkpointed(db: Path | str, data: Path, step: str, chain_suffix: str) -> int:
    """How many chains whose id ends with `chain_suffix` have `step` checkpointed in DBOS."""
    sql = "SELECT COUNT(*) FROM operation_outputs WHERE function_name = ? AND workflow_uuid LIKE ?"
    try:
        [(n,)] = await dbos_runs(db, data, sql, step, f"%{chain_suffix}")
    except (sqlite3.OperationalError, asyncpg.UndefinedTableError):  # not made yet
        return 0
    return int(str(n))


async def jobs_with_every_clip_generating(db: Path | str, rep: FakeReplicate) -> list[str]:
    """The jobs whose every clip is a prediction processing on Replicate with its id stored and its wait
    step begun (so its create step is checkpointed in DBOS), and whose voice and music stages are done:
    the steps in flight at a kill then are exactly the clips' waits."""
    sql = "SELECT job_id, stage, status, prediction_id FROM stages WHERE stage IN ('clip', 'voice', 'music')"
    try:
        found = await rows(db, sql)
    except (sqlite3.OperationalError, asyncpg.UndefinedTableError):  # not made yet, or not yet migrated
        return []
    by_job: dict[str, list[tuple[object, ...]]] = {}
    for row in found:
        by_job.setdefault(str(row[0]), []).append(row)
    ready = []
    for job_id, stages in sorted(by_job.items()):
        clips = [r for r in stages if r[1] == "clip" and r[2] == "running" and r[3] is not None]
        sound = [r for r in stages if r[1] in ("voice", "music")]
        if len(clips) != SCENES or len(sound) != SCENES + 1 or any(r[2] != "done" for r in sound):
            continue
        if not all(r[3] in rep.predictions and rep.predictions[str(r[3])].status == "processing" for r in clips):
            continue
        sql = (
            "SELECT COUNT(*) FROM events WHERE job_id = ? AND kind = 'dbos_step' AND stage = 'clip'"
            " AND detail LIKE 'jant.wait %'"
        )
        [(waits,)] = await rows(db, sql, job_id)
        if int(str(waits)) >= SCENES:
            ready.append(job_id)
    return ready


async def every_clip_generating(db: Path | str, rep: FakeReplicate) -> str | None:
    """The (only) job's id, once its every clip is generating (`jobs_with_every_clip_generating`)."""
    ready = await jobs_with_every_clip_generating(db, rep)
    return ready[0] if ready else None


LEASE_COLUMNS = (
    "id",
    "host",
    "pid",
    "heartbeat_at",
    "stopped_at",
    "taken_over_by",
    "taken_over_at",
    "takeover_done_at",
)


async def lease(db: Path | str, worker_id: str) -> dict[str, object] | None:
    """A worker id's row in the `workers` table, or None (no row, or the tables are not made yet)."""
    sql = f"SELECT {', '.join(LEASE_COLUMNS)} FROM workers WHERE id = ?"
    try:
        if isinstance(db, str):
            found = await pg_rows(db, sql, worker_id)
        else:
            found = await asyncio.to_thread(db_rows, db, sql, worker_id)
    except (sqlite3.OperationalError, asyncpg.UndefinedTableError):
        return None
    return dict(zip(LEASE_COLUMNS, found[0], strict=True)) if found else None


async def holds(db: Path | str, worker_id: str, pid: int) -> dict[str, object] | None:
    """The lease row, while process `pid` holds `worker_id`."""
    row = await lease(db, worker_id)
    return row if row is not None and row["pid"] == pid and row["stopped_at"] is None else None

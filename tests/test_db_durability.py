"""The database survives a kill -9 in the middle of writing: a process writes jobs as fast as it can
through the real store, is killed with SIGKILL, and the database it leaves behind is intact — WAL mode,
`integrity_check` ok, every job it reported as committed readable with its storyboard, stages and
paid prediction, and every other row a consistent step of the same sequence. The same on Postgres,
where the writer's pool of connections dies with it mid-transaction."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from pathlib import Path

from pipeline.models import JobStatus, StageStatus
from pipeline.store import JobStore

REPO = Path(__file__).resolve().parents[1]
ENOUGH = 40  # jobs reported committed before the kill

WRITER = """
import asyncio, sys
from pathlib import Path
from pipeline.models import AdRequest, Job, JobStatus, StageStatus
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.store import JobStore

async def main(db: str) -> None:
    store = await JobStore.open(db if db.startswith("postgresql://") else Path(db))
    board = await OfflineStoryboardPlanner().plan(AdRequest(product="Lumen, a lamp that charges your phone"))
    n = 0
    while True:  # one job = four transactions, the way the bot writes them
        job = await store.create(Job(request=AdRequest(product=f"Lamp number {n}")))
        await store.set_storyboard(job, board, JobStatus.AWAITING_APPROVAL, 3)
        stage = job.scene(1).clip
        stage.status, stage.attempt = StageStatus.RUNNING, 1
        await store.save_stage(stage)
        await store.record_prediction(stage, "replicate-svd", f"pred-{job.id}")
        print(job.id, flush=True)  # only after the last commit of this job
        n += 1

asyncio.run(main(sys.argv[1]))
"""


async def test_a_kill_9_mid_write_leaves_an_intact_database_with_every_committed_job(database: Path | str) -> None:
    db = database
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(db), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    committed: list[str] = []
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while len(committed) < ENOUGH:
                line = await proc.stdout.readline()
                assert line, (await proc.stderr.read()).decode()  # type: ignore[union-attr]
                committed.append(line.decode().strip())
        proc.send_signal(signal.SIGKILL)  # mid-write: the loop never pauses
        assert await proc.wait() == -signal.SIGKILL
        rest = (await proc.stdout.read()).decode()  # reported before the kill, not read by us yet
        committed += [line for line in rest.split("\n")[:-1] if line]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    if isinstance(db, Path):  # Postgres checks its foreign keys at every statement and has no such pragmas
        raw = sqlite3.connect(db)
        try:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert raw.execute("PRAGMA foreign_key_check").fetchall() == []
        finally:
            raw.close()

    store = await JobStore.open(db)  # reopening runs migrations again: nothing to apply, nothing lost
    try:
        for job_id in committed:
            job = await store.get(job_id)
            assert job is not None and job.status is JobStatus.AWAITING_APPROVAL and job.storyboard is not None
            assert len(job.scenes) == len(job.storyboard.scenes)
            clip = job.scene(1).clip
            assert clip.status is StageStatus.RUNNING and clip.prediction_id == f"pred-{job_id}"
            [paid] = await store.predictions(job_id)
            assert paid["prediction_id"] == f"pred-{job_id}"
        everything = await store.list(limit=10_000)
        assert {j.id for j in everything} >= set(committed)
        assert len(everything) - len(committed) <= 1  # at most the job being written when the kill came …
        for job in everything:  # … and it is a consistent step: created, or planned, never half of a step
            loaded = await store.get(job.id)
            assert loaded is not None
            assert loaded.status in (JobStatus.PLANNING, JobStatus.AWAITING_APPROVAL)
            assert (loaded.storyboard is None) == (loaded.scenes == [])
    finally:
        await store.close()

"""The end of a durable run is one step per part: the master, the other formats, the hooks, the job's
end (DurableOrchestrator._end_run).

Story: a teammate runs `jant makead --yes --formats 9:16,1:1,16:9` on the durable engine (offline,
five scenes). The process is killed with SIGKILL while the worker cuts the other formats, after the
master was joined and its step recorded. `jant worker --until-idle` with the same worker id recovers
the run: the master's step is replayed from DBOS, not run again (final.mp4 is not rewritten), the
formats' step runs again and the ad is finished with every format.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.bot_harness import eventually
from tests.durable_processes import END_STEPS, db_rows, dbos_rows, jant, steps_run, stop
from tests.test_durable_front_ends import PRODUCT, engine_env

pytest.importorskip("dbos", reason="the durable extra (`pip install 'jant[durable]'`) is not installed")


async def _cutting_formats(db: Path) -> str | None:
    """The job id, once its formats' step has begun (so its master's step is recorded)."""
    try:
        found = await asyncio.to_thread(
            db_rows, db, "SELECT job_id FROM events WHERE kind = 'dbos_step' AND detail LIKE 'jant.formats %'"
        )
    except Exception:  # not made yet
        return None
    return str(found[0][0]) if found else None


async def test_a_kill_9_during_the_formats_does_not_make_the_master_again(tmp_path: Path) -> None:
    data, db = tmp_path / "data", tmp_path / "data" / "jant.db"
    env = engine_env(data)
    makead = await jant(env, tmp_path, tmp_path / "makead.log", "makead", PRODUCT, "--yes", "--formats",
                        "9:16,1:1,16:9")  # fmt: skip
    try:
        job_id = await eventually(lambda: _cutting_formats(db), timeout=120, what="the formats being cut")
        makead.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(makead.wait(), 10) == -signal.SIGKILL
    finally:
        await stop(makead)
    sql = "SELECT function_name FROM operation_outputs WHERE workflow_uuid = ? AND function_name LIKE 'jant.%'"
    recorded = {str(n) for (n,) in await asyncio.to_thread(dbos_rows, data, sql, job_id)}
    assert "jant.master" in recorded and "jant.formats" not in recorded, recorded  # killed inside the formats
    [(status,)] = await asyncio.to_thread(db_rows, db, "SELECT status FROM jobs WHERE id = ?", job_id)
    assert status == "composing"
    final = data / "jobs" / job_id / "final.mp4"
    made_at = final.stat().st_mtime_ns

    worker = await jant(env, tmp_path, tmp_path / "worker.log", "worker", "--until-idle")
    try:
        assert await asyncio.wait_for(worker.wait(), 120) == 0, (tmp_path / "worker.log").read_text()
    finally:
        await stop(worker)
    assert f"Job {job_id}: completed" in (tmp_path / "worker.log").read_text()
    # The master's step ran once (replayed from DBOS on recovery), the formats' twice, the rest once.
    ran = await steps_run(db, job_id)
    assert [ran[(None, None, step)] for step in END_STEPS] == [1, 2, 1, 1], ran
    assert final.stat().st_mtime_ns == made_at  # not joined again
    [(status, final_path)] = await asyncio.to_thread(
        db_rows, db, "SELECT status, final_path FROM jobs WHERE id = ?", job_id
    )
    assert (status, final_path) == ("completed", str(final))
    for name in ("final-1x1.mp4", "final-16x9.mp4"):
        assert (final.parent / name).stat().st_size > 10_000, name

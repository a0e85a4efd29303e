"""Front ends that make no ad themselves: `jant makead --yes --no-worker` (JANT_ENGINE=dbos).

Story: a teammate queues an ad from the terminal while no worker is up. The terminal says it is
queued and waits; nothing runs it. A `jant worker` starts, takes the job from the queue and makes it;
the terminal follows its progress through the database to the finished ad and exits 0. Beside it:
Ctrl-C in such a terminal stops the following, not the job, and says so.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from tests.bot_harness import eventually
from tests.durable_processes import REPO, db_rows, dbos_rows, jant, stop

pytest.importorskip("dbos", reason="the durable extra (`pip install 'jant[durable]'`) is not installed")

PRODUCT = "Lumen, a desk lamp that follows the sun"  # five scenes offline: a short ad to make


def engine_env(data: Path, **values: str) -> dict[str, str]:
    """Offline, on the durable engine, small: what a front end and its workers share."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REPLICATE_", "JANT_", "DISCORD_"))}
    return {
        **base, "JANT_DATA_DIR": str(data), "JANT_ENGINE": "dbos", "JANT_ENV": "dev", "JANT_OFFLINE": "1",
        "JANT_MUSIC": "none", "JANT_VOICE": "none", "PYTHONPATH": str(REPO), "COLUMNS": "120", **values,
    }  # fmt: skip


async def queued_job(data: Path) -> str | None:
    """The job id, once its run waits on the workers' queue."""
    try:
        sql = "SELECT workflow_uuid FROM workflow_status WHERE queue_name = 'jant-jobs' AND status = 'ENQUEUED'"
        rows = await asyncio.to_thread(dbos_rows, data, sql)
    except sqlite3.OperationalError:  # not made yet
        return None
    return str(rows[0][0]) if rows else None


async def test_a_job_queued_from_the_terminal_is_made_by_a_worker_and_followed_to_the_end(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = engine_env(data)
    makead = await jant(env, tmp_path, tmp_path / "makead.log", "makead", PRODUCT, "--yes", "--no-worker")
    worker: asyncio.subprocess.Process | None = None
    try:
        job_id = await eventually(lambda: queued_job(data), timeout=60, what="the job queued for the workers")
        assert makead.returncode is None  # following it, not making it
        [(status, started)] = await asyncio.to_thread(
            db_rows, data / "jant.db", "SELECT status, started_at FROM jobs WHERE id = ?", job_id
        )
        assert (status, started) == ("queued", None)

        worker = await jant({**env, "JANT_WORKER_ID": "w1"}, tmp_path, tmp_path / "worker.log", "worker")
        assert await asyncio.wait_for(makead.wait(), 150) == 0, (tmp_path / "makead.log").read_text()
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(worker.wait(), 15) == 0, (tmp_path / "worker.log").read_text()
    finally:
        await stop(makead)
        if worker is not None:
            await stop(worker)
    out = (tmp_path / "makead.log").read_text()
    assert f"Job {job_id} is queued for the workers" in out
    # The same progress rows as when the ad is made in the terminal's own process, drawn to the end.
    rows = [line for line in out.splitlines() if line.startswith("scene ")]
    assert len(rows) == 5 and all("100% done" in row for row in rows), out
    assert any(line.startswith("ad ") and "100% completed" in line for line in out.splitlines()), out
    assert f"Job {job_id} completed in" in out
    final = data / "jobs" / job_id / "final.mp4"
    assert f"final: {final}" in out and final.stat().st_size > 100_000
    # Made by the worker: its run was taken from the queue by w1 and finished there.
    [(wf_status, executor, queue)] = await asyncio.to_thread(
        dbos_rows, data, "SELECT status, executor_id, queue_name FROM workflow_status WHERE workflow_uuid = ?", job_id
    )
    assert (wf_status, executor, queue) == ("SUCCESS", "w1", "jant-jobs")
    assert f"Job {job_id}: completed" in (tmp_path / "worker.log").read_text()
    events = await asyncio.to_thread(db_rows, data / "jant.db", "SELECT kind FROM events WHERE job_id = ?", job_id)
    kinds = [k for (k,) in events]
    assert "resumed" not in kinds  # a queued job's first run is not a recovery


async def test_ctrl_c_stops_following_a_queued_job_and_leaves_it_to_the_workers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    makead = await jant(engine_env(data), tmp_path, tmp_path / "makead.log", "makead", PRODUCT, "--yes", "--no-worker")
    try:
        job_id = await eventually(lambda: queued_job(data), timeout=60, what="the job queued for the workers")
        makead.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(makead.wait(), 20) == 130
    finally:
        await stop(makead)
    out = (tmp_path / "makead.log").read_text()
    assert f"Stopped following job {job_id}. It goes on" in out and f"jant show {job_id}" in out, out
    # Neither cancelled nor run by the terminal: still waiting for a worker.
    [(status,)] = await asyncio.to_thread(db_rows, data / "jant.db", "SELECT status FROM jobs WHERE id = ?", job_id)
    assert status == "queued"
    assert await queued_job(data) == job_id


def test_no_worker_without_the_durable_engine_says_what_to_set(capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    assert main(["makead", PRODUCT, "--yes", "--no-worker"]) == 2
    assert main(["bot", "--no-worker"]) == 2
    err = capsys.readouterr().err
    assert err.count("--no-worker queues jobs for `jant worker` processes") == 2 and "JANT_ENGINE=dbos" in err


def test_jant_cancel_without_the_durable_engine_says_where_a_job_can_be_stopped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bot.cli import main

    assert main(["cancel", "0123abcd"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "`jant cancel` stops a job that `jant worker` processes make (JANT_ENGINE=dbos)" in err
    assert "press Ctrl-C in that terminal, or the Cancel button" in err

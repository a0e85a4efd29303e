"""Worker ids on the durable engine: one live process per id, and a dead worker's jobs taken over.

Story: a team runs `jant worker --id bravo` beside a `jant makead --yes` whose worker id is alpha, on
one data directory (SQLite). The makead process is killed with SIGKILL while its clips are generating
on Replicate, and nobody restarts it. Once alpha's heartbeat is older than JANT_WORKER_TAKEOVER_S,
bravo claims alpha and resumes its pending workflows: the ad is finished with zero duplicate creates,
no step DBOS had recorded runs again, and the job's events say who took it over from whom. Beside it:
a second process with a live worker's id is refused and says what to do; two survivors claiming one
dead worker never both win; a restarted id is taken at once when its old process is gone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

from pipeline.durable.workers import WorkerIdInUse, WorkerLease, stored_worker_id
from pipeline.store import JobStore
from tests.bot_harness import eventually
from tests.durable_processes import (
    PRODUCT,
    REPO,
    SCENES,
    db_rows,
    dbos_rows,
    every_clip_generating,
    holds,
    jant,
    lease,
    recorded_steps,
    service_engine_env,
    steps_run,
    stop,
)
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import FakeReplicate
from tests.service_fakes import SVD

pytest.importorskip("dbos", reason="the durable extra (`pip install 'jant[durable]'`) is not installed")


def _database_url(database: Path | str) -> dict[str, str]:
    return {"JANT_DATABASE_URL": database} if isinstance(database, str) else {}


def _offline_env(data: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REPLICATE_", "JANT_", "DISCORD_"))}
    return {**env, "JANT_DATA_DIR": str(data), "JANT_ENGINE": "dbos", "JANT_OFFLINE": "1", "PYTHONPATH": str(REPO),
            "COLUMNS": "200", **values}  # fmt: skip


async def test_a_second_worker_with_a_live_workers_id_is_refused_and_told_what_to_do(
    tmp_path: Path, database: Path | str
) -> None:
    """On SQLite, and on Postgres, where the lease is a row other hosts' workers see as well."""
    data = tmp_path / "data"
    env = _offline_env(data, JANT_WORKER_HEARTBEAT_S="0.3", JANT_WORKER_TAKEOVER_S="60", **_database_url(database))
    db = database
    first = await jant(env, tmp_path, tmp_path / "first.log", "worker", "--id", "alpha")
    try:
        held = await eventually(lambda: holds(db, "alpha", first.pid), timeout=30, what="the first worker's lease")
        second = await jant(env, tmp_path, tmp_path / "second.log", "worker", "--id", "alpha", "--until-idle")
        assert await asyncio.wait_for(second.wait(), 30) == 2
        said = " ".join((tmp_path / "second.log").read_text().split())
        assert f"Worker id 'alpha' is in use by a running process (pid {first.pid} on host" in said, said
        assert "another id (`jant worker --id NAME` or JANT_WORKER_ID), or stop that process first" in said, said
        # The refused process left the lease alone, and the first one goes on beating.
        assert await eventually(
            lambda: _beat_since(db, "alpha", first.pid, str(held["heartbeat_at"])), timeout=10, what="a later beat"
        )
        # DBOS was never launched under the refused process: it would have recovered alpha's jobs.
        assert "DBOS" not in said and first.returncode is None
        first.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(first.wait(), 15) == 0, (tmp_path / "first.log").read_text()
    finally:
        await stop(first)
    stopped = await lease(db, "alpha")
    assert stopped is not None and stopped["stopped_at"] is not None
    # A clean stop frees the id at once.
    again = await jant(env, tmp_path, tmp_path / "again.log", "worker", "--id", "alpha", "--until-idle")
    assert await asyncio.wait_for(again.wait(), 30) == 0, (tmp_path / "again.log").read_text()
    assert "the id was free: it stopped" in (tmp_path / "again.log").read_text()


async def _beat_since(db: Path | str, worker_id: str, pid: int, before: str) -> bool:
    row = await holds(db, worker_id, pid)
    return row is not None and str(row["heartbeat_at"]) > before


async def test_a_lease_is_live_by_process_on_its_host_and_by_heartbeat_elsewhere(tmp_path: Path) -> None:
    store = await JobStore.open(tmp_path / "jant.db")
    leases = store.repo.leases
    try:
        mine = await WorkerLease.acquire(leases, "alpha", 1.0)
        with pytest.raises(WorkerIdInUse, match="pid"):  # this very process holds it
            await WorkerLease.acquire(leases, "alpha", 1.0)
        # On this host, a holder whose process is gone is dead whatever its heartbeat says: taken at once.
        gone = await _exited_pid()
        await _edit(tmp_path, "UPDATE workers SET pid = ?, pid_started = NULL, token = 'old' WHERE id = 'alpha'", gone)
        taken = await WorkerLease.acquire(leases, "alpha", 1.0)
        assert taken.previous == f"its process (pid {gone}) is gone"
        assert not await mine.beat()  # the old holder learns it lost the id
        # On another host, only the heartbeat tells: fresh is refused, older than 5 beats is dead.
        await _edit(tmp_path, "UPDATE workers SET host = 'elsewhere', token = 'remote' WHERE id = 'alpha'")
        with pytest.raises(WorkerIdInUse, match="elsewhere"):
            await WorkerLease.acquire(leases, "alpha", 1.0)
        await _edit(
            tmp_path, "UPDATE workers SET heartbeat_at = strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now', '-6 seconds')"
        )
        late = await WorkerLease.acquire(leases, "alpha", 1.0)
        assert late.previous.startswith("its heartbeat stopped")
        await late.release()
    finally:
        await store.close()


async def _exited_pid() -> int:
    proc = await asyncio.create_subprocess_exec("true")
    await proc.wait()
    return proc.pid


async def _edit(data: Path, sql: str, *params: object) -> None:
    def run() -> None:
        conn = sqlite3.connect(data / "jant.db", timeout=5)
        try:
            with conn:
                conn.execute(sql, params)
        finally:
            conn.close()

    await asyncio.to_thread(run)


async def test_two_survivors_claiming_one_dead_worker_never_both_win(database: Path | str) -> None:
    """The claim is one conditional UPDATE: of two processes (two connections; on Postgres, two
    pools) racing for the same silent worker, exactly one wins, every time, on either database."""
    one, two = await JobStore.open(database), await JobStore.open(database)
    try:
        for n in range(20):
            dead = f"dead-{n}"
            await one.repo.leases.insert({
                "id": dead, "token": "t", "host": socket.gethostname(), "pid": 1, "pid_started": None,
                "heartbeat_s": 1.0, "started_at": "2026-01-01T00:00:00.000000+00:00",
                "heartbeat_at": "2026-01-01T00:00:00.000000+00:00",
            })  # fmt: skip
            [seen] = [r for r in await one.repo.leases.silent_since("2026-06-01", besides="x") if r["id"] == dead]
            wins = await asyncio.gather(
                one.repo.leases.claim(seen, cutoff="2026-06-01", by="one", at="2026-06-01T00:00:00"),
                two.repo.leases.claim(seen, cutoff="2026-06-01", by="two", at="2026-06-01T00:00:00"),
            )
            assert sorted(wins) == [False, True]
            row = await two.repo.leases.get(dead)
            assert row is not None and row["taken_over_by"] == ("one" if wins[0] else "two")
    finally:
        await one.close()
        await two.close()


async def test_a_dead_workers_job_is_taken_over_by_a_live_worker_with_nothing_paid_or_run_twice(
    emulators: tuple[FakeOpenAI, FakeReplicate],
    tmp_path: Path,
) -> None:
    oai, rep = emulators
    data = tmp_path / "data"
    env = service_engine_env(oai, rep, data, JANT_WORKER_HEARTBEAT_S="0.5", JANT_WORKER_TAKEOVER_S="3")
    db = data / "jant.db"
    bravo = await jant(env, tmp_path, tmp_path / "bravo.log", "worker", "--id", "bravo")
    makead = None
    try:
        await eventually(lambda: holds(db, "bravo", bravo.pid), timeout=30, what="worker bravo's lease")
        makead = await jant({**env, "JANT_WORKER_ID": "alpha"}, tmp_path, tmp_path / "alpha.log", "makead", PRODUCT,
                             "--yes")  # fmt: skip
        job_id = await eventually(lambda: every_clip_generating(db, rep), timeout=60, what="every clip generating")
        makead.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(makead.wait(), 10) == -signal.SIGKILL
        before = rep.counts.creates.copy()
        recorded = await recorded_steps(db, data, job_id)
        ran_before = await steps_run(db, job_id)
        alpha = await lease(db, "alpha")
        assert alpha is not None and alpha["taken_over_by"] is None

        async def completed() -> bool:
            """The job is completed and DBOS has recorded the end of its run and every chain: the job row
            is written inside the run's last step, a moment before DBOS records that the run ended."""
            [(status,)] = await asyncio.to_thread(db_rows, db, "SELECT status FROM jobs WHERE id = ?", job_id)
            assert status in ("running", "composing", "completed"), (tmp_path / "bravo.log").read_text()
            sql = "SELECT status FROM workflow_status WHERE workflow_uuid LIKE ?"
            flows = await asyncio.to_thread(dbos_rows, data, sql, f"{job_id}%")
            return status == "completed" and {s for (s,) in flows} == {"SUCCESS"}

        await eventually(completed, timeout=90, what="bravo finishing alpha's job")
        bravo.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(bravo.wait(), 15) == 0, (tmp_path / "bravo.log").read_text()
    finally:
        await stop(bravo)
        if makead is not None:
            await stop(makead)
    out = " ".join((tmp_path / "bravo.log").read_text().split())
    assert "Worker bravo took over worker alpha" in out and job_id in out, out

    # Nothing was paid for twice: no create after the kill, the clips alpha paid for were polled to the end.
    assert rep.counts.creates == before
    assert {p.status for p in rep.predictions.values() if p.model.ref == SVD} == {"succeeded"}
    # Exactly one claim, by bravo, no sooner than alpha's last beat + JANT_WORKER_TAKEOVER_S.
    alpha = await lease(db, "alpha")
    assert alpha is not None and alpha["taken_over_by"] == "bravo" and alpha["takeover_done_at"] is not None
    silent_s = (_at(alpha["taken_over_at"]) - _at(alpha["heartbeat_at"])).total_seconds()
    assert 3.0 <= silent_s < 3.0 + 15, silent_s  # the upper bound only rules out a takeover by some other path
    events = await asyncio.to_thread(
        db_rows, db, "SELECT detail FROM events WHERE job_id = ? AND kind = 'taken_over'", job_id
    )
    assert len(events) == 1 and str(events[0][0]).startswith("from worker alpha (silent "), events
    assert "by worker bravo" in str(events[0][0])

    # Every workflow of the job finished; the ones alpha left pending ran on bravo, through the queue only
    # taking-over workers serve.
    flows = await asyncio.to_thread(
        dbos_rows, data, "SELECT status, executor_id, queue_name FROM workflow_status WHERE workflow_uuid LIKE ?",
        f"{job_id}%",
    )  # fmt: skip
    assert {s for s, _, _ in flows} == {"SUCCESS"}
    resumed = {(e, q) for _, e, q in flows if e != "alpha"}
    assert resumed == {("bravo", "jant.takeover")}, flows
    # No step DBOS had recorded ran again; each one it had not ran exactly once more (a clip in flight
    # at the kill polled the prediction it had created).
    ran = await steps_run(db, job_id)
    assert not {(i, "clip", "jant.wait") for i in range(1, SCENES + 1)} & recorded  # in flight at the kill
    for step, n in ran.items():
        assert n == ran_before[step] + (0 if step in recorded else 1), (step, n, ran_before[step])
    assert set(ran) >= recorded | {(i, "clip", "jant.normalise") for i in range(1, SCENES + 1)}
    [(final,)] = await asyncio.to_thread(db_rows, db, "SELECT final_path FROM jobs WHERE id = ?", job_id)
    assert final is not None and await asyncio.to_thread(os.path.getsize, final) > 0


def _at(text: object) -> datetime:
    return datetime.fromisoformat(str(text))


async def test_a_worker_whose_id_was_taken_from_it_stops_and_says_why(tmp_path: Path) -> None:
    """A worker that stalled past the takeover delay has had its jobs taken over while it lived: its next
    beat finds the lease gone, and it must stop running jobs rather than run them beside the survivor."""
    data = tmp_path / "data"
    env, db = _offline_env(data, JANT_WORKER_HEARTBEAT_S="0.3", JANT_WORKER_TAKEOVER_S="60"), data / "jant.db"
    worker = await jant(env, tmp_path, tmp_path / "worker.log", "worker", "--id", "alpha")
    try:
        await eventually(lambda: holds(db, "alpha", worker.pid), timeout=30, what="the worker's lease")
        await _edit(data, "UPDATE workers SET taken_over_by = 'bravo', taken_over_at = heartbeat_at WHERE id = 'alpha'")
        assert await asyncio.wait_for(worker.wait(), 15) == 1
    finally:
        await stop(worker)
    said = " ".join((tmp_path / "worker.log").read_text().split())
    assert "Worker alpha stopped: another process took its id over" in said, said


async def test_the_default_id_is_the_hosts_and_the_same_for_every_start(tmp_path: Path) -> None:
    """Processes starting together on a fresh data directory must agree on the one default id, or a
    restart would not recover what the first start left."""
    for n in range(20):  # threads released together by a barrier: the file's creation races every round
        data = tmp_path / f"round-{n}"
        ids = await asyncio.to_thread(_default_ids_made_together, data, 6)
        assert len(set(ids)) == 1, ids
        assert await asyncio.to_thread(stored_worker_id, data) == ids[0]  # a later start: the same id
    host, suffix = ids[0].rsplit("-", 1)  # the host name (made safe) and a random suffix, in a file per host
    assert len(suffix) == 6 and host[0].isalnum()
    assert [p.name for p in (data / "worker-ids").iterdir()] == [host]


def _default_ids_made_together(data: Path, n: int) -> list[str]:
    barrier = threading.Barrier(n)

    def one() -> str:
        barrier.wait()
        return stored_worker_id(data)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: one(), range(n)))

"""Cancel from another process than the one making the job (JANT_ENGINE=dbos).

Story: a teammate queues an ad from the terminal (`jant makead --yes --no-worker`); a `jant worker`
makes it. While its five clips are processing on Replicate, someone runs `jant cancel <job>` in a
third terminal. The worker stops the job exactly as its own Cancel would: the clips in flight are
cancelled on Replicate, nothing more is created, the job and its unfinished stages are marked
cancelled, and its workflows end CANCELLED in DBOS (no later launch recovers them and pays). The
terminal following the job says it was cancelled. On SQLite and on Postgres. Beside it: an operator
who cancels the run with DBOS's own client gets the same Jant cancel.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.durable.orchestrator import DurableOrchestrator
from pipeline.errors import InvalidRequest
from pipeline.models import AdRequest, JobStatus
from pipeline.runtime import Runtime
from tests.bot_harness import eventually, scripted_providers
from tests.durable_processes import (
    PRODUCT,
    SCENES,
    dbos_runs,
    every_clip_generating,
    jant,
    rows,
    service_engine_env,
    stop,
)
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import FakeReplicate
from tests.scripted_providers import CopyComposer
from tests.service_fakes import SVD

pytest.importorskip("dbos", reason="the durable extra (`pip install 'jant[durable]'`) is not installed")


async def _making(
    tmp_path: Path, env: dict[str, str], db: Path | str, rep: FakeReplicate
) -> tuple[asyncio.subprocess.Process, asyncio.subprocess.Process, str, list[str], Counter[str]]:
    """A worker and a terminal following the job it makes, once the job's every clip is processing on
    Replicate: (worker, terminal, job id, the clips' prediction ids, Replicate's creates so far). The clips
    stay processing for a minute (they are cancelled long before: the test does not wait for it), so the
    cancel lands while they do even on a loaded host."""
    rep.set_latency(SVD, processing=60 / rep.time_factor)
    worker = await jant({**env, "JANT_WORKER_ID": "w1"}, tmp_path, tmp_path / "worker.log", "worker")
    makead = await jant(env, tmp_path, tmp_path / "makead.log", "makead", PRODUCT, "--yes", "--no-worker")
    try:
        job_id = await eventually(lambda: every_clip_generating(db, rep), timeout=90, what="every clip generating")
    except BaseException:
        await stop(makead)
        await stop(worker)
        raise
    sql = "SELECT prediction_id FROM stages WHERE job_id = ? AND stage = 'clip'"
    clips = [str(p) for (p,) in await rows(db, sql, job_id)]
    return worker, makead, job_id, clips, rep.counts.creates.copy()


async def _ended(tmp_path: Path, worker: asyncio.subprocess.Process, makead: asyncio.subprocess.Process) -> None:
    """The following terminal ends (the job ended cancelled: exit 1), then the worker is stopped cleanly."""
    try:
        assert await asyncio.wait_for(makead.wait(), 30) == 1, (tmp_path / "makead.log").read_text()
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(worker.wait(), 20) == 0, (tmp_path / "worker.log").read_text()
    finally:
        await stop(makead)
        await stop(worker)


async def _cancelled_as_a_local_cancel(
    tmp_path: Path, db: Path | str, rep: FakeReplicate, job_id: str, clips: list[str], creates: Counter[str], by: str
) -> list[tuple[object, ...]]:
    """What a local cancel leaves, checked from outside; returns the job's cancel events."""
    data = tmp_path / "data"
    assert f"Job {job_id} cancelled: Cancelled." in " ".join((tmp_path / "makead.log").read_text().split())

    # Replicate: every clip in flight was cancelled, and nothing was created after the cancel.
    assert len(clips) == SCENES
    assert {rep.predictions[p].status for p in clips} == {"canceled"}
    assert rep.counts.cancels >= SCENES
    assert rep.counts.creates == creates
    assert {p.status for p in rep.predictions.values() if p.model.ref == SVD} == {"canceled"}

    # Jant's tables: the job and its clips cancelled (by `by`), the finished stages kept.
    [(status, error)] = await rows(db, "SELECT status, error FROM jobs WHERE id = ?", job_id)
    assert (status, error) == ("cancelled", "Cancelled.")
    stages = await rows(db, "SELECT stage, status FROM stages WHERE job_id = ?", job_id)
    assert {s for k, s in stages if k == "clip"} == {"cancelled"}
    assert {s for k, s in stages if k in ("seed", "voice", "music")} == {"done"}
    events = await rows(db, "SELECT kind, detail FROM events WHERE job_id = ? AND kind LIKE 'cancel%' ORDER BY id",
                        job_id)  # fmt: skip
    assert events[-1] == ("cancelled", by) and [k for k, _ in events].count("cancelled") == 1, events

    # DBOS: the run and every chain still working (the clips') ended CANCELLED, the finished ones
    # (voice, music) SUCCESS: nothing is left for a launch to recover.
    flows = dict(await dbos_runs(db, data, "SELECT workflow_uuid, status FROM workflow_status WHERE workflow_uuid "
                                           "LIKE ?", f"{job_id}%"))  # fmt: skip
    assert flows.pop(job_id) == "CANCELLED"
    assert {w: s for w, s in flows.items() if w.endswith("/seed")} == {
        f"{job_id}/{i}/seed": "CANCELLED" for i in range(1, SCENES + 1)
    }
    assert set(flows.values()) == {"CANCELLED", "SUCCESS"}, flows
    return events


async def test_jant_cancel_stops_a_job_a_worker_is_making_as_a_local_cancel_would(
    emulators: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path, database: Path | str
) -> None:
    oai, rep = emulators
    env = service_engine_env(oai, rep, tmp_path / "data", db=database if isinstance(database, str) else None)
    worker, makead, job_id, clips, creates = await _making(tmp_path, env, database, rep)
    try:
        cancel = await jant(env, tmp_path, tmp_path / "cancel.log", "cancel", job_id)
        assert await asyncio.wait_for(cancel.wait(), 60) == 0, (tmp_path / "cancel.log").read_text()
    finally:
        await _ended(tmp_path, worker, makead)
    assert f"Job {job_id} cancelled." in " ".join((tmp_path / "cancel.log").read_text().split())
    events = await _cancelled_as_a_local_cancel(tmp_path, database, rep, job_id, clips, creates, by="cli")
    # By the worker answering the request (not by the front end giving up on it).
    assert events == [("cancel_requested", f"{job_id} cli"), ("cancelled", "cli")], events


def _cancel_in_dbos(data: Path, run_id: str) -> None:
    """What an operator does with DBOS's own client: cancel the run (not its children)."""
    from dbos import DBOSClient

    client = DBOSClient(system_database_url=f"sqlite:///{data / 'dbos.sqlite'}", application_name="jant")
    try:
        client.cancel_workflow(run_id)
    finally:
        client.destroy()


async def test_a_run_cancelled_in_dbos_directly_is_cancelled_by_its_worker_as_jants_cancel(
    emulators: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path
) -> None:
    oai, rep = emulators
    data = tmp_path / "data"
    env = service_engine_env(oai, rep, data)
    worker, makead, job_id, clips, creates = await _making(tmp_path, env, data / "jant.db", rep)
    try:
        await asyncio.to_thread(_cancel_in_dbos, data, job_id)
    finally:
        await _ended(tmp_path, worker, makead)
    events = await _cancelled_as_a_local_cancel(tmp_path, data / "jant.db", rep, job_id, clips, creates, by="dbos")
    assert events == [("cancelled", "dbos")], events


async def test_a_cancel_pressed_as_the_ad_finished_leaves_the_finished_ad_alone(tmp_path: Path) -> None:
    """The race with a job's end, as a user meets it: the front end's view of the job is from before
    the worker finished it (the Cancel button of a status message not yet edited). The cancel is
    refused, saying why, and the job stays completed. In one process (the worker's and the front end's
    runtimes side by side, as tests/test_bot_no_worker.py does), scripted providers: no ffmpeg."""
    settings = Settings(JANT_DATA_DIR=tmp_path / "data", JANT_ENGINE="dbos", JANT_WORKER_ID="w1")
    worker = await Runtime.open(settings, scripted_providers(), runs_jobs=True, takes_queued=True)
    worker.orchestrator.composer = CopyComposer()  # type: ignore[assignment]
    front = await Runtime.open(settings, scripted_providers(), queues_jobs=True)
    try:
        orch = front.orchestrator
        job = await orch.create_job(AdRequest(product=PRODUCT, mood="tech"))
        await orch.plan(job)
        ended = await (await orch.approve(job, approved_by="alice"))  # queued, made by the worker, followed
        assert ended.status is JobStatus.COMPLETED and job.status is JobStatus.QUEUED  # `job`: the stale view
        with pytest.raises(InvalidRequest, match="only a job awaiting approval, queued, running or composing"):
            await orch.cancel(job, by="alice")
        stored = await front.store.get(job.id)
        assert stored is not None and stored.status is JobStatus.COMPLETED and stored.final_path
        assert "cancelled" not in [e["kind"] for e in await front.store.events(job.id)]
    finally:
        await front.close()
        await worker.close()


async def test_a_chain_step_finding_its_job_let_go_by_a_shutdown_stops_as_the_shutdown_stops_it(
    tmp_path: Path,
) -> None:
    """A shutdown cancels a job's task and its workflows' tasks together: the job can be let go of while
    a chain is between two steps. The chain's next step then stops as a shutdown stops any (left PENDING
    for the next launch), not with a KeyError that DBOS recorded as the chain's outcome and that failed
    the job after the restart. Outside a shutdown, a job missing from its own workflow is a bug, said so."""
    settings = Settings(JANT_DATA_DIR=tmp_path / "data", JANT_ENGINE="dbos", JANT_WORKER_ID="w1")
    runtime = await Runtime.open(settings, scripted_providers(), runs_jobs=True)
    orch = runtime.orchestrator
    assert isinstance(orch, DurableOrchestrator)
    try:
        orch._live_ready["j-gone"] = asyncio.Event()
        orch._live_ready["j-gone"].set()
        with pytest.raises(RuntimeError, match="not loaded in this process"):
            await orch._live_job("j-gone")
        await orch.shutdown()
        with pytest.raises(asyncio.CancelledError):
            await orch._live_job("j-gone")
    finally:
        await runtime.close()

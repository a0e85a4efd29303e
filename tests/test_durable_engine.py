"""JANT_ENGINE=dbos: a job run is a DBOS workflow and each stage a step (docs/durable-jobs.md).

Story: a teammate runs `jant makead --yes` on the durable engine against the Replicate emulator; the
process is killed with SIGKILL while every clip is generating on Replicate. `jant worker
--until-idle` (same worker id) is started: DBOS recovers the run, the finished steps are replayed
from the database instead of run again, the clip steps that were in flight run again and poll the
predictions they had already paid for, and the ad is finished — the emulator counts zero duplicate
creates. Beside it: nothing launches DBOS unless the setting asks for it and the process runs jobs.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.ffmpeg import probe
from pipeline.models import AdRequest, JobStatus
from pipeline.orchestrator import Orchestrator
from pipeline.runtime import Runtime
from tests.bot_harness import eventually
from tests.durable_processes import (
    MUSIC,
    PRODUCT,
    REPO,
    SCENES,
    TTS,
    dbos_rows,
    dbos_runs,
    every_clip_generating,
    jant,
    recorded_steps,
    rows,
    service_engine_env,
)
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import FakeReplicate
from tests.service_fakes import SDXL, SVD
from tests.test_bot_restart import db_rows

pytest.importorskip("dbos", reason="the durable extra (`pip install 'jant[durable]'`) is not installed")


async def test_a_kill_9_mid_clip_is_finished_by_the_worker_with_zero_duplicate_creates(
    emulators: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path, database: Path | str
) -> None:
    """On SQLite (the default) and on Postgres (JANT_DATABASE_URL: Jant's tables and DBOS's there)."""
    oai, rep = emulators
    data = tmp_path / "data"
    env, db = service_engine_env(oai, rep, data, db=database), database

    makead = await jant(env, tmp_path, tmp_path / "makead.log", "makead", PRODUCT, "--yes")
    try:
        job_id = await eventually(lambda: every_clip_generating(db, rep), timeout=60, what="every clip generating")
        makead.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(makead.wait(), 10) == -signal.SIGKILL
    finally:
        if makead.returncode is None:
            makead.kill()
            await makead.wait()
    killed_mid = {p.id for p in rep.predictions.values() if p.model.ref == SVD and p.status == "processing"}
    assert len(killed_mid) == SCENES, (tmp_path / "makead.log").read_text()
    before = rep.counts.creates.copy()
    assert before == {SDXL: SCENES, SVD: SCENES, TTS: SCENES, MUSIC: 1}
    # What had not finished at the kill (the clips, and on a slow host a line or the music bed whose stage
    # was done but whose step DBOS had not yet recorded): those steps run again on recovery, polling the
    # prediction they had created; the others must not.
    sql = "SELECT scene_index, stage FROM stages WHERE job_id = ? AND status != 'done'"
    unfinished = set(await rows(db, sql, job_id))
    recorded = await recorded_steps(db, data, job_id)
    every = await rows(db, "SELECT scene_index, stage FROM stages WHERE job_id = ?", job_id)
    unfinished |= {(i, kind) for i, kind in every if (i, kind, "jant.stage") not in recorded}
    # DBOS has the run as unfinished, owned by this worker id, at the pinned version.
    sql = "SELECT status, executor_id, application_version FROM workflow_status WHERE workflow_uuid = ?"
    [run] = await dbos_runs(db, data, sql, job_id)
    # The worker id nobody set: this host's, kept in the data directory so that a restart has it too.
    [id_file] = (data / "worker-ids").iterdir()
    assert run == ("PENDING", id_file.read_text().strip(), "jant-workflows-1")

    worker = await jant(env, tmp_path, tmp_path / "worker.log", "worker", "--until-idle")
    try:
        assert await asyncio.wait_for(worker.wait(), 120) == 0, (tmp_path / "worker.log").read_text()
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    out = (tmp_path / "worker.log").read_text()
    assert f"Job {job_id}: completed" in out, out
    # Restarted with the killed process's id, it took the id at once (that pid is gone from this host)
    # and DBOS recovered the job at launch: no survivor's takeover was waited for.
    assert f"(the id was free: its process (pid {makead.pid}) is gone)" in " ".join(out.split()), out
    assert not await rows(db, "SELECT 1 FROM events WHERE job_id = ? AND kind = 'taken_over'", job_id)

    # Zero duplicate creates: nothing was created after the kill; the clips paid for were polled to the end.
    assert rep.counts.creates == before
    assert killed_mid == {p.id for p in rep.predictions.values() if p.model.ref == SVD and p.status == "succeeded"}
    sql = "SELECT prediction_id, status, attempt FROM stages WHERE job_id = ? AND stage = 'clip'"
    clips = await rows(db, sql, job_id)
    assert {r[0] for r in clips} == killed_mid and {(r[1], r[2]) for r in clips} == {("done", 1)}
    [(status, final)] = await rows(db, "SELECT status, final_path FROM jobs WHERE id = ?", job_id)
    assert status == "completed"
    info = await probe(Path(str(final)))
    assert info.duration_s is not None and 28.5 <= info.duration_s <= 31.5
    assert (info.width, info.height) == (720, 1280) and info.has_audio  # JANT_ENV=dev, with the voice and music

    # The run and every chain finished in DBOS; each finished step ran once, the clips' twice (in flight
    # at the kill: run again, polling the same prediction), and nothing else ran again.
    statuses = await dbos_runs(
        db, data, "SELECT workflow_uuid, status FROM workflow_status WHERE workflow_uuid LIKE ?", f"{job_id}%"
    )
    assert {s for _, s in statuses} == {"SUCCESS"} and len(statuses) == 1 + 1 + 2 * SCENES  # run, music, seed+voice
    sql = "SELECT scene_index, stage, detail FROM events WHERE job_id = ? AND kind = 'dbos_step'"
    steps = await rows(db, sql, job_id)
    ran = Counter((scene, stage, str(detail).split()[0]) for scene, stage, detail in steps)
    assert {(i, "clip") for i in range(1, SCENES + 1)} <= unfinished
    stages = [(0, "music"), *((i, kind) for i in range(1, SCENES + 1) for kind in ("seed", "voice", "clip"))]
    expected = Counter({(i, kind, "jant.stage"): 2 if (i, kind) in unfinished else 1 for i, kind in stages})
    expected.update({(i, "clip", "jant.normalise"): 1 for i in range(1, SCENES + 1)})
    assert ran == expected
    if isinstance(db, str):  # on Postgres, neither database is a file
        assert not (data / "dbos.sqlite").exists() and not (data / "jant.db").exists()


async def test_the_engine_is_only_launched_by_a_process_that_runs_jobs(tmp_path: Path) -> None:
    settings = Settings(JANT_ENGINE="dbos", JANT_DATA_DIR=str(tmp_path / "data"), JANT_OFFLINE="1")
    listing = await Runtime.open(settings)  # `jant jobs`, `jant show`: must not recover (start) anybody's jobs
    try:
        assert type(listing.orchestrator) is Orchestrator and not listing.durable
    finally:
        await listing.close()
    assert not (tmp_path / "data" / "dbos.sqlite").exists()
    default = await Runtime.open(Settings(JANT_DATA_DIR=str(tmp_path / "d2"), JANT_OFFLINE="1"), runs_jobs=True)
    try:  # the default engine, even for a process that runs jobs
        assert type(default.orchestrator) is Orchestrator and not default.durable
    finally:
        await default.close()
    assert not (tmp_path / "d2" / "dbos.sqlite").exists()


async def test_jant_worker_says_it_needs_the_durable_engine(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REPLICATE_", "JANT_", "DISCORD_"))}
    env.update(JANT_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(REPO), COLUMNS="200")
    worker = await jant(env, tmp_path, tmp_path / "worker.log", "worker", "--until-idle")
    assert await asyncio.wait_for(worker.wait(), 60) == 2
    assert "JANT_ENGINE is not `dbos`" in (tmp_path / "worker.log").read_text()


async def test_cancelling_a_durable_job_cancels_its_clips_and_no_later_launch_runs_it_again(
    emulators: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path
) -> None:
    """Ctrl-C in `jant makead` cancels the job: on this engine its workflows must be cancelled in DBOS
    too, or the next `jant worker` would recover the run and pay for the ad after all."""
    oai, rep = emulators
    data = tmp_path / "data"
    settings = Settings(**service_engine_env(oai, rep, data))
    rt = await Runtime.open(settings, runs_jobs=True)
    try:
        assert rt.durable
        orch = rt.orchestrator
        job = await orch.create_job(AdRequest(product=PRODUCT, mood="tech"))
        await orch.plan(job)
        task = await orch.approve(job)
        job_id = await eventually(lambda: every_clip_generating(data / "jant.db", rep), timeout=60,
                                  what="every clip generating")  # fmt: skip
        assert job_id == job.id
        await asyncio.wait_for(orch.cancel(job, by="cli interrupt"), 15)
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 15)
        assert task.cancelled()  # as on the local engine: the run's task ends cancelled
        stored = await rt.store.get(job.id)
    finally:
        await rt.close()
    assert stored is not None and stored.status is JobStatus.CANCELLED
    clips = {p.id for p in rep.predictions.values() if p.model.ref == SVD}
    assert len(clips) == SCENES and {rep.predictions[i].status for i in clips} == {"canceled"}
    assert {stored.scene(i).clip.status.value for i in range(1, SCENES + 1)} == {"cancelled"}
    statuses = dict(
        await asyncio.to_thread(
            dbos_rows,
            data,
            "SELECT workflow_uuid, status FROM workflow_status WHERE workflow_uuid LIKE ?",
            f"{job.id}%",
        )
    )
    assert statuses[job.id] == "CANCELLED" and "PENDING" not in statuses.values()
    before = rep.counts.creates.copy()

    env = service_engine_env(oai, rep, data)
    worker = await jant(env, tmp_path, tmp_path / "worker.log", "worker", "--until-idle")
    assert await asyncio.wait_for(worker.wait(), 60) == 0, (tmp_path / "worker.log").read_text()
    assert rep.counts.creates == before  # nothing recovered, nothing paid again
    [(status,)] = await asyncio.to_thread(db_rows, data / "jant.db", "SELECT status FROM jobs WHERE id = ?", job.id)
    assert status == "cancelled"


async def test_a_worker_stopped_by_sigterm_leaves_its_jobs_to_the_next_one_and_nothing_is_paid_twice(
    emulators: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path
) -> None:
    oai, rep = emulators
    rep.set_latency(SVD, processing=30 / rep.time_factor)  # the clips outlast a worker's start on a busy host
    data = tmp_path / "data"
    env, db = service_engine_env(oai, rep, data), data / "jant.db"
    makead = await jant(env, tmp_path, tmp_path / "makead.log", "makead", PRODUCT, "--yes")
    try:
        job_id = await eventually(lambda: every_clip_generating(db, rep), timeout=60, what="every clip generating")
    finally:
        makead.kill()
        await makead.wait()
    before = rep.counts.creates.copy()

    async def clips_resumed() -> bool:  # the recovered clip steps run again: each has a second execution
        sql = "SELECT COUNT(*) FROM events WHERE job_id = ? AND kind = 'dbos_step' AND stage = 'clip'"
        [(n,)] = await asyncio.to_thread(db_rows, db, sql, job_id)
        return n == 2 * SCENES

    first = await jant(env, tmp_path, tmp_path / "worker-1.log", "worker")
    try:
        await eventually(clips_resumed, timeout=30, what="the worker resuming the clips")
        assert {p.status for p in rep.predictions.values() if p.model.ref == SVD} == {"processing"}
        first.send_signal(signal.SIGTERM)
        started = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(first.wait(), 15) == 0, (tmp_path / "worker-1.log").read_text()
        stopped_in = asyncio.get_running_loop().time() - started
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    assert stopped_in < 10
    [(run,)] = await asyncio.to_thread(
        dbos_rows, data, "SELECT status FROM workflow_status WHERE workflow_uuid = ?", job_id
    )
    assert run == "PENDING"  # left for the next worker, not failed or cancelled
    clips = await asyncio.to_thread(
        db_rows, db, "SELECT status FROM stages WHERE job_id = ? AND stage = 'clip'", job_id
    )
    assert {c for (c,) in clips} == {"running"}  # their predictions were not cancelled: they are still paid for

    second = await jant(env, tmp_path, tmp_path / "worker-2.log", "worker", "--until-idle")
    assert await asyncio.wait_for(second.wait(), 120) == 0, (tmp_path / "worker-2.log").read_text()
    assert f"Job {job_id}: completed" in (tmp_path / "worker-2.log").read_text()
    assert rep.counts.creates == before
    assert {p.status for p in rep.predictions.values() if p.model.ref == SVD} == {"succeeded"}

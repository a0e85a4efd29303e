"""JANT_ENGINE=dbos: a job run is a DBOS workflow, each attempt at a stage a create step and a wait
step (docs/durable-jobs.md).

Story: a teammate runs `jant makead --yes` on the durable engine against the Replicate emulator; the
process is killed with SIGKILL after every clip's create step is checkpointed, while the clips are
generating on Replicate. `jant worker --until-idle` (same worker id) is started: DBOS recovers the
run, the finished steps — the clips' creates among them — are replayed from the database instead of
run again, the clips' wait steps run again and poll the predictions already paid for, and the ad is
finished: the emulator counts zero duplicate creates. Beside it: nothing launches DBOS unless the
setting asks for it and the process runs jobs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main as cli_main
from pipeline.config import Settings
from pipeline.durable.engine import APPLICATION_VERSION
from pipeline.ffmpeg import probe
from pipeline.models import AdRequest, JobStatus
from pipeline.orchestrator import Orchestrator
from pipeline.providers.base import AttemptStep
from pipeline.runtime import Runtime
from tests.bot_harness import eventually
from tests.durable_processes import (
    END_STEPS,
    MUSIC,
    PRODUCT,
    SCENES,
    TTS,
    checkpointed,
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
from tests.scripted_providers import CopyComposer, scene_of
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
    # Each scene's chain is "<run>/<scene>/seed": the seed's create and wait, then the clip's create.
    assert await checkpointed(db, data, "jant.create", "/seed") == 2 * SCENES
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
    unfinished |= {(i, kind) for i, kind in every if (i, kind, "jant.wait") not in recorded}
    # DBOS has the run as unfinished, owned by this worker id, at the pinned version.
    sql = "SELECT status, executor_id, application_version FROM workflow_status WHERE workflow_uuid = ?"
    [run] = await dbos_runs(db, data, sql, job_id)
    # The worker id nobody set: this host's, kept in the data directory so that a restart has it too.
    [id_file] = (data / "worker-ids").iterdir()
    assert run == ("PENDING", id_file.read_text().strip(), APPLICATION_VERSION)

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

    # The run and every chain finished in DBOS; each step finished before the kill ran once — every
    # create among them —, the waits in flight at the kill twice (polling the same prediction).
    statuses = await dbos_runs(
        db, data, "SELECT workflow_uuid, status FROM workflow_status WHERE workflow_uuid LIKE ?", f"{job_id}%"
    )
    assert {s for _, s in statuses} == {"SUCCESS"} and len(statuses) == 1 + 1 + 2 * SCENES  # run, music, seed+voice
    # The run starts its chains side by side, but they take their places among its operations in its
    # fixed order (the recovery above replayed them by place): the job's own, then scene by scene.
    sql = (
        "SELECT function_id, child_workflow_id FROM operation_outputs WHERE workflow_uuid = ?"
        " AND function_name = 'jant.stage_chain' ORDER BY function_id"
    )
    starts = await dbos_runs(db, data, sql, job_id)
    in_order = [f"{job_id}/0/music", *(f"{job_id}/{i}/{k}" for i in range(1, SCENES + 1) for k in ("seed", "voice"))]
    assert [chain for _, chain in starts] == in_order
    sql = "SELECT scene_index, stage, detail FROM events WHERE job_id = ? AND kind = 'dbos_step'"
    steps = await rows(db, sql, job_id)
    ran = Counter((scene, stage, str(detail).split()[0]) for scene, stage, detail in steps)
    assert {(i, "clip") for i in range(1, SCENES + 1)} <= unfinished
    stages = [(0, "music"), *((i, kind) for i in range(1, SCENES + 1) for kind in ("seed", "voice", "clip"))]
    expected = Counter({(i, kind, "jant.create"): 1 for i, kind in stages})
    expected.update({(i, kind, "jant.wait"): 2 if (i, kind) in unfinished else 1 for i, kind in stages})
    expected.update({(i, "clip", "jant.normalise"): 1 for i in range(1, SCENES + 1)})
    expected.update({(None, None, step): 1 for step in END_STEPS})
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


async def test_jant_worker_says_it_needs_the_durable_engine(capsys: pytest.CaptureFixture[str]) -> None:
    assert "JANT_ENGINE" not in os.environ  # conftest: the local engine, the default
    # The CLI's entry point in this process (in a thread: it runs its own event loop), no interpreter start.
    code = await asyncio.to_thread(cli_main, ["worker", "--until-idle"])
    assert code == 2
    assert "JANT_ENGINE is not `dbos`" in capsys.readouterr().err


async def test_dboss_sqlite_file_is_in_wal_and_its_checkpoints_do_not_sync_the_disk_each(tmp_path: Path) -> None:
    """Whoever opens DBOS's SQLite file first — a worker or a front end that only queues — it is in WAL
    before DBOS creates its tables, and a worker's DBOS connections commit with synchronous=NORMAL: in
    the rollback journal each checkpoint synced the disk under the only write lock, and fifty jobs'
    checkpoints queued for it (benchmarks/README.md, "Jobs on DBOS workers")."""
    from dbos._dbos import _get_dbos_instance  # DBOS's own connections: not exported in 3.4

    from pipeline.durable.job_queue import JobQueue

    def journal_mode(path: Path) -> str:
        conn = sqlite3.connect(path)
        try:
            return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
        finally:
            conn.close()

    worker_settings = Settings(JANT_ENGINE="dbos", JANT_DATA_DIR=str(tmp_path / "w"), JANT_OFFLINE="1")
    worker = await Runtime.open(worker_settings, runs_jobs=True, worker_id="w1", takes_queued=True)
    try:
        with _get_dbos_instance()._sys_db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL (FULL is 2)
    finally:
        await worker.close()
    assert await asyncio.to_thread(journal_mode, tmp_path / "w" / "dbos.sqlite") == "wal"

    front = await JobQueue.open(Settings(JANT_ENGINE="dbos", JANT_DATA_DIR=str(tmp_path / "f"), JANT_OFFLINE="1"))
    await front.close()
    assert await asyncio.to_thread(journal_mode, tmp_path / "f" / "dbos.sqlite") == "wal"


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

    async def clips_resumed() -> bool:  # the recovered clips' wait steps run again: each has a second execution
        sql = (
            "SELECT COUNT(*) FROM events WHERE job_id = ? AND kind = 'dbos_step' AND stage = 'clip'"
            " AND detail LIKE 'jant.wait %'"
        )
        [(n,)] = await asyncio.to_thread(db_rows, db, sql, job_id)
        return n == 2 * SCENES

    first = await jant(env, tmp_path, tmp_path / "worker-1.log", "worker")
    try:
        await eventually(clips_resumed, timeout=60, what="the worker resuming the clips")
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


async def test_a_create_step_stopped_after_its_post_waits_for_that_prediction_instead_of_paying_again(
    emulators: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path
) -> None:
    """The one place a kill can leave a prediction DBOS has not heard of: after the create's POST was
    answered and its id stored in Jant's tables, before DBOS checkpointed the step. The step then runs
    again on recovery; it must hand the stored id to the wait step, not POST again, and not wait
    itself (it would hold the attempt's create step open for the whole prediction)."""
    oai, rep = emulators
    rep.set_latency(SVD, processing=10)  # no kill here: the clips need not be held
    data = tmp_path / "data"
    rt = await Runtime.open(Settings(**service_engine_env(oai, rep, data)), runs_jobs=True)
    try:
        orch = rt.orchestrator
        orch.composer = CopyComposer()  # the story is the steps'; no ffmpeg needed
        job = await orch.create_job(AdRequest(product=PRODUCT, mood="tech"))
        await orch.plan(job)
        assert job.storyboard is not None
        seed = job.scene(1).seed
        # The create step's own body, outside any workflow: what a create step killed after its POST
        # leaves behind — the prediction made and stored in Jant's tables, nothing checkpointed in DBOS.
        made = await orch._attempt(job, seed, job.storyboard.scenes[0], {}, step=AttemptStep.CREATE)
        assert made.created is not None and made.created in rep.predictions and rep.counts.creates[SDXL] == 1
        done = await asyncio.wait_for(await orch.approve(job), 60)
        events = await rt.store.events(job.id)
        stored = await rt.store.predictions(job.id)
    finally:
        await rt.close()
    assert done.status is JobStatus.COMPLETED, done.error
    assert rep.counts.creates[SDXL] == SCENES  # that one and the other scenes' seeds: none twice
    assert (done.scene(1).seed.prediction_id, done.scene(1).seed.attempt) == (made.created, 1)
    assert [p["prediction_id"] for p in stored if (p["scene_index"], p["stage"]) == (1, "seed")] == [made.created]
    steps = Counter(str(e["detail"]).split()[0] for e in events if e["kind"] == "dbos_step" and
                    (e["scene_index"], e["stage"]) == (1, "seed"))  # fmt: skip
    assert steps == {"jant.create": 1, "jant.wait": 1}  # the step ran, found the prediction, and handed it on


class _BrokenCutter(CopyComposer):
    """Cuts every scene but the first, whose cut raises what no code expects (a bug)."""

    async def normalize_clip(self, src: Path, dst: Path, duration: float, **options: Any) -> Path:
        if scene_of(src) == 1:
            raise RuntimeError("the cutter broke")
        return await super().normalize_clip(src, dst, duration, **options)


async def test_a_chain_that_crashes_fails_the_job_and_leaves_no_workflow_for_a_later_launch(
    emulators: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path
) -> None:
    """As on the local engine, a chain that raises stops the others and the job fails with a reason.
    Here the others are workflows of their own: stopped, they would stay PENDING and the next launch
    would recover them and pay for a job that has failed; they must be cancelled in DBOS too."""
    oai, rep = emulators
    rep.set_latency(SVD, processing=10)
    rep.set_latency(MUSIC, processing=600)  # the music bed is still generating when scene 1's cut breaks
    data = tmp_path / "data"
    rt = await Runtime.open(Settings(**service_engine_env(oai, rep, data)), runs_jobs=True)
    try:
        orch = rt.orchestrator
        orch.composer = _BrokenCutter()
        job = await orch.create_job(AdRequest(product=PRODUCT, mood="tech"))
        await orch.plan(job)
        done = await asyncio.wait_for(await orch.approve(job), 60)
    finally:
        await rt.close()
    assert done.status is JobStatus.FAILED and done.error is not None
    assert done.error.startswith("The ad could not be made: an unexpected error (logged as ")
    [music] = [p for p in rep.predictions.values() if p.model.ref == MUSIC]
    assert music.status == "canceled"  # the job's paid work in flight was cancelled, as on the local engine
    statuses = dict(
        await asyncio.to_thread(
            dbos_rows, data, "SELECT workflow_uuid, status FROM workflow_status WHERE workflow_uuid LIKE ?",
            f"{job.id}%",
        )
    )  # fmt: skip
    assert statuses[f"{job.id}/1/seed"] == "ERROR" and statuses[f"{job.id}/0/music"] == "CANCELLED"
    assert "PENDING" not in statuses.values(), statuses

"""A worker killed -9 while Replicate holds the answer to a create it accepted pays for it once.

Story: `jant makead --yes` on the durable engine (worker id alpha, SQLite or Postgres) sends a clip's
create; Replicate (the emulator) accepts it, counts it, runs it, and holds its answer back. The process
is killed -9 before the answer, so the prediction's id never reached the database, only the create's
intent (written before the POST). `jant worker --id alpha --until-idle` recovers the run: the re-run
`jant.create` step finds that prediction in Replicate's list by the intent, records it and waits for it.
Replicate counts exactly one clip create per scene, and the ad is made with the held prediction's clip.
(The local engine's restart: tests/test_bot_restart.py; the lookup itself: tests/test_create_intents.py.)
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from pipeline.providers.replicate_intents import fingerprint
from tests.bot_harness import eventually
from tests.durable_processes import PRODUCT, SCENES, jant, rows, service_engine_env, steps_run, stop
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import SVD_VERSION, FakeReplicate
from tests.service_fakes import SDXL, SVD

pytest.importorskip("dbos", reason="the durable extra (`pip install 'jant[durable]'`) is not installed")


async def _held(rep: FakeReplicate) -> str | None:
    return next(iter(rep.holding), None)


@pytest.mark.timeout(180)
async def test_a_kill_while_replicate_holds_a_clips_create_answer_is_resumed_on_that_prediction(
    emulators: tuple[FakeOpenAI, FakeReplicate], database: Path | str, tmp_path: Path
) -> None:
    oai, rep = emulators
    rep.set_latency(SVD, processing=1.0 / rep.time_factor)  # 1 s a clip: this story needs no kill window
    rep.script(SVD, "held:120")  # the first clip's create: accepted, its answer held back
    data = tmp_path / "data"
    env = service_engine_env(
        oai, rep, data, db=database if isinstance(database, str) else None, JANT_WORKER_ID="alpha",
        JANT_VOICE="none", JANT_MUSIC="none",
    )  # fmt: skip
    makead = await jant(env, tmp_path, tmp_path / "makead.log", "makead", PRODUCT, "--yes")
    worker = None
    try:
        held = await eventually(lambda: _held(rep), timeout=90, what="a clip's create held by Replicate")
        makead.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(makead.wait(), 10) == -signal.SIGKILL
        rep.release_held()  # to a dead socket: the id never reaches the killed process

        # What the kill left: the create's intent, which names exactly the prediction Replicate accepted,
        # on a clip stage still running with no id (other clips' creates may have been on their way too).
        intents = await rows(
            database, "SELECT job_id, scene_index, model, fingerprint, attempt FROM prediction_intents"
            " WHERE stage = 'clip'",
        )  # fmt: skip
        [(job_id, scene)] = [
            (job, i) for job, i, model, fp, attempt in intents
            if (model, fp, attempt) == (SVD_VERSION, fingerprint(rep.predictions[held].input), 1)
        ]  # fmt: skip
        [(status, stored)] = await rows(
            database, "SELECT status, prediction_id FROM stages WHERE job_id = ? AND scene_index = ?"
            " AND stage = 'clip'", job_id, scene,
        )  # fmt: skip
        assert (status, stored) == ("running", None)
        creates = rep.counts.creates[SVD]

        worker = await jant(env, tmp_path, tmp_path / "worker.log", "worker", "--id", "alpha", "--until-idle")
        assert await asyncio.wait_for(worker.wait(), 120) == 0, (tmp_path / "worker.log").read_text()
    finally:
        await stop(makead)
        if worker is not None:
            await stop(worker)

    log = (tmp_path / "worker.log").read_text()
    [(job_status, final)] = await rows(database, "SELECT status, final_path FROM jobs WHERE id = ?", job_id)
    assert job_status == "completed" and final is not None, log
    assert await asyncio.to_thread(lambda: Path(str(final)).stat().st_size) > 0
    # One clip create per scene: the held one was never sent again, and the clips created after the kill
    # are the other scenes' (their creates had not been sent yet).
    assert rep.counts.creates[SVD] == SCENES and creates <= SCENES, log
    [(stage_prediction, stage_attempt)] = await rows(
        database, "SELECT prediction_id, attempt FROM stages WHERE job_id = ? AND scene_index = ? AND stage = 'clip'",
        job_id, scene,
    )  # fmt: skip
    assert (stage_prediction, stage_attempt) == (held, 1)
    assert rep.predictions[held].status == "succeeded"
    paid = await rows(database, "SELECT prediction_id FROM predictions WHERE job_id = ? AND stage = 'clip'", job_id)
    assert sorted(str(p) for (p,) in paid) == sorted(p.id for p in rep.predictions.values() if p.model.ref == SVD)
    assert await rows(database, "SELECT * FROM prediction_intents") == []
    # The re-run create step found the prediction (no second create) and its wait step polled it.
    ran = await steps_run(database, job_id)
    assert ran[(int(str(scene)), "clip", "jant.create")] == 2 and ran[(int(str(scene)), "clip", "jant.wait")] == 1


@pytest.mark.timeout(180)
async def test_a_kill_before_the_create_reached_replicate_creates_it_on_restart(
    emulators: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path
) -> None:
    """The other side of the intent: the POST never arrived (stuck on its way in when the process died),
    so Replicate's list has no such prediction and the resumed attempt creates it, once."""
    oai, rep = emulators
    rep.set_latency(SVD, processing=1.0 / rep.time_factor)
    rep.stall_creates(120)  # the first create (a seed's) reaches the server and is never accepted
    data = tmp_path / "data"
    env = service_engine_env(oai, rep, data, JANT_WORKER_ID="alpha", JANT_VOICE="none", JANT_MUSIC="none")
    makead = await jant(env, tmp_path, tmp_path / "makead.log", "makead", PRODUCT, "--yes")
    worker = None
    try:

        async def stalled() -> bool:
            return rep.stalled > 0

        await eventually(stalled, timeout=90, what="a create stalled on its way to Replicate")
        makead.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(makead.wait(), 10) == -signal.SIGKILL
        rep.release_held()  # the stalled request goes on, finds its client gone and is dropped

        async def dropped() -> bool:
            return rep.counts.dropped == 1

        await eventually(dropped, timeout=10, what="the stalled create dropped")
    finally:
        await stop(makead)
    db = data / "jant.db"
    accepted = {fingerprint(p.input) for p in rep.predictions.values()}
    intents = await rows(db, "SELECT job_id, scene_index, stage, fingerprint, attempt FROM prediction_intents")
    lost = [(job, i, kind) for job, i, kind, fp, attempt in intents if fp not in accepted and attempt == 1]
    # The stalled create, and any other whose POST the kill caught on its way in (a loaded host can have
    # a second seed's intent written and its request not yet accepted): none of them reached Replicate.
    assert len(lost) >= 1, (intents, len(accepted))
    [job_id] = {job for job, _, _ in lost}
    lists = rep.counts.lists
    try:
        worker = await jant(env, tmp_path, tmp_path / "worker.log", "worker", "--id", "alpha", "--until-idle")
        assert await asyncio.wait_for(worker.wait(), 120) == 0, (tmp_path / "worker.log").read_text()
    finally:
        if worker is not None:
            await stop(worker)
    log = (tmp_path / "worker.log").read_text()
    [(job_status,)] = await rows(db, "SELECT status FROM jobs WHERE id = ?", job_id)
    assert job_status == "completed", log
    assert rep.counts.lists > lists  # it looked before creating
    assert rep.counts.creates[SDXL] == rep.counts.creates[SVD] == SCENES, log  # one create per stage, all told
    for _, scene, kind in lost:
        [(made, attempt)] = await rows(
            db, "SELECT prediction_id, attempt FROM stages WHERE job_id = ? AND scene_index = ? AND stage = ?",
            job_id, scene, kind,
        )  # fmt: skip
        assert made in rep.predictions and attempt == 1
    assert await rows(db, "SELECT * FROM prediction_intents") == []

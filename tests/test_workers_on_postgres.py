"""Issue 15's acceptance story: a gateway's jobs made by two workers on Postgres, one of which dies.

Story: a team runs two `jant worker` processes (worker-1, worker-2) on one Postgres database
(JANT_DATABASE_URL), and three teammates each queue an ad at the same moment with `jant makead … --yes
--no-worker`. The workers take the jobs from the queue and make them on Replicate (the emulator). While
one worker's clips are processing on Replicate, that worker is killed with SIGKILL and nobody restarts
it. The other notices its silence after JANT_WORKER_TAKEOVER_S, takes its jobs over and finishes them:
all three ads are made, Replicate counts exactly one create per stage (nothing paid twice), no step
DBOS had recorded as finished runs again (the `dbos_step` events), and each terminal follows its ad to
the end and exits 0.
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections import Counter
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest

from pipeline.providers.replicate_intents import fingerprint
from tests.bot_harness import eventually
from tests.durable_processes import (
    END_STEPS,
    MUSIC,
    PRODUCT,
    SCENES,
    TTS,
    dbos_runs,
    holds,
    jant,
    lease,
    recorded_steps,
    rows,
    service_engine_env,
    steps_run,
    stop,
)
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import FakeReplicate
from tests.service_fakes import SDXL, SVD

pytest.importorskip("dbos", reason="the durable extra (`pip install 'jant[durable]'`) is not installed")

TAKEOVER_S = 6.0
ADS = 3
WORKERS = ("worker-1", "worker-2")


async def _a_worker_with_clips_processing(db: str, data: Path, rep: FakeReplicate) -> tuple[str, str] | None:
    """(worker, job) once every job is queued and some worker has a clip processing on Replicate. Nothing
    else is waited for: the worker may be in the middle of other creates (a seed's, a clip's, a line's),
    sent but not yet answered, and the kill pays for none of them twice (the creates' intents)."""
    try:
        sql = "SELECT workflow_uuid, executor_id FROM workflow_status WHERE name = 'jant.job'"
        runs = await dbos_runs(db, data, sql)
        stages = await rows(db, "SELECT job_id, prediction_id FROM stages WHERE stage = 'clip' AND status = 'running'")
    except asyncpg.UndefinedTableError:  # not migrated yet
        return None
    if len(runs) < ADS:
        return None
    for worker in WORKERS:
        mine = {str(run) for run, executor in runs if executor == worker}
        for job, prediction in stages:
            p = rep.predictions.get(str(prediction))
            if str(job) in mine and p is not None and p.status == "processing":
                return worker, str(job)
    return None


def _every_step_once() -> Counter[tuple[int | None, str | None, str]]:
    """The steps of a job no process died in: each stage's create and wait once, each clip's cut once,
    and the run's finish once."""
    stages = [(0, "music"), *((i, kind) for i in range(1, SCENES + 1) for kind in ("seed", "voice", "clip"))]
    once: Counter[tuple[int | None, str | None, str]] = Counter()
    once.update({(i, kind, step): 1 for i, kind in stages for step in ("jant.create", "jant.wait")})
    once.update({(i, "clip", "jant.normalise"): 1 for i in range(1, SCENES + 1)})
    once.update({(None, None, step): 1 for step in END_STEPS})
    return once


def _at(text: object) -> datetime:
    return datetime.fromisoformat(str(text))


@pytest.mark.timeout(300)
async def test_two_workers_three_queued_ads_one_worker_killed_the_survivor_finishes_with_nothing_paid_twice(
    emulators: tuple[FakeOpenAI, FakeReplicate], postgres_url: str, tmp_path: Path
) -> None:
    oai, rep = emulators
    # Every create is accepted at once and answered a second later (as a busy API may): a kill while a
    # worker's clips process often lands with some of its creates accepted, paid and not yet answered.
    rep.script_by(lambda ref, version, inp: "held:1")
    data, db = tmp_path / "data", postgres_url
    env = service_engine_env(
        oai, rep, data, db=db, JANT_WORKER_HEARTBEAT_S="0.5", JANT_WORKER_TAKEOVER_S=f"{TAKEOVER_S:g}"
    )
    procs: dict[str, asyncio.subprocess.Process] = {}
    logs = {name: tmp_path / f"{name}.log" for name in (*WORKERS, *(f"makead-{n}" for n in range(ADS)))}
    try:
        # Everything starts together: both workers and the three terminals race to migrate and to queue.
        for name in WORKERS:
            procs[name] = await jant(env, tmp_path, logs[name], "worker", "--id", name)
        for n in range(ADS):
            procs[f"makead-{n}"] = await jant(
                env, tmp_path, logs[f"makead-{n}"], "makead", PRODUCT, "--yes", "--no-worker"
            )
        victim, first_job = await eventually(
            lambda: _a_worker_with_clips_processing(db, data, rep), timeout=120, what="a worker's clips generating"
        )
        survivor = next(w for w in WORKERS if w != victim)
        held = await holds(db, survivor, procs[survivor].pid)
        assert held, logs[survivor].read_text()
        # A loaded host can stall a live worker past TAKEOVER_S before this point; the other worker then
        # took it over and it stopped: say so now rather than wait for ads nobody is making.
        assert held["taken_over_by"] is None, f"{survivor} was taken over while alive:\n{logs[survivor].read_text()}"
        procs[victim].send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(procs[victim].wait(), 10) == -signal.SIGKILL

        # What the dead worker left: its job runs, and per job the steps DBOS had recorded and the steps
        # that had run (read before the survivor may claim it: TAKEOVER_S after its last beat).
        sql = "SELECT workflow_uuid FROM workflow_status WHERE executor_id = ? AND name = 'jant.job'"
        left = {str(w) for (w,) in await dbos_runs(db, data, sql + " AND status = 'PENDING'", victim)}
        assert first_job in left
        recorded = {job_id: await recorded_steps(db, data, job_id) for job_id in left}
        ran_before = {job_id: await steps_run(db, job_id) for job_id in left}
        sql = "SELECT job_id, scene_index FROM stages WHERE stage = 'clip' AND status = 'running'"
        in_flight = {(str(job), int(str(scene))) for job, scene in await rows(db, sql) if job in left}
        dead = await lease(db, victim)
        assert dead is not None and dead["taken_over_by"] is None, "read after the takeover: the test is too slow"
        # Creates the kill cut after Replicate accepted them, before their id was stored: the window a run hit.
        accepted = {fingerprint(p.input) for p in rep.predictions.values()}
        cut = [fp for job, fp in await rows(db, "SELECT job_id, fingerprint FROM prediction_intents")
               if job in left and fp in accepted]  # fmt: skip
        print(f"the dead worker's creates accepted by Replicate, their answer not yet stored: {len(cut)}")
        assert {p.status for p in rep.predictions.values() if p.model.ref == SVD} >= {"processing"}

        for n in range(ADS):  # each terminal follows its ad to the end, whoever makes it
            name = f"makead-{n}"
            try:
                code = await asyncio.wait_for(procs[name].wait(), 180)
            except TimeoutError:  # say where it stood: the terminal's rows and the survivor's last words
                tail = "\n".join(logs[survivor].read_text().splitlines()[-40:])
                raise AssertionError(f"{name} still running:\n{logs[name].read_text()}\n{survivor}:\n{tail}") from None
            assert code == 0, logs[name].read_text()
        procs[survivor].send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(procs[survivor].wait(), 15) == 0, logs[survivor].read_text()
    finally:
        for proc in procs.values():
            await stop(proc)

    # The three terminals: queued, then the same progress rows as an ad made in-process, drawn to the end.
    jobs = []
    for n in range(ADS):
        out = logs[f"makead-{n}"].read_text()
        queued = re.search(r"Job (\S+) is queued for the workers", out)
        assert queued is not None, out
        job_id = queued.group(1)
        jobs.append(job_id)
        scene_rows = [line for line in out.splitlines() if line.startswith("scene ")]
        assert len(scene_rows) == SCENES and all("100% done" in row for row in scene_rows), out
        assert any(line.startswith("ad ") and "100% completed" in line for line in out.splitlines()), out
        assert f"Job {job_id} completed in" in out, out
        final = data / "jobs" / job_id / "final.mp4"
        assert f"final: {final}" in out and final.stat().st_size > 100_000
    assert len(set(jobs)) == ADS and left <= set(jobs)

    # Zero duplicate creates: one prediction per stage of each ad, each polled to success and stored on
    # its stage (a create repeated after the takeover would be a second prediction for some stage).
    assert rep.counts.creates == {SDXL: ADS * SCENES, SVD: ADS * SCENES, TTS: ADS * SCENES, MUSIC: ADS}
    assert {p.status for p in rep.predictions.values()} == {"succeeded"}
    stored = await rows(db, "SELECT prediction_id, attempt, status FROM stages WHERE prediction_id IS NOT NULL")
    assert sorted(str(p) for p, _, _ in stored) == sorted(rep.predictions)
    assert {(a, s) for _, a, s in stored} == {(1, "done")}

    # The survivor claimed the dead worker once, no sooner than TAKEOVER_S after its last beat, and said so
    # on every job it took over.
    dead = await lease(db, victim)
    assert dead is not None and dead["taken_over_by"] == survivor and dead["takeover_done_at"] is not None
    silent_s = (_at(dead["taken_over_at"]) - _at(dead["heartbeat_at"])).total_seconds()
    assert TAKEOVER_S <= silent_s < TAKEOVER_S + 15, silent_s  # the upper bound rules out a takeover by another path
    said = " ".join(logs[survivor].read_text().split())
    assert f"Worker {survivor} took over worker {victim}" in said, said
    for job_id in jobs:
        taken = await rows(db, "SELECT detail FROM events WHERE job_id = ? AND kind = 'taken_over'", job_id)
        if job_id in left:
            assert len(taken) == 1 and str(taken[0][0]).startswith(f"from worker {victim} (silent "), taken
            assert f"by worker {survivor}" in str(taken[0][0])
        else:
            assert taken == []

    # DBOS: every workflow of the three jobs finished; the dead worker's runs finished on the survivor,
    # through the queue only taking-over workers serve.
    for job_id in jobs:
        sql = "SELECT workflow_uuid, status, executor_id, queue_name FROM workflow_status WHERE workflow_uuid LIKE ?"
        flows = await dbos_runs(db, data, sql, f"{job_id}%")
        assert {s for _, s, _, _ in flows} == {"SUCCESS"}, flows
        [(_, _, executor, queue)] = [f for f in flows if f[0] == job_id]
        assert (executor, queue) == ((survivor, "jant.takeover") if job_id in left else (executor, "jant-jobs"))
        assert executor in WORKERS

    # No step DBOS had recorded as finished ran again; each other step of a dead worker's job ran exactly
    # once more (a clip in flight at the kill polled the prediction it had created); the other jobs ran
    # every step once.
    for job_id in jobs:
        ran = await steps_run(db, job_id)
        if job_id not in left:
            assert ran == _every_step_once(), (job_id, ran)
            continue
        before, done = ran_before[job_id], recorded[job_id]
        assert set(ran) == set(_every_step_once()), (job_id, ran)
        for step, n in ran.items():
            assert n == before[step] + (0 if step in done else 1), (job_id, step, n, before[step])
    # The clips processing at the kill were steps in flight: DBOS had not recorded them, so they ran again.
    assert in_flight and not {(job, (i, "clip", "jant.wait")) for job, i in in_flight} & {
        (job, step) for job in left for step in recorded[job]
    }

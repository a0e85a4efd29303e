"""The fault matrix's prediction rows (`tests/test_fault_matrix.py`) on JANT_ENGINE=dbos.

On this engine each attempt at a stage is a `jant.create` step and a `jant.wait` step of its chain's
workflow, and the attempt loop — `pipeline.retry`'s classification and policy, Retry-After honoured —
runs in the chain's workflow with the backoff as a durable DBOS sleep. Each row injects its fault into
the Replicate emulator under a job run in-process with the real clients, then asserts the matrix's
promises (the job ends as the row expects, with its reason; every prediction Replicate made is stored
once; no stage has more paid predictions than attempts) and this engine's own: every attempt is one
create step, every prediction created is waited for by one wait step, and every retry waited in a
durable sleep, at least as long as the server asked.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.models import AdRequest, Job
from pipeline.runtime import Runtime
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import FakeReplicate
from tests.scripted_providers import CopyComposer
from tests.service_fakes import service_env
from tests.test_fault_matrix import ROWS, Row, _creates, stored_reasons

pytest.importorskip("dbos", reason="the durable extra (`pip install 'jant[durable]'`) is not installed")

PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm, dims at night and charges your phone"
# The rows whose fault is a prediction's: a refused create (with Retry-After), a poll that fails, a
# prediction past its deadline, one that fails for good (NSFW) and one worth making again (aborted).
# "500 on create" and "expired output URL" take the same paths as "429 on create" and "aborted", and
# are left to the matrix: each row here is a whole job (~5 s).
PREDICTION_ROWS = [
    r for r in ROWS if r.service == "Replicate" and r.fault not in ("500 on create", "expired output URL")
]


def _operations(data: Path, run_id: str) -> list[tuple[str, str, int, int]]:
    """(workflow, function name, started ms, completed ms) of every operation of the run's chains."""
    conn = sqlite3.connect(f"file:{data / 'dbos.sqlite'}?mode=ro", uri=True, timeout=5)
    try:
        sql = (
            "SELECT workflow_uuid, function_name, started_at_epoch_ms, completed_at_epoch_ms"
            " FROM operation_outputs WHERE workflow_uuid LIKE ?"
        )
        return conn.execute(sql, (f"{run_id}/%",)).fetchall()
    finally:
        conn.close()


async def _run_job(settings: Settings) -> tuple[Job, list[dict[str, Any]], list[dict[str, Any]]]:
    """A job made on the durable engine, to its end: the job, its stored predictions and its events."""
    rt = await Runtime.open(settings, runs_jobs=True)
    try:
        assert rt.durable
        rt.orchestrator.composer = CopyComposer()  # the faults are the providers'; no ffmpeg needed
        orch = rt.orchestrator
        job = await orch.create_job(AdRequest(product=PRODUCT, mood="tech"))
        await orch.plan(job)
        job = await asyncio.wait_for(await orch.approve(job), 60)
        return job, await rt.store.predictions(job.id), await rt.store.events(job.id)
    finally:
        await rt.close()


@pytest.mark.parametrize("row", PREDICTION_ROWS, ids=[r.name for r in PREDICTION_ROWS])
async def test_a_prediction_fault_on_the_durable_engine_is_retried_by_one_policy_in_steps(
    row: Row, fakes: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path
) -> None:
    oai, rep = fakes
    data = tmp_path / "data"
    # A backoff well under the 429 row's Retry-After (0.1 s), so the sleep shows which of the two it honoured.
    env = {**service_env(oai, rep, data), "JANT_ENGINE": "dbos", "JANT_RETRY_BACKOFF_S": "0.01"}
    env |= {k: str(v) for k, v in row.settings.items()}
    if row.before:
        row.before(SimpleNamespace(rep=rep, oai=oai))  # type: ignore[arg-type]  # the rows' faults use only these
    job, stored, events = await _run_job(Settings(**env))

    # The matrix's promises: the row's outcome and reason; nothing lost; nothing paid twice.
    assert job.status is row.expect, f"{job.status}: {stored_reasons(job)}"
    if row.reason:
        assert row.reason in stored_reasons(job), stored_reasons(job)
    made = [r for r in _creates(rep) if r.status == 201]
    assert {p["prediction_id"] for p in stored} == set(rep.predictions)
    assert len(stored) == len(rep.predictions) == len(made) == rep.counts.total_creates
    paid = Counter((p["scene_index"], p["stage"]) for p in stored)
    stages = {(st.scene_index, st.stage): st for st in job.all_stages()}
    assert all(paid[key] <= st.attempt for key, st in stages.items())

    # This engine's: one create step per attempt, one wait step per prediction created, nothing re-run.
    steps = Counter(
        (e["scene_index"], e["stage"], str(e["detail"]).split()[0]) for e in events if e["kind"] == "dbos_step"
    )
    for key, st in stages.items():
        assert steps[(*key, "jant.create")] == st.attempt, (key, st.status, steps)
        assert steps[(*key, "jant.wait")] == paid[key], (key, st.status, steps)
    # Every retry waited in a durable sleep of the chain's workflow, never shorter than the server asked.
    sleeps = [(done - began) / 1000 for _, name, began, done in _operations(data, job.id) if name == "DBOS.sleep"]
    assert len(sleeps) == sum(max(0, st.attempt - 1) for st in stages.values())
    if row.fault == "429 on create":
        assert sleeps and min(sleeps) >= 0.1  # Retry-After 0.1 s; the backoff alone would be 0.01 s
    retried = [f"{k[1]} {k[0]}" for k, st in stages.items() if st.attempt > 1]
    print(f"{row.name}: {job.status.value}; retried {', '.join(retried) or 'nothing'}; sleeps {sleeps}")

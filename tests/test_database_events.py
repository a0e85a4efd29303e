"""A front end follows, through the database, a job that another process runs.

Story: the job is planned and run by the real orchestrator in a process of its own
(`tests/job_in_another_process.py`: scripted providers, one clip that fails once and is retried).
This process only reads the database with `DatabaseEvents`: it must see the job's progress in the
order it happened, nothing twice, the retry, every scene's clip made and cut, and a stream that ends
by itself with the job's end.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.database_events import DatabaseEvents, changes
from pipeline.events import EventBus, EventKind, ProgressEvent
from pipeline.models import AdRequest, Job, JobStatus, StageStatus
from pipeline.store import JobStore
from tests.bot_harness import eventually

REPO = Path(__file__).resolve().parents[1]
JOB_LEVEL = (EventKind.JOB_QUEUED, EventKind.JOB_STARTED, EventKind.COMPOSING, EventKind.JOB_FINISHED)


def _is_subsequence(part: list[Any], whole: list[Any]) -> bool:
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


def _identity(event: ProgressEvent) -> tuple[object, ...]:
    """What makes two events the same news: a repeat of one is a duplicate."""
    if event.scene_index is None or event.stage is None:
        return (event.kind,)
    stages = event.job.job_stages if event.scene_index == 0 else event.job.scene(event.scene_index).stages
    st = stages[event.stage]
    return (event.kind, event.scene_index, event.stage, st.status, st.attempt, st.progress)


async def test_events_of_a_job_run_by_another_process_arrive_in_order_once_and_end_with_it(tmp_path: Path) -> None:
    data, truth_file = tmp_path / "data", tmp_path / "bus.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REPLICATE_", "JANT_", "DISCORD_"))}
    runner = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.job_in_another_process", str(data), str(truth_file),
        cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    store: JobStore | None = None
    try:
        assert runner.stdout is not None and runner.stdin is not None
        job_id = (await asyncio.wait_for(runner.stdout.readline(), 60)).decode().strip()
        store = await JobStore.open(data / "jant.db")
        source = DatabaseEvents(store, EventBus(), interval_s=0.25)
        got: list[ProgressEvent] = []

        async def follow() -> None:
            async for event in source.follow(job_id):
                got.append(event)

        follower = asyncio.create_task(follow())

        async def first_seen() -> bool:
            return bool(got)

        await eventually(first_seen, timeout=10, what="the planned job seen")
        runner.stdin.write(b"go\n")
        await runner.stdin.drain()
        await asyncio.wait_for(follower, 60)  # the stream ends by itself at the job's end
        assert await asyncio.wait_for(runner.wait(), 30) == 0
        final = await store.get(job_id)
        await source.close()
    finally:
        if runner.returncode is None:
            runner.kill()
            await runner.wait()
        if store is not None:
            await store.close()
    assert final is not None and final.status is JobStatus.COMPLETED
    truth = [(EventKind(k), i, s) for k, i, s in json.loads(truth_file.read_text())]

    # It starts where the job was (planned) and ends with the job's end, once.
    assert got[0].kind is EventKind.STORYBOARD_READY and got[0].job.status is JobStatus.AWAITING_APPROVAL
    assert got[-1].kind is EventKind.JOB_FINISHED and got[-1].job.status is JobStatus.COMPLETED
    assert [e.kind for e in got].count(EventKind.JOB_FINISHED) == 1

    # Nothing twice.
    repeats = [k for k, n in Counter(_identity(e) for e in got).items() if n > 1]
    assert not repeats, repeats

    # In order: the job's own steps, and each stage's, as the running process published them.
    jobs_own = [e.kind.value for e in got if e.kind in JOB_LEVEL]
    assert _is_subsequence(jobs_own, [k.value for k, _, _ in truth if k in JOB_LEVEL]), jobs_own
    assert "job_started" in jobs_own  # its queued state may last less than a poll
    stages = {(i, s) for _, i, s in truth if s is not None}
    for key in stages:
        seen = [e.kind.value for e in got if (e.scene_index, e.stage) == key]
        assert _is_subsequence(seen, [k.value for k, i, s in truth if (i, s) == key]), (key, seen)
    # Between stages, what one poll finds is ordered by each stage's last write (a progress figure or a
    # prediction id can be written after another stage moved), so only what the pipeline guarantees is
    # checked: the ad is composed after every stage is made.
    made_at = [n for n, e in enumerate(got) if e.kind is EventKind.STAGE_DONE]
    assert all(made_at[-1] < n for n, e in enumerate(got) if e.kind is EventKind.COMPOSING)
    started = next(n for n, e in enumerate(got) if e.kind is EventKind.JOB_STARTED)
    assert all(n > started for n, e in enumerate(got) if e.stage is not None)
    for n, e in enumerate(got):  # a scene is cut after its clip is made; the snapshot says what the event says
        if e.kind is EventKind.CLIP_NORMALIZED:
            clip_done = (EventKind.STAGE_DONE, e.scene_index, "clip")
            done = [m for m, d in enumerate(got) if (d.kind, d.scene_index, d.stage) == clip_done]
            assert done and done[0] < n
        if e.kind is EventKind.STAGE_DONE:
            assert e.job.scene(e.scene_index or 0).stages[e.stage or ""].status is StageStatus.DONE

    # Nothing left out that lasted: each seed and clip made once, each scene cut once, and scene 2's
    # clip seen on its first attempt and then on its retry.
    assert final.storyboard is not None
    scenes = range(1, len(final.storyboard.scenes) + 1)
    made = Counter((e.scene_index, e.stage) for e in got if e.kind is EventKind.STAGE_DONE)
    assert made == Counter({(i, kind): 1 for i in scenes for kind in ("seed", "clip")})
    cut = Counter(e.scene_index for e in got if e.kind is EventKind.CLIP_NORMALIZED)
    assert cut == Counter({i: 1 for i in scenes})
    attempts = [e.job.scene(2).clip.attempt for e in got if (e.scene_index, e.stage) == (2, "clip")]
    assert 1 in attempts and attempts[-1] == 2 and attempts == sorted(attempts)


def test_a_job_first_seen_ended_is_one_finished_event_and_a_retry_is_told() -> None:
    job = Job(request=AdRequest(product="A lamp", mood="tech"), status=JobStatus.FAILED)
    [event] = changes(None, job)
    assert event.kind is EventKind.JOB_FINISHED
    again = job.model_copy(update={"status": JobStatus.QUEUED})
    assert [e.kind for e in changes(job, again)] == [EventKind.JOB_QUEUED]
    assert changes(again, again.model_copy(deep=True)) == []

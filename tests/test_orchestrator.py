"""Stories about running a job: pipelining, retries, failures, cancel, resume and retry-failed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.brand import BrandKit
from pipeline.config import Settings
from pipeline.events import EventKind, ProgressEvent
from pipeline.models import AdRequest, Job, JobStatus, StageName, StageState, StageStatus
from pipeline.orchestrator import OFFLINE_CARD_NOTE, Orchestrator
from pipeline.providers.base import Providers
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.store import JobStore
from tests.bot_harness import eventually
from tests.scripted_providers import CopyComposer, ScriptedImages, ScriptedVideo

PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm, dims at night and charges your phone"


class Harness:
    def __init__(self, settings: Settings, store: JobStore) -> None:
        self.settings, self.store = settings, store
        self.images, self.video = ScriptedImages("seed"), ScriptedVideo("clip")
        self.composer = CopyComposer()
        self.events: list[ProgressEvent] = []
        self.orch = self.new_orchestrator()

    def new_orchestrator(self) -> Orchestrator:
        providers = Providers(OfflineStoryboardPlanner(), self.images, self.video)  # type: ignore[arg-type]
        orch = Orchestrator(self.settings, self.store, providers, composer=self.composer)  # type: ignore[arg-type]
        orch.bus.subscribe(self.events.append)
        return orch

    async def planned_job(self, requester: str = "alice") -> Job:
        job = await self.orch.create_job(AdRequest(product=PRODUCT, mood="tech"), requester_id=requester)
        return await self.orch.plan(job)

    def kinds(self, scene: int, stage: StageName) -> list[EventKind]:
        return [e.kind for e in self.events if e.scene_index == scene and e.stage is stage]


async def until(predicate: Callable[[], bool]) -> None:
    while not predicate():  # noqa: ASYNC110 - yield until true; callers bound it with wait_for
        await asyncio.sleep(0.005)


@pytest.fixture
async def h(settings: Settings):
    store = await JobStore.open(settings.db_path)
    harness = Harness(settings, store)
    yield harness
    await harness.orch.shutdown()
    await store.close()


async def test_a_fast_seed_starts_its_clip_before_slow_seeds_finish(h: Harness) -> None:
    job = await h.planned_job()
    n = len(job.scenes)
    for scene in range(2, n + 1):  # every seed but scene 1's is held until scene 1's clip is running
        h.images.gates[scene] = asyncio.Event()
    task = await h.orch.approve(job)
    await asyncio.wait_for(h.video.started[1].wait(), 5)  # no barrier: clip 1 runs while seeds 2..n wait
    assert all(not h.images.finished[s].is_set() for s in range(2, n + 1))
    for gate in h.images.gates.values():
        gate.set()
    job = await asyncio.wait_for(task, 10)
    assert job.status is JobStatus.COMPLETED
    # Each clip was normalised to its own planned duration, and the final join used every scene in order.
    assert sorted(h.composer.normalized) == [(s.index, s.duration) for s in job.storyboard.scenes]
    assert [p.name for p in h.composer.joined[-1]] == [f"scene-{i}.mp4" for i in range(1, n + 1)]


async def test_only_the_clip_the_ad_waits_on_is_normalised_in_a_hurry(h: Harness) -> None:
    job = await h.planned_job()
    n = len(job.scenes)
    h.video.gates[2] = asyncio.Event()  # scene 2's clip arrives after every other scene is done
    h.video.outcomes[4] = ["nsfw"]  # and scene 4 fails for good: nothing to wait for there
    task = await h.orch.approve(job)
    await asyncio.wait_for(until(lambda: len(h.composer.normalized) == n - 2), 10)
    assert h.composer.urgent == []  # while scene 2 was still generating, nothing was on the critical path
    h.video.gates[2].set()
    job = await asyncio.wait_for(task, 10)
    assert job.status is JobStatus.PARTIAL
    assert h.composer.urgent == [2]


async def test_a_clip_that_fails_twice_then_succeeds_completes_the_ad(h: Harness) -> None:
    job = await h.planned_job()
    h.video.outcomes[3] = ["flaky", "flaky", "ok"]
    job = await asyncio.wait_for(await h.orch.approve(job), 10)
    assert job.status is JobStatus.COMPLETED
    assert job.scene(3).clip.attempt == 3
    assert h.kinds(3, StageName.CLIP).count(EventKind.STAGE_RETRYING) == 2
    assert h.video.creates[3] == 3  # exactly one paid create per attempt
    preds = await h.store.predictions(job.id)
    assert [(p["attempt"], p["status"]) for p in preds if p["scene_index"] == 3 and p["stage"] == "clip"] == [
        (1, "failed"), (2, "failed"), (3, "succeeded")
    ]  # fmt: skip
    assert job.gpu_seconds == pytest.approx(2.0 * 2 * len(job.scenes))


async def test_an_unsafe_seed_fails_only_its_scene_without_retry(h: Harness) -> None:
    job = await h.planned_job()
    h.images.outcomes[2] = ["nsfw"]
    job = await asyncio.wait_for(await h.orch.approve(job), 10)
    assert job.status is JobStatus.PARTIAL
    assert h.images.creates[2] == 1
    stored = await h.store.get(job.id)
    assert stored is not None
    assert stored.scene(2).seed.status is StageStatus.FAILED
    assert "NSFW content detected" in (stored.scene(2).seed.error or "")
    assert stored.scene(2).clip.status is StageStatus.FAILED  # skipped, with a reason
    assert "scene 2" in (stored.error or "") and stored.final_path
    assert all(stored.scene(i).done for i in range(1, len(job.scenes) + 1) if i != 2)


async def test_when_every_scene_fails_the_job_fails_with_reasons(h: Harness) -> None:
    job = await h.planned_job()
    for s in range(1, 8):
        h.images.outcomes[s] = ["nsfw"]
    job = await asyncio.wait_for(await h.orch.approve(job), 10)
    assert job.status is JobStatus.FAILED
    assert "No scene could be made" in (job.error or "") and "NSFW" in (job.error or "")
    assert h.composer.joined == []


async def test_predictions_in_flight_never_exceed_the_global_limit(settings: Settings) -> None:
    settings = settings.model_copy(update={"max_concurrent_predictions": 3})
    store = await JobStore.open(settings.db_path)
    h = Harness(settings, store)
    try:
        for s in range(1, 8):
            h.images.latency[s] = 0.02
            h.video.latency[s] = 0.02
        jobs = [await h.planned_job(requester=f"user{i}") for i in range(3)]
        tasks = [await h.orch.approve(j) for j in jobs]
        done = await asyncio.wait_for(asyncio.gather(*tasks), 20)
        assert all(j.status is JobStatus.COMPLETED for j in done)
        assert h.images.peak_running + h.video.peak_running <= 3 + 3  # each bounded by the shared cap
        assert h.orch.limiter.in_flight == 0
    finally:
        await h.orch.shutdown()
        await store.close()


async def test_cancel_stops_the_job_cancels_paid_predictions_and_keeps_finished_scenes(h: Harness) -> None:
    job = await h.planned_job()
    h.video.outcomes[4] = ["hang"]
    task = await h.orch.approve(job)
    await asyncio.wait_for(h.video.started[4].wait(), 5)
    await asyncio.wait_for(until(lambda: job.scene(1).clip.status is StageStatus.DONE), 5)
    await asyncio.wait_for(h.orch.cancel(job, by="alice"), 5)
    assert task.cancelled()
    stored = await h.store.get(job.id)
    assert stored is not None and stored.status is JobStatus.CANCELLED
    assert "clip-4-1" in h.video.cancelled
    assert stored.scene(4).clip.status is StageStatus.CANCELLED
    assert stored.scene(1).clip.status is StageStatus.DONE  # what was finished is kept


async def test_a_restart_resumes_the_stored_prediction_instead_of_paying_again(h: Harness) -> None:
    job = await h.planned_job()
    h.video.gates[2] = asyncio.Event()
    task = await h.orch.approve(job)
    await asyncio.wait_for(h.video.started[2].wait(), 5)
    # The process stops (shutdown leaves predictions running on the provider) …
    await h.orch.shutdown()
    assert task.cancelled()
    assert h.video.cancelled == []
    stored = await h.store.get(job.id)
    assert stored is not None and stored.scene(2).clip.prediction_id == "clip-2-1"
    # … and a new process picks the job up from SQLite.
    h.video.gates[2].set()
    h.orch = h.new_orchestrator()
    resumed = await h.orch.resume_all()
    assert len(resumed) == 1
    job = await asyncio.wait_for(resumed[0], 10)
    assert job.status is JobStatus.COMPLETED
    assert h.video.creates[2] == 1  # polled by its stored id, never created twice
    assert any(c.scene == 2 and c.resumed_from == "clip-2-1" for c in h.video.calls)


async def test_a_resumed_prediction_waiting_for_a_slot_survives_another_stop(h: Harness) -> None:
    """A resumed clip that waits for a prediction slot (the account's cap is taken) and is stopped again
    before it gets one must still be resumed by its stored id the next time, not created again."""
    job = await h.planned_job()
    h.video.gates[2] = asyncio.Event()
    await h.orch.approve(job)
    await asyncio.wait_for(h.video.started[2].wait(), 5)
    await h.orch.shutdown()  # clip 2 is running on the provider as clip-2-1
    h.orch = h.new_orchestrator()
    media = h.orch.slots["media"]
    for _ in range(media.capacity):  # other work holds every slot: the resumed clip must wait
        await media.acquire("someone-else")
    await h.orch.resume_all()
    await asyncio.wait_for(until(lambda: media.waiting > 0), 5)
    await h.orch.shutdown()  # stopped again while it waits
    stored = await h.store.get(job.id)
    assert stored is not None
    assert (stored.scene(2).clip.status, stored.scene(2).clip.prediction_id) == (StageStatus.RUNNING, "clip-2-1")
    h.video.gates[2].set()
    h.orch = h.new_orchestrator()
    [resumed] = await h.orch.resume_all()
    assert (await asyncio.wait_for(resumed, 10)).status is JobStatus.COMPLETED
    assert h.video.creates[2] == 1  # polled by its stored id after both stops, never created twice


async def test_queued_is_stored_only_for_an_attempt_that_waits_for_a_prediction_slot(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attempt that gets a slot at once goes straight to its running write (one write fewer before its
    POST); one that must wait is stored queued meanwhile, as `jant show` and a restart should see it."""
    saved: list[tuple[int, str, StageStatus]] = []
    save = h.store.save_stage

    async def recording(stage: StageState) -> None:
        saved.append((stage.scene_index, str(stage.stage), stage.status))
        await save(stage)

    monkeypatch.setattr(h.store, "save_stage", recording)
    job = await h.planned_job()
    media = h.orch.slots["media"]
    for _ in range(media.capacity - 1):  # other work holds every slot but one
        await media.acquire("someone-else")
    h.images.gates[1] = asyncio.Event()  # scene 1's seed takes the free slot and keeps it
    task = await h.orch.approve(job)
    await asyncio.wait_for(h.images.started[1].wait(), 5)

    async def scene_2_stored_queued() -> bool:
        stored = await h.store.get(job.id)
        return stored is not None and stored.scene(2).seed.status is StageStatus.QUEUED

    await eventually(scene_2_stored_queued, timeout=5, what="scene 2's seed stored as queued while it waits")
    assert (1, "seed", StageStatus.RUNNING) in saved
    assert (1, "seed", StageStatus.QUEUED) not in saved  # it never waited: no queued write before running
    h.images.gates[1].set()
    for _ in range(media.capacity - 1):
        media.release()
    assert (await asyncio.wait_for(task, 20)).status is JobStatus.COMPLETED


async def test_retry_failed_reruns_only_the_failed_scene(h: Harness) -> None:
    job = await h.planned_job()
    h.images.outcomes[5] = ["nsfw"]
    job = await asyncio.wait_for(await h.orch.approve(job), 10)
    assert job.status is JobStatus.PARTIAL
    before = dict(h.images.creates)
    job = await asyncio.wait_for(await h.orch.retry_failed(job), 10)
    assert job.status is JobStatus.COMPLETED
    new_creates = {s: n - before.get(s, 0) for s, n in h.images.creates.items() if n != before.get(s, 0)}
    assert new_creates == {5: 1}


async def test_editing_a_scene_revalidates_the_storyboard(h: Harness) -> None:
    from pipeline.errors import InvalidRequest

    job = await h.planned_job()
    first = job.storyboard.scenes[0].duration
    await h.orch.edit_scene(job, 2, description="A close-up of the lamp glowing warm at dusk", duration=5.5)
    assert job.storyboard.scenes[1].description.startswith("A close-up")
    with pytest.raises(InvalidRequest, match="add up to 29–31 s"):
        await h.orch.edit_scene(job, 1, duration=first + 4)
    stored = await h.store.get(job.id)
    assert stored is not None and stored.storyboard.scenes[0].duration == first  # the bad edit left no trace
    with pytest.raises(InvalidRequest, match="no scene 9"):
        await h.orch.edit_scene(job, 9, duration=4)


async def test_editing_a_scene_can_change_its_spoken_line_and_the_rules_still_hold(h: Harness) -> None:
    from pipeline.errors import InvalidRequest

    job = await h.planned_job()
    await h.orch.edit_scene(job, 2, voiceover="Meet Lumen, the lamp that knows what time it is.")
    stored = await h.store.get(job.id)
    assert (
        stored is not None
        and stored.storyboard.scenes[1].voiceover == "Meet Lumen, the lamp that knows what time it is."
    )
    saved = json.loads((h.orch.job_dir(job) / "storyboard.json").read_text(encoding="utf-8"))
    assert saved["storyboard"]["scenes"][1]["voiceover"] == "Meet Lumen, the lamp that knows what time it is."
    with pytest.raises(InvalidRequest, match=r"scene 2 \(intro\): the voiceover line contains the web address"):
        await h.orch.edit_scene(job, 2, voiceover="Order at lumen.example")
    hook = job.storyboard.scenes[0]
    eight = " ".join(["word"] * 8)  # fits 3 s (8 words)
    await h.orch.edit_scene(job, 1, voiceover=eight, duration=3)
    with pytest.raises(
        InvalidRequest, match="scene 1 \\(hook\\): the voiceover line has 8 words; at most 6 can be said in 2 s"
    ):
        await h.orch.edit_scene(job, 1, duration=2)  # a shorter scene cannot hold the same line
    assert (await h.store.get(job.id)).storyboard.scenes[0].voiceover == eight and hook.index == 1


def test_job_directory_is_under_the_data_dir(settings: Settings) -> None:
    job = Job(request=AdRequest(product="x"))
    assert job.directory(settings.data_dir) == Path(settings.data_dir) / "jobs" / job.id


async def test_a_reroll_remakes_one_scene_and_rejoins_the_ad_without_touching_the_others(h: Harness) -> None:
    from pipeline.errors import InvalidRequest

    job = await h.planned_job()
    with pytest.raises(InvalidRequest, match="only a finished ad"):
        await h.orch.reroll_scene(job, 2, StageName.CLIP)
    job = await asyncio.wait_for(await h.orch.approve(job), 10)
    assert job.status is JobStatus.COMPLETED
    n = len(job.scenes)
    first_paths = {s.index: (s.seed.path, s.clip.path) for s in job.scenes}

    job = await asyncio.wait_for(await h.orch.reroll_scene(job, 2, StageName.CLIP), 10)
    assert job.status is JobStatus.COMPLETED
    assert dict(h.images.creates) == dict.fromkeys(range(1, n + 1), 1)  # no seed made again
    assert h.video.creates[2] == 2 and all(h.video.creates[i] == 1 for i in range(1, n + 1) if i != 2)
    assert len(h.composer.joined) == 2 and len(h.composer.joined[1]) == n  # re-joined with every scene
    assert [c.scene for c in h.video.calls[n:]] == [2]  # only scene 2's clip ran the second time

    job = await asyncio.wait_for(await h.orch.reroll_scene(job, 4, StageName.SEED), 10)
    assert job.status is JobStatus.COMPLETED
    assert h.images.creates[4] == 2 and h.video.creates[4] == 2  # a new seed needs a new clip
    assert {s.index: (s.seed.path, s.clip.path) for s in job.scenes} == first_paths  # written again in place

    # Every paid prediction keeps its row: re-runs start their attempts at 1 again but never overwrite.
    preds = await h.store.predictions(job.id)
    assert len(preds) == sum(h.images.creates.values()) + sum(h.video.creates.values()) == 2 * n + 3
    assert [(p["attempt"], p["prediction_id"]) for p in preds if (p["scene_index"], p["stage"]) == (2, "clip")] == [
        (1, "clip-2-1"), (2, "clip-2-1-2")
    ]  # fmt: skip
    with pytest.raises(InvalidRequest, match="no scene 9"):
        await h.orch.reroll_scene(job, 9, StageName.SEED)
    kinds = [e["kind"] for e in await h.store.events(job.id)]
    assert kinds.count("reroll") == 2


async def test_a_progress_report_does_not_wait_for_the_store_and_its_newest_value_lands(h: Harness) -> None:
    # With voice and music on, an approval burst queues hundreds of writes; a prediction's poll loop
    # that awaited its progress save waited seconds behind them before it could poll again.
    job = await h.planned_job()
    stage = job.scene(1).seed
    ctx = h.orch._context(job, stage, "scripted", None)
    async with h.store.repo._write_lock:  # every other writer of the process is ahead of this one
        await asyncio.wait_for(ctx.progress(40.0, "sampling"), timeout=2)
        await asyncio.wait_for(ctx.progress(60.0, "sampling"), timeout=2)
    await asyncio.wait_for(h.orch._progress_writes.close(), timeout=5)
    stored = await h.store.get(job.id)
    assert stored is not None
    assert stored.scene(1).seed.progress == 60.0
    assert stored.scene(1).seed.status is stage.status  # a progress write never touches the status


async def test_every_scene_is_drawn_with_the_kit_at_approval_and_only_the_last_ends_on_the_card(h: Harness) -> None:
    kit = BrandKit(primary="#0e7490", cta="Try Lumen", font="noto-serif")
    job = await h.orch.create_job(AdRequest(product=PRODUCT, mood="tech", cta="Buy now"), requester_id="alice")
    job = await h.orch.plan(job)
    job = await asyncio.wait_for(await h.orch.approve(job, brand=kit), 10)  # the kit recorded at approval
    assert job.status is JobStatus.COMPLETED and job.brand == kit
    n = len(job.storyboard.scenes)
    assert {i: b for i, (b, _, _) in h.composer.brands.items()} == dict.fromkeys(range(1, n + 1), kit)
    cards = {i: s for i, (_, s, _) in h.composer.brands.items()}
    assert cards[n] == 2.5 and all(cards[i] == 0.0 for i in range(1, n))
    # An offline preview's card covers the "OFFLINE PREVIEW" band of its scenes: it says so itself.
    assert job.offline  # the harness draws locally
    expected = OFFLINE_CARD_NOTE
    assert h.composer.card_notes == {i: (expected if i == n else None) for i in range(1, n + 1)}
    assert h.composer.brands[n][2] == "Buy now"  # the request's CTA, for a kit without one


async def test_a_job_without_a_kit_is_drawn_with_the_defaults(h: Harness) -> None:
    job = await h.planned_job()
    job = await asyncio.wait_for(await h.orch.approve(job), 10)
    assert {b for b, _, _ in h.composer.brands.values()} == {BrandKit()}

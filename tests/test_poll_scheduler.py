"""Polling many Replicate predictions within one request budget.

Stories: a clip with a minute to go is looked at rarely and a clip about to finish often; a
prediction that outlives its estimate is looked at less and less; a seed with no bar yet gets one
early look and then its fair share; when the budget is tight the poll closest to a finish goes
first and a poll that was given up costs nothing; thirty predictions polled as fast as the
settings allow stay within the budget and Replicate never throttles them; progress snapshots
taken for the status message never change under the renderer's feet.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.events import snapshot
from pipeline.models import AdRequest, Job, JobUi, StageName, StageStatus
from pipeline.moods import mood_preset
from pipeline.providers.base import SeedRequest, StageContext, StageResult
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.providers.poll_scheduler import CreatePacer, PollPlan, PollScheduler, TailEstimate
from pipeline.providers.replicate_media import ReplicateImageGenerator, svd_sampling
from pipeline.providers.replicate_predictions import PredictionState
from pipeline.runtime import build_providers
from pipeline.store import fresh_scene_states
from tests.emulators import media
from tests.emulators.fake_replicate import FakeReplicate, tqdm_line

PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm, dims at night and charges your phone"


def test_a_clip_far_from_its_end_is_polled_rarely_and_often_close_to_it() -> None:
    plan = PollPlan(created=0.0, base=1.0)
    plan.observe(2.0, 0.10)
    plan.observe(4.0, 0.20)  # 5 % a second: the bar ends at 20 s
    assert plan.expected_end(tail_s=5.0) == pytest.approx(25.0)  # plus the model's usual 5 s after its bar
    due, deadline = plan.next_poll(4.0, share_s=2.0, tail_s=5.0)
    assert (due, deadline) == (pytest.approx(14.0), pytest.approx(24.0))  # at most 10 base intervals apart
    due, deadline = plan.next_poll(21.0, share_s=2.0, tail_s=5.0)
    assert (due, deadline) == (pytest.approx(23.0), pytest.approx(25.0))  # half-way to 25 s
    due, _ = plan.next_poll(24.8, share_s=2.0, tail_s=5.0)
    assert due == pytest.approx(25.8)  # never closer than the base interval


def test_a_prediction_that_outlives_its_estimate_is_looked_at_less_and_less() -> None:
    plan = PollPlan(created=0.0, base=1.0)
    plan.observe(5.0, 0.5)  # one reading: as if it started at create time, the bar ends at 10 s
    assert plan.bar_end() == pytest.approx(10.0)
    gaps = [plan.next_poll(now, share_s=1.0, tail_s=0.0)[0] - now for now in (11.0, 14.0, 20.0, 40.0)]
    assert gaps == sorted(gaps) and gaps[0] == pytest.approx(1.0) and gaps[-1] == pytest.approx(10.0)


def test_with_nothing_to_go_on_a_prediction_gets_one_early_look_then_its_fair_share() -> None:
    plan = PollPlan(created=0.0, base=1.0)
    plan.observe(0.0, None)  # the create's answer: starting
    first, _ = plan.next_poll(0.0, share_s=8.0, tail_s=0.0)
    assert first == pytest.approx(2.0)  # a quarter of its share: a first reading gives an estimate
    plan.observe(2.0, None)  # still queued for a GPU
    second, deadline = plan.next_poll(2.0, share_s=8.0, tail_s=0.0)
    assert second == pytest.approx(10.0) and deadline == pytest.approx(18.0)


def test_the_tail_learned_is_a_lower_bound_so_late_polls_do_not_make_later_ones() -> None:
    plan = PollPlan(created=0.0, base=1.0)
    for t, f in ((2.0, 0.2), (4.0, 0.4), (8.0, 0.8)):
        plan.observe(t, f)  # the bar ends at 10 s
    plan.observe(12.0, 1.0)
    plan.observe(13.0, 1.0)  # the last poll that found it running; the next one (say at 30 s) finds it done
    assert plan.tail_seen() == pytest.approx(3.0)
    tail = TailEstimate()
    tail.learn(3.0)
    tail.learn(1.0)
    assert tail.seconds == pytest.approx(2.4) and tail.samples == 2


def test_svd_sampling_reads_its_bar_as_steps_not_sigmas() -> None:
    def at(n: int) -> float | None:
        return svd_sampling(PredictionState("p", "processing", logs=tqdm_line(n, 31, 1.0, "Sampling with X")))

    assert at(15) == pytest.approx(0.5) and at(30) == 1.0
    assert svd_sampling(PredictionState("p", "processing", logs="Loaded model\n")) is None


async def test_when_the_budget_is_tight_the_poll_closest_to_a_finish_goes_first() -> None:
    polls = PollScheduler(per_minute=600, burst_s=0.1)  # 10 a second, one at a time
    now = polls.now()
    await polls.turn(now, now)  # takes the only token
    order: list[str] = []

    async def poll(name: str, deadline: float) -> None:
        await polls.turn(now, now + deadline)
        order.append(name)

    tasks = [asyncio.create_task(poll(n, d)) for n, d in (("a clip with a minute to go", 60.0),
                                                           ("a seed about to finish", 1.0),
                                                           ("a clip half-way", 20.0))]  # fmt: skip
    await asyncio.gather(*tasks)
    assert order == ["a seed about to finish", "a clip half-way", "a clip with a minute to go"]
    assert polls.granted == 4


async def test_the_budget_is_never_overdrawn_and_a_cancelled_poll_costs_nothing() -> None:
    polls = PollScheduler(per_minute=1200, burst_s=0.1)  # 20 a second, a burst of 2
    now = polls.now()
    tasks = [asyncio.create_task(polls.turn(now, now + i)) for i in range(5)]
    await asyncio.sleep(0)
    assert sum(t.done() for t in tasks) == 2 and polls.waiting == 3
    tasks[2].cancel()
    await asyncio.gather(*tasks[3:])  # the cancelled one is skipped, its token goes to the next
    assert polls.granted == 4 and polls.waiting == 0


async def seeds_at_once(settings: Settings, tmp_path: Path, count: int) -> tuple[list[StageResult], list[str]]:
    """`count` seed images asked of the real Replicate provider at the same moment; their results
    and every progress note the scenes showed."""
    providers = build_providers(settings)
    images = providers.images
    assert isinstance(images, ReplicateImageGenerator)
    # One poll budget and one create pacer for the account, whatever the model.
    assert images.runner.scheduler is providers.video.runner.scheduler  # type: ignore[attr-defined]
    assert images.runner.pacer is providers.video.runner.pacer  # type: ignore[attr-defined]
    storyboard = await OfflineStoryboardPlanner().plan(AdRequest(product=PRODUCT, mood="tech"))
    notes: list[str] = []

    async def on_progress(_percent: float, note: str | None) -> None:
        if note:
            notes.append(note)

    try:
        results = await asyncio.gather(*(
            images.generate(
                SeedRequest(storyboard=storyboard, scene=storyboard.scenes[0], mood=mood_preset("tech"),
                            product=PRODUCT, width=640, height=1136, steps=20, dest=tmp_path / f"s{i}.png"),
                StageContext(job_id="j", scene_index=1, stage=StageName.SEED, attempt=1,
                             on_progress=on_progress, in_flight=lambda: count),
            )
            for i in range(count)
        ))  # fmt: skip
    finally:
        await images.aclose()
        await providers.video.aclose()  # type: ignore[attr-defined]
    assert len(results) == count and all(r.path.exists() for r in results)
    return results, notes


async def test_thirty_seeds_polled_as_fast_as_allowed_stay_within_the_budget(tmp_path: Path) -> None:
    await media.mp4_bytes(576, 1024, 25, 7)
    # Replicate's rule scaled to a 1 s window: 45 other requests a "minute"; we budget 20 (+20 burst).
    async with FakeReplicate(time_factor=0.1, rate_window=1.0, other_limit=45) as fake:
        fake.set_latency("stability-ai/sdxl", processing=5.0)  # ≈0.5 s each
        settings = Settings(
            JANT_DATA_DIR=tmp_path / "data", REPLICATE_API_TOKEN=FakeReplicate.API_TOKEN,
            REPLICATE_BASE_URL=fake.base_url, JANT_ALLOWED_MEDIA_HOSTS="127.0.0.1",
            JANT_POLL_INTERVAL_S=0.001, JANT_REPLICATE_POLL_BUDGET_PER_MIN=20 * 60, JANT_SEED_DEADLINE_S=30,
        )  # fmt: skip
        await seeds_at_once(settings, tmp_path, 30)
        assert fake.counts.throttled == 0
        assert fake.others_per_minute(window=1.0) <= 45


async def test_creates_are_paced_to_the_window_in_the_order_they_asked() -> None:
    pacer = CreatePacer(limit=3, window_s=0.3)  # 3 in any 0.3 s
    assert pacer.expected_wait() == 0
    loop = asyncio.get_running_loop()
    granted: list[tuple[int, float]] = []
    answered: dict[int, float] = {}
    # Requests take different times to reach Replicate: the first one is slow.
    latency = [0.08, 0.0, 0.01, 0.0, 0.05, 0.0, 0.0]

    async def create(i: int) -> None:
        slot = await pacer.turn()
        granted.append((i, loop.time()))
        await asyncio.sleep(latency[i])
        slot.answered()
        answered[i] = loop.time()

    tasks = [asyncio.create_task(create(i)) for i in range(7)]
    await asyncio.sleep(0)
    assert len(granted) == 3  # a burst that fits the window goes at once
    assert pacer.expected_wait() > 0.3  # a create asked now queues behind four others
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert [i for i, _ in granted] == list(range(7))  # first come, first served
    # Replicate counts a create somewhere between its turn and its answer. Whenever one is sent,
    # fewer than 3 earlier ones may have been counted within the last window, wherever in that
    # span they were counted: so, fewer than 3 whose answers came back within the window.
    for k, sent in granted:
        recent = [j for j, _ in granted if j < k and answered[j] > sent - 0.3]
        assert len(recent) < 3, (k, recent)
    assert pacer.granted == 7


async def test_a_burst_of_creates_beyond_replicates_limit_is_paced_not_refused(tmp_path: Path) -> None:
    await media.mp4_bytes(576, 1024, 25, 7)
    # Replicate's rule scaled to a 1 s window: 12 creates a "minute". We keep to 11 a window;
    # thirty seeds asked at once would otherwise meet eighteen 429s.
    async with FakeReplicate(time_factor=0.1, rate_window=1.0, create_limit=12) as fake:
        fake.set_latency("stability-ai/sdxl", processing=1.0)
        settings = Settings(
            JANT_DATA_DIR=tmp_path / "data", REPLICATE_API_TOKEN=FakeReplicate.API_TOKEN,
            REPLICATE_BASE_URL=fake.base_url, JANT_ALLOWED_MEDIA_HOSTS="127.0.0.1",
            JANT_POLL_INTERVAL_S=0.01, JANT_REPLICATE_CREATES_PER_MIN=11, JANT_REPLICATE_RATE_WINDOW_S=1.0,
            JANT_SEED_DEADLINE_S=30,
        )  # fmt: skip
        _, notes = await seeds_at_once(settings, tmp_path, 30)
        assert fake.counts.throttled == 0
        assert fake.counts.total_creates == 30
        assert fake.creates_per_minute(window=1.0) <= 11
        # The teammate is told why a scene has not started yet.
        assert any("create limit" in n for n in notes)


async def test_a_progress_snapshot_does_not_change_when_the_job_moves_on() -> None:
    job = Job(request=AdRequest(product=PRODUCT, mood="tech"), ui=JobUi(status_message_id=1))
    job.storyboard = await OfflineStoryboardPlanner().plan(job.request)
    job.scenes = fresh_scene_states(job.id, job.storyboard)
    before = snapshot(job)
    assert before == job.model_copy(deep=True)
    job.scene(1).clip.status, job.scene(1).clip.progress = StageStatus.RUNNING, 40.0
    job.ui.status_message_id = 2
    job.ui.thread_id = 3
    assert before.scene(1).clip.status is StageStatus.PENDING and before.scene(1).clip.progress == 0.0
    assert before.ui == JobUi(status_message_id=1)
    assert before.storyboard is job.storyboard  # shared: replaced, never changed in place


async def test_seeds_and_clips_waiting_for_the_window_go_before_voice_and_music() -> None:
    pacer = CreatePacer(limit=2, window_s=0.2)
    granted: list[str] = []

    async def create(name: str, background: bool) -> None:
        slot = await pacer.turn(background=background)
        granted.append(name)
        slot.answered()

    order = [("voice-1", True), ("voice-2", True), ("voice-3", True), ("music", True), ("seed", False),
             ("clip", False)]  # fmt: skip
    tasks = []
    for name, background in order:  # asked in this order, one loop turn apart
        tasks.append(asyncio.create_task(create(name, background)))
        await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    # voice-3 already held the turn, waiting for the window: only it goes before the seed.
    assert granted == ["voice-1", "voice-2", "voice-3", "seed", "clip", "music"]


async def test_a_background_create_cancelled_while_it_waits_lets_the_others_through() -> None:
    pacer = CreatePacer(limit=1, window_s=0.1)
    first = await pacer.turn()
    first.answered()
    holder = asyncio.create_task(pacer.turn(background=True))  # takes the turn, sleeps for the window
    waiting = asyncio.create_task(pacer.turn(background=True))
    seed = asyncio.create_task(pacer.turn())
    await asyncio.sleep(0.01)
    waiting.cancel()
    slot = await asyncio.wait_for(holder, 2)
    slot.answered()
    (await asyncio.wait_for(seed, 2)).answered()
    assert waiting.cancelled() and pacer.granted == 3

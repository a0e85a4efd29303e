"""A team that hands the bot a payment card: a cap per ad, a daily and a monthly budget per server.

Seeds and clips come from scripted providers that bill like Replicate (named `replicate-…`, each
prediction reporting 2 GPU-seconds); the price is $0.01 per GPU-second so the figures are round:
the offline planner's 7-scene storyboard is estimated at 7 × (6 s + 90 s) × $0.01 = $6.72 and actually
costs 14 predictions × $0.02 = $0.28.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from pipeline.brand import GuildPolicy
from pipeline.budgets import BudgetExceeded
from pipeline.config import Settings
from pipeline.cost_estimate import estimate_job_cost
from pipeline.models import AdRequest, Job, JobStatus
from pipeline.orchestrator import Orchestrator
from pipeline.providers.base import Providers
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.runtime import Runtime
from pipeline.store import JobStore
from storage.postgres import _Connection as postgres_transaction
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import FakeReplicate
from tests.scripted_providers import CopyComposer, ScriptedImages, ScriptedVideo
from tests.service_fakes import service_env

PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm, dims at night and charges your phone"
GUILD = "4242"
NOW = datetime(2026, 12, 4, 20, 30, tzinfo=UTC)  # 3 h 30 min before the day resets; 27 days before the month
ESTIMATE = 6.72
SPENT = 0.28


def paid_providers() -> Providers:
    images = ScriptedImages("replicate-sdxl", offline=False)
    video = ScriptedVideo("replicate-svd", offline=False)
    return Providers(OfflineStoryboardPlanner(), images, video)  # type: ignore[arg-type]


def offline_providers() -> Providers:
    return Providers(OfflineStoryboardPlanner(), ScriptedImages("seed"), ScriptedVideo("clip"))  # type: ignore[arg-type]


def budget_settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(JANT_DATA_DIR=tmp_path / "data", JANT_RETRY_BACKOFF_S=0.01, JANT_PRICE_PER_GPU_SECOND=0.01,
                    **values)  # fmt: skip


def orchestrator(settings: Settings, store: JobStore, providers: Providers | None = None) -> Orchestrator:
    orch = Orchestrator(settings, store, providers or paid_providers(), composer=CopyComposer())  # type: ignore[arg-type]
    orch.spend_caps.clock = lambda: NOW
    return orch


async def planned(orch: Orchestrator, guild: str | None = GUILD, requester: str = "alice") -> Job:
    job = await orch.create_job(AdRequest(product=PRODUCT, mood="tech"), requester_id=requester, guild_id=guild)
    return await orch.plan(job)


async def nothing_made(store: JobStore, job: Job) -> None:
    stored = await store.get(job.id)
    assert stored is not None and stored.status is JobStatus.AWAITING_APPROVAL
    assert await store.predictions(job.id) == []
    assert await store.reservation(job.id) is None


@pytest.fixture
async def store(tmp_path: Path):
    s = await JobStore.open(tmp_path / "data" / "jant.db")
    yield s
    await s.close()


@pytest.fixture
async def any_store(database: Path | str):
    """A store on SQLite, then on Postgres: the tests of racing approvals and refunds run on both."""
    s = await JobStore.open(database)
    yield s
    await s.close()


# -- the estimate -------------------------------------------------------------------------------


async def test_the_estimate_has_a_line_per_part_and_an_offline_ad_is_free(tmp_path: Path, store: JobStore) -> None:
    settings = budget_settings(tmp_path)
    job = await planned(orchestrator(settings, store))
    assert len(job.scenes) == 7
    est = estimate_job_cost(job, settings)
    assert (est.seeds.usd, est.clips.usd, est.voice, est.music) == (0.42, 6.3, None, None)
    assert est.total_usd == ESTIMATE and est.parts_text() == "seeds $0.42, clips $6.30"

    job.providers |= {"voice": "replicate-minimax-tts", "music": "replicate-music"}
    est = estimate_job_cost(job, settings)
    assert est.voice is not None and est.voice.billed and est.voice.detail.endswith("characters × $0.015/1k")
    assert est.music is not None and est.music.usd == 0.20 and est.total_usd == round(ESTIMATE + est.voice.usd + 0.2, 4)

    offline = await planned(orchestrator(settings, store, offline_providers()))
    est = estimate_job_cost(offline, settings)
    assert est.free and est.parts_text() == "seeds free (local), clips free (local)"


async def test_a_model_priced_per_clip_is_estimated_from_the_registry(tmp_path: Path, store: JobStore) -> None:
    settings = budget_settings(tmp_path)
    job = await planned(orchestrator(settings, store))
    wan = job.model_copy(update={"request": job.request.model_copy(update={"model": "wan-2.2-i2v-fast"})})
    est = estimate_job_cost(wan, settings)
    assert est.clips.usd == round(7 * 0.16, 4) and est.clips.detail == "7 × Wan 2.2 i2v fast clip ($0.16)"
    assert est.seeds.usd == 0.42  # the seeds are SDXL's whatever animates them


# -- refusals, before anything is created -------------------------------------------------------


async def test_an_ad_over_the_per_job_cap_is_refused_with_what_it_costs(tmp_path: Path, store: JobStore) -> None:
    orch = orchestrator(budget_settings(tmp_path, JANT_MAX_JOB_COST_USD=5), store)
    job = await planned(orch)
    with pytest.raises(BudgetExceeded) as refused:
        await orch.approve(job)
    assert refused.value.user_message == (
        "This ad is estimated at $6.72, over the $5.00 limit for one ad (JANT_MAX_JOB_COST_USD). "
        "Nothing was made or charged. A storyboard with fewer scenes costs less; or ask whoever runs the bot "
        "to raise JANT_MAX_JOB_COST_USD."
    )
    await nothing_made(store, job)


async def test_an_ad_over_the_servers_daily_budget_is_refused_saying_what_is_left_and_when(
    tmp_path: Path, store: JobStore
) -> None:
    await store.save_guild_policy(GUILD, GuildPolicy(budget_daily_usd=10))
    orch = orchestrator(budget_settings(tmp_path, JANT_GUILD_DAILY_BUDGET_USD=100), store)  # the server's wins
    first = await planned(orch)
    for scene in range(1, 8):
        orch.providers.get("clip").gates[scene] = asyncio.Event()  # type: ignore[union-attr]  # still running
    task = await orch.approve(first)
    second = await planned(orch, requester="bob")
    with pytest.raises(BudgetExceeded) as refused:
        await orch.approve(second)
    assert refused.value.user_message == (
        "This ad is estimated at $6.72, but this server has $3.28 left of its $10.00 daily budget "
        "($6.72 spent or held today). Nothing was made or charged. The daily budget resets at 00:00 UTC, "
        "in 3 h 30 min. Members with Manage Server or the approver role can raise it with `/brand set budget_daily:`."
    )
    await nothing_made(store, second)
    assert (await orch.spend_caps.left(GUILD)).text() == "$3.28 of $10.00 left today"
    assert (await orch.spend_caps.left("other-server")).text() == "$100.00 of $100.00 left today"
    for gate in orch.providers.get("clip").gates.values():  # type: ignore[union-attr]
        gate.set()
    assert (await asyncio.wait_for(task, 10)).status is JobStatus.COMPLETED
    # The first ad cost $0.28 of the $6.72 it held: the rest is back, and the second ad now fits.
    assert (await orch.spend_caps.left(GUILD)).text() == "$9.72 of $10.00 left today"
    assert (await asyncio.wait_for(await orch.approve(second), 10)).status is JobStatus.COMPLETED
    await orch.shutdown()


async def test_an_ad_over_the_monthly_budget_is_refused_saying_when_the_month_resets(
    tmp_path: Path, store: JobStore
) -> None:
    orch = orchestrator(budget_settings(tmp_path, JANT_GUILD_MONTHLY_BUDGET_USD=8), store)
    done = await asyncio.wait_for(await orch.approve(await planned(orch)), 10)
    assert done.status is JobStatus.COMPLETED
    await store.save_guild_policy(GUILD, GuildPolicy(budget_monthly_usd=6.9))
    job = await planned(orch)
    with pytest.raises(BudgetExceeded) as refused:
        await orch.approve(job)
    assert refused.value.user_message == (
        "This ad is estimated at $6.72, but this server has $6.62 left of its $6.90 monthly budget "
        "($0.28 spent or held this month). Nothing was made or charged. The monthly budget resets on "
        "1 January 2027 at 00:00 UTC, in 27 d 3 h. Members with Manage Server or the approver role can raise it "
        "with `/brand set budget_monthly:`."
    )
    await nothing_made(store, job)


async def test_command_line_jobs_share_a_budget_raised_by_the_setting(tmp_path: Path, store: JobStore) -> None:
    orch = orchestrator(budget_settings(tmp_path, JANT_GUILD_DAILY_BUDGET_USD=5), store)
    job = await planned(orch, guild=None, requester=None)  # type: ignore[arg-type]
    with pytest.raises(BudgetExceeded) as refused:
        await orch.approve(job)
    assert refused.value.user_message == (
        "This ad is estimated at $6.72, but the command line has $5.00 left of its $5.00 daily budget "
        "($0.00 spent or held today). Nothing was made or charged. The daily budget resets at 00:00 UTC, "
        "in 3 h 30 min. Raise JANT_GUILD_DAILY_BUDGET_USD to allow more."
    )


async def test_an_offline_ad_costs_nothing_and_never_meets_a_budget(tmp_path: Path, store: JobStore) -> None:
    await store.save_guild_policy(GUILD, GuildPolicy(budget_daily_usd=0, budget_monthly_usd=0))
    orch = orchestrator(budget_settings(tmp_path, JANT_MAX_JOB_COST_USD=0), store, offline_providers())
    job = await asyncio.wait_for(await orch.approve(await planned(orch)), 10)
    assert job.status is JobStatus.COMPLETED
    assert await store.reservation(job.id) is None
    assert (await orch.spend_caps.left(GUILD)).daily_used == 0


# -- racing approvals ----------------------------------------------------------------------------


async def test_two_approvals_racing_on_one_store_for_the_last_dollars_only_one_wins(
    tmp_path: Path, any_store: JobStore
) -> None:
    store = any_store
    await store.save_guild_policy(GUILD, GuildPolicy(budget_daily_usd=10))
    settings = budget_settings(tmp_path)
    a, b = orchestrator(settings, store), orchestrator(settings, store)  # two bots sharing one connection
    jobs = [await planned(a, requester="alice"), await planned(b, requester="bob")]
    outcomes = await asyncio.gather(a.approve(jobs[0]), b.approve(jobs[1]), return_exceptions=True)
    assert sorted(type(o).__name__ for o in outcomes) == ["BudgetExceeded", "Task"]
    assert [r is not None for r in [await store.reservation(j.id) for j in jobs]].count(True) == 1
    for o in outcomes:
        if isinstance(o, asyncio.Task):
            await asyncio.wait_for(o, 10)
    await a.shutdown()
    await b.shutdown()


async def test_two_processes_racing_for_the_last_dollars_only_one_wins(
    tmp_path: Path, any_store: JobStore, database: Path | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two connections to one database, as a bot and a second worker have: the budget is read and the
    hold written under a lock on the server's budget (SQLite's write lock, a Postgres advisory lock),
    so the later one sees the earlier one's hold."""
    store = any_store
    await store.save_guild_policy(GUILD, GuildPolicy(budget_daily_usd=10))
    # A slow disk or network: the other process gets to run between the reads and the write.
    for cls, name in ((aiosqlite.Connection, "execute_fetchall"), (postgres_transaction, "fetch")):
        read = getattr(cls, name)

        async def slow_read(self: Any, *args: Any, _read: Any = read, **kwargs: Any) -> Any:
            rows = await _read(self, *args, **kwargs)
            await asyncio.sleep(0.005)
            return rows

        monkeypatch.setattr(cls, name, slow_read)
    settings = budget_settings(tmp_path)
    other = await JobStore.open(database)
    try:
        a, b = orchestrator(settings, store), orchestrator(settings, other)
        for _ in range(3):  # several rounds: a race that is lost only sometimes must still fail the test
            jobs = [await planned(a, requester="alice"), await planned(b, requester="bob")]
            outcomes = await asyncio.gather(a.approve(jobs[0]), b.approve(jobs[1]), return_exceptions=True)
            winners = [o for o in outcomes if isinstance(o, asyncio.Task)]
            assert len(winners) == 1, outcomes
            assert isinstance(next(o for o in outcomes if o not in winners), BudgetExceeded)
            for job in jobs:  # end the round: the winner is cancelled and gives its hold back
                for orch in (a, b):
                    live = orch.live_job(job.id)
                    if live is not None:
                        await orch.cancel(live)
            used = (await a.spend_caps.left(GUILD)).daily_used  # what the cancelled winner spent
            await store.save_guild_policy(GUILD, GuildPolicy(budget_daily_usd=used + 10))
        await a.shutdown()
        await b.shutdown()
    finally:
        await other.close()


# -- settling ------------------------------------------------------------------------------------


async def test_a_failed_job_gives_back_what_it_did_not_spend(tmp_path: Path, any_store: JobStore) -> None:
    store = any_store
    await store.save_guild_policy(GUILD, GuildPolicy(budget_daily_usd=10))
    providers = paid_providers()
    providers.get("clip").outcomes.update({s: ["nsfw"] for s in range(1, 8)})  # type: ignore[union-attr]
    orch = orchestrator(budget_settings(tmp_path), store, providers)
    job = await planned(orch)
    task = await orch.approve(job)
    assert (await store.reservation(job.id))["reserved_usd"] == ESTIMATE  # type: ignore[index]
    job = await asyncio.wait_for(task, 10)
    assert job.status is JobStatus.FAILED
    held = await store.reservation(job.id)
    assert held is not None and held["status"] == "settled"
    assert held["settled_usd"] == pytest.approx(0.14)  # seven seeds at $0.02; the refused clips cost nothing
    assert (await orch.spend_caps.left(GUILD)).text() == "$9.86 of $10.00 left today"
    assert [e["detail"] for e in await store.events(job.id) if e["kind"] == "budget_settled"] == [
        "reserved $6.7200, spent $0.1400, returned $6.5800"
    ]
    report = await orch.spend_caps.report(GUILD)  # the spend report's SQL, on both databases
    assert report.total_usd == pytest.approx(0.14) and report.held_jobs == 0
    spend = await store.spend(datetime(2000, 1, 1, tzinfo=UTC), guild_id=GUILD)
    assert [(s[0], s[1], s[4]) for s in spend["by_source"]] == [("seed", "replicate-sdxl", 7)]


async def test_a_cancelled_job_settles_to_what_it_spent(tmp_path: Path, any_store: JobStore) -> None:
    store = any_store
    orch = orchestrator(budget_settings(tmp_path, JANT_GUILD_DAILY_BUDGET_USD=10), store)
    clips = orch.providers.get("clip")
    clips.gates.update({s: asyncio.Event() for s in range(1, 8)})  # type: ignore[union-attr]
    job = await planned(orch)
    await orch.approve(job)
    await asyncio.wait_for(clips.started[7].wait(), 5)  # type: ignore[union-attr]
    await orch.cancel(orch.live_job(job.id) or job)
    held = await store.reservation(job.id)
    assert held is not None and held["status"] == "settled" and held["settled_usd"] == pytest.approx(0.14)


async def test_a_job_resumed_after_a_restart_keeps_its_hold_and_settles_when_it_ends(tmp_path: Path) -> None:
    settings = budget_settings(tmp_path, JANT_GUILD_DAILY_BUDGET_USD=10)
    store = await JobStore.open(tmp_path / "data" / "jant.db")
    orch = orchestrator(settings, store)
    clips = orch.providers.get("clip")
    clips.gates.update({s: asyncio.Event() for s in range(1, 8)})  # type: ignore[union-attr]
    job = await planned(orch)
    await orch.approve(job)
    await asyncio.wait_for(clips.started[7].wait(), 5)  # type: ignore[union-attr]
    await orch.shutdown()  # the process stops; predictions go on at Replicate
    await store.close()

    reopened = await JobStore.open(tmp_path / "data" / "jant.db")
    try:
        held = await reopened.reservation(job.id)
        assert held is not None and (held["status"], held["reserved_usd"]) == ("held", ESTIMATE)
        after = orchestrator(settings, reopened)
        assert (await after.spend_caps.left(GUILD)).text() == "$3.28 of $10.00 left today"
        [task] = await after.resume_all()
        assert (await asyncio.wait_for(task, 10)).status is JobStatus.COMPLETED
        held = await reopened.reservation(job.id)
        assert held is not None and held["status"] == "settled"
        assert (await after.spend_caps.left(GUILD)).text() == f"${10 - SPENT:.2f} of $10.00 left today"
        await after.shutdown()
    finally:
        await reopened.close()


async def test_a_reroll_is_checked_and_held_like_an_approval(tmp_path: Path, store: JobStore) -> None:
    await store.save_guild_policy(GUILD, GuildPolicy(budget_daily_usd=7.5))
    orch = orchestrator(budget_settings(tmp_path), store)
    job = await asyncio.wait_for(await orch.approve(await planned(orch)), 10)
    assert job.status is JobStatus.COMPLETED  # it held $6.72 and spent $0.28: $7.22 left
    clips = orch.providers.get("clip")
    clips.gates.update({s: asyncio.Event() for s in range(1, 8)})  # type: ignore[union-attr]
    other = await planned(orch, requester="bob")
    await orch.approve(other)  # … and another ad, still generating, holds $6.72 of it: $0.50 left
    seed_before = job.scene(3).seed.seed
    with pytest.raises(BudgetExceeded) as refused:
        await orch.reroll_scene(job, 3, "seed")  # a seed ($0.06) and a clip ($0.90)
    assert str(refused.value) == (
        "Re-rolling scene 3 is estimated at $0.96, but this server has $0.50 left of its $7.50 daily budget "
        "($7.00 spent or held today). Nothing was made or charged."
    )
    assert job.scene(3).seed.seed == seed_before and job.status is JobStatus.COMPLETED
    held = await store.reservation(job.id)
    assert held is not None and held["status"] == "settled"

    await orch.cancel(orch.live_job(other.id) or other)  # the other ad is stopped: its hold goes back
    clips.gates.clear()  # type: ignore[union-attr]
    job = await asyncio.wait_for(await orch.reroll_scene(job, 3, "seed"), 10)
    held = await store.reservation(job.id)
    assert held is not None and held["status"] == "settled" and held["settled_usd"] == pytest.approx(0.32)
    await orch.shutdown()


# -- actual spend, through the real clients -----------------------------------------------------


async def test_each_replicate_prediction_records_what_it_cost_and_the_hold_settles_to_their_sum(
    fakes: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path
) -> None:
    """The real `replicate` client against the emulator: SDXL and SVD report `metrics.predict_time`
    (billed at the GPU-second price), the voice is billed per character and the music per run."""
    settings = Settings(**service_env(*fakes, tmp_path / "data"), JANT_GUILD_DAILY_BUDGET_USD="10")
    runtime = await Runtime.open(settings)
    try:
        orch = runtime.orchestrator
        orch.composer = CopyComposer()  # type: ignore[assignment]  # the money is in the predictions, not ffmpeg
        job = await orch.plan(await orch.create_job(AdRequest(product=PRODUCT), requester_id="alice", guild_id=GUILD))
        job = await asyncio.wait_for(await orch.approve(job), 60)
        assert job.status is JobStatus.COMPLETED, job.error
        price = settings.replicate.price_per_gpu_second
        assert job.storyboard is not None
        lines = {s.index: s.voiceover or "" for s in job.storyboard.scenes}
        predictions = await runtime.store.predictions(job.id)
        assert {p["provider"] for p in predictions} == {
            "replicate-sdxl", "replicate-video", "replicate-minimax-tts", "replicate-music"
        }  # fmt: skip
        for p in predictions:
            if p["provider"] in ("replicate-sdxl", "replicate-video"):
                assert p["predict_time"] > 0 and p["cost_usd"] == pytest.approx(p["predict_time"] * price)
            elif p["provider"] == "replicate-minimax-tts":
                per_char = settings.audio.tts_price_per_1k_chars / 1000
                assert p["cost_usd"] == pytest.approx(len(lines[p["scene_index"]]) * per_char, rel=0.05)
            else:
                assert p["cost_usd"] == settings.audio.music_price_per_run
        spent = sum(p["cost_usd"] for p in predictions)
        assert job.cost_usd == pytest.approx(spent, abs=1e-3)
        held = await runtime.store.reservation(job.id)
        assert held is not None and held["status"] == "settled" and held["settled_usd"] == pytest.approx(spent)
        assert held["reserved_usd"] == estimate_job_cost(job, settings).total_usd
        report = await orch.spend_caps.report(GUILD)
        assert report.total_usd == pytest.approx(spent, abs=1e-4) and report.held_jobs == 0
    finally:
        await runtime.close()

"""Quotas and fairness: the user is told the limit and when it frees up; nothing queues silently."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from pipeline.config import Settings
from pipeline.models import AdRequest, JobStatus
from pipeline.orchestrator import Orchestrator
from pipeline.providers.base import Providers
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.quotas import QuotaExceeded, QuotaLimits, check_concurrent, check_daily
from pipeline.store import JobStore
from tests.scripted_providers import CopyComposer, ScriptedImages, ScriptedVideo


def test_daily_limit_message_names_the_limit_and_the_reset() -> None:
    now = datetime(2026, 11, 24, 21, 30, tzinfo=UTC)
    check_daily(QuotaLimits(user_daily=20), 19, now)
    with pytest.raises(QuotaExceeded) as info:
        check_daily(QuotaLimits(user_daily=20), 20, now)
    assert info.value.user_message == (
        "You have made 20 ads today, the daily limit of 20. It resets at 00:00 UTC, in 2 h 30 min."
    )


def test_concurrent_limits_per_user_then_per_guild() -> None:
    limits = QuotaLimits(user_concurrent=2, guild_concurrent=5)
    check_concurrent(limits, 1, 4)
    with pytest.raises(QuotaExceeded, match="You already have 2 ads generating, the limit of 2 at a time"):
        check_concurrent(limits, 2, 0)
    with pytest.raises(QuotaExceeded, match="This server already has 5 ads generating, the limit of 5"):
        check_concurrent(limits, 0, 5)
    check_concurrent(limits, 0, None)  # no guild (DMs, CLI): only the user limit applies


@pytest.fixture
async def orch(settings: Settings):
    settings = settings.model_copy(update={"user_concurrent_jobs": 1, "user_daily_jobs": 2,
                                           "max_concurrent_predictions": 1})  # fmt: skip
    store = await JobStore.open(settings.db_path)
    images, video = ScriptedImages("seed"), ScriptedVideo("clip")
    o = Orchestrator(settings, store, Providers(OfflineStoryboardPlanner(), images, video),  # type: ignore[arg-type]
                     composer=CopyComposer())  # type: ignore[arg-type]  # fmt: skip
    o.test_images = images  # type: ignore[attr-defined]
    yield o
    await o.shutdown()
    await store.close()


async def test_a_third_ad_in_a_day_is_refused_before_anything_is_written(orch: Orchestrator) -> None:
    for _ in range(2):
        await orch.create_job(AdRequest(product="Lumen lamp"), requester_id="u1", guild_id="g1")
    with pytest.raises(QuotaExceeded, match="daily limit of 2"):
        await orch.create_job(AdRequest(product="Lumen lamp"), requester_id="u1", guild_id="g1")
    assert await orch.store.count(requester_id="u1") == 2
    await orch.create_job(AdRequest(product="Lumen lamp"), requester_id="u2", guild_id="g1")  # others unaffected


async def test_a_second_concurrent_approval_is_refused_and_the_job_stays_approvable(orch: Orchestrator) -> None:
    gate = asyncio.Event()
    orch.test_images.gates.update({i: gate for i in range(1, 8)})  # type: ignore[attr-defined]
    first = await orch.plan(await orch.create_job(AdRequest(product="Lumen lamp"), requester_id="u1"))
    second = await orch.plan(await orch.create_job(AdRequest(product="Lumen lamp"), requester_id="u1"))
    task = await orch.approve(first)
    with pytest.raises(QuotaExceeded, match="limit of 1 at a time"):
        await orch.approve(second)
    stored = await orch.store.get(second.id)
    assert stored is not None and stored.status is JobStatus.AWAITING_APPROVAL
    gate.set()
    assert (await asyncio.wait_for(task, 10)).status is JobStatus.COMPLETED
    await asyncio.wait_for(await orch.approve(second), 10)


async def test_a_waiting_job_knows_its_place_in_the_queue(orch: Orchestrator) -> None:
    gate = asyncio.Event()
    orch.test_images.gates.update({i: gate for i in range(1, 8)})  # type: ignore[attr-defined]
    a = await orch.plan(await orch.create_job(AdRequest(product="Lumen lamp"), requester_id="alice"))
    b = await orch.plan(await orch.create_job(AdRequest(product="Brewly coffee"), requester_id="bob"))
    tasks = [await orch.approve(a), await orch.approve(b)]
    live_a, live_b = orch.live_job(a.id), orch.live_job(b.id)
    await asyncio.wait_for(_until(lambda: orch.limiter.waiting >= 2 * len(b.scenes) - 1), 5)
    assert orch.queue_position(live_a) is None  # alice holds the only slot
    assert orch.queue_position(live_b) == 2  # alice's next turn, then bob's: round-robin
    gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)


async def _until(predicate) -> None:  # type: ignore[no-untyped-def]
    while not predicate():  # noqa: ASYNC110 - yield until true; callers bound it with wait_for
        await asyncio.sleep(0.005)

"""Account limits that hold across processes (issue 15): budgets counted in the database.

Stories, each on SQLite and on Postgres, with two stores (two connections: what two processes on one
database have): takers on both never exceed a budget in any window, by the database's own clock; a
create's slot stays held until its answer and counts its window from there, a cancelled wait leaves
nothing held, and a waiter sleeps rather than asks again and again; two runtimes on one database
creating 12 seeds each on the Replicate emulator at once together stay within the create and poll budgets,
where each alone would have kept only to its own (no 429, no more than the budget in any window);
two bots' edit throttles editing one status message keep one edit per interval between them, and
the edits of a channel stay within its budget.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Hashable
from pathlib import Path

import pytest

from bot.edit_throttle import EditThrottle
from bot.status_edit_gate import StatusEditGate, Where
from pipeline.config import DiscordSettings, Settings
from pipeline.models import AdRequest, StageName
from pipeline.moods import mood_preset
from pipeline.providers.base import SeedRequest, StageContext
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.providers.poll_scheduler import CreatePacer
from pipeline.providers.replicate_media import ReplicateImageGenerator
from pipeline.runtime import Runtime
from pipeline.shared_limits import CREATE_HOLD_S, CREATES, Budget, SharedWindow, SharedWindows
from pipeline.store import JobStore
from storage.rate_slots import Taken
from tests.emulators import media
from tests.emulators.fake_replicate import FakeReplicate

PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm"


async def two_stores(database: Path | str) -> tuple[JobStore, JobStore]:
    return await JobStore.open(database), await JobStore.open(database)


def most_in_any_window(times: list[float], window_s: float) -> int:
    """The most of `times` within any half-open span of `window_s` seconds."""
    times = sorted(times)
    return max(sum(1 for t in times[i:] if t < start + window_s - 1e-6) for i, start in enumerate(times))


async def test_takers_in_two_processes_never_exceed_the_budget_in_any_window(database: Path | str) -> None:
    a, b = await two_stores(database)
    budget = Budget("replicate.creates", 4, 0.15)
    windows = [SharedWindow(a.rate_slots, budget), SharedWindow(b.rate_slots, budget)]
    taken: list[tuple[int, Taken]] = []
    started = time.monotonic()

    async def take_many(n: int, process: int) -> None:
        for _ in range(n):
            taken.append((process, await windows[process].take()))

    try:
        # Three tasks in each process, twenty-four takes: six windows' worth.
        await asyncio.wait_for(asyncio.gather(*(take_many(4, p) for p in (0, 1) for _ in range(3))), 15)
    finally:
        await a.close()
        await b.close()
    elapsed = time.monotonic() - started
    assert len(taken) == 24 and {p for p, _ in taken} == {0, 1}
    assert most_in_any_window([t.at for _, t in taken], budget.window_s) <= budget.limit
    assert elapsed >= 5 * budget.window_s - 0.05  # the budget, not the takers' speed, set the pace
    # Waiting is sleeping: no process asked the database more than about once per take.
    assert sum(w.waits for w in windows) <= 2 * len(taken)


async def test_a_create_holds_its_slot_until_its_answer_and_a_cancelled_wait_holds_none(
    database: Path | str,
) -> None:
    a, b = await two_stores(database)
    budget = Budget("replicate.creates", 1, 0.2)
    first, second = SharedWindow(a.rate_slots, budget, hold_s=30), SharedWindow(b.rate_slots, budget, hold_s=30)
    try:
        t1 = await first.take()
        waiting = asyncio.create_task(second.take())
        await asyncio.sleep(0.4)  # twice the window, but the create's answer is not back
        assert not waiting.done()
        assert second.waits <= 6  # it looked again every half window, no more often
        await first.release(t1)
        t2 = await asyncio.wait_for(waiting, 2)
        assert t2.at - t1.at >= 0.4 + budget.window_s - 0.01  # its window counted from the answer

        gave_up = asyncio.create_task(first.take())
        await asyncio.sleep(0.05)
        gave_up.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gave_up
        await second.release(t2)
        t3 = await asyncio.wait_for(first.take(), 2)  # the cancelled wait left the turn free
        assert t3.at - t2.at >= budget.window_s
        await first.release(t3, used=False)  # never sent: free at once
        assert await a.rate_slots.busy(budget.name) == 0
    finally:
        await a.close()
        await b.close()


async def test_a_burst_of_creates_asks_the_database_together_in_the_pacers_order(database: Path | str) -> None:
    """The pacer hands a create on to the shared window and lets the next one have its turn: twenty
    creates at once ask the database in a statement or two, not one round trip each behind the last
    (which made fifty jobs' seeds wait seconds on a worker), and are still granted in the order they
    asked. A create cancelled while it waits for the database gives its place in the pacer back."""
    store = await JobStore.open(database)
    try:
        window = SharedWindow(store.rate_slots, Budget(CREATES, 30, 60.0), hold_s=CREATE_HOLD_S)
        pacer = CreatePacer(30, 60.0)
        pacer.share(window)
        order: list[int] = []

        async def create(n: int) -> None:
            await pacer.turn()
            order.append(n)

        await asyncio.wait_for(asyncio.gather(*(create(n) for n in range(20))), 10)
        assert order == list(range(20))
        assert window.asks <= 3  # the first may find the budget's slots not yet made

        tight = CreatePacer(2, 60.0)
        busy = SharedWindow(store.rate_slots, Budget("test.creates", 1, 60.0), hold_s=30.0)
        tight.share(busy)
        await tight.turn()
        waits = busy.waits  # the first take may have found the budget's slots not yet made
        waiting = asyncio.create_task(tight.turn())
        async with asyncio.timeout(5):
            # It has its place in the pacer and found the database's slot held.
            while busy.waits == waits:  # noqa: ASYNC110 - bounded by the timeout
                await asyncio.sleep(0.01)
        assert tight._in_flight == 2
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert tight._in_flight == 1
    finally:
        await store.close()


async def seeds(runtime: Runtime, count: int, tmp_path: Path) -> int:
    images = runtime.providers.images
    assert isinstance(images, ReplicateImageGenerator)
    storyboard = await OfflineStoryboardPlanner().plan(AdRequest(product=PRODUCT, mood="tech"))

    async def progress(_percent: float, _note: str | None) -> None:
        return None

    results = await asyncio.gather(*(
        images.generate(
            SeedRequest(storyboard=storyboard, scene=storyboard.scenes[0], mood=mood_preset("tech"), product=PRODUCT,
                        width=640, height=1136, steps=20, dest=tmp_path / f"{id(runtime)}-{i}.png"),
            StageContext(job_id="j", scene_index=1, stage=StageName.SEED, attempt=1, on_progress=progress,
                         in_flight=lambda: count),
        )
        for i in range(count)
    ))  # fmt: skip
    return sum(r.path.exists() for r in results)


async def test_two_runtimes_on_one_database_keep_replicates_limits_together(
    database: Path | str, tmp_path: Path
) -> None:
    await media.mp4_bytes(576, 1024, 25, 7)
    # Replicate's rules scaled to a 1 s "minute": 12 creates and 45 other requests. Each runtime alone
    # keeps to 11 creates and 30 polls a window; two side by side, each on its own, would send 22 and 60.
    async with FakeReplicate(time_factor=0.1, rate_window=1.0, create_limit=12, other_limit=45) as fake:
        fake.set_latency("stability-ai/sdxl", processing=3.0)
        url = {"JANT_DATABASE_URL": database} if isinstance(database, str) else {"JANT_DB_PATH": database}
        settings = Settings(
            JANT_DATA_DIR=tmp_path / "data", REPLICATE_API_TOKEN=FakeReplicate.API_TOKEN,
            REPLICATE_BASE_URL=fake.base_url, JANT_ALLOWED_MEDIA_HOSTS="127.0.0.1", JANT_SHARED_LIMITS="on",
            JANT_POLL_INTERVAL_S=0.01, JANT_REPLICATE_POLL_BUDGET_PER_MIN=30 * 60,
            JANT_REPLICATE_CREATES_PER_MIN=11, JANT_REPLICATE_RATE_WINDOW_S=1.0, JANT_SEED_DEADLINE_S=30, **url,
        )  # fmt: skip
        runtimes = [await Runtime.open(settings), await Runtime.open(settings)]
        try:
            assert all(r.shared is not None for r in runtimes)
            made = await asyncio.wait_for(asyncio.gather(*(seeds(r, 12, tmp_path) for r in runtimes)), 60)
        finally:
            for r in runtimes:
                await r.close()
        assert made == [12, 12]
        assert fake.counts.throttled == 0
        assert fake.counts.total_creates == 24
        assert fake.creates_per_minute(window=1.0) <= 11
        assert fake.others_per_minute(window=1.0) <= 30 + 1  # a window's edge may hold one poll more


async def edits_from_two_bots(
    database: Path | str, settings: DiscordSettings, where: dict[str, Where], seconds: float
) -> list[tuple[str, float, float]]:
    """Two bots (two stores, two throttles with their gates) keep editing every key of `where` for
    `seconds`; (key, start, end) of every write that reached 'Discord'."""
    stores = await two_stores(database)
    writes: list[tuple[str, float, float]] = []
    throttles: list[EditThrottle[int]] = []

    def locate(key: Hashable) -> Where | None:
        return where.get(str(key))

    for store in stores:
        gate = StatusEditGate(SharedWindows(store.rate_slots), settings, locate)
        throttles.append(EditThrottle(settings.status_edit_interval_s, gate=gate))

    def writer(key: str):  # type: ignore[no-untyped-def]
        async def write(_state: int) -> None:
            start = time.monotonic()
            await asyncio.sleep(0.01)  # Discord's answer
            writes.append((key, start, time.monotonic()))

        return write

    try:
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            n += 1
            for throttle in throttles:
                for key in where:
                    throttle.submit(key, n, writer(key))
            await asyncio.sleep(0.01)
        for throttle in throttles:
            for key in where:
                assert await throttle.flush(key, wait_s=10)
    finally:
        for throttle in throttles:
            await throttle.close()
        for store in stores:
            await store.close()
    return writes


async def test_two_bots_edit_one_status_message_at_most_once_per_interval(database: Path | str) -> None:
    settings = DiscordSettings(JANT_STATUS_EDIT_INTERVAL_S=0.2, JANT_STATUS_CHANNEL_EDITS=50)
    writes = await edits_from_two_bots(database, settings, {"job-1": Where(1, 11)}, seconds=1.2)
    spans = sorted((start, end) for _, start, end in writes)
    assert len(spans) >= 4  # both kept editing
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start - end >= 0.2 - 0.01, spans  # never two edits of the message within the interval


async def test_two_bots_keep_a_channels_edits_within_its_budget(database: Path | str) -> None:
    settings = DiscordSettings(
        JANT_STATUS_EDIT_INTERVAL_S=0.05, JANT_STATUS_CHANNEL_EDITS=2, JANT_STATUS_CHANNEL_WINDOW_S=0.5
    )
    where = {"job-1": Where(7, 71), "job-2": Where(7, 72)}
    writes = await edits_from_two_bots(database, settings, where, seconds=1.0)
    assert {key for key, _, _ in writes} == set(where)
    for key, start, _ in writes:
        # Edits the channel may already have counted when this one went: fewer than its budget.
        recent = [k for k, s, e in writes if s < start and e > start - 0.5]
        assert len(recent) < 2, (key, start, writes)


async def test_a_database_that_cannot_be_reached_leaves_requests_to_their_own_pacer(database: Path | str) -> None:
    store = await JobStore.open(database)
    window = SharedWindow(store.rate_slots, Budget("replicate.polls", 1, 1.0))
    assert isinstance(await window.take_or_go(), Taken)
    await store.close()  # the database goes away under a running worker
    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
        await window.take()
    assert await asyncio.wait_for(window.take_or_go(), 5) is None  # the poll goes; nothing hangs

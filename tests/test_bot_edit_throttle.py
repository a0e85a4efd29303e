"""The status-message edit throttle, on an injected clock: coalescing, spacing, failures, the final state."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from bot.edit_throttle import EditThrottle


class FakeClock:
    """Monotonic time that moves only when the test advances it; `sleep` wakes sleepers in deadline order."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, fut))
        await fut

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its own deadline."""
        target = self.now + seconds
        await settle()
        while True:
            due = sorted((d, f) for d, f in self._sleepers if d <= target and not f.done())
            if not due:
                break
            deadline, fut = due[0]
            self._sleepers.remove((deadline, fut))
            self.now = max(self.now, deadline)
            fut.set_result(None)
            await settle()
        self.now = target
        await settle()


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"429, retry after {retry_after}")
        self.retry_after = retry_after


class Recorder:
    def __init__(self, clock: FakeClock, latency: float = 0.0) -> None:
        self.clock, self.latency = clock, latency
        self.writes: list[tuple[float, object]] = []
        self.failures: list[BaseException] = []  # raised on the next calls, in order

    async def __call__(self, payload: object) -> None:
        started = self.clock.now
        if self.latency:
            await self.clock.sleep(self.latency)
        if self.failures:
            raise self.failures.pop(0)
        self.writes.append((started, payload))


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def written(throttle: EditThrottle, key: str, clock: FakeClock, within: float = 120.0) -> None:
    """Advance simulated time until the throttle has written everything for `key`."""
    for _ in range(int(within * 4)):
        if not throttle.pending(key) and await throttle.flush(key, wait_s=0.01):
            return
        await clock.advance(0.25)
    raise AssertionError(f"{key} still pending after {within} simulated seconds")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_a_burst_of_states_becomes_one_immediate_edit_then_the_latest_after_the_interval(clock) -> None:
    throttle: EditThrottle[int] = EditThrottle(2.0, clock=clock, sleep=clock.sleep)
    write = Recorder(clock)
    throttle.submit("status", 1, write)
    await settle()
    for n in range(2, 11):
        throttle.submit("status", n, write)
    await written(throttle, "status", clock)
    assert write.writes == [(0.0, 1), (2.0, 10)]


async def test_edits_are_spaced_from_the_end_of_the_previous_edit(clock) -> None:
    throttle: EditThrottle[int] = EditThrottle(2.0, clock=clock, sleep=clock.sleep)
    write = Recorder(clock, latency=0.7)  # a slow round trip must not shrink the gap Discord sees
    for n in range(30):
        throttle.submit("status", n, write)
        await clock.advance(0.25)
    await written(throttle, "status", clock)
    starts = [t for t, _ in write.writes]
    assert all(b - a >= 2.0 + 0.7 - 1e-9 for a, b in itertools.pairwise(starts))
    assert write.writes[-1][1] == 29  # the final state is always written
    assert len(write.writes) < 10


async def test_a_post_counts_as_a_write_so_the_first_edit_waits(clock) -> None:
    throttle: EditThrottle[str] = EditThrottle(2.0, clock=clock, sleep=clock.sleep)
    write = Recorder(clock)
    throttle.note_write("status")
    throttle.submit("status", "first edit", write)
    await written(throttle, "status", clock)
    assert write.writes == [(2.0, "first edit")]


async def test_a_failed_edit_keeps_the_latest_state_and_retries_on_the_next_tick(clock, caplog) -> None:
    caplog.set_level(logging.WARNING)
    throttle: EditThrottle[str] = EditThrottle(2.0, clock=clock, sleep=clock.sleep)
    write = Recorder(clock)
    write.failures = [RateLimited(5.0)]
    throttle.submit("status", "a", write)
    await settle()
    assert write.writes == [] and throttle.pending("status")  # not lost
    await clock.advance(3.0)
    assert write.writes == []  # still backing off, as the 429 asked
    throttle.submit("status", "b", write)  # a newer state arrives while we back off: it wins
    await written(throttle, "status", clock)
    assert write.writes == [(5.0, "b")]  # honoured retry_after, then wrote the latest
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_failed_final_state_is_retried_until_written(clock) -> None:
    throttle: EditThrottle[str] = EditThrottle(2.0, clock=clock, sleep=clock.sleep)
    write = Recorder(clock)
    write.failures = [OSError("connection reset"), RuntimeError("503")]
    throttle.submit("status", "final", write)
    await written(throttle, "status", clock)
    assert [p for _, p in write.writes] == ["final"]
    assert write.writes[0][0] == pytest.approx(2.0 + 4.0)  # backs off: one interval, then two


async def test_it_gives_up_on_a_message_that_can_never_be_edited(clock) -> None:
    throttle: EditThrottle[str] = EditThrottle(2.0, clock=clock, sleep=clock.sleep, give_up_after=3)
    write = Recorder(clock)
    write.failures = [RuntimeError("gone")] * 10
    throttle.submit("status", "x", write)
    await written(throttle, "status", clock)
    assert write.writes == [] and len(write.failures) == 7
    assert not throttle.pending("status")


async def test_messages_are_throttled_independently(clock) -> None:
    throttle: EditThrottle[str] = EditThrottle(2.0, clock=clock, sleep=clock.sleep)
    a, b = Recorder(clock), Recorder(clock)
    throttle.submit("job-a", "a1", a)
    throttle.submit("job-b", "b1", b)
    await settle()
    assert a.writes == [(0.0, "a1")] and b.writes == [(0.0, "b1")]


async def test_idle_messages_are_forgotten_but_recent_ones_keep_their_spacing(clock) -> None:
    throttle: EditThrottle[int] = EditThrottle(2.0, clock=clock, sleep=clock.sleep)
    write = Recorder(clock)
    for key in range(300):
        throttle.submit(key, key, write)
    await settle()
    await clock.advance(2.0)
    throttle.submit("recent", 0, write)
    throttle.note_write("recent")
    throttle.submit("new", 1, write)  # more than 256 slots: the 300 idle ones are dropped
    assert throttle.writes(0) == 0 and throttle.pending("recent")

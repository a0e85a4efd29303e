"""The shared prediction cap is fair between teammates; the retry policy is pure and bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from pipeline.errors import ProviderError, SafetyRejection, StageTimeout
from pipeline.limiter import FairLimiter
from pipeline.retry import RetryDecision, RetryPolicy, classify


async def test_waiting_slots_are_granted_round_robin_between_owners() -> None:
    limiter = FairLimiter(1)
    order: list[str] = []
    gate = asyncio.Event()

    async def hold() -> None:
        async with limiter.slot("holder"):
            await gate.wait()

    async def work(owner: str) -> None:
        async with limiter.slot(owner):
            order.append(owner)

    holder = asyncio.create_task(hold())
    await asyncio.wait_for(_until(lambda: limiter.in_flight == 1), 2)
    # Alice queues five predictions before Bob queues his two: Bob must not wait for all of Alice's.
    tasks = [asyncio.create_task(work("alice")) for _ in range(5)]
    await asyncio.wait_for(_until(lambda: limiter.waiting == 5), 2)
    tasks += [asyncio.create_task(work("bob")) for _ in range(2)]
    await asyncio.wait_for(_until(lambda: limiter.waiting == 7), 2)
    gate.set()
    await asyncio.wait_for(asyncio.gather(holder, *tasks), 5)
    assert order == ["alice", "bob", "alice", "bob", "alice", "alice", "alice"]
    assert limiter.in_flight == 0


async def test_a_cancelled_waiter_gives_up_its_place() -> None:
    limiter = FairLimiter(1)
    await limiter.acquire("a")
    waiter = asyncio.create_task(limiter.acquire("b"))
    await asyncio.wait_for(_until(lambda: limiter.waiting == 1), 2)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.waiting == 0
    limiter.release()
    assert limiter.in_flight == 0


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():  # noqa: ASYNC110 - yield until true; callers bound it with wait_for
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (ProviderError("GPU interrupted", retryable=True), True),
        (ProviderError("bad input", retryable=False), False),
        (SafetyRejection("NSFW content detected"), False),
        (StageTimeout("no answer in 300 s"), True),
        (TimeoutError(), True),
        (ConnectionResetError("reset"), True),
        (ValueError("a bug"), False),
    ],
)
def test_classification(exc: BaseException, retry: bool) -> None:
    assert classify(exc).retry is retry


def test_backoff_doubles_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_attempts=3, backoff_base_s=2.0)
    plain = RetryDecision(True, "5xx")
    assert [policy.delay(n, plain) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert policy.delay(1, RetryDecision(True, "429", retry_after=7.0)) == 7.0
    assert policy.delay(1, RetryDecision(True, "429", retry_after=999.0)) == 60.0


def test_attempts_are_bounded() -> None:
    policy = RetryPolicy(max_attempts=3)
    ok = RetryDecision(True, "flaky")
    assert policy.should_retry(1, ok) and policy.should_retry(2, ok)
    assert not policy.should_retry(3, ok)
    assert not policy.should_retry(1, RetryDecision(False, "nsfw"))

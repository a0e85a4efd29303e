"""When to poll each Replicate prediction, so that many in flight share one request budget well.

Replicate allows an account 3000 non-create requests a minute. Polling every prediction on the
same widening interval (in flight × 60 / budget) spends that budget evenly — on clips that have
a minute to go as much as on the one that is finishing — so with 300 predictions in flight each
completion is noticed 3–4 s late on average, twice per scene. Instead:

- `PollPlan` (pure, one per prediction) estimates when its prediction will end, from its own
  sampling bar (two readings give a rate; one reading and the create time give a bound) plus the
  model's usual tail after the bar (VAE decode, encoding; learned per model by `TailEstimate`),
  and asks for the next poll half-way to that end: sparse while far, every `base` seconds close to
  it, backing off again if the estimate proves early. Without any estimate (queued, no bar yet) it
  asks for its fair share of the budget, the old interval.
- `PollScheduler` (one per process and account) hands out the budget as a token bucket refilled
  at budget/60 per second and, among polls that are due, serves the earliest deadline first. A poll
  close to an expected end has a short deadline (`base`), so when the budget is tight it goes
  before the progress check of a clip that has a minute left.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.shared_limits import SharedWindow
    from storage.rate_slots import Taken

MAX_GAP_BASES = 10  # never more than 10 base intervals between polls (progress stays fresh) …
# … unless the fair share of the budget is longer than that (hundreds in flight).
NEAR_END_SHARE = 0.25  # close to its expected end, a prediction is polled 4× as often as its fair share
TAIL_WEIGHT = 0.3  # EWMA weight of the newest tail observation


def fair_share(base_s: float, in_flight: int, budget_per_min: float) -> float:
    """Seconds between polls of one prediction if all in flight were polled alike within budget."""
    return max(base_s, max(1, in_flight) * 60.0 / budget_per_min)


@dataclass
class TailEstimate:
    """Per model: seconds between the end of the sampling bar and the prediction's end."""

    seconds: float = 0.0
    samples: int = 0

    def learn(self, observed: float) -> None:
        observed = max(0.0, observed)
        if self.samples == 0:
            self.seconds = observed
        else:
            self.seconds += TAIL_WEIGHT * (observed - self.seconds)
        self.samples += 1


@dataclass
class PollPlan:
    """What one prediction has shown so far, and when it is worth looking again."""

    created: float  # when we created (or resumed) it, on the scheduler's clock
    base: float  # the shortest gap between polls
    readings: list[tuple[float, float]] = field(default_factory=list)  # (time, fraction of the bar) < 1
    bar_done_seen: float | None = None  # first poll that found the bar complete
    last_running: float | None = None  # the last poll that found it not finished
    looks: int = 0  # answers seen that found it not finished (the create's answer is the first)

    def observe(self, now: float, fraction: float | None) -> None:
        """Record one poll of the still running prediction, with its sampling bar (None: no bar yet)."""
        self.last_running = now
        self.looks += 1
        if fraction is None:
            return
        if fraction >= 1.0:
            if self.bar_done_seen is None:
                self.bar_done_seen = now
            return
        if fraction > 0.0 and (not self.readings or fraction > self.readings[-1][1]):
            self.readings.append((now, fraction))

    def bar_end(self) -> float | None:
        """When the sampling bar ends (or ended), extrapolated from the readings."""
        if len(self.readings) >= 2:
            (t0, f0), (t1, f1) = self.readings[0], self.readings[-1]
            if t1 > t0 and f1 > f0:
                estimate = t1 + (1.0 - f1) * (t1 - t0) / (f1 - f0)
                return min(estimate, self.bar_done_seen) if self.bar_done_seen is not None else estimate
        if self.readings:
            # One reading: as if sampling began at create time — the latest it can end, at that rate.
            t1, f1 = self.readings[-1]
            estimate = self.created + (t1 - self.created) / f1
            return min(estimate, self.bar_done_seen) if self.bar_done_seen is not None else estimate
        return self.bar_done_seen

    def tail_seen(self) -> float | None:
        """After the end: how long it ran past its bar, at least. The lower bound (the last poll that
        found it running), so that a late poll does not teach us a longer tail and poll later still."""
        end = self.bar_end()
        if end is None or self.last_running is None:
            return None
        return max(0.0, self.last_running - end)

    def expected_end(self, tail_s: float) -> float | None:
        end = self.bar_end()
        return None if end is None else end + tail_s

    def next_poll(self, now: float, share_s: float, tail_s: float) -> tuple[float, float]:
        """(due, deadline) of the next poll: not before `due`, and worth doing by `deadline`.

        `share_s` is the prediction's fair share of the budget (the interval if all were polled
        alike); close to an expected end it is polled 4× as often, far from it or with nothing to go
        on less often, so the budget goes where a completion is about to be noticed.
        """
        shortest = max(self.base, share_s * NEAR_END_SHARE)
        longest = max(self.base * MAX_GAP_BASES, share_s)
        end = self.expected_end(tail_s)
        if end is not None:
            gap = abs(end - now) / 2  # half-way to the expected end; past it, back off by half the lateness
        elif self.looks <= 1:
            gap = shortest  # an early look: a first reading of the bar gives an estimate
        else:
            gap = share_s  # queued, or no bar yet: nothing to go on
        gap = min(max(gap, shortest), longest)
        return now + gap, now + 2 * gap


class PollScheduler:
    """One request budget shared by every poll of the process: earliest deadline first, paced."""

    def __init__(self, per_minute: float, *, burst_s: float = 1.0) -> None:
        """`per_minute` polls a minute on average; at most `burst_s` seconds' worth at once (give it
        the base poll interval, so a benchmark that compresses time compresses the burst too)."""
        if per_minute <= 0:
            raise ValueError("the poll budget must be positive")
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)  # at most budget + capacity in any minute
        self._tokens = self.capacity
        self._refilled: float | None = None
        self._seq = itertools.count()
        self._pending: list[tuple[float, int, float, asyncio.Future[None]]] = []  # by due
        self._ready: list[tuple[float, int, asyncio.Future[None]]] = []  # by deadline
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.granted = 0
        self._shared: SharedWindow | None = None

    def share(self, window: SharedWindow) -> None:
        """Also keep to a budget every process on the database spends (`pipeline.shared_limits`): a poll
        this scheduler lets go then waits for a slot of it too."""
        self._shared = window

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    @property
    def waiting(self) -> int:
        return sum(not e[-1].done() for e in self._pending) + sum(not e[-1].done() for e in self._ready)

    async def turn(self, due: float, deadline: float) -> None:
        """Wait until this poll may be sent: it is due, a token is free and no more urgent poll waits."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._pending, (due, next(self._seq), deadline, fut))
        self._dispatch()
        await fut
        if self._shared is not None:
            await self._shared.take_or_go()

    def _dispatch(self) -> None:
        now = self.now()
        if self._refilled is None:
            self._refilled = now
        self._tokens = min(self.capacity, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        while self._pending and self._pending[0][0] <= now:
            _due, seq, deadline, fut = heapq.heappop(self._pending)
            if not fut.done():
                heapq.heappush(self._ready, (deadline, seq, fut))
        while self._ready and self._tokens >= 1.0:
            *_, fut = heapq.heappop(self._ready)
            if fut.done():  # its poller was cancelled
                continue
            self._tokens -= 1.0
            self.granted += 1
            fut.set_result(None)
        while self._ready and self._ready[0][-1].done():
            heapq.heappop(self._ready)
        if self._ready:
            self._wake_at(now + (1.0 - self._tokens) / self.rate)
        elif self._pending:
            self._wake_at(self._pending[0][0])

    def _wake_at(self, when: float) -> None:
        if self._timer is not None:
            if self._timer_at is not None and self._timer_at <= when:
                return  # already waking up in time
            self._timer.cancel()
        self._timer_at = when
        self._timer = asyncio.get_running_loop().call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self._dispatch()


class CreatePacer:
    """Prediction creates of one Replicate account, paced so that Replicate never refuses one.

    Replicate allows 600 creates a minute per account and answers the next with a 429, which the
    client does not retry (POST) and which would cost the stage an attempt. This mirrors the rule:
    at most `limit` creates in any `window_s` seconds, in the order they asked. A burst goes at once
    as long as the window has room — fifty ads approved together send their 300 seeds straight
    away — and only what would exceed the window waits.

    `turn(background=True)` is for a create with time to spare (a voice line, the music bed: they
    take seconds and are needed only when the clips are): when the window is full, every waiting
    foreground create (a seed, a clip: the ad waits on each) goes before it.

    Replicate counts a create when it arrives, which we cannot see: it is some time after we send
    it and before its answer comes back. So a create holds its place from its turn until a window
    after its answer (`CreateSlot.answered`). Stamping the turn instead lets two creates whose
    requests took different times to arrive land in one of Replicate's windows (seen: 12 of 11).
    """

    def __init__(self, limit: int, window_s: float = 60.0) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("the create limit must be at least 1 and the window positive")
        self.limit = limit
        self.window_s = window_s
        self._answered: list[float] = []  # heap: when answered creates' answers came back
        self._in_flight = 0
        self._an_answer = asyncio.Event()
        self._lock = _TurnOrder()  # foreground first, then in the order they asked
        self._waiting = 0
        self.granted = 0
        self._shared: SharedWindow | None = None

    def share(self, window: SharedWindow) -> None:
        """Also keep to a budget every process on the database spends (`pipeline.shared_limits`): a create
        whose turn has come here then waits for a slot of it, still in this pacer's order."""
        self._shared = window

    def _prune(self, now: float) -> None:
        while self._answered and self._answered[0] <= now - self.window_s:
            heapq.heappop(self._answered)

    def _occupied(self) -> int:
        return len(self._answered) + self._in_flight

    def expected_wait(self) -> float:
        """Seconds a create asked for now would wait for its turn (0: it would go at once)."""
        now = asyncio.get_running_loop().time()
        self._prune(now)
        # A create still in flight is counted as answered now: its answer is usually moments away.
        leaving = sorted(self._answered) + [now] * self._in_flight
        over = len(leaving) + self._waiting - self.limit  # creates that must leave the window first
        shared = self._shared.expected_wait() if self._shared is not None else 0.0
        if over < 0:
            return shared
        if over < len(leaving):
            return max(shared, leaving[over] + self.window_s - now)
        # The rest leave a window after creates that have not had their turn yet: a window from now.
        return max(shared, self.window_s * (2 + (over - len(leaving)) // self.limit))

    async def turn(self, *, background: bool = False) -> CreateSlot:
        """Wait until one more create fits the window, and take its place. Send the create, then
        call `answered()` on the slot when its answer (or failure) is back."""
        loop = asyncio.get_running_loop()
        self._waiting += 1
        try:
            async with self._lock.held(background=background):
                while True:
                    now = loop.time()
                    self._prune(now)
                    if self._occupied() < self.limit:
                        break
                    if self._answered:
                        await asyncio.sleep(self._answered[0] + self.window_s - now)
                    else:  # every place is held by a create in flight: its answer starts its window
                        self._an_answer.clear()
                        await self._an_answer.wait()
                # Its place here is held from now on. Other processes' creates count too: it queues for the
                # database's window in this order, and waits for it after letting the next create have
                # its turn here, so a burst of creates asks the database in one statement, not one each
                # (one round trip per create, behind every other write, made 300 seeds wait seconds).
                self._in_flight += 1
                window = self._shared
                turn = window.ask() if window is not None else None
        finally:
            self._waiting -= 1
        try:
            taken = await window.wait_or_go(turn) if window is not None and turn is not None else None
        except BaseException:  # cancelled before it was sent: its place frees now
            self._in_flight -= 1
            self._an_answer.set()
            raise
        self.granted += 1
        return CreateSlot(self, taken)

    def _release(self, taken: Taken | None = None) -> None:
        self._in_flight -= 1
        heapq.heappush(self._answered, asyncio.get_running_loop().time())
        self._an_answer.set()
        if taken is not None and self._shared is not None:
            self._shared.release_soon(taken)  # its window in the database counts from this answer too


class _TurnOrder:
    """The pacer's lock: handed on to the waiting foreground creates before the background ones,
    each group in the order it asked. (The holder may be a background create sleeping until the
    window has room: at most that one create goes before a foreground one that came later.)"""

    def __init__(self) -> None:
        self._held = False
        self._queue: list[tuple[bool, int, asyncio.Future[None]]] = []  # heap: foreground (False) first
        self._order = itertools.count()

    @contextlib.asynccontextmanager
    async def held(self, *, background: bool) -> AsyncIterator[None]:
        await self._acquire(background)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, background: bool) -> None:
        if not self._held and not self._queue:
            self._held = True
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._queue, (background, next(self._order), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # handed to us just as we were cancelled: hand it on
            raise  # a cancelled future is skipped by _release

    def _release(self) -> None:
        while self._queue:
            fut = heapq.heappop(self._queue)[2]
            if not fut.done():
                fut.set_result(None)  # still held: handed over
                return
        self._held = False


class CreateSlot:
    """One create's place in the pacer's window."""

    def __init__(self, pacer: CreatePacer, taken: Taken | None = None) -> None:
        self._pacer: CreatePacer | None = pacer
        self._taken = taken  # its slot in the database's window, when the budget is shared

    def answered(self) -> None:
        """The create's answer (or its failure) is back: Replicate counted it by now, if at all."""
        if self._pacer is not None:
            self._pacer._release(self._taken)
            self._pacer = None

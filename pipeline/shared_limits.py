"""Request budgets that every process on one database spends together (issue 15, "Account limits are global").

With `JANT_ENGINE=dbos` several processes — workers, a gateway bot, `jant makead` — use one Replicate
account and one Discord bot. Each process's own pacers (`CreatePacer`, `PollScheduler`, the bot's
`EditThrottle`) keep to the account's limits alone, so two of them together could spend twice the
budget. A `SharedWindow` is a budget of N requests per window counted in the database
(`storage.rate_slots`: a row per slot, one conditional UPDATE per take): the process's own pacer still
decides which of its requests goes next; the shared window then decides when, for everybody.

Waiting never blocks the loop and never hammers the database: one task per process and budget asks
the database for as many slots as the process's requests are waiting for, in one statement, and hands
them out in the order they asked; when every slot is busy it sleeps until the soonest one frees, as
the database reports it. A slot held by a request
whose answer is still to come frees a window after that answer, whenever it comes: a waiter looks
again every half window meanwhile, so it learns the freeing time before it arrives and loses nothing.
A cancelled wait leaves nothing behind: a slot taken by a take whose caller was cancelled meanwhile
is handed back.

When: `StorageSettings.limits_shared` — with `JANT_ENGINE=dbos` (`JANT_SHARED_LIMITS=auto`, the
default), or with `JANT_SHARED_LIMITS=on` for the local engine too (a `jant makead` beside a `jant
bot` on one data directory). The local engine's default stays one process's own pacers: no database
write per poll for a bot that is alone.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from collections import deque
from dataclasses import dataclass

from storage.rate_slots import RateSlots, Taken

log = logging.getLogger(__name__)

# A create holds its slot until its answer is back (Replicate counts it on arrival, some time before
# that) and a window after; if the process dies first, the slot frees this long after the take.
CREATE_HOLD_S = 120.0
# The same for an edit of a Discord message (discord.py may wait out a 429 inside one edit).
EDIT_HOLD_S = 60.0
# After a miss, sleep at least this long (or a quarter of the window, if shorter): slots that free one
# after another are then taken a few per statement, not one each — at most ~20 statements a second per
# process and budget while it waits, for at most 50 ms of delay.
COALESCE_S = 0.05
KEEP_WINDOWS = 512  # per-message windows kept before idle ones are dropped (a long-lived bot)

CREATES = "replicate.creates"
POLLS = "replicate.polls"


@dataclass(frozen=True)
class Budget:
    """At most `limit` requests in any `window_s` seconds, across every process on the database."""

    name: str
    limit: int
    window_s: float

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window_s <= 0:
            raise ValueError("a budget needs at least one request per positive window")


def poll_budget(per_minute: float, burst_s: float) -> Budget:
    """Replicate's poll budget as a window: `per_minute` polls a minute, at most `burst_s` seconds' worth
    at once — the same burst the process's own `PollScheduler` allows, so the total stays smooth."""
    window_s = max(burst_s, 60.0 / per_minute)  # at least one poll per window
    return Budget(POLLS, max(1, math.floor(per_minute * window_s / 60.0)), window_s)


class SharedWindow:
    """One budget counted in the database, as seen by one process."""

    def __init__(self, slots: RateSlots, budget: Budget, *, hold_s: float = 0.0) -> None:
        self.slots = slots
        self.budget = budget
        # 0: a take is its request (a poll). Otherwise the slot is held until `release` (at most hold_s)
        # and counts its window from then: the request's answer, not its start.
        self.hold_s = hold_s
        # The process's requests waiting for a slot, in order; one task (the asker) speaks for them all.
        self._waiting: deque[asyncio.Future[Taken]] = deque()
        self._asker: asyncio.Task[None] | None = None
        self._free_hint: float | None = None  # loop time the database said the next slot frees
        self._releases: set[asyncio.Task[None]] = set()
        self.taken = 0
        self.asks = 0  # statements sent to take slots
        self.waits = 0  # of them, those that found every slot busy and slept

    def expected_wait(self) -> float:
        """Seconds until the next slot frees, as last seen (0 when the last take found one)."""
        if self._free_hint is None:
            return 0.0
        return max(0.0, self._free_hint - asyncio.get_running_loop().time())

    @property
    def idle(self) -> bool:
        return not self._waiting and (self._asker is None or self._asker.done()) and not self._releases

    async def take(self) -> Taken:
        """Wait (cancellably) for a free slot and take it."""
        return await self.wait(self.ask())

    def ask(self) -> asyncio.Future[Taken]:
        """Queue for a slot now, without waiting: slots are granted in the order of the asks. Then `wait`
        (or `wait_or_go`) for it — a caller that orders its own requests under a lock asks under it and
        waits after letting go, so that its next requests join the same statement to the database."""
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[Taken] = loop.create_future()
        self._waiting.append(turn)
        if self._asker is None or self._asker.done():
            self._asker = loop.create_task(self._ask_for_waiting(), name=f"shared-window-{self.budget.name}")
        return turn

    async def wait(self, turn: asyncio.Future[Taken]) -> Taken:
        """The slot `ask` queued for (cancellable: a cancelled wait leaves nothing taken)."""
        try:
            return await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self.release_soon(turn.result(), used=False)  # granted just as we were cancelled: not sent
            elif turn in self._waiting:
                self._waiting.remove(turn)
            raise

    async def take_or_go(self) -> Taken | None:
        """`take`, but when the database cannot be reached the request goes anyway (None): the process's
        own pacer still keeps it to the account's limits alone, and a paid stage must not fail for it."""
        return await self.wait_or_go(self.ask())

    async def wait_or_go(self, turn: asyncio.Future[Taken]) -> Taken | None:
        """`wait`, going anyway (None) when the database cannot be reached, as `take_or_go`."""
        try:
            return await self.wait(turn)
        except Exception as exc:
            log.warning("the shared budget %s could not be checked (%r); going on this process's own pacing",
                        self.budget.name, exc)  # fmt: skip
            return None

    async def _ask_for_waiting(self) -> None:
        loop = asyncio.get_running_loop()
        holder = secrets.token_hex(8) if self.hold_s else None
        busy_s = self.budget.window_s + self.hold_s
        try:
            while True:
                while self._waiting and self._waiting[0].done():
                    self._waiting.popleft()
                if not self._waiting:
                    return
                want = min(len(self._waiting), self.budget.limit)
                self.asks += 1
                outcome = await self.slots.take(self.budget.name, self.budget.limit, busy_s, holder, count=want)
                if isinstance(outcome, list):
                    self._free_hint = None
                    for taken in outcome:
                        self._grant(taken)
                    continue
                wait = outcome.wait_s
                if outcome.held:  # a release frees a slot a window after it: look again before that
                    wait = min(wait, self.budget.window_s / 2)
                wait = max(wait, min(COALESCE_S, self.budget.window_s / 4))
                self._free_hint = loop.time() + wait
                self.waits += 1
                await asyncio.sleep(wait)
        except Exception as exc:  # the database failed: every waiting request hears it
            while self._waiting:
                turn = self._waiting.popleft()
                if not turn.done():
                    turn.set_exception(exc)

    def _grant(self, taken: Taken) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(taken)
                self.taken += 1
                return
        self.release_soon(taken, used=False)  # its requester went away meanwhile

    async def release(self, taken: Taken, *, used: bool = True) -> None:
        """The request's answer is back (`used`): its slot is busy one window from now. Not sent: free now."""
        if not self.hold_s:
            return  # a poll's slot counts its window from the take
        try:
            await self.slots.release(taken, self.budget.window_s if used else 0.0)
        except Exception:  # the slot frees by itself when its hold runs out
            log.warning(
                "could not release a slot of %s; it frees in %g s", self.budget.name, self.hold_s, exc_info=True
            )

    def release_soon(self, taken: Taken, *, used: bool = True) -> None:
        """`release` from code that cannot await (a create's `finally`)."""
        if not self.hold_s:
            return
        task = asyncio.get_running_loop().create_task(self.release(taken, used=used))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def drain(self) -> None:
        """Stop asking and wait for releases in flight (before the database closes)."""
        if self._asker is not None and not self._asker.done():
            self._asker.cancel()
            await asyncio.gather(self._asker, return_exceptions=True)
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)


class SharedWindows:
    """The budgets of one database, one `SharedWindow` per name, made on first use."""

    def __init__(self, slots: RateSlots) -> None:
        self.slots = slots
        self._windows: dict[str, SharedWindow] = {}

    def window(self, budget: Budget, *, hold_s: float = 0.0) -> SharedWindow:
        found = self._windows.get(budget.name)
        if found is not None and found.budget == budget and found.hold_s == hold_s:
            return found
        if len(self._windows) > KEEP_WINDOWS:
            for name, idle in list(self._windows.items()):
                if idle.idle:
                    del self._windows[name]
        made = self._windows[budget.name] = SharedWindow(self.slots, budget, hold_s=hold_s)
        return made

    async def drain(self) -> None:
        for window in list(self._windows.values()):
            await window.drain()

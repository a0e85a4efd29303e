"""A process-wide cap on predictions in flight, shared fairly between requesters.

When the cap is reached, waiting slots are granted round-robin by owner (the requesting user), so
one teammate's seven-scene job cannot starve everybody else's. One object, so it can later become
a global limiter (a DBOS queue) without touching callers.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairLimiter:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.in_flight = 0
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    @property
    def free(self) -> bool:
        """An `acquire` now would not wait."""
        return self.in_flight < self.capacity and not self._waiting

    def position(self, owner: str | None) -> int | None:
        """1-based place of this owner's next turn among waiting owners (round-robin), or None."""
        for place, waiting_owner in enumerate(self._waiting, start=1):
            if waiting_owner == (owner or ""):
                return place
        return None

    @asynccontextmanager
    async def slot(self, owner: str | None = None) -> AsyncIterator[None]:
        await self.acquire(owner or "")
        try:
            yield
        finally:
            self.release()

    async def acquire(self, owner: str) -> None:
        if self.free:
            self.in_flight += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(owner, deque()).append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted just as we were cancelled: hand the slot on
            else:
                self._forget(owner, fut)
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._grant()

    def _grant(self) -> None:
        while self.in_flight < self.capacity and self._waiting:
            owner, queue = next(iter(self._waiting.items()))
            fut = queue.popleft()
            # Round-robin: this owner goes to the back of the line.
            del self._waiting[owner]
            if queue:
                self._waiting[owner] = queue
            if fut.cancelled():
                continue
            self.in_flight += 1
            fut.set_result(None)

    def _forget(self, owner: str, fut: asyncio.Future[None]) -> None:
        queue = self._waiting.get(owner)
        if queue and fut in queue:
            queue.remove(fut)
            if not queue:
                del self._waiting[owner]

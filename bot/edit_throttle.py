"""Coalesced message edits: at most one write per message every `interval` seconds, latest state wins.

Progress events arrive many times a second; Discord rate-limits edits per channel. So each message
(`key`) keeps only its newest payload, and one writer task per key sends it when the interval since
the previous write has passed. Nothing is dropped on failure: a failed write (a 429 past discord.py's
own retries, a 5xx, a network error) puts its payload back unless a newer one arrived, and it is
tried again on the next tick. `flush(key)` waits until the latest payload is written, which is how the
final state is always delivered.

The interval is measured from the *end* of one write to the start of the next, so the times at which
Discord receives two edits are never closer than `interval` whatever the request latency.

One object serves every message; keys are opaque. With a `gate` (`bot.status_edit_gate`: budgets counted
in the database) the spacing holds across every process that edits the same messages: a write then
also waits for the gate, and the gate's spacing starts when the write ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

P = TypeVar("P")
Writer = Callable[[P], Awaitable[Any]]

MAX_BACKOFF_FACTOR = 16  # failed writes back off to at most 16 intervals between tries
PRUNE_ABOVE = 256  # slots kept before idle ones are dropped
GIVE_UP_AFTER = 12  # consecutive failures of the same message before its payload is dropped


class EditGate(Protocol):
    """Spacing shared with other processes: `enter` waits until `key`'s message may be edited and
    returns what `leave` needs once the write is over, whatever its outcome (None: nothing to space)."""

    async def enter(self, key: Hashable) -> object | None: ...
    async def leave(self, entry: object) -> None: ...


@dataclass
class _Slot(Generic[P]):
    pending: P | None = None
    has_pending: bool = False
    writer: Writer[P] | None = None
    next_at: float = 0.0
    failures: int = 0
    task: asyncio.Task[None] | None = None
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    writes: int = 0


class EditThrottle(Generic[P]):
    def __init__(
        self,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        give_up_after: int = GIVE_UP_AFTER,
        gate: EditGate | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._give_up_after = give_up_after
        self._slots: dict[Hashable, _Slot[P]] = {}
        self._closed = False
        self.gate = gate

    def _slot(self, key: Hashable) -> _Slot[P]:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
            slot.idle.set()
        return slot

    def note_write(self, key: Hashable) -> None:
        """A write happened outside the throttle (the message was just posted): space the next edit."""
        self._slot(key).next_at = self._clock() + self.interval

    def submit(self, key: Hashable, payload: P, writer: Writer[P]) -> None:
        """Queue `payload` as the newest state of `key`; it replaces any payload not yet written."""
        if self._closed:
            return
        if len(self._slots) > PRUNE_ABOVE:
            self._prune()
        slot = self._slot(key)
        slot.pending, slot.has_pending, slot.writer = payload, True, writer
        slot.idle.clear()
        if slot.task is None or slot.task.done():
            slot.task = asyncio.create_task(self._drain(key, slot), name=f"edit-throttle-{key}")

    def _prune(self) -> None:
        """Drop idle slots whose spacing no longer matters, so a long-lived bot does not keep one per job."""
        now = self._clock()
        for key, slot in list(self._slots.items()):
            if not slot.has_pending and (slot.task is None or slot.task.done()) and slot.next_at <= now:
                del self._slots[key]

    def pending(self, key: Hashable) -> bool:
        slot = self._slots.get(key)
        return bool(slot and slot.has_pending)

    def writes(self, key: Hashable) -> int:
        slot = self._slots.get(key)
        return slot.writes if slot else 0

    async def flush(self, key: Hashable, wait_s: float | None = None) -> bool:
        """Wait until the latest payload of `key` is written (or given up). False on timeout."""
        slot = self._slots.get(key)
        if slot is None:
            return True
        try:
            await asyncio.wait_for(slot.idle.wait(), wait_s)
        except TimeoutError:
            return False
        return True

    async def close(self, grace_s: float = 3.0) -> None:
        """Try to write what is pending (bounded), then stop."""
        self._closed = True
        tasks = [s.task for s in self._slots.values() if s.task is not None and not s.task.done()]
        if tasks:
            _done, still = await asyncio.wait(tasks, timeout=grace_s)
            for t in still:
                t.cancel()
            if still:
                await asyncio.gather(*still, return_exceptions=True)

    async def _drain(self, key: Hashable, slot: _Slot[P]) -> None:
        try:
            while slot.has_pending:
                wait = slot.next_at - self._clock()
                if wait > 0:
                    await self._sleep(wait)
                    continue  # re-check: next_at may have moved while we slept
                # Other processes' edits of this message count too; the newest payload is taken after.
                entry = await self.gate.enter(key) if self.gate is not None else None
                payload, writer = slot.pending, slot.writer
                slot.pending, slot.has_pending = None, False
                assert writer is not None
                backoff = 1.0
                try:
                    await writer(payload)  # type: ignore[arg-type]
                except asyncio.CancelledError:
                    self._put_back(slot, payload, writer)
                    raise
                except Exception as exc:
                    slot.failures += 1
                    retry_after = float(getattr(exc, "retry_after", 0.0) or 0.0)
                    backoff = max(min(2.0 ** (slot.failures - 1), MAX_BACKOFF_FACTOR), retry_after / self.interval)
                    if slot.failures >= self._give_up_after and not slot.has_pending:
                        log.warning("giving up on edits of %s after %d failures: %r", key, slot.failures, exc)
                        slot.failures = 0
                    else:
                        log.warning("edit of %s failed (%r); the latest state is kept for the next try", key, exc)
                        self._put_back(slot, payload, writer)
                else:
                    slot.failures = 0
                    slot.writes += 1
                finally:
                    if entry is not None and self.gate is not None:
                        await self.gate.leave(entry)  # a failed write may have reached Discord too
                slot.next_at = self._clock() + self.interval * backoff
        finally:
            if not slot.has_pending:
                slot.idle.set()

    @staticmethod
    def _put_back(slot: _Slot[P], payload: P | None, writer: Writer[P]) -> None:
        if not slot.has_pending:  # a newer state wins over the one that failed
            slot.pending, slot.has_pending, slot.writer = payload, True, writer

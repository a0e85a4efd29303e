"""Status-message edits spaced across every bot on one database (issue 15, "Account limits are global").

A `jant bot --no-worker` edits the status message of every active job, and a bot that runs jobs edits
those of its own: side by side (or two bots) they would each keep Discord's spacing alone and
together break it. With shared limits (`JANT_SHARED_LIMITS`) the edit throttle asks this gate before
each write. A status message is a budget of one edit per `JANT_STATUS_EDIT_INTERVAL_S`, its channel
one of `JANT_STATUS_CHANNEL_EDITS` per `JANT_STATUS_CHANNEL_WINDOW_S`, both counted in the database
(`pipeline.shared_limits`). Both are held from the moment the edit may go until it is over, and
count their window from its end, as the throttle does in one process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from pipeline.config import DiscordSettings
from pipeline.shared_limits import EDIT_HOLD_S, Budget, SharedWindow, SharedWindows
from storage.rate_slots import Taken

log = logging.getLogger(__name__)

# Rows of status messages (and channels) nobody edited for a day are deleted when a bot starts.
PRUNE_IDLE_S = 86_400.0
MESSAGE_BUDGETS = "discord.message:"
CHANNEL_BUDGETS = "discord.channel:"


@dataclass(frozen=True)
class Where:
    channel_id: int
    message_id: int


@dataclass(frozen=True)
class _Entry:
    held: tuple[tuple[SharedWindow, Taken], ...]


class StatusEditGate:
    def __init__(
        self, windows: SharedWindows, settings: DiscordSettings, where: Callable[[Hashable], Where | None]
    ) -> None:
        self.windows = windows
        self.settings = settings
        self._where = where  # the throttle's key (a job id) → its status message, None when it has none

    async def prune(self) -> None:
        for prefix in (MESSAGE_BUDGETS, CHANNEL_BUDGETS):
            await self.windows.slots.prune(prefix, PRUNE_IDLE_S)

    def _windows(self, where: Where) -> tuple[SharedWindow, SharedWindow]:
        message = Budget(f"{MESSAGE_BUDGETS}{where.message_id}", 1, self.settings.status_edit_interval_s)
        channel = Budget(
            f"{CHANNEL_BUDGETS}{where.channel_id}",
            self.settings.status_channel_edits,
            self.settings.status_channel_window_s,
        )
        return self.windows.window(message, hold_s=EDIT_HOLD_S), self.windows.window(channel, hold_s=EDIT_HOLD_S)

    async def enter(self, key: Hashable) -> _Entry | None:
        where = self._where(key)
        if where is None:
            return None
        held: list[tuple[SharedWindow, Taken]] = []
        try:
            # The message first: while it is ours nobody else edits it, and its next edit waits for us.
            for window in self._windows(where):
                held.append((window, await window.take()))
        except BaseException as exc:
            for window, taken in held:
                window.release_soon(taken, used=False)  # nothing was written
            if not isinstance(exc, Exception):
                raise
            # The database is unreachable: this bot's own spacing still holds; progress must not stop.
            log.warning("status edit of %s: the shared edit limit could not be checked (%r); editing anyway", key, exc)
            return None
        return _Entry(tuple(held))

    async def leave(self, entry: object) -> None:
        assert isinstance(entry, _Entry)
        for window, taken in entry.held:
            await window.release(taken)

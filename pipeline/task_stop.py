"""Stopping a background task: cancel it and wait until it has ended."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` (None or finished: nothing to stop) and wait for its end. Its own cancellation is
    the expected end; an error it ended with is raised here. A cancellation of the caller while it
    waits is not swallowed (a `suppress(CancelledError)` around `await task` would swallow it)."""
    if task is None:
        return
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.result()

"""Whether the bot is connected to Discord, for a container's health check.

While the gateway is connected, the bot rewrites `bot.heartbeat` in its data directory every
`JANT_HEARTBEAT_INTERVAL_S` seconds (in a thread: the write is synced to disk). `python -m
bot.heartbeat` exits 0 when that file was written less than three intervals ago and 1 otherwise,
with one line saying why. The file holds the time it was written, so the check does not depend on
how a volume keeps modification times. A bot that stops cleanly removes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.atomic_files import write_text_atomic
from pipeline.task_stop import cancel_and_wait

log = logging.getLogger(__name__)

FILE_NAME = "bot.heartbeat"
STALE_AFTER_INTERVALS = 3


class GatewayHeartbeat:
    """Writes the heartbeat file every `interval_s` while `connected()` says the gateway is up."""

    def __init__(self, path: Path, interval_s: float, connected: Callable[[], bool]) -> None:
        self.path = path
        self.interval_s = interval_s
        self.connected = connected
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="gateway-heartbeat")

    async def _run(self) -> None:
        while True:
            if self.connected():
                try:
                    await asyncio.to_thread(write_text_atomic, self.path, json.dumps({"at": time.time()}))
                except OSError as exc:  # a full or read-only disk: the health check will say so
                    log.warning("could not write the heartbeat file %s: %s", self.path, exc)
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        """Stop beating and remove the file: a stopped bot is not a healthy one."""
        await cancel_and_wait(self._task)
        self._task = None
        await asyncio.to_thread(self.path.unlink, missing_ok=True)


def check(path: Path, interval_s: float, *, now: float | None = None) -> tuple[bool, str]:
    """(healthy, one line saying why) from the heartbeat file at `path`."""
    limit = interval_s * STALE_AFTER_INTERVALS
    try:
        written = float(json.loads(path.read_text(encoding="utf-8"))["at"])
    except FileNotFoundError:
        return False, f"no heartbeat at {path}: the bot has not connected to Discord yet, or it stopped"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"unreadable heartbeat at {path}: {exc}"
    age = (time.time() if now is None else now) - written
    if age > limit:
        return False, f"the bot last saw the Discord gateway {age:.0f} s ago (limit {limit:g} s): it is disconnected"
    return True, f"connected to Discord (heartbeat {max(age, 0.0):.0f} s ago)"


def main() -> int:
    from pipeline.config import Settings

    settings = Settings()
    healthy, why = check(settings.storage.data_dir / FILE_NAME, settings.discord.heartbeat_interval_s)
    print(why, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())

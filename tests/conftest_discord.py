"""Fixtures for tests that drive the real discord.py client against the local Discord emulator.

pytest only auto-loads ``conftest.py``, so a test module that uses these declares::

    pytest_plugins = ["tests.conftest_discord"]

``discord_emulator`` is a started :class:`DiscordEmulator` (default guild, #general, user alice) with
discord.py's REST base, gateway and CDN pointed at it. It depends on ``discord_errors``, so every
test using it fails when discord.py logs an ERROR (exceptions in commands, views and event handlers
are only logged by discord.py) or when the emulator itself crashed. A test that provokes such an
error on purpose declares it: ``discord_errors.expect(r"Ignoring exception in command 'boom'")``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.emulators.discord_server import DiscordEmulator, point_discord_py_at


class DiscordErrorLog(logging.Handler):
    """Collects ERROR records of the ``discord`` logger."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self._expected: list[re.Pattern[str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def expect(self, pattern: str) -> None:
        """Allow ERROR records whose message matches ``pattern``."""
        self._expected.append(re.compile(pattern))

    def unexpected(self) -> list[logging.LogRecord]:
        return [r for r in self.records if not any(p.search(r.getMessage()) for p in self._expected)]

    def describe(self) -> str:
        lines = []
        for record in self.unexpected():
            lines.append(f"{record.name}: {record.getMessage()}")
            if record.exc_info:
                lines.append(logging.Formatter().formatException(record.exc_info))
        return "\n".join(lines)


@pytest.fixture
def discord_errors() -> Iterator[DiscordErrorLog]:
    handler = DiscordErrorLog()
    logger = logging.getLogger("discord")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
    if handler.unexpected():
        pytest.fail("discord.py logged errors:\n" + handler.describe())


@pytest.fixture
async def discord_emulator(discord_errors: DiscordErrorLog) -> AsyncIterator[DiscordEmulator]:
    emulator = DiscordEmulator()
    await emulator.start()
    try:
        with point_discord_py_at(emulator):
            yield emulator
    finally:
        await emulator.stop()
    if emulator.server_errors:
        pytest.fail("the Discord emulator crashed:\n" + "\n".join(emulator.server_errors))

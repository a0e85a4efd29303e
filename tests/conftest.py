"""Shared fixtures. Nothing here reaches the internet: real providers only ever see local emulators."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pipeline.config import Settings
from tests.emulators import media
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import FakeReplicate
from tests.service_fakes import draft

_SERVICE_ENV = (
    "DISCORD_TOKEN", "OPENAI_API_KEY", "REPLICATE_API_TOKEN", "OPENAI_BASE_URL", "REPLICATE_BASE_URL",
    "DISCORD_API_BASE", "DISCORD_GATEWAY_URL", "JANT_DB_PATH", "JANT_OFFLINE", "JANT_BYTE_LIMIT",
    "JANT_ENV", "JANT_DISCORD_GUILD_IDS", "JANT_APPROVER_ROLE",
)  # fmt: skip


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test starts with no keys (so offline providers), its own data dir, and no .env file."""
    for name in _SERVICE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JANT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(JANT_DATA_DIR=tmp_path / "data", JANT_RETRY_BACKOFF_S=0.01)


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeOpenAI, FakeReplicate]]:
    """The OpenAI and Replicate emulators, a storyboard ready to answer and Replicate's time 10x faster."""
    await media.mp4_bytes(576, 1024, 25, 7)  # warm the emulator's encode cache: deadlines stay about our code
    async with FakeOpenAI() as oai, FakeReplicate(time_factor=0.1) as rep:
        oai.responder = lambda body: draft()
        yield oai, rep


@pytest.fixture
def error_logs(caplog: pytest.LogCaptureFixture):
    """Collect ERROR records; tests fail on crashes that libraries only log."""
    caplog.set_level(logging.WARNING)
    yield lambda: [r for r in caplog.records if r.levelno >= logging.ERROR]


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """The fault matrix (tests/test_fault_matrix.py): one line per injected fault and what became of it."""
    results = {
        name: outcome
        for report in terminalreporter.stats.get("passed", [])
        for key, (name, outcome) in getattr(report, "user_properties", [])
        if key == "fault_matrix"
    }
    if not results:
        return
    terminalreporter.section("fault matrix")
    width = max(len(row) for row in results)
    for row, outcome in results.items():
        terminalreporter.write_line(f"{row:<{width}}  {outcome}")

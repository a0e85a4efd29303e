"""Shared fixtures. Nothing here reaches the internet: real providers only ever see local emulators.

Made ads, shared by the whole session (`tests/made_ads.py`): an offline ad costs ~20 CPU-seconds,
so a test that only looks at an ad asks for one of these instead of making its own. Each is made
by `jant makead` the first time a test asks for it, once per session even with pytest-xdist, and is
read-only: a test that re-renders, purges or adds a job makes its own (`made_ads.run_recipe`).
The first test to ask pays for making it, so give it `@pytest.mark.timeout(AD_TIMEOUT_S)`.

    first_ad       a new user's first ad: `.env` copied from `.env.example`, then `jant makead PRODUCT
                   --mood cinematic --cta "Order at lumen.example" --yes --formats 9:16,16:9`; offline,
                   with the offline voice (when jant[voice] is installed) and music bed, and a 16:9.
    voice_only_ad  SPOKEN_PRODUCT with JANT_MUSIC=none
    music_only_ad  `jant makead PRODUCT --mood tech --yes --brand examples/brand.toml` (the sample kit:
                   karaoke captions, the mood's music) with JANT_VOICE=none
    silent_ad      the same with the kit's captions = "off" and music = "none": no voice, no music
    french_ad      FRENCH_PRODUCT (the offline voice speaks English only: captions and music)

Each is a `MadeAd`: `.result` (the CompletedProcess), `.job` and `.stages` (database rows), `.final`,
`.job_dir`, `.data_dir`, `.notes`, `.timing`, `.voices()`, `.scene_window(n)`.

Postgres (`tests/postgres_server.py`): one real server per test process (each pytest-xdist worker
starts its own, ~1 s), stopped and deleted when the session ends. `postgres_url` is a fresh database
on it for one test; `database` is parametrised over both backends: a SQLite file, then a Postgres URL.
Without the server binaries the Postgres cases are skipped, unless JANT_TESTS_NEED_POSTGRES=1 (CI)
makes that a failure.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from pipeline.config import Settings
from tests.durable_processes import emulators  # noqa: F401  # the durable-engine tests' fixture
from tests.emulators import media
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import FakeReplicate
from tests.made_ads import FIRST_AD, FRENCH_AD, MUSIC_ONLY_AD, SILENT_AD, VOICE_ONLY_AD, MadeAd, made_ad
from tests.postgres_server import PostgresServer, find_bin_dir
from tests.service_fakes import draft

_SERVICE_ENV = (
    "DISCORD_TOKEN", "OPENAI_API_KEY", "REPLICATE_API_TOKEN", "OPENAI_BASE_URL", "REPLICATE_BASE_URL",
    "DISCORD_API_BASE", "DISCORD_GATEWAY_URL", "JANT_DB_PATH", "JANT_OFFLINE", "JANT_BYTE_LIMIT",
    "JANT_ENV", "JANT_DISCORD_GUILD_IDS", "JANT_APPROVER_ROLE", "JANT_DATABASE_URL", "JANT_ENGINE",
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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        why = "PostgreSQL's server binaries are not installed (apt-get install postgresql)"
        if os.environ.get("JANT_TESTS_NEED_POSTGRES"):
            pytest.fail(why)
        pytest.skip(why)
    server = PostgresServer.start(bin_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def postgres_url(postgres_server: PostgresServer) -> str:
    """A new, empty Postgres database for this test alone."""
    return await postgres_server.create_database()


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a store keeps its tables: a SQLite file under the test's data dir, or a Postgres database."""
    if request.param == "sqlite":
        return tmp_path / "data" / "jant.db"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return await server.create_database()


@pytest.fixture(scope="session")
def first_ad(tmp_path_factory: pytest.TempPathFactory) -> MadeAd:
    return made_ad(tmp_path_factory, FIRST_AD)


@pytest.fixture(scope="session")
def voice_only_ad(tmp_path_factory: pytest.TempPathFactory) -> MadeAd:
    return made_ad(tmp_path_factory, VOICE_ONLY_AD)


@pytest.fixture(scope="session")
def music_only_ad(tmp_path_factory: pytest.TempPathFactory) -> MadeAd:
    return made_ad(tmp_path_factory, MUSIC_ONLY_AD)


@pytest.fixture(scope="session")
def silent_ad(tmp_path_factory: pytest.TempPathFactory) -> MadeAd:
    return made_ad(tmp_path_factory, SILENT_AD)


@pytest.fixture(scope="session")
def french_ad(tmp_path_factory: pytest.TempPathFactory) -> MadeAd:
    return made_ad(tmp_path_factory, FRENCH_AD)


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

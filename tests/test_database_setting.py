"""JANT_DATABASE_URL: unset keeps the SQLite file; a postgresql:// URL moves Jant's and DBOS's tables there;
anything else, or a missing driver, is refused saying what to do."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.store import JobStore


def test_unset_means_the_sqlite_files_under_the_data_dir(tmp_path: Path) -> None:
    storage = Settings(JANT_DATA_DIR=tmp_path).storage
    assert storage.database == tmp_path / "jant.db"
    assert storage.dbos_system_database_url == f"sqlite:///{tmp_path / 'dbos.sqlite'}"


def test_a_postgres_url_holds_both_databases_and_its_password_stays_out_of_the_settings_text() -> None:
    url = "postgres://jant:s3cret-pw@db.internal:5432/jant"
    settings = Settings(JANT_DATABASE_URL=url)
    assert settings.storage.database == url
    assert settings.storage.dbos_system_database_url == "postgresql://jant:s3cret-pw@db.internal:5432/jant"
    assert "s3cret-pw" not in repr(settings) and "s3cret-pw" not in str(settings.storage.model_dump())


def test_another_kind_of_url_is_refused_saying_what_to_write() -> None:
    with pytest.raises(ValidationError, match="must be a postgresql:// URL"):
        Settings(JANT_DATABASE_URL="mysql://jant@db/jant")


async def test_a_postgres_url_without_the_driver_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "storage.postgres", raising=False)
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as if `jant[postgres]` were not installed
    with pytest.raises(ConfigError) as refused:
        await JobStore.open("postgresql://jant@127.0.0.1:1/jant")
    assert "pip install 'jant[postgres]'" in refused.value.user_message

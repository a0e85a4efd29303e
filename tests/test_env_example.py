"""A new user's first minute: `cp .env.example .env`, then `jant doctor` and `jant makead`.

The example leaves every key empty; an empty key must mean "not set", so both commands work offline
and `jant doctor` says which keys are empty and which stages run offline because of it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import SECRET_NAMES, Settings
from tests.made_ads import AD_TIMEOUT_S, FIRST_AD, MadeAd

REPO = Path(__file__).resolve().parents[1]


def run_jant(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in SECRET_NAMES and k != "JANT_DATA_DIR"}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd, env={**base, "COLUMNS": "250", **env}, capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.timeout(AD_TIMEOUT_S)
def test_the_copied_example_runs_doctor_and_makes_an_offline_ad(tmp_path: Path, first_ad: MadeAd) -> None:
    shutil.copy(REPO / ".env.example", tmp_path / ".env")

    doctor = run_jant("doctor", cwd=tmp_path)
    assert doctor.returncode == 0, doctor.stderr + doctor.stdout
    assert "Traceback" not in doctor.stderr
    rows = {line.split("│")[1].strip(): line for line in doctor.stdout.splitlines() if line.count("│") >= 3}
    for name in SECRET_NAMES:
        assert "present but empty" in rows[name], doctor.stdout
    assert "offline" in rows["storyboards"] and "offline" in rows["seed images"] and "offline" in rows["clips"]
    assert "OPENAI_API_KEY is empty: storyboards come from the offline planner" in doctor.stdout

    # `jant makead` beside the same copy, with nothing else set: the session's first ad is made so.
    made = first_ad
    assert (made.cwd / ".env").read_bytes() == (REPO / ".env.example").read_bytes()
    assert FIRST_AD.dotenv and FIRST_AD.env == {}  # no setting but the copied file's (made_ads.clean_env)
    assert made.result.returncode == 0, made.result.stderr + made.result.stdout
    assert "Traceback" not in made.result.stderr
    assert (made.cwd / "data" / "jobs" / made.job_id / "final.mp4").stat().st_size > 0  # JANT_DATA_DIR=./data
    assert "offline" in made.result.stderr.lower() and "This is an offline preview" in made.result.stdout


def test_blank_and_whitespace_keys_count_as_not_set_and_are_reported(tmp_path: Path) -> None:
    s = Settings(OPENAI_API_KEY="", REPLICATE_API_TOKEN="  \t", DISCORD_TOKEN=" tok-en ", JANT_APPROVER_ROLE="")
    assert s.openai_api_key is None and s.replicate_api_token is None and s.approver_role is None
    assert not s.planner_live and not s.media_live
    assert s.discord_token is not None and s.discord_token.get_secret_value() == "tok-en"  # stray spaces trimmed
    assert (s.secret_state("OPENAI_API_KEY"), s.secret_state("REPLICATE_API_TOKEN")) == ("empty", "empty")
    assert s.secret_state("DISCORD_TOKEN") == "set"
    assert Settings().secret_state("OPENAI_API_KEY") == "missing"


def test_an_empty_value_falls_back_to_the_default_not_to_an_error(tmp_path: Path) -> None:
    s = Settings(JANT_ENV="", JANT_BYTE_LIMIT=" ", JANT_DB_PATH="", JANT_OPENAI_MODEL="")
    assert (s.env, s.byte_limit, s.openai_model) == ("dev", None, "gpt-4o")
    assert s.db_path == s.data_dir / "jant.db"  # not "." from an empty path


def test_doctor_never_prints_a_secret(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("REPLICATE_API_TOKEN=r8_fake_secret_value_1234\nJANT_OFFLINE=1\n")
    result = run_jant("doctor", cwd=tmp_path, JANT_DATA_DIR=str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    assert "r8_fake_secret_value_1234" not in result.stdout + result.stderr
    assert re.search(r"REPLICATE_API_TOKEN\s*│\s*set", result.stdout), result.stdout

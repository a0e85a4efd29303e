"""A size cap on the ad is checked where it enters (`--byte-limit`, `JANT_BYTE_LIMIT`): too small is one
line and exit 2 with nothing written; small enough to smear the video is a warning with the bitrate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.cli import main as cli_main
from pipeline.byte_limit import MIB, MIN_BYTE_LIMIT, READABLE_VIDEO_BPS, byte_limit_warning, video_bitrate_for
from pipeline.config import Settings
from tests.test_cli import PRODUCT, jant, job_rows


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--byte-limit", "0"], {}, "--byte-limit: the byte limit must be a positive number of bytes (got 0)"),
        (["--byte-limit", "-5"], {}, "--byte-limit: the byte limit must be a positive number of bytes (got -5)"),
        (["--byte-limit", "500000"], {}, "--byte-limit: a byte limit of 500000 bytes is too small"),
        ([], {"JANT_BYTE_LIMIT": "0"}, "JANT_BYTE_LIMIT: the byte limit must be a positive number"),
        ([], {"JANT_BYTE_LIMIT": "1048575"}, "JANT_BYTE_LIMIT: a byte limit of 1048575 bytes is too small"),
    ],
)
def test_a_limit_too_small_for_30_seconds_is_refused_before_anything_is_written(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    data = tmp_path / "data"  # JANT_DATA_DIR (conftest)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # The CLI's entry point in this process (what `jant` runs): five cases, no interpreter starts.
    code = cli_main(["makead", PRODUCT, "--yes", *args])
    out, err = capsys.readouterr()
    assert code == 2, err + out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], err
    assert "at least 1048576 (1 MiB)" in lines[0]
    assert job_rows(data) == [] and not (data / "jobs").exists()


def test_settings_refuse_a_tiny_limit_and_accept_one_mib() -> None:
    with pytest.raises(ValidationError, match="too small for a 30-second video"):
        Settings(JANT_BYTE_LIMIT=MIN_BYTE_LIMIT - 1)
    assert Settings(JANT_BYTE_LIMIT=MIN_BYTE_LIMIT).byte_limit == MIN_BYTE_LIMIT


def test_a_limit_that_starves_the_video_warns_with_the_bitrate_it_will_use() -> None:
    warning = byte_limit_warning(MIN_BYTE_LIMIT)
    assert warning is not None
    kbps = int(re.search(r"about (\d+) kb/s", warning).group(1))
    assert kbps == video_bitrate_for(MIN_BYTE_LIMIT) // 1000 and kbps < READABLE_VIDEO_BPS // 1000
    # The size it suggests is the smallest that reaches the readable bitrate.
    suggested = float(re.search(r"about ([\d.]+) MiB keeps it sharp", warning).group(1))
    assert video_bitrate_for(int((suggested + 0.05) * MIB)) >= READABLE_VIDEO_BPS
    assert video_bitrate_for(int((suggested - 0.1) * MIB)) < READABLE_VIDEO_BPS
    assert byte_limit_warning(10 * MIB) is None  # Discord's default upload limit is comfortable


def test_makead_and_doctor_print_the_warning(tmp_path: Path) -> None:
    env = {"JANT_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "250"}
    # Without --yes the run stops right after the checks: the warning has been printed by then.
    made = jant("makead", PRODUCT, "--byte-limit", str(int(1.5 * MIB)), cwd=tmp_path, env=env)
    assert made.returncode == 2
    assert re.search(r"warning: a byte limit of 1\.5 MiB leaves about \d+ kb/s of video", made.stderr), made.stderr
    doctor = jant("doctor", cwd=tmp_path, env={**env, "JANT_BYTE_LIMIT": str(int(1.5 * MIB))})
    assert doctor.returncode == 0 and "JANT_BYTE_LIMIT" in doctor.stdout and "kb/s of video" in doctor.stdout

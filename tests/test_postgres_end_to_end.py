"""A team that sets JANT_DATABASE_URL: `jant makead --yes` keeps its job in Postgres, not in a file.

Offline (the local storyboard, seeds and clips; no voice or music, to keep it short), against the
session's real PostgreSQL (tests/postgres_server.py).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.ffmpeg import probe
from tests.made_ads import AD_TIMEOUT_S, SPOKEN_PRODUCT, clean_env
from tests.postgres_server import pg_rows


@pytest.mark.timeout(AD_TIMEOUT_S)
async def test_makead_with_a_postgres_url_makes_the_ad_and_keeps_every_row_in_postgres(
    tmp_path: Path, postgres_url: str
) -> None:
    data = tmp_path / "data"
    env = clean_env(
        JANT_DATA_DIR=str(data), JANT_DATABASE_URL=postgres_url, JANT_OFFLINE="1", JANT_ENV="dev",
        JANT_VOICE="none", JANT_MUSIC="none", JANT_SVD_VIDEO_LENGTH="14_frames_with_svd",  # cheaper clips
    )  # fmt: skip
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot.cli", "makead", SPOKEN_PRODUCT, "--yes"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=AD_TIMEOUT_S, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout

    [(job_id, status, final_path, request)] = await pg_rows(
        postgres_url, "SELECT id, status, final_path, request_json FROM jobs"
    )
    assert status == "completed" and f"Job {job_id} completed" in result.stdout
    assert SPOKEN_PRODUCT in str(request)
    stages = await pg_rows(postgres_url, "SELECT scene_index, stage, status FROM stages WHERE job_id = ?", job_id)
    scenes = {index for index, _, _ in stages}
    assert len(scenes) >= 3 and {(s, k) for s, k, _ in stages} == {(s, k) for s in scenes for k in ("seed", "clip")}
    assert {st for _, _, st in stages} == {"done"}
    kinds = [k for (k,) in await pg_rows(postgres_url, "SELECT kind FROM events WHERE job_id = ? ORDER BY id", job_id)]
    assert kinds[0] == "job_created" and "storyboard_ready" in kinds
    assert not (data / "jant.db").exists()  # no SQLite file beside it: the URL replaced it

    final = Path(str(final_path))
    info = await probe(final if final.is_absolute() else tmp_path / final)
    assert info.duration_s is not None and 28.5 <= info.duration_s <= 31.5
    assert (info.width, info.height) == (720, 1280)

"""Spend caps from the terminal: `jant makead --yes` refused over a cap (exit 2, nothing created at
Replicate), and `jant spend` printing this month's spend by day and by model."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

from pipeline.models import AdRequest, Job, StageName, StageState
from pipeline.store import JobStore
from storage.spend_ledger import Window
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import FakeReplicate
from tests.service_fakes import service_env

PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm, dims at night and charges your phone"
REPO = Path(__file__).resolve().parents[1]
BOX = re.compile("[\u2500-\u257f]")  # the tables' box-drawing characters


async def jant(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    # The emulators live in this event loop, so the CLI runs as an async subprocess.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    except TimeoutError:
        proc.kill()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def base_env(data_dir: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REPLICATE_", "JANT_", "DISCORD_"))}
    return {**env, "JANT_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO), "COLUMNS": "200", **values}


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


async def test_makead_over_a_cap_exits_2_with_the_reason_and_pays_for_nothing(
    fakes: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path
) -> None:
    oai, rep = fakes
    data_dir = tmp_path / "data"
    # Five scenes × (6 + 90 GPU-s) × $0.01: $4.80; no voice or music, so the figure is the footage.
    env = base_env(data_dir, **service_env(oai, rep, data_dir), JANT_PRICE_PER_GPU_SECOND="0.01",
                   JANT_VOICE="none", JANT_MUSIC="none")  # fmt: skip
    code, out, err = await jant("makead", PRODUCT, "--yes", env={**env, "JANT_MAX_JOB_COST_USD": "4"}, cwd=tmp_path)
    assert code == 2, out + err
    assert err.strip().splitlines()[-1] == (
        "error: This ad is estimated at $4.80, over the $4.00 limit for one ad (JANT_MAX_JOB_COST_USD). "
        "Nothing was made or charged. A storyboard with fewer scenes costs less; or ask whoever runs the bot "
        "to raise JANT_MAX_JOB_COST_USD."
    )
    assert "Estimate: ≈ $4.80 (seeds $0.30, clips $4.50) · budget: no budget cap · at most $4.00 per ad." in out

    code, out, err = await jant(
        "makead", PRODUCT, "--yes", env={**env, "JANT_GUILD_DAILY_BUDGET_USD": "3"}, cwd=tmp_path
    )
    assert code == 2, out + err
    assert re.fullmatch(
        r"error: This ad is estimated at \$4\.80, but the command line has \$3\.00 left of its \$3\.00 daily budget "
        r"\(\$0\.00 spent or held today\)\. Nothing was made or charged\. The daily budget resets at 00:00 UTC, "
        r"in \d+ h \d\d min\. Raise JANT_GUILD_DAILY_BUDGET_USD to allow more\.",
        err.strip().splitlines()[-1],
    ), err

    assert rep.counts.total_creates == 0  # nothing was created at Replicate, so nothing was paid
    db = data_dir / "jant.db"
    assert rows(db, "SELECT status FROM jobs") == [("cancelled",), ("cancelled",)]  # closed, not left waiting
    assert rows(db, "SELECT COUNT(*) FROM predictions") == [(0,)]
    assert rows(db, "SELECT COUNT(*) FROM budget_reservations") == [(0,)]
    assert not list(data_dir.glob("jobs/*/seed-*.png")) and not list(data_dir.glob("jobs/*/clip-*.mp4"))


async def paid_prediction(store: JobStore, job: Job, scene: int, stage: str, provider: str, cost: float) -> None:
    state = StageState(job_id=job.id, scene_index=scene, stage=stage)
    prediction_id = f"{job.id}-{scene}-{stage}"
    await store.record_prediction(state, provider, prediction_id)
    await store.finish_prediction(prediction_id, "succeeded", 10.0, cost_usd=cost)


async def test_jant_spend_prints_this_month_by_day_and_by_model(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store = await JobStore.open(data_dir / "jant.db")
    try:
        ours = await store.create(Job(request=AdRequest(product=PRODUCT), guild_id="4242"))
        theirs = await store.create(Job(request=AdRequest(product=PRODUCT), guild_id="777"))
        for scene in (1, 2):
            await paid_prediction(store, ours, scene, StageName.SEED, "replicate-sdxl", 0.0044)
            await paid_prediction(store, ours, scene, StageName.CLIP, "replicate-svd", 0.0653)
        await paid_prediction(store, ours, 0, StageName.MUSIC, "replicate-music", 0.20)
        # A second ad of the same server on another video model: its clips are a row of their own.
        wan = await store.create(Job(request=AdRequest(product=PRODUCT, model="wan-2.2-i2v-fast"), guild_id="4242"))
        for scene in (1, 2):
            await paid_prediction(store, wan, scene, StageName.CLIP, "replicate-video", 0.16)
        await paid_prediction(store, theirs, 1, StageName.CLIP, "replicate-svd", 1.00)
        running = await store.create(Job(request=AdRequest(product=PRODUCT), guild_id="4242"))
        now = datetime.now(UTC)
        assert await store.reserve_budget(running.id, "4242", 0.50, [Window("daily", "2000-01-01", 100)], now) is None
    finally:
        await store.close()

    env = base_env(data_dir, JANT_GUILD_DAILY_BUDGET_USD="5", JANT_GUILD_MONTHLY_BUDGET_USD="50")
    code, out, err = await jant("spend", "--guild", "4242", env=env, cwd=tmp_path)
    assert code == 0, out + err
    lines = [line for line in (" ".join(BOX.sub(" ", line).split()) for line in out.splitlines()) if line]
    assert lines == [
        f"Spend in {now:%B %Y} (UTC), server 4242: $0.66",
        "by day",
        "day cost",
        f"{now:%Y-%m-%d} $0.66",
        "by model",
        "model predictions cost",
        "Wan 2.2 i2v fast (wan-2.2-i2v-fast) 2 $0.32",
        "stability-ai/stable-audio-2.5 (music bed) 1 $0.20",
        "Stable Video Diffusion (svd) 2 $0.13",
        "stability-ai/sdxl (seed images) 2 $0.01",
        "Held for 1 ad still being made: $0.50",
        "Budget: $4.50 of $5.00 left today · $49.50 of $50.00 left this month.",
    ]

    code, out, _ = await jant("spend", env=env, cwd=tmp_path)
    assert code == 0 and "every server and the command line: $1.66" in out
    assert "Stable Video Diffusion (svd) 3 $1.13" in " ".join(BOX.sub(" ", out).split())
    code, _, err = await jant("spend", "--guild", "my server", env=env, cwd=tmp_path)
    assert code == 2 and "--guild takes a Discord server id, digits only" in err

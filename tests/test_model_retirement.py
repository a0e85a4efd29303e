"""gpt-4o shuts down on 2027-01-14. Stories: the day it is gone, the fallback writes the storyboard and
the card says so; when the fallback is gone too, the error names both models and the setting; weeks
before, `jant doctor` prints the shutdown date and the setting to change."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.storyboard_embed import render_storyboard
from pipeline.config import Settings
from pipeline.errors import PlannerError
from pipeline.model_lifetimes import check_model_lifetimes
from pipeline.models import Job
from pipeline.providers.openai_planner import OpenAIStoryboardPlanner
from tests.bot_harness import running_team
from tests.emulators.discord_server import DiscordEmulator
from tests.emulators.fake_openai import FakeOpenAI
from tests.test_cli import jant
from tests.test_openai_planner import REQUEST, draft

# A shutdown date inside the 60-day warning window whatever day the suite runs (gpt-4o's real one,
# 2027-01-14, leaves the window the day after).
SOON = (datetime.now(UTC).date() + timedelta(days=41)).isoformat()

pytest_plugins = ["tests.conftest_discord"]  # the discord_emulator and discord_errors fixtures


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as f:
        yield f


def settings_for(fake: FakeOpenAI, tmp_path: Path, **env: str) -> Settings:
    values = {"OPENAI_API_KEY": FakeOpenAI.API_KEY, "OPENAI_BASE_URL": fake.base_url, **env}
    return Settings(JANT_DATA_DIR=tmp_path / "data", **values)


async def test_a_retired_model_hands_over_to_the_fallback_for_the_rest_of_the_run(
    fake: FakeOpenAI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake.retire_model("gpt-4o")
    planner = OpenAIStoryboardPlanner(settings_for(fake, tmp_path))
    caplog.set_level(logging.WARNING, logger="pipeline.providers.openai_planner")
    try:
        fake.reply_json(draft())
        board = await planner.plan(REQUEST)
        fake.reply_json(draft(title="Second take"))
        second = await planner.plan(REQUEST, feedback="again")
    finally:
        await planner.aclose()
    models = [r.json["model"] for r in fake.chat_requests]
    assert [r.status for r in fake.chat_requests] == [404, 200, 200]
    assert models == ["gpt-4o", "gpt-6-astra", "gpt-6-astra"]  # gpt-4o is not asked again
    assert board.title == "Lumen: light that knows the time" and second.title == "Second take"
    assert board.model_note and "gpt-6-astra" in board.model_note and "gpt-4o" in board.model_note
    assert "JANT_OPENAI_MODEL" in board.model_note and second.model_note == board.model_note
    switched = [r for r in caplog.records if "model_not_found" in r.getMessage()]
    assert len(switched) == 1  # logged once, not per request

    job = Job(request=REQUEST, storyboard=board)
    card = render_storyboard(job, Settings(JANT_DATA_DIR=tmp_path / "data"))
    assert board.model_note in (card.description or "")


async def test_the_code_decides_not_the_message(fake: FakeOpenAI, tmp_path: Path) -> None:
    """A 404 without model_not_found (a wrong base URL) is not a retired model: no fallback."""
    planner = OpenAIStoryboardPlanner(settings_for(fake, tmp_path, OPENAI_BASE_URL=fake.base_url + "/nope"))
    try:
        with pytest.raises(PlannerError) as ei:
            await planner.plan(REQUEST)
    finally:
        await planner.aclose()
    assert "404" in str(ei.value) and "OPENAI_BASE_URL" in ei.value.user_message
    assert planner.model == "gpt-4o" and planner.model_note is None


async def test_when_the_fallback_is_gone_too_the_error_names_both_and_the_setting(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    fake.retire_model("gpt-4o")
    fake.retire_model("gpt-6-astra")
    planner = OpenAIStoryboardPlanner(settings_for(fake, tmp_path))
    try:
        with pytest.raises(PlannerError) as ei:
            await planner.plan(REQUEST)
    finally:
        await planner.aclose()
    text = ei.value.user_message
    assert "'gpt-4o' (JANT_OPENAI_MODEL)" in text and "'gpt-6-astra' (JANT_OPENAI_FALLBACK_MODEL)" in text
    assert "Set JANT_OPENAI_MODEL" in text
    assert [r.json["model"] for r in fake.chat_requests] == ["gpt-4o", "gpt-6-astra"]


async def test_the_lifetime_check_reads_shutdown_dates_and_survives_a_dead_api(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    fake.set_shutdown_date("gpt-4o", SOON)
    report = await check_model_lifetimes(settings_for(fake, tmp_path))
    assert [(m.model, m.shutdown_date) for m in report.models] == [("gpt-4o", SOON), ("gpt-6-astra", None)]
    assert report.warnings() == [
        f"The OpenAI model gpt-4o (JANT_OPENAI_MODEL) shuts down on {SOON}: "
        "set JANT_OPENAI_MODEL to a newer model before then."
    ]
    fake.retire_model("gpt-6-astra")
    gone = await check_model_lifetimes(settings_for(fake, tmp_path))
    assert gone.models[1].gone and "JANT_OPENAI_FALLBACK_MODEL" in gone.warnings()[1]

    await fake.stop()
    dead = await asyncio.wait_for(check_model_lifetimes(settings_for(fake, tmp_path)), 15)
    assert dead.models == () and len(dead.warnings()) == 1
    assert "Could not check the OpenAI models' shutdown dates" in dead.warnings()[0]


async def test_doctor_prints_the_shutdown_date_with_the_setting(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.set_shutdown_date("gpt-4o", SOON)
    env = {"OPENAI_API_KEY": FakeOpenAI.API_KEY, "OPENAI_BASE_URL": fake.base_url,
           "JANT_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "250"}  # fmt: skip
    result = await asyncio.to_thread(jant, "doctor", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("│ JANT_OPENAI_MODEL "))
    assert re.search(rf"gpt-4o \(JANT_OPENAI_MODEL\) shuts down on {SOON}: set JANT_OPENAI_MODEL", line), line
    assert FakeOpenAI.API_KEY not in result.stdout


async def test_the_bot_warns_at_start_up_with_the_date_and_the_setting(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.app")
    async with FakeOpenAI() as oai:
        oai.set_shutdown_date("gpt-4o", SOON)
        settings = {"OPENAI_API_KEY": FakeOpenAI.API_KEY, "OPENAI_BASE_URL": oai.base_url}
        async with running_team(discord_emulator, tmp_path, discord_errors, real_providers=True, **settings) as team:

            def warned() -> list[str]:
                return [r.getMessage() for r in caplog.records if "shuts down on" in r.getMessage()]

            await team.wait_until(warned, timeout=10, what="the shutdown warning")
    assert warned() == [
        f"The OpenAI model gpt-4o (JANT_OPENAI_MODEL) shuts down on {SOON}: "
        "set JANT_OPENAI_MODEL to a newer model before then."
    ]

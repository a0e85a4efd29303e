"""Every configured model's end date is watched: OpenAI's read from the real client's
`models.retrieve(id).shutdown_date` against the emulator, the video models' from the registry; a
warning names the date and the setting to change, and only within 60 days."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import openai
import pytest

from pipeline.config import Settings
from pipeline.model_lifetimes import check_model_lifetimes
from pipeline.video_models import VIDEO_MODELS
from tests.emulators.fake_openai import FakeOpenAI

TODAY = date(2026, 12, 4)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as f:
        yield f


def settings_for(fake: FakeOpenAI | None, tmp_path: Path, **env: str) -> Settings:
    keys = {"OPENAI_API_KEY": FakeOpenAI.API_KEY, "OPENAI_BASE_URL": fake.base_url} if fake else {}
    return Settings(JANT_DATA_DIR=tmp_path / "data", **keys, **env)


async def test_openai_dates_warn_only_within_60_days_with_the_setting(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.set_shutdown_date("gpt-4o", "2027-01-14")
    soon = await check_model_lifetimes(settings_for(fake, tmp_path), today=TODAY)  # 41 days left
    assert soon.warnings() == [
        "The OpenAI model gpt-4o (JANT_OPENAI_MODEL) shuts down on 2027-01-14: "
        "set JANT_OPENAI_MODEL to a newer model before then."
    ]
    later = await check_model_lifetimes(settings_for(fake, tmp_path), today=date(2026, 11, 1))  # 74 days left
    assert later.warnings() == [] and later.models[0].shutdown_date == "2027-01-14"
    past = await check_model_lifetimes(settings_for(fake, tmp_path), today=date(2027, 2, 1))
    assert past.warnings() == [
        "The OpenAI model gpt-4o (JANT_OPENAI_MODEL) shut down on 2027-01-14: "
        "set JANT_OPENAI_MODEL to a newer model now."
    ]


async def test_the_speech_model_is_watched_when_the_voice_is_openais(fake: FakeOpenAI, tmp_path: Path) -> None:
    env = {"JANT_VOICE": "openai-compatible", "JANT_TTS_BASE_URL": fake.base_url}
    report = await check_model_lifetimes(settings_for(fake, tmp_path, **env), today=TODAY)
    assert report.warnings() == [
        "The OpenAI model tts-1 (JANT_OPENAI_TTS_MODEL) shuts down on 2027-01-06: "
        "set JANT_OPENAI_TTS_MODEL to a newer model before then."
    ]
    # Read through the real client, as OpenAI answers it; an unknown id is OpenAI's 404 body.
    client = openai.AsyncOpenAI(api_key=FakeOpenAI.API_KEY, base_url=fake.base_url, max_retries=0)
    try:
        assert (await client.models.retrieve("tts-1")).shutdown_date == "2027-01-06"
        with pytest.raises(openai.NotFoundError) as ei:
            await client.models.retrieve("tts-9")
    finally:
        await client.close()
    assert ei.value.code == "model_not_found" and ei.value.body == {
        "message": "The model `tts-9` does not exist or you do not have access to it.",
        "type": "invalid_request_error", "param": None, "code": "model_not_found",
    }  # fmt: skip
    quiet = await check_model_lifetimes(settings_for(fake, tmp_path), today=TODAY)  # another voice: not asked
    assert [m.model for m in quiet.models] == ["gpt-4o", "gpt-6-astra"]


async def test_video_model_end_dates_come_from_the_registry_without_any_key(tmp_path: Path) -> None:
    registry = dict(VIDEO_MODELS)
    registry["kling-v2.1"] = dataclasses.replace(registry["kling-v2.1"], ends=TODAY + timedelta(days=30))
    registry["hailuo-02"] = dataclasses.replace(registry["hailuo-02"], ends=TODAY + timedelta(days=90))
    settings = settings_for(None, tmp_path, JANT_VIDEO_MODEL="kling-v2.1")
    report = await check_model_lifetimes(settings, today=TODAY, registry=registry)
    assert report.warnings() == [
        "The Replicate model Kling 2.1 (kwaivgi/kling-v2.1) (JANT_VIDEO_MODEL) shuts down on 2027-01-03: "
        "set JANT_VIDEO_MODEL to a newer model before then."
    ]
    allowed_only = settings_for(None, tmp_path, JANT_ALLOWED_VIDEO_MODELS="svd,kling-v2.1")
    (warning,) = (await check_model_lifetimes(allowed_only, today=TODAY, registry=registry)).warnings()
    assert "(JANT_ALLOWED_VIDEO_MODELS) shuts down on 2027-01-03" in warning
    not_used = settings_for(None, tmp_path, JANT_ALLOWED_VIDEO_MODELS="svd")
    assert (await check_model_lifetimes(not_used, today=TODAY, registry=registry)).warnings() == []
    # The shipped registry announces no end date today.
    assert (await check_model_lifetimes(settings_for(None, tmp_path), today=TODAY)).warnings() == []

"""Settings come in sections, and nothing a user or another module relied on moved: every variable
name still configures the same value, keywords by variable name still build Settings, `.env` still
works, and the flat names of before still read (through the one documented mapping)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from pipeline.config import FLAT_NAMES, Settings

# The variables of the single flat Settings before the split: a public contract, so spelled out here.
VARIABLES_BEFORE_THE_SPLIT = """
DISCORD_TOKEN OPENAI_API_KEY REPLICATE_API_TOKEN OPENAI_BASE_URL REPLICATE_BASE_URL DISCORD_API_BASE
DISCORD_GATEWAY_URL JANT_ENV JANT_DATA_DIR JANT_DB_PATH JANT_OFFLINE JANT_OPENAI_MODEL JANT_SDXL_MODEL
JANT_SDXL_VERSION JANT_SVD_MODEL JANT_SVD_VERSION JANT_SVD_VIDEO_LENGTH JANT_SVD_FPS
JANT_MAX_CONCURRENT_PREDICTIONS JANT_MAX_ATTEMPTS JANT_RETRY_BACKOFF_S JANT_SEED_DEADLINE_S
JANT_CLIP_DEADLINE_S JANT_POLL_INTERVAL_S JANT_REPLICATE_POLL_BUDGET_PER_MIN JANT_REPLICATE_CREATES_PER_MIN
JANT_REPLICATE_RATE_WINDOW_S JANT_PRICE_PER_GPU_SECOND JANT_ALLOWED_MEDIA_HOSTS JANT_MAX_DOWNLOAD_BYTES
JANT_USER_CONCURRENT_JOBS JANT_GUILD_CONCURRENT_JOBS JANT_USER_DAILY_JOBS JANT_RETENTION_DAYS
JANT_INTERPOLATE JANT_BYTE_LIMIT JANT_DISCORD_GUILD_IDS JANT_APPROVER_ROLE JANT_STATUS_EDIT_INTERVAL_S
JANT_STATUS_HEARTBEAT_S
""".split()
# The flat field names of before, each with its variable (for the compatibility layer).
FLAT_BEFORE = {
    "discord_token": "DISCORD_TOKEN", "openai_api_key": "OPENAI_API_KEY", "replicate_api_token": "REPLICATE_API_TOKEN",
    "openai_base_url": "OPENAI_BASE_URL", "replicate_base_url": "REPLICATE_BASE_URL",
    "discord_api_base": "DISCORD_API_BASE", "discord_gateway_url": "DISCORD_GATEWAY_URL", "env": "JANT_ENV",
    "data_dir": "JANT_DATA_DIR", "db_path_override": "JANT_DB_PATH", "offline": "JANT_OFFLINE",
    "openai_model": "JANT_OPENAI_MODEL", "sdxl_model": "JANT_SDXL_MODEL", "sdxl_version": "JANT_SDXL_VERSION",
    "svd_model": "JANT_SVD_MODEL", "svd_version": "JANT_SVD_VERSION", "svd_video_length": "JANT_SVD_VIDEO_LENGTH",
    "svd_fps": "JANT_SVD_FPS", "max_concurrent_predictions": "JANT_MAX_CONCURRENT_PREDICTIONS",
    "max_attempts": "JANT_MAX_ATTEMPTS", "retry_backoff_s": "JANT_RETRY_BACKOFF_S",
    "seed_deadline_s": "JANT_SEED_DEADLINE_S", "clip_deadline_s": "JANT_CLIP_DEADLINE_S",
    "poll_interval_s": "JANT_POLL_INTERVAL_S", "replicate_poll_budget_per_min": "JANT_REPLICATE_POLL_BUDGET_PER_MIN",
    "replicate_creates_per_min": "JANT_REPLICATE_CREATES_PER_MIN",
    "replicate_rate_window_s": "JANT_REPLICATE_RATE_WINDOW_S", "price_per_gpu_second": "JANT_PRICE_PER_GPU_SECOND",
    "allowed_media_hosts": "JANT_ALLOWED_MEDIA_HOSTS", "max_download_bytes": "JANT_MAX_DOWNLOAD_BYTES",
    "user_concurrent_jobs": "JANT_USER_CONCURRENT_JOBS", "guild_concurrent_jobs": "JANT_GUILD_CONCURRENT_JOBS",
    "user_daily_jobs": "JANT_USER_DAILY_JOBS", "retention_days": "JANT_RETENTION_DAYS",
    "interpolate": "JANT_INTERPOLATE", "byte_limit": "JANT_BYTE_LIMIT", "discord_guild_ids": "JANT_DISCORD_GUILD_IDS",
    "approver_role": "JANT_APPROVER_ROLE", "status_edit_interval_s": "JANT_STATUS_EDIT_INTERVAL_S",
    "status_heartbeat_s": "JANT_STATUS_HEARTBEAT_S",
}  # fmt: skip
# A value for each variable that differs from its default and is valid.
SAMPLE = {
    "DISCORD_TOKEN": "fake-discord", "OPENAI_API_KEY": "sk-fake", "REPLICATE_API_TOKEN": "r8_fake",
    "OPENAI_BASE_URL": "http://127.0.0.1:1/v1", "REPLICATE_BASE_URL": "http://127.0.0.1:2/v1",
    "DISCORD_API_BASE": "http://127.0.0.1:3", "DISCORD_GATEWAY_URL": "ws://127.0.0.1:4/gateway", "JANT_ENV": "prod",
    "JANT_DATA_DIR": "/tmp/jant-data", "JANT_DB_PATH": "/tmp/jant.db", "JANT_OFFLINE": "true",
    "JANT_OPENAI_MODEL": "gpt-4.1", "JANT_SDXL_MODEL": "a/b", "JANT_SDXL_VERSION": "v1", "JANT_SVD_MODEL": "c/d",
    "JANT_SVD_VERSION": "v2", "JANT_SVD_VIDEO_LENGTH": "14_frames_with_svd", "JANT_SVD_FPS": "8",
    "JANT_MAX_CONCURRENT_PREDICTIONS": "7", "JANT_MAX_ATTEMPTS": "5", "JANT_RETRY_BACKOFF_S": "0.5",
    "JANT_SEED_DEADLINE_S": "11", "JANT_CLIP_DEADLINE_S": "12", "JANT_POLL_INTERVAL_S": "0.25",
    "JANT_REPLICATE_POLL_BUDGET_PER_MIN": "100", "JANT_REPLICATE_CREATES_PER_MIN": "10",
    "JANT_REPLICATE_RATE_WINDOW_S": "6", "JANT_PRICE_PER_GPU_SECOND": "0.001", "JANT_ALLOWED_MEDIA_HOSTS": "x.test",
    "JANT_MAX_DOWNLOAD_BYTES": "1000", "JANT_USER_CONCURRENT_JOBS": "9", "JANT_GUILD_CONCURRENT_JOBS": "19",
    "JANT_USER_DAILY_JOBS": "29", "JANT_RETENTION_DAYS": "3", "JANT_INTERPOLATE": "true",
    "JANT_BYTE_LIMIT": "5000000", "JANT_DISCORD_GUILD_IDS": "1,2", "JANT_APPROVER_ROLE": "Editors",
    "JANT_STATUS_EDIT_INTERVAL_S": "3", "JANT_STATUS_HEARTBEAT_S": "0",
}  # fmt: skip


def plain(value: object) -> object:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_every_variable_of_before_is_still_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert set(SAMPLE) == set(VARIABLES_BEFORE_THE_SPLIT) == set(FLAT_BEFORE.values())
    default = Settings()  # the autouse fixture leaves no keys, and no .env in the working directory
    for name, value in SAMPLE.items():
        monkeypatch.setenv(name, value)
    from_env = Settings()
    for name in SAMPLE:
        monkeypatch.delenv(name)
    by_keyword = Settings(**SAMPLE)
    for flat, variable in FLAT_BEFORE.items():
        section, field = FLAT_NAMES[flat]
        got = plain(getattr(getattr(from_env, section), field))
        assert got == plain(getattr(getattr(by_keyword, section), field)), variable
        assert got != plain(getattr(getattr(default, section), field)), f"{variable} had no effect on {section}.{field}"


def test_the_flat_names_of_before_still_read_from_their_section() -> None:
    s = Settings(**SAMPLE)
    for flat in FLAT_BEFORE:
        section, field = FLAT_NAMES[flat]
        assert plain(getattr(s, flat)) == plain(getattr(getattr(s, section), field))
    assert s.guild_ids == s.discord.guild_ids == [1, 2]
    assert s.db_path == s.storage.db_path == Path("/tmp/jant.db")
    assert s.profile.seed_width == s.media.profile.seed_width == 768
    assert s.allowed_hosts == s.replicate.allowed_hosts == frozenset({"x.test"})
    with pytest.raises(AttributeError, match="no attribute 'not_a_setting'"):
        _ = s.not_a_setting


def test_keywords_win_over_the_environment_which_wins_over_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("JANT_OPENAI_MODEL=from-dotenv\nJANT_MAX_ATTEMPTS=4\nJANT_SVD_FPS=9\n")
    monkeypatch.setenv("JANT_MAX_ATTEMPTS", "5")
    s = Settings(JANT_SVD_FPS=10)
    assert (s.openai.model, s.limits.max_attempts, s.replicate.svd_fps) == ("from-dotenv", 5, 10)


def test_model_copy_with_flat_names_changes_the_section() -> None:
    s = Settings(JANT_ENV="prod")
    t = s.model_copy(update={"user_concurrent_jobs": 1, "env": "dev", "openai_model": "gpt-4.1"})
    assert (t.limits.user_concurrent_jobs, t.media.env, t.openai.model) == (1, "dev", "gpt-4.1")
    assert t.media.profile.seed_width == 640  # derived values follow
    assert (s.limits.user_concurrent_jobs, s.media.env, s.openai.model) == (2, "prod", "gpt-4o")  # s unchanged

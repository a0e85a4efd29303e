"""Configuration from the environment (and an optional .env), read once."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SVD_VERSION = "3f0457e4619daac51203dedb472816fd4af51f3149fa7a9e0b5ffcf1b8172438"
SDXL_VERSION = "7762fd07cf82c948538e41f63f77d685e02b063e37e496e96eefd46c929f9bdc"


class EnvProfile:
    """What `JANT_ENV` buys: dev is fast and cheap, prod is full quality."""

    def __init__(self, env: str) -> None:
        self.env = env
        prod = env == "prod"
        self.seed_width, self.seed_height = (1080, 1920) if prod else (640, 1136)
        self.seed_steps = 50 if prod else 20
        self.output_width, self.output_height = (1080, 1920) if prod else (720, 1280)
        # SVD wants a 576x1024 portrait input with sizing_strategy=use_image_dimensions.
        self.clip_width, self.clip_height = 576, 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Secrets: a missing one selects the offline provider for that stage.
    discord_token: SecretStr | None = Field(default=None, alias="DISCORD_TOKEN")
    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")
    replicate_api_token: SecretStr | None = Field(default=None, alias="REPLICATE_API_TOKEN")

    # Endpoints (tests point these at local emulators).
    openai_base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL")
    replicate_base_url: str | None = Field(default=None, alias="REPLICATE_BASE_URL")
    discord_api_base: str | None = Field(default=None, alias="DISCORD_API_BASE")
    discord_gateway_url: str | None = Field(default=None, alias="DISCORD_GATEWAY_URL")

    env: Literal["dev", "prod"] = Field(default="dev", alias="JANT_ENV")
    data_dir: Path = Field(default=Path("./data"), alias="JANT_DATA_DIR")
    db_path_override: Path | None = Field(default=None, alias="JANT_DB_PATH")
    offline: bool = Field(default=False, alias="JANT_OFFLINE")  # force offline even with keys

    # Models: every id is a setting (snapshots get retired).
    openai_model: str = Field(default="gpt-4o", alias="JANT_OPENAI_MODEL")
    sdxl_model: str = Field(default="stability-ai/sdxl", alias="JANT_SDXL_MODEL")
    sdxl_version: str = Field(default=SDXL_VERSION, alias="JANT_SDXL_VERSION")
    svd_model: str = Field(default="stability-ai/stable-video-diffusion", alias="JANT_SVD_MODEL")
    svd_version: str = Field(default=SVD_VERSION, alias="JANT_SVD_VERSION")
    svd_video_length: Literal["14_frames_with_svd", "25_frames_with_svd_xt"] = Field(
        default="25_frames_with_svd_xt", alias="JANT_SVD_VIDEO_LENGTH"
    )
    svd_fps: int = Field(default=6, ge=5, le=30, alias="JANT_SVD_FPS")

    # Orchestration.
    # Enough for 50 concurrent ads of up to 7 scenes to all generate at once (benchmarks/README.md):
    # a lower cap only queues scenes (the GPU seconds billed are the same), Replicate's request
    # limits are kept by the poll scheduler, and fairness between teammates by the round-robin.
    max_concurrent_predictions: int = Field(default=350, ge=1, alias="JANT_MAX_CONCURRENT_PREDICTIONS")
    max_attempts: int = Field(default=3, ge=1, le=10, alias="JANT_MAX_ATTEMPTS")
    retry_backoff_s: float = Field(default=2.0, ge=0, alias="JANT_RETRY_BACKOFF_S")
    seed_deadline_s: float = Field(default=90.0, gt=0, alias="JANT_SEED_DEADLINE_S")
    clip_deadline_s: float = Field(default=300.0, gt=0, alias="JANT_CLIP_DEADLINE_S")
    poll_interval_s: float = Field(default=1.0, gt=0, alias="JANT_POLL_INTERVAL_S")
    # Replicate allows 3000 non-create requests a minute per account; polls take at most 80 % of it.
    # A setting so a benchmark that compresses time can compress the budget with it.
    replicate_poll_budget_per_min: float = Field(default=2400, gt=0, alias="JANT_REPLICATE_POLL_BUDGET_PER_MIN")
    # And 600 creates a minute: at most 570 in any minute, 30 kept in hand for other clients.
    replicate_creates_per_min: int = Field(default=570, ge=1, alias="JANT_REPLICATE_CREATES_PER_MIN")
    # The length of Replicate's rate-limit minute: a setting so a benchmark can compress time.
    replicate_rate_window_s: float = Field(default=60.0, gt=0, alias="JANT_REPLICATE_RATE_WINDOW_S")
    price_per_gpu_second: float = Field(default=0.000725, ge=0, alias="JANT_PRICE_PER_GPU_SECOND")
    allowed_media_hosts: str = Field(
        default="replicate.delivery,pbxt.replicate.delivery", alias="JANT_ALLOWED_MEDIA_HOSTS"
    )
    max_download_bytes: int = Field(default=200 * 1024 * 1024, alias="JANT_MAX_DOWNLOAD_BYTES")

    # Quotas (Discord requesters; the local CLI has none).
    user_concurrent_jobs: int = Field(default=2, ge=1, alias="JANT_USER_CONCURRENT_JOBS")
    guild_concurrent_jobs: int = Field(default=5, ge=1, alias="JANT_GUILD_CONCURRENT_JOBS")
    user_daily_jobs: int = Field(default=20, ge=1, alias="JANT_USER_DAILY_JOBS")
    retention_days: int = Field(default=14, ge=0, alias="JANT_RETENTION_DAYS")  # 0 keeps media forever

    # Composer.
    interpolate: bool = Field(default=False, alias="JANT_INTERPOLATE")  # minterpolate: slow, smoother
    byte_limit: int | None = Field(default=None, alias="JANT_BYTE_LIMIT")  # CLI output cap, bytes

    # Captions (wcap): spoken-word captions burned into each scene; the headline is always drawn.
    # karaoke: 2–3 words at a time, the spoken one highlighted; plain: the same, unlit; off: none.
    captions: Literal["karaoke", "plain", "off"] = Field(default="karaoke", alias="JANT_CAPTIONS")

    # Discord.
    discord_guild_ids: str = Field(default="", alias="JANT_DISCORD_GUILD_IDS")
    approver_role: str | None = Field(default=None, alias="JANT_APPROVER_ROLE")
    status_edit_interval_s: float = Field(default=2.0, gt=0, alias="JANT_STATUS_EDIT_INTERVAL_S")
    # Re-render running status messages this often even without progress (elapsed, ETA, queue place).
    status_heartbeat_s: float = Field(default=15.0, ge=0, alias="JANT_STATUS_HEARTBEAT_S")  # 0: off

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @property
    def db_path(self) -> Path:
        return (self.db_path_override or self.data_dir / "jant.db").expanduser()

    @cached_property
    def profile(self) -> EnvProfile:
        return EnvProfile(self.env)

    @property
    def allowed_hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.allowed_media_hosts.split(",") if h.strip())

    @property
    def guild_ids(self) -> list[int]:
        return [int(x) for x in self.discord_guild_ids.replace(" ", "").split(",") if x]

    @property
    def planner_live(self) -> bool:
        return self.openai_api_key is not None and not self.offline

    @property
    def media_live(self) -> bool:
        return self.replicate_api_token is not None and not self.offline

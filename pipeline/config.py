"""Configuration from the environment (and an optional .env), read once, in sections.

Each section is a pydantic-settings class that reads its own variables (environment, then `.env`,
then defaults); `Settings` holds one of each. Variable names are the public contract and never
change; the Python names inside a section are short (`settings.openai.model`, not
`settings.openai_model`).

    settings = Settings()                                    # from the environment and .env
    settings = Settings(JANT_DATA_DIR=tmp, OPENAI_API_KEY=k)  # variable names as keywords win

An empty or whitespace-only value counts as not set, whatever its source, so `cp .env.example .env`
behaves like no .env at all; which ones were blank is kept for `jant doctor` to report.

Compatibility (for one release): the flat names of the single Settings class that came before
(`settings.openai_model`, `settings.data_dir`, …) still read through `FLAT_NAMES`, the one list of
what moved where; `model_copy(update={flat name: value})` routes to the section too. New code uses
the sections.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.byte_limit import byte_limit_problem

SVD_VERSION = "3f0457e4619daac51203dedb472816fd4af51f3149fa7a9e0b5ffcf1b8172438"
SDXL_VERSION = "7762fd07cf82c948538e41f63f77d685e02b063e37e496e96eefd46c929f9bdc"

SECRET_NAMES = ("OPENAI_API_KEY", "REPLICATE_API_TOKEN", "DISCORD_TOKEN")
_SECRETS = frozenset(SECRET_NAMES)
# A worker id goes into logs, DBOS's executor_id and the workers table: plain characters only.
WORKER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]*$"


class EnvProfile:
    """What `JANT_ENV` buys: dev is fast and cheap, prod is full quality."""

    def __init__(self, env: str) -> None:
        self.env = env
        prod = env == "prod"
        # SDXL is trained around 1 MP: 768x1344 is its 9:16 bucket (1080x1920 is twice that and repeats
        # subjects). The seed is then resized to the video model's own input size (576x1024 for SVD,
        # see `pipeline.video_models`); dev paints a smaller, cheaper seed.
        self.seed_width, self.seed_height = (768, 1344) if prod else (640, 1136)
        self.seed_steps = 50 if prod else 20
        self.output_width, self.output_height = (1080, 1920) if prod else (720, 1280)
        # SVD wants a 576x1024 portrait input with sizing_strategy=use_image_dimensions.
        self.clip_width, self.clip_height = 576, 1024


def _text(value: str | SecretStr) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


class _Section(BaseSettings):
    """One group of variables. Shared rules: .env support, unknown variables ignored, blank = unset."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    _blank: frozenset[str] = PrivateAttr(default=frozenset())

    @model_validator(mode="wrap")
    @classmethod
    def _blank_means_unset(cls, data: Any, handler: Callable[[Any], _Section]) -> _Section:
        """A whitespace-only value is dropped before validation, so the default applies."""
        if not isinstance(data, dict):  # an instance already checked (a section given to Settings)
            return handler(data)
        blank = {str(k) for k, v in data.items() if isinstance(v, str | SecretStr) and not _text(v).strip()}
        data = {k: (_text(v).strip() if k in _SECRETS else v) for k, v in data.items() if k not in blank}
        section = handler(data)
        section._blank = frozenset(blank)
        return section

    @classmethod
    def env_names(cls) -> frozenset[str]:
        return frozenset(f.alias for f in cls.model_fields.values() if f.alias)


class DiscordSettings(_Section):
    token: SecretStr | None = Field(default=None, alias="DISCORD_TOKEN")
    api_base: str | None = Field(default=None, alias="DISCORD_API_BASE")  # tests: the local emulator
    gateway_url: str | None = Field(default=None, alias="DISCORD_GATEWAY_URL")
    guild_ids_text: str = Field(default="", alias="JANT_DISCORD_GUILD_IDS")
    approver_role: str | None = Field(default=None, alias="JANT_APPROVER_ROLE")
    status_edit_interval_s: float = Field(default=2.0, gt=0, alias="JANT_STATUS_EDIT_INTERVAL_S")
    # With shared limits (JANT_SHARED_LIMITS): at most this many status edits per channel in any
    # JANT_STATUS_CHANNEL_WINDOW_S, across every bot on the database. Discord does not publish its
    # per-route limits (PLATFORM-FACTS D): 4 per 5 s is a cautious guess that leaves room for the bot's
    # other messages in the channel; a 429 beyond it costs time (discord.py waits it out), not edits.
    status_channel_edits: int = Field(default=4, ge=1, alias="JANT_STATUS_CHANNEL_EDITS")
    status_channel_window_s: float = Field(default=5.0, gt=0, alias="JANT_STATUS_CHANNEL_WINDOW_S")
    # Re-render running status messages this often even without progress (elapsed, ETA, queue place).
    status_heartbeat_s: float = Field(default=15.0, ge=0, alias="JANT_STATUS_HEARTBEAT_S")  # 0: off
    # `jant bot` start-up when Discord cannot be reached: this many tries, waiting BACKOFF_S, then
    # twice as long each time (2, 4, 8, 16, 32 s: about a minute), then exit 2.
    connect_attempts: int = Field(default=6, ge=1, alias="JANT_DISCORD_CONNECT_ATTEMPTS")
    connect_backoff_s: float = Field(default=2.0, ge=0, alias="JANT_DISCORD_CONNECT_BACKOFF_S")

    @property
    def guild_ids(self) -> list[int]:
        return [int(x) for x in self.guild_ids_text.replace(" ", "").split(",") if x]

    # Container health: while connected to the gateway the bot rewrites a heartbeat file this often;
    # `python -m bot.heartbeat` calls it unhealthy after three intervals without one.
    heartbeat_interval_s: float = Field(default=30.0, gt=0, alias="JANT_HEARTBEAT_INTERVAL_S")


class OpenAISettings(_Section):
    api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")
    base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL")  # None: the client's own default
    # Every model id is a setting: models get retired.
    model: str = Field(default="gpt-4o", alias="JANT_OPENAI_MODEL")
    # Used when OpenAI answers 404 model_not_found for `model` (gpt-4o shuts down 2027-01-14).
    # gpt-4.1 retires the same day and the gpt-5 family earlier (2026-12-11); the announced successor
    # is the gpt-6 family (openai 3.60.0 lists it as a chat model); gpt-6-astra heads that list.
    # "none": no fallback, planning fails with the setting to change instead.
    fallback_model: str | None = Field(default="gpt-6-astra", alias="JANT_OPENAI_FALLBACK_MODEL")

    @field_validator("fallback_model", mode="after")
    @classmethod
    def _no_fallback(cls, v: str | None) -> str | None:
        return None if v is None or v.strip().lower() in ("none", "off") else v.strip()


class ReplicateSettings(_Section):
    api_token: SecretStr | None = Field(default=None, alias="REPLICATE_API_TOKEN")
    base_url: str | None = Field(default=None, alias="REPLICATE_BASE_URL")
    sdxl_model: str = Field(default="stability-ai/sdxl", alias="JANT_SDXL_MODEL")
    sdxl_version: str = Field(default=SDXL_VERSION, alias="JANT_SDXL_VERSION")
    svd_model: str = Field(default="stability-ai/stable-video-diffusion", alias="JANT_SVD_MODEL")
    svd_version: str = Field(default=SVD_VERSION, alias="JANT_SVD_VERSION")
    svd_video_length: Literal["14_frames_with_svd", "25_frames_with_svd_xt"] = Field(
        default="25_frames_with_svd_xt", alias="JANT_SVD_VIDEO_LENGTH"
    )
    svd_fps: int = Field(default=6, ge=5, le=30, alias="JANT_SVD_FPS")
    # Replicate allows 3000 non-create requests a minute per account; polls take at most 80 % of it.
    # A setting so a benchmark that compresses time can compress the budget with it.
    poll_budget_per_min: float = Field(default=2400, gt=0, alias="JANT_REPLICATE_POLL_BUDGET_PER_MIN")
    # And 600 creates a minute: at most 570 in any minute, 30 kept in hand for other clients.
    creates_per_min: int = Field(default=570, ge=1, alias="JANT_REPLICATE_CREATES_PER_MIN")
    # The length of Replicate's rate-limit minute: a setting so a benchmark can compress time.
    rate_window_s: float = Field(default=60.0, gt=0, alias="JANT_REPLICATE_RATE_WINDOW_S")
    price_per_gpu_second: float = Field(default=0.000725, ge=0, alias="JANT_PRICE_PER_GPU_SECOND")
    allowed_media_hosts: str = Field(
        default="replicate.delivery,pbxt.replicate.delivery", alias="JANT_ALLOWED_MEDIA_HOSTS"
    )
    max_download_bytes: int = Field(default=200 * 1024 * 1024, alias="JANT_MAX_DOWNLOAD_BYTES")

    @property
    def allowed_hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.allowed_media_hosts.split(",") if h.strip())

    # --- the image-to-video model (pipeline.video_models: svd, wan-2.2-i2v-fast, kling-v2.1, hailuo-02)
    # The one a job uses unless it asks for another; SVD, the model Jant was specified with.
    video_model: str = Field(default="svd", alias="JANT_VIDEO_MODEL")
    # What `/makead model:` and `--model` may choose from (comma-separated keys); a server's own list
    # (/brand) replaces it there. Every entry by default: the spend caps keep the bill in check.
    allowed_video_models_text: str = Field(
        default="svd,wan-2.2-i2v-fast,kling-v2.1,hailuo-02", alias="JANT_ALLOWED_VIDEO_MODELS"
    )

    @field_validator("video_model", mode="after")
    @classmethod
    def _known_video_model(cls, v: str) -> str:
        from pipeline.video_models import VIDEO_MODEL_KEYS

        key = v.strip().lower()
        if key not in VIDEO_MODEL_KEYS:
            raise ValueError(f"JANT_VIDEO_MODEL must be one of {', '.join(VIDEO_MODEL_KEYS)} (got {v.strip()[:40]!r})")
        return key

    @field_validator("allowed_video_models_text", mode="after")
    @classmethod
    def _known_allowed(cls, v: str) -> str:
        from pipeline.video_models import VIDEO_MODEL_KEYS, parse_keys

        unknown = [k for k in parse_keys(v) if k not in VIDEO_MODEL_KEYS]
        if unknown:
            raise ValueError(
                f"JANT_ALLOWED_VIDEO_MODELS names unknown models ({', '.join(unknown)}); "
                f"known: {', '.join(VIDEO_MODEL_KEYS)}"
            )
        return v

    @property
    def allowed_video_models(self) -> tuple[str, ...]:
        from pipeline.video_models import parse_keys

        return parse_keys(self.allowed_video_models_text)

    @property
    def svd_reference(self) -> str:
        return f"{self.svd_model}:{self.svd_version}"


class LimitsSettings(_Section):
    """How much runs at once, how often it is retried, how long it may take, and per-person quotas."""

    # Enough for 50 concurrent ads of up to 7 scenes to all generate at once (benchmarks/README.md):
    # a lower cap only queues scenes (the GPU seconds billed are the same), Replicate's request
    # limits are kept by the poll scheduler, and fairness between teammates by the round-robin.
    max_concurrent_predictions: int = Field(default=350, ge=1, alias="JANT_MAX_CONCURRENT_PREDICTIONS")
    max_attempts: int = Field(default=3, ge=1, le=10, alias="JANT_MAX_ATTEMPTS")
    retry_backoff_s: float = Field(default=2.0, ge=0, alias="JANT_RETRY_BACKOFF_S")
    seed_deadline_s: float = Field(default=90.0, gt=0, alias="JANT_SEED_DEADLINE_S")
    clip_deadline_s: float = Field(default=300.0, gt=0, alias="JANT_CLIP_DEADLINE_S")
    poll_interval_s: float = Field(default=1.0, gt=0, alias="JANT_POLL_INTERVAL_S")
    # Quotas (Discord requesters; the local CLI has none).
    user_concurrent_jobs: int = Field(default=2, ge=1, alias="JANT_USER_CONCURRENT_JOBS")
    guild_concurrent_jobs: int = Field(default=5, ge=1, alias="JANT_GUILD_CONCURRENT_JOBS")
    user_daily_jobs: int = Field(default=20, ge=1, alias="JANT_USER_DAILY_JOBS")

    # -- Spend caps (USD; unset: no cap). A server's `/brand set budget_daily: budget_monthly:`
    # overrides the two budgets for that server; command-line jobs share one bucket of their own.
    guild_daily_budget_usd: float | None = Field(default=None, ge=0, alias="JANT_GUILD_DAILY_BUDGET_USD")
    guild_monthly_budget_usd: float | None = Field(default=None, ge=0, alias="JANT_GUILD_MONTHLY_BUDGET_USD")
    max_job_cost_usd: float | None = Field(default=None, ge=0, alias="JANT_MAX_JOB_COST_USD")


class MediaSettings(_Section):
    """What the ad is rendered as."""

    env: Literal["dev", "prod"] = Field(default="dev", alias="JANT_ENV")
    offline: bool = Field(default=False, alias="JANT_OFFLINE")  # force offline providers even with keys
    interpolate: bool = Field(default=False, alias="JANT_INTERPOLATE")  # minterpolate: slow, smoother
    byte_limit: int | None = Field(default=None, alias="JANT_BYTE_LIMIT")  # CLI output cap, bytes

    @field_validator("byte_limit", mode="after")
    @classmethod
    def _usable_byte_limit(cls, v: int | None) -> int | None:
        if v is not None and (problem := byte_limit_problem(v)):
            raise ValueError(problem)
        return v

    @property
    def profile(self) -> EnvProfile:  # not cached: model_copy(update={"env": …}) must not keep the old one
        return EnvProfile(self.env)


class StorageSettings(_Section):
    data_dir: Path = Field(default=Path("./data"), alias="JANT_DATA_DIR")
    db_path_override: Path | None = Field(default=None, alias="JANT_DB_PATH")
    retention_days: int = Field(default=14, ge=0, alias="JANT_RETENTION_DAYS")  # 0 keeps media forever

    # -- the durable engine (issue 15; docs/durable-jobs.md) -------------------------------------------
    # local: jobs run as tasks of this process (the default). dbos: each job run is a DBOS workflow in
    # <data dir>/dbos.sqlite (needs `pip install 'jant[durable]'`), recovered by the next `jant worker`.
    engine: Literal["local", "dbos"] = Field(default="local", alias="JANT_ENGINE")
    # DBOS recovers a dead process's jobs only in a process with the same id: stable, unique per process.
    # Unset: the host name and a suffix kept in <data dir>/worker-ids/<host> (pipeline/durable/workers.py).
    worker_id: str | None = Field(default=None, pattern=WORKER_ID_PATTERN, max_length=100, alias="JANT_WORKER_ID")
    # Each process that runs jobs beats this often; one whose beat is older than JANT_WORKER_TAKEOVER_S
    # has its pending jobs taken over by a live `jant worker`.
    worker_heartbeat_s: float = Field(default=2.0, gt=0, le=60, alias="JANT_WORKER_HEARTBEAT_S")
    worker_takeover_s: float = Field(default=60.0, gt=0, alias="JANT_WORKER_TAKEOVER_S")

    # -- budgets shared across processes (issue 15; pipeline/shared_limits.py) -------------------------
    # auto: with JANT_ENGINE=dbos, Replicate's create and poll budgets and Discord's status edits are
    # counted in the database, so workers and bots on it keep to the account's limits together; with the
    # local engine each process paces itself (no database write per poll). on/off: always/never.
    shared_limits: Literal["auto", "on", "off"] = Field(default="auto", alias="JANT_SHARED_LIMITS")

    @property
    def limits_shared(self) -> bool:
        return self.shared_limits == "on" or (self.shared_limits == "auto" and self.engine == "dbos")

    @model_validator(mode="after")
    def _takeover_after_beats(self) -> StorageSettings:
        # A survivor must not take a live worker's jobs for a beat that is merely late.
        if self.worker_takeover_s < 3 * self.worker_heartbeat_s:
            raise ValueError(
                f"JANT_WORKER_TAKEOVER_S ({self.worker_takeover_s:g}) must be at least three heartbeats"
                f" (JANT_WORKER_HEARTBEAT_S is {self.worker_heartbeat_s:g})"
            )
        return self

    # -- the database (issue 15; docs/durable-jobs.md, "Postgres") ---------------------------------------
    # Unset (the default): Jant's tables are the SQLite file JANT_DB_PATH (<data dir>/jant.db) and DBOS's
    # system database <data dir>/dbos.sqlite. postgresql://user[:password]@host:port/db: both live in that
    # Postgres database (DBOS's tables in its own schema, `dbos`); needs `pip install 'jant[postgres]'`.
    database_url: SecretStr | None = Field(default=None, alias="JANT_DATABASE_URL")

    @field_validator("database_url", mode="after")
    @classmethod
    def _postgres_only(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "JANT_DATABASE_URL must be a postgresql:// URL (postgresql://user@host:5432/jant); unset it to"
                " keep the SQLite file under JANT_DATA_DIR"
            )
        return v

    @property
    def database(self) -> Path | str:
        """Where Jant's tables are: the Postgres URL when set, else the SQLite file."""
        return self.database_url.get_secret_value() if self.database_url is not None else self.db_path

    @property
    def dbos_system_database_url(self) -> str:
        """DBOS's system database: the same Postgres database as Jant's tables, or a SQLite file of its own."""
        if self.database_url is not None:  # SQLAlchemy, under DBOS, knows only the long scheme name
            return "postgresql://" + self.database_url.get_secret_value().split("://", 1)[1]
        return f"sqlite:///{self.dbos_db_path}"

    @property
    def dbos_db_path(self) -> Path:
        return self.data_dir.expanduser() / "dbos.sqlite"

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @property
    def db_path(self) -> Path:
        return (self.db_path_override or self.data_dir / "jant.db").expanduser()


class AudioSettings(_Section):
    """What the ad sounds like and says: the voice of each scene's line, the music bed and the captions."""

    # auto: Replicate when REPLICATE_API_TOKEN is set, else the offline voice when `jant[voice]` is
    # installed, else none (captions and music only).
    voice: Literal["auto", "replicate", "openai-compatible", "offline", "none"] = Field(
        default="auto", alias="JANT_VOICE"
    )
    voice_id: str | None = Field(default=None, alias="JANT_VOICE_ID")  # None: the provider's default voice
    voice_speed: float = Field(default=1.0, ge=0.5, le=2.0, alias="JANT_VOICE_SPEED")
    # Official Replicate model: created by name, no version (speech-2.8-turbo takes the same inputs).
    tts_model: str = Field(default="minimax/speech-02-turbo", alias="JANT_TTS_MODEL")
    # MiniMax bills per input character; ~$0.015 per 1,000 for speech-02-turbo.
    tts_price_per_1k_chars: float = Field(default=0.015, ge=0, alias="JANT_TTS_PRICE_PER_1K_CHARS")
    voice_deadline_s: float = Field(default=60.0, gt=0, alias="JANT_VOICE_DEADLINE_S")
    # openai-compatible: a speech server that speaks OpenAI's POST /audio/speech.
    tts_base_url: str | None = Field(default=None, alias="JANT_TTS_BASE_URL")
    tts_api_key: SecretStr | None = Field(default=None, alias="JANT_TTS_API_KEY")
    openai_tts_model: str = Field(default="tts-1", alias="JANT_OPENAI_TTS_MODEL")

    # Music bed. auto: Replicate when REPLICATE_API_TOKEN is set, else a bed synthesised offline.
    music: Literal["auto", "replicate", "offline", "none"] = Field(default="auto", alias="JANT_MUSIC")
    # An official model's owner/name (created by name, no version) or a community model's version id.
    music_model: str = Field(default="stability-ai/stable-audio-2.5", alias="JANT_MUSIC_MODEL")
    music_deadline_s: float = Field(default=240.0, gt=0, alias="JANT_MUSIC_DEADLINE_S")
    # What one music run costs when the model bills per run rather than GPU time (3P estimate).
    music_price_per_run: float = Field(default=0.20, ge=0, alias="JANT_MUSIC_PRICE_PER_RUN")
    # Spoken-word captions burned into each scene; the headline is always drawn.
    # karaoke: 2–3 words at a time, the spoken one highlighted; plain: the same, unlit; off: none.
    captions: Literal["karaoke", "plain", "off"] = Field(default="karaoke", alias="JANT_CAPTIONS")

    # Voice and music predictions in flight at once, apart from JANT_MAX_CONCURRENT_PREDICTIONS (seeds
    # and clips) so they never queue behind each other: a line takes seconds, so 100 slots speak
    # fifty 7-scene ads' lines in a few waves (benchmarks/README.md).
    max_concurrent_predictions: int = Field(default=100, ge=1, alias="JANT_MAX_CONCURRENT_SOUND_PREDICTIONS")


# The old flat name → (section, name in the section). The compatibility layer reads only this.
FLAT_NAMES: Mapping[str, tuple[str, str]] = {
    "discord_token": ("discord", "token"),
    "discord_api_base": ("discord", "api_base"),
    "discord_gateway_url": ("discord", "gateway_url"),
    "discord_guild_ids": ("discord", "guild_ids_text"),
    "guild_ids": ("discord", "guild_ids"),
    "approver_role": ("discord", "approver_role"),
    "status_edit_interval_s": ("discord", "status_edit_interval_s"),
    "status_heartbeat_s": ("discord", "status_heartbeat_s"),
    "discord_connect_attempts": ("discord", "connect_attempts"),
    "discord_connect_backoff_s": ("discord", "connect_backoff_s"),
    "openai_api_key": ("openai", "api_key"),
    "openai_base_url": ("openai", "base_url"),
    "openai_model": ("openai", "model"),
    "openai_fallback_model": ("openai", "fallback_model"),
    "replicate_api_token": ("replicate", "api_token"),
    "replicate_base_url": ("replicate", "base_url"),
    "sdxl_model": ("replicate", "sdxl_model"),
    "sdxl_version": ("replicate", "sdxl_version"),
    "svd_model": ("replicate", "svd_model"),
    "svd_version": ("replicate", "svd_version"),
    "svd_video_length": ("replicate", "svd_video_length"),
    "svd_fps": ("replicate", "svd_fps"),
    "replicate_poll_budget_per_min": ("replicate", "poll_budget_per_min"),
    "replicate_creates_per_min": ("replicate", "creates_per_min"),
    "replicate_rate_window_s": ("replicate", "rate_window_s"),
    "price_per_gpu_second": ("replicate", "price_per_gpu_second"),
    "allowed_media_hosts": ("replicate", "allowed_media_hosts"),
    "allowed_hosts": ("replicate", "allowed_hosts"),
    "max_download_bytes": ("replicate", "max_download_bytes"),
    "max_concurrent_predictions": ("limits", "max_concurrent_predictions"),
    "max_attempts": ("limits", "max_attempts"),
    "retry_backoff_s": ("limits", "retry_backoff_s"),
    "seed_deadline_s": ("limits", "seed_deadline_s"),
    "clip_deadline_s": ("limits", "clip_deadline_s"),
    "poll_interval_s": ("limits", "poll_interval_s"),
    "user_concurrent_jobs": ("limits", "user_concurrent_jobs"),
    "guild_concurrent_jobs": ("limits", "guild_concurrent_jobs"),
    "user_daily_jobs": ("limits", "user_daily_jobs"),
    "env": ("media", "env"),
    "offline": ("media", "offline"),
    "interpolate": ("media", "interpolate"),
    "byte_limit": ("media", "byte_limit"),
    "profile": ("media", "profile"),
    "data_dir": ("storage", "data_dir"),
    "db_path_override": ("storage", "db_path_override"),
    "db_path": ("storage", "db_path"),
    "retention_days": ("storage", "retention_days"),
}


class Settings(BaseModel):
    """All of Jant's configuration, one section per concern."""

    discord: DiscordSettings
    openai: OpenAISettings
    replicate: ReplicateSettings
    limits: LimitsSettings
    media: MediaSettings
    storage: StorageSettings
    audio: AudioSettings

    SECTIONS: ClassVar[dict[str, type[_Section]]] = {
        "discord": DiscordSettings,
        "openai": OpenAISettings,
        "replicate": ReplicateSettings,
        "limits": LimitsSettings,
        "media": MediaSettings,
        "storage": StorageSettings,
        "audio": AudioSettings,
    }

    def __init__(self, **values: Any) -> None:
        """Keywords are variable names (`JANT_DATA_DIR=…`), or whole sections (`openai=OpenAISettings()`).
        Each section reads the environment and .env for the variables it is not given."""
        sections: dict[str, Any] = {}
        for name, cls in self.SECTIONS.items():
            if name in values:
                sections[name] = values[name]
            else:
                mine = cls.env_names()
                sections[name] = cls(**{k: v for k, v in values.items() if k in mine})
        super().__init__(**sections)

    # ------------------------------------------------------------------ across sections
    @property
    def planner_live(self) -> bool:
        return self.openai.api_key is not None and not self.media.offline

    @property
    def media_live(self) -> bool:
        return self.replicate.api_token is not None and not self.media.offline

    def is_blank(self, env_name: str) -> bool:
        """The variable was given (environment, .env or keyword) but empty: it counts as not set."""
        return any(env_name in section._blank for section in self._sections())

    def secret_state(self, env_name: str) -> Literal["set", "empty", "missing"]:
        """For reports: a secret is set, present but empty (so not set), or absent. Never its value."""
        value = {"OPENAI_API_KEY": self.openai.api_key, "REPLICATE_API_TOKEN": self.replicate.api_token,
                 "DISCORD_TOKEN": self.discord.token}[env_name]  # fmt: skip
        if value is not None:
            return "set"
        return "empty" if self.is_blank(env_name) else "missing"

    def unset_reason(self, env_name: str) -> str:
        """'X is not set' or 'X is empty', for the offline notices."""
        return f"{env_name} is empty" if self.is_blank(env_name) else f"{env_name} is not set"

    def _sections(self) -> list[_Section]:
        return [getattr(self, name) for name in self.SECTIONS]

    # ------------------------------------------------------------------ compatibility (one release)
    def __getattr__(self, name: str) -> Any:
        """Flat names from before the split (`settings.openai_model`) read from their section."""
        where = FLAT_NAMES.get(name)
        if where is None:
            return super().__getattr__(name)  # type: ignore[misc]  # pydantic's: private attributes, errors
        section, field = where
        return getattr(getattr(self, section), field)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Settings:
        """As pydantic's, and flat names in `update` change the field in their section."""
        if not update:
            return super().model_copy(deep=deep)
        by_section: dict[str, dict[str, Any]] = {}
        rest: dict[str, Any] = {}
        for key, value in update.items():
            if key in FLAT_NAMES:
                section, field = FLAT_NAMES[key]
                by_section.setdefault(section, {})[field] = value
            else:
                rest[key] = value
        for section, fields in by_section.items():
            current = rest.get(section, getattr(self, section))
            rest[section] = current.model_copy(update=fields, deep=deep)
        return super().model_copy(update=rest, deep=deep)

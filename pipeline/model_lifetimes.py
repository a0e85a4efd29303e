"""Warn before a configured model shuts down: `jant doctor` and the bot's start-up list every model
that retires within `WARN_WITHIN_DAYS`, with the date and the setting to change.

OpenAI's dates come from the model object (`GET /v1/models/{id}` carries `shutdown_date` once OpenAI
has announced one; gpt-4o: 2027-01-14, tts-1: 2027-01-06): the storyboard model and its fallback,
and the speech model when the voice is OpenAI's. Replicate publishes no such date, so the video
models' come from the registry (`pipeline.video_models`, `VideoModel.ends`). A failed check is one
line, never a failed start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from pipeline.config import Settings
from pipeline.video_models import VIDEO_MODELS, VideoModel

CHECK_TIMEOUT_S = 10.0
WARN_WITHIN_DAYS = 60


@dataclass(frozen=True)
class ModelLifetime:
    model: str
    setting: str  # the environment variable that chooses it
    shutdown_date: str | None = None  # YYYY-MM-DD, as OpenAI gives it
    gone: bool = False  # 404 model_not_found: retired, unknown, or not open to this key
    today: date | None = None  # None: the real date (tests pass one)
    provider: str = "OpenAI"

    @property
    def soon(self) -> bool:
        """The shutdown is within `WARN_WITHIN_DAYS` (or already past)."""
        if not self.shutdown_date:
            return False
        try:
            when = date.fromisoformat(self.shutdown_date)
        except ValueError:
            return True  # a date we cannot read: say it rather than hide it
        return when - (self.today or date.today()) <= timedelta(days=WARN_WITHIN_DAYS)

    def warning(self) -> str | None:
        if self.gone:
            return (
                f"The {self.provider} model {self.model} ({self.setting}) does not exist or this key cannot use it: "
                f"set {self.setting} to a model your key can use."
            )
        if self.soon:
            past = self.shutdown_date is not None and self.shutdown_date < (self.today or date.today()).isoformat()
            verb = "shut down" if past else "shuts down"
            when = "now" if past else "before then"
            return (
                f"The {self.provider} model {self.model} ({self.setting}) {verb} on {self.shutdown_date}: "
                f"set {self.setting} to a newer model {when}."
            )
        return None


@dataclass(frozen=True)
class LifetimeReport:
    models: tuple[ModelLifetime, ...] = ()
    unavailable: str | None = None  # why the OpenAI check could not be made (one line), if it could not

    def warnings(self) -> list[str]:
        found = [w for m in self.models if (w := m.warning())]
        return ([self.unavailable] if self.unavailable else []) + found


def configured_models(settings: Settings) -> list[tuple[str, str]]:
    """The OpenAI models this configuration uses, with the setting that chooses each."""
    models = [(settings.openai.model, "JANT_OPENAI_MODEL")]
    fallback = settings.openai.fallback_model
    if fallback and fallback != settings.openai.model:
        models.append((fallback, "JANT_OPENAI_FALLBACK_MODEL"))
    if _speaks_through_openai(settings):
        models.append((settings.audio.openai_tts_model, "JANT_OPENAI_TTS_MODEL"))
    return models


def _speaks_through_openai(settings: Settings) -> bool:
    """The voice is OpenAI's speech endpoint (or the same server the storyboards use)."""
    from pipeline.providers.openai_voice import points_at_openai

    if settings.audio.voice != "openai-compatible":
        return False
    same_server = settings.audio.tts_base_url is not None and settings.audio.tts_base_url == settings.openai.base_url
    return points_at_openai(settings) or same_server


def registry_lifetimes(
    settings: Settings, *, today: date | None = None, registry: Mapping[str, VideoModel] | None = None
) -> list[ModelLifetime]:
    """The video models this configuration may use (the default and the allowed ones) that have an
    announced end date."""
    models = registry or VIDEO_MODELS
    keys = dict.fromkeys([settings.replicate.video_model, *settings.replicate.allowed_video_models])
    found = []
    for key in keys:
        entry = models.get(key)
        if entry is None or entry.ends is None:
            continue
        setting = "JANT_VIDEO_MODEL" if key == settings.replicate.video_model else "JANT_ALLOWED_VIDEO_MODELS"
        if entry.setting != "JANT_VIDEO_MODEL":  # SVD: its own version setting
            setting = f"{setting} or {entry.setting}"
        found.append(
            ModelLifetime(
                f"{entry.label} ({entry.model_ref})", setting, entry.ends.isoformat(), today=today, provider="Replicate"
            )
        )
    return found


async def check_model_lifetimes(
    settings: Settings, *, today: date | None = None, registry: Mapping[str, VideoModel] | None = None
) -> LifetimeReport:
    """Every configured model's end date: OpenAI's read from the API, the others from the registry.
    Never raises for API trouble."""
    known = registry_lifetimes(settings, today=today, registry=registry)
    if settings.openai.api_key is None or settings.media.offline:
        return LifetimeReport(models=tuple(known))
    # Imported only with a key: the library takes most of a second to import, which every
    # `jant doctor` without one would pay for nothing.
    import openai

    client = openai.AsyncOpenAI(
        api_key=settings.openai.api_key.get_secret_value(),
        base_url=settings.openai.base_url,
        max_retries=0,
        timeout=CHECK_TIMEOUT_S,
    )
    found: list[ModelLifetime] = []
    try:
        for model, setting in configured_models(settings):
            try:
                info = await client.models.retrieve(model)
            except openai.NotFoundError as exc:
                if exc.code != "model_not_found":
                    raise
                found.append(ModelLifetime(model, setting, gone=True, today=today))
                continue
            found.append(ModelLifetime(model, setting, shutdown_date=info.shutdown_date, today=today))
    except openai.APIStatusError as exc:
        return LifetimeReport(tuple(known), unavailable=_unavailable(f"OpenAI answered {exc.status_code}"))
    except openai.APIConnectionError as exc:  # includes timeouts
        return LifetimeReport(tuple(known), unavailable=_unavailable(f"cannot reach OpenAI: {exc.message}"))
    except openai.OpenAIError as exc:
        return LifetimeReport(tuple(known), unavailable=_unavailable(type(exc).__name__))
    finally:
        await client.close()
    return LifetimeReport(models=(*found, *known))


def _unavailable(why: str) -> str:
    return f"Could not check the OpenAI models' shutdown dates ({why}); planning is not affected by this check."

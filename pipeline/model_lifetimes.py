"""Warn before the storyboard model shuts down: `GET /v1/models/{id}` carries `shutdown_date` once
OpenAI has announced one (gpt-4o: 2027-01-14). `jant doctor` and the bot's start-up read it for
`JANT_OPENAI_MODEL` and `JANT_OPENAI_FALLBACK_MODEL`; a failed check is one line, never a failed start.
"""

from __future__ import annotations

from dataclasses import dataclass

import openai

from pipeline.config import Settings

CHECK_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ModelLifetime:
    model: str
    setting: str  # the environment variable that chooses it
    shutdown_date: str | None = None  # YYYY-MM-DD, as OpenAI gives it
    gone: bool = False  # 404 model_not_found: retired, unknown, or not open to this key

    def warning(self) -> str | None:
        if self.gone:
            return (
                f"The OpenAI model {self.model} ({self.setting}) does not exist or this key cannot use it: "
                f"set {self.setting} to a model your key can use."
            )
        if self.shutdown_date:
            return (
                f"The OpenAI model {self.model} ({self.setting}) shuts down on {self.shutdown_date}: "
                f"set {self.setting} to a newer model before then."
            )
        return None


@dataclass(frozen=True)
class LifetimeReport:
    models: tuple[ModelLifetime, ...] = ()
    unavailable: str | None = None  # why the check could not be made (one line), if it could not

    def warnings(self) -> list[str]:
        if self.unavailable:
            return [self.unavailable]
        return [w for m in self.models if (w := m.warning())]


def configured_models(settings: Settings) -> list[tuple[str, str]]:
    models = [(settings.openai.model, "JANT_OPENAI_MODEL")]
    fallback = settings.openai.fallback_model
    if fallback and fallback != settings.openai.model:
        models.append((fallback, "JANT_OPENAI_FALLBACK_MODEL"))
    return models


async def check_model_lifetimes(settings: Settings) -> LifetimeReport:
    """Read `shutdown_date` for the storyboard model and its fallback. Never raises for API trouble."""
    if settings.openai.api_key is None:
        return LifetimeReport()
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
                found.append(ModelLifetime(model, setting, gone=True))
                continue
            found.append(ModelLifetime(model, setting, shutdown_date=info.shutdown_date))
    except openai.APIStatusError as exc:
        return LifetimeReport(unavailable=_unavailable(f"OpenAI answered {exc.status_code}"))
    except openai.APIConnectionError as exc:  # includes timeouts
        return LifetimeReport(unavailable=_unavailable(f"cannot reach OpenAI: {exc.message}"))
    except openai.OpenAIError as exc:
        return LifetimeReport(unavailable=_unavailable(type(exc).__name__))
    finally:
        await client.close()
    return LifetimeReport(models=tuple(found))


def _unavailable(why: str) -> str:
    return f"Could not check the OpenAI models' shutdown dates ({why}); planning is not affected by this check."

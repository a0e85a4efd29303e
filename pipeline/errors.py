"""Errors a user may see. Each says what happened and what to do next.

`retryable` is the provider's own verdict where it knows better than the generic policy (an NSFW
rejection is final; an interrupted GPU is not). `pipeline.retry.classify` has the last word.
"""

from __future__ import annotations


class JantError(Exception):
    """Base: `str(err)` is a complete user-facing sentence; `hint` says what to do next."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    @property
    def user_message(self) -> str:
        return f"{self}" + (f" {self.hint}" if self.hint else "")


class ConfigError(JantError):
    hint = "Check your environment or .env file; `jant doctor` shows what is set."


class DatabaseSchemaError(JantError):
    """The database cannot be brought to this code's schema: a failed migration, or a newer database."""


class InvalidRequest(JantError):
    """Bad input from a user: product text, mood, modal values …"""


class PlannerError(JantError):
    hint = "Try again, or rephrase the product description."


class ProviderError(JantError):
    """A generation stage failed. `retryable` None means: let the retry policy decide."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.retryable = retryable
        self.retry_after = retry_after


class SafetyRejection(ProviderError):
    """The model's safety checker refused the prompt or output: retrying the same prompt won't help."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            retryable=False,
            hint="Edit the scene's description so it is clearly safe for work, then retry the scene.",
        )


class VoiceUnavailable(ProviderError):
    """This voice cannot speak the line (a language it does not speak): the ad goes on without it.

    Final by nature: another attempt with the same voice gives the same answer.
    """

    def __init__(self, message: str, *, language: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, retryable=False, hint=hint)
        self.language = language


class VoiceInputRejected(ProviderError):
    """A line, voice id or speed the TTS provider would refuse, caught before anything is paid."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, retryable=False, hint=hint)


class StageTimeout(ProviderError):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class ComposeError(JantError):
    hint = "The clips are kept; retrying the job re-joins them without paying for new ones."


class DoesNotFit(ComposeError):
    """Even the lowest acceptable bitrate cannot fit the upload limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"The ad is {size / 1_048_576:.1f} MiB even at the lowest quality, over the "
            f"{limit / 1_048_576:.1f} MiB upload limit.",
            hint="Shorten the storyboard, or boost the server to raise its upload limit; "
            "the full file is kept on the bot's disk.",
        )
        self.size = size
        self.limit = limit


class JobCancelled(JantError):
    pass

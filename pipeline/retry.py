"""Which failures are worth paying for again, and how long to wait. Pure: tested without I/O."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pipeline.errors import ProviderError


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    reason: str
    retry_after: float | None = None  # the server's own wait, when it said one


def classify(exc: BaseException) -> RetryDecision:
    """Retry transient trouble (network, timeouts, rate limits, 5xx, GPU hiccups); never bad input."""
    if isinstance(exc, ProviderError) and exc.retryable is not None:
        return RetryDecision(exc.retryable, str(exc), exc.retry_after)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | ConnectionError):
        return RetryDecision(True, f"{type(exc).__name__}: {exc}".rstrip(": "))
    return RetryDecision(False, str(exc) or type(exc).__name__)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff_base_s: float = 2.0  # 2 s, 4 s, 8 s …
    backoff_cap_s: float = 60.0

    def delay(self, attempt: int, decision: RetryDecision) -> float:
        """Wait before attempt `attempt + 1`: exponential, but never shorter than the server asked."""
        backoff = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1))
        if decision.retry_after is not None:
            return min(self.backoff_cap_s, max(backoff, decision.retry_after))
        return backoff

    def should_retry(self, attempt: int, decision: RetryDecision) -> bool:
        return decision.retry and attempt < self.max_attempts

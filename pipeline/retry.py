"""Which failures are worth paying for again, and how long to wait. Pure: tested without I/O.

`classify` is the one place that knows the exception types of `httpx`, `openai` and `replicate`:
every caller (the orchestrator's attempt loop, the media downloader's free re-downloads, the
prediction poll loop) asks it instead of catching library errors itself.

How many paid requests one stage can cost, at most (defaults):
- a Replicate create is a POST, which the replicate client never retries: one create per attempt,
  `JANT_MAX_ATTEMPTS` (3) attempts per stage → at most 3 predictions per seed or clip;
- polls and downloads are free and retried inside an attempt until its deadline;
- a storyboard costs at most 2 asks (the answer, plus one corrected answer) × 3 HTTP requests each
  (the openai client's own `max_retries=2`) = 6 chat requests; the planner adds no retry loop.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from pipeline.config import LimitsSettings
from pipeline.errors import ProviderError


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    reason: str
    retry_after: float | None = None  # the server's own wait, when it said one


# Replicate's 429 bodies say the wait only in prose ("Expected available in 2 seconds.",
# "Your rate limit resets in ~30s.") and ReplicateError keeps no headers.
_WAIT_IN_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:s\b|sec\b|secs\b|seconds?\b)", re.IGNORECASE)
_RETRY_STATUSES = frozenset({408, 429})


def retry_after_from_text(text: str | None) -> float | None:
    """The wait a human-readable throttling message names, in seconds."""
    if not text:
        return None
    m = _WAIT_IN_TEXT.search(text)
    return float(m.group(1)) if m else None


def retry_after_from_headers(headers: Mapping[str, str] | Any, *, now: float | None = None) -> float | None:
    """`retry-after-ms`, or `retry-after` as seconds or an HTTP date; None when absent or unreadable."""
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
    except AttributeError:
        return None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _status_retryable(status: int | None) -> bool:
    return status is not None and (status in _RETRY_STATUSES or status >= 500)


def classify(exc: BaseException) -> RetryDecision:
    """Retry transient trouble (network, timeouts, rate limits, 5xx, GPU hiccups); never bad input."""
    if isinstance(exc, ProviderError):
        if exc.retryable is not None:
            return RetryDecision(exc.retryable, str(exc), exc.retry_after)
        if exc.__cause__ is not None:  # "let the policy decide": decide on what caused it
            inner = classify(exc.__cause__)
            return RetryDecision(inner.retry, str(exc), exc.retry_after or inner.retry_after)
    # A library that was never imported cannot have raised: keep `import pipeline.retry` light.
    for rule in (_replicate_rule, _openai_rule, _httpx_rule):
        decision = rule(exc)
        if decision is not None:
            return decision
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | ConnectionError):
        return RetryDecision(True, f"{type(exc).__name__}: {exc}".rstrip(": "))
    return RetryDecision(False, str(exc) or type(exc).__name__)


def _replicate_rule(exc: BaseException) -> RetryDecision | None:
    if "replicate" not in sys.modules:
        return None
    from replicate.exceptions import ReplicateError

    if not isinstance(exc, ReplicateError):
        return None
    status, detail = exc.status, (exc.detail or exc.title or "no detail").strip()
    if status == 401:
        return RetryDecision(False, "Replicate rejected REPLICATE_API_TOKEN (401 Unauthenticated): check the token.")
    if status == 402:
        return RetryDecision(False, f"Replicate wants billing set up for this account (402): {detail}")
    if status == 403:
        return RetryDecision(False, f"Replicate refused access (403): {detail}")
    if status == 429:
        return RetryDecision(True, f"Replicate is rate limiting us (429): {detail}", retry_after_from_text(detail))
    if status is not None and status >= 500:
        return RetryDecision(True, f"Replicate had a server error ({status}): {detail}")
    if status == 404:
        # Raised on create for an official model that is gone (the prediction runner names the
        # exact setting); never worth paying for again.
        return RetryDecision(
            False, f"Replicate has no such model (404): {detail} Check JANT_VIDEO_MODEL, JANT_TTS_MODEL and "
            "JANT_MUSIC_MODEL."
        )  # fmt: skip
    if status == 422 and "version" in (exc.title or "").lower():
        return RetryDecision(
            False, f"Replicate does not know this model version (422): {detail} "
            "Check JANT_SDXL_VERSION / JANT_SVD_VERSION."
        )  # fmt: skip
    if status == 422:
        return RetryDecision(False, f"Replicate rejected the model input (422): {detail}")
    return RetryDecision(_status_retryable(status), f"Replicate error ({status}): {detail}")


def _openai_rule(exc: BaseException) -> RetryDecision | None:
    if "openai" not in sys.modules:
        return None
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return RetryDecision(True, "OpenAI did not answer in time.")
    if isinstance(exc, openai.APIConnectionError):
        return RetryDecision(True, f"Could not reach OpenAI: {exc.message}")
    if isinstance(exc, openai.LengthFinishReasonError | openai.ContentFilterFinishReasonError):
        return RetryDecision(False, str(exc))
    if not isinstance(exc, openai.APIStatusError):
        return None
    text = openai_error_text(exc)
    wait = retry_after_from_headers(exc.response.headers)
    if exc.status_code == 429 and exc.code == "insufficient_quota":
        return RetryDecision(False, f"OpenAI quota exhausted (429 insufficient_quota): {text}")
    if exc.status_code == 401:
        return RetryDecision(False, f"OpenAI rejected OPENAI_API_KEY (401): {text}")
    retry = _status_retryable(exc.status_code) or exc.status_code == 409
    return RetryDecision(retry, f"OpenAI error {exc.status_code}: {text}", wait if retry else None)


def openai_error_text(exc: Any) -> str:
    """The API's own message (`e.message` is "Error code: 429 - …"; the body holds the clean text)."""
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping) and isinstance(body.get("message"), str) and body["message"]:
        return body["message"]
    return str(getattr(exc, "message", "") or exc)


def _httpx_rule(exc: BaseException) -> RetryDecision | None:
    if "httpx" not in sys.modules:
        return None
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        host = exc.request.url.host
        retry = _status_retryable(status)
        wait = retry_after_from_headers(exc.response.headers) if retry else None
        return RetryDecision(retry, f"HTTP {status} from {host}", wait)
    if isinstance(exc, httpx.TimeoutException):
        return RetryDecision(True, f"Timed out talking to {_host_of(exc)} ({type(exc).__name__}).")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return RetryDecision(False, f"Bad request to {_host_of(exc)}: {exc}")
    if isinstance(exc, httpx.TransportError):
        return RetryDecision(True, f"Network trouble talking to {_host_of(exc)} ({type(exc).__name__}: {exc}).")
    return None


def _host_of(exc: Any) -> str:
    try:
        return exc.request.url.host or "the server"
    except RuntimeError:  # httpx raises when the exception was made without a request
        return "the server"


@dataclass(frozen=True)
class RetryPolicy:
    # Defaults are the settings' (JANT_MAX_ATTEMPTS, JANT_RETRY_BACKOFF_S), not a second copy.
    max_attempts: int = LimitsSettings.model_fields["max_attempts"].default
    backoff_base_s: float = LimitsSettings.model_fields["retry_backoff_s"].default  # 2 s, 4 s, 8 s …
    backoff_cap_s: float = 60.0

    def delay(self, attempt: int, decision: RetryDecision) -> float:
        """Wait before attempt `attempt + 1`: exponential, but never shorter than the server asked."""
        backoff = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1))
        if decision.retry_after is not None:
            return min(self.backoff_cap_s, max(backoff, decision.retry_after))
        return backoff

    def should_retry(self, attempt: int, decision: RetryDecision) -> bool:
        return decision.retry and attempt < self.max_attempts

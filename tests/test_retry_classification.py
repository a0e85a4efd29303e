"""`classify` on the exceptions the real libraries raise, built from real response objects (no network).

Each case is what a user would otherwise see as a stack trace: is it worth paying for again, and
how long did the server ask us to wait?
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletion
from replicate.exceptions import ReplicateError

from pipeline.errors import ProviderError, SafetyRejection, StageTimeout
from pipeline.retry import RetryPolicy, classify, retry_after_from_headers, retry_after_from_text

REPLICATE = "https://api.replicate.com/v1/predictions"
OPENAI = "https://api.openai.com/v1/chat/completions"


def replicate_error(status: int, body: dict | None = None, *, text: str | None = None) -> ReplicateError:
    request = httpx.Request("POST", REPLICATE)
    if text is not None:
        response = httpx.Response(status, text=text, request=request)
    else:
        response = httpx.Response(status, json=body or {}, request=request)
    return ReplicateError.from_response(response)


def openai_error(cls: type[openai.APIStatusError], status: int, error: dict, headers: dict | None = None):
    response = httpx2.Response(status, headers=headers or {}, json={"error": error},
                               request=httpx2.Request("POST", OPENAI))  # fmt: skip
    return cls(f"Error code: {status} - {error.get('message')}", response=response, body=error)


def http_status_error(status: int, headers: dict | None = None) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "https://replicate.delivery/pbxt/abc/out-0.png")
    response = httpx.Response(status, headers=headers or {}, request=request)
    return httpx.HTTPStatusError(f"{status}", request=request, response=response)


# ------------------------------------------------------------------------------------------ Replicate


def test_replicate_429_on_create_is_retried_after_the_wait_it_names() -> None:
    # The exact body the live API (and the emulator) sends; ReplicateError keeps no headers.
    exc = replicate_error(429, {"detail": "Request was throttled. Expected available in 3 seconds.",
                                "status": 429, "retry_after": 3})  # fmt: skip
    d = classify(exc)
    assert d.retry and d.retry_after == 3.0 and "429" in d.reason
    exc = replicate_error(429, {"detail": "Request was throttled. Your rate limit resets in ~30s."})
    assert classify(exc).retry_after == 30.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_replicate_server_errors_are_retried(status: int) -> None:
    d = classify(replicate_error(status, {"title": "Internal Server Error", "detail": "oops", "status": status}))
    assert d.retry and str(status) in d.reason


def test_replicate_html_error_page_is_still_a_5xx() -> None:
    d = classify(replicate_error(502, text="<html><body>502 Bad Gateway</body></html>"))
    assert d.retry


def test_replicate_bad_token_is_final_and_names_the_setting() -> None:
    d = classify(replicate_error(401, {"title": "Unauthenticated", "detail": "You did not pass a valid "
                                       "authentication token", "status": 401}))  # fmt: skip
    assert not d.retry and "REPLICATE_API_TOKEN" in d.reason


def test_replicate_invalid_input_is_final_with_the_detail() -> None:
    detail = "- input.sizing_strategy: sizing_strategy must be one of the following: ...\n"
    d = classify(replicate_error(422, {"title": "Input validation failed", "detail": detail, "status": 422}))
    assert not d.retry and "input.sizing_strategy" in d.reason
    d = classify(replicate_error(422, {"title": "Invalid version or not permitted", "detail": "no such version"}))
    assert not d.retry and "JANT_SDXL_VERSION" in d.reason


def test_replicate_payment_required_is_final() -> None:
    assert not classify(replicate_error(402, {"title": "Payment Required", "detail": "Set up billing"})).retry


# ------------------------------------------------------------------------------------------ httpx


def test_httpx_transport_errors_are_retried() -> None:
    request = httpx.Request("GET", REPLICATE)
    for exc in (httpx.ConnectError("refused", request=request), httpx.ReadTimeout("slow", request=request),
                httpx.RemoteProtocolError("peer closed", request=request), httpx.ConnectTimeout("slow")):  # fmt: skip
        d = classify(exc)
        assert d.retry, exc
    assert "api.replicate.com" in classify(httpx.ConnectError("refused", request=request)).reason


def test_httpx_unsupported_protocol_is_a_bug_not_weather() -> None:
    assert not classify(httpx.UnsupportedProtocol("ftp://x", request=httpx.Request("GET", "ftp://x/"))).retry


def test_httpx_status_errors() -> None:
    d = classify(http_status_error(503, {"Retry-After": "7"}))
    assert d.retry and d.retry_after == 7.0 and "replicate.delivery" in d.reason
    assert classify(http_status_error(429)).retry
    assert not classify(http_status_error(404)).retry
    assert not classify(http_status_error(403)).retry


# ------------------------------------------------------------------------------------------ OpenAI


def test_openai_rate_limit_is_retried_with_its_wait_but_quota_is_not() -> None:
    error = {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}
    exc = openai_error(openai.RateLimitError, 429, error, {"retry-after-ms": "1500"})
    d = classify(exc)
    assert d.retry and d.retry_after == 1.5
    assert "Rate limit reached" in d.reason and "Error code" not in d.reason  # the API's text, not e.message
    error = {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}
    quota = openai_error(openai.RateLimitError, 429, error)
    assert not classify(quota).retry


def test_openai_status_errors() -> None:
    assert classify(openai_error(openai.InternalServerError, 500, {"message": "server_error"})).retry
    assert classify(openai_error(openai.InternalServerError, 503, {"message": "overloaded"})).retry
    auth = classify(openai_error(openai.AuthenticationError, 401, {"message": "Incorrect API key provided"}))
    assert not auth.retry and "OPENAI_API_KEY" in auth.reason
    assert not classify(
        openai_error(openai.NotFoundError, 404, {"message": "no model", "code": "model_not_found"})
    ).retry
    assert not classify(openai_error(openai.BadRequestError, 400, {"message": "Invalid schema"})).retry


def test_openai_connection_errors_and_finish_reasons() -> None:
    request = httpx2.Request("POST", OPENAI)
    assert classify(openai.APIConnectionError(request=request)).retry
    assert classify(openai.APITimeoutError(request=request)).retry
    completion = ChatCompletion(id="c", choices=[], created=0, model="gpt-4o", object="chat.completion")
    assert not classify(openai.LengthFinishReasonError(completion=completion)).retry
    assert not classify(openai.ContentFilterFinishReasonError()).retry


# ------------------------------------------------------------------------------------------ our own errors


def test_provider_verdicts_win_and_undecided_ones_follow_their_cause() -> None:
    assert classify(ProviderError("GPU interrupted (code: PA)", retryable=True)).retry
    assert not classify(SafetyRejection("NSFW content detected.")).retry
    assert classify(StageTimeout("no answer in 90 s")).retry
    try:
        raise ProviderError("could not start the clip") from replicate_error(503, {"detail": "busy"})
    except ProviderError as exc:
        d = classify(exc)
    assert d.retry and d.reason == "could not start the clip"
    assert not classify(ProviderError("no idea")).retry
    assert not classify(ValueError("a bug")).retry


def test_retry_after_parsing() -> None:
    assert retry_after_from_headers(httpx.Headers({"Retry-After": "12"})) == 12.0
    assert retry_after_from_headers(httpx2.Headers({"retry-after-ms": "250"})) == 0.25
    now = datetime(2025, 1, 1, tzinfo=UTC)
    date = format_datetime(now + timedelta(seconds=20), usegmt=True)
    assert retry_after_from_headers({"retry-after": date}, now=now.timestamp()) == pytest.approx(20.0)
    assert retry_after_from_headers({"retry-after": "soon"}) is None
    assert retry_after_from_headers({}) is None
    assert retry_after_from_text("Request was throttled. Expected available in 0.5 seconds.") == 0.5
    assert retry_after_from_text("no number here") is None


def test_a_429_wait_longer_than_the_backoff_is_honoured_and_capped() -> None:
    policy = RetryPolicy(max_attempts=3, backoff_base_s=2.0)
    d = classify(replicate_error(429, {"detail": "Request was throttled. Expected available in 9 seconds."}))
    assert policy.delay(1, d) == 9.0
    d = classify(replicate_error(429, {"detail": "Request was throttled. Your rate limit resets in ~600s."}))
    assert policy.delay(1, d) == 60.0


def test_a_replicate_404_is_a_model_that_does_not_exist_not_retried() -> None:
    # The emulator's (and the live API's) body for POST /v1/models/{owner}/{name}/predictions of no model.
    exc = replicate_error(404, {"detail": "The requested resource could not be found.", "status": 404})
    d = classify(exc)
    assert not d.retry and d.reason.startswith("Replicate has no such model (404)") and "JANT_VIDEO_MODEL" in d.reason

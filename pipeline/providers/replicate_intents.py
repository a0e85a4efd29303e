"""Finding a prediction whose create was sent but whose id was never stored (issue 15: nothing paid twice).

Before each create, `PredictionRunner` records a `PredictionIntent`: the model or version, a fingerprint
of the input, and the time. A process killed after Replicate accepted the POST but before the id reached
the database leaves that intent behind; the next run of the attempt calls `find_sent`, which reads
Replicate's list of the account's predictions (`GET /v1/predictions`: newest first, 100 a page, the next
page's absolute URL in `next`) back to a little before the intent's time and returns the id of the one
that matches. None: the POST never reached Replicate, and creating is safe.

What is safe when the list cannot be read: never to create. Transient failures (network, 5xx, 429) are
retried as `pipeline.retry.classify` says, a few times; after that, or on a failure not worth retrying,
or when the pages run out before reaching the intent's time, the attempt fails for good with an error
that says what to check (`LookupFailed`: not retryable, because a retry would be a new attempt, which
creates). Retry failed then creates anew: the user's choice, once they have looked.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import replicate

from pipeline.errors import ProviderError
from pipeline.providers.base import PredictionIntent
from pipeline.retry import classify

log = logging.getLogger(__name__)

CLOCK_SKEW_S = 120.0  # how far Replicate's clock may be behind ours: a prediction this much older still counts
MAX_PAGES = 50  # 5,000 predictions back: an account busier than that between the intent and now is told so
LIST_TRIES = 5
_URL = re.compile(r"^(?:data:|https?://)", re.IGNORECASE)
_FRACTION = re.compile(r"\.(\d{6})\d+")


class LookupFailed(ProviderError):
    """Replicate's list of predictions could not say whether a create sent before a restart arrived."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def fingerprint(input: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the input's scalar fields, leaving out URLs and data URIs (Replicate
    may rewrite a file input into its own URL) and lists or objects. Whole floats count as integers, as a
    JSON round trip elsewhere may write them. The input's random seed tells two attempts apart."""
    kept: dict[str, Any] = {}
    for key, value in input.items():
        if isinstance(value, bool) or value is None:
            kept[key] = value
        elif isinstance(value, int | float):
            kept[key] = int(value) if isinstance(value, float) and value.is_integer() else value
        elif isinstance(value, str) and not _URL.match(value):
            kept[key] = value
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def intent_for(model: str, input: dict[str, Any]) -> PredictionIntent:
    return PredictionIntent(model=model, fingerprint=fingerprint(input), sent_at=datetime.now(UTC))


def _created_at(text: Any) -> datetime | None:
    """Replicate's `created_at` (ISO 8601, `Z`, up to nanoseconds), or None when unreadable."""
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(_FRACTION.sub(r".\1", text.replace("Z", "+00:00")))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _matches(item: dict[str, Any], intent: PredictionIntent) -> bool:
    by_model = "/" in intent.model  # an official model is created by name; its version is Replicate's choice
    if (item.get("model") if by_model else item.get("version")) != intent.model:
        return False
    given = item.get("input")
    return isinstance(given, dict) and fingerprint(given) == intent.fingerprint


async def _page(client: replicate.Client, url: str, label: str) -> dict[str, Any]:
    """One page of the list, as JSON: the client's `Page[Prediction]` would fail the whole page on one
    prediction whose status its pydantic model does not know (the live API's "aborted")."""
    for n in range(1, LIST_TRIES + 1):
        try:
            resp = await client._async_request("GET", url)  # raises ReplicateError on 4xx/5xx
            body = resp.json()
            if not isinstance(body, dict) or not isinstance(body.get("results"), list):
                raise ProviderError(f"{label}: Replicate's list of predictions answered without results")
            return body
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            decision = classify(exc)
            if not decision.retry or n == LIST_TRIES:
                raise LookupFailed(
                    f"{label}: a create was sent to Replicate just before a restart, and Replicate's list of "
                    f"predictions could not be read to find it ({decision.reason}). So as not to pay twice, this "
                    "attempt stopped: check your Replicate dashboard for a prediction still running, then "
                    "use Retry failed."
                ) from exc
            wait = decision.retry_after if decision.retry_after is not None else min(2.0 ** (n - 1), 8.0)
            log.warning("%s: listing predictions failed (%s); trying again in %.0f s", label, decision.reason, wait)
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


async def find_sent(client: replicate.Client, intent: PredictionIntent, *, label: str) -> str | None:
    """The id of the prediction `intent` created, or None if Replicate has none (the POST never arrived).
    Raises `LookupFailed` when the list cannot tell."""
    since = intent.sent_at - timedelta(seconds=CLOCK_SKEW_S)
    url: str | None = "/v1/predictions"
    pages = 0
    while url:
        if pages == MAX_PAGES:
            raise LookupFailed(
                f"{label}: a create was sent to Replicate just before a restart, and its prediction is not among "
                f"the account's last {MAX_PAGES * 100} predictions, which do not reach back to "
                f"{intent.sent_at:%H:%M:%S} UTC. So as not to pay twice, this attempt stopped: check your "
                "Replicate dashboard, then use Retry failed."
            )
        page = await _page(client, url, label)
        pages += 1
        for item in page["results"]:
            if not isinstance(item, dict):
                continue
            created = _created_at(item.get("created_at"))
            if created is not None and created < since:
                return None  # newest first: everything after this one is older still
            if _matches(item, intent):
                log.info("%s: found prediction %s, created before a restart; waiting for it", label, item.get("id"))
                return str(item["id"])
        url = page.get("next") or None
    return None

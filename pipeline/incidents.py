"""Errors nobody planned for: an id per incident, its traceback logged once under that id, and a
sentence a user can read and quote to whoever runs the bot."""

from __future__ import annotations

import logging
import secrets

from pipeline.errors import JantError
from pipeline.retry import RetryDecision


def new_incident_id() -> str:
    return f"ERR-{secrets.token_hex(3).upper()}"


def report_unexpected(logger: logging.Logger, exc: BaseException, where: str) -> str:
    """Log `exc` with its traceback under a new id, once; return what to tell the user."""
    incident = new_incident_id()
    logger.error("%s: unexpected error %s", where, incident, exc_info=exc)
    return f"an unexpected error (logged as {incident})"


def is_unexplained(exc: BaseException, decision: RetryDecision) -> bool:
    """True when neither Jant nor `retry.classify` could say what went wrong: `classify` then falls
    back to the bare exception text ("'seed'", "division by zero"), which means nothing to a user."""
    return not isinstance(exc, JantError) and not decision.retry and decision.reason == (str(exc) or type(exc).__name__)

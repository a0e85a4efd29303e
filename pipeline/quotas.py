"""Per-user and per-guild limits: every prediction is paid, and a channel is shared.

Pure decisions from counts, so they are tested without I/O; the orchestrator fetches the counts.
Over a limit the user is told which limit and when it frees up — nothing is queued silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pipeline.errors import InvalidRequest
from pipeline.models import JobStatus

ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value, JobStatus.COMPOSING.value)


class QuotaExceeded(InvalidRequest):
    pass


@dataclass(frozen=True)
class QuotaLimits:
    user_concurrent: int = 2
    guild_concurrent: int = 5
    user_daily: int = 20


def day_window(now: datetime) -> tuple[datetime, datetime]:
    """The UTC day a count covers, and when it resets."""
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def check_daily(limits: QuotaLimits, made_today: int, now: datetime) -> None:
    if made_today >= limits.user_daily:
        _, reset = day_window(now)
        left = reset - now
        hours, minutes = divmod(int(left.total_seconds()) // 60, 60)
        raise QuotaExceeded(
            f"You have made {made_today} ads today, the daily limit of {limits.user_daily}.",
            hint=f"It resets at {reset:%H:%M} UTC, in {hours} h {minutes:02d} min.",
        )


def check_concurrent(limits: QuotaLimits, user_active: int, guild_active: int | None) -> None:
    if user_active >= limits.user_concurrent:
        raise QuotaExceeded(
            f"You already have {user_active} ads generating, the limit of {limits.user_concurrent} at a time.",
            hint="Approve this one again when one of them finishes, or cancel one with its Cancel button.",
        )
    if guild_active is not None and guild_active >= limits.guild_concurrent:
        raise QuotaExceeded(
            f"This server already has {guild_active} ads generating, the limit of {limits.guild_concurrent}.",
            hint="Approve again when one finishes.",
        )

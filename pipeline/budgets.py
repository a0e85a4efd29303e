"""Spend caps: a per-ad cap, and a daily and a monthly budget per server. Pure policy.

A server's budgets are its own (`/brand set budget_daily: budget_monthly:`, stored in its
`GuildPolicy`), else the process settings (`JANT_GUILD_DAILY_BUDGET_USD`,
`JANT_GUILD_MONTHLY_BUDGET_USD`), else there is no cap. Command-line jobs have no server: they share
one bucket with the settings' budgets. Days and months are UTC; a budget resets at 00:00 UTC and on
the 1st of the month.

Over a cap, approval is refused before anything is created, and the refusal says what the ad costs,
what is left, when it resets and who can raise it. The check itself runs in storage, in the same
transaction as the reservation (`storage.spend_ledger`); this module says what to check and how to
word the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipeline.brand import GuildPolicy
from pipeline.config import Settings
from pipeline.errors import InvalidRequest
from pipeline.quotas import day_window
from storage.spend_ledger import Overrun, Window

DAILY, MONTHLY = "daily", "monthly"
NOTHING_MADE = "Nothing was made or charged."


class BudgetExceeded(InvalidRequest):
    """Approval refused: the ad's estimate does not fit a cap."""


@dataclass(frozen=True)
class BudgetLimits:
    daily_usd: float | None
    monthly_usd: float | None
    per_job_usd: float | None

    @property
    def any(self) -> bool:
        return self.daily_usd is not None or self.monthly_usd is not None


def budget_limits(policy: GuildPolicy, settings: Settings) -> BudgetLimits:
    """The server's own budgets where it set them, else the settings'; None: no cap."""
    limits = settings.limits
    daily = policy.budget_daily_usd if policy.budget_daily_usd is not None else limits.guild_daily_budget_usd
    monthly = policy.budget_monthly_usd if policy.budget_monthly_usd is not None else limits.guild_monthly_budget_usd
    return BudgetLimits(daily, monthly, limits.max_job_cost_usd)


def month_window(now: datetime) -> tuple[datetime, datetime]:
    """The UTC calendar month `now` is in, and when the next one starts."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (start + timedelta(days=32)).replace(day=1)
    return start, following


def _day(now: datetime) -> tuple[datetime, datetime]:
    return day_window(now.astimezone(UTC))


def windows(limits: BudgetLimits, now: datetime) -> list[Window]:
    """The budgets a reservation made at `now` must fit, daily first."""
    out = []
    if limits.daily_usd is not None:
        out.append(Window(DAILY, _day(now)[0].isoformat(), limits.daily_usd))
    if limits.monthly_usd is not None:
        out.append(Window(MONTHLY, month_window(now)[0].isoformat(), limits.monthly_usd))
    return out


def check_job_cap(limits: BudgetLimits, estimate_usd: float, *, what: str = "This ad") -> None:
    """`what` names the work: "This ad", or a re-run ("Re-making scene 3")."""
    if limits.per_job_usd is not None and estimate_usd > limits.per_job_usd + 1e-9:
        raise BudgetExceeded(
            f"{what} is estimated at ${estimate_usd:.2f}, over the ${limits.per_job_usd:.2f} limit for one ad "
            f"(JANT_MAX_JOB_COST_USD). {NOTHING_MADE}",
            hint=(
                "A storyboard with fewer scenes costs less; or ask whoever runs the bot to raise JANT_MAX_JOB_COST_USD."
            ),
        )


def _until(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds()) // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    return f"{days} d {hours} h" if days else f"{hours} h {minutes:02d} min"


def resets_text(name: str, now: datetime) -> str:
    """'resets at 00:00 UTC, in 3 h 30 min' / 'resets on 1 January 2027 at 00:00 UTC, in 27 d 3 h'."""
    if name == DAILY:
        reset = _day(now)[1]
        return f"resets at 00:00 UTC, in {_until(reset - now)}"
    reset = month_window(now)[1]
    return f"resets on 1 {reset:%B %Y} at 00:00 UTC, in {_until(reset - now)}"


def overrun_error(
    overrun: Overrun, estimate_usd: float, now: datetime, *, guild_id: str | None, what: str = "This ad"
) -> BudgetExceeded:
    window = overrun.window
    left = max(0.0, window.cap_usd - overrun.used_usd)
    period = "today" if window.name == DAILY else "this month"
    whose = "this server has" if guild_id else "the command line has"
    message = (
        f"{what} is estimated at ${estimate_usd:.2f}, but {whose} ${left:.2f} left of its "
        f"${window.cap_usd:.2f} {window.name} budget (${overrun.used_usd:.2f} spent or held {period}). {NOTHING_MADE}"
    )
    if guild_id:
        who = f"Members with Manage Server or the approver role can raise it with `/brand set budget_{window.name}:`."
    else:
        who = f"Raise JANT_GUILD_{window.name.upper()}_BUDGET_USD to allow more."
    return BudgetExceeded(message, hint=f"The {window.name} budget {resets_text(window.name, now)}. {who}")


@dataclass(frozen=True)
class BudgetLeft:
    """What a server has left now, for the storyboard card and `/spend`."""

    limits: BudgetLimits
    daily_used: float
    monthly_used: float

    @property
    def daily_left(self) -> float | None:
        return None if self.limits.daily_usd is None else max(0.0, self.limits.daily_usd - self.daily_used)

    @property
    def monthly_left(self) -> float | None:
        return None if self.limits.monthly_usd is None else max(0.0, self.limits.monthly_usd - self.monthly_used)

    def text(self) -> str:
        """'$4.38 of $5.00 left today · $48.00 of $50.00 left this month', or that there is no cap."""
        parts = []
        if self.limits.daily_usd is not None:
            parts.append(f"${self.daily_left:.2f} of ${self.limits.daily_usd:.2f} left today")
        if self.limits.monthly_usd is not None:
            parts.append(f"${self.monthly_left:.2f} of ${self.limits.monthly_usd:.2f} left this month")
        if not parts:
            parts.append("no budget cap")
        if self.limits.per_job_usd is not None:
            parts.append(f"at most ${self.limits.per_job_usd:.2f} per ad")
        return " · ".join(parts)

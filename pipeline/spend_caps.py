"""Holds a job's money against its server's budgets: reserve at approval, settle when it ends.

The orchestrator calls `reserve` inside its approval step (before the job is queued, so a refusal
leaves nothing behind) and `settle` once a job has ended, however it ended. A restarted process
keeps the reservation as it is in the database: the resumed job settles it when it ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pipeline.budgets import BudgetLeft, budget_limits, check_job_cap, month_window, overrun_error, windows
from pipeline.config import Settings
from pipeline.cost_estimate import estimate_job_cost
from pipeline.models import Job, utcnow
from pipeline.quotas import day_window
from pipeline.spend_labels import spend_by_model
from pipeline.store import JobStore


@dataclass(frozen=True)
class SpendReport:
    """One month of spend (UTC), for `/spend` and `jant spend`: what predictions cost by day and by
    model, what running ads still hold beyond that, and the budget left (None: every server)."""

    month_start: datetime
    by_day: list[tuple[str, float]]  # ("2026-12-04", usd), days with spend only
    by_model: list[tuple[str, float, int]]  # (model's name, usd, predictions), dearest first (spend_labels)
    held_jobs: int
    held_usd: float
    budget: BudgetLeft | None

    @property
    def total_usd(self) -> float:
        return round(sum(usd for _, usd in self.by_day), 4)

    @property
    def month_name(self) -> str:
        return f"{self.month_start:%B %Y}"


@dataclass(frozen=True)
class Settlement:
    reserved_usd: float
    spent_usd: float

    @property
    def refunded_usd(self) -> float:
        return max(0.0, round(self.reserved_usd - self.spent_usd, 4))


class SpendCaps:
    def __init__(self, settings: Settings, store: JobStore, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock  # tests set the time a budget resets from

    async def reserve(self, job: Job, *, amount_usd: float | None = None, what: str = "This ad") -> float | None:
        """Check the per-ad cap and the server's budgets against the job's estimate (or `amount_usd`,
        what a re-run of part of it costs, named by `what`) and hold it, in one transaction.

        Raises `BudgetExceeded` (nothing held) when it does not fit; returns what it holds, or None
        for free work (an offline preview never touches a budget). A job that holds already holds
        what it has spent plus the new amount: asking twice for the same re-run holds it once."""
        amount = estimate_job_cost(job, self.settings).total_usd if amount_usd is None else round(amount_usd, 4)
        if amount <= 0:
            return None
        limits = budget_limits(await self.store.guild_policy(job.guild_id), self.settings)
        check_job_cap(limits, amount, what=what)
        now = self.clock()
        overrun = await self.store.reserve_budget(job.id, job.guild_id, amount, windows(limits, now), now)
        if overrun is not None:
            raise overrun_error(overrun, amount, now, guild_id=job.guild_id, what=what)
        await self.store.event(job, "budget_reserved", detail=f"${amount:.4f}")
        return amount

    async def settle(self, job: Job) -> Settlement | None:
        """The job ended (done, failed or cancelled): its hold becomes what its predictions cost, and
        the rest goes back to the budget. None when it held nothing or was settled already."""
        if not job.status.is_terminal:
            return None
        settled = await self.store.settle_budget(job.id, self.clock())
        if settled is None:
            return None
        result = Settlement(*settled)
        await self.store.event(
            job, "budget_settled",
            detail=f"reserved ${result.reserved_usd:.4f}, spent ${result.spent_usd:.4f}, "
            f"returned ${result.refunded_usd:.4f}",
        )  # fmt: skip
        return result

    async def left(self, guild_id: str | None) -> BudgetLeft:
        """What the server (None: the command line) has left of its budgets now."""
        limits = budget_limits(await self.store.guild_policy(guild_id), self.settings)
        now = self.clock()
        daily = await self.store.budget_used(guild_id, day_window(now)[0]) if limits.daily_usd is not None else 0.0
        monthly = (
            await self.store.budget_used(guild_id, month_window(now)[0]) if limits.monthly_usd is not None else 0.0
        )
        return BudgetLeft(limits, daily, monthly)

    async def report(self, guild_id: str | None, *, every_guild: bool = False) -> SpendReport:
        """This month's spend of one server (None: the command line's jobs), or of every one."""
        start = month_window(self.clock())[0]
        data = await self.store.spend(start, guild_id=guild_id, every_guild=every_guild)
        held_jobs, held_usd = data["held"]
        budget = None if every_guild else await self.left(guild_id)
        by_model = spend_by_model(data["by_source"], self.settings)
        return SpendReport(start, data["by_day"], by_model, held_jobs, held_usd, budget)

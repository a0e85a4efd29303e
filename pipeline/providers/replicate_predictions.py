"""One Replicate prediction from create to a terminal state: record its id, poll, time out, cancel.

We poll with our own loop because the client's `wait` never times out, and we read every answer
through `PredictionState` because replicate 1.0.7's pydantic v1 `Prediction` crashes on the live
API's `"aborted"` status. Poll failures (500s, throttling, network) never fail a prediction that
is still running and paid for: they are retried until the prediction's own deadline.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import replicate
from pydantic import v1 as pydantic_v1
from replicate.exceptions import ReplicateError

from pipeline.config import ReplicateSettings
from pipeline.errors import ProviderError, SafetyRejection, StageTimeout
from pipeline.providers import replicate_intents
from pipeline.providers.base import AttemptStep, PredictionCreated, StageContext
from pipeline.providers.poll_scheduler import CreatePacer, CreateSlot, PollPlan, PollScheduler, TailEstimate, fair_share
from pipeline.retry import classify

log = logging.getLogger(__name__)

TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
# Defaults for callers that pass no budget: the settings' own defaults (Replicate's per-account
# limits and why these shares of them are in `pipeline.config.ReplicateSettings`), never a copy.
_POLLS_PER_MIN: float = ReplicateSettings.model_fields["poll_budget_per_min"].default
_CREATES_PER_MIN: int = ReplicateSettings.model_fields["creates_per_min"].default

_BAR = re.compile(r"(\d+)%\|[^|\r\n]*\|\s*(\d+)/(\d+)")
_SAFETY = re.compile(r"nsfw|safety (?:checker|filter|system)|sensitive content|flagged", re.IGNORECASE)
_INFRA = re.compile(
    r"out of memory|cuda error|interrupted|\(code: ?PA\)|please retry|director|worker (?:died|crashed|lost)|"
    r"connection (?:reset|refused)|timed out|internal error|no space left",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class PredictionState:
    """What we read from one poll, independent of the client's model class."""

    id: str
    status: str
    output: Any = None
    logs: str = ""
    error: str | None = None
    input: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def predict_time(self) -> float | None:
        value = self.metrics.get("predict_time")
        return float(value) if isinstance(value, int | float) else None

    @classmethod
    def of(cls, p: Any) -> PredictionState:
        return cls(
            id=p.id, status=p.status, output=p.output, logs=p.logs or "", error=_error_text(p.error),
            input=dict(p.input or {}), metrics=dict(p.metrics or {}),
        )  # fmt: skip


def _error_text(error: Any) -> str | None:
    if error is None or error == "":
        return None
    return error if isinstance(error, str) else str(error)


def poll_interval(base_s: float, in_flight: int, budget_per_min: float = _POLLS_PER_MIN) -> float:
    """Seconds between polls of one prediction, so that all of them together stay within budget
    (the interval for a prediction we know nothing about yet; see `poll_scheduler`)."""
    return fair_share(base_s, in_flight, budget_per_min)


def parse_log_progress(logs: str | None) -> tuple[int, int] | None:
    """(current, total) of the last tqdm bar in the logs, wherever it sits on a \\r- or \\n-joined line.

    The client's `Prediction.progress` anchors at a line start and reads the first bar of a
    \\r-joined line, so it misses SVD's `Sampling with EulerEDMSampler for 31 steps:  40%|…| 12/31`.
    """
    if not logs:
        return None
    found = _BAR.findall(logs)
    if not found:
        return None
    _, current, total = found[-1]
    return int(current), int(total)


def failure(label: str, state: PredictionState) -> ProviderError:
    """The error for a prediction that ended `failed`: unsafe content, a GPU hiccup, or the model refusing."""
    text = (state.error or "no error message").strip()
    if _SAFETY.search(text):
        return SafetyRejection(f"{label}: the model's safety checker rejected this scene ({text})")
    if _INFRA.search(text):
        return ProviderError(f"{label} failed on Replicate's side: {_first_line(text)}", retryable=True)
    return ProviderError(f"{label} failed: {_first_line(text)}", retryable=False)


def _first_line(text: str, limit: int = 300) -> str:
    line = text.splitlines()[0] if text else text
    return line if len(line) <= limit else line[: limit - 1] + "…"


ProgressFn = Callable[[PredictionState], "tuple[float, str] | None"]
# The fraction (0–1) of the model's sampling bar done, or None when the logs show no bar yet.
SamplingFn = Callable[[PredictionState], "float | None"]


class PredictionRunner:
    """Runs predictions of one model version; one runner per generator."""

    def __init__(
        self,
        client: replicate.Client,
        *,
        label: str,
        version: str,
        deadline_s: float,
        poll_base_s: float,
        max_attempts: int,
        poll_budget_per_min: float = _POLLS_PER_MIN,
        scheduler: PollScheduler | None = None,
        pacer: CreatePacer | None = None,
        setting: str | None = None,
        background_creates: bool = False,
    ) -> None:
        self.client = client
        self.label = label
        self.version = version
        # The setting that names this model or version: what to change when Replicate has no such thing.
        self.setting = setting
        self.deadline_s = deadline_s
        self.poll_base_s = poll_base_s
        self.max_attempts = max_attempts
        self.poll_budget_per_min = poll_budget_per_min
        # Share one scheduler between every runner on the same account (see runtime.build_providers).
        self.scheduler = scheduler or PollScheduler(poll_budget_per_min, burst_s=poll_base_s)
        self.pacer = pacer or CreatePacer(_CREATES_PER_MIN)
        # Creates with time to spare (voice, music) let waiting seeds and clips go first.
        self.background_creates = background_creates
        self.tail = TailEstimate()  # this model's time from the end of its sampling bar to the end

    async def run(
        self, input: dict[str, Any], ctx: StageContext, progress: ProgressFn, sampling: SamplingFn | None = None
    ) -> PredictionState:
        """A succeeded prediction (new, or `ctx.existing_prediction_id` when resuming), or an error.

        `ctx.step` cuts it in two for the durable engine: `CREATE` stops once the new prediction's id is
        recorded (raising `PredictionCreated`), `WAIT` only waits for `ctx.existing_prediction_id`."""
        if ctx.existing_prediction_id is not None:
            return await self.wait(ctx.existing_prediction_id, ctx, progress, sampling)
        if ctx.intent is not None and (found := await self.find_sent(ctx)) is not None:
            if ctx.step is AttemptStep.CREATE:
                raise PredictionCreated(found)
            return await self.wait(found, ctx, progress, sampling)
        state = await self.create(input, ctx)
        if ctx.step is AttemptStep.CREATE:
            raise PredictionCreated(state.id)
        return await self.wait(state, ctx, progress, sampling)

    async def create(self, input: dict[str, Any], ctx: StageContext) -> PredictionState:
        """POST a new prediction, in its turn of the account's create limit, and record its id before
        anything else is awaited: nothing here waits on the prediction itself."""
        # The intent is stored while the create waits for its turn, not after: a write fewer between the
        # turn and the POST. Its time is then a little before the send, which only widens the look back
        # a resume makes (`replicate_intents`); one stored for a create that never got its turn is looked
        # for, not found, and the create is made.
        intent = asyncio.ensure_future(ctx.record_intent(replicate_intents.intent_for(self.version, input)))
        try:
            wait = self.pacer.expected_wait()
            if wait >= 1.0:
                await ctx.progress(0.0, f"{self._prefix(ctx)}waiting ~{wait:.0f} s for Replicate's create limit")
            slot = await self.pacer.turn(background=self.background_creates)
        except BaseException:
            await asyncio.gather(intent, return_exceptions=True)  # shielded in the store: it lands anyway
            raise
        return await self._create_shielded(input, ctx, slot, intent)

    async def find_sent(self, ctx: StageContext) -> str | None:
        """The prediction of `ctx.intent` (a create sent by a run that died before storing its id), now
        recorded on the stage; None when Replicate never got it. Raises when Replicate cannot tell (see
        `replicate_intents`: a failed list never leads to a second create)."""
        assert ctx.intent is not None
        found = await replicate_intents.find_sent(self.client, ctx.intent, label=self.label)
        if found is not None:
            await ctx.record_prediction(found)
        return found

    async def wait(
        self,
        prediction: PredictionState | str,
        ctx: StageContext,
        progress: ProgressFn,
        sampling: SamplingFn | None = None,
    ) -> PredictionState:
        """Poll to a terminal state within the deadline: `prediction` is the state its create answered,
        or the id of one created earlier (a resumed attempt; a durable run's wait step), which is polled
        at once. A succeeded state, or an error; past the deadline the prediction is cancelled. Only
        reads the prediction (and cancels it at the deadline): running it twice pays for nothing."""
        resuming = isinstance(prediction, str)
        state = PredictionState(prediction, "unknown") if isinstance(prediction, str) else prediction
        # The wait step of a durable run always starts from an id: it is not a resume to the user.
        prefix = self._prefix(ctx) + ("resumed · " if resuming and ctx.step is AttemptStep.WHOLE else "")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline_s
        plan = PollPlan(created=loop.time(), base=self.poll_base_s)
        last: tuple[float, str] | None = None
        limit = asyncio.timeout_at(deadline)
        try:
            async with limit:
                if resuming:
                    now = loop.time()
                    await self.scheduler.turn(now, now + self.poll_base_s)
                    state = await self._poll(state)
                while True:
                    report = progress(state) if state.status != "unknown" else None
                    if report is not None and report != last:
                        last = report
                        await ctx.progress(report[0], prefix + report[1])
                    if state.terminal:
                        break
                    now = loop.time()
                    plan.observe(now, sampling(state) if sampling and state.status == "processing" else None)
                    share = poll_interval(self.poll_base_s, ctx.in_flight(), self.poll_budget_per_min)
                    await self.scheduler.turn(*plan.next_poll(now, share, self.tail.seconds))
                    state = await self._poll(state)
            tail = plan.tail_seen()
            if state.status == "succeeded" and tail is not None:
                self.tail.learn(tail)
        except TimeoutError:
            if not limit.expired():
                raise
            await self._cancel_quietly(state.id)
            raise StageTimeout(
                f"{self.label} did not finish within {self.deadline_s:g} s (last status: {state.status}); "
                "the prediction was cancelled."
            ) from None
        return self._outcome(state)

    def _prefix(self, ctx: StageContext) -> str:
        return f"attempt {ctx.attempt}/{self.max_attempts} · " if ctx.attempt > 1 else ""

    async def _create_shielded(
        self, input: dict[str, Any], ctx: StageContext, slot: CreateSlot, intent: asyncio.Future[None]
    ) -> PredictionState:
        """Create and record as one step that a cancel cannot split.

        If the job is cancelled (or the bot stops) while the create request is in flight, we still
        wait for Replicate's answer and store the id before letting the cancel through: then the
        orchestrator can cancel that prediction, or a restart can resume it, instead of it running
        unseen and paid for.
        """
        step = asyncio.ensure_future(self._create_and_record(input, ctx, slot, intent))
        try:
            return await asyncio.shield(step)
        except asyncio.CancelledError:
            if not step.done():
                try:
                    await asyncio.wait_for(asyncio.shield(step), timeout=30)
                except Exception:  # the create itself failed or hung: nothing to track
                    pass
            raise

    async def _create_and_record(
        self, input: dict[str, Any], ctx: StageContext, slot: CreateSlot, intent: asyncio.Future[None]
    ) -> PredictionState:
        # Shielded: once Replicate has the prediction, its id reaches storage even if the job is
        # being stopped, so a restart resumes it instead of paying for another.
        # An official model ("owner/name", no version) is created at /v1/models/owner/name/predictions.
        # The intent stored first: killed between the POST and the store below, a resume finds the
        # prediction by it (a failed store fails the create before anything is sent).
        try:
            await intent
            if "/" in self.version:
                p = await self.client.predictions.async_create(model=self.version, input=input)
            else:
                p = await self.client.predictions.async_create(version=self.version, input=input)
        except ReplicateError as exc:
            if (missing := self._missing(exc)) is not None:
                raise missing from exc
            raise
        finally:
            slot.answered()
        await ctx.record_prediction(p.id)
        return PredictionState.of(p)

    def _missing(self, exc: ReplicateError) -> ProviderError | None:
        """The model (404 on an official model's create) or version (422 "Invalid version") does not
        exist, or not for this token: paying again cannot help, the setting must change."""
        title = (exc.title or "").lower()
        if exc.status == 404:
            what = f"the model {self.version}"
        elif exc.status == 422 and "version" in title:
            what = f"the version {self.version}"
        else:
            return None
        change = f"set {self.setting} to one that exists" if self.setting else "check the model setting"
        return ProviderError(
            f"{self.label}: Replicate does not have {what} ({exc.status}: it was removed or renamed, or this token "
            f"cannot use it); {change}.",
            retryable=False,
        )

    async def _poll(self, previous: PredictionState) -> PredictionState:
        """The prediction's state now; on a transient failure, the previous state (poll again later)."""
        try:
            return PredictionState.of(await self.client.predictions.async_get(previous.id))
        except pydantic_v1.ValidationError as exc:
            given = _given_status(exc)
            if given == "aborted":
                return PredictionState(previous.id, "aborted", logs=previous.logs, input=previous.input)
            log.warning("%s: unreadable prediction %s (status %r): %s", self.label, previous.id, given, exc)
            return previous
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            decision = classify(exc)
            if not decision.retry:
                raise
            log.warning("%s: polling %s failed, polling again: %s", self.label, previous.id, decision.reason)
            if decision.retry_after:
                await asyncio.sleep(decision.retry_after)
            return previous

    def _outcome(self, state: PredictionState) -> PredictionState:
        if state.status == "succeeded":
            return state
        if state.status == "failed":
            raise failure(self.label, state)
        if state.status == "aborted":
            # Replicate stopped it before it ran (capacity, a lost worker): nothing ran, try again.
            raise ProviderError(f"{self.label} was aborted by Replicate before it ran.", retryable=True)
        raise ProviderError(f"{self.label} was cancelled on Replicate.", retryable=False)

    async def cancel(self, prediction_id: str) -> None:
        try:
            await self.client.predictions.async_cancel(prediction_id)
        except pydantic_v1.ValidationError:
            pass  # the cancel went through; the answer carried a status the client cannot read

    async def _cancel_quietly(self, prediction_id: str) -> None:
        try:
            await asyncio.wait_for(self.cancel(prediction_id), timeout=15)
        except Exception:
            log.warning("%s: could not cancel prediction %s", self.label, prediction_id, exc_info=True)


def _given_status(exc: pydantic_v1.ValidationError) -> str | None:
    for err in exc.errors():
        if tuple(err.get("loc", ())) == ("status",):
            return (err.get("ctx") or {}).get("given")
    return None

"""Which actions each job state allows, and what to say when one is refused. Pure data.

The one table every front end consults: the orchestrator refuses through it, the Discord buttons
and slash commands answer with its words, and the CLI acts only through the orchestrator. Rules that
are not about the state (a scene number out of range, a clip re-roll without a seed image) stay
with the action itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from pipeline.models import JobStatus


class Action(StrEnum):
    """What a user can ask of a job. The values are the Discord buttons' names."""

    APPROVE = "approve"
    EDIT = "edit"
    REPLAN = "replan"  # "New storyboard"
    CANCEL = "cancel"
    RETRY = "retry"  # "Retry failed"
    REROLL = "reroll"
    RERENDER = "rerender"  # make the ad again from its finished scenes (another format, new captions)
    FORMATS = "formats"  # cut the finished ad into the shapes it was not made in (4:5, 1:1, 16:9)


_S = JobStatus
_A = Action

# A cancelled job allows no retry: "stop, charge nothing more" must not be undone by one click, and a
# job cancelled before approval would start generating without ever being approved. Cancelling while
# planning is refused too: the storyboard being written would land after the cancel and reopen it.
ALLOWED: Mapping[JobStatus, frozenset[Action]] = {
    _S.PLANNING: frozenset(),
    _S.AWAITING_APPROVAL: frozenset({_A.APPROVE, _A.EDIT, _A.REPLAN, _A.CANCEL}),
    _S.QUEUED: frozenset({_A.CANCEL}),
    _S.RUNNING: frozenset({_A.CANCEL}),
    _S.COMPOSING: frozenset({_A.CANCEL}),
    _S.COMPLETED: frozenset({_A.REROLL, _A.RERENDER, _A.FORMATS}),
    _S.PARTIAL: frozenset({_A.RETRY, _A.REROLL, _A.RERENDER, _A.FORMATS}),
    _S.FAILED: frozenset({_A.RETRY, _A.REROLL}),
    _S.CANCELLED: frozenset(),
}

# How a refusal names the job's state: "Nothing to approve: job `1a2b3c4d` <phrase>."
STATE_PHRASES: Mapping[JobStatus, str] = {
    _S.PLANNING: "is still being planned",
    _S.AWAITING_APPROVAL: "is still waiting for approval",
    _S.QUEUED: "was already approved and is queued",
    _S.RUNNING: "was already approved and is being generated",
    _S.COMPOSING: "was already approved and is being put together",
    _S.COMPLETED: "has already finished",
    _S.PARTIAL: "has already finished (some scenes failed)",
    _S.FAILED: "has already failed",
    _S.CANCELLED: "was cancelled",
}

VERBS: Mapping[Action, str] = {
    _A.APPROVE: "approve",
    _A.EDIT: "edit",
    _A.REPLAN: "re-plan",
    _A.CANCEL: "cancel",
    _A.RETRY: "retry",
    _A.REROLL: "re-roll",
    _A.RERENDER: "re-render",
    _A.FORMATS: "reformat",
}

# What the action needs, for the longer refusal the orchestrator (and so the CLI) gives.
NEEDS: Mapping[Action, str] = {
    _A.APPROVE: "only a storyboard awaiting approval can be approved",
    _A.EDIT: "only a storyboard awaiting approval can be edited",
    _A.REPLAN: "only a storyboard awaiting approval can be written again",
    _A.CANCEL: "only a job awaiting approval, queued, running or composing can be cancelled",
    _A.RETRY: "only a partial or failed job can have its failed scenes made again",
    _A.REROLL: "only a finished ad (done, partial or failed) can have a scene re-rolled",
    _A.RERENDER: "only a finished ad (done or partial) can be rendered again",
    _A.FORMATS: "only a finished ad (done or partial) can be cut into other formats",
}


def allows(status: JobStatus, action: Action | str) -> bool:
    return Action(action) in ALLOWED[status]


def refusal(job_id: str, status: JobStatus, action: Action | str) -> str | None:
    """None when `status` allows `action`; else one sentence saying why nothing happens."""
    act = Action(action)
    if act in ALLOWED[status]:
        return None
    return f"Nothing to {VERBS[act]}: job `{job_id}` {STATE_PHRASES[status]}."


def refusal_with_rule(job_id: str, status: JobStatus, action: Action | str) -> str | None:
    """`refusal` followed by the rule it broke, for front ends that show no buttons to guide the user."""
    short = refusal(job_id, status, action)
    if short is None:
        return None
    return f"{short.removesuffix('.')}; {NEEDS[Action(action)]}."


# -- Re-render: beyond the state, it needs the scenes' files and no other re-render of the same job.

RERENDER_MEDIA_GONE = (
    "Nothing to re-render: the scenes of job `{job_id}` are no longer on disk (old ads' media are deleted "
    "after a while); make a new ad instead."
)
RERENDER_BUSY = "Job `{job_id}` is already being re-rendered; its new ad is posted when that one is done."
RERENDER_WHILE_FORMATS = "Job `{job_id}` is being cut into other formats right now; re-render it once they are posted."


def rerender_refusal(job_id: str, status: JobStatus, *, media_on_disk: bool, rerendering: bool) -> str | None:
    """None when the finished ad can be composed again now; else the sentence that says why not (the
    state's refusal with its rule, as the orchestrator gives for every action)."""
    if why := refusal_with_rule(job_id, status, Action.RERENDER):
        return why
    if rerendering:
        return RERENDER_BUSY.format(job_id=job_id)
    if not media_on_disk:
        return RERENDER_MEDIA_GONE.format(job_id=job_id)
    return None


# -- Formats after the fact: beyond the state, the scenes' files, formats still to make, one render at a time.

FORMATS_MEDIA_GONE = (
    "No other formats: the scenes of job `{job_id}` are no longer on disk (old ads' media are deleted after a "
    "while); make a new ad in the shapes you need instead."
)
FORMATS_BUSY = "Job `{job_id}` is already being cut into other formats; they are posted when they are done."
FORMATS_LOCKED = (
    "Job `{job_id}` is being re-rendered or cut into formats by another jant process; try again once that is done."
)
FORMATS_WHILE_RERENDERING = "Job `{job_id}` is being re-rendered; ask for other formats once its new ad is posted."
FORMATS_ALL_MADE = "Job `{job_id}` already has every format ({made}); nothing is left to make."
FORMATS_ALREADY_MADE = "The {keys} version of job `{job_id}` is already made; still to make: {missing}."
FORMATS_MASTER = "9:16 is the ad itself; choose among the other formats: {missing}."


def formats_refusal(
    job_id: str,
    status: JobStatus,
    *,
    media_on_disk: bool,
    busy: str | None,
    made: tuple[str, ...],
    missing: tuple[str, ...],
) -> str | None:
    """None when the finished ad can be cut into its `missing` formats now; else why not. `busy` is
    "formats" or "rerender" when the job's files are being rendered already."""
    if why := refusal_with_rule(job_id, status, Action.FORMATS):
        return why
    if busy == "formats":
        return FORMATS_BUSY.format(job_id=job_id)
    if busy == "rerender":
        return FORMATS_WHILE_RERENDERING.format(job_id=job_id)
    if not missing:
        return FORMATS_ALL_MADE.format(job_id=job_id, made=", ".join(made))
    if not media_on_disk:
        return FORMATS_MEDIA_GONE.format(job_id=job_id)
    return None

"""Who may press a job's buttons, and what to tell everyone else. Pure policy.

The requester owns the job; members with the approver role (`JANT_APPROVER_ROLE`) or Manage Server
may act on anyone's job, because a team sometimes needs to approve or stop an ad its author left.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.models import Job, JobStatus

VERBS = {
    "approve": "approve",
    "replan": "re-plan",
    "edit": "edit",
    "cancel": "cancel",
    "retry": "retry",
    "reroll": "re-roll",
}


@dataclass(frozen=True)
class Actor:
    user_id: int
    role_names: tuple[str, ...]
    manage_guild: bool


def may_act(job: Job, actor: Actor, approver_role: str | None) -> bool:
    if job.requester_id is not None and str(actor.user_id) == job.requester_id:
        return True
    if actor.manage_guild:
        return True
    if approver_role:
        wanted = approver_role.strip().casefold()
        return any(name.casefold() == wanted for name in actor.role_names)
    return False


def refusal(job: Job, action: str, approver_role: str | None) -> str:
    """The ephemeral reason shown to a member who may not press this button."""
    verb = VERBS.get(action, action)
    who = [f"<@{job.requester_id}> (who asked for it)" if job.requester_id else "the teammate who asked for it"]
    if approver_role:
        who.append(f"members with the **{approver_role}** role")
    who.append("members with Manage Server")
    listed = ", ".join(who[:-1]) + " or " + who[-1]
    return f"Only {listed} can {verb} this ad."


# What each action needs the job to be, and what to say when it has moved on.
ACTION_STATES: dict[str, tuple[JobStatus, ...]] = {
    "approve": (JobStatus.AWAITING_APPROVAL,),
    "replan": (JobStatus.AWAITING_APPROVAL,),
    "edit": (JobStatus.AWAITING_APPROVAL,),
    "cancel": (JobStatus.AWAITING_APPROVAL, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.COMPOSING),
    "retry": (JobStatus.PARTIAL, JobStatus.FAILED),
    "reroll": (JobStatus.COMPLETED, JobStatus.PARTIAL, JobStatus.FAILED),
}


def moved_on(job: Job, action: str) -> str | None:
    """None when `action` fits the job's state; else why the click does nothing."""
    if job.status in ACTION_STATES.get(action, ()):
        return None
    state = {
        JobStatus.PLANNING: "is still being planned",
        JobStatus.AWAITING_APPROVAL: "is still waiting for approval",
        JobStatus.QUEUED: "was already approved and is queued",
        JobStatus.RUNNING: "was already approved and is being generated",
        JobStatus.COMPOSING: "was already approved and is being put together",
        JobStatus.COMPLETED: "has already finished",
        JobStatus.PARTIAL: "has already finished (some scenes failed)",
        JobStatus.FAILED: "has already failed",
        JobStatus.CANCELLED: "was cancelled",
    }[job.status]
    return f"Nothing to {VERBS.get(action, action)}: job `{job.id}` {state}."

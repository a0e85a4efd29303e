"""Who may press a job's buttons, and what to tell everyone else. Pure policy.

The requester owns the job; members with the approver role (`JANT_APPROVER_ROLE`) or Manage Server
may act on anyone's job, because a team sometimes needs to approve or stop an ad its author left.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.action_rules import VERBS, Action
from pipeline.action_rules import refusal as action_refusal
from pipeline.models import Job


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
    verb = VERBS[Action(action)]
    who = [f"<@{job.requester_id}> (who asked for it)" if job.requester_id else "the teammate who asked for it"]
    if approver_role:
        who.append(f"members with the **{approver_role}** role")
    who.append("members with Manage Server")
    listed = ", ".join(who[:-1]) + " or " + who[-1]
    return f"Only {listed} can {verb} this ad."


def moved_on(job: Job, action: str) -> str | None:
    """None when `action` fits the job's state (the one table in `pipeline.action_rules`); else why
    the click does nothing."""
    return action_refusal(job.id, job.status, action)

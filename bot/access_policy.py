"""Who may press a job's buttons or change a server's brand kit, and what to tell everyone else. Pure policy.

The requester owns the job; members with the approver role or Manage Server may act on anyone's job,
because a team sometimes needs to approve or stop an ad its author left. The approver role is the
server's own (`/brand set approver_role:`, kept by id so renaming the role keeps it) or, for a server
that never chose one, `JANT_APPROVER_ROLE` (a role name, the same in every server).
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
    role_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class ApproverRole:
    name: str  # what refusals call it
    role_id: int | None = None  # a server's own role: matched by id; None: matched by name

    def held_by(self, actor: Actor) -> bool:
        if self.role_id is not None:
            return self.role_id in actor.role_ids
        wanted = self.name.strip().casefold()
        return bool(wanted) and any(name.casefold() == wanted for name in actor.role_names)


def approver_role(role_id: int | None, role_name: str | None, default: str | None) -> ApproverRole | None:
    """The role that approves in one server: its own (`role_id`, named `role_name` there) when it set
    one that still exists, else the process-wide default role name."""
    if role_id is not None and role_name is not None:
        return ApproverRole(role_name, role_id)
    return ApproverRole(default.strip()) if default and default.strip() else None


def _as_role(approver: ApproverRole | str | None) -> ApproverRole | None:
    if isinstance(approver, str):
        return ApproverRole(approver) if approver.strip() else None
    return approver


def may_act(job: Job, actor: Actor, approver: ApproverRole | str | None) -> bool:
    if job.requester_id is not None and str(actor.user_id) == job.requester_id:
        return True
    if actor.manage_guild:
        return True
    role = _as_role(approver)
    return role is not None and role.held_by(actor)


def refusal(job: Job, action: str, approver: ApproverRole | str | None) -> str:
    """The ephemeral reason shown to a member who may not press this button."""
    verb = VERBS[Action(action)]
    who = [f"<@{job.requester_id}> (who asked for it)" if job.requester_id else "the teammate who asked for it"]
    role = _as_role(approver)
    if role is not None:
        who.append(f"members with the **{role.name}** role")
    who.append("members with Manage Server")
    listed = ", ".join(who[:-1]) + " or " + who[-1]
    return f"Only {listed} can {verb} this ad."


def may_change_brand(actor: Actor, approver: ApproverRole | None) -> bool:
    return actor.manage_guild or (approver is not None and approver.held_by(actor))


def brand_refusal(approver: ApproverRole | None) -> str:
    if approver is None:
        return "Only members with Manage Server can change this server's brand kit."
    return f"Only members with Manage Server or the **{approver.name}** role can change this server's brand kit."


def moved_on(job: Job, action: str) -> str | None:
    """None when `action` fits the job's state (the one table in `pipeline.action_rules`); else why
    the click does nothing."""
    return action_refusal(job.id, job.status, action)

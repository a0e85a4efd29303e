"""One state/action table: every state × action pair, and the orchestrator and the buttons agree with it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.access_policy import moved_on
from bot.job_buttons import result_buttons, status_buttons
from pipeline.action_rules import (
    ALLOWED,
    RERENDER_BUSY,
    RERENDER_MEDIA_GONE,
    STATE_PHRASES,
    Action,
    allows,
    formats_refusal,
    refusal,
    refusal_with_rule,
    rerender_refusal,
)
from pipeline.config import Settings
from pipeline.errors import InvalidRequest
from pipeline.models import AdRequest, Job, JobStatus, StageName, StageStatus, utcnow
from pipeline.orchestrator import Orchestrator
from pipeline.providers.base import Providers
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.store import JobStore
from tests.scripted_providers import CopyComposer, ScriptedImages, ScriptedVideo

# Written out by hand, not derived from the table: a change to the table must change this too.
EXPECTED: dict[JobStatus, set[str]] = {
    JobStatus.PLANNING: set(),
    JobStatus.AWAITING_APPROVAL: {"approve", "edit", "replan", "cancel"},
    JobStatus.QUEUED: {"cancel"},
    JobStatus.RUNNING: {"cancel"},
    JobStatus.COMPOSING: {"cancel"},
    JobStatus.COMPLETED: {"reroll", "rerender", "formats"},
    JobStatus.PARTIAL: {"retry", "reroll", "rerender", "formats"},
    JobStatus.FAILED: {"retry", "reroll"},
    JobStatus.CANCELLED: set(),
}
PAIRS = [(status, action) for status in JobStatus for action in Action]


@pytest.mark.parametrize(("status", "action"), PAIRS, ids=[f"{s.value}-{a.value}" for s, a in PAIRS])
def test_every_state_action_pair(status: JobStatus, action: Action) -> None:
    allowed = action.value in EXPECTED[status]
    assert allows(status, action) is allowed
    why = refusal("1a2b3c4d", status, action)
    if allowed:
        assert why is None and refusal_with_rule("1a2b3c4d", status, action) is None
    else:
        assert why is not None and why.startswith("Nothing to ") and "`1a2b3c4d`" in why
        long = refusal_with_rule("1a2b3c4d", status, action)
        assert long is not None and long.startswith(why.removesuffix(".")) and "only" in long


def test_the_table_covers_every_state() -> None:
    assert set(ALLOWED) == set(JobStatus)


@pytest.mark.parametrize(("status", "action"), PAIRS, ids=[f"{s.value}-{a.value}" for s, a in PAIRS])
def test_the_buttons_answer_with_the_table(status: JobStatus, action: Action) -> None:
    job = Job(request=AdRequest(product="A lamp"), status=status)
    assert moved_on(job, action.value) == refusal(job.id, status, action)


@pytest.mark.parametrize("status", list(JobStatus))
def test_the_status_message_offers_only_allowed_buttons(status: JobStatus) -> None:
    job = Job(request=AdRequest(product="A lamp"), status=status)
    job.storyboard = None if status is JobStatus.PLANNING else _storyboard()
    view = status_buttons(job)
    shown = {item.action for item in view.children} if view is not None else set()  # type: ignore[attr-defined]
    assert shown <= EXPECTED[status]


@pytest.mark.parametrize("status", list(JobStatus))
def test_the_result_message_offers_only_allowed_buttons(status: JobStatus) -> None:
    job = Job(request=AdRequest(product="A lamp"), status=status)
    view = result_buttons(job)
    shown = {item.action for item in view.children} if view is not None else set()  # type: ignore[attr-defined]
    assert shown == EXPECTED[status] & {"rerender", "reroll", "formats"}


def test_the_formats_button_is_left_off_an_ad_asked_in_every_shape() -> None:
    every = Job(request=AdRequest(product="A lamp", formats=("4:5", "1:1", "16:9")), status=JobStatus.COMPLETED)
    view = result_buttons(every)
    assert view is not None and {item.action for item in view.children} == {"rerender", "reroll"}  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", list(JobStatus))
def test_formats_need_a_finished_ad_a_free_render_something_missing_and_its_media(status: JobStatus) -> None:
    def why(**changes: Any) -> str | None:
        args: dict[str, Any] = {"media_on_disk": True, "busy": None, "made": ("4:5",), "missing": ("1:1", "16:9")}
        return formats_refusal("1a2b3c4d", status, **(args | changes))

    if "formats" not in EXPECTED[status]:  # the state's refusal comes first, whatever the files
        assert why() == why(media_on_disk=False) == refusal_with_rule("1a2b3c4d", status, Action.FORMATS)
        assert why() == f"Nothing to reformat: job `1a2b3c4d` {STATE_PHRASES[status]}; only a finished ad (done or " \
            "partial) can be cut into other formats."  # fmt: skip
        return
    assert why() is None
    assert why(busy="formats") == (
        "Job `1a2b3c4d` is already being cut into other formats; they are posted when they are done."
    )
    assert why(busy="rerender") == (
        "Job `1a2b3c4d` is being re-rendered; ask for other formats once its new ad is posted."
    )
    assert why(made=("4:5", "1:1", "16:9"), missing=()) == (
        "Job `1a2b3c4d` already has every format (4:5, 1:1, 16:9); nothing is left to make."
    )
    assert why(media_on_disk=False) == (
        "No other formats: the scenes of job `1a2b3c4d` are no longer on disk (old ads' media are deleted after a "
        "while); make a new ad in the shapes you need instead."
    )


@pytest.mark.parametrize("status", list(JobStatus))
def test_a_rerender_needs_a_finished_ad_its_media_and_no_other_rerender(status: JobStatus) -> None:
    ok = rerender_refusal("1a2b3c4d", status, media_on_disk=True, rerendering=False)
    gone = rerender_refusal("1a2b3c4d", status, media_on_disk=False, rerendering=False)
    busy = rerender_refusal("1a2b3c4d", status, media_on_disk=True, rerendering=True)
    if "rerender" not in EXPECTED[status]:  # the state's refusal comes first, whatever the files
        assert ok == gone == busy == refusal_with_rule("1a2b3c4d", status, Action.RERENDER)
        return
    assert ok is None
    assert gone == (
        "Nothing to re-render: the scenes of job `1a2b3c4d` are no longer on disk (old ads' media are deleted "
        "after a while); make a new ad instead."
    )
    assert busy == "Job `1a2b3c4d` is already being re-rendered; its new ad is posted when that one is done."
    assert (gone, busy) == (RERENDER_MEDIA_GONE.format(job_id="1a2b3c4d"), RERENDER_BUSY.format(job_id="1a2b3c4d"))


def _storyboard() -> Any:
    return asyncio.run(OfflineStoryboardPlanner().plan(AdRequest(product="A lamp")))


# -- the orchestrator refuses exactly what the table refuses -----------------------------------------------


async def _put_in_state(orch: Orchestrator, status: JobStatus) -> Job:
    job = await orch.create_job(AdRequest(product="Lumen, a desk lamp that follows the sun"), requester_id="alice")
    if status is JobStatus.PLANNING:
        return job
    await orch.plan(job)
    # A job that ran once (started_at set), in the state under test; every scene has a seed to re-roll.
    await orch.store.update(job, status=status, started_at=utcnow())
    for scene in job.scenes:
        scene.seed.status = scene.clip.status = StageStatus.DONE
        await orch.store.save_stage(scene.seed)
        await orch.store.save_stage(scene.clip)
    return job


ACTIONS: dict[Action, Callable[[Orchestrator, Job], Awaitable[object]]] = {
    Action.APPROVE: lambda o, j: o.approve(j),
    Action.EDIT: lambda o, j: o.edit_scene(j, 1, description="A warm close-up of the lamp"),
    Action.REPLAN: lambda o, j: o.plan(j, feedback="another take"),
    Action.CANCEL: lambda o, j: o.cancel(j),
    Action.RETRY: lambda o, j: o.retry_failed(j),
    Action.REROLL: lambda o, j: o.reroll_scene(j, 1, StageName.CLIP),
}
ORCH_PAIRS = [(s, a) for s in JobStatus for a in ACTIONS]


@pytest.mark.parametrize(("status", "action"), ORCH_PAIRS, ids=[f"{s.value}-{a.value}" for s, a in ORCH_PAIRS])
async def test_the_orchestrator_agrees_with_the_table(settings: Settings, status: JobStatus, action: Action) -> None:
    store = await JobStore.open(settings.db_path)
    providers = Providers(OfflineStoryboardPlanner(), ScriptedImages("seed"), ScriptedVideo("clip"))  # type: ignore[arg-type]
    orch = Orchestrator(settings, store, providers, composer=CopyComposer())  # type: ignore[arg-type]
    try:
        job = await _put_in_state(orch, status)
        try:
            result = await ACTIONS[action](orch, job)
        except InvalidRequest as exc:
            assert not allows(status, action), f"{action} refused in {status}: {exc}"
            assert str(exc) == refusal_with_rule(job.id, status, action)
            stored = await store.get(job.id)
            assert stored is not None and stored.status is status  # a refusal changes nothing
        else:
            assert allows(status, action), f"the orchestrator let {action} through in {status}"
            if isinstance(result, asyncio.Task):
                await asyncio.wait_for(result, 10)
    finally:
        await orch.shutdown()
        await store.close()

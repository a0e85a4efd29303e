"""The orchestrator with each job run as a DBOS workflow and each stage as a DBOS step.

DBOS matches a workflow's steps by position and name, so the steps of one workflow must start in an
order that does not depend on timing. A job's stages are pipelined (a clip starts when ITS seed is
ready), so they cannot be steps of one workflow. Instead (docs/durable-jobs.md):

- `jant.job` (id = the job id; a later run `<id>~<n>`) is the orchestrator's own `_run`, whose
  `_run_scenes` starts one child workflow per chain of stages — every root stage of the job and of every
  scene, in a fixed order — then waits for them in that order;
- `jant.stage_chain` (id `<run id>/<scene>/<root kind>`) runs its root stage and the stages that wait
  for it one after the other: each stage is the step `jant.stage` (the whole attempt loop of
  `run_stage`, any kind), each footage's cut the step `jant.normalise`.

A recovered step that was in flight runs again; `run_stage` then finds its stage `running` with the
prediction id stored before anything was awaited and polls that prediction instead of paying for
another. Retries are Jant's (`pipeline.retry`); DBOS step retries stay off, so they never multiply.

Workflows and steps are module functions called by DBOS with plain arguments (ids); the objects they
work on — the orchestrator and the job it is running — belong to this process, found through
`_running`, which `launch` sets before DBOS recovers anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from dbos import DBOS, SetWorkflowID
from dbos._error import DBOSAwaitedWorkflowCancelledError  # not exported by the package in 3.4

from pipeline.action_rules import Action
from pipeline.durable import engine
from pipeline.models import Job, JobStatus, Scene, StageState
from pipeline.orchestrator import Orchestrator, _check_allowed
from pipeline.stage_kinds import JOB_LEVEL_INDEX, STAGE_KINDS, dependents

log = logging.getLogger(__name__)

_KIND_ORDER = {name: n for n, name in enumerate(STAGE_KINDS)}
# How long a recovered chain waits for its job's run to load the job: the run is recovered in the same
# launch, so this only ends a chain whose run can never come (which is a bug worth an error).
_LIVE_JOB_WAIT_S = 600.0


class _Running:
    orchestrator: DurableOrchestrator | None = None


_running = _Running()


def _orchestrator() -> DurableOrchestrator:
    orch = _running.orchestrator
    if orch is None:
        raise RuntimeError("a Jant workflow ran in a process that has no durable orchestrator")
    return orch


@DBOS.workflow(name=engine.JOB_WORKFLOW)
async def job_workflow(job_id: str) -> str:
    job = await _orchestrator().run_job_workflow(job_id)
    return job.status.value


@DBOS.workflow(name="jant.stage_chain")
async def chain_workflow(job_id: str, scene_index: int, root: str) -> None:
    await _orchestrator().run_chain(job_id, scene_index, root)


@DBOS.step(name="jant.stage")
async def stage_step(job_id: str, scene_index: int, kind: str, inputs: dict[str, str]) -> str | None:
    return await _orchestrator().stage_once(job_id, scene_index, kind, inputs)


@DBOS.step(name="jant.normalise")
async def normalise_step(job_id: str, scene_index: int, kind: str, clip: str) -> str | None:
    return await _orchestrator().normalise_once(job_id, scene_index, kind, clip)


class DurableOrchestrator(Orchestrator):
    """`Orchestrator` whose job runs are DBOS workflows. Everything else (planning, approval, events,
    compose) is the parent's; only how a run is started and how its stages are sequenced differ."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._live_ready: dict[str, asyncio.Event] = {}
        # Per job: the tasks DBOS runs its run and chains in on this loop, and the run's workflow id.
        self._workflow_tasks: dict[str, set[asyncio.Task[object]]] = {}
        self._run_ids: dict[str, str] = {}

    def attach(self) -> None:
        """Make this the orchestrator the process's workflows run on (before DBOS recovers any)."""
        _running.orchestrator = self

    def detach(self) -> None:
        if _running.orchestrator is self:
            _running.orchestrator = None

    # -- starting a run --------------------------------------------------------------------------

    def start(self, job: Job) -> asyncio.Task[Job]:
        """Start the job's next run as a workflow; the task ends when the workflow does."""
        task = self._tasks.get(job.id)
        if task is not None and not task.done():
            return task
        self._jobs[job.id] = job
        task = asyncio.create_task(self._run_as_workflow(job), name=f"job-{job.id}")
        self._tasks[job.id] = task
        task.add_done_callback(lambda t: self._forget(job.id, t))
        return task

    async def _run_as_workflow(self, job: Job) -> Job:
        run_id = await engine.next_run_id(job.id)
        with SetWorkflowID(run_id):
            handle = await DBOS.start_workflow_async(job_workflow, job.id)
        try:
            await handle.get_result()
        except DBOSAwaitedWorkflowCancelledError:  # `cancel` below: the job says so itself
            pass
        return job

    async def resume_all(self) -> list[asyncio.Task[Job]]:
        """DBOS recovers this worker's runs at launch: starting them here too would run them twice."""
        return []

    async def run_job_workflow(self, job_id: str) -> Job:
        """The body of `jant.job`: the job this process started, or (recovered) the stored one."""
        job = self._jobs.get(job_id)
        recovered = job is None
        if job is None:
            job = await self.store.get(job_id)
            if job is None:
                raise RuntimeError(f"job {job_id} has a workflow but no row in the database")
            if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.COMPOSING):
                return job  # it ended outside this run (a cancel that stopped before DBOS heard of it)
            self._jobs[job_id] = job
            if job.started_at is not None:  # else it is a queued job's first run (`--no-worker`), not a recovery
                log.info("job %s recovered by DBOS", job_id)
                await self.store.event(job, "resumed", detail="dbos")
        run_id = DBOS.workflow_id
        assert run_id is not None
        self._run_ids[job_id] = run_id
        task = asyncio.current_task()
        if task is not None:  # how `cancel` tells the run from its chains
            task.set_name(f"dbos-run-{job_id}")
        try:
            async with self._tracked(job_id):
                return await self._run(job)
        finally:
            self._live_ready.pop(job_id, None)
            self._run_ids.pop(job_id, None)
            if recovered:
                self._jobs.pop(job_id, None)

    @contextlib.asynccontextmanager
    async def _tracked(self, job_id: str) -> AsyncIterator[None]:
        """Keep the task DBOS runs this workflow in, so a cancel or a shutdown can stop it."""
        task = asyncio.current_task()
        assert task is not None
        tasks = self._workflow_tasks.setdefault(job_id, set())
        tasks.add(task)
        try:
            yield
        finally:
            tasks.discard(task)
            if not tasks:
                self._workflow_tasks.pop(job_id, None)

    # -- the chains ------------------------------------------------------------------------------

    async def _run_scenes(self, job: Job, scenes: list[Scene]) -> None:
        """One child workflow per root stage of the job and of EVERY scene, started in a fixed order
        whatever was finished before (a recovery must start the same children in the same places);
        each chain decides from the stored state whether it has anything to do."""
        assert job.storyboard is not None
        run_id = DBOS.workflow_id
        assert run_id is not None, "a durable run's scenes are run inside its workflow"
        roots = [(JOB_LEVEL_INDEX, st.stage) for st in self._ordered_roots(job.job_stages)]
        for scene in job.storyboard.scenes:
            roots += [(scene.index, st.stage) for st in self._ordered_roots(job.scene(scene.index).stages)]
        self._live_ready.setdefault(job.id, asyncio.Event()).set()
        handles = []
        for index, root in roots:
            with SetWorkflowID(f"{run_id}/{index}/{root}"):
                handles.append(await DBOS.start_workflow_async(chain_workflow, job.id, index, root))
        for handle in handles:  # in order: the waits are steps of this workflow too
            await handle.get_result()

    @classmethod
    def _ordered_roots(cls, stages: Mapping[str, StageState]) -> list[StageState]:
        return sorted(cls._roots(stages), key=lambda st: _KIND_ORDER.get(st.stage, len(_KIND_ORDER)))

    async def run_chain(self, job_id: str, scene_index: int, root: str) -> None:
        """The body of `jant.stage_chain`: the root stage, then the stages that wait for it, in order."""
        job = await self._live_job(job_id)
        scene = None if scene_index == JOB_LEVEL_INDEX else self._scene_of(job, scene_index)
        stages = job.job_stages if scene is None else job.scene(scene_index).stages
        stage = stages.get(root)
        if stage is None:
            return
        if scene is not None and job.scene(scene_index).done and (stage.status.is_terminal or not stage.kind.optional):
            return  # finished before this run (or by the run being recovered): as the local engine skips it
        async with self._tracked(job_id):
            await self._run_from(job, stage, scene)

    async def _run_from(
        self, job: Job, stage: StageState, scene: Scene | None = None, inputs: Mapping[str, Path] | None = None
    ) -> None:
        """As the parent's, with each stage and each cut a step, and the stages that wait for `stage`
        run one after the other (side by side, their steps would take places in timing order)."""
        inputs = dict(inputs or {})
        siblings = job.job_stages if scene is None else job.scene(scene.index).stages
        waiting = [siblings[k.name] for k in dependents(stage.stage) if k.name in siblings]
        made = await stage_step(job.id, stage.scene_index, stage.stage, {k: str(v) for k, v in inputs.items()})
        path = Path(made) if made is not None else None
        if stage.stage in ("voice", "music"):
            await self._audio_ready(job)
        if path is not None and stage.kind.footage and scene is not None:
            cut = await normalise_step(job.id, scene.index, stage.stage, str(path))
            path = Path(cut) if cut is not None else None
        if path is None:
            for later in waiting:
                await self._skip(job, later, f"its {stage.kind.noun} failed")
            return
        inputs[stage.stage] = path
        for later in waiting:
            await self._run_from(job, later, scene, inputs)

    # -- the steps' bodies -----------------------------------------------------------------------

    async def stage_once(self, job_id: str, scene_index: int, kind: str, inputs: Mapping[str, str]) -> str | None:
        job = await self._live_job(job_id)
        await self._step_ran(job, "jant.stage", scene_index, kind)
        scene = None if scene_index == JOB_LEVEL_INDEX else self._scene_of(job, scene_index)
        stage = job.job_stages[kind] if scene is None else job.scene(scene_index).stages[kind]
        path = await self.run_stage(job, stage, scene, {k: Path(v) for k, v in inputs.items()})
        return str(path) if path is not None else None

    async def normalise_once(self, job_id: str, scene_index: int, kind: str, clip: str) -> str | None:
        job = await self._live_job(job_id)
        await self._step_ran(job, "jant.normalise", scene_index, kind)
        stage = job.scene(scene_index).stages[kind]
        cut = await self._normalise(job, self._scene_of(job, scene_index), stage, Path(clip))
        return str(cut) if cut is not None else None

    async def _step_ran(self, job: Job, step: str, scene_index: int, kind: str) -> None:
        """One event per execution of a step (a replayed step does not run, so it leaves none): how an
        operator, and the tests, see that no finished step ran twice, and which ones a recovery re-ran."""
        await self.store.event(
            job, "dbos_step", scene_index=scene_index, stage=kind, detail=f"{step} {DBOS.workflow_id}"
        )

    async def _live_job(self, job_id: str) -> Job:
        """The job object its run works on. A recovered chain can start before its recovered run has
        loaded the job: it waits for the run, so both share one object (and one store of truth)."""
        ready = self._live_ready.setdefault(job_id, asyncio.Event())
        async with asyncio.timeout(_LIVE_JOB_WAIT_S):
            await ready.wait()
        return self._jobs[job_id]

    @staticmethod
    def _scene_of(job: Job, index: int) -> Scene:
        assert job.storyboard is not None
        return job.storyboard.scenes[index - 1]

    # -- stopping --------------------------------------------------------------------------------

    async def cancel(self, job: Job, *, by: str | None = None) -> Job:
        """Stop a running job as the local engine does (its predictions cancelled, what is finished
        kept), and cancel its workflows in DBOS so that no launch recovers them."""
        run_id = self._run_ids.get(job.id)
        tasks = self._workflow_tasks.get(job.id, set())
        run_task = next((t for t in tasks if t.get_name() == f"dbos-run-{job.id}"), None)
        if run_id is None or run_task is None:
            return await super().cancel(job, by=by)
        live = self._jobs.get(job.id, job)
        _check_allowed(live, Action.CANCEL)
        self._user_cancelled.add(job.id)
        run_task.cancel()  # its `_after_cancel` stops the chains, then cancels what is still paid for
        await asyncio.gather(run_task, return_exceptions=True)
        for workflow_id in await self._workflow_ids(run_id):
            await DBOS.cancel_workflow_async(workflow_id)
        await self.store.event(live, "cancelled", detail=by)
        return live

    async def _after_cancel(self, job: Job) -> None:
        """The run was cancelled: its chains run in tasks of their own (a child workflow is not cancelled
        with its parent), so they are stopped first — a chain still polling would otherwise record the
        cancelled prediction as a failure after the stage was marked cancelled."""
        me = asyncio.current_task()
        chains = [t for t in self._workflow_tasks.get(job.id, ()) if t is not me and not t.done()]
        for t in chains:
            t.cancel()
        await asyncio.gather(*chains, return_exceptions=True)
        await super()._after_cancel(job)

    async def _workflow_ids(self, run_id: str) -> list[str]:
        """The run and its chains (the chains' ids start with the run's and a "/")."""
        chains = await DBOS.list_workflows_async(workflow_id_prefix=f"{run_id}/", load_input=False, load_output=False)
        return [run_id, *(w.workflow_id for w in chains)]

    async def shutdown(self, grace_s: float = 8.0) -> None:
        """Stop the runs on this loop without cancelling predictions: their workflows stay PENDING for
        the next launch with this worker id to recover."""
        running = [t for tasks in self._workflow_tasks.values() for t in tasks if not t.done()]
        for t in running:
            t.cancel()
        if running:
            await asyncio.wait(running, timeout=grace_s)
        await super().shutdown(grace_s)

"""The orchestrator with each job run as a DBOS workflow and each paid action as a DBOS step.

DBOS matches a workflow's steps by position and name, so the steps of one workflow must start in an
order that does not depend on timing. A job's stages are pipelined (a clip starts when ITS seed is
ready), so they cannot be steps of one workflow. Instead (docs/durable-jobs.md):

- `jant.job` (id = the job id; a later run `<id>~<n>`) is the orchestrator's own `_run`: its
  `_run_chains` starts one child workflow per chain of stages — every root stage of the job and of
  every scene, in a fixed order, due or not — then waits for them in that order; its last steps are
  the end of the run, one per part: `jant.master` (mix, join, contact sheet), `jant.formats`,
  `jant.hooks`, `jant.finished` (the job's status);
- `jant.stage_chain` (id `<run id>/<scene>/<root kind>`) runs its root stage and the stages that wait
  for it one after the other. Each attempt at a stage is the step `jant.create` (POST the prediction,
  record its id; nothing awaited but the POST) then the step `jant.wait` (poll it to its end and
  download: only reads, safe to run twice); between attempts the chain sleeps durably. A footage's
  cut is the step `jant.normalise`.

A restart between create and wait replays the create from DBOS and waits for the recorded prediction;
a restart inside a create finds the stage running with its prediction id (stored before anything was
awaited) and waits for that one instead of paying for another. Retries are Jant's (`pipeline.retry`,
the orchestrator's own attempt loop, now in the chain's workflow); DBOS step retries stay off, so the
two never multiply.

Workflow code replays on recovery, so it decides only on what its steps returned (and on inputs DBOS
recorded at the first start): every read of Jant's own state that picks a branch happens in a step.

Workflows and steps are module functions called by DBOS with plain arguments (ids); the objects they
work on — the orchestrator and the job it is running — belong to this process, found through
`_running`, which `launch` sets before DBOS recovers anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

from dbos import DBOS, SetWorkflowID, WorkflowHandleAsync
from dbos._error import (  # not exported by the package in 3.4
    DBOSAwaitedWorkflowCancelledError,
    DBOSWorkflowCancelledError,
    DBOSWorkflowConflictIDError,
)

from pipeline.durable import engine
from pipeline.errors import InvalidRequest
from pipeline.limiter import FairLimiter
from pipeline.models import Job, JobStatus, Scene, StageState, StageStatus
from pipeline.orchestrator import FinishedMaster, Orchestrator, StageChain
from pipeline.providers.base import AttemptStep
from pipeline.stage_attempt import AttemptOutcome
from pipeline.stage_kinds import JOB_LEVEL_INDEX
from pipeline.task_stop import cancel_and_wait

log = logging.getLogger(__name__)

# How long a recovered chain waits for its job's run to load the job: the run is recovered in the same
# launch, so this only ends a chain whose run can never come (which is a bug worth an error).
_LIVE_JOB_WAIT_S = 600.0
# How often a worker looks for cancels asked from other processes, while it runs jobs.
CANCEL_POLL_S = 0.5
# Every this many polls, it also asks DBOS whether one of its runs was cancelled there directly.
DBOS_CANCEL_CHECK_EVERY = 4

Record = dict[str, str | float | None]


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
async def chain_workflow(job_id: str, scene_index: int, root: str, due: bool) -> None:
    await _orchestrator().run_chain_workflow(job_id, StageChain(scene_index, root, due))


@DBOS.step(name="jant.create")
async def create_step(job_id: str, scene_index: int, kind: str, inputs: dict[str, str], first: bool) -> Record:
    return await _orchestrator().attempt_step(job_id, scene_index, kind, inputs, AttemptStep.CREATE, first=first)


@DBOS.step(name="jant.wait")
async def wait_step(job_id: str, scene_index: int, kind: str, inputs: dict[str, str], prediction_id: str) -> Record:
    return await _orchestrator().attempt_step(
        job_id, scene_index, kind, inputs, AttemptStep.WAIT, prediction_id=prediction_id
    )


@DBOS.step(name="jant.normalise")
async def normalise_step(job_id: str, scene_index: int, kind: str, clip: str) -> str | None:
    return await _orchestrator().normalise_once(job_id, scene_index, kind, clip)


@DBOS.step(name="jant.master")
async def master_step(job_id: str) -> dict[str, str | int | None] | None:
    return await _orchestrator().master_once(job_id)


@DBOS.step(name="jant.formats")
async def formats_step(job_id: str, master: dict[str, str | int | None]) -> None:
    await _orchestrator().formats_once(job_id, master)


@DBOS.step(name="jant.hooks")
async def hooks_step(job_id: str, master: dict[str, str | int | None]) -> None:
    await _orchestrator().hooks_once(job_id, master)


@DBOS.step(name="jant.finished")
async def finished_step(job_id: str, master: dict[str, str | int | None]) -> None:
    await _orchestrator().finished_once(job_id, master)


class DurableOrchestrator(Orchestrator):
    """`Orchestrator` whose job runs are DBOS workflows. Everything else (planning, approval, events,
    the stages' own work, compose) is the parent's: this class only fills in its hooks — how a run is
    started and stopped, how chains are started, how an attempt, a cut and the end of a run execute."""

    # A chain's steps must start in an order that does not depend on timing (the module's docstring).
    _dependents_side_by_side = False

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._live_ready: dict[str, asyncio.Event] = {}
        # Per job: the tasks DBOS runs its run and chains in on this loop, and the run's workflow id.
        self._workflow_tasks: dict[str, set[asyncio.Task[object]]] = {}
        self._run_ids: dict[str, str] = {}
        # Per stage (job, scene, kind): the prediction slot its create step took, for its wait step.
        self._handed_over: dict[tuple[str, int, str], FairLimiter] = {}
        # Per job: what a chain raised and the chain's workflow id, for its run to raise (`_chain_crashed`).
        self._chain_crashes: dict[str, tuple[Exception, str]] = {}
        # Watches for cancels asked from other processes while runs are on this one (`_watch_cancels`).
        self._cancel_watch: asyncio.Task[None] | None = None
        self._cancels_answered: set[int] = set()  # the ids of the requests it has acted on
        self._stopping = False  # `shutdown` has begun

    def attach(self) -> None:
        """Make this the orchestrator the process's workflows run on (before DBOS recovers any)."""
        _running.orchestrator = self

    def detach(self) -> None:
        if _running.orchestrator is self:
            _running.orchestrator = None

    # -- starting a run --------------------------------------------------------------------------

    def _execute(self, job: Job) -> Coroutine[Any, Any, Job]:
        return self._run_as_workflow(job)

    async def _run_as_workflow(self, job: Job) -> Job:
        """Start the job's next run as a workflow; ends when the workflow does."""
        try:
            run_id = await engine.next_run_id(job.id)
        except asyncio.CancelledError:  # stopped before its workflow began: nothing else would say so
            await self._after_cancel(job)
            raise
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
        self._start_cancel_watch()
        task = asyncio.current_task()
        if task is not None:  # how `_stop_run` tells the run from its chains
            task.set_name(f"dbos-run-{job_id}")
        try:
            async with self._tracked(job_id):
                return await self._run(job)
        except (DBOSWorkflowCancelledError, DBOSWorkflowConflictIDError) as exc:
            # Cancelled in DBOS, seen at one of the run's own steps before the watcher saw it: Jant's cancel.
            # DBOS may say so as a lost ownership instead (its cancel takes the run from this execution; the
            # error is a BaseException, past every `except Exception` on its way here): a cancel only when
            # the run's status says so — otherwise another execution owns the run now, and its outcome is
            # the run's.
            if isinstance(exc, DBOSWorkflowConflictIDError) and not await _cancelled_in_dbos(run_id):
                raise
            if job.status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.COMPOSING):
                await self._stop_chains(job_id)
                self._user_cancelled.add(job_id)
                await self._after_cancel(job)
                await self.store.event(job, "cancelled", detail="dbos")
            # The chains too (a cancel in DBOS may have named the run alone), as `_stop_run` does: none
            # is left pending for a later launch to recover.
            await _cancel_in_dbos(run_id)
            raise
        finally:
            self._live_ready.pop(job_id, None)
            self._run_ids.pop(job_id, None)
            self._chain_crashes.pop(job_id, None)
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

    async def _end_run(self, job: Job) -> None:
        """The parts of `_finish`, each a step, always all four in this order (a replay matches them by
        position): a crash during the formats replays the master from DBOS and makes the formats again."""
        master = await master_step(job.id)
        if master is None:  # the job ended there (no scene, or the join failed)
            return
        await formats_step(job.id, master)
        await hooks_step(job.id, master)
        await finished_step(job.id, master)

    # -- the chains ------------------------------------------------------------------------------

    async def _run_chains(self, job: Job, chains: Sequence[StageChain]) -> None:
        """One child workflow per chain, due or not, started in the parent's fixed order (a recovery must
        start the same children in the same places); `due` is the child's input, recorded at its first
        start, so a replay decides as the first run did. The children's results are awaited in order:
        those waits are operations of this workflow too.

        As the local engine's chains run together, a chain that raises stops the others at once
        (`_chain_crashed`, not when its turn in the ordered waits comes), and none of them is left
        pending for a later launch to recover and pay for."""
        run_id = DBOS.workflow_id
        assert run_id is not None, "a durable run's chains are started inside its workflow"
        self._live_ready.setdefault(job.id, asyncio.Event()).set()
        chain_ids = [f"{run_id}/{c.scene_index}/{c.root}" for c in chains]
        try:
            handles = await self._start_chains(job, chains, chain_ids)
            for handle in handles:
                await handle.get_result()
        except asyncio.CancelledError:
            crash = self._chain_crashes.pop(job.id, None)
            await self._stop_chains(job.id)
            if crash is None:  # a cancel (`_stop_run` tells DBOS) or a shutdown (the chains stay pending)
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # the cancel only carried the crash here
            exc, crashed = crash
            # The chain that raised is left to end ERROR in DBOS (it is recording that now).
            await DBOS.cancel_workflows_async([i for i in chain_ids if i != crashed])
            raise exc from None
        except DBOSAwaitedWorkflowCancelledError:
            # A chain was cancelled in DBOS before the watcher saw its run cancelled (`_answer_dbos_cancels`):
            # the job ends as a cancel (its `_run` does the rest), not as a crash.
            await self._stop_chains(job.id)
            self._user_cancelled.add(job.id)
            raise asyncio.CancelledError from None
        except Exception:
            await self._stop_chains(job.id)
            await DBOS.cancel_workflows_async(chain_ids)
            raise

    async def _start_chains(
        self, job: Job, chains: Sequence[StageChain], chain_ids: Sequence[str]
    ) -> list[WorkflowHandleAsync[None]]:
        """Start the chains side by side, numbered in the given order all the same. A start is two round
        trips to DBOS's system database, each through a thread: one after the other, a job's last chain
        began its first stage seven starts after its run. DBOS gives a child workflow its place among the
        parent's operations (its function id) in the synchronous part of `start_workflow_async`, before
        the first await, and tasks take their first steps in the order they were made: so the places
        follow `chains`, whatever order the database answers in. (tests/test_durable_engine.py checks
        the places of a run's chains.)"""

        async def start(chain: StageChain, chain_id: str) -> WorkflowHandleAsync[None]:
            with SetWorkflowID(chain_id):
                return await DBOS.start_workflow_async(chain_workflow, job.id, chain.scene_index, chain.root, chain.due)

        starts = [asyncio.create_task(start(c, i)) for c, i in zip(chains, chain_ids, strict=True)]
        try:
            return list(await asyncio.gather(*starts))
        except BaseException:  # none left starting behind the caller's cancel of the chains
            for task in starts:
                task.cancel()
            await asyncio.gather(*starts, return_exceptions=True)
            raise

    def _chain_crashed(self, job_id: str, exc: Exception) -> None:
        """A chain of the job's run raised (in its workflow): the run is told now, by cancelling its task
        with the crash left for its `_run_chains` to raise instead of the cancel."""
        run_task = self._run_task(job_id)
        chain_id = DBOS.workflow_id
        if run_task is not None and not run_task.done() and job_id not in self._chain_crashes and chain_id:
            self._chain_crashes[job_id] = (exc, chain_id)
            run_task.cancel()

    def _run_task(self, job_id: str) -> asyncio.Task[object] | None:
        return next((t for t in self._workflow_tasks.get(job_id, ()) if t.get_name() == f"dbos-run-{job_id}"), None)

    async def _stop_chains(self, job_id: str) -> None:
        """The run's chains run in tasks of their own (a child workflow is not cancelled with its parent):
        stop them before the run's `_after_cancel` marks their stages, or a chain still polling would
        record a cancelled prediction as a failure."""
        me = asyncio.current_task()
        chains = [t for t in self._workflow_tasks.get(job_id, ()) if t is not me and not t.done()]
        for t in chains:
            t.cancel()
        await asyncio.gather(*chains, return_exceptions=True)

    async def run_chain_workflow(self, job_id: str, chain: StageChain) -> None:
        """The body of `jant.stage_chain`: the parent's `_run_chain`, when it is due."""
        async with self._tracked(job_id):
            job = await self._live_job(job_id)
            if not chain.due:
                return
            try:
                await self._run_chain(job, chain)
            except Exception as exc:
                self._chain_crashed(job_id, exc)
                raise

    # -- one attempt: a create step, then a wait step --------------------------------------------

    async def _stage_attempt(
        self, job: Job, stage: StageState, scene: Scene | None, inputs: Mapping[str, Path], *, first: bool
    ) -> AttemptOutcome:
        """The create step; when it created a prediction, the wait step for it. A stage made without a
        prediction (offline, OpenAI's voice) is made in its create step: it has no wait."""
        args = (job.id, stage.scene_index, stage.stage, {k: str(v) for k, v in inputs.items()})
        try:
            outcome = AttemptOutcome.from_record(await create_step(*args, first))
            if outcome.created is not None:
                outcome = AttemptOutcome.from_record(await wait_step(*args, outcome.created))
            return outcome
        finally:  # stopped between the two: the slot the create handed on has no wait to give it back
            limiter = self._handed_over.pop(_slot_key(stage), None)
            if limiter is not None:
                limiter.release()

    async def _backoff(self, seconds: float) -> None:
        await DBOS.sleep_async(seconds)  # a restart during the wait sleeps only what is left of it

    @contextlib.asynccontextmanager
    async def _attempt_slot(self, job: Job, stage: StageState, step: AttemptStep) -> AsyncIterator[None]:
        """A prediction holds its slot from its POST to the end of its wait, as in one attempt on the
        local engine: the create step hands its slot on to the wait step. A wait step given none (its
        create ran before a restart) takes one."""
        key = _slot_key(stage)
        limiter = self._handed_over.pop(key, None)
        if limiter is None:
            limiter = self.slots[stage.kind.slots]
            await limiter.acquire(job.requester_id or "")
        keep = False
        try:
            yield
            # Still running when its create step ends: a prediction to wait for.
            keep = step is AttemptStep.CREATE and stage.status is StageStatus.RUNNING
        finally:
            if keep:
                self._handed_over[key] = limiter
            else:
                limiter.release()

    async def _normalise_footage(self, job: Job, scene: Scene, stage: StageState, clip_path: Path) -> Path | None:
        cut = await normalise_step(job.id, scene.index, stage.stage, str(clip_path))
        return Path(cut) if cut is not None else None

    # -- the steps' bodies -----------------------------------------------------------------------

    async def attempt_step(
        self,
        job_id: str,
        scene_index: int,
        kind: str,
        inputs: Mapping[str, str],
        step: AttemptStep,
        *,
        first: bool = True,
        prediction_id: str | None = None,
    ) -> Record:
        job = await self._live_job(job_id)
        # The step's event queues beside the attempt's first writes instead of before them: one write
        # fewer between a seed's end and its clip's POST. It is in before the step ends (so before DBOS
        # records the step): a step that ended has its event.
        ran = asyncio.ensure_future(self._step_ran(job, f"jant.{step.value}", scene_index, kind))
        try:
            scene = None if scene_index == JOB_LEVEL_INDEX else self._scene_of(job, scene_index)
            stage = job.job_stages[kind] if scene is None else job.scene(scene_index).stages[kind]
            paths = {k: Path(v) for k, v in inputs.items()}
            outcome = await self._attempt(job, stage, scene, paths, first=first, step=step, prediction_id=prediction_id)
        except BaseException:
            await asyncio.gather(ran, return_exceptions=True)  # the write is shielded: it lands anyway
            raise
        await ran
        return outcome.record()

    async def normalise_once(self, job_id: str, scene_index: int, kind: str, clip: str) -> str | None:
        job = await self._live_job(job_id)
        await self._step_ran(job, "jant.normalise", scene_index, kind)
        stage = job.scene(scene_index).stages[kind]
        cut = await self._normalise(job, self._scene_of(job, scene_index), stage, Path(clip))
        return str(cut) if cut is not None else None

    # The end of a run, one step per part (`_end_run`): each writes whole files (a temporary file renamed
    # over the old) and records them on the job, so a part stopped half-way is simply done again.

    async def master_once(self, job_id: str) -> dict[str, str | int | None] | None:
        job = await self._live_job(job_id)
        await self._step_ran(job, "jant.master")
        master = await self._finish_master(job)
        return master.record() if master is not None else None

    async def formats_once(self, job_id: str, master: Mapping[str, str | int | None]) -> None:
        job = await self._live_job(job_id)
        await self._step_ran(job, "jant.formats")
        await self._finish_formats(job, FinishedMaster.from_record(master))

    async def hooks_once(self, job_id: str, master: Mapping[str, str | int | None]) -> None:
        job = await self._live_job(job_id)
        await self._step_ran(job, "jant.hooks")
        await self._finish_hooks(job, FinishedMaster.from_record(master))

    async def finished_once(self, job_id: str, master: Mapping[str, str | int | None]) -> None:
        job = await self._live_job(job_id)
        await self._step_ran(job, "jant.finished")
        await self._finish_job(job, FinishedMaster.from_record(master))

    async def _step_ran(self, job: Job, step: str, scene_index: int | None = None, kind: str | None = None) -> None:
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
        job = self._jobs.get(job_id)
        if job is None:
            if self._stopping:
                # A shutdown stops the job's task and its workflows' tasks together, in no set order: the
                # job can be let go of while a chain is between two steps. The chain stops as a shutdown
                # stops any step, PENDING for the next launch — not with an error DBOS would record as
                # the chain's outcome, which failed the job once recovered.
                raise asyncio.CancelledError
            raise RuntimeError(f"job {job_id} has a workflow running here but is not loaded in this process")
        return job

    @staticmethod
    def _scene_of(job: Job, index: int) -> Scene:
        assert job.storyboard is not None
        return job.storyboard.scenes[index - 1]

    # -- stopping --------------------------------------------------------------------------------

    async def _stop_run(self, job: Job) -> bool:
        """Stop the run as the local engine does (its `_after_cancel` cancels the predictions, keeps what
        is finished), then cancel it and its chains in DBOS, so that no launch recovers them."""
        run_id = self._run_ids.get(job.id)
        run_task = self._run_task(job.id)
        if run_id is None or run_task is None:  # its workflow has not begun (or is not on this process)
            return await super()._stop_run(job)
        run_task.cancel()  # its `_run_chains` stops the chains first
        await asyncio.gather(run_task, return_exceptions=True)
        await DBOS.cancel_workflow_async(run_id, cancel_children=True)
        return True

    # -- a cancel asked from another process ----------------------------------------------------

    def _start_cancel_watch(self) -> None:
        if self._cancel_watch is None or self._cancel_watch.done():
            # A context of its own: started from a run, it would inherit the run's DBOS context, and its
            # DBOS calls (list, cancel) would be recorded as operations of that workflow.
            self._cancel_watch = asyncio.create_task(
                self._watch_cancels(), name="cancel-watch", context=contextvars.Context()
            )

    async def _watch_cancels(self) -> None:
        """While runs are on this process, look for cancel requests on their jobs (the event a front end
        that runs no job records: `QueuedOrchestrator.cancel`) and answer each as a local cancel: the
        same `cancel` a Cancel button of this process calls. One indexed read per poll; none when idle."""
        polls = 0
        while self._run_ids:
            try:
                await self._answer_cancel_requests()
                if polls % DBOS_CANCEL_CHECK_EVERY == 0:
                    await self._answer_dbos_cancels()
            except asyncio.CancelledError:
                raise
            except Exception:  # a busy database, say: the next poll tries again
                log.exception("could not read the cancel requests of the jobs running here")
            polls += 1
            await asyncio.sleep(CANCEL_POLL_S)

    async def _answer_cancel_requests(self) -> None:
        requests = await self.store.repo.events_of_kind(engine.CANCEL_REQUESTED, sorted(self._run_ids))
        for request in requests:
            job_id, event_id = str(request["job_id"]), int(request["id"])
            run_id, by = engine.parse_cancel_request(request["detail"])
            # A request names its run: one left from an earlier run of the job (it came too late) is not this one's.
            if event_id in self._cancels_answered or self._run_ids.get(job_id) != run_id:
                continue
            self._cancels_answered.add(event_id)
            job = self._jobs.get(job_id)
            if job is None:
                continue
            log.info("job %s: cancel of run %s asked from another process (by %s)", job_id, run_id, by)
            try:
                await self.cancel(job, by=by)
            except InvalidRequest as exc:  # it ended meanwhile (finished first): the asker reads the job's end
                log.info("job %s: not cancelled: %s", job_id, exc.user_message)

    async def _answer_dbos_cancels(self) -> None:
        """A run cancelled in DBOS without a request (an operator's DBOS tooling, a front end that gave up
        waiting): DBOS would only stop it at its chains' next steps, with nothing cancelled on Replicate
        and the job left running. Cancel it as Jant's own cancel does."""
        runs = await DBOS.list_workflows_async(
            workflow_ids=sorted(self._run_ids.values()), status="CANCELLED", load_input=False, load_output=False
        )
        for run in runs:
            job_id = engine.job_of(run.workflow_id)
            job = self._jobs.get(job_id)
            if job is None or self._run_ids.get(job_id) != run.workflow_id:
                continue
            log.warning("job %s: its run %s was cancelled in DBOS; cancelling the job", job_id, run.workflow_id)
            try:
                await self.cancel(job, by="dbos")
            except InvalidRequest as exc:
                log.info("job %s: not cancelled: %s", job_id, exc.user_message)

    async def shutdown(self, grace_s: float = 8.0) -> None:
        self._stopping = True
        await cancel_and_wait(self._cancel_watch)
        self._cancel_watch = None
        await super().shutdown(grace_s)

    def _stoppable_tasks(self) -> list[asyncio.Task[Any]]:
        """A shutdown stops the runs on this loop without cancelling predictions: their workflows stay
        PENDING for the next launch with this worker id to recover."""
        return [*(t for tasks in self._workflow_tasks.values() for t in tasks), *super()._stoppable_tasks()]


async def _outside_workflow(call: Coroutine[Any, Any, Any]) -> Any:
    """Await a DBOS call from a task with an empty context. From the workflow's own, the call would be an
    operation of that workflow — which, cancelled, DBOS answers by raising."""
    return await asyncio.create_task(call, context=contextvars.Context())


async def _cancelled_in_dbos(run_id: str) -> bool:
    """Whether DBOS has the run CANCELLED (False when it cannot say)."""
    try:
        status = await _outside_workflow(DBOS.get_workflow_status_async(run_id))
    except Exception:
        log.warning("could not read the status of run %s in DBOS", run_id, exc_info=True)
        return False
    return status is not None and status.status == "CANCELLED"


async def _cancel_in_dbos(run_id: str) -> None:
    """Cancel the run and its chains in DBOS (a cancelled one stays cancelled)."""
    try:
        await _outside_workflow(DBOS.cancel_workflow_async(run_id, cancel_children=True))
    except Exception:
        log.warning("could not cancel the chains of run %s in DBOS", run_id, exc_info=True)


def _slot_key(stage: StageState) -> tuple[str, int, str]:
    return (stage.job_id, stage.scene_index, stage.stage)

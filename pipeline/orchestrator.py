"""Runs ad jobs: plan → approval → every stage as soon as what it waits for is ready → compose.

The stages are data (`pipeline.stage_kinds`): per scene seed → clip (→ normalise), and whatever
other kinds have a provider, each run by the one `run_stage` path. Knows nothing of Discord or
terminals: front ends subscribe to the `EventBus`. Every state change is written through `JobStore`
before the next step starts, and every paid step is keyed by (job, scene, stage, attempt), so a
restarted process resumes instead of paying twice.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline import final_versions
from pipeline.action_rules import (
    FORMATS_BUSY,
    FORMATS_LOCKED,
    RERENDER_BUSY,
    RERENDER_WHILE_FORMATS,
    Action,
    formats_refusal,
    refusal_with_rule,
    rerender_refusal,
)
from pipeline.atomic_files import replace_durably
from pipeline.audio_mix import AUDIO_BITRATE
from pipeline.brand import BrandKit
from pipeline.captions import uncovered_scripts
from pipeline.composer import Composer, ComposeResult, target_bitrate
from pipeline.config import Settings
from pipeline.cost_estimate import prediction_cost_usd, stages_cost_usd
from pipeline.early_formats import EARLY_CUTS_AT_ONCE, EarlyFormatCuts
from pipeline.end_card import end_card_seconds
from pipeline.errors import InvalidRequest, JantError, PlannerError
from pipeline.events import EventBus, EventKind, ProgressEvent, snapshot
from pipeline.format_choice import choice_problem, formats_on_disk, in_table_order
from pipeline.formats import FORMATS, FormatResult, SceneSource, extra_formats, not_made_prefix, render_formats
from pipeline.hook_variants import HOOK_NOTE_PREFIX, hook_final_name, variant_job, variant_problem
from pipeline.incidents import is_unexplained, report_unexpected
from pipeline.job_choices import BRAND_NO_MUSIC_NOTE, NO_MUSIC, job_choices
from pipeline.limiter import FairLimiter
from pipeline.logo_file import missing_logo_note
from pipeline.models import (
    AdRequest,
    Job,
    JobStatus,
    Scene,
    SceneState,
    SceneTiming,
    StageState,
    StageStatus,
    Storyboard,
    hook_letter,
    storyboard_problem,
    utcnow,
)
from pipeline.progress_writer import ProgressWriter
from pipeline.providers.base import (
    AttemptStep,
    PredictionCreated,
    PredictionIntent,
    Providers,
    StageContext,
    StageProvider,
    StageResult,
)
from pipeline.quotas import ACTIVE, QuotaLimits, check_concurrent, check_daily, day_window
from pipeline.retry import RetryPolicy, classify
from pipeline.soundtrack import (
    caption_words,
    fit_timing,
    make_soundtrack,
    soundtrack_key,
    spoken_length,
    voice_settled,
    voice_stage,
)
from pipeline.spend_caps import SpendCaps
from pipeline.stage_attempt import AttemptOutcome
from pipeline.stage_kinds import (
    JOB_LEVEL_INDEX,
    PHOTO_SEED,
    STAGE_KINDS,
    StageInputs,
    StageName,
    dependents,
    kind_of,
    spoken_language,
)
from pipeline.store import JobStore
from pipeline.video_models import (
    VideoModel,
    VideoModelChoiceError,
    allowed_models,
    choose_video_model,
    video_model,
    video_registry,
)
from pipeline.video_scenes import clip_length_problem, fit_storyboard_to_clips
from pipeline.voice_choice import check_brand_voice, check_voice_choice

log = logging.getLogger(__name__)

_PROGRESS_PERSIST_STEP = 10.0  # persist progress every 10 points; events go out on every report


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one; a unique temporary name keeps two
    writers (an edit and a re-plan) from sharing one. Inline until the shared atomic-write helper
    (issue 11 item 7) is on main: then call that instead."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _link_or_copy(src: Path, dest: Path) -> None:
    """`dest` becomes the same file as `src` (a hard link; a copy where links are not possible)."""
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def _move_hook_finals(scratch: Path, directory: Path) -> None:
    """A re-render's hook versions replace the old ones (each a whole file, old or new)."""
    for path in sorted(scratch.glob("final-hook-*.mp4")):
        replace_durably(path, directory / path.name)


async def _together(*work: Awaitable[Any]) -> list[Any]:
    """Run side by side. The first exception stops the others (and waits for them to stop) before it
    is raised, so no stage goes on paying for a job that has already failed."""
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _rerolled(stages: Mapping[str, StageState], part: str) -> list[str]:
    """A re-roll of `part` makes it again and every stage that waits for it, however deep."""
    again = [part]
    for kind in again:
        again += [k.name for k in dependents(kind) if k.name in stages and k.name not in again]
    return again


def _check_allowed(job: Job, action: Action) -> None:
    if why := refusal_with_rule(job.id, job.status, action):
        raise InvalidRequest(why)


def _uncovered_note(job: Job) -> str | None:
    """Once per job: the scripts in its text that the bundled caption fonts cannot draw."""
    assert job.storyboard is not None
    text = " ".join(t for s in job.storyboard.scenes for t in (s.voiceover, s.on_screen_text) if t)
    scripts = uncovered_scripts(text)
    if not scripts:
        return None
    return f"Captions leave out the {', '.join(scripts)} characters: the bundled fonts cannot draw them."


def _seconds(job: Job, index: int) -> float:
    """Scene `index`'s length in the ad: as fitted to its voice, else as planned."""
    assert job.storyboard is not None
    return job.timing.durations[index - 1] if job.timing else job.storyboard.scenes[index - 1].duration


def _ad_waits_only_on(job: Job, index: int) -> bool:
    """True when every other scene has its footage or has failed: the finished ad waits on this one."""
    return all(s.index == index or s.failed or s.footage_made for s in job.scenes)


_KIND_ORDER = {name: n for n, name in enumerate(STAGE_KINDS)}


@dataclass(frozen=True)
class StageChain:
    """A root stage and the stages that wait for it (per scene: seed → clip; a line; the job's music).
    `due`: it has something to do in this run (a finished scene's chain has not, unless its line is
    still to speak)."""

    scene_index: int
    root: str
    due: bool


@dataclass(frozen=True)
class FinishedMaster:
    """The 9:16 master a run joined, and the soundtrack under it (None: silent), which the other
    formats reuse. The durable engine records it as its master step's result."""

    path: Path
    bytes: int
    audio: Path | None

    def record(self) -> dict[str, str | int | None]:
        return {"path": str(self.path), "bytes": self.bytes, "audio": str(self.audio) if self.audio else None}

    @classmethod
    def from_record(cls, record: Mapping[str, str | int | None]) -> FinishedMaster:
        audio = record["audio"]
        return cls(Path(str(record["path"])), int(record["bytes"] or 0), Path(str(audio)) if audio else None)


OFFLINE_CARD_NOTE = "OFFLINE PREVIEW · drawn locally, not by SDXL/SVD"
# How the note starts when the extra formats failed all at once (a fault, not one format's limit).
FORMATS_FAILED = "The other formats were not made"


class Orchestrator:
    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        providers: Providers,
        *,
        bus: EventBus | None = None,
        limiter: FairLimiter | None = None,
        composer: Composer | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.providers = providers
        self.bus = bus or EventBus()
        self.limiter = limiter or FairLimiter(settings.limits.max_concurrent_predictions)
        # Voice and music have their own slots (`StageKind.slots`): never queued behind seeds and clips.
        self.slots = {"media": self.limiter, "sound": FairLimiter(settings.audio.max_concurrent_predictions)}
        profile = settings.media.profile
        self.composer = composer or Composer(
            profile.output_width, profile.output_height, interpolate=settings.media.interpolate
        )
        self.retry = retry or RetryPolicy(settings.limits.max_attempts, settings.limits.retry_backoff_s)
        self.video_models = video_registry(settings.replicate.svd_reference)
        # The kinds new jobs get a stage of: every required one, and the optional ones with a provider.
        missing = [k.name for k in STAGE_KINDS.values() if not k.optional and providers.get(k.name) is None]
        if missing:
            raise ValueError(f"no provider for the stage kinds every ad needs: {', '.join(missing)}")
        self.kinds = [k.name for k in STAGE_KINDS.values() if providers.get(k.base) is not None]
        self._tasks: dict[str, asyncio.Task[Job]] = {}
        self._progress_writes = ProgressWriter(store.save_progress)
        self._user_cancelled: set[str] = set()
        self._jobs: dict[str, Job] = {}  # live jobs: the copy the running task mutates
        self.quotas = QuotaLimits(
            settings.limits.user_concurrent_jobs, settings.limits.guild_concurrent_jobs, settings.limits.user_daily_jobs
        )
        self._approval_lock = asyncio.Lock()  # quota check and status change happen as one step
        self.spend_caps = SpendCaps(settings, store)
        # Per running job: set once its scene timing is fixed (every voice stage ended); the mix that
        # starts as soon as voice and music are ready.
        self._timing_fixed: dict[str, asyncio.Event] = {}
        self._mixes: dict[str, asyncio.Task[Path]] = {}
        self._rerenders: dict[str, asyncio.Task[Job]] = {}
        self._format_renders: dict[str, asyncio.Task[list[FormatResult]]] = {}
        # Per running job that asks for other formats: its scenes cut for them as its clips land.
        self._early_cuts: dict[str, EarlyFormatCuts] = {}
        self._early_gate = asyncio.Semaphore(EARLY_CUTS_AT_ONCE)

    # -- planning and approval ------------------------------------------------------------------

    async def create_job(
        self,
        request: AdRequest,
        *,
        requester_id: str | None = None,
        guild_id: str | None = None,
        channel_id: str | None = None,
        byte_limit: int | None = None,
        ui: dict | None = None,
    ) -> Job:
        self.check_request(request)
        request = await self.with_video_model(request, guild_id)
        if requester_id is not None:
            await self.check_daily_quota(requester_id)
        job = Job(
            request=request,
            requester_id=requester_id,
            guild_id=guild_id,
            channel_id=channel_id,
            byte_limit=byte_limit if byte_limit is not None else self.settings.media.byte_limit,
            ui=ui or {},
            offline=self.providers.offline,
            env=self.settings.media.env,
            providers={"planner": self.providers.planner.name}
            | {kind: p.name for kind, p in self.providers.stages.items() if kind in self.kinds}
            | self._photo_provider(request),
        )
        await self.store.create(job)
        await self._publish(EventKind.JOB_CREATED, job)
        return job

    def _photo_provider(self, request: AdRequest) -> dict[str, str]:
        """With a product photo, the job records who makes the photo's seeds beside the painter."""
        provider = self.providers.get(PHOTO_SEED) if request.photo else None
        return {PHOTO_SEED: provider.name} if provider is not None else {}

    def check_request(self, request: AdRequest) -> None:
        """Raise `InvalidRequest` for what this Jant cannot do for `request` (a voice it does not
        have), before anything is written or paid."""
        check_voice_choice(self.providers, request.voice, request.speak)

    async def allowed_video_models(self, guild_id: str | None) -> tuple[str, ...]:
        """The video models `guild_id` may use: its own list (/brand) or JANT_ALLOWED_VIDEO_MODELS."""
        policy = await self.store.guild_policy(guild_id) if guild_id else None
        own = policy.allowed_video_models if policy is not None else None
        return allowed_models(self.settings.replicate.allowed_video_models, own)

    async def with_video_model(self, request: AdRequest, guild_id: str | None = None) -> AdRequest:
        """`request` with the video model it will use stored in it, or `InvalidRequest` naming the
        models that can be chosen — before anything is written or paid."""
        allowed = await self.allowed_video_models(guild_id)
        try:
            entry = choose_video_model(
                request.model, default=self.settings.replicate.video_model, allowed=allowed,
                where="this server" if guild_id else "this Jant",
            )  # fmt: skip
        except VideoModelChoiceError as exc:
            raise InvalidRequest(str(exc)) from None
        return request if request.model == entry.key else request.model_copy(update={"model": entry.key})

    def video_model_of(self, job: Job) -> VideoModel:
        return video_model(job.request.model, self.video_models)

    async def check_daily_quota(self, requester_id: str) -> None:
        """Raise `QuotaExceeded` when the requester has made their daily number of ads."""
        start, _ = day_window(utcnow())
        made_today = await self.store.count(requester_id=requester_id, since=start)
        check_daily(self.quotas, made_today, utcnow())

    async def plan(self, job: Job, *, feedback: str | None = None) -> Job:
        """Write (or rewrite) the storyboard. A job with no storyboard yet fails when planning does."""
        if feedback is not None or job.storyboard is not None:  # a new take, not the first storyboard
            _check_allowed(job, Action.REPLAN)
        try:
            storyboard = await self.providers.planner.plan(job.request, feedback=feedback)
        except JantError as exc:
            await self._planning_failed(job, exc.user_message)
            raise
        except ValidationError as exc:
            err = PlannerError(f"The storyboard writer broke a rule: {storyboard_problem(exc)}.")
            await self._planning_failed(job, err.user_message)
            raise err from exc
        except Exception:  # our own bug: the job must not sit in "planning" forever
            await self._planning_failed(job, "The storyboard could not be written (an unexpected error, logged).")
            raise
        try:
            storyboard = fit_storyboard_to_clips(storyboard, self.video_model_of(job))
        except PlannerError as exc:
            await self._planning_failed(job, exc.user_message)
            raise
        await self.store.set_storyboard(
            job, storyboard, JobStatus.AWAITING_APPROVAL, self.settings.limits.max_attempts, self._kinds_for(job)
        )
        await asyncio.to_thread(self._write_storyboard_file, job)
        await self._publish(EventKind.STORYBOARD_READY, job)
        return job

    async def _planning_failed(self, job: Job, message: str) -> None:
        await self.store.event(job, "planning_failed", detail=message)
        if job.storyboard is None:
            await self.store.update(job, status=JobStatus.FAILED, error=message, finished_at=utcnow())

    async def edit_scene(
        self,
        job: Job,
        index: int,
        *,
        description: str | None = None,
        duration: float | None = None,
        voiceover: str | None = None,
        shows_product: bool | None = None,
    ) -> Job:
        """Change one scene before approval; the whole storyboard is re-validated. `shows_product`:
        whether the team's product photo (when the request has one) is the scene's picture."""
        _check_allowed(job, Action.EDIT)
        assert job.storyboard is not None  # awaiting approval: it has one
        if not 1 <= index <= len(job.storyboard.scenes):
            raise InvalidRequest(f"There is no scene {index}; this storyboard has {len(job.storyboard.scenes)}.")
        data = job.storyboard.model_dump()
        scene = data["scenes"][index - 1]
        if description is not None:
            scene["description"] = description
            scene["visual_prompt"] = description
        if duration is not None:
            scene["duration"] = duration
        if voiceover is not None:  # checked with the (new) duration: the word limit follows it
            scene["voiceover"] = voiceover
        if shows_product is not None:
            scene["shows_product"] = shows_product
        try:
            storyboard = Storyboard.model_validate(data)
        except ValidationError as exc:
            raise InvalidRequest(f"That edit breaks the storyboard: {storyboard_problem(exc)}.") from exc
        if problem := clip_length_problem(storyboard, self.video_model_of(job)):
            raise InvalidRequest(f"That edit breaks the storyboard: {problem}.")
        await self.store.set_storyboard(
            job, storyboard, JobStatus.AWAITING_APPROVAL, self.settings.limits.max_attempts, self._kinds_for(job)
        )
        await self.store.event(job, "scene_edited", scene_index=index)
        await asyncio.to_thread(self._write_storyboard_file, job)
        await self._publish(EventKind.STORYBOARD_READY, job, scene_index=index)
        return job

    def _kinds_for(self, job: Job) -> list[str]:
        """The kinds this job gets stages of: a job asked to be silent (`--no-voice`) has no voice, and
        only a job testing hooks has the alternative hooks' stages."""
        kinds = [kind_of(k) for k in self.kinds]
        return [
            k.name for k in kinds if (job.request.speak or k.base != StageName.VOICE) and k.hook < job.request.hooks
        ]

    def _write_storyboard_file(self, job: Job) -> None:
        assert job.storyboard is not None
        directory = self.job_dir(job)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {"job_id": job.id, "request": job.request.model_dump(mode="json"),
                   "offline_preview": job.offline, "storyboard": job.storyboard.model_dump(mode="json")}  # fmt: skip
        _write_atomically(directory / "storyboard.json", json.dumps(payload, indent=2, ensure_ascii=False))

    def job_dir(self, job: Job) -> Path:
        return job.directory(self.settings.storage.data_dir)

    async def approve(
        self, job: Job, *, approved_by: str | None = None, brand: BrandKit | None = None
    ) -> asyncio.Task[Job]:
        """Queue the job with its brand kit as it is now: `brand` (the CLI's --brand file), else its
        server's kit (the defaults for no server). The kit is stored on the job with its status, so
        a kit changed later, or a restart, does not change what this job is made with."""
        async with self._approval_lock:
            _check_allowed(job, Action.APPROVE)
            if job.requester_id is not None:
                store = self.store
                user_active = await store.count(requester_id=job.requester_id, statuses=ACTIVE)
                guild_active = await store.count(guild_id=job.guild_id, statuses=ACTIVE) if job.guild_id else None
                check_concurrent(self.quotas, user_active, guild_active)
            kit = brand if brand is not None else await self.store.guild_brand(job.guild_id)
            check_brand_voice(self.providers, kit.voice, request_voice=job.request.voice, speak=job.request.speak)
            # Last: a refusal above must not hold money; the hold is checked and taken in one transaction.
            await self.spend_caps.reserve(job)
            # A kit that turns the music off: the job gets no music stage at all, so no bed is made or paid.
            off = [StageName.MUSIC] if kit.music == NO_MUSIC else []
            await self.store.update_without_job_stages(job, off, brand=kit, status=JobStatus.QUEUED)
        await self.store.event(job, "approved", detail=approved_by)
        await self._publish(EventKind.JOB_QUEUED, job)
        return self.start(job)

    # -- running --------------------------------------------------------------------------------

    def start(self, job: Job) -> asyncio.Task[Job]:
        """Run the job in a background task (one per job). Idempotent while it runs."""
        task = self._tasks.get(job.id)
        if task is not None and not task.done():
            return task
        self._jobs[job.id] = job
        task = asyncio.create_task(self._execute(job), name=f"job-{job.id}")
        self._tasks[job.id] = task
        task.add_done_callback(functools.partial(self._forget, job.id))
        return task

    def _execute(self, job: Job) -> Coroutine[Any, Any, Job]:
        """What the task `start` makes runs. Hook: the durable engine starts the run as a workflow."""
        return self._run(job)

    def _forget(self, job_id: str, task: asyncio.Task[Job]) -> None:
        if self._tasks.get(job_id) is task:
            del self._tasks[job_id]
            self._jobs.pop(job_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("job %s crashed", job_id, exc_info=task.exception())

    def live_job(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def queue_position(self, job: Job) -> int | None:
        """Where a job waits for a generation slot, when none of its scenes is generating."""
        if any(st.status is StageStatus.RUNNING for st in job.all_stages()):
            return None
        return self.limiter.position(job.requester_id)

    def is_running(self, job_id: str) -> bool:
        task = self._tasks.get(job_id)
        return task is not None and not task.done()

    async def run(self, job: Job) -> Job:
        """Run to the end in the caller's task (the CLI's way)."""
        return await self.start(job)

    async def _run(self, job: Job) -> Job:
        """The job's task. Whatever is raised inside, the job ends: cancelled (by the user), left to
        resume (by a shutdown) or failed with a reason — never left "running" or "composing"."""
        started = time.monotonic()
        try:
            await self._run_job(job)
        except asyncio.CancelledError:
            await self._after_cancel(job)
            raise
        except Exception as exc:
            await self._crashed(job, exc)
        await self._settle(job)
        log.info("job %s %s in %.1f s", job.id, job.status.value, time.monotonic() - started)
        return job

    async def _run_job(self, job: Job) -> None:
        assert job.storyboard is not None, "a job runs only after its storyboard is approved"
        await self.store.update(job, status=JobStatus.RUNNING, started_at=job.started_at or utcnow(), error=None)
        await self._publish(EventKind.JOB_STARTED, job)
        await asyncio.to_thread(self.job_dir(job).mkdir, parents=True, exist_ok=True)
        scenes = [s for s in job.storyboard.scenes if not job.scene(s.index).done]
        self._timing_fixed[job.id] = asyncio.Event()
        earlier = job.timing
        try:
            await self._audio_ready(job)  # no voice to wait for: the timing is fixed right away
            await self._run_scenes(job, scenes)
            await self._renormalise_retimed(job, earlier, {s.index for s in scenes})
            await self._end_run(job)
        finally:
            self._timing_fixed.pop(job.id, None)
            early = self._early_cuts.pop(job.id, None)
            if early is not None:  # the job ended before its formats used them
                await early.discard()
            mix = self._mixes.pop(job.id, None)
            if mix is not None:  # stopped if the job ended without it; its outcome read either way
                mix.cancel()
                await asyncio.gather(mix, return_exceptions=True)

    async def _crashed(self, job: Job, exc: Exception) -> None:
        """An exception escaped the stages (a bug, a broken normaliser, a failed join): the job fails
        with a reason the user can quote, its traceback is logged once under that id, its paid work
        still in flight is cancelled and the front ends are told."""
        reason = report_unexpected(log, exc, f"job {job.id}")
        try:
            await self._stop_stages(job)
            await self.store.update(
                job, status=JobStatus.FAILED, error=f"The ad could not be made: {reason}.", finished_at=utcnow()
            )
            await self.store.event(job, "crashed", detail=reason)
        except Exception:  # the store itself is broken: the job resumes into the same error on restart
            log.exception("job %s: could not record its failure (%s)", job.id, reason)
        await self._publish(EventKind.JOB_FINISHED, job)

    async def _end_run(self, job: Job) -> None:
        """The end of a run, once every chain has ended: compose, formats, hooks (`_finish`). Hook: the
        durable engine checkpoints it as a step of the job's workflow."""
        await self._finish(job)

    async def _run_scenes(self, job: Job, scenes: list[Scene]) -> None:
        """Every stage still to make: the job's own and those of `scenes`, each as soon as the stage
        it waits for is done. (A subclass may order them differently: see benchmarks/barrier.py.)

        Every root stage of the job and of every scene is a chain, listed in one fixed order whatever
        has been made; `due` says whether it has anything to do in this run."""
        assert job.storyboard is not None
        running = {scene.index for scene in scenes}
        chains = [StageChain(JOB_LEVEL_INDEX, st.stage, due=True) for st in self._roots(job.job_stages)]
        for scene in job.storyboard.scenes:
            for st in self._roots(job.scene(scene.index).stages):
                # A finished scene whose voice has not ended (Retry failed reset it, a restart interrupted
                # it) still gets spoken; one that ended, even failed, is left as it is.
                due = scene.index in running or (st.kind.optional and not st.status.is_terminal)
                chains.append(StageChain(scene.index, st.stage, due))
        await self._run_chains(job, chains)

    async def _run_chains(self, job: Job, chains: Sequence[StageChain]) -> None:
        """Run the chains that are due, side by side. Hook: the durable engine starts every chain (due
        or not) as a child workflow, in this order."""
        await _together(*(self._run_chain(job, chain) for chain in chains if chain.due))

    async def _run_chain(self, job: Job, chain: StageChain) -> None:
        """One chain: its root stage, then the stages that wait for it."""
        if chain.scene_index == JOB_LEVEL_INDEX:
            await self._run_from(job, job.job_stages[chain.root])
            return
        assert job.storyboard is not None
        scene = job.storyboard.scenes[chain.scene_index - 1]
        await self._run_from(job, job.scene(scene.index).stages[chain.root], scene)

    @staticmethod
    def _roots(stages: Mapping[str, StageState]) -> list[StageState]:
        """The stages that wait for nothing (or for a kind this job has no stage of), in kind order."""
        roots = [st for st in stages.values() if st.kind.after is None or st.kind.after not in stages]
        return sorted(roots, key=lambda st: _KIND_ORDER.get(st.stage, len(_KIND_ORDER)))

    # Whether the stages that wait for one stage run side by side (they do not wait for each other).
    # The durable engine runs them one after the other: a workflow's steps must start in a fixed order.
    _dependents_side_by_side = True

    async def _run_from(
        self, job: Job, stage: StageState, scene: Scene | None = None, inputs: Mapping[str, Path] | None = None
    ) -> None:
        """Run `stage`, then — pipelined — the stages that wait for it, with its output as their input:
        a scene's clip starts as soon as ITS seed is ready, whatever the other scenes do."""
        inputs = dict(inputs or {})
        siblings = job.job_stages if scene is None else job.scene(scene.index).stages
        waiting = [siblings[k.name] for k in dependents(stage.stage) if k.name in siblings]
        path = await self.run_stage(job, stage, scene, inputs)
        if stage.stage in (StageName.VOICE, StageName.MUSIC):
            await self._audio_ready(job)
        if path is not None and stage.kind.footage and scene is not None:
            path = await self._normalise_footage(job, scene, stage, path)
        if path is None:
            for later in waiting:
                await self._skip(job, later, f"its {stage.kind.noun} failed")
            return
        inputs[stage.stage] = path
        if self._dependents_side_by_side:
            await _together(*(self._run_from(job, later, scene, inputs) for later in waiting))
        else:
            for later in waiting:
                await self._run_from(job, later, scene, inputs)

    async def _normalise_footage(self, job: Job, scene: Scene, stage: StageState, clip_path: Path) -> Path | None:
        """A chain's cut of its scene's footage (`_normalise`). Hook: the durable engine's is a step."""
        return await self._normalise(job, scene, stage, clip_path)

    async def _normalise(self, job: Job, scene: Scene, stage: StageState, clip_path: Path) -> Path | None:
        """Normalise the scene's footage now, while other scenes still generate, so the final join is a
        cheap copy. A failure is recorded on the stage."""
        normalized = self.job_dir(job) / f"scene-{scene.index}.mp4"
        waited_on = _ad_waits_only_on(job, scene.index)
        try:
            await self._cut_scene(job, scene, clip_path, normalized, urgent=waited_on)
        except JantError as exc:
            stage.status, stage.error = StageStatus.FAILED, f"Could not prepare the clip: {exc}"
            await self.store.save_stage(stage)
            await self._publish(EventKind.STAGE_FAILED, job, scene.index, stage.stage, stage.error)
            return None
        await self.store.set_normalized(job, scene.index, str(normalized))
        await self._publish(EventKind.CLIP_NORMALIZED, job, scene.index, stage.stage)
        if not waited_on:  # the scene the ad waits on is cut for the formats after the ad, not beside it
            await self._cut_formats_early(job, scene, clip_path)
        return normalized

    async def _cut_formats_early(self, job: Job, scene: Scene, clip_path: Path) -> None:
        """Start cutting the scene for the request's other formats while the other clips are made
        (pipeline.early_formats): what is left after the ad is its last scene's cuts and the joins."""
        if not extra_formats(job.request.formats) or job.id not in self._timing_fixed:
            return  # (a re-render's or a variant's cut is no scene of a running job)
        timing = await self._timing(job)
        cuts = self._early_cuts.get(job.id)
        if cuts is None:
            final = self.job_dir(job) / "final.mp4"
            cuts = EarlyFormatCuts(self.composer, final, job.request.formats, gate=self._early_gate)
            self._early_cuts[job.id] = cuts
        source = SceneSource(clip_path, timing.durations[scene.index - 1], self._overlay(job, scene, timing))
        cuts.start(scene.index, source, max_bitrate=self._scene_bitrate(job, timing))

    def _clip_speed(self, job: Job) -> dict[str, Any]:
        """SVD's clips are retimed to their scenes (the composer's default); every other model's clip
        plays at its own speed and is cut at the scene's end."""
        return {} if self.video_model_of(job).retimes else {"retime": False}

    async def _cut_scene(self, job: Job, scene: Scene, clip_path: Path, dest: Path, *, urgent: bool = False) -> Path:
        """The one way a scene's clip becomes its part of the ad: retimed, captioned and drawn with the
        job's look (its brand kit, the captions it asks for). A first run and a re-render both cut here,
        so a re-render draws exactly what a new ad would."""
        assert job.storyboard is not None
        # The scene's final length follows its voice: voices take seconds, clips a minute, so this
        # wait is over before the clip lands.
        timing = await self._timing(job)
        return await self.composer.normalize_clip(
            clip_path, dest, timing.durations[scene.index - 1], max_bitrate=self._scene_bitrate(job, timing),
            urgent=urgent,
            **self._overlay(job, scene, timing),
        )  # fmt: skip

    def _scene_bitrate(self, job: Job, timing: SceneTiming) -> int | None:
        """The cap on every cut scene's bits/s so the stream-copied join fits the upload limit."""
        if not job.byte_limit:
            return None
        audio_bps = AUDIO_BITRATE if self._wants_soundtrack(job) else 0
        return target_bitrate(timing.total, job.byte_limit, audio_bps=audio_bps)

    def _captions(self, job: Job) -> str:
        """The captions the job's kit asks for, else the process setting (JANT_CAPTIONS)."""
        return job_choices(job, self.settings).captions.value

    def _with_music(self, job: Job) -> bool:
        """The stored music bed goes under the ad unless music is now turned off (the kit's or the
        process's "none"): a re-render can drop the bed, never pay for another one."""
        if job_choices(job, self.settings).music_off_by_brand:
            return False
        return self.settings.audio.music != "none"

    def _overlay(self, job: Job, scene: Scene, timing: SceneTiming) -> dict[str, Any]:
        """How a scene's clip is cut and what is drawn over it, as normalize_clip's keyword arguments:
        the same for the master, a re-render and every other format (pipeline.formats), each laid out
        for its frame."""
        assert job.storyboard is not None
        duration = timing.durations[scene.index - 1]
        # The kit as it was at approval (or of the re-render); a server without one gets the
        # defaults. The last scene (the CTA) ends on the brand's end card, inside its own length.
        last = scene.index == len(job.storyboard.scenes)
        return {
            "caption": scene.on_screen_text,
            "words": caption_words(job, scene, timing),
            "captions": self._captions(job),
            "language": spoken_language(job),
            "brand": job.brand or BrandKit(),
            "end_card_s": end_card_seconds(duration) if last else 0.0,
            "cta": job.request.cta,
            **self._clip_speed(job),
            # The card covers the "OFFLINE PREVIEW" band of an offline ad's scenes: it says so itself.
            **({"card_note": OFFLINE_CARD_NOTE} if job.offline and last else {}),
        }

    async def _formats(self, job: Job, final: Path, audio: Path | None) -> None:
        """The other shapes the request asks for (4:5, 1:1, 16:9), written beside `final` from the same
        clips and soundtrack: no prediction. One that cannot be made is said in the job's notes.
        The scenes already cut for them while the clips were made are used as they are."""
        early = self._early_cuts.pop(job.id, None)
        try:
            made = await self._make_formats(job, final, audio, early=await early.collect() if early else None)
        finally:
            if early is not None:  # the early files the formats did not take (they remove those they take)
                await early.discard()
        if made is None:
            return
        results, missing = made
        if missing:
            await self._add_notes(job, missing)
        await self.store.event(job, "formats", detail=", ".join(r.format.key for r in results if r.path))
        if early is not None:  # how much of the formats' work was done while the clips were made
            cut_early = ", ".join(f"{r.format.key} {r.early}" for r in results if r.path)
            await self.store.event(job, "formats_cut_early", detail=f"{cut_early} of {len(job.scenes)} scenes")

    async def _make_formats(
        self, job: Job, final: Path, audio: Path | None, *, early: Mapping[int, Mapping[str, Path]] | None = None
    ) -> tuple[list[FormatResult], list[str]] | None:
        """`_formats`' files, and the notes about those not made, without touching the job: a re-render
        makes them in its scratch folder and records them only once they are installed. None: the
        request has no other format."""
        if job.storyboard is None or not extra_formats(job.request.formats):
            return None
        sources = await self._format_sources(job, early or {})
        try:
            results = await render_formats(
                self.composer, final, job.request.formats, sources, soundtrack=audio, byte_limit=job.byte_limit
            )
        except Exception:  # the master is made: a fault in the extras must not cost the user the ad
            log.exception("job %s: the extra formats could not be made", job.id)
            return [], [f"{FORMATS_FAILED}: an unexpected error (logged); the 9:16 ad is complete."]
        return results, [f"{not_made_prefix(r.format)}: {r.error}" for r in results if r.error]

    async def _hook_variants(self, job: Job, final: Path, cut: Mapping[int, Path]) -> list[str]:
        """The ad again with each alternative hook in scene 1 (`pipeline.hook_variants`), beside
        `final`, which is hook A's (final-hook-A.mp4 is a link to it). `cut` are the scenes' cut files
        by index. Returns the notes on hooks that could not be made; the master is never at risk."""
        if job.storyboard is None or job.request.hooks < 2 or job.timing is None:
            return []
        notes: list[str] = []
        if 1 in cut:
            await asyncio.to_thread(_link_or_copy, final, final.parent / hook_final_name(0))
        else:
            failed = f"its scene failed, so {final.name} opens on scene 2"
            notes.append(f"{HOOK_NOTE_PREFIX}A's version was not made: {failed}.")
        hooks = range(1, len(job.storyboard.alt_hooks) + 1)
        problems = {hook: variant_problem(job, hook) for hook in hooks}
        makeable = [hook for hook in hooks if problems[hook] is None]
        # Side by side: each is mostly its own mix (one ffmpeg thread), so two use both cores.
        outcomes = await asyncio.gather(
            *(self._hook_variant(job, hook, cut, final.parent / hook_final_name(hook)) for hook in makeable),
            return_exceptions=True,
        )
        outcome_of = dict(zip(makeable, outcomes, strict=True))
        made = []
        for hook in hooks:
            letter, outcome = hook_letter(hook), outcome_of.get(hook)
            if problems[hook] is not None:
                notes.append(f"{HOOK_NOTE_PREFIX}{letter}'s version was not made: {problems[hook]}.")
            elif isinstance(outcome, JantError):
                notes.append(f"{HOOK_NOTE_PREFIX}{letter}'s version was not made: {outcome.user_message}")
            elif isinstance(outcome, BaseException):  # not ours to explain: the job's crash handling reports it
                raise outcome
            else:
                made.append(letter)
        await self.store.event(job, "hooks", detail=", ".join(made) or None)
        return notes

    async def _hook_variant(self, job: Job, hook: int, cut: Mapping[int, Path], dest: Path) -> None:
        """One alternative hook's ad: its scene cut into scene 1's slot, joined with the other scenes'
        cut files and its own mix of the lines (the music and every other line as in the master)."""
        view, alt = variant_job(job, hook)
        assert view.timing is not None
        scratch = dest.parent / f".{dest.stem}"
        await asyncio.to_thread(shutil.rmtree, scratch, True)
        await asyncio.to_thread(scratch.mkdir, parents=True)
        try:
            clip = view.scene(1).clip.path
            assert clip is not None
            first = await self._cut_scene(view, alt, Path(clip), scratch / "scene-1.mp4")
            joined = [1, *(i for i in sorted(cut) if i != 1)]
            clips = [first, *(cut[i] for i in joined[1:])]
            if not self._wants_soundtrack(job):
                await self.composer.join(clips, dest, byte_limit=job.byte_limit)
                return
            partial = set(joined) if len(joined) < len(job.scenes) else None
            audio = await self._mix(view, view.timing, partial, scratch=scratch)
            await self.composer.join(clips, dest, byte_limit=job.byte_limit, audio=audio)
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)

    async def _format_sources(self, job: Job, early: Mapping[int, Mapping[str, Path]]) -> list[SceneSource]:
        """The finished scenes as every extra format cuts them: their clips, lengths and overlays, and
        the formats each is already cut for (`early`, by scene index)."""
        assert job.storyboard is not None
        timing = await self._timing(job)
        return [
            SceneSource(
                Path(state.clip.path),
                timing.durations[scene.index - 1],
                self._overlay(job, scene, timing),
                cut=early.get(scene.index, {}),
            )
            for scene in job.storyboard.scenes
            if (state := job.scene(scene.index)).done and state.clip.path
        ]

    # -- the voice, the scene timing and the soundtrack -------------------------------------------

    def _wants_soundtrack(self, job: Job) -> bool:
        """The ad has a sound track: when it has a voice or music stage, or when both were turned
        off on purpose (then it is silent, and the notes say why)."""
        if any(st.stage in (StageName.VOICE, StageName.MUSIC) for st in job.all_stages()):
            return True
        music_off = self.settings.audio.music == "none" or job_choices(job, self.settings).music_off_by_brand
        return self.settings.audio.voice == "none" and music_off

    async def _timing(self, job: Job) -> SceneTiming:
        """The job's final scene timing, once every voice stage has ended."""
        fixed = self._timing_fixed.get(job.id)
        if fixed is not None:
            await fixed.wait()
        if job.timing is None:  # run outside `_run_job` (a test driving one stage): the plan as it is
            return fit_timing(job)
        return job.timing

    async def _audio_ready(self, job: Job) -> None:
        """Called whenever a voice or music stage ends: fix the timing once every voice has ended,
        and start the mix once the music has ended too — before the last clip lands."""
        fixed = self._timing_fixed.get(job.id)
        if fixed is None or not voice_settled(job):
            return
        if not fixed.is_set():
            timing = fit_timing(job)
            if timing != job.timing:
                await self.store.update(job, timing=timing)
            fixed.set()
            await self._refresh_notes(job)
        music = job.job_stages.get(StageName.MUSIC)
        if job.id in self._mixes or (music is not None and not music.status.is_terminal):
            return
        if self._wants_soundtrack(job):
            assert job.timing is not None
            self._mixes[job.id] = asyncio.create_task(self._mix(job, job.timing), name=f"mix-{job.id}")

    async def _mix(
        self, job: Job, timing: SceneTiming, scenes: set[int] | None = None, *, scratch: Path | None = None
    ) -> Path:
        """The soundtrack for `timing` (of the scenes in `scenes`, default all): the stored one when it
        was made from the same lines, music and timing, else a new mix. With `scratch` a new mix goes
        there and is not recorded on the job (a re-render that may yet fail must not replace it)."""
        with_music = self._with_music(job)
        key = soundtrack_key(job, timing, with_music=with_music)
        if scenes is None and job.soundtrack is not None and job.soundtrack.key == key:
            if await asyncio.to_thread(Path(job.soundtrack.path).exists):
                return Path(job.soundtrack.path)
        directory = scratch or self.job_dir(job)
        made = await make_soundtrack(self.composer, job, timing, directory, scenes=scenes, with_music=with_music)
        if scenes is None and scratch is None:
            await self.store.update(job, soundtrack=made)
        return Path(made.path)

    async def _soundtrack(self, job: Job, joined: list[int], *, scratch: Path | None = None) -> Path | None:
        """The sound track of the scenes being joined (None: the ad is silent by design)."""
        if not self._wants_soundtrack(job):
            return None
        timing = await self._timing(job)
        if len(joined) < len(job.scenes):
            # Missing scenes: the lines of the others move up with their pictures.
            return await self._mix(job, timing, set(joined), scratch=scratch)
        mix = self._mixes.get(job.id)  # started as soon as voice and music were ready
        if mix is None:
            return await self._mix(job, timing, scratch=scratch)
        return await mix

    async def _renormalise_retimed(self, job: Job, earlier: SceneTiming | None, ran: set[int]) -> None:
        """A finished scene the run did not touch was cut to the old timing: when the voice changed the
        timing (a line failed before and was spoken now), cut it again."""
        timing = job.timing
        if earlier is None or timing is None or earlier == timing or job.storyboard is None:
            return
        for scene in job.storyboard.scenes:
            state = job.scene(scene.index)
            if scene.index in ran or not state.done or state.clip.path is None:
                continue
            await self._normalise(job, scene, state.clip, Path(state.clip.path))

    async def _refresh_notes(self, job: Job) -> None:
        """What the user should know about the ad beside its errors, from the job's state: which part
        of the sound is missing and why, lines that do not fit, characters captions cannot draw."""
        if job.storyboard is None:
            return
        notes: list[str] = []
        has_voice = any(StageName.VOICE in s.stages for s in job.scenes)
        if not has_voice and job.storyboard.has_voiceover:
            if not job.request.speak:
                notes.append("The ad has no voiceover: it was made without one (--no-voice); captions show the lines.")
            else:
                why = self.providers.reasons.get(StageName.VOICE, "no voice provider is set up")
                notes.append(f"The ad has no voiceover: {why}")
        by_reason: dict[str, list[int]] = {}
        for s in job.scenes:
            st = s.stages.get(StageName.VOICE)
            if st is not None and st.status in (StageStatus.FAILED, StageStatus.CANCELLED):
                by_reason.setdefault(st.error or "it failed", []).append(s.index)
        for reason, indices in by_reason.items():
            if len(indices) == len(job.scenes):
                which = "The ad has"
            else:
                which = ("Scene " if len(indices) == 1 else "Scenes ") + ", ".join(map(str, indices))
                which += " has" if len(indices) == 1 else " have"
            notes.append(f"{which} no voiceover: {reason}")
        music = job.job_stages.get(StageName.MUSIC)
        if music is None and job_choices(job, self.settings).music_off_by_brand:
            notes.append(BRAND_NO_MUSIC_NOTE)
        elif music is None:
            why = self.providers.reasons.get(StageName.MUSIC, "no music provider is set up")
            notes.append(f"The ad has no music: {why}")
        elif music.status in (StageStatus.FAILED, StageStatus.CANCELLED):
            notes.append(f"The ad has no music: {music.error or 'the music bed failed'}")
        if job.timing is not None:
            notes += [p for p in job.timing.problems if p]
        if uncovered := _uncovered_note(job):
            notes.append(uncovered)
        if self._wants_soundtrack(job) and not has_voice and music is None:
            notes.append("The ad's sound track is silent.")
        if job.brand is not None and job.brand.logo_path:  # only a kit with a logo costs a trip to a thread
            if logo_note := await asyncio.to_thread(missing_logo_note, job.brand):
                notes.append(logo_note)
        if notes != job.notes:
            await self.store.update(job, notes=notes)

    async def _skip(self, job: Job, stage: StageState, why: str) -> None:
        """A stage that cannot run (what it waits for failed): failed with the reason, and so are the
        stages that wait for it."""
        stage.status, stage.error = StageStatus.FAILED, f"Skipped: {why}."
        await self.store.save_stage(stage)
        siblings = job.job_stages if stage.scene_index == JOB_LEVEL_INDEX else job.scene(stage.scene_index).stages
        for kind in dependents(stage.stage):
            if kind.name in siblings:
                await self._skip(job, siblings[kind.name], f"its {stage.kind.noun} was skipped")

    async def run_stage(
        self, job: Job, stage: StageState, scene: Scene | None = None, inputs: Mapping[str, Path] | None = None
    ) -> Path | None:
        """One paid step of any kind, with retries. Returns its file, or None when it failed for good.

        `scene` is the storyboard scene of a scene-level stage; `inputs` are the outputs of the stages
        it waits for, by kind. Each attempt is `_stage_attempt`; `pipeline.retry`'s policy decides
        whether another follows, after `_backoff` (outside any prediction slot)."""
        inputs = dict(inputs or {})
        first = True
        while True:
            outcome = await self._stage_attempt(job, stage, scene, inputs, first=first)
            assert outcome.created is None, "an attempt of the whole stage waits for what it created"
            if outcome.retry_in is None:
                return outcome.path
            await self._backoff(outcome.retry_in)
            first = False

    async def _stage_attempt(
        self, job: Job, stage: StageState, scene: Scene | None, inputs: Mapping[str, Path], *, first: bool
    ) -> AttemptOutcome:
        """One attempt at `stage`, to its end. Hook: the durable engine runs it as two checkpointed
        steps, `_attempt(step=CREATE)` then `_attempt(step=WAIT)`."""
        return await self._attempt(job, stage, scene, inputs, first=first)

    async def _backoff(self, seconds: float) -> None:
        """The wait before the next attempt. Hook: the durable engine's survives a restart."""
        await asyncio.sleep(seconds)

    async def _attempt(
        self,
        job: Job,
        stage: StageState,
        scene: Scene | None,
        inputs: Mapping[str, Path],
        *,
        first: bool = True,
        step: AttemptStep = AttemptStep.WHOLE,
        prediction_id: str | None = None,
    ) -> AttemptOutcome:
        """One attempt at `stage`, or the part of it `step` names: `CREATE` ends once its prediction is
        created and recorded (or made outright, by a provider that needs no prediction), `WAIT` waits for
        `prediction_id`, which that create made. A stage already made, or left running with its
        prediction id by a run that stopped, is not paid for again."""
        kind = stage.kind
        if stage.status is StageStatus.DONE and stage.path and await asyncio.to_thread(Path(stage.path).exists):
            return AttemptOutcome(Path(stage.path))
        key = kind.provider_key(job, scene)
        provider = self.providers.get(key)
        if provider is None:  # an optional kind whose provider was switched off since the storyboard
            which = "" if key == kind.name else f" ({key})"
            await self._skip(job, stage, f"no {kind.noun} provider{which} is set up")
            return AttemptOutcome()
        dest = kind.dest(self.job_dir(job), stage.scene_index)
        # A stage left RUNNING with a prediction id was interrupted: resume that same attempt.
        resume_id = stage.prediction_id if stage.status is StageStatus.RUNNING else None
        if step is AttemptStep.WAIT:
            assert prediction_id is not None, "a wait step waits for the prediction its create step made"
            resume_id = prediction_id
        elif step is AttemptStep.CREATE and resume_id:  # a create step stopped after its POST: it is made
            return AttemptOutcome(created=resume_id)
        # Left RUNNING without an id: the run stopped inside the attempt, before its prediction's id was
        # stored — waiting for its turn to create, or between the create's POST and storing the id. The
        # same attempt goes on (a stop is not the stage failing), and when its create was sent (its intent
        # is stored), the provider looks for that prediction before paying for another.
        interrupted = step is not AttemptStep.WAIT and stage.status is StageStatus.RUNNING
        intent = await self.store.unanswered_intent(stage) if interrupted and not resume_id else None
        resuming = bool(resume_id) or interrupted
        attempt = stage.attempt if resuming else stage.attempt + 1
        if first:
            stage.error = None
        # A wait step's stage is running: its prediction is. A resumed attempt stays RUNNING with its
        # prediction id (or its unanswered create) while it waits for a slot too: stored as QUEUED, a
        # stop during that wait would make the next resume pay for a new prediction.
        # Queued is stored only when the attempt will wait for a prediction slot (nothing is awaited
        # between the look and taking a free one): otherwise the running state stored next says all of
        # it, every field, and the POST comes one write sooner.
        if step is not AttemptStep.WAIT and not resuming:
            stage.status, stage.progress = StageStatus.QUEUED, 0.0
            await self._publish(EventKind.STAGE_QUEUED, job, stage.scene_index, stage.stage)
            if not self.slots[stage.kind.slots].free:
                await self.store.save_stage(stage)
        async with self._attempt_slot(job, stage, step):
            stage.attempt, stage.status = attempt, StageStatus.RUNNING
            if not resume_id:
                stage.prediction_id = None
            await self.store.save_stage(stage)
            await self._publish(EventKind.STAGE_RUNNING, job, stage.scene_index, stage.stage)
            ctx = self._context(job, stage, provider.name, resume_id, step=step, intent=intent)
            request = StageInputs(job, scene, stage, self.settings, dest, dict(inputs))
            work = kind.start(provider, request, ctx)
            try:
                result = await asyncio.wait_for(work, timeout=self._outer_deadline(stage))
            except asyncio.CancelledError:
                raise
            except PredictionCreated as created:
                return AttemptOutcome(created=created.prediction_id)
            except Exception as exc:
                return await self._attempt_failed(job, stage, attempt, exc)
            await self._stage_done(job, stage, result)
            return AttemptOutcome(result.path)

    def _attempt_slot(self, job: Job, stage: StageState, step: AttemptStep) -> AbstractAsyncContextManager[None]:
        """The prediction slot an attempt holds from its create to the end of its wait. Hook: the durable
        engine's create step hands its slot on to the wait step."""
        return self.slots[stage.kind.slots].slot(job.requester_id)

    async def _attempt_failed(self, job: Job, stage: StageState, attempt: int, exc: Exception) -> AttemptOutcome:
        """Record a failed attempt; the retry policy says whether (and after how long) another follows."""
        decision = classify(exc)
        where = f"job {job.id} scene {stage.scene_index} {stage.stage} attempt {attempt}"
        if is_unexplained(exc, decision):  # the policy decided; the user gets an id, not "'seed'"
            message = report_unexpected(log, exc, where)
        else:
            message = exc.user_message if isinstance(exc, JantError) else decision.reason
            log.warning("%s failed: %s", where, message)
        if stage.prediction_id:
            await self.store.finish_prediction(stage.prediction_id, "failed", None)
        if not self.retry.should_retry(attempt, decision):
            stage.status, stage.error = StageStatus.FAILED, message
            await self.store.save_stage(stage)
            await self.store.event(job, "stage_failed", scene_index=stage.scene_index,
                                   stage=stage.stage, detail=message)  # fmt: skip
            await self._publish(EventKind.STAGE_FAILED, job, stage.scene_index, stage.stage, message)
            return AttemptOutcome()
        stage.status, stage.error = StageStatus.RETRYING, message
        await self.store.save_stage(stage)
        await self._publish(EventKind.STAGE_RETRYING, job, stage.scene_index, stage.stage, message)
        return AttemptOutcome(retry_in=self.retry.delay(attempt, decision))

    def _context(
        self, job: Job, stage: StageState, provider: str, resume_id: str | None, *,
        step: AttemptStep = AttemptStep.WHOLE, intent: PredictionIntent | None = None,
    ) -> StageContext:  # fmt: skip
        last_saved = [stage.progress]

        async def on_progress(percent: float, note: str | None) -> None:
            stage.progress = round(percent, 1)
            if percent - last_saved[0] >= _PROGRESS_PERSIST_STEP:
                last_saved[0] = percent
                self._progress_writes.note(stage)  # never awaited here: the poll loop must not queue behind it
            await self._publish(EventKind.STAGE_PROGRESS, job, stage.scene_index, stage.stage, note)

        async def on_prediction(prediction_id: str) -> None:
            await self.store.record_prediction(stage, provider, prediction_id)

        async def on_intent(sent: PredictionIntent) -> None:
            await self.store.record_intent(stage, provider, sent)

        return StageContext(
            job_id=job.id, scene_index=stage.scene_index, stage=stage.stage, attempt=stage.attempt,
            existing_prediction_id=resume_id, on_progress=on_progress, on_prediction=on_prediction,
            in_flight=lambda: sum(slots.in_flight for slots in self.slots.values()), step=step,
            intent=intent, on_intent=on_intent,
        )  # fmt: skip

    def _outer_deadline(self, stage: StageState) -> float:
        # Providers enforce their own deadlines (and cancel the prediction); this outer bound only
        # guards against a provider that hangs anyway.
        return stage.kind.deadline_s(self.settings) * 1.5 + 30

    async def _stage_done(self, job: Job, stage: StageState, result: StageResult) -> None:
        stage.status, stage.progress, stage.error = StageStatus.DONE, 100.0, None
        stage.path, stage.seed = str(result.path), result.seed
        stage.duration, stage.cost_usd = result.duration, result.cost_usd
        stage.words = list(result.words) if result.words is not None else None
        cost = prediction_cost_usd(result, self.settings)  # per unit (characters, a run) or by GPU time
        if result.prediction_id:
            stage.prediction_id = result.prediction_id
            # Its cost is recorded with it: a server's spend is the sum over its predictions.
            await self.store.finish_prediction(result.prediction_id, "succeeded", result.predict_time, cost_usd=cost)
        await self.store.save_stage(stage)
        if result.predict_time or result.cost_usd:
            gpu = round(job.gpu_seconds + (result.predict_time or 0.0), 3)
            await self.store.update(job, gpu_seconds=gpu, cost_usd=round(job.cost_usd + cost, 4))
        await self._publish(EventKind.STAGE_DONE, job, stage.scene_index, stage.stage)

    async def _finish(self, job: Job) -> None:
        """The end of a run in its parts, one after the other (the durable engine makes each a step of
        its own, `_end_run`): the master, the other formats, the hook variants, the job's end."""
        master = await self._finish_master(job)
        if master is None:
            return
        await self._finish_formats(job, master)
        await self._finish_hooks(job, master)
        await self._finish_job(job, master)

    async def _composing(self, job: Job) -> None:
        if job.status is not JobStatus.COMPOSING:
            await self.store.update(job, status=JobStatus.COMPOSING)
            await self._publish(EventKind.COMPOSING, job)

    async def _finish_master(self, job: Job) -> FinishedMaster | None:
        """The 9:16 master (mix the sound, join the scenes, fit the limit) and the contact sheet. None:
        the job has ended (no scene was made, or the join failed), saying why. Its files are written
        whole (a temporary file renamed over the old), the mix is reused when its key matches: done twice,
        it makes the same files."""
        assert job.storyboard is not None
        done = [s for s in job.scenes if s.done]
        failed = [s for s in job.scenes if not s.done]
        if not done:
            reasons = "; ".join(f"scene {s.index}: {s.error or 'failed'}" for s in failed)
            await self.store.update(job, status=JobStatus.FAILED, error=f"No scene could be made ({reasons}).",
                                    finished_at=utcnow())  # fmt: skip
            await self._publish(EventKind.JOB_FINISHED, job)
            return None
        await self._composing(job)
        directory = self.job_dir(job)
        await self._refresh_notes(job)
        scenes = {s.index: s for s in job.storyboard.scenes}
        try:
            # Side by side: the join is ffmpeg in a subprocess, the sheet Pillow in a thread, and the
            # time from the last clip to the finished ad is what the requester waits for.
            (result, audio), _sheet = await _together(
                self._render(job, done, directory / "final.mp4"),
                self.composer.contact_sheet(
                    [Path(s.seed.path) for s in done if s.seed.path],
                    [f"{scenes[s.index].beat.value} · {_seconds(job, s.index):g}s" for s in done],
                    directory / "contact-sheet.png",
                    title=job.storyboard.title,
                ),
            )
        except JantError as exc:
            await self.store.update(job, status=JobStatus.FAILED, error=exc.user_message, finished_at=utcnow())
            await self.store.event(job, "compose_failed", detail=exc.user_message)
            await self._publish(EventKind.JOB_FINISHED, job)
            return None
        return FinishedMaster(result.path, result.bytes, audio)

    async def _finish_formats(self, job: Job, master: FinishedMaster) -> None:
        """The other shapes the request asks for, from the master's clips and soundtrack."""
        await self._composing(job)
        await self._formats(job, master.path, master.audio)

    async def _finish_hooks(self, job: Job, master: FinishedMaster) -> None:
        """The ad again with each alternative hook, beside the master."""
        await self._composing(job)
        done = [s for s in job.scenes if s.done]
        cut = {s.index: Path(s.normalized_path) for s in done if s.normalized_path}
        if hook_notes := await self._hook_variants(job, master.path, cut):
            await self._add_notes(job, hook_notes)

    async def _finish_job(self, job: Job, master: FinishedMaster) -> None:
        """The job's end: completed, or partial naming the scenes it is missing."""
        failed = [s for s in job.scenes if not s.done]
        status = JobStatus.COMPLETED if not failed else JobStatus.PARTIAL
        error = None
        if failed:
            error = "Missing scenes: " + "; ".join(f"scene {s.index}: {s.error or 'failed'}" for s in failed)
        await self.store.update(
            job, status=status, error=error, final_path=str(master.path), final_bytes=master.bytes,
            finished_at=utcnow(),
        )  # fmt: skip
        await self.store.event(job, "finished", detail=status.value)
        await self._publish(EventKind.JOB_FINISHED, job)

    async def _add_notes(self, job: Job, notes: Sequence[str]) -> None:
        """Add notes to the job's, none twice (a part of the end done again says the same)."""
        new = [n for n in notes if n not in job.notes]
        if new:
            await self.store.update(job, notes=[*job.notes, *new])

    async def _render(
        self, job: Job, done: list[SceneState], dest: Path, *, recut_in: Path | None = None,
        step: Callable[[str], Awaitable[None]] | None = None,
    ) -> tuple[ComposeResult, Path | None]:  # fmt: skip
        """The finished ad from its scenes: (re-)cut every scene, mix the sound, join, fit the limit.
        Returns the joined ad and the soundtrack under it (None: silent), which the other formats reuse.

        A first run cut each scene as its clip landed, so it passes no `recut_in`; a re-render cuts
        every scene again from its clip into `recut_in` (a scratch folder) with the job's current look,
        and a mix that fails there fails the re-render (the old ad stays) instead of going out silent."""
        assert job.storyboard is not None
        scenes = {s.index: s for s in job.storyboard.scenes}
        clips = [Path(s.normalized_path) for s in done if s.normalized_path]
        if recut_in is not None:
            clips = []
            for n, state in enumerate(done, 1):
                if step is not None:
                    await step(f"re-cutting scene {state.index} ({n} of {len(done)})")
                assert state.clip.path is not None
                dest_clip = recut_in / f"scene-{state.index}.mp4"
                clips.append(await self._cut_scene(job, scenes[state.index], Path(state.clip.path), dest_clip))
        if step is not None:
            await step("mixing the sound")
        try:
            audio = await self._soundtrack(job, [s.index for s in done], scratch=recut_in)
        except JantError as exc:
            if recut_in is not None:
                raise
            # The sound is optional on a first run: the ad goes out silent, saying why.
            log.warning("job %s: the soundtrack could not be mixed: %s", job.id, exc.user_message)
            audio = None
            why = f"The ad has no sound: the mix failed ({exc.user_message})."
            await self.store.update(job, notes=[*job.notes, why])
        if step is not None:
            await step("joining the scenes")
        if audio is not None:
            return await self.composer.join(clips, dest, byte_limit=job.byte_limit, audio=audio), audio
        # As before the ad had sound: a composer without audio is called the same way.
        return await self.composer.join(clips, dest, byte_limit=job.byte_limit), None

    # -- re-render ----------------------------------------------------------------------------------

    def is_rerendering(self, job_id: str) -> bool:
        task = self._rerenders.get(job_id)
        return task is not None and not task.done()

    async def rerender_problem(self, job: Job) -> str | None:
        """Why `rerender(job)` cannot run now, in the words the user sees; None when it can."""
        live = self._jobs.get(job.id, job)
        on_disk = await asyncio.to_thread(self._media_on_disk, live)
        why = rerender_refusal(live.id, live.status, media_on_disk=on_disk, rerendering=self.is_rerendering(job.id))
        if why is None and self.is_making_formats(job.id):
            return RERENDER_WHILE_FORMATS.format(job_id=job.id)
        return why

    def _media_on_disk(self, job: Job) -> bool:
        """Every file a re-render reads is still there: the finished scenes' clips and the sound's stems.
        Blocking (a few stats)."""
        done = [s for s in job.scenes if s.done]
        needed = [s.clip.path for s in done]
        voices = [voice_stage(job, s.index) for s in job.scenes]
        needed += [st.path for st in voices if st is not None and spoken_length(st) is not None]
        music = job.job_stages.get(StageName.MUSIC)
        if music is not None and music.status is StageStatus.DONE:
            needed.append(music.path)
        return bool(done) and all(p is not None and Path(p).is_file() for p in needed)

    async def start_rerender(self, job: Job, *, brand: BrandKit | None = None) -> asyncio.Task[Job]:
        """Compose a finished ad again from the scenes on disk, in a background task: the new final
        becomes `final.mp4`, the previous one is kept as `final-N.mp4`. No prediction is made.

        `brand` is the kit to draw it with (default: the server's kit now; for a job made outside a server,
        the kit it was made with); it is recorded on the job.
        Raises `InvalidRequest`, saying why, when the job cannot be re-rendered now."""
        if why := await self.rerender_problem(job):
            raise InvalidRequest(why)
        if self.is_rerendering(job.id):  # another call got in while the files were being checked
            raise InvalidRequest(RERENDER_BUSY.format(job_id=job.id))
        task = asyncio.create_task(self._rerender(job, brand), name=f"rerender-{job.id}")
        self._rerenders[job.id] = task
        task.add_done_callback(functools.partial(self._forget_rerender, job.id))
        return task

    async def rerender(self, job: Job, *, brand: BrandKit | None = None) -> Job:
        """`start_rerender` and wait for it (the CLI's way)."""
        return await (await self.start_rerender(job, brand=brand))

    def _forget_rerender(self, job_id: str, task: asyncio.Task[Job]) -> None:
        if self._rerenders.get(job_id) is task:
            del self._rerenders[job_id]

    async def _rerender(self, job: Job, brand: BrandKit | None) -> Job:
        started = time.monotonic()
        if brand is not None:
            kit = brand
        elif job.guild_id is not None:
            kit = await self.store.guild_brand(job.guild_id)
        else:  # made in a terminal: no server kit to follow, so the one it was made with (or the defaults)
            kit = job.brand or BrandKit()
        directory = self.job_dir(job)
        lock = await asyncio.to_thread(final_versions.take_render_lock, directory)
        if lock is None:  # another process (the bot, a `jant rerender`) is re-rendering this job
            raise InvalidRequest(RERENDER_BUSY.format(job_id=job.id))
        scratch: Path | None = None
        try:
            scratch = await asyncio.to_thread(final_versions.fresh_scratch, directory)
            # Drawn with the new kit; the job itself keeps the old one until the new ad is in place.
            draft = job.model_copy(update={"brand": kit})
            done = [s for s in draft.scenes if s.done]

            async def step(what: str) -> None:
                await self._publish(EventKind.RERENDERING, job, detail=what)

            result, audio = await self._render(
                draft, done, scratch / final_versions.FINAL_NAME, recut_in=scratch, step=step
            )
            recut = [(scratch / f"scene-{s.index}.mp4", directory / f"scene-{s.index}.mp4") for s in done]
            # The other hooks and formats again, the first run's way, from the re-cut look: made in the
            # scratch folder and installed with the new final, so a re-render that fails keeps the old set.
            hook_notes: list[str] = []
            if draft.request.hooks > 1:
                await step("cutting the other hooks")
                cut = {s.index: scratch / f"scene-{s.index}.mp4" for s in done}
                hook_notes = await self._hook_variants(draft, result.path, cut)
            notes = [n for n in job.notes if not n.startswith(HOOK_NOTE_PREFIX)] + hook_notes
            stale: list[Path] = []
            if wanted := extra_formats(job.request.formats):
                await step("making the other formats")
                results, missing = await self._make_formats(draft, result.path, audio) or ([], [])
                made = {r.format.key for r in results if r.path}
                recut += [(scratch / f.filename, directory / f.filename) for f in wanted if f.key in made]
                # One not made this time loses its old file (never posted as the new look) and its old note.
                stale = [directory / f.filename for f in wanted if f.key not in made]
                old = (FORMATS_FAILED, *(not_made_prefix(f) for f in wanted))
                notes = [n for n in notes if not n.startswith(old)] + missing
            kept = await asyncio.to_thread(final_versions.install_new_final, directory, result.path, recut)
            await asyncio.to_thread(_unlink_all, stale)
            await asyncio.to_thread(_move_hook_finals, scratch, directory)
            final = directory / final_versions.FINAL_NAME
            await self.store.update(job, final_path=str(final), final_bytes=result.bytes, brand=kit, notes=notes)
            for s in done:
                await self.store.set_normalized(job, s.index, str(directory / f"scene-{s.index}.mp4"))
            await self.store.event(job, "rerendered", detail=kept.name if kept else None)
        finally:
            if scratch is not None:
                await asyncio.to_thread(shutil.rmtree, scratch, True)
            await asyncio.to_thread(final_versions.release_render_lock, lock)
        log.info("job %s re-rendered in %.1f s", job.id, time.monotonic() - started)
        await self._publish(EventKind.RERENDERED, job, detail=kept.name if kept else None)
        return job

    # -- other formats of a finished ad ------------------------------------------------------------

    def is_making_formats(self, job_id: str) -> bool:
        task = self._format_renders.get(job_id)
        return task is not None and not task.done()

    async def formats_state(self, job: Job) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(made, missing): the job's extra formats on disk beside its final, and those still to make."""
        if not job.final_path:  # its media were deleted (retention), or it never had a final
            return (), tuple(f.key for f in extra_formats(FORMATS))
        return await asyncio.to_thread(formats_on_disk, Path(job.final_path))

    async def formats_problem(self, job: Job, keys: Sequence[str] | None = None) -> str | None:
        """Why `make_formats(job, keys)` cannot run now (default keys: every missing format), in the
        words the user sees; None when it can."""
        live = self._jobs.get(job.id, job)
        made, missing = await self.formats_state(live)
        final = Path(live.final_path) if live.final_path else None
        on_disk = final is not None and await asyncio.to_thread(lambda: final.is_file() and self._media_on_disk(live))
        busy = "formats" if self.is_making_formats(job.id) else "rerender" if self.is_rerendering(job.id) else None
        why = formats_refusal(live.id, live.status, media_on_disk=on_disk, busy=busy, made=made, missing=missing)
        if why is None and keys is not None:
            why = choice_problem(live.id, keys, missing)
        return why

    async def start_formats(self, job: Job, keys: Sequence[str] | None = None) -> asyncio.Task[list[FormatResult]]:
        """Cut a finished ad into more shapes (default: every one it lacks) in a background task, from
        the same clips and soundtrack as its 9:16 final, drawn the way `_formats` draws them at the end
        of a run: no prediction is made. The shapes made join the job's formats (a later re-post or
        re-render includes them); one that cannot be made is in the job's notes and in the results.
        Raises `InvalidRequest`, saying why, when it cannot run now."""
        if why := await self.formats_problem(job, keys):
            raise InvalidRequest(why)
        if self.is_making_formats(job.id) or self.is_rerendering(job.id):  # one got in while files were checked
            raise InvalidRequest(FORMATS_BUSY.format(job_id=job.id))
        if not await asyncio.to_thread(final_versions.render_lock_free, self.job_dir(job)):
            raise InvalidRequest(FORMATS_LOCKED.format(job_id=job.id))  # `jant rerender` or `jant formats`
        wanted = in_table_order(keys if keys is not None else (await self.formats_state(job))[1])
        task = asyncio.create_task(self._add_formats(job, wanted), name=f"formats-{job.id}")
        self._format_renders[job.id] = task
        task.add_done_callback(functools.partial(self._forget_formats, job.id))
        return task

    async def make_formats(self, job: Job, keys: Sequence[str] | None = None) -> list[FormatResult]:
        """`start_formats` and wait for it (the CLI's way)."""
        return await (await self.start_formats(job, keys))

    def _forget_formats(self, job_id: str, task: asyncio.Task[list[FormatResult]]) -> None:
        if self._format_renders.get(job_id) is task:
            del self._format_renders[job_id]

    async def _add_formats(self, job: Job, keys: tuple[str, ...]) -> list[FormatResult]:
        started = time.monotonic()
        directory = self.job_dir(job)
        # The re-render's lock: a re-render replaces the final and the scene cuts these are made beside.
        lock = await asyncio.to_thread(final_versions.take_render_lock, directory)
        if lock is None:  # another process (the bot, a `jant rerender` or `jant formats`) holds it
            raise InvalidRequest(FORMATS_BUSY.format(job_id=job.id))
        scratch: Path | None = None
        results: list[FormatResult] = []
        try:
            assert job.final_path is not None
            scratch = await asyncio.to_thread(final_versions.fresh_scratch, directory)
            done = [s.index for s in job.scenes if s.done]
            await self._publish(EventKind.FORMATTING, job, detail="mixing the sound")
            audio = await self._soundtrack(job, done, scratch=scratch)
            sources = await self._format_sources(job, {})
            for n, key in enumerate(keys, 1):
                await self._publish(EventKind.FORMATTING, job, detail=f"cutting the {key} version ({n} of {len(keys)})")
                results += await render_formats(
                    self.composer, Path(job.final_path), (key,), sources, soundtrack=audio, byte_limit=job.byte_limit
                )
            made = tuple(r.format.key for r in results if r.path)
            stale = tuple(not_made_prefix(FORMATS[k]) for k in keys)
            notes = [n for n in job.notes if not n.startswith(stale)]
            notes += [f"{not_made_prefix(r.format)}: {r.error}" for r in results if r.error]
            request = job.request.model_copy(update={"formats": in_table_order((*job.request.formats, *made))})
            await self.store.update(job, request=request, notes=notes)
            await self.store.event(job, "formats", detail=", ".join(made))
        finally:
            if scratch is not None:
                await asyncio.to_thread(shutil.rmtree, scratch, True)
            await asyncio.to_thread(final_versions.release_render_lock, lock)
        log.info("job %s: %s cut in %.1f s", job.id, ", ".join(keys), time.monotonic() - started)
        await self._publish(EventKind.FORMATTED, job, detail=", ".join(made))
        return results

    # -- cancel, retry, resume -------------------------------------------------------------------

    async def cancel(self, job: Job, *, by: str | None = None) -> Job:
        """Stop a job: cancel its paid predictions, keep what is finished."""
        live = self._jobs.get(job.id, job)
        _check_allowed(live, Action.CANCEL)
        self._user_cancelled.add(job.id)
        if not await self._stop_run(live):
            await self._after_cancel(live)
        await self.store.event(live, "cancelled", detail=by)
        return live

    async def _stop_run(self, job: Job) -> bool:
        """Cancel the job's running task and wait for it (its `_after_cancel` does the rest); False when
        none runs. Hook: the durable engine stops the run's workflow and cancels it in DBOS."""
        task = self._tasks.get(job.id)
        if task is None or task.done():
            return False
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return True

    async def _after_cancel(self, job: Job) -> None:
        """A cancelled task: by the user → cancel predictions and mark cancelled; by shutdown → leave
        everything as it is, so the next start resumes polling the same predictions."""
        user_cancelled = job.id in self._user_cancelled
        self._user_cancelled.discard(job.id)
        if not user_cancelled:
            for stage in job.all_stages():
                # The cancel may have landed between a change in memory and its write: flush.
                await self.store.save_stage(stage)
            return
        await self._stop_stages(job)
        await self.store.update(job, status=JobStatus.CANCELLED, error="Cancelled.", finished_at=utcnow())
        await self._settle(job)
        await self._publish(EventKind.JOB_FINISHED, job)

    async def _settle(self, job: Job) -> None:
        """An ended job gives back what it held and did not spend; a job stopped by a shutdown keeps
        its hold, to settle when it ends after the restart."""
        try:
            await self.spend_caps.settle(job)
        except Exception:  # the ad is made; the hold is settled on the next try (Retry, a restart)
            log.exception("job %s: could not settle its budget reservation", job.id)

    async def _stop_stages(self, job: Job) -> None:
        """The job will not go on: cancel its paid predictions in flight and mark what did not finish
        cancelled; finished stages are kept."""
        for stage in job.all_stages():
            if stage.status.is_terminal:
                await self.store.save_stage(stage)
                continue
            provider = self._provider_of(job, stage)
            if stage.prediction_id and stage.status is StageStatus.RUNNING and provider is not None:
                try:
                    await provider.cancel(stage.prediction_id)
                    await self.store.finish_prediction(stage.prediction_id, "canceled", None)
                except Exception:
                    log.warning("could not cancel prediction %s of job %s", stage.prediction_id, job.id,
                                exc_info=True)  # fmt: skip
            stage.status = StageStatus.CANCELLED
            await self.store.save_stage(stage)

    def _provider_of(self, job: Job, stage: StageState) -> StageProvider | None:
        """The provider that makes `stage` (a scene's seed: the painter or the product photo)."""
        scene = None
        if stage.scene_index != JOB_LEVEL_INDEX and job.storyboard is not None:
            scene = job.storyboard.scenes[stage.scene_index - 1]
        return self.providers.get(stage.kind.provider_key(job, scene))

    def _check_not_rerendering(self, job: Job) -> None:
        if self.is_rerendering(job.id):
            raise InvalidRequest(f"Job `{job.id}` is being re-rendered; try again once its new ad is posted.")
        if self.is_making_formats(job.id):  # they read the clips a re-made scene would replace
            raise InvalidRequest(f"Job `{job.id}` is being cut into other formats; try again once they are posted.")

    async def retry_failed(self, job: Job) -> asyncio.Task[Job]:
        """Re-run only the scenes that failed; finished scenes are reused and the ad re-joined."""
        _check_allowed(job, Action.RETRY)
        self._check_not_rerendering(job)
        if job.storyboard is None:
            raise InvalidRequest(f"Job {job.id} failed before it had a storyboard: make a new ad instead.")
        await self.reserve_rerun(job)
        for stage in job.all_stages():
            if stage.status is not StageStatus.DONE:
                stage.reset()
                await self.store.save_stage(stage)
        await self.store.update(job, status=JobStatus.QUEUED, error=None, started_at=None, finished_at=None)
        await self.store.event(job, "retry_failed")
        return self.start(job)

    async def reserve_rerun(self, job: Job, index: int | None = None, part: str | None = None) -> None:
        """Check and hold what Retry failed (no `index`) or a re-roll of scene `index`'s `part` will cost,
        before anything changes: over a budget it raises `BudgetExceeded` and the job is as it was.
        Asking again for the same re-run holds it once."""
        if index is None or part is None:
            stages = [st for st in job.all_stages() if st.status is not StageStatus.DONE]
            what = "Re-making the failed scenes"
        else:
            scene_stages = job.scene(index).stages
            stages = [scene_stages[k] for k in _rerolled(scene_stages, part)]
            what = f"Re-rolling scene {index}"
        await self.spend_caps.reserve(job, amount_usd=stages_cost_usd(job, stages, self.settings), what=what)

    def check_reroll(self, job: Job, index: int, part: str) -> None:
        """Raise `InvalidRequest` (saying why) unless `reroll_scene(job, index, part)` can run."""
        _check_allowed(job, Action.REROLL)
        self._check_not_rerendering(job)
        if job.storyboard is None or job.started_at is None:
            raise InvalidRequest(f"Job {job.id} never started generating: there is no scene to re-roll.")
        if not 1 <= index <= len(job.storyboard.scenes):
            raise InvalidRequest(f"There is no scene {index}; this storyboard has {len(job.storyboard.scenes)}.")
        stages = job.scene(index).stages
        if part not in stages:
            raise InvalidRequest(f"Scene {index} has no {part} to re-roll; it has: {', '.join(stages)}.")
        after = stages[part].kind.after
        if after in stages and stages[after].status is not StageStatus.DONE:
            raise InvalidRequest(
                f"Scene {index} has no {stages[after].kind.noun} to make a {stages[part].kind.noun} from again; "
                f"re-roll its {after} instead."
            )

    async def reroll_scene(self, job: Job, index: int, part: str) -> asyncio.Task[Job]:
        """Make one part of a scene again — a new seed image (and so a new clip), or only a new clip from
        the same seed — with a fresh random seed, then re-join the ad. Every other scene is reused."""
        self.check_reroll(job, index, part)
        await self.reserve_rerun(job, index, part)
        stages = job.scene(index).stages
        again = _rerolled(stages, part)
        for kind in again:
            stage = stages[kind]
            stage.reset()
            stage.path, stage.seed = None, secrets.randbelow(2**31)  # a new take
            await self.store.save_stage(stage)
        if any(stages[k].kind.footage for k in again):
            await self.store.set_normalized(job, index, None)
        # started_at None: the status message counts this run's time, not the days since the first one.
        await self.store.update(job, status=JobStatus.QUEUED, error=None, started_at=None, finished_at=None)
        await self.store.event(job, "reroll", scene_index=index, stage=part)
        await self._publish(EventKind.JOB_QUEUED, job, index, part)
        return self.start(job)

    async def resume_all(self) -> list[asyncio.Task[Job]]:
        """After a restart: pick up every job that was queued, running or composing."""
        statuses = [JobStatus.QUEUED.value, JobStatus.RUNNING.value, JobStatus.COMPOSING.value]
        tasks = []
        for brief in await self.store.list(statuses=statuses, limit=10_000):
            job = await self.store.get(brief.id)
            if job is None or job.storyboard is None:
                continue
            await self.store.event(job, "resumed")
            tasks.append(self.start(job))
        return tasks

    async def shutdown(self, grace_s: float = 8.0) -> None:
        """Stop running tasks without cancelling predictions; state is already on disk."""
        tasks = [t for t in self._stoppable_tasks() if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        await self._progress_writes.close()

    def _stoppable_tasks(self) -> list[asyncio.Task[Any]]:
        """What `shutdown` stops. Hook: the durable engine adds the tasks its workflows run in."""
        # A re-render stopped half-way leaves the old final as it was: it is simply asked for again.
        return [*self._tasks.values(), *self._rerenders.values(), *self._format_renders.values()]

    async def _publish(
        self,
        kind: EventKind,
        job: Job,
        scene_index: int | None = None,
        stage: str | None = None,
        detail: str | None = None,
    ) -> None:
        await self.bus.publish(ProgressEvent(kind, snapshot(job), scene_index, stage, detail))

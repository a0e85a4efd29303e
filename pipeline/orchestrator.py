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
import tempfile
import time
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.action_rules import Action, refusal_with_rule
from pipeline.audio_mix import AUDIO_BITRATE
from pipeline.captions import uncovered_scripts
from pipeline.composer import Composer, target_bitrate
from pipeline.config import Settings
from pipeline.errors import InvalidRequest, JantError, PlannerError
from pipeline.events import EventBus, EventKind, ProgressEvent, snapshot
from pipeline.formats import SceneSource, extra_formats, not_made_prefix, render_formats
from pipeline.incidents import is_unexplained, report_unexpected
from pipeline.limiter import FairLimiter
from pipeline.models import (
    AdRequest,
    Job,
    JobStatus,
    Scene,
    SceneTiming,
    StageState,
    StageStatus,
    Storyboard,
    storyboard_problem,
    utcnow,
)
from pipeline.progress_writer import ProgressWriter
from pipeline.providers.base import Providers, StageContext, StageResult
from pipeline.quotas import ACTIVE, QuotaLimits, check_concurrent, check_daily, day_window
from pipeline.retry import RetryPolicy, classify
from pipeline.soundtrack import caption_words, fit_timing, make_soundtrack, soundtrack_key, voice_settled
from pipeline.stage_kinds import JOB_LEVEL_INDEX, STAGE_KINDS, StageInputs, StageName, dependents, spoken_language
from pipeline.store import JobStore
from pipeline.voice_choice import check_voice_choice

log = logging.getLogger(__name__)

_PROGRESS_PERSIST_STEP = 10.0  # persist progress every 10 points; events go out on every report


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
        profile = settings.media.profile
        self.composer = composer or Composer(
            profile.output_width, profile.output_height, interpolate=settings.media.interpolate
        )
        self.retry = retry or RetryPolicy(settings.limits.max_attempts, settings.limits.retry_backoff_s)
        # The kinds new jobs get a stage of: every required one, and the optional ones with a provider.
        missing = [k.name for k in STAGE_KINDS.values() if not k.optional and providers.get(k.name) is None]
        if missing:
            raise ValueError(f"no provider for the stage kinds every ad needs: {', '.join(missing)}")
        self.kinds = [k.name for k in STAGE_KINDS.values() if providers.get(k.name) is not None]
        self._tasks: dict[str, asyncio.Task[Job]] = {}
        self._progress_writes = ProgressWriter(store.save_progress)
        self._user_cancelled: set[str] = set()
        self._jobs: dict[str, Job] = {}  # live jobs: the copy the running task mutates
        self.quotas = QuotaLimits(
            settings.limits.user_concurrent_jobs, settings.limits.guild_concurrent_jobs, settings.limits.user_daily_jobs
        )
        self._approval_lock = asyncio.Lock()  # quota check and status change happen as one step
        # Per running job: set once its scene timing is fixed (every voice stage ended); the mix that
        # starts as soon as voice and music are ready.
        self._timing_fixed: dict[str, asyncio.Event] = {}
        self._mixes: dict[str, asyncio.Task[Path]] = {}

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
            | {kind: p.name for kind, p in self.providers.stages.items() if kind in self.kinds},
        )
        await self.store.create(job)
        await self._publish(EventKind.JOB_CREATED, job)
        return job

    def check_request(self, request: AdRequest) -> None:
        """Raise `InvalidRequest` for what this Jant cannot do for `request` (a voice it does not
        have), before anything is written or paid."""
        check_voice_choice(self.providers, request.voice, request.speak)

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
    ) -> Job:
        """Change one scene before approval; the whole storyboard is re-validated."""
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
        try:
            storyboard = Storyboard.model_validate(data)
        except ValidationError as exc:
            raise InvalidRequest(f"That edit breaks the storyboard: {storyboard_problem(exc)}.") from exc
        await self.store.set_storyboard(
            job, storyboard, JobStatus.AWAITING_APPROVAL, self.settings.limits.max_attempts, self._kinds_for(job)
        )
        await self.store.event(job, "scene_edited", scene_index=index)
        await asyncio.to_thread(self._write_storyboard_file, job)
        await self._publish(EventKind.STORYBOARD_READY, job, scene_index=index)
        return job

    def _kinds_for(self, job: Job) -> list[str]:
        """The kinds this job gets stages of: a job asked to be silent (`--no-voice`) has no voice."""
        return [k for k in self.kinds if job.request.speak or k != StageName.VOICE]

    def _write_storyboard_file(self, job: Job) -> None:
        assert job.storyboard is not None
        directory = self.job_dir(job)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {"job_id": job.id, "request": job.request.model_dump(mode="json"),
                   "offline_preview": job.offline, "storyboard": job.storyboard.model_dump(mode="json")}  # fmt: skip
        _write_atomically(directory / "storyboard.json", json.dumps(payload, indent=2, ensure_ascii=False))

    def job_dir(self, job: Job) -> Path:
        return job.directory(self.settings.storage.data_dir)

    async def approve(self, job: Job, *, approved_by: str | None = None) -> asyncio.Task[Job]:
        async with self._approval_lock:
            _check_allowed(job, Action.APPROVE)
            if job.requester_id is not None:
                store = self.store
                user_active = await store.count(requester_id=job.requester_id, statuses=ACTIVE)
                guild_active = await store.count(guild_id=job.guild_id, statuses=ACTIVE) if job.guild_id else None
                check_concurrent(self.quotas, user_active, guild_active)
            await self.store.update(job, status=JobStatus.QUEUED)
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
        task = asyncio.create_task(self._run(job), name=f"job-{job.id}")
        self._tasks[job.id] = task
        task.add_done_callback(functools.partial(self._forget, job.id))
        return task

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
            await self._finish(job)
        finally:
            self._timing_fixed.pop(job.id, None)
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

    async def _run_scenes(self, job: Job, scenes: list[Scene]) -> None:
        """Every stage still to make: the job's own and those of `scenes`, each as soon as the stage
        it waits for is done. (A subclass may order them differently: see benchmarks/barrier.py.)"""
        per_scene = [(scene, stage) for scene in scenes for stage in self._roots(job.scene(scene.index).stages)]
        # A finished scene whose voice has not ended (Retry failed reset it, a restart interrupted it)
        # still gets spoken; one that ended, even failed, is left as it is.
        assert job.storyboard is not None
        running = {scene.index for scene in scenes}
        per_scene += [
            (scene, stage)
            for scene in job.storyboard.scenes
            if scene.index not in running
            for stage in self._roots(job.scene(scene.index).stages)
            if stage.kind.optional and not stage.status.is_terminal
        ]
        await _together(
            *(self._run_from(job, stage) for stage in self._roots(job.job_stages)),
            *(self._run_from(job, stage, scene) for scene, stage in per_scene),
        )

    @staticmethod
    def _roots(stages: Mapping[str, StageState]) -> list[StageState]:
        """The stages that wait for nothing (or for a kind this job has no stage of)."""
        return [st for st in stages.values() if st.kind.after is None or st.kind.after not in stages]

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
            path = await self._normalise(job, scene, stage, path)
        if path is None:
            for later in waiting:
                await self._skip(job, later, f"its {stage.kind.noun} failed")
            return
        inputs[stage.stage] = path
        await _together(*(self._run_from(job, later, scene, inputs) for later in waiting))

    async def _normalise(self, job: Job, scene: Scene, stage: StageState, clip_path: Path) -> Path | None:
        """Normalise the scene's footage now, while other scenes still generate, so the final join is a
        cheap copy. A failure is recorded on the stage."""
        assert job.storyboard is not None
        normalized = self.job_dir(job) / f"scene-{scene.index}.mp4"
        # The scene's final length follows its voice: voices take seconds, clips a minute, so this
        # wait is over before the clip lands.
        timing = await self._timing(job)
        max_bitrate = None
        if job.byte_limit:
            audio_bps = AUDIO_BITRATE if self._wants_soundtrack(job) else 0
            max_bitrate = target_bitrate(timing.total, job.byte_limit, audio_bps=audio_bps)
        try:
            await self.composer.normalize_clip(
                clip_path, normalized, timing.durations[scene.index - 1], max_bitrate=max_bitrate,
                urgent=_ad_waits_only_on(job, scene.index), **self._overlay(job, scene, timing),
            )  # fmt: skip
        except JantError as exc:
            stage.status, stage.error = StageStatus.FAILED, f"Could not prepare the clip: {exc}"
            await self.store.save_stage(stage)
            await self._publish(EventKind.STAGE_FAILED, job, scene.index, stage.stage, stage.error)
            return None
        await self.store.set_normalized(job, scene.index, str(normalized))
        await self._publish(EventKind.CLIP_NORMALIZED, job, scene.index, stage.stage)
        return normalized

    def _overlay(self, job: Job, scene: Scene, timing: SceneTiming) -> dict[str, Any]:
        """What is drawn over a scene's picture, as normalize_clip's keyword arguments: the same for
        the master and every other format (pipeline.formats), each laid out for its frame."""
        return {
            "caption": scene.on_screen_text,
            "words": caption_words(job, scene, timing),
            "captions": self.settings.audio.captions,
            "language": spoken_language(job),
        }

    async def _formats(self, job: Job, final: Path, audio: Path | None) -> None:
        """The other shapes the request asks for (4:5, 1:1, 16:9), written beside `final` from the same
        clips and soundtrack: no prediction. One that cannot be made is said in the job's notes."""
        if job.storyboard is None or not extra_formats(job.request.formats):
            return
        timing = await self._timing(job)
        sources = [
            SceneSource(Path(state.clip.path), timing.durations[scene.index - 1], self._overlay(job, scene, timing))
            for scene in job.storyboard.scenes
            if (state := job.scene(scene.index)).done and state.clip.path
        ]
        try:
            results = await render_formats(
                self.composer, final, job.request.formats, sources, soundtrack=audio, byte_limit=job.byte_limit
            )
        except Exception:  # the master is made: a fault in the extras must not cost the user the ad
            log.exception("job %s: the extra formats could not be made", job.id)
            why = "The other formats were not made: an unexpected error (logged); the 9:16 ad is complete."
            await self.store.update(job, notes=[*job.notes, why])
            return
        missing = [f"{not_made_prefix(r.format)}: {r.error}" for r in results if r.error]
        if missing:
            await self.store.update(job, notes=[*job.notes, *missing])
        await self.store.event(job, "formats", detail=", ".join(r.format.key for r in results if r.path))

    # -- the voice, the scene timing and the soundtrack -------------------------------------------

    def _wants_soundtrack(self, job: Job) -> bool:
        """The ad has a sound track: when it has a voice or music stage, or when both were turned
        off on purpose (then it is silent, and the notes say why)."""
        if any(st.stage in (StageName.VOICE, StageName.MUSIC) for st in job.all_stages()):
            return True
        return self.settings.audio.voice == "none" and self.settings.audio.music == "none"

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

    async def _mix(self, job: Job, timing: SceneTiming, scenes: set[int] | None = None) -> Path:
        """The soundtrack for `timing` (of the scenes in `scenes`, default all): the stored one when it
        was made from the same lines, music and timing, else a new mix."""
        key = soundtrack_key(job, timing)
        if scenes is None and job.soundtrack is not None and job.soundtrack.key == key:
            if await asyncio.to_thread(Path(job.soundtrack.path).exists):
                return Path(job.soundtrack.path)
        made = await make_soundtrack(self.composer, job, timing, self.job_dir(job), scenes=scenes)
        if scenes is None:
            await self.store.update(job, soundtrack=made)
        return Path(made.path)

    async def _soundtrack(self, job: Job, joined: list[int]) -> Path | None:
        """The sound track of the scenes being joined (None: the ad is silent by design)."""
        if not self._wants_soundtrack(job):
            return None
        timing = await self._timing(job)
        if len(joined) < len(job.scenes):
            # Missing scenes: the lines of the others move up with their pictures.
            return await self._mix(job, timing, set(joined))
        mix = self._mixes.get(job.id)
        if mix is None:
            mix = self._mixes[job.id] = asyncio.create_task(self._mix(job, timing))
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
        if music is None:
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
        it waits for, by kind."""
        kind = stage.kind
        if stage.status is StageStatus.DONE and stage.path and await asyncio.to_thread(Path(stage.path).exists):
            return Path(stage.path)
        provider = self.providers.get(stage.stage)
        if provider is None:  # an optional kind whose provider was switched off since the storyboard
            await self._skip(job, stage, f"no {kind.noun} provider is set up")
            return None
        dest = kind.dest(self.job_dir(job), stage.scene_index)
        # A stage left RUNNING with a prediction id was interrupted: resume that same attempt.
        resume_id = stage.prediction_id if stage.status is StageStatus.RUNNING else None
        attempt = stage.attempt if resume_id else stage.attempt + 1
        stage.error = None
        while True:
            stage.status, stage.progress = StageStatus.QUEUED, 0.0
            await self.store.save_stage(stage)
            await self._publish(EventKind.STAGE_QUEUED, job, stage.scene_index, stage.stage)
            async with self.limiter.slot(job.requester_id):
                stage.attempt, stage.status = attempt, StageStatus.RUNNING
                if not resume_id:
                    stage.prediction_id = None
                await self.store.save_stage(stage)
                await self._publish(EventKind.STAGE_RUNNING, job, stage.scene_index, stage.stage)
                ctx = self._context(job, stage, provider.name, resume_id)
                request = StageInputs(job, scene, stage, self.settings, dest, dict(inputs or {}))
                work = kind.start(provider, request, ctx)
                try:
                    result = await asyncio.wait_for(work, timeout=self._outer_deadline(stage))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
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
                        return None
                    stage.status, stage.error = StageStatus.RETRYING, message
                    await self.store.save_stage(stage)
                    await self._publish(EventKind.STAGE_RETRYING, job, stage.scene_index, stage.stage, message)
                    delay = self.retry.delay(attempt, decision)
                    resume_id = None
                    attempt += 1
                else:
                    await self._stage_done(job, stage, result)
                    return result.path
            await asyncio.sleep(delay)  # outside the slot: a waiting stage holds no capacity

    def _context(self, job: Job, stage: StageState, provider: str, resume_id: str | None) -> StageContext:
        last_saved = [stage.progress]

        async def on_progress(percent: float, note: str | None) -> None:
            stage.progress = round(percent, 1)
            if percent - last_saved[0] >= _PROGRESS_PERSIST_STEP:
                last_saved[0] = percent
                self._progress_writes.note(stage)  # never awaited here: the poll loop must not queue behind it
            await self._publish(EventKind.STAGE_PROGRESS, job, stage.scene_index, stage.stage, note)

        async def on_prediction(prediction_id: str) -> None:
            await self.store.record_prediction(stage, provider, prediction_id)

        return StageContext(
            job_id=job.id, scene_index=stage.scene_index, stage=stage.stage, attempt=stage.attempt,
            existing_prediction_id=resume_id, on_progress=on_progress, on_prediction=on_prediction,
            in_flight=lambda: self.limiter.in_flight,
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
        if result.prediction_id:
            stage.prediction_id = result.prediction_id
            await self.store.finish_prediction(result.prediction_id, "succeeded", result.predict_time)
        await self.store.save_stage(stage)
        if result.predict_time or result.cost_usd:
            gpu = round(job.gpu_seconds + (result.predict_time or 0.0), 3)
            # Billed per unit (a voice's characters, a music run) or else by GPU time: never both.
            if result.cost_usd is not None:
                cost = result.cost_usd
            else:
                cost = (result.predict_time or 0.0) * self.settings.replicate.price_per_gpu_second
            await self.store.update(job, gpu_seconds=gpu, cost_usd=round(job.cost_usd + cost, 4))
        await self._publish(EventKind.STAGE_DONE, job, stage.scene_index, stage.stage)

    async def _finish(self, job: Job) -> None:
        assert job.storyboard is not None
        done = [s for s in job.scenes if s.done]
        failed = [s for s in job.scenes if not s.done]
        if not done:
            reasons = "; ".join(f"scene {s.index}: {s.error or 'failed'}" for s in failed)
            await self.store.update(job, status=JobStatus.FAILED, error=f"No scene could be made ({reasons}).",
                                    finished_at=utcnow())  # fmt: skip
            await self._publish(EventKind.JOB_FINISHED, job)
            return
        await self.store.update(job, status=JobStatus.COMPOSING)
        await self._publish(EventKind.COMPOSING, job)
        directory = self.job_dir(job)
        await self._refresh_notes(job)
        try:
            audio = await self._soundtrack(job, [s.index for s in done])
        except JantError as exc:  # the sound is optional: the ad goes out silent, saying why
            log.warning("job %s: the soundtrack could not be mixed: %s", job.id, exc.user_message)
            audio = None
            why = f"The ad has no sound: the mix failed ({exc.user_message})."
            await self.store.update(job, notes=[*job.notes, why])
        clips = [Path(s.normalized_path) for s in done if s.normalized_path]
        final = directory / "final.mp4"
        try:
            scenes = {s.index: s for s in job.storyboard.scenes}
            if audio is not None:
                joining = self.composer.join(clips, final, byte_limit=job.byte_limit, audio=audio)
            else:  # as before the ad had sound: a composer without audio is called the same way
                joining = self.composer.join(clips, final, byte_limit=job.byte_limit)
            # Side by side: the join is ffmpeg in a subprocess, the sheet Pillow in a thread, and the
            # time from the last clip to the finished ad is what the requester waits for.
            result, _sheet = await _together(
                joining,
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
            return
        await self._formats(job, result.path, audio)
        status = JobStatus.COMPLETED if not failed else JobStatus.PARTIAL
        error = None
        if failed:
            error = "Missing scenes: " + "; ".join(f"scene {s.index}: {s.error or 'failed'}" for s in failed)
        await self.store.update(
            job, status=status, error=error, final_path=str(result.path), final_bytes=result.bytes,
            finished_at=utcnow(),
        )  # fmt: skip
        await self.store.event(job, "finished", detail=status.value)
        await self._publish(EventKind.JOB_FINISHED, job)

    # -- cancel, retry, resume -------------------------------------------------------------------

    async def cancel(self, job: Job, *, by: str | None = None) -> Job:
        """Stop a job: cancel its paid predictions, keep what is finished."""
        live = self._jobs.get(job.id, job)
        _check_allowed(live, Action.CANCEL)
        self._user_cancelled.add(job.id)
        task = self._tasks.get(job.id)
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        else:
            await self._after_cancel(live)
        await self.store.event(live, "cancelled", detail=by)
        return live

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
        await self._publish(EventKind.JOB_FINISHED, job)

    async def _stop_stages(self, job: Job) -> None:
        """The job will not go on: cancel its paid predictions in flight and mark what did not finish
        cancelled; finished stages are kept."""
        for stage in job.all_stages():
            if stage.status.is_terminal:
                await self.store.save_stage(stage)
                continue
            provider = self.providers.get(stage.stage)
            if stage.prediction_id and stage.status is StageStatus.RUNNING and provider is not None:
                try:
                    await provider.cancel(stage.prediction_id)
                    await self.store.finish_prediction(stage.prediction_id, "canceled", None)
                except Exception:
                    log.warning("could not cancel prediction %s of job %s", stage.prediction_id, job.id,
                                exc_info=True)  # fmt: skip
            stage.status = StageStatus.CANCELLED
            await self.store.save_stage(stage)

    async def retry_failed(self, job: Job) -> asyncio.Task[Job]:
        """Re-run only the scenes that failed; finished scenes are reused and the ad re-joined."""
        _check_allowed(job, Action.RETRY)
        if job.storyboard is None:
            raise InvalidRequest(f"Job {job.id} failed before it had a storyboard: make a new ad instead.")
        for stage in job.all_stages():
            if stage.status is not StageStatus.DONE:
                stage.reset()
                await self.store.save_stage(stage)
        await self.store.update(job, status=JobStatus.QUEUED, error=None, started_at=None, finished_at=None)
        await self.store.event(job, "retry_failed")
        return self.start(job)

    def check_reroll(self, job: Job, index: int, part: str) -> None:
        """Raise `InvalidRequest` (saying why) unless `reroll_scene(job, index, part)` can run."""
        _check_allowed(job, Action.REROLL)
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
        stages = job.scene(index).stages
        again = [part]
        for kind in again:  # the part and every stage that waits for it, however deep
            again += [k.name for k in dependents(kind) if k.name in stages and k.name not in again]
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
        tasks = [t for t in self._tasks.values() if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        await self._progress_writes.close()

    async def _publish(
        self,
        kind: EventKind,
        job: Job,
        scene_index: int | None = None,
        stage: str | None = None,
        detail: str | None = None,
    ) -> None:
        await self.bus.publish(ProgressEvent(kind, snapshot(job), scene_index, stage, detail))

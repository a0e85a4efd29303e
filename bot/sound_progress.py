"""What a job's voice and music stages are doing, and which parts a finished ad lacks, in words.

Read from one job snapshot alone, with no markup, so the Discord status message, `jant makead`'s live
progress and `jant show` all say the same thing. The voice is summed up in one line with a count
("4/6 lines") rather than a mark on each scene line: seven scene lines stay readable, and a scene
whose line failed is named in that one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pipeline.models import Job, StageState, StageStatus
from pipeline.stage_kinds import StageName


class PartState(StrEnum):
    OFF = "off"  # no provider for the kind: the ad is made without it
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    READY = "ready"
    FAILED = "failed"  # some or all of it: the ad goes on without those parts
    CANCELLED = "cancelled"


_ACTIVE = (StageStatus.RUNNING, StageStatus.RETRYING)


@dataclass(frozen=True)
class PartProgress:
    """One optional part of the ad (the voice over all scenes, or the music bed)."""

    state: PartState
    done: int = 0  # stages done (lines spoken; 1 for a ready music bed)
    total: int = 0  # stages the job has of this kind
    percent: float = 0.0  # the mean progress of its stages, a done one counting 100
    attempt_note: str | None = None  # "line 3: attempt 1/3 failed, retrying: why"
    failures: tuple[tuple[int, str], ...] = ()  # (scene index, 0 for the job; why) of each failed stage


def _percent(stages: list[StageState]) -> float:
    if not stages:
        return 0.0
    return round(sum(100.0 if st.status is StageStatus.DONE else st.progress for st in stages) / len(stages), 1)


def _state(stages: list[StageState]) -> PartState:
    statuses = [st.status for st in stages]
    if not statuses:
        return PartState.OFF
    if StageStatus.RETRYING in statuses:
        return PartState.RETRYING
    if StageStatus.RUNNING in statuses:
        return PartState.RUNNING
    if all(s is StageStatus.DONE for s in statuses):
        return PartState.READY
    if StageStatus.FAILED in statuses and all(s.is_terminal for s in statuses):
        return PartState.FAILED
    if StageStatus.CANCELLED in statuses and all(s.is_terminal for s in statuses):
        return PartState.CANCELLED
    return PartState.QUEUED


def _attempt_note(stages: list[StageState], what: str) -> str | None:
    for st in stages:
        where = f"{what} {st.scene_index}" if st.scene_index else what
        if st.status is StageStatus.RETRYING:
            reason = f": {st.error}" if st.error else ""
            return f"{where}: attempt {st.attempt}/{st.max_attempts} failed, retrying{reason}"
        if st.status is StageStatus.RUNNING and st.attempt > 1:
            return f"{where}: attempt {st.attempt}/{st.max_attempts}"
    return None


def _summary(stages: list[StageState], what: str) -> PartProgress:
    failed = [st for st in stages if st.status is StageStatus.FAILED]
    failures = tuple((st.scene_index, st.error or "no reason recorded") for st in failed)
    return PartProgress(
        state=_state(stages),
        done=sum(st.status is StageStatus.DONE for st in stages),
        total=len(stages),
        percent=_percent(stages),
        attempt_note=_attempt_note(stages, what),
        failures=failures,
    )


def voice_progress(job: Job) -> PartProgress:
    """The voiceover over every scene: how many lines are spoken, and which failed and why."""
    return _summary([s.stages[StageName.VOICE] for s in job.scenes if StageName.VOICE in s.stages], "line")


def music_progress(job: Job) -> PartProgress:
    stage = job.job_stages.get(StageName.MUSIC)
    return _summary([stage] if stage is not None else [], "music bed")


def job_notes(job: Job) -> list[str]:
    """Notes the pipeline wrote on the job (missing parts and why, text no font could draw …)."""
    notes = job.notes
    return [str(n) for n in notes or ()]


def missing_parts(job: Job) -> list[str]:
    """What the ad was made without and why: the job's own notes, then a line for each failed voice
    or music stage that no note already explains."""
    notes = job_notes(job)
    derived: list[tuple[str, str]] = []  # (line, the stage error it quotes)
    music = music_progress(job)
    if music.failures:
        why = music.failures[0][1]
        derived.append((f"Made without music: {why}", why))
    voice = voice_progress(job)
    if voice.failures:
        why = voice.failures[0][1]
        scenes = ", ".join(str(i) for i, _ in voice.failures)
        plural = "s" if len(voice.failures) != 1 else ""
        derived.append((f"Scene{plural} {scenes} made without a voiceover: {why}", why))
    return notes + [line for line, why in derived if not any(why in note for note in notes)]

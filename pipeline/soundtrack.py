"""How a job's voice shapes its ad: the scene timing fitted to the measured lines, where each line and
each caption word sits on the timeline, and the mixed soundtrack (built once voice and music are
ready, before the last clip lands, so the final join stays a stream copy plus a mux).

Pure functions of the job's stored state, except `make_soundtrack`, which runs ffmpeg.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from pipeline.atomic_files import replace_durably, scratch_path
from pipeline.ffmpeg import run_ffmpeg
from pipeline.models import Job, Scene, SceneTiming, Soundtrack, StageState, StageStatus
from pipeline.scene_timing import VOICE_TAIL_S, fit_scenes_to_voice
from pipeline.speech_timing import WordTiming, proportional_word_timings
from pipeline.stage_kinds import StageName
from pipeline.video_models import video_model

LINE_LEAD_S = 0.15  # a breath between the cut and the first word


class Mixer(Protocol):
    async def mix_audio(
        self, voice: Sequence[tuple[Path, float]], music: Path | None, duration: float, dest: Path
    ) -> Path: ...


def voice_stage(job: Job, index: int) -> StageState | None:
    return job.scene(index).stages.get(StageName.VOICE)


def voice_settled(job: Job) -> bool:
    """Every voice stage has ended (done, failed or cancelled): the timing can be fixed."""
    return all(st.status.is_terminal for s in job.scenes for k, st in s.stages.items() if k == StageName.VOICE)


def spoken_length(stage: StageState | None) -> float | None:
    """The measured length of a line that was spoken, None when it was not."""
    if stage is None or stage.status is not StageStatus.DONE or not stage.duration:
        return None
    return stage.duration


def fit_timing(job: Job) -> SceneTiming:
    """Final scene durations for the job: fitted to its measured lines, or the planned ones when
    nothing was spoken. The stored timing is reused when the lines have not changed since."""
    assert job.storyboard is not None
    planned = [s.duration for s in job.storyboard.scenes]
    voice = [spoken_length(voice_stage(job, s.index)) for s in job.storyboard.scenes]
    if job.timing is not None and job.timing.voice == voice and len(job.timing.durations) == len(planned):
        return job.timing
    if not any(voice):
        return SceneTiming(durations=planned, speeds=[1.0] * len(planned), voice=voice, problems=[None] * len(planned))
    # The lead-in comes out of the scene too: a line still ends a full tail before its cut.
    # A fixed-length model's scenes may grow only up to its clip: the clip is never slowed down.
    fitted = fit_scenes_to_voice(
        planned, voice, tail=VOICE_TAIL_S + LINE_LEAD_S, scene_max=video_model(job.request.model).scene_max_s
    )
    return SceneTiming(
        durations=list(fitted.durations), speeds=list(fitted.speeds), voice=voice, problems=list(fitted.problems)
    )


def caption_words(job: Job, scene: Scene, timing: SceneTiming) -> tuple[WordTiming, ...] | None:
    """The scene's spoken words, timed from the start of the scene.

    From the provider's word timings, else the measured line split by word length; both moved by the
    lead-in and squeezed by the line's speed-up. A line that was not spoken is spread over its scene
    (less the tail) so its captions still show. None when the scene has no line."""
    if not scene.voiceover:
        return None
    i = scene.index - 1
    stage = voice_stage(job, scene.index)
    length = spoken_length(stage)
    if length is None:
        return proportional_word_timings(scene.voiceover, timing.durations[i] - VOICE_TAIL_S, lead_in=LINE_LEAD_S)
    assert stage is not None
    words = tuple(stage.words) if stage.words else proportional_word_timings(scene.voiceover, length)
    speed = timing.speeds[i] or 1.0
    return tuple(
        WordTiming(w.word, round(LINE_LEAD_S + w.start / speed, 3), round(LINE_LEAD_S + w.end / speed, 3))
        for w in words
    )


def soundtrack_key(job: Job, timing: SceneTiming, scenes: set[int] | None = None, *, with_music: bool = True) -> str:
    """What the soundtrack is made of: the same key means the same mix."""

    def file_id(path: str | None) -> list[object] | None:
        if path is None:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return [path, None]
        return [path, st.st_size, st.st_mtime_ns]

    music = job.job_stages.get(StageName.MUSIC)
    parts = {
        "scenes": sorted(scenes) if scenes is not None else None,
        "durations": timing.durations,
        "speeds": timing.speeds,
        "voice": [file_id(st.path) if (st := voice_stage(job, s.index)) and spoken_length(st) else None
                  for s in job.scenes],
        "music": file_id(music.path) if with_music and music is not None and music.status is StageStatus.DONE else None,
    }  # fmt: skip
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


async def _at_speed(src: Path, speed: float, dest: Path) -> Path:
    """`src` played `speed`× faster with its pitch kept (atempo), as WAV for the mix."""
    with scratch_path(dest, ".wav") as tmp:
        await run_ffmpeg(["-i", str(src), "-af", f"atempo={speed:.4f}", "-c:a", "pcm_s16le", str(tmp)], timeout=120)
        await asyncio.to_thread(replace_durably, tmp, dest)
    return dest


async def make_soundtrack(
    mixer: Mixer,
    job: Job,
    timing: SceneTiming,
    directory: Path,
    *,
    scenes: set[int] | None = None,
    with_music: bool = True,
) -> Soundtrack:
    """Mix the job's spoken lines (each at its scene's start plus the lead-in, sped up where the timing
    says) over its music bed into `directory/soundtrack.m4a`; either may be missing. With `scenes`,
    only those scenes are in the ad (the others failed): their lines move up with their pictures.
    `with_music=False` leaves the stored bed out (music turned off since it was made)."""
    kept = [s.index for s in job.scenes if scenes is None or s.index in scenes]
    placed: list[tuple[Path, float]] = []
    start = 0.0
    for index in kept:
        stage = voice_stage(job, index)
        if spoken_length(stage) is not None:
            assert stage is not None and stage.path is not None
            path, speed = Path(stage.path), timing.speeds[index - 1]
            if speed > 1.0:
                path = await _at_speed(path, speed, directory / f"voice-{index}.fitted.wav")
            placed.append((path, round(start + LINE_LEAD_S, 3)))
        start += timing.durations[index - 1]
    music = job.job_stages.get(StageName.MUSIC)
    if not with_music:
        music = None
    bed = Path(music.path) if music is not None and music.status is StageStatus.DONE and music.path else None
    name = "soundtrack.m4a" if scenes is None else "soundtrack-partial.m4a"
    key = soundtrack_key(job, timing, scenes, with_music=with_music)
    dest = await mixer.mix_audio(placed, bed, round(start, 3), directory / name)
    return Soundtrack(path=str(dest), key=key)

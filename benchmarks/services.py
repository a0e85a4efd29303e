"""The emulated services, run in the benchmark's parent process (the code under test runs in a child).

Keeping the emulators out of the measured process means its RSS, CPU time and event-loop lag are
Jant's own, not the fake Replicate's JSON encoding or the fake Discord's message store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.scenario import (
    CREATES_PER_MIN,
    MODEL_SCENES,
    MUSIC,
    OTHERS_PER_MIN,
    SCENE_DURATIONS,
    SDXL,
    SVD,
    TTS,
    WAN,
    TimeScale,
    scripted_latency,
    storyboard_draft,
)
from tests.emulators import media
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import FakeReplicate, music_mp3

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Services:
    scale: TimeScale
    replicate: FakeReplicate
    openai: FakeOpenAI
    model: str = "svd"  # JANT_VIDEO_MODEL of the jobs

    def env(self, data_dir: Path, **extra: str) -> dict[str, str]:
        """A child process's environment: real providers pointed at the emulators, time compressed."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REPLICATE_", "JANT_", "DISCORD_"))}
        env.update(
            OPENAI_API_KEY=FakeOpenAI.API_KEY, OPENAI_BASE_URL=self.openai.base_url,
            REPLICATE_API_TOKEN=FakeReplicate.API_TOKEN, REPLICATE_BASE_URL=self.replicate.base_url,
            JANT_ALLOWED_MEDIA_HOSTS="127.0.0.1", JANT_DATA_DIR=str(data_dir), PYTHONPATH=str(REPO),
            JANT_VIDEO_MODEL=self.model,
            **self.scale.replicate_env(),
        )  # fmt: skip
        env.update(extra)
        return env

    def scripted_wall(self, prediction_id: str) -> float:
        """Seconds (this run's clock) the emulator was told this prediction takes."""
        p = self.replicate.predictions[prediction_id]
        slow = float(p.outcome.split(":", 1)[1]) if p.outcome.startswith("slow:") else 0.0
        return p.model.starting * self.replicate.time_factor + slow

    def observed_wall(self, prediction_id: str) -> float:
        """Seconds from create to completion as the emulator lived them (scripted + its own delays)."""
        p = self.replicate.predictions[prediction_id]
        return (p.completed or p.created) - p.created

    def rates(self) -> dict[str, Any]:
        """Peak requests in any real-equivalent minute, and what was throttled."""
        rep = self.replicate
        return {
            "creates_per_min": rep.creates_per_minute(self.scale.minute),
            "others_per_min": rep.others_per_minute(self.scale.minute),
            "creates_limit": CREATES_PER_MIN,
            "others_limit": OTHERS_PER_MIN,
            "throttled": rep.counts.throttled,
            "peak_in_flight": peak_in_flight(rep),
            "creates": rep.counts.total_creates,
            "creates_by_model": dict(rep.counts.creates),  # which video model the clips really came from
            "gets": rep.counts.gets,
        }


@contextlib.asynccontextmanager
async def services(scale: TimeScale, *, music: bool = True, model: str = "svd") -> AsyncIterator[Services]:
    """Fresh emulators (and so fresh rate-limit windows) for one phase of the benchmark. `music`:
    the emulator's music beds (one per pitch) are encoded before the run, as its SVD output is —
    that ffmpeg work is Replicate's, not this host's, and would land just as the seeds finish.
    `model`: the video model's registry key the jobs use (`JANT_VIDEO_MODEL`, set by `env`), which
    decides the storyboard's scene lengths (scenario.MODEL_SCENES)."""
    await media.mp4_bytes(576, 1024, 25, 7)  # the emulator's SVD output, encoded once
    if model != "svd":
        await media.mp4_bytes(720, 1280, 81, 16)  # Wan's at 720p: 81 frames at 16 fps
    if music:
        await asyncio.gather(*(music_mp3(int(sum(SCENE_DURATIONS)), pitch) for pitch in range(12)))
    rep = FakeReplicate(time_factor=scale.factor, rate_window=scale.minute)
    for ref in (SDXL, SVD, WAN, TTS, MUSIC):
        rep.set_latency(ref, starting=0.0)  # a warm model: the scripted latency is all of it
    durations = MODEL_SCENES[model]
    async with FakeOpenAI() as oai, rep:
        oai.responder = lambda body: storyboard_draft(durations=durations)

        def outcome(model: str, version: str, inp: dict[str, Any]) -> str:
            key = inp.get("seed", inp.get("text"))  # a voice line has no seed: its text keys its latency
            return f"slow:{scale.wall(scripted_latency(model, key)):.4f}"

        rep.script_by(outcome)
        yield Services(scale, rep, oai, model)


def sound_counts(svc: Services) -> dict[str, int]:
    """Voice and music predictions Replicate made (0 and 0 when the run had them off)."""
    rep = svc.replicate
    unfinished = Counter(p.model.ref for p in rep.predictions.values() if p.status != "succeeded")
    return {
        "voice_creates": rep.counts.creates[TTS], "music_creates": rep.counts.creates[MUSIC],
        "voice_unfinished": unfinished[TTS], "music_unfinished": unfinished[MUSIC],
    }  # fmt: skip


def peak_in_flight(rep: FakeReplicate) -> int:
    """Most predictions Replicate was running at once."""
    edges = sorted(
        [(p.created, 1) for p in rep.predictions.values()]
        + [(p.completed, -1) for p in rep.predictions.values() if p.completed is not None]
    )
    peak = running = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak

"""In-process providers with scripted outcomes and latencies, for orchestrator stories.

They stand in for whole providers behind our own interfaces (not for any client library), so the
orchestrator's behaviour — pipelining, retries, cancel, resume — is tested without a network.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.brand import BrandKit
from pipeline.composer import ComposeResult
from pipeline.errors import ProviderError, SafetyRejection
from pipeline.providers.base import ClipRequest, SeedRequest, StageContext, StageResult
from pipeline.speech_timing import WordTiming


@dataclass
class Call:
    scene: int
    attempt: int
    resumed_from: str | None


@dataclass
class ScriptedStage:
    """Outcomes per scene, consumed per attempt: "ok", "flaky" (retryable), "nsfw", "hang"."""

    name: str
    outcomes: dict[int, list[str]] = field(default_factory=dict)
    latency: dict[int, float] = field(default_factory=dict)
    gates: dict[int, asyncio.Event] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    creates: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    cancelled: list[str] = field(default_factory=list)
    issued: set[str] = field(default_factory=set)
    running: int = 0
    peak_running: int = 0
    started: dict[int, asyncio.Event] = field(default_factory=lambda: defaultdict(asyncio.Event))
    finished: dict[int, asyncio.Event] = field(default_factory=lambda: defaultdict(asyncio.Event))
    offline: bool = True

    async def _work(self, scene: int, ctx: StageContext, dest: Path) -> StageResult:
        self.calls.append(Call(scene, ctx.attempt, ctx.existing_prediction_id))
        prediction_id = ctx.existing_prediction_id
        if prediction_id is None:
            self.creates[scene] += 1
            prediction_id = f"{self.name}-{scene}-{ctx.attempt}"
            if prediction_id in self.issued:  # a re-run starts at attempt 1 again; ids stay unique, as Replicate's
                prediction_id += f"-{self.creates[scene]}"
            self.issued.add(prediction_id)
            await ctx.record_prediction(prediction_id)
        self.running += 1
        self.peak_running = max(self.peak_running, self.running)
        self.started[scene].set()
        try:
            await ctx.progress(50.0, None)
            if scene in self.gates:
                await self.gates[scene].wait()
            await asyncio.sleep(self.latency.get(scene, 0.0))
            script = self.outcomes.get(scene, [])
            outcome = script.pop(0) if script else "ok"
            if outcome == "flaky":
                raise ProviderError("GPU hiccup (code: PA)", retryable=True)
            if outcome == "nsfw":
                raise SafetyRejection("NSFW content detected.")
            if outcome == "hang":
                await asyncio.Event().wait()
            await asyncio.to_thread(dest.write_bytes, f"{self.name} {scene}".encode())
            return StageResult(path=dest, seed=1000 + scene, prediction_id=prediction_id, predict_time=2.0)
        finally:
            self.running -= 1
            self.finished[scene].set()

    async def cancel(self, prediction_id: str) -> None:
        self.cancelled.append(prediction_id)


class ScriptedImages(ScriptedStage):
    async def generate(self, request: SeedRequest, ctx: StageContext) -> StageResult:
        return await self._work(request.scene.index, ctx, request.dest)


class ScriptedVideo(ScriptedStage):
    async def animate(self, request: ClipRequest, ctx: StageContext) -> StageResult:
        return await self._work(request.scene.index, ctx, request.dest)


def scene_of(clip: Path) -> int:
    """The scene a clip file belongs to: clip-3.mp4 → 3, and hook B's clip-1b.mp4 → 1."""
    digits = re.match(r"\d+", clip.stem.split("-")[-1])
    assert digits is not None, f"not a scene's clip: {clip.name}"
    return int(digits.group())


class CopyComposer:
    """Joins by concatenating bytes: enough to see what the orchestrator asked for, with no ffmpeg."""

    def __init__(self) -> None:
        self.normalized: list[tuple[int, float]] = []
        self.urgent: list[int] = []  # scenes normalised as the one the ad was waiting on
        self.captions: dict[int, tuple[str, tuple[WordTiming, ...]]] = {}  # scene -> (mode, words)
        self.joined: list[list[Path]] = []
        self.words: dict[int, Sequence[WordTiming] | None] = {}  # the caption words each scene was given
        self.mixes: list[tuple[list[tuple[Path, float]], Path | None, float]] = []
        self.audio: list[Path | None] = []  # the sound track each join muxed in
        # scene -> (brand kit, end card seconds, request CTA) it was normalised with
        self.brands: dict[int, tuple[BrandKit | None, float, str | None]] = {}
        self.card_notes: dict[int, str | None] = {}  # scene -> the end card's foot note

    async def normalize_clip(self, src: Path, dst: Path, duration: float, *, caption: str | None = None,
                             words: Sequence[WordTiming] | None = None, captions: str = "karaoke",
                             language: str = "en", max_bitrate: int | None = None,
                             urgent: bool = False, brand: BrandKit | None = None, end_card_s: float = 0.0,
                             cta: str | None = None, card_note: str | None = None,
                             retime: bool = True) -> Path:  # fmt: skip
        await asyncio.to_thread(shutil.copyfile, src, dst)
        index = scene_of(src)
        self.normalized.append((index, duration))
        self.brands[index] = (brand, end_card_s, cta)
        self.card_notes[index] = card_note
        self.words[index] = words
        if words:
            self.captions[index] = (captions, tuple(words))
        if urgent:
            self.urgent.append(index)
        return dst

    async def mix_audio(
        self, voice: Sequence[tuple[Path, float]], music: Path | None, duration: float, dest: Path
    ) -> Path:
        self.mixes.append((list(voice), music, duration))
        await asyncio.to_thread(dest.write_bytes, b"m4a")
        return dest

    async def join(
        self, clips: list[Path], dst: Path, *, byte_limit: int | None = None, audio: Path | None = None
    ) -> ComposeResult:
        self.joined.append(list(clips))
        self.audio.append(audio)
        data = b"".join([await asyncio.to_thread(c.read_bytes) for c in clips])
        await asyncio.to_thread(dst.write_bytes, data)
        return ComposeResult(path=dst, bytes=len(data), duration_s=0.0, encodes=0)

    async def contact_sheet(self, images: list[Path], labels: list[str], dst: Path, *, title: str) -> Path:
        await asyncio.to_thread(dst.write_bytes, b"png")
        return dst

"""The ad's other shapes, free: 4:5, 1:1 and 16:9 made from the master's own clips and soundtrack.

No prediction is made for them: each scene's downloaded clip is normalised again at the format's
size by a Composer of that size (captions and headline are laid out again for the frame by
pipeline/captions.py), then joined with the soundtrack the master already has, under the same
upload limit. A format that cannot fit is reported with its reason; the master is never touched.

Layout per format (the clips are 9:16):
- 4:5 and 1:1 crop the picture, centred. The seeds frame their subject in the middle of the
  frame, so a centred crop keeps it, and the picture fills the feed slot: 4:5 keeps 71 % of the
  height, 1:1 56 %. Shown whole, the picture would be a narrow strip in a square (56 % of the width).
- 16:9 cannot crop: it would keep 32 % of the height, a sliver through the product. The whole 9:16
  picture is shown in the middle over a blurred, dimmed copy of itself filling the sides.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.audio_mix import AUDIO_BITRATE
from pipeline.composer import Composer, Framing, target_bitrate
from pipeline.errors import DoesNotFit, JantError
from pipeline.ffmpeg import probe

MASTER_FORMAT = "9:16"
# Scenes normalised at once per format: ffmpeg already threads, but its libass and decode parts do
# not, so two at a time keep two cores busy.
PARALLEL_SCENES = 2
# The formats come after the master, on the same cores, and nearly all of their time is x264's
# (2.3 times the master's pixels, every frame of it: the filters are a sixth of a clip's work and
# decoding the small clip next to nothing). So their clips are encoded with the analysis the
# master's critical-path clip gets (composer.URGENT_X264_PARAMS: same stream headers, so the joins
# still stream-copy): about a fifth less x264 CPU for 0.0002-0.0006 SSIM, at the same size
# (benchmarks/README.md, "Formats").
QUICK_ANALYSIS = True


@dataclass(frozen=True)
class AdFormat:
    key: str  # as users type it: "4:5"
    width: int  # at the master's reference width of 1080 (prod); dev scales it like the master
    height: int
    filename: str  # written beside final.mp4
    framing: Framing
    where: str  # what the shape is for, for help texts

    def size(self, master_width: int) -> tuple[int, int]:
        """This format's size when the master is `master_width` wide (dev 720, prod 1080)."""
        scale = master_width / 1080
        return _even(self.width * scale), _even(self.height * scale)


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


FORMATS: dict[str, AdFormat] = {
    f.key: f
    for f in (
        AdFormat("9:16", 1080, 1920, "final.mp4", "cover", "Reels, Shorts, TikTok, Stories"),
        AdFormat("4:5", 1080, 1350, "final-4x5.mp4", "cover", "Meta feeds"),
        AdFormat("1:1", 1080, 1080, "final-1x1.mp4", "cover", "square feeds"),
        AdFormat("16:9", 1920, 1080, "final-16x9.mp4", "blur-fill", "YouTube, landscape players"),
    )
}


def formats_problem(keys: Iterable[str]) -> str | None:
    """Why `keys` is not a valid choice of formats, in words a user can act on; None when it is."""
    keys = list(keys)
    if not keys:
        return f"choose at least one format: {', '.join(FORMATS)}"
    unknown = [k for k in keys if k not in FORMATS]
    if unknown:
        return f"unknown format {unknown[0]!r}; choose among {', '.join(FORMATS)} (width:height, e.g. 4:5)"
    if len(set(keys)) != len(keys):
        return f"format {next(k for k in keys if keys.count(k) > 1)!r} is asked for twice"
    return None


def parse_formats(text: str) -> tuple[str, ...]:
    """ "9:16, 4:5" → ("9:16", "4:5"), the master always first. Raises ValueError with the reason."""
    keys = [k.strip().replace("x", ":").replace("X", ":") for k in text.split(",") if k.strip()]
    problem = formats_problem(keys)
    if problem is not None:
        raise ValueError(problem)
    return (MASTER_FORMAT, *(k for k in keys if k != MASTER_FORMAT))


def extra_formats(keys: Iterable[str]) -> list[AdFormat]:
    """The formats to make besides the master, in table order."""
    wanted = set(keys)
    return [f for f in FORMATS.values() if f.key in wanted and f.key != MASTER_FORMAT]


def not_made_prefix(fmt: AdFormat) -> str:
    """How the job's note about a format that was not made starts (the front ends look it up)."""
    return f"The {fmt.key} version was not made"


def format_paths(final: Path, keys: Iterable[str]) -> list[tuple[AdFormat, Path]]:
    """Where each requested extra format of the ad at `final` is written (whether made or not)."""
    return [(f, final.with_name(f.filename)) for f in extra_formats(keys)]


@dataclass(frozen=True)
class SceneSource:
    """One scene of the master as it was cut: its downloaded clip, its length, and the keyword
    arguments its normalisation got besides those (caption, words, captions, language…). `cut`: the
    formats this scene is already cut for, by key (pipeline.early_formats), used instead of a new cut."""

    clip: Path
    duration: float
    overlay: Mapping[str, Any]
    cut: Mapping[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class FormatResult:
    format: AdFormat
    path: Path | None  # None: not made (see error)
    bytes: int = 0
    error: str | None = None
    early: int = 0  # scenes that were already cut for it (SceneSource.cut), of len(scenes)


def composer_for(master: Composer, fmt: AdFormat) -> Composer:
    """A composer like the master's (frame rate, quality, interpolation) at `fmt`'s size."""
    width, height = fmt.size(master.width)
    return Composer(width, height, master.fps, master.interpolate, master.preset, master.crf, timeout=master.timeout)


async def render_formats(
    master: Composer,
    final: Path,
    keys: Iterable[str],
    scenes: Sequence[SceneSource],
    *,
    soundtrack: Path | None,
    byte_limit: int | None,
    quick_analysis: bool = QUICK_ANALYSIS,
) -> list[FormatResult]:
    """Make each requested extra format of the ad at `final` (the master, already written).

    Each format is independent: one that fails or cannot fit the limit is reported in its result,
    and any stale file of that format is removed, so an old version is never posted as new.

    `quick_analysis`: x264 spends less on motion analysis (see QUICK_ANALYSIS); False encodes them
    as the master's clips are (the benchmark compares the two).
    """
    results = []
    for fmt in extra_formats(keys):
        dst = final.with_name(fmt.filename)
        try:
            made = await _render_one(
                composer_for(master, fmt), fmt, dst, scenes, soundtrack, byte_limit, quick_analysis
            )
        except DoesNotFit as exc:
            await asyncio.to_thread(_remove, dst)
            results.append(FormatResult(fmt, None, exc.size, f"it is too big for the upload limit: {exc.user_message}"))
            continue
        except JantError as exc:
            await asyncio.to_thread(_remove, dst)
            results.append(FormatResult(fmt, None, 0, exc.user_message))
            continue
        results.append(made)
    return results


async def _render_one(
    composer: Composer,
    fmt: AdFormat,
    dst: Path,
    scenes: Sequence[SceneSource],
    soundtrack: Path | None,
    byte_limit: int | None,
    quick_analysis: bool,
) -> FormatResult:
    total = sum(s.duration for s in scenes)
    max_bitrate = None
    if byte_limit:
        # Like the master's clips: capped so the join stream-copies under the limit, audio included.
        audio_bps = AUDIO_BITRATE if soundtrack is not None else 0
        max_bitrate = target_bitrate(total, byte_limit, audio_bps=audio_bps)
    gate = asyncio.Semaphore(PARALLEL_SCENES)
    stem = dst.stem

    used_early = 0

    async def cut(i: int, scene: SceneSource) -> Path:
        nonlocal used_early
        early = scene.cut.get(fmt.key)
        if early is not None and await asyncio.to_thread(early.is_file):
            used_early += 1
            return early
        part = dst.with_name(f"{stem}.scene-{i}.mp4")
        async with gate:
            return await composer.normalize_clip(
                scene.clip, part, scene.duration, max_bitrate=max_bitrate, framing=fmt.framing,
                urgent=quick_analysis, **scene.overlay,
            )  # fmt: skip

    parts: list[Path] = []
    try:
        tasks = [asyncio.create_task(cut(i, s)) for i, s in enumerate(scenes, 1)]
        try:
            parts = list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            parts = [
                *(dst.with_name(f"{stem}.scene-{i}.mp4") for i in range(1, len(scenes) + 1)),
                *(early for s in scenes if (early := s.cut.get(fmt.key)) is not None),
            ]
            raise
        result = await composer.join(parts, dst, byte_limit=byte_limit, audio=soundtrack)
    finally:
        await asyncio.to_thread(_remove_all, parts)
    return FormatResult(fmt, result.path, result.bytes, early=used_early)


def _remove_all(paths: list[Path]) -> None:
    for path in paths:
        _remove(path)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@dataclass(frozen=True)
class MadeFormat:
    """A format of a finished ad as it is on disk, for the front ends to post or print."""

    format: AdFormat
    path: Path
    bytes: int
    width: int
    height: int


async def made_formats(final: Path, keys: Iterable[str]) -> list[MadeFormat]:
    """The extra formats of the ad at `final` that exist, with their real sizes (a format fitted under
    a tight limit may have stepped down in size); missing ones are in the job's notes."""
    out = []
    for fmt, path in format_paths(final, keys):
        size = await asyncio.to_thread(_size_of, path)
        if size is None:
            continue
        info = await probe(path)
        out.append(MadeFormat(fmt, path, size, info.width or 0, info.height or 0))
    return out


def _size_of(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None

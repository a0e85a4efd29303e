"""The other formats' scenes, cut while the ad's remaining clips are still being made.

A clip lands long before the job's last one (Replicate takes 30–90 s per clip; cutting a scene takes
a second or two), so a job's CPU is idle for most of its wait. Each scene that lands early is cut for
every extra format (4:5, 1:1, 16:9) then: two ffmpegs at a time at most, at low priority, so the ad's own cuts
always go first. When the master is joined, the formats are left with the scene the ad waited on and
their joins (`render_formats` takes the early cuts through `SceneSource.cut`).

An early cut is only an offer: one that failed, was cancelled or was not finished is cut again by
`render_formats` the usual way; the files are named apart from `render_formats`' own parts, so neither
overwrites the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from pathlib import Path

from pipeline.composer import Composer
from pipeline.errors import JantError
from pipeline.formats import QUICK_ANALYSIS, AdFormat, SceneSource, composer_for, extra_formats

log = logging.getLogger(__name__)

# Early cuts in flight per process, across jobs: two keep two idle cores busy (ffmpeg's libass and
# decoding run on one thread each); more would only make a crowd. At low priority, they never slow
# down a cut someone waits for.
EARLY_CUTS_AT_ONCE = 2


class EarlyFormatCuts:
    """One job's early cuts for the extra formats among `keys`, written beside `final`."""

    def __init__(
        self,
        master: Composer,
        final: Path,
        keys: Iterable[str],
        *,
        gate: asyncio.Semaphore,
        quick_analysis: bool = QUICK_ANALYSIS,
    ) -> None:
        self.final = final
        self.formats = [(fmt, composer_for(master, fmt)) for fmt in extra_formats(keys)]
        self._gate = gate
        self._quick = quick_analysis
        self._tasks: dict[tuple[int, str], asyncio.Task[Path]] = {}
        self._started: set[tuple[int, str]] = set()  # past the gate: ffmpeg is running or has run
        self._paths: set[Path] = set()  # every file a cut may have written, for discard

    def path(self, fmt: AdFormat, index: int) -> Path:
        return self.final.with_name(f"{Path(fmt.filename).stem}.early-{index}.mp4")

    def start(self, index: int, scene: SceneSource, *, max_bitrate: int | None) -> None:
        """Cut scene `index` for every format in the background (again, if it was cut before: a scene
        cut again, after its voice changed its length, replaces the earlier cut)."""
        for fmt, composer in self.formats:
            old = self._tasks.pop((index, fmt.key), None)
            if old is not None:
                old.cancel()
                self._started.discard((index, fmt.key))
            self._paths.add(self.path(fmt, index))
            self._tasks[(index, fmt.key)] = asyncio.create_task(
                self._cut(composer, fmt, index, scene, max_bitrate), name=f"early-{fmt.key}-{index}"
            )

    async def _cut(
        self, composer: Composer, fmt: AdFormat, index: int, scene: SceneSource, max_bitrate: int | None
    ) -> Path:
        async with self._gate:
            self._started.add((index, fmt.key))
            return await composer.normalize_clip(
                scene.clip, self.path(fmt, index), scene.duration, max_bitrate=max_bitrate,
                framing=fmt.framing, urgent=self._quick, background=True, **scene.overlay,
            )  # fmt: skip

    async def settle(self) -> None:
        """Wait until every cut started so far has ended, made or not (what a long wait for the last
        clip gives them; the benchmark and the tests stand in for that wait with this)."""
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def collect(self) -> dict[int, dict[str, Path]]:
        """Wait for the cuts in flight; the finished ones by scene index, then format key. A cut that
        failed is left out (render_formats cuts it again, and reports it if it fails again), and so is
        one still queued: render_formats, which someone now waits for, cuts it sooner, two at a time."""
        for which, task in self._tasks.items():
            if which not in self._started:
                task.cancel()
        keys = list(self._tasks)
        outcomes = await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        done: dict[int, dict[str, Path]] = {}
        for (index, key), outcome in zip(keys, outcomes, strict=True):
            if isinstance(outcome, asyncio.CancelledError) and (index, key) not in self._started:
                continue
            if isinstance(outcome, BaseException):
                why = outcome.user_message if isinstance(outcome, JantError) else repr(outcome)
                log.warning("the early %s cut of scene %d was not made: %s", key, index, why)
                continue
            done.setdefault(index, {})[key] = outcome
        return done

    async def discard(self) -> None:
        """Stop the cuts in flight and remove every early file left (the job ended without its formats,
        or they took what they needed)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        await asyncio.to_thread(_remove_all, sorted(self._paths))


def _remove_all(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

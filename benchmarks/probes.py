"""In-process probes for the measured process: event-loop lag, CPU time, peak RSS, job timings."""

from __future__ import annotations

import asyncio
import functools
import os
import resource
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.composer import ComposeResult
from pipeline.events import EventKind, ProgressEvent
from tests.scripted_providers import CopyComposer


class LoopLagSampler:
    """Sleeps `interval` again and again and records how late each wake-up was: the time any other
    callback could have been kept waiting by a blocking step on the loop."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (monotonic time, lag seconds)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            now = loop.time()
            self.samples.append((time.monotonic(), max(0.0, now - due)))

    def lags_between(self, start: float, end: float) -> list[float]:
        return [lag for at, lag in self.samples if start <= at <= end]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def children_cpu_seconds() -> float:
    """CPU seconds of this process's finished children (ffmpeg, for one)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def host_check_ms(rounds: int = 5) -> float:
    """Milliseconds a fixed piece of pure-Python CPU work takes here now (the best of `rounds`).

    The same work every run, so a run whose host was slower than usual (noisy neighbours on a
    shared VM) shows it here instead of only in its ratios. Blocking: call it between sections.
    """
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        acc = 0
        for i in range(300_000):
            acc = (acc * 31 + i) % 1_000_003
        best = min(best, time.perf_counter() - start)
    return round(best * 1000, 1)


def steal_seconds() -> float | None:
    """CPU time the hypervisor gave to others, summed over CPUs since boot (/proc/stat), if reported."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class JobTimes:
    queued: float | None = None
    finished: float | None = None
    # The same two moments on the wall clock, the emulator's (its predictions' created/completed).
    queued_epoch: float | None = None
    finished_epoch: float | None = None
    status: str = ""
    scenes: list[dict[str, Any]] = field(default_factory=list)


class JobClock:
    """An event-bus subscriber: when each job was approved and finished, and its prediction ids;
    CPU time at the first approval and at the last finish."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobTimes] = {}
        self.cpu_first: float | None = None
        self.cpu_last: float | None = None
        self.first_queued: float | None = None
        self.last_finished: float | None = None

    def on_event(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        if event.kind is EventKind.JOB_QUEUED:
            times = self.jobs.setdefault(event.job_id, JobTimes())
            times.queued = times.queued or now
            times.queued_epoch = times.queued_epoch or time.time()
            if self.first_queued is None:
                self.first_queued, self.cpu_first = now, cpu_seconds()
        elif event.kind is EventKind.JOB_FINISHED:
            times = self.jobs.setdefault(event.job_id, JobTimes())
            times.finished, times.status = now, event.job.status.value
            times.finished_epoch = time.time()
            times.scenes = [
                {"index": s.index, "seed": s.seed.prediction_id, "clip": s.clip.prediction_id, "done": s.done}
                for s in event.job.scenes
            ]
            self.last_finished, self.cpu_last = now, cpu_seconds()

    def report(self) -> dict[str, Any]:
        return {
            "jobs": {jid: vars(t) for jid, t in self.jobs.items()},
            "first_queued": self.first_queued,
            "last_finished": self.last_finished,
            "cpu_active_s": (self.cpu_last or 0.0) - (self.cpu_first or 0.0),
        }


class TimedCopyComposer(CopyComposer):
    """The composer stand-in for generation benchmarks: copies bytes instead of running ffmpeg (two
    cores cannot encode fifty ads at once, and section 3 measures the real composer), and times the
    final step per job: from the join's start to the later of join and contact sheet."""

    def __init__(self) -> None:
        super().__init__()
        self._spans: dict[str, list[float]] = {}

    @property
    def join_s(self) -> dict[str, float]:
        return {job: end - start for job, (start, end) in self._spans.items()}

    def _note(self, job: str, start: float) -> None:
        span = self._spans.setdefault(job, [start, start])
        span[0], span[1] = min(span[0], start), max(span[1], time.monotonic())

    async def join(
        self, clips: list[Path], dst: Path, *, byte_limit: int | None = None, audio: Path | None = None
    ) -> ComposeResult:
        start = time.monotonic()
        result = await super().join(clips, dst, byte_limit=byte_limit, audio=audio)
        self._note(dst.parent.name, start)
        return result

    async def contact_sheet(self, images: list[Path], labels: list[str], dst: Path, *, title: str) -> Path:
        start = time.monotonic()
        path = await super().contact_sheet(images, labels, dst, title=title)
        self._note(dst.parent.name, start)
        return path


class TimedExecutor(ThreadPoolExecutor):
    """The loop's default executor (what `asyncio.to_thread` runs on), as asyncio sizes it unless
    BENCH_EXECUTOR_THREADS says otherwise, recording how long each call waited for a thread and
    which functions held the threads."""

    def __init__(self) -> None:
        threads = int(os.environ.get("BENCH_EXECUTOR_THREADS", "0")) or min(32, (os.cpu_count() or 1) + 4)
        super().__init__(max_workers=threads, thread_name_prefix="asyncio")
        self.threads = threads
        self.waits: list[float] = []
        self.held: dict[str, float] = {}  # seconds each function held a thread, in all

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        asked = time.monotonic()
        # to_thread submits functools.partial(contextvars.Context.run, func, …): name the func.
        target = fn.args[0] if isinstance(fn, functools.partial) and fn.args else fn
        name = getattr(target, "__qualname__", repr(target))

        def timed(*a: Any, **k: Any) -> Any:
            started = time.monotonic()
            self.waits.append(started - asked)
            try:
                return fn(*a, **k)
            finally:
                self.held[name] = self.held.get(name, 0.0) + time.monotonic() - started

        return super().submit(timed, *args, **kwargs)

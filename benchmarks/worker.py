"""The measured process: Jant itself, started by the benchmark with its settings in the environment.

    python -m benchmarks.worker headless SPEC.json OUT.json   # N jobs straight through the orchestrator
    python -m benchmarks.worker bot SPEC.json OUT.json        # the Discord bot, until SIGTERM
    python -m benchmarks.worker queue SPEC.json OUT.json      # N jobs queued for DBOS workers (--no-worker)
    python -m benchmarks.worker dbos_worker SPEC.json OUT.json  # a `jant worker` (JANT_ENGINE=dbos), until SIGTERM

Real providers (GPT-4o planner, SDXL, SVD over the real `openai`/`replicate` clients) talk to the
emulators the parent runs. The composer is a byte-copying stand-in (see probes.TimedCopyComposer).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from benchmarks.barrier import BarrierOrchestrator
from benchmarks.probes import (
    JobClock,
    LoopLagSampler,
    TimedCopyComposer,
    TimedExecutor,
    children_cpu_seconds,
    cpu_seconds,
    peak_rss_mb,
    rss_mb,
)
from benchmarks.scenario import PRODUCT, TAKE, stage_seeds
from pipeline.config import Settings
from pipeline.events import EventKind, ProgressEvent
from pipeline.models import AdRequest, Job
from pipeline.orchestrator import Orchestrator
from pipeline.runtime import Runtime
from pipeline.store import JobStore


async def _fix_music_seed(store: JobStore, job: Job, job_number: int) -> None:
    """The music bed's latency is scripted by its seed too (voice lines by their text)."""
    music = job.job_stages.get("music")
    if music is not None:
        music.seed = stage_seeds(job_number, 0)[0]
        await store.save_stage(music)


async def _planned_jobs(orch: Orchestrator, spec: dict[str, Any]) -> list[Job]:
    """The spec's jobs, planned, each with the stage seeds (and so the scripted latencies) of its number."""
    jobs = []
    for n in range(spec.get("first", 0), spec.get("first", 0) + spec["jobs"]):
        job = await orch.create_job(AdRequest(product=PRODUCT, mood="tech"))
        await orch.plan(job)
        for scene in job.scenes:  # fixed seeds → the same scripted latencies in every design
            scene.seed.seed, scene.clip.seed = stage_seeds(n, scene.index)
            await orch.store.save_stage(scene.seed)
            await orch.store.save_stage(scene.clip)
        await _fix_music_seed(orch.store, job, n)
        jobs.append(job)
    return jobs


async def _approve_spread(orch: Orchestrator, jobs: list[Job], spread_s: float) -> list[asyncio.Task[Job]]:
    step = spread_s / max(1, len(jobs) - 1)
    tasks = []
    for job in jobs:  # spread_s 0: all at once, the worst case
        tasks.append(await orch.approve(job))
        if step:
            await asyncio.sleep(step)
    return tasks


async def headless(spec: dict[str, Any]) -> dict[str, Any]:
    settings = Settings()
    runtime = await Runtime.open(settings)
    executor = TimedExecutor()  # asyncio's default executor, timed
    asyncio.get_running_loop().set_default_executor(executor)
    assert not runtime.providers.offline, runtime.providers.notices
    composer = TimedCopyComposer()
    design = BarrierOrchestrator if spec["design"] == "barrier" else Orchestrator
    orch = design(settings, runtime.store, runtime.providers, composer=composer)
    runtime.orchestrator = orch
    clock = JobClock()
    orch.bus.subscribe(clock.on_event)
    sampler = LoopLagSampler()
    try:
        jobs = await _planned_jobs(orch, spec)
        sampler.start()
        cpu0 = cpu_seconds()
        done = await asyncio.gather(*await _approve_spread(orch, jobs, spec.get("spread_s", 0.0)))
        cpu = cpu_seconds() - cpu0
        await sampler.stop()
    finally:
        await runtime.close()
    report = clock.report()
    lags = sampler.lags_between(report["first_queued"] or 0, report["last_finished"] or time.monotonic())
    return {
        **report,
        "statuses": [j.status.value for j in done],
        "errors": sorted({j.error for j in done if j.error}),  # why, when a status is not "completed"
        "join_s": composer.join_s,
        "joins_with_audio": sum(1 for a in composer.audio if a is not None),  # the soundtrack was muxed in
        "cpu_s": cpu,
        "lags": lags,
        "executor_threads": executor.threads,
        "executor_waits": executor.waits,
        "executor_held_s": dict(sorted(executor.held.items(), key=lambda kv: -kv[1])[:8]),
        "peak_rss_mb": peak_rss_mb(),
    }


async def prime(spec: dict[str, Any]) -> dict[str, Any]:
    """Leave `jobs` jobs the way a stopped bot does: every clip a prediction still running on
    Replicate, its id in SQLite; then stop (the predictions keep running)."""
    settings = Settings()
    runtime = await Runtime.open(settings)
    orch = runtime.orchestrator
    try:
        jobs = []
        for _ in range(spec["jobs"]):
            job = await orch.create_job(AdRequest(product=PRODUCT, mood="tech"))
            await orch.plan(job)
            jobs.append(job)
        for job in jobs:
            await orch.approve(job)
        async with asyncio.timeout(120):
            while not all(s.clip.status.value == "running" and s.clip.prediction_id for j in jobs for s in j.scenes):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        clips = [s.clip.prediction_id for j in jobs for s in j.scenes]
    finally:
        await runtime.close(grace_s=5.0)
    return {"clips": clips}


async def bot(spec: dict[str, Any]) -> dict[str, Any]:
    from bot.app import JantBot

    if spec.get("design") == "barrier":  # the baseline design, in this process only
        import pipeline.runtime

        pipeline.runtime.Orchestrator = BarrierOrchestrator  # type: ignore[misc]
    clock = JobClock()

    async def fix_seeds(event: ProgressEvent) -> None:
        """Take n of the run gets the stage seeds, and so the scripted latencies, of job n in any
        design: the pipelined and barrier runs are compared job for job. Awaited by the event bus
        inside `plan`, so before the storyboard (and its Approve button) is posted."""
        if event.kind is not EventKind.STORYBOARD_READY:
            return
        match = TAKE.search(event.job.request.product)
        if match is None:
            return
        for scene in event.job.scenes:
            scene.seed.seed, scene.clip.seed = stage_seeds(int(match.group(1)), scene.index)
            await client.runtime.store.save_stage(scene.seed)
            await client.runtime.store.save_stage(scene.clip)
        await _fix_music_seed(client.runtime.store, event.job, int(match.group(1)))

    class MeasuredBot(JantBot):
        async def setup_hook(self) -> None:
            await super().setup_hook()
            self.runtime.orchestrator.bus.subscribe(clock.on_event)
            self.runtime.orchestrator.bus.subscribe(fix_seeds)

    settings = Settings()
    token = settings.discord.token.get_secret_value() if settings.discord.token else ""
    composer = TimedCopyComposer()
    client = MeasuredBot(settings, composer=composer, guild_ready_timeout=0.05)
    sampler = LoopLagSampler()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    started = time.monotonic()
    ready: dict[str, float] = {}

    async def watch_ready() -> None:
        await client.wait_until_ready()
        ready["ready_s"] = time.monotonic() - started
        ready["rss_ready_mb"] = rss_mb()
        sampler.start()

    async with client:
        runner = asyncio.create_task(client.start(token), name="discord-bot")
        watcher = asyncio.create_task(watch_ready())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        await sampler.stop()
        watcher.cancel()
        await client.close()
        await asyncio.gather(runner, watcher, return_exceptions=True)
    report = clock.report()
    lags = sampler.lags_between(report["first_queued"] or 0, report["last_finished"] or time.monotonic())
    return {
        **report, **ready, "join_s": composer.join_s, "lags": lags, "peak_rss_mb": peak_rss_mb(),
        "joins_with_audio": sum(1 for a in composer.audio if a is not None),  # the soundtrack was muxed in
    }  # fmt: skip


async def queue(spec: dict[str, Any]) -> dict[str, Any]:
    """A front end that runs no job (`jant makead --no-worker`'s runtime): the headless run's jobs,
    planned and approved the same way, each queued for the DBOS workers and followed through the
    database until it ends. Its clock gives the approval times; the workers' give the rest."""
    settings = Settings()
    runtime = await Runtime.open(settings, queues_jobs=True)
    orch = runtime.orchestrator
    clock = JobClock()
    orch.bus.subscribe(clock.on_event)
    try:
        jobs = await _planned_jobs(orch, spec)
        cpu0 = cpu_seconds()
        done = await asyncio.gather(*await _approve_spread(orch, jobs, spec.get("spread_s", 0.0)))
        cpu = cpu_seconds() - cpu0
    finally:
        await runtime.close()
    return {**clock.report(), "statuses": [j.status.value for j in done], "cpu_s": cpu}


async def dbos_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """`jant worker --id ID` as `bot.worker.run_worker` opens it (takes queued jobs, serves and makes
    takeovers), with the byte-copying composer unless the spec asks for ffmpeg (`"ffmpeg": true`).
    Writes OUT.ready once it dequeues, and runs until SIGTERM."""
    settings = Settings()
    runtime = await Runtime.open(
        settings, runs_jobs=True, worker_id=spec["id"], takes_over=True, serves_takeovers=True, takes_queued=True
    )
    orch = runtime.orchestrator
    composer = None if spec.get("ffmpeg") else TimedCopyComposer()
    if composer is not None:  # before any job is queued: the parent waits for the ready file
        orch.composer = composer
    clock = JobClock()
    orch.bus.subscribe(clock.on_event)
    sampler = LoopLagSampler()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    sampler.start()
    cpu0 = cpu_seconds()
    children0 = children_cpu_seconds()
    try:
        await asyncio.to_thread(Path(spec["ready"]).write_text, str(os.getpid()))
        await stop.wait()
    finally:
        await sampler.stop()
        cpu, children = cpu_seconds() - cpu0, children_cpu_seconds() - children0
        await runtime.close()
    return {
        **clock.report(), "worker": spec["id"], "join_s": composer.join_s if composer is not None else {},
        "lags": sampler.lags_between(0.0, time.monotonic()), "cpu_s": cpu, "children_cpu_s": children,
        "peak_rss_mb": peak_rss_mb(),
    }  # fmt: skip


MODES = {"headless": headless, "prime": prime, "bot": bot, "queue": queue, "dbos_worker": dbos_worker}


async def _watched(work: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    asyncio.get_running_loop().slow_callback_duration = 0.05  # reported in debug mode only
    return await work


def main() -> None:
    mode, spec_path, out_path = sys.argv[1:4]
    logging.basicConfig(level=logging.WARNING, format="worker %(levelname)s %(name)s: %(message)s")
    spec = json.loads(Path(spec_path).read_text())
    slow_log = os.environ.get("BENCH_SLOW_LOG")  # a path: asyncio's debug mode names every step ≥ 50 ms
    if slow_log:
        asyncio_log = logging.getLogger("asyncio")
        asyncio_log.addHandler(logging.FileHandler(slow_log))
        asyncio_log.propagate = False
    profile = os.environ.get("BENCH_PROFILE")  # a path: write a cProfile of the worker there
    if profile:
        import cProfile

        # CPU time, not wall time: on a busy host a wall-clock profile charges waits for a core to whatever ran.
        with cProfile.Profile(time.process_time) as prof:
            result = asyncio.run(_watched(MODES[mode](spec)), debug=bool(slow_log))
        prof.dump_stats(profile)
    else:
        result = asyncio.run(_watched(MODES[mode](spec)), debug=bool(slow_log))
    Path(out_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main()

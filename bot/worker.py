"""`jant worker`: the process that finishes this worker's interrupted jobs (JANT_ENGINE=dbos) and runs
the jobs front ends queue for the workers (`jant makead --no-worker`, `jant bot --no-worker`).

Launching DBOS with this worker's id (`--id`, JANT_WORKER_ID, else the host's stored id) recovers the
job runs a killed `jant makead` or `jant worker` with the same id left unfinished; each resumes at its
first unfinished step. With `--until-idle` it exits once none is left, else it runs until SIGTERM or
Ctrl-C (the runs in flight then stay pending for the next start). Without `--until-idle` it also takes
over the jobs of any worker silent for JANT_WORKER_TAKEOVER_S (pipeline/durable/workers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from rich.console import Console
from rich.markup import escape

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.runtime import Runtime

console = Console()
_IDLE_CHECK_S = 0.5


async def run_worker(settings: Settings, *, until_idle: bool, worker_id: str | None = None) -> int:
    if settings.storage.engine != "dbos":
        raise ConfigError(
            "`jant worker` runs jobs as DBOS workflows, and JANT_ENGINE is not `dbos`.",
            hint="Set JANT_ENGINE=dbos (and install `jant[durable]`); `jant bot` resumes jobs on the default engine.",
        )
    from pipeline.durable import engine

    # An `--until-idle` worker claims no other worker's jobs (it would leave them half-resumed as it exits),
    # but runs those a takeover queued with its id (it was a worker that had taken them over, and died).
    runtime = await Runtime.open(
        settings, runs_jobs=True, worker_id=worker_id, takes_over=not until_idle, serves_takeovers=True,
        takes_queued=True, notify=lambda m: console.print(escape(m)),
    )  # fmt: skip
    assert runtime.watch is not None
    worker_id = runtime.watch.lease.worker_id
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    seen: set[str] = set()
    lost = runtime.watch.lost
    try:
        previous = f" (the id was free: {escape(runtime.watch.lease.previous)})" if runtime.watch.lease.previous else ""
        console.print(f"Worker [bold]{escape(worker_id)}[/]{previous}: finishing its unfinished jobs…")
        while not stop.is_set() and not lost.is_set():
            pending = await engine.pending_jobs(worker_id)
            seen.update(pending)
            if until_idle and not pending:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _IDLE_CHECK_S)
        for run_id in sorted(seen):
            job = await runtime.store.get(run_id.split(engine.RUN_SEPARATOR)[0])
            if job is not None:
                why = f" — {escape(job.error)}" if job.error else ""
                console.print(f"Job [bold]{job.id}[/]: {job.status.value}{why}")
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        await runtime.close()
    if lost.is_set():  # it stalled long enough for a survivor to take its jobs: they run there now
        console.print(
            f"[red]Worker {escape(worker_id)} stopped:[/] another process took its id over (its heartbeat was"
            " late by more than JANT_WORKER_TAKEOVER_S). Check what stalled this process, then start it again."
        )
        return 1
    return 0

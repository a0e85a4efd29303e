"""`jant worker`: the process that finishes this worker's interrupted jobs (JANT_ENGINE=dbos) and runs
the jobs front ends queue for the workers (`jant makead --no-worker`, `jant bot --no-worker`).

Launching DBOS with this worker's id (JANT_WORKER_ID) recovers the job runs a killed `jant makead`
or `jant worker` with the same id left unfinished; each resumes at its first unfinished step. With
`--until-idle` it exits once none is left, else it runs until SIGTERM or Ctrl-C (the runs in flight
then stay pending for the next start).
"""

from __future__ import annotations

import asyncio
import signal

from rich.console import Console
from rich.markup import escape

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.runtime import Runtime

console = Console()
_IDLE_CHECK_S = 0.5


async def run_worker(settings: Settings, *, until_idle: bool) -> int:
    if settings.storage.engine != "dbos":
        raise ConfigError(
            "`jant worker` runs jobs as DBOS workflows, and JANT_ENGINE is not `dbos`.",
            hint="Set JANT_ENGINE=dbos (and install `jant[durable]`); `jant bot` resumes jobs on the default engine.",
        )
    from pipeline.durable import engine

    worker_id = settings.storage.worker_id
    runtime = await Runtime.open(settings, runs_jobs=True, takes_queued=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    seen: set[str] = set()
    try:
        console.print(f"Worker [bold]{worker_id}[/]: finishing its unfinished jobs…")
        while not stop.is_set():
            pending = await engine.pending_jobs(worker_id)
            seen.update(pending)
            if until_idle and not pending:
                break
            try:
                await asyncio.wait_for(stop.wait(), _IDLE_CHECK_S)
            except TimeoutError:
                pass
        for run_id in sorted(seen):
            job = await runtime.store.get(run_id.split(engine.RUN_SEPARATOR)[0])
            if job is not None:
                why = f" — {escape(job.error)}" if job.error else ""
                console.print(f"Job [bold]{job.id}[/]: {job.status.value}{why}")
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        await runtime.close()
    return 0

"""DBOS for one process: configure, launch, find a job's runs, wait for this worker's jobs, shut down.

Facts of DBOS 3.4 this relies on (PLATFORM-FACTS G, re-checked in docs/durable-jobs.md): a launch
recovers only the PENDING workflows of its own executor id and application version, so both are
set here and never left to DBOS's defaults ("local" and a hash of the workflow source).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

# Changed only when the steps a job workflow takes change order or names in a way a half-run workflow
# cannot replay: the pending runs of another version are not recovered (docs/durable-jobs.md, upgrades).
APPLICATION_VERSION = "jant-workflows-3"
JOB_WORKFLOW = "jant.job"
DBOS_SCHEMA = "dbos"  # DBOS's tables on Postgres (SQLite has no schemas: its own file)
RUN_SEPARATOR = "~"  # the second run of job X (Retry failed, a re-roll) is workflow "X~2"
APP_NAME = "jant"  # DBOS's application name: a queue and its workflows belong to it
# Jobs started by a front end that runs none (`--no-worker`) wait here for a worker: `jant worker` and
# `jant bot` take them; `jant makead`, which runs only its own job and then exits, does not.
JOBS_QUEUE = "jant-jobs"
# A cancel asked for by a process that does not run the job (`--no-worker`, `jant cancel`): an event on
# the job whose detail is the run to stop and who asked (`cancel_request`); the worker running that run
# watches for it and cancels the job as a local cancel does (DurableOrchestrator, "stopping").
CANCEL_REQUESTED = "cancel_requested"


def cancel_request(run_id: str, by: str | None) -> str:
    """The detail of a cancel request: the run it stops, then who asked."""
    return f"{run_id} {by}" if by else run_id


def parse_cancel_request(detail: str | None) -> tuple[str, str | None]:
    """(run id, who asked) of a cancel request's detail."""
    run_id, _, by = (detail or "").partition(" ")
    return run_id, by or None


# How often a worker looks for queued jobs. DBOS's default is a second, i.e. half a second on average
# between an approval and its run starting, which a ×4-compressed benchmark sees as 2 s of a job's
# life; a look is one read and, with work waiting, one claim in the system database.
JOBS_QUEUE_POLL_S = 0.2
# How long a process starting on a new SQLite system database waits for another's WAL switch or
# migration (both need the file to themselves for a moment).
_SQLITE_SWITCH_WAIT_S = 60.0


def require_dbos() -> Any:
    """DBOS, or the ConfigError that says how to install it."""
    try:
        from dbos import DBOS
    except ImportError:
        raise ConfigError(
            "JANT_ENGINE=dbos needs the durable extra, which is not installed.",
            hint="Install it with `pip install 'jant[durable]'`, or unset JANT_ENGINE.",
        ) from None
    return DBOS


async def launch(settings: Settings, *, listen_queues: Sequence[str] = ()) -> None:
    """Start DBOS on this loop, which becomes the loop its recovered workflows run on (the process's
    pending jobs are recovered in the background from here on). The workflows must be imported first
    (pipeline.durable.orchestrator).

    `listen_queues`: the only named queues this process dequeues from — `JOBS_QUEUE` for a process that
    runs the jobs front ends queue (`jant worker`, `jant bot`), `workers.TAKEOVER_QUEUE` for one that
    runs jobs taken over from dead workers. DBOS dequeues from every queue unless told which, so a
    process that is neither (`jant makead`) is told "none"."""
    dbos = require_dbos()
    # The workflows are registered by importing pipeline.durable.orchestrator, which the caller has done
    # to build the orchestrator that runs them (Runtime): importing it here would tie the two modules in
    # a circle for no more than that.

    path = settings.storage.dbos_db_path
    executor_id = settings.storage.worker_id
    if executor_id is None:  # never DBOS's default "local": two processes on it run each other's jobs
        raise RuntimeError("DBOS launched before this process's worker id was resolved (pipeline.durable.workers)")
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    sqlite_system_db = settings.storage.database_url is None
    if sqlite_system_db:
        await asyncio.to_thread(use_wal, path)
    # With JANT_DATABASE_URL, DBOS's tables go into the same Postgres database as Jant's, in the schema
    # `dbos` (no name of Jant's collides; one database to back up; no CREATE DATABASE right needed —
    # DBOS 3.4 would create a database named in the URL that does not exist, but this one does).
    dbos(
        config={
            "name": APP_NAME,
            "system_database_url": settings.storage.dbos_system_database_url,
            "dbos_system_schema": DBOS_SCHEMA,
            "executor_id": executor_id,
            "application_version": APPLICATION_VERSION,
            "log_level": "WARNING",  # its INFO lines would cut through the terminal's progress bars
            **({"db_engine_kwargs": {"connect_args": {"factory": _SyncNormal}}} if sqlite_system_db else {}),
        }
    )
    dbos.listen_queues(list(listen_queues))
    # Called inside the running loop on purpose: queued and recovered async workflows then run on this
    # loop, beside the orchestrator's objects. It blocks the loop for the launch (a fraction of a second).
    dbos.launch()
    await dbos.register_queue_async(JOBS_QUEUE, polling_interval_sec=JOBS_QUEUE_POLL_S)
    where = path if settings.storage.database_url is None else f"Postgres, schema {DBOS_SCHEMA}"
    log.info("DBOS launched: executor %s, version %s, %s", executor_id, APPLICATION_VERSION, where)


def use_wal(path: Path) -> None:
    """Put DBOS's SQLite system database in WAL mode (kept in the file: every process's connections use
    it). DBOS leaves it in SQLite's default rollback journal, where every commit — each step's start and
    result, each workflow's start and end — syncs the disk two or three times while holding the only
    write lock (≈ 8–11 ms a commit on this host's disk, idle), so fifty jobs' checkpoints queued behind
    each other and behind SQLite's sleeping busy handler. In WAL a commit appends to one file, and readers
    no longer wait for writers. Blocking: run in a thread."""
    deadline = time.monotonic() + _SQLITE_SWITCH_WAIT_S
    conn = sqlite3.connect(path, timeout=_SQLITE_SWITCH_WAIT_S)
    try:
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL").fetchone()
                return
            except sqlite3.OperationalError as exc:  # another process migrating or switching the new file
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.05)
    finally:
        conn.close()


class _SyncNormal(sqlite3.Connection):
    """DBOS's connections to its SQLite system database (`connect_args={"factory": …}`), with
    `synchronous=NORMAL`: in WAL, a commit no longer waits for the disk; the log is synced at each
    checkpoint. As for `jant.db` (storage/database.py): nothing committed is lost when a process dies
    (kill -9 included: the recovery tests), only the last commits on a power cut or an OS crash, and
    the file is never corrupted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execute("PRAGMA synchronous=NORMAL")


async def destroy() -> None:
    """Stop DBOS's threads (it joins them, so not on the loop). Workflows not finished stay PENDING.

    DBOS makes its own thread pool the loop's default executor (every `asyncio.to_thread` of the process
    runs there) and shuts that pool down here: the loop gets a fresh one, or the next `to_thread` would
    raise "cannot schedule new futures after shutdown"."""
    from dbos import DBOS

    loop = asyncio.get_running_loop()
    try:
        await asyncio.to_thread(DBOS.destroy)
    finally:
        loop.set_default_executor(ThreadPoolExecutor(thread_name_prefix="jant-after-dbos"))


def job_of(workflow_id: str) -> str:
    """The job a workflow belongs to: its run (`<job id>[~n]`) or one of the run's chains (`<run id>/…`)."""
    return workflow_id.split("/", 1)[0].split(RUN_SEPARATOR, 1)[0]


async def next_run_id(job_id: str) -> str:
    """The workflow id of the job's next run: the job id for the first, then `<job id>~<n>`."""
    from dbos import DBOS

    runs = await DBOS.list_workflows_async(
        workflow_id_prefix=job_id, name=JOB_WORKFLOW, has_parent=False, load_input=False, load_output=False
    )
    return run_id_after({w.workflow_id for w in runs}, job_id)


def run_id_after(ids: set[str], job_id: str) -> str:
    """The job's next run id, given the ids of the workflows its runs have had so far."""
    if job_id not in ids:
        return job_id
    n = 2
    while f"{job_id}{RUN_SEPARATOR}{n}" in ids:
        n += 1
    return f"{job_id}{RUN_SEPARATOR}{n}"


async def pending_jobs(worker_id: str) -> list[str]:
    """The job runs this worker still owes: PENDING (running or to recover) or ENQUEUED (recovery queues them)."""
    from dbos import DBOS

    runs = await DBOS.list_workflows_async(
        status=["PENDING", "ENQUEUED"], name=JOB_WORKFLOW, executor_id=worker_id, load_input=False,
        load_output=False,
    )  # fmt: skip
    return [w.workflow_id for w in runs]

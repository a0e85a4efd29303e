"""DBOS for one process: configure, launch, find a job's runs, wait for this worker's jobs, shut down.

Facts of DBOS 3.4 this relies on (PLATFORM-FACTS G, re-checked in docs/durable-jobs.md): a launch
recovers only the PENDING workflows of its own executor id and application version, so both are
set here and never left to DBOS's defaults ("local" and a hash of the workflow source).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pipeline.config import Settings
from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

# Changed only when the steps a job workflow takes change order or names in a way a half-run workflow
# cannot replay: the pending runs of another version are not recovered (docs/durable-jobs.md, upgrades).
APPLICATION_VERSION = "jant-workflows-2"
JOB_WORKFLOW = "jant.job"
RUN_SEPARATOR = "~"  # the second run of job X (Retry failed, a re-roll) is workflow "X~2"


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


async def launch(settings: Settings) -> None:
    """Start DBOS on this loop, which becomes the loop its recovered workflows run on (the process's
    pending jobs are recovered in the background from here on). The workflows must be imported first."""
    dbos = require_dbos()
    import pipeline.durable.orchestrator  # noqa: F401  # registers the workflows before the launch

    path = settings.storage.dbos_db_path
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    dbos(
        config={
            "name": "jant",
            "system_database_url": f"sqlite:///{path}",
            "executor_id": settings.storage.worker_id,
            "application_version": APPLICATION_VERSION,
            "log_level": "WARNING",  # its INFO lines would cut through the terminal's progress bars
        }
    )
    # Called inside the running loop on purpose: queued and recovered async workflows then run on this
    # loop, beside the orchestrator's objects. It blocks the loop for the launch (a fraction of a second).
    dbos.launch()
    log.info("DBOS launched: executor %s, version %s, %s", settings.storage.worker_id, APPLICATION_VERSION, path)


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


async def next_run_id(job_id: str) -> str:
    """The workflow id of the job's next run: the job id for the first, then `<job id>~<n>`."""
    from dbos import DBOS

    runs = await DBOS.list_workflows_async(
        workflow_id_prefix=job_id, name=JOB_WORKFLOW, has_parent=False, load_input=False, load_output=False
    )
    ids = {w.workflow_id for w in runs}
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

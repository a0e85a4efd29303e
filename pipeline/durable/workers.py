"""Worker ids for the durable engine: one live process per id, heartbeats, and the takeover of a dead
worker's jobs by a live one (docs/durable-jobs.md, "Executor id, recovery and takeover").

DBOS 3.4 recovers a workflow only in a process launched with the executor id that ran it, and two live
processes with one id run each other's workflows twice (PLATFORM-FACTS G). So:

- every process that runs jobs has a stable id (`--id`, JANT_WORKER_ID, else the host name and a
  suffix kept in the data directory) and holds a lease on it (`workers` table) before DBOS launches;
  a second process with a live holder's id is refused, one restarted with a dead holder's id takes
  the lease and DBOS recovers that id's jobs at launch;
- each holder beats every JANT_WORKER_HEARTBEAT_S; a `jant worker` that sees another worker silent for
  JANT_WORKER_TAKEOVER_S claims it (one conditional UPDATE: one claimer wins) and resumes its pending
  workflows through DBOS's public API, recording a `taken_over` event on each job.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.config import WORKER_ID_PATTERN, Settings
from pipeline.durable import engine
from pipeline.errors import ConfigError
from pipeline.store import JobStore
from pipeline.task_stop import cancel_and_wait
from storage.worker_leases import WorkerLeases

log = logging.getLogger(__name__)

WORKER_ID_DIR = "worker-ids"  # under the data directory: one file per host name, holding that host's id
# A holder on another host is live for this many of its beats: a late beat or two is not a death.
LIVE_BEATS = 5
# How long a start with an id waits for a survivor that is taking that id's jobs over (a claim is
# followed by a list and a resume: well under a second) before it takes the id anyway.
CLAIM_WAIT_S = 30.0
_POLL_S = 0.2
# The DBOS queue a claimer resumes a dead worker's runs on. Only processes that take over listen to it
# (`Runtime.open`): DBOS's own internal queue is served by every DBOS process, a `jant makead` included,
# which would run a taken-over job only until its own ad is done, then leave it pending again.
TAKEOVER_QUEUE = "jant.takeover"


class WorkerIdInUse(ConfigError):
    """Another live process holds this worker id."""


# -- which id -------------------------------------------------------------------------------------


def check_worker_id(name: str) -> str:
    if not re.fullmatch(WORKER_ID_PATTERN, name) or len(name) > 100:
        raise ConfigError(
            f"{name!r} cannot be a worker id.",
            hint="Use up to 100 letters, digits, '.', '_', '@' or '-', starting with a letter or digit.",
        )
    return name


def _host_name() -> str:
    host = re.sub(r"[^A-Za-z0-9._-]+", "-", socket.gethostname()).lstrip("._-")[:60]
    return host or "host"


def stored_worker_id(data_dir: Path) -> str:
    """This host's default id: the host name and a random suffix, made once and kept in the data
    directory so a restart has the same id (and DBOS recovers its jobs). One file per host name, so
    hosts (containers) that share the directory still get ids of their own. Blocking: run in a thread."""
    host = _host_name()
    path = data_dir / WORKER_ID_DIR / host
    if path.exists():
        return _read_stored(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = f"{host}-{secrets.token_hex(3)}"
    tmp = path.with_name(f".{host}.{os.getpid()}.{secrets.token_hex(4)}.tmp")  # one per caller, threads too
    tmp.write_text(name + "\n", encoding="utf-8")
    try:
        os.link(tmp, path)  # atomic, and refuses an existing file: of two first starts, one id wins
    except FileExistsError:
        return _read_stored(path)
    finally:
        tmp.unlink(missing_ok=True)
    return name


def _read_stored(path: Path) -> str:
    try:
        return check_worker_id(path.read_text(encoding="utf-8").strip())
    except ConfigError:
        raise ConfigError(
            f"{path} does not hold a usable worker id.",
            hint="Delete the file to get a new id (this host's unfinished jobs then wait for a takeover), fix"
            " it, or set JANT_WORKER_ID.",
        ) from None


async def worker_id_for(settings: Settings, explicit: str | None = None) -> str:
    """`--id`, else JANT_WORKER_ID, else this host's stored id."""
    if explicit is not None:
        return check_worker_id(explicit)
    if settings.storage.worker_id is not None:
        return settings.storage.worker_id
    return await asyncio.to_thread(stored_worker_id, settings.storage.data_dir)


def with_worker_id(settings: Settings, worker_id: str) -> Settings:
    """The settings this process runs with, its resolved id in them (DBOS's executor_id is read there)."""
    return settings.model_copy(update={"storage": settings.storage.model_copy(update={"worker_id": worker_id})})


# -- which process --------------------------------------------------------------------------------


def _pid_started(pid: int) -> str | None:
    """When the OS started `pid` (Linux: clock ticks since boot), or None where that is unknown. A pid
    reused by another process has another start time; so does pid 1 of a restarted container."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the command name, in parentheses, may hold spaces
    return fields[19] if len(fields) > 19 else None


def _alive_here(pid: int, started: str | None) -> bool:
    """Is that process (on this host) still running?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user
    now_started = _pid_started(pid)
    return started is None or now_started is None or now_started == started


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")  # fixed width: comparing the text compares the instants


def _now() -> datetime:
    return datetime.now(UTC)


def _age_s(row: Mapping[str, Any], now: datetime) -> float:
    return (now - datetime.fromisoformat(str(row["heartbeat_at"]))).total_seconds()


_held_here: set[str] = set()  # the tokens this process holds: its own pid in a row is not proof of death


@dataclass(frozen=True)
class _Verdict:
    free: bool
    wait: bool = False  # a survivor is taking this id's jobs over right now
    why: str = ""


def _judge(row: Mapping[str, Any], host: str, now: datetime) -> _Verdict:
    """May a process on `host` take the id in `row`?"""
    if row["taken_over_by"] is not None:
        if row["takeover_done_at"] is None and _age_s({"heartbeat_at": row["taken_over_at"]}, now) < CLAIM_WAIT_S:
            return _Verdict(free=False, wait=True)
        return _Verdict(free=True, why=f"its jobs were taken over by {row['taken_over_by']}")
    if row["stopped_at"] is not None:
        return _Verdict(free=True, why="it stopped")
    if row["token"] in _held_here:
        return _Verdict(free=False)
    if row["host"] == host:
        # Same host: the process table is the truth, whatever the heartbeat says.
        if _alive_here(int(row["pid"]), row["pid_started"]):
            return _Verdict(free=False)
        return _Verdict(free=True, why=f"its process (pid {row['pid']}) is gone")
    if _age_s(row, now) < LIVE_BEATS * float(row["heartbeat_s"]):
        return _Verdict(free=False)
    return _Verdict(free=True, why=f"its heartbeat stopped {_age_s(row, now):.0f} s ago")


def _in_use(row: Mapping[str, Any], now: datetime) -> WorkerIdInUse:
    age = _age_s(row, now)
    live_s = LIVE_BEATS * float(row["heartbeat_s"])
    free_when = (
        "it is free as soon as that process stops"
        if row["host"] == _host_name()
        else f"if that process died, the id is free once its heartbeat is {live_s:g} s old"
    )
    return WorkerIdInUse(
        f"Worker id {row['id']!r} is in use by a running process (pid {row['pid']} on host {row['host']},"
        f" last heartbeat {age:.1f} s ago): two processes with one id would run the same jobs twice.",
        hint=f"Start this one with another id (`jant worker --id NAME` or JANT_WORKER_ID), or stop that"
        f" process first; {free_when}.",
    )


# -- the lease ------------------------------------------------------------------------------------


class WorkerLease:
    """This process's hold on its worker id."""

    def __init__(self, leases: WorkerLeases, worker_id: str, token: str, heartbeat_s: float, previous: str) -> None:
        self.leases = leases
        self.worker_id = worker_id
        self.token = token
        self.heartbeat_s = heartbeat_s
        self.previous = previous  # why the id was free ("" for a new id): said in the log

    @classmethod
    async def acquire(cls, leases: WorkerLeases, worker_id: str, heartbeat_s: float) -> WorkerLease:
        """Hold `worker_id`, or raise `WorkerIdInUse` naming the live holder."""
        host = _host_name()
        waited_since = _now()
        while True:
            now = _now()
            token = secrets.token_hex(8)
            holder = {
                "id": worker_id, "token": token, "host": host, "pid": os.getpid(),
                "pid_started": _pid_started(os.getpid()), "heartbeat_s": heartbeat_s,
                "started_at": _iso(now), "heartbeat_at": _iso(now),
            }  # fmt: skip
            row = await leases.get(worker_id)
            if row is None:
                if await leases.insert(holder):
                    return cls._held(leases, worker_id, token, heartbeat_s, "")
                continue  # another process inserted it first: judge its row
            verdict = _judge(row, host, now)
            if verdict.wait and (now - waited_since).total_seconds() < CLAIM_WAIT_S:
                await asyncio.sleep(_POLL_S)
                continue
            if not verdict.free and not verdict.wait:
                raise _in_use(row, now)
            if await leases.replace(row, holder):
                why = verdict.why or "a survivor's takeover of it did not finish"
                log.info("worker id %s taken from pid %s on %s: %s", worker_id, row["pid"], row["host"], why)
                return cls._held(leases, worker_id, token, heartbeat_s, why)
            # The row changed between the read and the write (a beat, a restart, a claim): judge again.

    @classmethod
    def _held(cls, leases: WorkerLeases, worker_id: str, token: str, heartbeat_s: float, why: str) -> WorkerLease:
        _held_here.add(token)
        return cls(leases, worker_id, token, heartbeat_s, why)

    async def beat(self) -> bool:
        """False once the lease is lost (another process took the id: this one must stop running jobs)."""
        return await self.leases.beat(self.worker_id, self.token, _iso(_now()))

    async def release(self) -> None:
        """A clean stop: a restart with this id may start at once; what is left pending waits for it,
        or for a survivor's takeover after JANT_WORKER_TAKEOVER_S."""
        try:
            await self.leases.release(self.worker_id, self.token, _iso(_now()))
        finally:
            _held_here.discard(self.token)


# -- heartbeat and takeover -----------------------------------------------------------------------


async def serve_takeovers() -> None:
    """Make the takeover queue known (after the launch, as DBOS 3.4 wants): this process dequeues it."""
    from dbos import DBOS

    await DBOS.register_queue_async(TAKEOVER_QUEUE)


class WorkerWatch:
    """Beats for this process; in a `jant worker` (`takes_over`), also takes silent workers' jobs over."""

    def __init__(
        self,
        lease: WorkerLease,
        store: JobStore,
        *,
        takeover_s: float,
        takes_over: bool,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.lease = lease
        self.store = store
        self.takeover_s = takeover_s
        self.takes_over = takes_over
        self.notify = notify
        self.lost = asyncio.Event()  # set when another process took this id: stop running jobs
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"worker-watch-{self.lease.worker_id}")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        me = self.lease.worker_id
        while True:
            try:
                if not await self.lease.beat():
                    log.error("worker %s lost its lease: another process holds the id now; stopping its jobs", me)
                    self.lost.set()
                    return
                if self.takes_over:
                    await self.take_over_silent()
            except asyncio.CancelledError:
                raise
            except Exception:  # a busy database, say: the next beat tries again
                log.exception("worker %s: heartbeat or takeover check failed", me)
            await asyncio.sleep(self.lease.heartbeat_s)

    async def take_over_silent(self) -> list[str]:
        """Claim every worker silent for `takeover_s` that nobody has claimed, and resume its jobs here.
        Returns the ids of the workers this call took over."""
        me = self.lease.worker_id
        now = _now()
        cutoff = _iso(now - timedelta(seconds=self.takeover_s))
        taken = []
        for row in await self.lease.leases.silent_since(cutoff, besides=me):
            if not await self.lease.leases.claim(row, cutoff=cutoff, by=me, at=_iso(now)):
                continue  # another survivor claimed it first, or it beat or restarted since it was read
            try:
                await self._resume(row)
            except BaseException:
                await self.lease.leases.unclaim(row["id"], by=me)
                raise
            await self.lease.leases.claim_done(row["id"], by=me, at=_iso(_now()))
            taken.append(str(row["id"]))
        return taken

    async def _resume(self, row: Mapping[str, Any]) -> None:
        """Hand the dead worker's pending workflows (its job runs and their chains) to the queue this
        process serves: each resumes at its first unfinished step; a step in flight at the death runs
        again and polls the prediction it had already created."""
        from dbos import DBOS

        dead, me = str(row["id"]), self.lease.worker_id
        runs = await DBOS.list_workflows_async(
            status="PENDING", executor_id=[dead], app_version=engine.APPLICATION_VERSION, load_input=False,
            load_output=False,
        )  # fmt: skip
        ids = [w.workflow_id for w in runs]
        if ids:
            await DBOS.resume_workflows_async(ids, queue_name=TAKEOVER_QUEUE)
        jobs = sorted({engine.job_of(i) for i in ids})
        silent = _age_s(row, _now())
        detail = f"from worker {dead} (silent {silent:.0f} s) by worker {me}: {len(ids)} workflow(s)"
        for job_id in jobs:
            try:
                await self.store.repo.add_event(job_id, "taken_over", detail=detail)
            except Exception:  # a job deleted meanwhile has no row to note it on; its runs resume anyway
                log.exception("could not record the takeover on job %s", job_id)
        message = f"Worker {me} took over worker {dead} (silent {silent:.0f} s): " + (
            f"{len(jobs)} job(s) resumed here ({', '.join(jobs)})" if jobs else "it left no job unfinished"
        )
        if not jobs and row["stopped_at"] is not None:  # a `jant makead` that ended as it should: nothing to say
            log.debug(message)
        elif self.notify is not None:  # the worker's terminal says it; the log need not say it twice there
            log.info(message)
            self.notify(message)
        else:
            log.warning(message)

"""Recovery after kill -9 of a DBOS worker (JANT_ENGINE=dbos, issue 15): how long a job's steps stand
still when the worker running it dies.

    python -m benchmarks.bench_recovery [restart|takeover|both] [--postgres] [--takeover-s N] [--time-factor F]

Real processes and commands throughout: `jant worker --id alpha`, and `jant makead PRODUCT --yes
--no-worker` queueing one ad for it and following it to the end (the Replicate and OpenAI emulators in
this process, time ×0.25, voice and music off, the real composer). Once every clip of the job is a
prediction processing on Replicate with its id stored, alpha gets SIGKILL. Then:

- **restart**: `jant worker --id alpha` is started again at once (what a supervisor does). DBOS's launch
  recovers alpha's runs; the lease is free because alpha's pid is gone.
- **takeover**: `jant worker --id bravo`, started beside alpha before the kill, with
  JANT_WORKER_TAKEOVER_S=N (default 10) and the default heartbeat (JANT_WORKER_HEARTBEAT_S=2): bravo claims
  alpha once alpha's last beat is N s old and resumes its runs through the `jant.takeover` queue.

Measured from the kill (wall seconds of one host's clock): the first step of the job that runs again
(its `dbos_step` event), the first poll of a clip prediction alpha had created (the emulator's request
log), the `taken_over` event (takeover), and the job's end; plus the creates after the kill (0 means
nothing was paid twice) and how old alpha's last beat was at the kill. Expected for the takeover:
≈ N − (age of the last beat at the kill) + up to one beat (bravo checks at its own beats) + up to one
second (DBOS polls the takeover queue every second).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.processes import BenchProcess, postgres, rows, until
from benchmarks.scenario import PRODUCT, SILENT_ENV, TimeScale
from benchmarks.services import Services, services

SCALE = TimeScale(0.25)
TAKEOVER_S = 10.0
JOB_TIMEOUT_S = 300


def _epoch(text: object) -> float:
    return datetime.fromisoformat(str(text)).timestamp()


async def _lease_pid(db: Path | str, worker_id: str) -> int | None:
    found = await rows(db, "SELECT pid FROM workers WHERE id = ? AND stopped_at IS NULL", worker_id)
    return int(str(found[0][0])) if found and found[0][0] is not None else None


async def _every_clip_generating(db: Path | str, svc: Services) -> tuple[str, list[str]] | None:
    """(job id, its clips' prediction ids) once every clip is processing on Replicate with its id stored."""
    found = await rows(db, "SELECT job_id, status, prediction_id FROM stages WHERE stage = 'clip'")
    if not found or any(status != "running" or pid is None for _, status, pid in found):
        return None
    preds = svc.replicate.predictions
    ids = [str(pid) for _, _, pid in found]
    if not all(p in preds and preds[p].status == "processing" for p in ids):
        return None
    return str(found[0][0]), ids


async def _event_after(db: Path | str, job_id: str, kind: str, after_id: int) -> tuple[float, str] | None:
    found = await rows(
        db,
        "SELECT at, detail FROM events WHERE job_id = ? AND kind = ? AND id > ? ORDER BY id LIMIT 1",
        job_id,
        kind,
        after_id,
    )
    return (_epoch(found[0][0]), str(found[0][1])) if found else None


async def measure_recovery(
    how: str, *, database_url: str | None = None, takeover_s: float = TAKEOVER_S, scale: TimeScale = SCALE
) -> dict[str, Any]:
    """One kill -9 and its recovery, `how` = "restart" or "takeover"."""
    with tempfile.TemporaryDirectory(prefix="jant-bench-") as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "data"
        db: Path | str = database_url if database_url is not None else data / "jant.db"
        async with services(scale, music=False) as svc:
            env = svc.env(
                data, JANT_ENGINE="dbos", JANT_WORKER_TAKEOVER_S=f"{takeover_s:g}", COLUMNS="200", **SILENT_ENV
            )
            if database_url is not None:
                env["JANT_DATABASE_URL"] = database_url
            procs: list[BenchProcess] = []
            try:
                alpha = await BenchProcess.jant(env, tmp / "alpha.log", "worker", "--id", "alpha")
                procs.append(alpha)
                await until(lambda: _lease_pid(db, "alpha"), limit_s=120, what="worker alpha's lease", every=0.2)
                front = await BenchProcess.jant(env, tmp / "makead.log", "makead", PRODUCT, "--yes", "--no-worker")
                procs.append(front)
                job_id, clips = await until(
                    lambda: _every_clip_generating(db, svc),
                    limit_s=180,
                    what="every clip generating on Replicate",
                    every=0.1,
                )
                if how == "takeover":
                    bravo = await BenchProcess.jant(env, tmp / "bravo.log", "worker", "--id", "bravo")
                    procs.append(bravo)
                    await until(lambda: _lease_pid(db, "bravo"), limit_s=120, what="worker bravo's lease", every=0.2)
                creates_at_kill = svc.replicate.counts.total_creates
                killed_mono, killed_epoch = time.monotonic(), time.time()
                alpha.proc.send_signal(signal.SIGKILL)
                await alpha.wait(10)
                last_event = await rows(db, "SELECT MAX(id) FROM events")  # alpha writes no more; nobody else yet
                after_id = int(str(last_event[0][0] or 0))
                beat = await rows(db, "SELECT heartbeat_at FROM workers WHERE id = 'alpha'")
                beat_age = killed_epoch - _epoch(beat[0][0]) if beat else None
                if how == "restart":
                    again = await BenchProcess.jant(env, tmp / "alpha-again.log", "worker", "--id", "alpha")
                    procs.append(again)
                    spawned_s = time.time() - killed_epoch
                    pid = again.proc.pid

                    async def restarted() -> bool:
                        return await _lease_pid(db, "alpha") == pid

                    await until(restarted, limit_s=120, what="alpha's restart taking its lease", every=0.05)
                    lease_s = time.time() - killed_epoch
                step = await until(
                    lambda: _event_after(db, job_id, "dbos_step", after_id),
                    limit_s=JOB_TIMEOUT_S,
                    what="a step of the job running again",
                    every=0.05,
                )
                code = await front.wait(JOB_TIMEOUT_S)
                ended_s = time.monotonic() - killed_mono
                status = await rows(db, "SELECT status FROM jobs WHERE id = ?", job_id)
                taken = await _event_after(db, job_id, "taken_over", after_id)
                polls = [
                    r.at
                    for r in svc.replicate.requests
                    if r.method == "GET" and r.at > killed_mono and any(r.path.endswith(c) for c in clips)
                ]
                out: dict[str, Any] = {
                    "how": how,
                    "database": "postgres" if database_url else "sqlite",
                    "takeover_s": takeover_s if how == "takeover" else None,
                    "heartbeat_s": 2.0,
                    "last_beat_age_at_kill_s": beat_age,
                    "first_step_again_s": step[0] - killed_epoch,
                    "first_step": step[1],
                    "first_clip_poll_s": min(polls) - killed_mono if polls else None,
                    "taken_over_event_s": taken[0] - killed_epoch if taken else None,
                    "taken_over_detail": taken[1] if taken else None,
                    "job_finished_s": ended_s,
                    "job_status": str(status[0][0]) if status else None,
                    "makead_exit": code,
                    "creates_after_kill": svc.replicate.counts.total_creates - creates_at_kill,
                }
                if how == "restart":
                    out.update(process_spawned_s=spawned_s, lease_taken_s=lease_s)
                return out
            finally:
                for p in procs:
                    if p.proc.returncode is None:
                        await p.stop()
                keep = os.environ.get("BENCH_KEEP")  # a directory: the run's logs and data are copied there
                if keep:
                    await asyncio.to_thread(shutil.copytree, tmp, Path(keep) / tmp.name, dirs_exist_ok=True)


async def run_recovery(
    which: tuple[str, ...] = ("restart", "takeover"),
    *,
    on_postgres: bool = False,
    takeover_s: float = TAKEOVER_S,
    scale: TimeScale = SCALE,
) -> dict[str, Any]:
    out: dict[str, Any] = {"time_factor": scale.factor}
    for how in which:
        print(
            f"· kill -9 of a worker mid-clip, then {how} ({'Postgres' if on_postgres else 'SQLite'}) …",
            file=sys.stderr,
            flush=True,
        )
        if on_postgres:
            async with postgres() as server:
                out[how] = await measure_recovery(
                    how, database_url=await server.create_database(), takeover_s=takeover_s, scale=scale
                )
        else:
            out[how] = await measure_recovery(how, takeover_s=takeover_s, scale=scale)
    return out


def print_recovery(r: dict[str, Any]) -> None:
    def s(v: float | None) -> str:
        return "—" if v is None else f"{v:.2f} s"

    print("\nRecovery after kill -9 of the worker running a job (wall seconds from the kill)")
    if "restart" in r:
        x = r["restart"]
        print(
            f"  restart with the same id ({x['database']}): process up {s(x['process_spawned_s'])}, lease "
            f"{s(x['lease_taken_s'])}, first step again {s(x['first_step_again_s'])}, first clip poll "
            f"{s(x['first_clip_poll_s'])}; job {x['job_status']} at {s(x['job_finished_s'])}, "
            f"creates after the kill {x['creates_after_kill']}"
        )
    if "takeover" in r:
        x = r["takeover"]
        print(
            f"  takeover, JANT_WORKER_TAKEOVER_S={x['takeover_s']:g}, beat 2 s ({x['database']}): last beat "
            f"{s(x['last_beat_age_at_kill_s'])} old at the kill; taken over {s(x['taken_over_event_s'])}, first "
            f"step again {s(x['first_step_again_s'])}, first clip poll {s(x['first_clip_poll_s'])}; job "
            f"{x['job_status']} at {s(x['job_finished_s'])}, creates after the kill {x['creates_after_kill']}"
        )


if __name__ == "__main__":
    argv = sys.argv[1:]
    which: tuple[str, ...] = ("restart", "takeover")
    if argv and argv[0] in ("restart", "takeover"):
        which = (argv[0],)
    n = float(argv[argv.index("--takeover-s") + 1]) if "--takeover-s" in argv else TAKEOVER_S
    f = float(argv[argv.index("--time-factor") + 1]) if "--time-factor" in argv else SCALE.factor
    result = asyncio.run(run_recovery(which, on_postgres="--postgres" in argv, takeover_s=n, scale=TimeScale(f)))
    print(json.dumps(result, indent=2))
    print_recovery(result)

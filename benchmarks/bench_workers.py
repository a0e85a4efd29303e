"""Jobs on DBOS workers (JANT_ENGINE=dbos, issue 15): the 50-job critical-path ratio through worker
processes, and a compose-heavy batch on one worker against two.

    python -m benchmarks.bench_workers critical-path [jobs] [time-factor] [--no-postgres]
    python -m benchmarks.bench_workers compose [ads] [time-factor]

**Critical path.** Three runs of the same jobs — the same scripts (stage seeds, so the same scripted
latencies per job), the same emulators, time ×0.25, approvals spread over a real-equivalent minute as
`make bench`'s section 2 spreads them, voice and music off:
1. `local`: the default engine, jobs run in the process that approves them (`benchmarks.worker
   headless`, section 1's run with the spread);
2. `dbos-sqlite-1w`: a front end that runs no job (`benchmarks.worker queue`: the runtime of `jant makead
   --no-worker`, a `QueuedOrchestrator` on DBOS's client) plans and approves the jobs, which queues each
   on `jant-jobs`; ONE `jant worker` (`benchmarks.worker dbos_worker`: `bot.worker.run_worker`'s runtime)
   dequeues and runs them as DBOS workflows; SQLite (jant.db and dbos.sqlite on one data directory);
3. `dbos-postgres-2w`: the same with TWO workers and both databases in a real Postgres
   (tests/postgres_server.py's server, started here), JANT_DATABASE_URL.

The same as the local run: the providers (real openai/replicate clients against the emulators), the
byte-copying composer stand-in (`probes.TimedCopyComposer`: section 3 measures ffmpeg), the ideal per job
(scripted seed + clip of its slowest scene + its measured join), wall = approval → the job's
JOB_FINISHED in the process that ran it (one host: `time.monotonic` is one clock for all processes).
Not the same: approval happens in the front end and the run in a worker, so the ratio includes what the
design adds — the enqueue (DBOS client write), the workers' queue poll (every 0.2 s,
`engine.JOBS_QUEUE_POLL_S`), DBOS's checkpoint of every workflow and step, and the account's limits shared by
all processes through the database (`JANT_SHARED_LIMITS=auto`: on with the DBOS engine). Also
reported: `ratio_seen_by_front_end`, wall up to when the front end saw the job finish through the
database (`DatabaseEvents`, ≈ 0.5 s polls), which is what a `--no-worker` CLI or bot shows.

**Compose batch.** Six ads with the real composer (ffmpeg normalising every clip of the emulator's SVD
output to 720x1280, then the join and contact sheet), approved one wall second apart (approved at once,
all of them go to whichever worker polls the queue first: DBOS dequeues everything a queue without a
per-worker limit holds), time ×0.05 so the
predictions take seconds and ffmpeg is most of the run; one `jant worker` against two (front end and
SQLite as above). Printed: each run's makespan (first approval → last ad finished), their ratio, and the
CPU seconds of the workers and their ffmpeg children with the cores that kept busy. One worker already
runs every clip's ffmpeg at once, so on this 2-core host the ratio is bounded by two cores: a second
worker process can only help where one process leaves a core idle.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean
from typing import Any

from benchmarks.bench_critical_path import job_ratios, measure, summarise
from benchmarks.probes import percentile
from benchmarks.processes import BenchProcess, postgres, postgres_available, wait_ready
from benchmarks.scenario import SILENT_ENV, TimeScale
from benchmarks.services import Services, services

CRITICAL_SCALE = TimeScale(0.25)
COMPOSE_SCALE = TimeScale(0.05)
SPREAD_REAL_S = 60.0  # approvals over a minute, as `make bench`'s fifty teammates
RUN_TIMEOUT_S = 600


def merge_clocks(front: dict[str, Any], workers: list[dict[str, Any]]) -> dict[str, Any]:
    """One `JobClock` report per job for `job_ratios`: approval from the front end, the finish and the
    scenes from the worker that ran the job, joins from every worker."""
    jobs: dict[str, Any] = {}
    by_worker: dict[str, int] = {}
    for job_id, seen in front["jobs"].items():
        ran = next((w["jobs"][job_id] for w in workers if (w["jobs"].get(job_id) or {}).get("finished")), None)
        if ran is None:
            jobs[job_id] = {**seen, "finished": None}
            continue
        jobs[job_id] = {**ran, "queued": seen["queued"], "queued_epoch": seen["queued_epoch"]}
    for w in workers:
        by_worker[w["worker"]] = sum(1 for t in w["jobs"].values() if t.get("finished"))
    join_s = {k: v for w in workers for k, v in w["join_s"].items()}
    return {"jobs": jobs, "join_s": join_s, "by_worker": by_worker}


async def run_over_workers(
    scale: TimeScale,
    jobs: int,
    workers: int,
    *,
    database_url: str | None = None,
    spread_real_s: float = SPREAD_REAL_S,
    ffmpeg: bool = False,
) -> tuple[Services, dict[str, Any]]:
    """`jobs` queued by a `--no-worker` front end for `workers` DBOS worker processes; merged clocks and
    the emulators (for `job_ratios`), with per-process figures."""
    with tempfile.TemporaryDirectory(prefix="jant-bench-") as tmp_name:
        tmp = Path(tmp_name)
        async with services(scale, music=False) as svc:
            env = svc.env(tmp / "data", JANT_ENGINE="dbos", **SILENT_ENV)
            if database_url is not None:
                env["JANT_DATABASE_URL"] = database_url
            ready = [tmp / f"worker-{n}.ready" for n in range(1, workers + 1)]
            procs = [
                await BenchProcess.worker(
                    "dbos_worker", {"id": f"bench-{n}", "ready": str(r), "ffmpeg": ffmpeg}, env, tmp, f"worker-{n}"
                )
                for n, r in enumerate(ready, 1)
            ]
            front = None
            try:
                await wait_ready(procs, ready)
                started = time.monotonic()
                spec = {"jobs": jobs, "first": 0, "spread_s": scale.wall(spread_real_s)}
                front = await BenchProcess.worker("queue", spec, env, tmp, "front")
                front_result = await front.result(RUN_TIMEOUT_S)
                run_s = time.monotonic() - started
                results = []
                for p in procs:
                    await p.stop()
                    results.append(await p.result(30))
            finally:
                for p in [*procs, *([front] if front else [])]:
                    p.kill()
                keep = os.environ.get("BENCH_KEEP")  # a directory: the run's logs and data are copied there
                if keep:
                    await asyncio.to_thread(shutil.copytree, tmp, Path(keep) / tmp.name, dirs_exist_ok=True)
            merged = merge_clocks(front_result, results)
            lags = [lag for r in results for lag in r["lags"]]
            return svc, {
                "workers": workers,
                "database": "postgres" if database_url else "sqlite",
                "merged": merged,
                "front": front_result,
                "run_s": run_s,
                "statuses": sorted(set(front_result["statuses"])),
                "jobs_by_worker": merged["by_worker"],
                "worker_cpu_s": sum(r["cpu_s"] for r in results),
                "ffmpeg_cpu_s": sum(r["children_cpu_s"] for r in results),
                "front_cpu_s": front_result["cpu_s"],
                "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
                "loop_lag_p99_ms": percentile(lags, 99) * 1000,
                "replicate": svc.rates(),
            }


def _seen_by_front_end(svc: Services, run: dict[str, Any]) -> float:
    """Mean ratio with each job's finish as the front end saw it through the database."""
    front = run["front"]
    seen = {jid: {**t, "queued": t["queued"]} for jid, t in run["merged"]["jobs"].items()}
    for jid, t in seen.items():
        t["finished"] = front["jobs"][jid]["finished"]
    rows = job_ratios(svc, {"jobs": seen, "join_s": run["merged"]["join_s"]})
    return mean(r["ratio"] for r in rows) if rows else 0.0


async def critical_path_on_workers(
    jobs: int = 50, scale: TimeScale = CRITICAL_SCALE, *, with_postgres: bool = True
) -> dict[str, Any]:
    """The local engine's ratio, then one worker on SQLite, then two on Postgres (when installed)."""
    out: dict[str, Any] = {"jobs": jobs, "time_factor": scale.factor, "spread_real_s": SPREAD_REAL_S}
    local = await measure(scale, jobs, "pipelined", env_extra=SILENT_ENV, spread_s=scale.wall(SPREAD_REAL_S))
    out["local"] = {
        k: local[k]
        for k in ("ratio_mean", "ratio_p95", "ratio_max", "completed", "jobs", "lost_s", "cpu_s_per_job", "replicate")
    }
    runs: list[tuple[str, int, bool]] = [("dbos_sqlite_1w", 1, False)]
    if with_postgres:
        runs.append(("dbos_postgres_2w", 2, True))
    for key, n, on_pg in runs:
        print(
            f"· {jobs} jobs on {n} DBOS worker(s), {'Postgres' if on_pg else 'SQLite'} …", file=sys.stderr, flush=True
        )
        if on_pg:
            async with postgres() as server:
                svc, run = await run_over_workers(scale, jobs, n, database_url=await server.create_database())
                out[key] = _critical_summary(svc, run, scale)
        else:
            svc, run = await run_over_workers(scale, jobs, n)
            out[key] = _critical_summary(svc, run, scale)
    return out


def _critical_summary(svc: Services, run: dict[str, Any], scale: TimeScale) -> dict[str, Any]:
    rows = job_ratios(svc, run["merged"])
    summary = summarise(rows, scale)
    jobs = max(1, len(run["merged"]["jobs"]))
    return {
        **{k: summary[k] for k in ("ratio_mean", "ratio_p95", "ratio_max", "completed", "jobs", "lost_s")},
        "ratio_seen_by_front_end": _seen_by_front_end(svc, run),
        "statuses": run["statuses"],
        "jobs_by_worker": run["jobs_by_worker"],
        "cpu_s_per_job": run["worker_cpu_s"] / jobs,
        "front_cpu_s_per_job": run["front_cpu_s"] / jobs,
        "peak_rss_mb": run["peak_rss_mb"],
        "loop_lag_p99_ms": run["loop_lag_p99_ms"],
        "replicate": run["replicate"],
    }


async def compose_batch(ads: int = 6, scale: TimeScale = COMPOSE_SCALE) -> dict[str, Any]:
    """Six ads with real ffmpeg on one worker, then on two (approved a second apart; SQLite)."""
    out: dict[str, Any] = {"ads": ads, "time_factor": scale.factor}
    for n in (1, 2):
        print(f"· {ads} ads with ffmpeg on {n} worker(s) …", file=sys.stderr, flush=True)
        # One wall second between approvals: each worker dequeues whatever is queued when it polls (every
        # 0.2 s), so a burst all at once would go to one of them and leave the other idle.
        _, run = await run_over_workers(scale, ads, n, spread_real_s=scale.real(ads - 1), ffmpeg=True)
        times = run["merged"]["jobs"].values()
        finished = [t["finished"] for t in times if t["finished"] is not None]
        makespan = max(finished) - min(t["queued"] for t in times) if finished else 0.0
        cpu = run["worker_cpu_s"] + run["ffmpeg_cpu_s"]
        out[f"{n}w"] = {
            "makespan_s": makespan,
            "completed": len(finished),
            "statuses": run["statuses"],
            "jobs_by_worker": run["jobs_by_worker"],
            "worker_cpu_s": run["worker_cpu_s"],
            "ffmpeg_cpu_s": run["ffmpeg_cpu_s"],
            "cores_busy": cpu / makespan if makespan else 0.0,
        }
    one, two = out["1w"]["makespan_s"], out["2w"]["makespan_s"]
    out["one_over_two"] = one / two if two else 0.0
    return out


def print_workers(crit: dict[str, Any] | None, compose: dict[str, Any] | None) -> None:
    if crit is not None:
        n, local = crit["jobs"], crit["local"]
        print(
            f"\nDBOS workers — {n} jobs, time ×{crit['time_factor']:g}, approvals over "
            f"{crit['spread_real_s']:g} real s (ratio = wall / ideal, mean (p95); target ≤ 1.10)"
        )
        print(
            f"  {'local engine, one process':<36} {local['ratio_mean']:.3f} ({local['ratio_p95']:.3f})   "
            f"{local['completed']}/{local['jobs']} completed, CPU {local['cpu_s_per_job']:.2f} s/job"
        )
        titles = (("dbos_sqlite_1w", "DBOS, 1 worker, SQLite"), ("dbos_postgres_2w", "DBOS, 2 workers, Postgres"))
        for key, title in titles:
            r = crit.get(key)
            if r is None:
                continue
            verdict = "ok" if r["ratio_mean"] <= 1.10 else "MISS"
            print(
                f"  {title:<36} {r['ratio_mean']:.3f} ({r['ratio_p95']:.3f})   {verdict}; seen by the front end "
                f"{r['ratio_seen_by_front_end']:.3f}; {r['completed']}/{r['jobs']} completed {r['jobs_by_worker']}; "
                f"workers' CPU {r['cpu_s_per_job']:.2f} s/job; creates/min {r['replicate']['creates_per_min']}, "
                f"429s {r['replicate']['throttled']}"
            )
    if compose is not None:
        print(f"\nCompose-heavy batch — {compose['ads']} ads, real ffmpeg (720x1280), approved 1 s apart")
        for key in ("1w", "2w"):
            r = compose[key]
            print(
                f"  {key[0]} worker(s): {r['makespan_s']:.1f} s, {r['completed']} completed {r['jobs_by_worker']}, "
                f"CPU {r['worker_cpu_s']:.1f} s + ffmpeg {r['ffmpeg_cpu_s']:.1f} s = {r['cores_busy']:.2f} cores busy"
            )
        print(f"  one worker / two workers (makespan): {compose['one_over_two']:.2f} (bounded by this host's 2 cores)")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    what = args[0] if args else "critical-path"
    if what == "compose":
        ads = int(args[1]) if len(args) > 1 else 6
        factor = float(args[2]) if len(args) > 2 else COMPOSE_SCALE.factor
        result = asyncio.run(compose_batch(ads, TimeScale(factor)))
        print(json.dumps(result, indent=2))
        print_workers(None, result)
    else:
        n = int(args[1]) if len(args) > 1 else 50
        factor = float(args[2]) if len(args) > 2 else CRITICAL_SCALE.factor
        pg = "--no-postgres" not in sys.argv and postgres_available()
        result = asyncio.run(critical_path_on_workers(n, TimeScale(factor), with_postgres=pg))
        print(json.dumps(result, indent=2))
        print_workers(result, None)

"""Critical-path ratio: how close a job's wall time comes to the best its predictions allow.

ideal(job) = max over scenes (seed latency + clip latency, as scripted) + the final join.
ratio = wall / ideal, wall measured from approval to the job's finish inside the worker.
The pipelined product and the seed-then-clip barrier run on identical scripted latencies.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean
from typing import Any

from benchmarks.probes import percentile
from benchmarks.scenario import SILENT_ENV, TimeScale, model_from_argv, sound_from_argv
from benchmarks.services import Services, services, sound_counts

WORKER_TIMEOUT_S = 240


async def run_worker(mode: str, spec: dict[str, Any], env: dict[str, str], *, tmp: Path) -> tuple[Any, dict]:
    """Start `python -m benchmarks.worker MODE`; returns (process, paths) to wait for or signal it."""
    spec_path, out_path = tmp / f"{mode}-spec.json", tmp / f"{mode}-out.json"
    await asyncio.to_thread(spec_path.write_text, json.dumps(spec))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.worker", mode, str(spec_path), str(out_path),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    return proc, {"out": out_path}


async def finish_worker(proc: Any, out: Path, limit_s: float = WORKER_TIMEOUT_S) -> dict[str, Any]:
    """The worker's result, once it has exited; its output ends up in the error if it failed."""
    try:
        stdout, _ = await asyncio.wait_for(proc.communicate(), limit_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"the benchmark worker did not finish within {limit_s:g} s") from None
    text = stdout.decode(errors="replace")
    raw = await asyncio.to_thread(lambda: out.read_text() if out.exists() else None)
    if proc.returncode != 0 or raw is None:
        raise RuntimeError(f"the benchmark worker failed ({proc.returncode}):\n{text[-4000:]}")
    result = json.loads(raw)
    result["log_tail"] = text[-2000:]
    return result


def job_ratios(svc: Services, result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per job: wall, ideal (scripted and as the emulator lived it), ratio."""
    rows = []
    for job_id, times in result["jobs"].items():
        if times["queued"] is None or times["finished"] is None:
            continue
        join = result["join_s"].get(job_id, 0.0)
        scripted, observed = [], []
        for scene in times["scenes"]:
            if not (scene["seed"] and scene["clip"] and scene["done"]):
                continue
            scripted.append(svc.scripted_wall(scene["seed"]) + svc.scripted_wall(scene["clip"]))
            observed.append(svc.observed_wall(scene["seed"]) + svc.observed_wall(scene["clip"]))
        if not scripted:
            continue
        wall = times["finished"] - times["queued"]
        ideal = max(scripted) + join
        rows.append({
            "job": job_id, "status": times["status"], "wall_s": wall, "ideal_s": ideal,
            "ratio": wall / ideal, "ratio_observed": wall / (max(observed) + join),
            **lost_time(svc, times),
        })  # fmt: skip
    return rows


def lost_time(svc: Services, times: dict[str, Any]) -> dict[str, float]:
    """Where the job's wall time beyond its ideal went, along its last scene (the one whose clip
    ended last): approval → seed created, seed done → clip created (noticing the seed, the create),
    clip done → job finished (noticing the clip, the normalise and join), and the emulator's own
    lateness beyond the scripted latencies. Seconds of this run's clock."""
    preds = svc.replicate.predictions
    scenes = [s for s in times["scenes"] if s["seed"] in preds and s["clip"] in preds and preds[s["clip"]].completed]
    if not scenes or times.get("queued_epoch") is None:
        return {}
    last = max(scenes, key=lambda s: preds[s["clip"]].completed or 0.0)
    seed, clip = preds[last["seed"]], preds[last["clip"]]
    assert seed.completed is not None and clip.completed is not None
    return {
        "to_seed_create_s": seed.created - times["queued_epoch"],
        "seed_to_clip_create_s": clip.created - seed.completed,
        "clip_to_finish_s": times["finished_epoch"] - clip.completed,
        "emulator_late_s": svc.observed_wall(last["seed"])
        + svc.observed_wall(last["clip"])
        - svc.scripted_wall(last["seed"])
        - svc.scripted_wall(last["clip"]),
    }


def summarise(rows: list[dict[str, Any]], scale: TimeScale) -> dict[str, Any]:
    ratios = [r["ratio"] for r in rows]
    return {
        "jobs": len(rows),
        "completed": sum(r["status"] == "completed" for r in rows),
        "ratio_mean": mean(ratios) if ratios else 0.0,
        "ratio_p50": percentile(ratios, 50),
        "ratio_p95": percentile(ratios, 95),
        "ratio_max": max(ratios, default=0.0),
        "ratio_observed_mean": mean(r["ratio_observed"] for r in rows) if rows else 0.0,
        "wall_mean_real_s": scale.real(mean(r["wall_s"] for r in rows)) if rows else 0.0,
        "ideal_mean_real_s": scale.real(mean(r["ideal_s"] for r in rows)) if rows else 0.0,
        # Mean seconds lost per job, by where (`lost_time`; this run's clock, not real-equivalent).
        "lost_s": {
            key: round(mean(r[key] for r in rows if key in r), 3)
            for key in ("to_seed_create_s", "seed_to_clip_create_s", "clip_to_finish_s", "emulator_late_s")
            if any(key in r for r in rows)
        },
    }


async def measure(
    scale: TimeScale,
    jobs: int,
    design: str,
    *,
    first: int = 0,
    env_extra: dict[str, str] | None = None,
    model: str = "svd",
    spread_s: float = 0.0,
) -> dict[str, Any]:
    """One worker run of `jobs` concurrent jobs in `design` ("pipelined" or "barrier"), fresh emulators;
    the jobs get the scripts (stage seeds) of job numbers first, first+1, … and use the video model
    `model` (a registry key of scenario.MODEL_SCENES). `spread_s`: approvals spread over that many
    seconds of this run's clock (0: all at once)."""
    with tempfile.TemporaryDirectory(prefix="jant-bench-") as tmp:
        async with services(scale, music=env_extra != SILENT_ENV, model=model) as svc:
            started = time.monotonic()
            spec = {"jobs": jobs, "design": design, "first": first, "spread_s": spread_s}
            env = svc.env(Path(tmp) / "data", **(env_extra or {}))
            proc, paths = await run_worker("headless", spec, env, tmp=Path(tmp))
            result = await finish_worker(proc, paths["out"])
            rows = job_ratios(svc, result)
            summary = summarise(rows, scale)
            lags = result["lags"]
            summary.update(
                design=design, model=model, sound=sound_counts(svc),
                wall_run_s=time.monotonic() - started, replicate=svc.rates(),
                cpu_s_per_job=result["cpu_s"] / max(1, jobs), peak_rss_mb=result["peak_rss_mb"],
                loop_lag_p50_ms=percentile(lags, 50) * 1000, loop_lag_p99_ms=percentile(lags, 99) * 1000,
                statuses=sorted(set(result["statuses"])), errors=result.get("errors", []),
                joins_with_audio=result.get("joins_with_audio", 0), executor_threads=result.get("executor_threads"),
                executor_wait_p99_ms=percentile(result.get("executor_waits", []), 99) * 1000,
                executor_wait_max_ms=max(result.get("executor_waits", []), default=0.0) * 1000,
                executor_held_s={k: round(v, 2) for k, v in result.get("executor_held_s", {}).items()},
            )  # fmt: skip
            return summary


if __name__ == "__main__":
    args = [a for i, a in enumerate(sys.argv[1:]) if not a.startswith("--") and sys.argv[i] != "--model"]
    n = int(args[0]) if args else 1
    f = float(args[1]) if len(args) > 1 else 0.1
    design = args[2] if len(args) > 2 else "pipelined"
    extra = sound_from_argv(sys.argv[1:])
    model = model_from_argv(sys.argv[1:])
    print(json.dumps(asyncio.run(measure(TimeScale(f), n, design, env_extra=extra, model=model)), indent=2))

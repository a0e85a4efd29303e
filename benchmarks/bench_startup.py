"""Start-up: `jant bot` (the real command, a fresh process) until its commands are usable, and until
every job that was running when the bot last stopped is being worked on again.

The 50 running jobs are made the way a stop leaves them: approved through the orchestrator, seeds
done, every clip a prediction still processing on Replicate with its id in SQLite, then the
orchestrator shut down (predictions keep running). "Resumed" means every one of those 300 clip
predictions has been polled by the new process.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_critical_path import finish_worker, run_worker
from benchmarks.scenario import SILENT_ENV, SVD, TimeScale
from benchmarks.services import Services, services
from tests.emulators.discord_server import DiscordEmulator

JANT = Path(sys.executable).with_name("jant")


async def _running_jobs(svc: Services, data_dir: Path, jobs: int, tmp: Path) -> set[str]:
    """`jobs` jobs left running by a stopped bot; returns the ids of their clip predictions."""
    svc.replicate.script_by(lambda model, version, inp: "slow:100000" if model == SVD else "slow:0.05")
    # Setting the scene, not measured: 50 jobs × 6 scenes make 600 creates at once, which the
    # default pacer (570 a minute) would stretch over a second minute. Replicate allows 600.
    # Silent ads (voice and music would be on by default with a token): the figures stay those of
    # seeds and clips, comparable with earlier runs.
    env = svc.env(data_dir, JANT_REPLICATE_CREATES_PER_MIN="600", **SILENT_ENV)
    proc, paths = await run_worker("prime", {"jobs": jobs}, env, tmp=tmp)
    result = await finish_worker(proc, paths["out"], 180)
    return set(result["clips"])


async def _start_bot(svc: Services, emu: DiscordEmulator, data_dir: Path, waiting: set[str]) -> dict[str, float]:
    """Run `jant bot`; seconds until commands are ready, and until every id in `waiting` was polled."""
    emu.sync_count = 0
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        str(JANT), "bot", env=svc.env(data_dir, **emu.env(), **SILENT_ENV),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out: dict[str, float] = {}
    try:
        await emu.wait_for(lambda: emu.sync_count > 0 and emu.connected, timeout=60,
                           description="jant bot connected with its commands synced")  # fmt: skip
        out["commands_ready_s"] = time.monotonic() - started
        if waiting:
            async with asyncio.timeout(120):
                while True:
                    polled = {
                        r.path.rsplit("/", 1)[1] for r in svc.replicate.requests
                        if r.at >= started and r.method == "GET" and r.path.startswith("/v1/predictions/")
                    }  # fmt: skip
                    if waiting <= polled:
                        break
                    await asyncio.sleep(0.05)
            out["all_resumed_s"] = time.monotonic() - started
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    return out


async def run_startup(scale: TimeScale, jobs: int = 50) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="jant-bench-") as tmp:
        async with services(scale, music=False) as svc, DiscordEmulator() as emu:
            empty = await _start_bot(svc, emu, Path(tmp) / "empty", set())
            waiting = await _running_jobs(svc, Path(tmp) / "busy", jobs, Path(tmp))
            busy = await _start_bot(svc, emu, Path(tmp) / "busy", waiting)
            return {
                "commands_ready_empty_db_s": empty["commands_ready_s"],
                "commands_ready_s": busy["commands_ready_s"],
                "all_resumed_s": busy["all_resumed_s"],
                "jobs_in_db": jobs,
                "predictions_resumed": len(waiting),
            }


if __name__ == "__main__":
    import json

    print(json.dumps(asyncio.run(run_startup(TimeScale(1.0))), indent=2))

"""Fifty jobs over two worker processes on one database: do Replicate's and Discord's limits hold together?

    python -m benchmarks.bench_shared_limits [--postgres URL]     # ≈ 30-60 s on 2 cores

Two child processes (`--child`), each a `Runtime` with `JANT_SHARED_LIMITS=on` on one SQLite file (or the
Postgres database given), make the seed images and clips of 25 jobs each (the offline storyboard of PRODUCT:
seven scenes) — 700 creates in all — on the Replicate emulator with time ×0.1 (its minute is 6 s; it refuses
the 601st create in any minute, as Replicate does). Each keeps to 570 creates a minute on its own; alone
together they could send 1140. Meanwhile each child edits the status message of every one of the fifty jobs
(the worst case: a bot that runs jobs beside a `--no-worker` bot that follows them all) as fast as its
throttle lets it, through the shared edit gate, each message in a thread of its own; Discord's side is real
time (2 s per message). Printed: the emulator's count of creates in its busiest minute, its 429s, and the
most edits of one status message in any 2 s across both processes.

The figures of issue 15's acceptance ("creates stay < 600 per minute in total, edits per status message
≤ 0.5/s"): `make bench` section 5 runs it once (`run_shared_limits`), on Postgres when a server is
installed, as the section's other multi-worker runs, else on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from benchmarks.processes import postgres
from benchmarks.scenario import PRODUCT, TimeScale, stage_seeds
from benchmarks.services import services

JOBS, WORKERS = 50, 2
SCALE = TimeScale(0.1)
EDIT_INTERVAL_S = 2.0


async def child(index: int, out: Path) -> None:
    """One worker: its share of the jobs' seeds and clips, and edits of every job's status message."""
    from bot.edit_throttle import EditThrottle
    from bot.status_edit_gate import StatusEditGate, Where
    from pipeline.config import Settings
    from pipeline.models import AdRequest, StageName
    from pipeline.moods import mood_preset
    from pipeline.providers.base import ClipRequest, SeedRequest, StageContext
    from pipeline.providers.offline_planner import OfflineStoryboardPlanner
    from pipeline.runtime import Runtime

    settings = Settings()
    runtime = await Runtime.open(settings)
    assert runtime.shared is not None, "JANT_SHARED_LIMITS=on is not in effect"
    images, video = runtime.providers.images, runtime.providers.video
    storyboard = await OfflineStoryboardPlanner().plan(AdRequest(product=PRODUCT, mood="tech"))
    mood = mood_preset("tech")
    work = settings.storage.data_dir / f"media-{index}"
    work.mkdir(parents=True, exist_ok=True)
    edits: list[tuple[int, float, float]] = []

    def where(key: Hashable) -> Where:
        job = int(str(key))
        return Where(channel_id=10_000 + job, message_id=20_000 + job)  # a thread per job

    throttle: EditThrottle[int] = EditThrottle(
        EDIT_INTERVAL_S, gate=StatusEditGate(runtime.shared, settings.discord, where)
    )

    def edit(job: int):  # type: ignore[no-untyped-def]
        async def write(_state: int) -> None:
            start = time.time()
            await asyncio.sleep(0.02)  # Discord's answer
            edits.append((job, start, time.time()))

        return write

    async def progress(_percent: float, _note: str | None) -> None:
        return None

    async def scene(job: int, number: int) -> None:
        seed_seed, clip_seed = stage_seeds(job, number)
        sc = storyboard.scenes[number - 1]
        ctx = StageContext(job_id=str(job), scene_index=number, stage=StageName.SEED, attempt=1,
                           on_progress=progress, in_flight=lambda: JOBS * 6)  # fmt: skip
        seed = await images.generate(
            SeedRequest(storyboard=storyboard, scene=sc, mood=mood, product=PRODUCT, width=576, height=1024,
                        steps=20, dest=work / f"{job}-{number}.png", seed=seed_seed),
            ctx,
        )  # fmt: skip
        clip_ctx = StageContext(job_id=str(job), scene_index=number, stage=StageName.CLIP, attempt=1,
                                on_progress=progress, in_flight=lambda: JOBS * 6)  # fmt: skip
        await video.animate(
            ClipRequest(scene=sc, mood=mood, seed_image=seed.path, dest=work / f"{job}-{number}.mp4", seed=clip_seed),
            clip_ctx,
        )

    async def status_edits(stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            for job in range(JOBS):
                throttle.submit(str(job), n, edit(job))
            await asyncio.sleep(0.1)

    mine = [job for job in range(JOBS) if job % WORKERS == index]
    stop = asyncio.Event()
    editing = asyncio.create_task(status_edits(stop))
    started = time.time()
    try:
        await asyncio.gather(*(scene(job, n) for job in mine for n in range(1, len(storyboard.scenes) + 1)))
    finally:
        finished = time.time()
        stop.set()
        await editing
        await throttle.close(grace_s=5)
        await runtime.close()
    report = json.dumps({"edits": edits, "started": started, "finished": finished})
    await asyncio.to_thread(out.write_text, report)


def most_in_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    best, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - window_s:
            first += 1
        best = max(best, last - first + 1)
    return best


def sustained(starts: list[float]) -> float:
    starts = sorted(starts)
    return (len(starts) - 1) / (starts[-1] - starts[0]) if len(starts) > 1 and starts[-1] > starts[0] else 0.0


async def start_child(index: int, out: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.bench_shared_limits", "--child", str(index), str(out),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip


async def run(postgres: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="jant-shared-limits-") as tmp:
        data = Path(tmp) / "data"
        async with services(SCALE, music=False) as svc:
            extra = {"JANT_SHARED_LIMITS": "on", "JANT_VOICE": "none", "JANT_MUSIC": "none",
                     "JANT_STATUS_EDIT_INTERVAL_S": f"{EDIT_INTERVAL_S:g}",
                     # Polls at the real budget (40 a second for everybody), not ×10 like the creates:
                     # each is a write to the shared database, and the real budget is what it must carry.
                     "JANT_REPLICATE_POLL_BUDGET_PER_MIN": "2400",
                     "JANT_SEED_DEADLINE_S": "120", "JANT_CLIP_DEADLINE_S": "300"}  # fmt: skip
            if postgres:
                extra["JANT_DATABASE_URL"] = postgres
            env = svc.env(data, **extra)
            procs = [await start_child(i, Path(tmp) / f"{i}.json", env) for i in range(WORKERS)]
            outputs = await asyncio.gather(*(p.communicate() for p in procs))
            for p, (text, _) in zip(procs, outputs, strict=True):
                if p.returncode != 0:
                    raise RuntimeError(f"a worker failed ({p.returncode}):\n{text.decode(errors='replace')[-4000:]}")
            rep = svc.replicate
            results = [json.loads(await asyncio.to_thread((Path(tmp) / f"{i}.json").read_text)) for i in range(WORKERS)]
            per_message: dict[int, list[float]] = defaultdict(list)
            for r in results:
                for job, start, _end in r["edits"]:
                    per_message[job].append(start)
            wall = max(r["finished"] for r in results) - min(r["started"] for r in results)
            edits = sum(len(v) for v in per_message.values())
            return {
                "database": "postgres" if postgres else "sqlite",
                "creates": rep.counts.total_creates,
                "creates_peak_per_minute": rep.creates_per_minute(window=SCALE.minute),
                "others_peak_per_minute": rep.others_per_minute(window=SCALE.minute),
                "throttled_429": rep.counts.throttled,
                "wall_s": round(wall, 1),
                "edits": edits,
                "edits_peak_per_message_in_2s": max(most_in_window(v, EDIT_INTERVAL_S) for v in per_message.values()),
                "edits_by_worker": [len(r["edits"]) for r in results],
                # Sustained: (edits - 1) over the time from the message's first edit to its last.
                "edits_per_message_per_s": round(max(sustained(v) for v in per_message.values()), 3),
            }


async def run_shared_limits(*, on_postgres: bool) -> dict[str, Any]:
    """`make bench`'s run: one throwaway Postgres server's database when `on_postgres`, else a SQLite file."""
    if on_postgres:
        async with postgres() as server:
            return await run(await server.create_database())
    return await run(None)


def summary(figures: dict[str, Any]) -> str:
    return (
        f"{JOBS} jobs over {WORKERS} workers ({figures['database']}, {figures['wall_s']} s): "
        f"{figures['creates']} creates, at most {figures['creates_peak_per_minute']} in any minute "
        f"({SCALE.minute:g} s at time x{SCALE.factor:g}; budget 570, Replicate 600), {figures['throttled_429']} "
        f"refused; status edits: at most {figures['edits_peak_per_message_in_2s']} per message in any "
        f"{EDIT_INTERVAL_S:g} s, {figures['edits_per_message_per_s']}/s sustained for the busiest (limit 0.5/s)."
    )


def print_shared_limits(figures: dict[str, Any]) -> None:
    print("\nShared limits: Replicate's and Discord's, held across worker processes on one database")
    print(f"  {summary(figures)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="a postgresql:// URL of an empty database (default: a SQLite file)")
    parser.add_argument("--child", nargs=2, metavar=("INDEX", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(int(args.child[0]), Path(args.child[1])))
        return
    figures = asyncio.run(run(args.postgres))
    print(json.dumps(figures, indent=2))
    print(summary(figures))


if __name__ == "__main__":
    main()

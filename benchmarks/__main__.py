"""`make bench`: every figure of issue 6 in one run, printed as a table and written to last-run.json.

    python -m benchmarks            # ≈ 4 minutes on 2 cores

1. Critical-path ratio: one job, pipelined and seed-then-clip barrier (time ×0.1); fifty jobs,
   both designs, through the bot (section 2's runs).
2. Fifty concurrent ads in one bot process against the Discord, OpenAI and Replicate emulators
   (time ×0.25: at ×0.1 two cores cannot do fifty jobs' CPU work in a tenth of the time, and the
   ratio would measure that instead of the design).
   The same fifty with voice and music on (`JANT_VOICE`/`JANT_MUSIC=replicate`): one more create per
   scene and one per job, through the same create pacer. The same fifty, silent, with the
   `wan-2.2-i2v-fast` registry entry instead of SVD (`JANT_VIDEO_MODEL`): six 5 s scenes of 81-frame
   720x1280 clips at 16 fps, the emulator's, played at their own speed.
3. Composer (real ffmpeg, real time), with the soundtrack's mix, the captions' share of normalising,
   and the compose tail of an ad with voice, music and karaoke captions at 1080x1920; the 4:5, 1:1
   and 16:9 versions after the master, against the master's own compose.
4. Start-up of `jant bot` (real time: nothing to compress).
5. Jobs on DBOS workers (JANT_ENGINE=dbos, issue 15; skipped with `--no-durable`, BENCH_NO_DURABLE=1, or
   when the durable extra is not installed): the fifty jobs' critical-path ratio through a `--no-worker`
   front end and one worker on SQLite, then two on Postgres (when a PostgreSQL server and asyncpg are
   installed), beside the local engine's; six ads with real ffmpeg on one worker against two; recovery
   after kill -9 of a worker, by a restart with its id and by a live worker's takeover; fifty jobs' seeds
   and clips and status edits over two worker processes with JANT_SHARED_LIMITS=on (time ×0.1), against
   Replicate's 600 creates a minute in total and Discord's 0.5 edits a second per status message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from statistics import mean
from typing import Any

from benchmarks.bench_compose_tail import print_compose_tail, run_compose_tail_bench
from benchmarks.bench_composer import print_composer, run_composer_bench
from benchmarks.bench_critical_path import measure
from benchmarks.bench_fleet import run_fleet
from benchmarks.bench_formats import print_formats, run_formats_bench
from benchmarks.bench_recovery import print_recovery, run_recovery
from benchmarks.bench_shared_limits import SCALE as SHARED_SCALE
from benchmarks.bench_shared_limits import print_shared_limits, run_shared_limits
from benchmarks.bench_startup import run_startup
from benchmarks.bench_workers import compose_batch, critical_path_on_workers, print_workers
from benchmarks.probes import host_check_ms, steal_seconds
from benchmarks.processes import postgres_available
from benchmarks.scenario import SILENT_ENV, SOUND_ENV, TimeScale, barrier_penalty, typical_job

OUT = Path(__file__).with_name("last-run.json")
SINGLE, FLEET, REAL = TimeScale(0.1), TimeScale(0.25), TimeScale(1.0)
WAN_KEY = "wan-2.2-i2v-fast"  # the registry entry of section 2's fourth run


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, check=False).stdout.strip()  # fmt: skip
    except OSError:
        commit = ""
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "platform": platform.platform(), "commit": commit}  # fmt: skip


def _stage(name: str) -> float:
    print(f"· {name} …", file=sys.stderr, flush=True)
    return time.monotonic()


def durable_installed() -> bool:
    try:
        import dbos  # noqa: F401
    except ImportError:
        return False
    return True


async def run(many: int = 50, *, durable: bool = True) -> dict[str, Any]:
    started = time.monotonic()
    sections: dict[str, Any] = {}
    timings: dict[str, float] = {}
    host = {"start_ms": host_check_ms()}
    steal_at_start = steal_seconds()

    t = _stage("1 job, pipelined and barrier (time ×0.1)")
    job = typical_job()
    # Sections 1 and 2 stay silent (`auto` would turn voice and music on): comparable with earlier runs.
    sections["single"] = {
        d: await measure(SINGLE, 1, d, first=job, env_extra=SILENT_ENV) for d in ("pipelined", "barrier")
    }
    sections["single"]["job_number"] = job
    timings["single_s"] = time.monotonic() - t

    # The silent runs stay comparable with earlier ones; the run with sound is compared with the silent
    # one of the same `make bench` (the host changes between runs, rarely within one).
    fleet_runs = (
        ("fleet", "pipelined", SILENT_ENV, "svd", f"{many} silent ads through the bot, pipelined"),
        ("fleet_barrier", "barrier", SILENT_ENV, "svd", f"{many} silent ads through the bot, barrier baseline"),
        ("fleet_sound", "pipelined", SOUND_ENV, "svd", f"{many} ads with voice and music through the bot, pipelined"),
        ("fleet_wan", "pipelined", SILENT_ENV, WAN_KEY, f"{many} silent ads made with {WAN_KEY}, pipelined"),
    )
    for key, design, env, model, title in fleet_runs:
        t = _stage(f"{title} (time ×{FLEET.factor:g})")
        host[f"before_{key}_ms"] = host_check_ms()
        sections[key] = await run_fleet(FLEET, many, design=design, env_extra=env, model=model)
        timings[f"{key}_s"] = time.monotonic() - t
    host["after_fleets_ms"] = host_check_ms()

    t = _stage("composer (ffmpeg)")
    sections["composer"] = await run_composer_bench()
    timings["composer_s"] = time.monotonic() - t
    t = _stage("compose tail with voice, music and karaoke captions, 1080x1920 (ffmpeg)")
    sections["compose_tail"] = await run_compose_tail_bench()
    timings["compose_tail_s"] = time.monotonic() - t
    t = _stage("4:5, 1:1 and 16:9 after the 9:16 master, 1080x1920 (ffmpeg)")
    sections["formats"] = await run_formats_bench("prod")
    timings["formats_s"] = time.monotonic() - t

    t = _stage(f"start-up of `jant bot`, then with {many} running jobs in the database")
    sections["startup"] = await run_startup(REAL, many)
    timings["startup_s"] = time.monotonic() - t

    if durable:
        on_postgres = postgres_available()  # else the two-worker run and recovery are SQLite's only
        t = _stage(f"{many} jobs on DBOS workers (time ×{FLEET.factor:g}), beside the local engine")
        host["before_workers_ms"] = host_check_ms()
        sections["workers"] = await critical_path_on_workers(many, FLEET, with_postgres=on_postgres)
        timings["workers_s"] = time.monotonic() - t
        t = _stage("6 ads with ffmpeg on one DBOS worker, then two")
        sections["compose_batch"] = await compose_batch()
        timings["compose_batch_s"] = time.monotonic() - t
        t = _stage("kill -9 of a DBOS worker mid-clip: restart, then takeover")
        sections["recovery"] = await run_recovery(on_postgres=on_postgres)
        timings["recovery_s"] = time.monotonic() - t
        t = _stage(f"50 jobs over two workers with shared limits (time ×{SHARED_SCALE.factor:g})")
        sections["shared_limits"] = await run_shared_limits(on_postgres=on_postgres)
        timings["shared_limits_s"] = time.monotonic() - t
    timings["total_s"] = time.monotonic() - started
    host["end_ms"] = host_check_ms()
    steal_at_end = steal_seconds()
    if steal_at_start is not None and steal_at_end is not None:
        host["steal_s"] = round(steal_at_end - steal_at_start, 2)
    sections["host"] = host

    fleet, barrier, sound = sections["fleet"], sections["fleet_barrier"], sections["fleet_sound"]
    wan = sections["fleet_wan"]
    compose, mix, tail = sections["composer"]["compose"], sections["composer"]["audio_mix"], sections["compose_tail"]
    figures = {
        "critical_path_ratio_1_job": sections["single"]["pipelined"]["ratio_mean"],
        "critical_path_ratio_1_job_barrier": sections["single"]["barrier"]["ratio_mean"],
        "critical_path_ratio_50_jobs": fleet["critical_path"]["ratio_mean"],
        "critical_path_ratio_50_jobs_p95": fleet["critical_path"]["ratio_p95"],
        "critical_path_ratio_50_jobs_max": fleet["critical_path"]["ratio_max"],
        "barrier_over_pipelined_50_jobs": barrier["critical_path"]["ratio_mean"] / fleet["critical_path"]["ratio_mean"],
        "barrier_ratio_50_jobs": barrier["critical_path"]["ratio_mean"],
        # What the scripts alone make the barrier cost (slowest seed + slowest clip vs slowest pair):
        "barrier_penalty_scripted_1_job": barrier_penalty(job),
        "barrier_penalty_scripted_50_jobs": mean(barrier_penalty(n) for n in range(many)),
        "loop_lag_p50_ms": fleet["loop_lag_p50_ms"],
        "loop_lag_p99_ms": fleet["loop_lag_p99_ms"],
        "peak_rss_mb": fleet["peak_rss_mb"],
        "cpu_s_per_job": fleet["cpu_s_per_job"],
        "edits_per_status_per_s": fleet["discord"]["peak_edits_per_s"],
        "discord_429s": fleet["discord"]["http_429s"],
        "replicate_creates_per_min": fleet["replicate"]["creates_per_min"],
        "replicate_other_per_min": fleet["replicate"]["others_per_min"],
        "replicate_throttled": fleet["replicate"]["throttled"],
        "predictions_in_flight_peak": fleet["replicate"]["peak_in_flight"],
        "compose_after_last_clip_s": compose["prod"]["after_last_clip_s"],
        "compose_after_last_clip_s_dev": compose["dev"]["after_last_clip_s"],
        "final_bytes": compose["prod"]["bytes"],
        "final_bytes_dev": compose["dev"]["bytes"],
        "upload_limit_bytes": compose["prod"]["limit_bytes"],
        "join_reencodes": compose["prod"]["join_encodes"],
        "last_clip_urgent_s": compose["prod"].get("urgent_normalise_s"),
        "last_clip_full_analysis_s": compose["prod"].get("normal_normalise_s"),
        "last_clip_urgent_ssim": compose["prod"].get("urgent_ssim"),
        "last_clip_full_analysis_ssim": compose["prod"].get("normal_ssim"),
        # Voice and music on (issue 12): the same fifty ads, the same targets.
        "critical_path_ratio_50_jobs_sound": sound["critical_path"]["ratio_mean"],
        "critical_path_ratio_50_jobs_sound_p95": sound["critical_path"]["ratio_p95"],
        "sound_over_silent_50_jobs": sound["critical_path"]["ratio_mean"] / fleet["critical_path"]["ratio_mean"],
        "loop_lag_p99_ms_sound": sound["loop_lag_p99_ms"],
        # The same fifty made with Wan 2.2 i2v fast (issue 14): the same target as SVD's.
        "critical_path_ratio_50_jobs_wan": wan["critical_path"]["ratio_mean"],
        "critical_path_ratio_50_jobs_wan_p95": wan["critical_path"]["ratio_p95"],
        "ads_delivered_wan": wan["delivered"],
        "cpu_s_per_job_wan": wan["cpu_s_per_job"],
        "ads_delivered_sound": sound["delivered"],
        "replicate_creates_per_min_sound": sound["replicate"]["creates_per_min"],
        "replicate_throttled_sound": sound["replicate"]["throttled"],
        "voice_creates_sound": sound["sound"]["voice_creates"],
        "music_creates_sound": sound["sound"]["music_creates"],
        "audio_mix_s": mix["mix_seconds"],
        "audio_mix_lufs": mix["lufs"],
        "audio_mix_true_peak_dbtp": mix["true_peak_dbtp"],
        "compose_tail_sound_s": tail["after_last_clip_s"],
        "compose_tail_sound_bytes": tail["bytes"],
        "compose_tail_sound_join_encodes": tail["join_encodes"],
        # Headline + karaoke captions over no text, normalising the last clip (target ≤ +10 %).
        # In ffmpeg CPU seconds (what a busy neighbour cannot blur; the wall-time share beside it).
        "captions_normalise_cpu_share": sections["composer"]["captions"]["prod"]["karaoke_cpu_share"],
        "captions_normalise_cpu_share_dev": sections["composer"]["captions"]["dev"]["karaoke_cpu_share"],
        "captions_normalise_share": sections["composer"]["captions"]["prod"]["karaoke_share"],
        "captions_normalise_share_dev": sections["composer"]["captions"]["dev"]["karaoke_share"],
        # The compose tail with sound over the same ad silent, each run right after the other.
        "compose_tail_sound_over_silent_cpu": tail["ffmpeg_cpu_s"] / tail["silent_ffmpeg_cpu_s"],
        # The three extra formats after the master, over the master's compose (ffmpeg CPU; target ≤ 1.5):
        # what is left once the scenes that landed early were cut for them; and all three from scratch.
        "formats_after_master_ratio": sections["formats"]["cpu_ratio"],
        "formats_after_master_wall_ratio": sections["formats"]["ratio"],
        "formats_early_cuts_wall_s": sections["formats"]["early_s"],
        "formats_from_scratch_ratio": sections["formats"]["scratch_cpu_ratio"],
        "startup_commands_ready_s": sections["startup"]["commands_ready_s"],
        "startup_all_jobs_resumed_s": sections["startup"]["all_resumed_s"],
        # The same CPU work timed around the run: equal figures in two runs mean an equally fast host.
        "host_check_ms": host["start_ms"],
        "host_check_ms_slowest": max(v for k, v in host.items() if k.endswith("_ms")),
    }
    for n in sections["composer"]["normalize"]:
        figures[f"normalize_rtf_{n['size']}_{n['mode']}"] = n["rtf"]
    if "workers" in sections:  # section 5 (issue 15)
        workers, batch, recovery = sections["workers"], sections["compose_batch"], sections["recovery"]
        figures["critical_path_ratio_50_jobs_local_same_run"] = workers["local"]["ratio_mean"]
        for key in ("dbos_sqlite_1w", "dbos_postgres_2w"):
            if key in workers:
                figures[f"critical_path_ratio_50_jobs_{key}"] = workers[key]["ratio_mean"]
                figures[f"critical_path_ratio_50_jobs_{key}_p95"] = workers[key]["ratio_p95"]
        figures["compose_batch_one_over_two_workers"] = batch["one_over_two"]
        figures["recovery_restart_first_step_s"] = recovery["restart"]["first_step_again_s"]
        figures["recovery_takeover_first_step_s"] = recovery["takeover"]["first_step_again_s"]
        figures["recovery_takeover_s_setting"] = recovery["takeover"]["takeover_s"]
        figures["recovery_creates_after_kill"] = sum(recovery[k]["creates_after_kill"] for k in ("restart", "takeover"))
        shared = sections["shared_limits"]
        figures["shared_limits_database"] = shared["database"]
        figures["shared_limits_creates_per_min"] = shared["creates_peak_per_minute"]
        figures["shared_limits_throttled"] = shared["throttled_429"]
        figures["shared_limits_edits_per_status_in_2s"] = shared["edits_peak_per_message_in_2s"]
        figures["shared_limits_edits_per_status_per_s"] = shared["edits_per_message_per_s"]
    if "fallback" in sections["composer"]:
        figures["fallback_fit_bytes"] = sections["composer"]["fallback"]["fit_bytes"]
        figures["fallback_fit_encodes"] = sections["composer"]["fallback"]["fit_encodes"]
    return {
        "figures": {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()},
        "jobs": many,
        "time_factors": {"single": SINGLE.factor, "fleet": FLEET.factor, "startup": REAL.factor},
        "machine": machine(),
        "timings": timings,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sections": sections,
    }


def _row(name: str, value: str, target: str, ok: bool | None) -> str:
    mark = "" if ok is None else ("ok" if ok else "MISS")
    return f"  {name:<50} {value:>15}   {target:<10} {mark}"


def print_table(r: dict[str, Any]) -> None:
    f, m = r["figures"], r["machine"]
    n = r["jobs"]
    print(f"\nJant benchmarks — {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, {time.strftime('%Y-%m-%d')}")
    print(f"  time factors: 1 job ×{r['time_factors']['single']:g}, {n} jobs ×{r['time_factors']['fleet']:g} "
          "(request rates in real-equivalent minutes); composer and start-up in real time\n")  # fmt: skip
    print(_row("figure", "value", "target", None))
    rows = [
        (
            "1. critical path, 1 job (wall / ideal)",
            f"{f['critical_path_ratio_1_job']:.3f}",
            "≤ 1.05",
            f["critical_path_ratio_1_job"] <= 1.05,
        ),
        ("   same job, seed-then-clip barrier", f"{f['critical_path_ratio_1_job_barrier']:.3f}", "baseline", None),
        (
            f"   {n} concurrent jobs, mean (p95 {f['critical_path_ratio_50_jobs_p95']:.3f})",
            f"{f['critical_path_ratio_50_jobs']:.3f}",
            "≤ 1.10",
            f["critical_path_ratio_50_jobs"] <= 1.10,
        ),
        (f"   {n} jobs, barrier design, mean", f"{f['barrier_ratio_50_jobs']:.3f}", "baseline", None),
        (
            f"   barrier / pipelined (scripts alone: {f['barrier_penalty_scripted_50_jobs']:.3f})",
            f"{f['barrier_over_pipelined_50_jobs']:.3f}",
            "> 1",
            None,
        ),
        (f"2. {n} ads in one process: peak RSS (MB)", f"{f['peak_rss_mb']:.0f}", "", None),
        ("   CPU seconds per job", f"{f['cpu_s_per_job']:.2f}", "", None),
        (
            "   event-loop lag p50 / p99 (ms)",
            f"{f['loop_lag_p50_ms']:.1f} / {f['loop_lag_p99_ms']:.1f}",
            "p99 < 50",
            f["loop_lag_p99_ms"] < 50,
        ),
        (
            "   Replicate creates per minute (peak)",
            f"{f['replicate_creates_per_min']}",
            "< 600",
            f["replicate_creates_per_min"] < 600,
        ),
        (
            "   Replicate other requests per minute (peak)",
            f"{f['replicate_other_per_min']}",
            "< 3000",
            f["replicate_other_per_min"] < 3000,
        ),
        ("   Replicate 429s", f"{f['replicate_throttled']}", "0", f["replicate_throttled"] == 0),
        ("   predictions in flight (peak)", f"{f['predictions_in_flight_peak']}", "", None),
        (
            "   Discord edits per status message per s",
            f"{f['edits_per_status_per_s']:.3f}",
            "≤ 0.5",
            f["edits_per_status_per_s"] <= 0.5 + 1e-3,
        ),
        ("   Discord 429s", f"{f['discord_429s']}", "0", f["discord_429s"] == 0),
        (
            f"   voice+music: {n} jobs, mean (p95 {f['critical_path_ratio_50_jobs_sound_p95']:.3f})",
            f"{f['critical_path_ratio_50_jobs_sound']:.3f}",
            "≤ 1.10",
            f["critical_path_ratio_50_jobs_sound"] <= 1.10,
        ),
        ("   voice+music over silent, same run", f"{f['sound_over_silent_50_jobs']:.3f}", "", None),
        (
            f"   Wan: {n} jobs, mean (p95 {f['critical_path_ratio_50_jobs_wan_p95']:.3f}, "
            f"SVD {f['critical_path_ratio_50_jobs']:.3f})",
            f"{f['critical_path_ratio_50_jobs_wan']:.3f}",
            "≤ 1.10",
            f["critical_path_ratio_50_jobs_wan"] <= 1.10,
        ),
        (
            f"   Wan: ads posted / CPU s per job (SVD {f['cpu_s_per_job']:.2f})",
            f"{f['ads_delivered_wan']} / {f['cpu_s_per_job_wan']:.2f}",
            f"{n} /",
            f["ads_delivered_wan"] == n,
        ),
        (
            "   voice+music: loop lag p99 (ms) / ads posted",
            f"{f['loop_lag_p99_ms_sound']:.1f} / {f['ads_delivered_sound']}",
            f"< 50 / {n}",
            f["loop_lag_p99_ms_sound"] < 50 and f["ads_delivered_sound"] == n,
        ),
        (
            f"   voice+music: creates/min ({f['voice_creates_sound']} lines, {f['music_creates_sound']} beds)",
            f"{f['replicate_creates_per_min_sound']}",
            "< 600",
            f["replicate_creates_per_min_sound"] < 600 and f["replicate_throttled_sound"] == 0,
        ),
        (
            "3. last clip → final, prod 1080x1920 (s)",
            f"{f['compose_after_last_clip_s']:.2f}",
            "≤ 3",
            f["compose_after_last_clip_s"] <= 3,
        ),
        (
            "   last clip → final, dev 720x1280 (s)",
            f"{f['compose_after_last_clip_s_dev']:.2f}",
            "≤ 3",
            f["compose_after_last_clip_s_dev"] <= 3,
        ),
        (
            "   final size, prod (MiB of 10)",
            f"{f['final_bytes'] / 2**20:.2f}",
            "< 10",
            f["final_bytes"] < f["upload_limit_bytes"],
        ),
        ("   re-encodes at the join (common case)", f"{f['join_reencodes']}", "0", f["join_reencodes"] == 0),
        (
            "   soundtrack mix, 30 s, 6 lines + bed (s)",
            f"{f['audio_mix_s']:.2f}",
            "",
            None,
        ),
        (
            "   soundtrack loudness (LUFS / dBTP)",
            f"{f['audio_mix_lufs']:.1f} / {f['audio_mix_true_peak_dbtp']:.1f}",
            "-14±1 / ≤-1",
            abs(f["audio_mix_lufs"] + 14) <= 1 and f["audio_mix_true_peak_dbtp"] <= -1,
        ),
        (
            "   last clip → final with voice, music, karaoke",
            f"{f['compose_tail_sound_s']:.2f}",
            "≤ 3",
            f["compose_tail_sound_s"] <= 3,
        ),
        (
            "   that tail's ffmpeg CPU over the same ad silent",
            f"{f['compose_tail_sound_over_silent_cpu']:.3f}",
            "",
            None,
        ),
        (
            "   that ad: MiB of 10 / re-encodes at join",
            f"{f['compose_tail_sound_bytes'] / 2**20:.2f} / {f['compose_tail_sound_join_encodes']}",
            "< 10 / 0",
            f["compose_tail_sound_bytes"] < f["upload_limit_bytes"] and f["compose_tail_sound_join_encodes"] == 0,
        ),
        (
            "   last clip urgent / full analysis (s)",
            f"{f['last_clip_urgent_s']:.2f} / {f['last_clip_full_analysis_s']:.2f}",
            "",
            None,
        ),
        (
            "   last clip urgent / full analysis (SSIM)",
            f"{f['last_clip_urgent_ssim']:.4f} / {f['last_clip_full_analysis_ssim']:.4f}",
            "",
            None,
        ),
    ]
    for suffix, size in (("", "prod"), ("_dev", "dev")):  # the captions' share (bench_composer, when present)
        if f"captions_normalise_cpu_share{suffix}" in f:
            share, wall = f[f"captions_normalise_cpu_share{suffix}"], f[f"captions_normalise_share{suffix}"]
            rows.append((f"   captions' share of normalising, {size}, CPU (wall)", f"{share:+.1%} ({wall:+.1%})",
                         "≤ +10 %", share <= 0.10))  # fmt: skip
    if "fallback_fit_bytes" in f:
        rows.append(("   uncapped clips: fit (MiB) / encodes",
                     f"{f['fallback_fit_bytes'] / 2**20:.2f} / {f['fallback_fit_encodes']}", "< 10 / 1",
                     f["fallback_fit_bytes"] < f["upload_limit_bytes"] and f["fallback_fit_encodes"] <= 1))  # fmt: skip
    for key, value in f.items():
        if key.startswith("normalize_rtf_"):
            rows.append((f"   normalise RTF {key.removeprefix('normalize_rtf_')}", f"{value:.2f}", "", None))
    if "formats_after_master_ratio" in f:
        rows.append(
            (
                "   4:5 + 1:1 + 16:9 after the master / its compose (CPU)",
                f"{f['formats_after_master_ratio']:.2f}",
                "≤ 1.5",
                f["formats_after_master_ratio"] <= 1.5,
            )
        )
        rows.append(
            (
                "     their early cuts, while the last clip is made (s)",
                f"{f['formats_early_cuts_wall_s']:.1f}",
                "",
                None,
            )
        )
        rows.append(("     all three from scratch, Formats button (CPU ratio)",
                     f"{f['formats_from_scratch_ratio']:.2f}", "", None))  # fmt: skip
    rows += [
        ("4. `jant bot` → commands ready (s)", f"{f['startup_commands_ready_s']:.2f}", "", None),
        (f"   `jant bot` → all {n} running jobs polled (s)", f"{f['startup_all_jobs_resumed_s']:.2f}", "", None),
    ]
    if "critical_path_ratio_50_jobs_dbos_sqlite_1w" in f:
        local = f["critical_path_ratio_50_jobs_local_same_run"]
        for num, key, title in (("5.", "dbos_sqlite_1w", "1 worker, SQLite"),
                                ("  ", "dbos_postgres_2w", "2 workers, Postgres")):  # fmt: skip
            if f"critical_path_ratio_50_jobs_{key}" in f:
                ratio = f[f"critical_path_ratio_50_jobs_{key}"]
                rows.append(
                    (f"{num} DBOS, {n} jobs, {title} (local {local:.3f})", f"{ratio:.3f}", "≤ 1.10", ratio <= 1.10)
                )
        rows += [
            ("   6 ads with ffmpeg: 1 worker / 2 workers (time)", f"{f['compose_batch_one_over_two_workers']:.2f}",
             "(2 cores)", None),
            ("   kill -9 → steps again, restart with its id (s)", f"{f['recovery_restart_first_step_s']:.2f}", "",
             None),
            (f"   kill -9 → steps again, takeover at {f['recovery_takeover_s_setting']:g} s (s)",
             f"{f['recovery_takeover_first_step_s']:.2f}", "≈ N + beat", None),
            ("   creates after the kills (paid twice)", f"{f['recovery_creates_after_kill']}", "0",
             f["recovery_creates_after_kill"] == 0),
            (f"   2 workers, shared limits, {f['shared_limits_database']}: creates/min, 429s",
             f"{f['shared_limits_creates_per_min']} / {f['shared_limits_throttled']}", "< 600 / 0",
             f["shared_limits_creates_per_min"] < 600 and f["shared_limits_throttled"] == 0),
            ("   2 workers: edits per status msg per s (most in 2 s)",
             f"{f['shared_limits_edits_per_status_per_s']:.3f} ({f['shared_limits_edits_per_status_in_2s']})",
             "≤ 0.5", f["shared_limits_edits_per_status_per_s"] <= 0.5 + 1e-3),
        ]  # fmt: skip
    for row in rows:
        print(_row(*row))
    h = r["sections"].get("host", {})
    if h:
        checks = ", ".join(f"{k.removesuffix('_ms').replace('_', ' ')} {v:g}"
                           for k, v in h.items() if k.endswith("_ms"))  # fmt: skip
        steal = f"; CPU stolen by the hypervisor {h['steal_s']:g} s" if "steal_s" in h else ""
        print(f"\n  host check (the same CPU work, ms; compare runs only when these agree): {checks}{steal}")
    print(
        f"\n  make bench took {r['timings']['total_s']:.0f} s; figures in {OUT.relative_to(Path.cwd())}"
        if OUT.is_relative_to(Path.cwd())
        else f"\n  make bench took {r['timings']['total_s']:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50, help="concurrent ads in sections 1, 2, 4 and 5 (default 50)")
    parser.add_argument("--no-durable", action="store_true", help="skip section 5 (jobs on DBOS workers)")
    args = parser.parse_args()
    durable = not args.no_durable and os.environ.get("BENCH_NO_DURABLE", "") in ("", "0") and durable_installed()
    if not durable and not args.no_durable:
        print("· section 5 skipped: the durable extra (dbos) is not installed, or BENCH_NO_DURABLE is set",
              file=sys.stderr)  # fmt: skip
    result = asyncio.run(run(args.jobs, durable=durable))
    if args.jobs == 50:  # last-run.json keeps the comparable run only
        OUT.write_text(json.dumps(result, indent=2) + "\n")
    print_composer(result["sections"]["composer"])
    print_compose_tail(result["sections"]["compose_tail"])
    print_formats(result["sections"]["formats"])
    if "workers" in result["sections"]:
        print_workers(result["sections"]["workers"], result["sections"]["compose_batch"])
        print_recovery(result["sections"]["recovery"])
        print_shared_limits(result["sections"]["shared_limits"])
    print_table(result)


if __name__ == "__main__":
    main()

"""Fifty concurrent ads in one bot process, the way a team makes them: through Discord.

Fifty teammates run /makead within a minute (real-equivalent) and approve their storyboards; the
bot (a child process, real discord.py against the Discord emulator, real providers against the
Replicate and OpenAI emulators) makes the ads and posts them. Measured in the bot's process:
peak RSS, CPU seconds per job, event-loop lag; at the emulators: Replicate requests per
real-equivalent minute, status-message edit rates and 429s under a realistic per-channel edit limit.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
import tempfile
import time
from pathlib import Path
from statistics import mean
from typing import Any

from benchmarks.bench_critical_path import finish_worker, job_ratios, run_worker, summarise
from benchmarks.probes import percentile
from benchmarks.scenario import PRODUCT, SILENT_ENV, TimeScale, model_from_argv, sound_from_argv
from benchmarks.services import services, sound_counts
from tests.emulators.discord_server import DiscordEmulator, StoredMessage

JOB_BUTTON = re.compile(r"^jant:approve:([0-9a-f]{8})$")
# Discord publishes no per-route numbers; 5 per 5 s per channel is what message routes report in
# X-RateLimit headers in practice, so the emulator enforces that on posts and edits alike.
CHANNEL_LIMIT, CHANNEL_PER_S = 5, 5.0


def _job_id(board: StoredMessage) -> str:
    for custom_id in board.custom_ids:
        if m := JOB_BUTTON.match(custom_id):
            return m.group(1)
    raise RuntimeError(f"the storyboard message carries no Approve button: {board.custom_ids}")


async def _teammate(emu: DiscordEmulator, user_id: int, n: int, delay: float, approved: list[float]) -> None:
    assert emu.guild is not None and emu.channel is not None
    await asyncio.sleep(delay)
    rec = await emu.slash_command(emu.guild.id, emu.channel.id, user_id, "makead",
                                  {"product": f"{PRODUCT} (take {n})", "mood": "tech"})  # fmt: skip
    await rec.wait_response(timeout=30)
    [board] = await rec.wait_followups(1, timeout=60)
    click = await emu.click_button(board.id, f"jant:approve:{_job_id(board)}", user_id)
    await click.wait_response(timeout=30)
    approved.append(time.monotonic())


def status_edit_rates(emu: DiscordEmulator) -> dict[str, Any]:
    """Per status message: the shortest gap between two of its versions, and edits per second."""
    peaks, means, counts = [], [], []
    for msg in emu.all_messages:
        if msg.author_id != emu.bot_user.id or msg.deleted or not msg.versions:
            continue
        first = msg.versions[0]
        if first.source != "create" or not any(e.get("title", "").startswith("Ad job ") for e in first.embeds):
            continue
        times = [v.at for v in msg.versions]
        counts.append(len(times) - 1)
        if len(times) < 2:
            continue
        gaps = [b - a for a, b in itertools.pairwise(times)]
        peaks.append(1.0 / max(min(gaps), 1e-6))
        means.append((len(times) - 1) / (times[-1] - times[0]))
    return {
        "status_messages": len(counts),
        "edits_per_message_mean": mean(counts) if counts else 0.0,
        "peak_edits_per_s": max(peaks, default=0.0),  # 1 / shortest gap between two versions
        "mean_edits_per_s": mean(means) if means else 0.0,
    }


async def run_fleet(
    scale: TimeScale,
    jobs: int = 50,
    *,
    design: str = "pipelined",
    spread_real_s: float = 60.0,
    env_extra: dict[str, str] | None = None,
    model: str = "svd",
) -> dict[str, Any]:
    """`env_extra`: settings for the bot, e.g. `scenario.SOUND_ENV` for ads with voice and music.
    `model`: the video model's registry key every job uses (scenario.MODEL_SCENES)."""
    with tempfile.TemporaryDirectory(prefix="jant-bench-") as tmp:
        async with services(scale, music=env_extra != SILENT_ENV, model=model) as svc, DiscordEmulator() as emu:
            assert emu.guild is not None
            team = [emu.add_user(f"teammate{i}").id for i in range(jobs)]
            for user_id in team:
                emu.add_member(emu.guild.id, user_id)
            for method, route in (("PATCH", r"^/channels/\d+/messages/\d+$"), ("POST", r"^/channels/\d+/messages$")):
                emu.set_rate_limit(method, route, CHANNEL_LIMIT, CHANNEL_PER_S)
            env = svc.env(
                Path(tmp) / "data", **emu.env(),
                JANT_GUILD_CONCURRENT_JOBS=str(jobs),  # one team of fifty: the guild quota is raised to match
                **(env_extra or {}),
            )  # fmt: skip
            started = time.monotonic()
            proc, paths = await run_worker("bot", {"design": design}, env, tmp=Path(tmp))
            try:
                await emu.wait_for(lambda: emu.connected and emu.sync_count > 0, timeout=60,
                                   description="the bot connected with its commands synced")  # fmt: skip
                ready_s = time.monotonic() - started
                approved: list[float] = []
                step = scale.wall(spread_real_s) / max(1, jobs - 1)
                await asyncio.gather(*(_teammate(emu, u, n, n * step, approved) for n, u in enumerate(team)))

                def delivered() -> int:
                    return sum(
                        1 for m in emu.all_messages
                        if m.author_id == emu.bot_user.id and any(a.filename.endswith(".mp4") for a in m.attachments)
                    )  # fmt: skip

                try:
                    await emu.wait_for(lambda: delivered() >= jobs, timeout=scale.wall(400) + 60,
                                       description=f"{jobs} ads delivered")  # fmt: skip
                except TimeoutError:  # report what was delivered by then rather than nothing at all
                    pass
                all_delivered_s = time.monotonic() - started
            finally:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
            result = await finish_worker(proc, paths["out"], 60)
            rows = job_ratios(svc, result)
            lags = result["lags"]
            return {
                "design": design,
                "model": model,
                "jobs": jobs,
                "sound": {**sound_counts(svc), "joins_with_audio": result.get("joins_with_audio", 0)},
                "delivered": delivered(),
                "bot_ready_s": ready_s,
                "run_s": all_delivered_s,
                "critical_path": summarise(rows, scale),
                "peak_rss_mb": result["peak_rss_mb"],
                "rss_at_ready_mb": result.get("rss_ready_mb"),
                "cpu_s_per_job": result["cpu_active_s"] / max(1, jobs),
                "loop_lag_p50_ms": percentile(lags, 50) * 1000,
                "loop_lag_p99_ms": percentile(lags, 99) * 1000,
                "loop_lag_max_ms": max(lags, default=0.0) * 1000,
                "replicate": svc.rates(),
                "discord": {
                    **status_edit_rates(emu),
                    "http_429s": sum(1 for r in emu.requests if r.status == 429),
                    "requests": len(emu.requests),
                },
            }


if __name__ == "__main__":
    import json
    import sys

    args = [a for i, a in enumerate(sys.argv[1:]) if not a.startswith("--") and sys.argv[i] != "--model"]
    f = float(args[0]) if args else 0.25
    n = int(args[1]) if len(args) > 1 else 50
    extra = sound_from_argv(sys.argv[1:])
    model = model_from_argv(sys.argv[1:])
    print(json.dumps(asyncio.run(run_fleet(TimeScale(f), n, env_extra=extra, model=model)), indent=2))

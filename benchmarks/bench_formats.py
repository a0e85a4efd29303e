"""Formats benchmark: the 4:5, 1:1 and 16:9 versions after the master vs the master's own compose.

    python -m benchmarks.bench_formats [--env prod|dev]

The master's compose is what the orchestrator spends in ffmpeg for the 9:16 ad: every scene's clip
normalised (retimed, scaled, captioned, capped for a 10 MiB limit) and the join with the soundtrack.
The formats' time is `render_formats` for the three others from the same clips and soundtrack.
Clips are SVD-shaped (25 frames at 7 fps, 576x1024) like bench_composer's; the last scene carries
the headline and karaoke captions. Target: formats ≤ 1.5 × the master on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline.audio_mix import AUDIO_BITRATE
from pipeline.composer import Composer, target_bitrate
from pipeline.config import EnvProfile
from pipeline.formats import FORMATS, SceneSource, render_formats
from pipeline.speech_timing import proportional_word_timings
from tests.emulators import media

MiB = 1024 * 1024
LIMIT = 10 * MiB
SCENES = [4.0, 5.0, 6.0, 6.0, 5.0, 4.0]
LINE = "Lumen keeps your desk bright all night, and it folds flat into any bag you carry"
TARGET_RATIO = 1.5


def _scenes(clips: list[Path]) -> list[SceneSource]:
    words = proportional_word_timings(LINE, SCENES[-1] - 0.4, lead_in=0.2)
    return [
        SceneSource(clip, d, {"caption": "Get Lumen" if i == len(SCENES) - 1 else None,
                              "words": words if i == len(SCENES) - 1 else None})
        for i, (clip, d) in enumerate(zip(clips, SCENES, strict=True))
    ]  # fmt: skip


async def run_formats_bench(env: str = "prod") -> dict[str, Any]:
    profile = EnvProfile(env)
    master = Composer(profile.output_width, profile.output_height)
    with tempfile.TemporaryDirectory(prefix="jant-bench-formats-") as tmp:
        d = Path(tmp)
        data = await media.mp4_bytes(576, 1024, 25, 7)
        clips = []
        for i in range(len(SCENES)):
            clip = d / f"clip-{i + 1}.mp4"
            await asyncio.to_thread(clip.write_bytes, data)
            clips.append(clip)
        scenes = _scenes(clips)
        total = sum(SCENES)
        soundtrack = await master.mix_audio([], None, total, d / "soundtrack.m4a")  # made once, used by all

        start, cpu = time.perf_counter(), _children_cpu()
        cap = target_bitrate(total, LIMIT, audio_bps=AUDIO_BITRATE)
        parts = [
            await master.normalize_clip(s.clip, d / f"scene-{i}.mp4", s.duration, max_bitrate=cap, **s.overlay)
            for i, s in enumerate(scenes, 1)
        ]
        final = d / "final.mp4"
        made = await master.join(parts, final, byte_limit=LIMIT, audio=soundtrack)
        master_s, master_cpu = time.perf_counter() - start, _children_cpu() - cpu

        # One format at a time, as render_formats makes them, so each one's share shows.
        results, each = [], {}
        for key in list(FORMATS)[1:]:
            start, cpu = time.perf_counter(), _children_cpu()
            results += await render_formats(master, final, [key], scenes, soundtrack=soundtrack, byte_limit=LIMIT)
            each[key] = (time.perf_counter() - start, _children_cpu() - cpu)
        formats_s, formats_cpu = sum(w for w, _ in each.values()), sum(c for _, c in each.values())
    return {
        "env": env,
        "size": f"{master.width}x{master.height}",
        "master_compose_s": round(master_s, 2),
        "master_bytes": made.bytes,
        "formats_s": round(formats_s, 2),
        "ratio": round(formats_s / master_s, 3),
        # ffmpeg's CPU seconds: what wall time is on 2 quiet cores when both runs keep them busy,
        # and the same however loaded the host is (wall time is not).
        "master_cpu_s": round(master_cpu, 2),
        "formats_cpu_s": round(formats_cpu, 2),
        "cpu_ratio": round(formats_cpu / master_cpu, 3),
        "formats": {
            r.format.key: {
                "bytes": r.bytes,
                "error": r.error,
                "wall_s": round(each[r.format.key][0], 2),
                "cpu_s": round(each[r.format.key][1], 2),
            }
            for r in results
        },
        "load_1min": round(os.getloadavg()[0], 1),
    }


def _children_cpu() -> float:
    """CPU seconds (user + system) of the ffmpeg processes that have ended so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def print_formats(r: dict[str, Any]) -> None:
    print(f"formats ({r['env']}, master {r['size']}, load {r['load_1min']}):")
    print(f"  {'':46} wall s   ffmpeg CPU s")
    print(
        f"  {'master compose (normalise ' + str(len(SCENES)) + ' scenes + join)':46} "
        f"{r['master_compose_s']:6.2f}   {r['master_cpu_s']:6.2f}"
    )
    print(f"  {'4:5 + 1:1 + 16:9 after it':46} {r['formats_s']:6.2f}   {r['formats_cpu_s']:6.2f}")
    ok = "ok" if r["cpu_ratio"] <= TARGET_RATIO else "OVER"
    label = f"ratio (target ≤ {TARGET_RATIO} on 2 cores)"
    print(f"  {label:46} {r['ratio']:6.2f}   {r['cpu_ratio']:6.2f}  {ok}")
    for key, f in r["formats"].items():
        print(f"  {key:>5}: {f['wall_s']:6.2f} s wall, {f['cpu_s']:6.2f} s CPU, {f['bytes'] / MiB:.2f} MiB"
              f"{'  ' + f['error'] if f['error'] else ''}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_formats", description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=("prod", "dev"), default="prod", help="output sizes (default prod)")
    print_formats(asyncio.run(run_formats_bench(parser.parse_args().env)))


if __name__ == "__main__":
    main()

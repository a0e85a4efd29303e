"""Formats benchmark: the 4:5, 1:1 and 16:9 versions after the master vs the master's own compose.

    python -m benchmarks.bench_formats [--env prod|dev] [--quality DIR]

The master's compose is what the orchestrator spends in ffmpeg for the 9:16 ad: every scene's clip
normalised (retimed, scaled, captioned, capped for a 10 MiB limit) and the join with the soundtrack.
Clips are SVD-shaped (25 frames at 7 fps, 576x1024) like bench_composer's; the last scene carries
the headline and karaoke captions.

The formats are measured two ways:
- after the master, as a job makes them (the target: ≤ 1.5 × the master on 2 cores): the scenes
  whose clips landed before the last one were cut for the formats while it was being made
  (pipeline/early_formats.py: two ffmpegs at a time at most, at low priority); what is left once the master
  is joined is the last scene's cuts and the three joins. The early cuts' own time is printed too:
  it is hidden in the wait only if the last clip lands at least that long after the others;
- from scratch: `render_formats` for all three from the clips (what the Formats button on a
  finished ad does), which is the formats' whole work.

`--quality DIR` instead compares the formats as made (x264's quick analysis, formats.QUICK_ANALYSIS)
with the same formats encoded like the master's clips: ffmpeg CPU, size, and SSIM / PSNR of each
against a near-lossless encode (CRF 4) of the same format, on the bench's clips and on high-detail
ones (bench_composer's noisy test pattern); the last scene ends on a brand end card here, and a
frame at 1 s and the card's last frame of every format and variant are written to DIR to look at.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_composer import _ssim, _svd_like_clip
from pipeline.audio_mix import AUDIO_BITRATE
from pipeline.brand import BrandKit
from pipeline.composer import Composer, target_bitrate
from pipeline.config import EnvProfile
from pipeline.early_formats import EARLY_CUTS_AT_ONCE, EarlyFormatCuts
from pipeline.end_card import end_card_seconds
from pipeline.ffmpeg import run_ffmpeg
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

        # From scratch, one format at a time, as render_formats makes them, so each one's share shows.
        results, each = [], {}
        for key in list(FORMATS)[1:]:
            start, cpu = time.perf_counter(), _children_cpu()
            results += await render_formats(master, final, [key], scenes, soundtrack=soundtrack, byte_limit=LIMIT)
            each[key] = (time.perf_counter() - start, _children_cpu() - cpu)
        formats_s, formats_cpu = sum(w for w, _ in each.values()), sum(c for _, c in each.values())

        # As a job makes them: every scene but the last cut early (while the last clip is made) ...
        early = EarlyFormatCuts(master, final, FORMATS, gate=asyncio.Semaphore(EARLY_CUTS_AT_ONCE))
        start, cpu = time.perf_counter(), _children_cpu()
        for i, s in enumerate(scenes[:-1], 1):
            early.start(i, s, max_bitrate=cap)
        await early.settle()
        early_s, early_cpu = time.perf_counter() - start, _children_cpu() - cpu
        ready = await early.collect()
        # ... and what is left after the master: the last scene's cuts and the joins.
        with_cuts = [SceneSource(s.clip, s.duration, s.overlay, cut=ready.get(i, {})) for i, s in enumerate(scenes, 1)]
        start, cpu = time.perf_counter(), _children_cpu()
        after = await render_formats(
            master, final, list(FORMATS)[1:], with_cuts, soundtrack=soundtrack, byte_limit=LIMIT
        )
        after_s, after_cpu = time.perf_counter() - start, _children_cpu() - cpu
        await early.discard()
    return {
        "env": env,
        "size": f"{master.width}x{master.height}",
        "master_compose_s": round(master_s, 2),
        "master_bytes": made.bytes,
        "after_s": round(after_s, 2),
        "ratio": round(after_s / master_s, 3),
        "after_cpu_s": round(after_cpu, 2),
        "cpu_ratio": round(after_cpu / master_cpu, 3),
        "early_cut": {r.format.key: r.early for r in after},
        "early_s": round(early_s, 2),
        "early_cpu_s": round(early_cpu, 2),
        "formats_s": round(formats_s, 2),
        "scratch_ratio": round(formats_s / master_s, 3),
        # ffmpeg's CPU seconds: what wall time is on 2 quiet cores when both runs keep them busy,
        # and the same however loaded the host is (wall time is not).
        "master_cpu_s": round(master_cpu, 2),
        "formats_cpu_s": round(formats_cpu, 2),
        "scratch_cpu_ratio": round(formats_cpu / master_cpu, 3),
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
    print(f"  {'':52} wall s   ffmpeg CPU s")
    print(
        f"  {'master compose (normalise ' + str(len(SCENES)) + ' scenes + join)':52} "
        f"{r['master_compose_s']:6.2f}   {r['master_cpu_s']:6.2f}"
    )
    cut = ", ".join(f"{k} {n}" for k, n in r["early_cut"].items())
    print(f"  {'4:5 + 1:1 + 16:9 after it, as a job makes them':52} {r['after_s']:6.2f}   {r['after_cpu_s']:6.2f}"
          f"   (scenes cut early: {cut} of {len(SCENES)})")  # fmt: skip
    ok = "ok" if r["cpu_ratio"] <= TARGET_RATIO else "OVER"
    label = f"ratio (target ≤ {TARGET_RATIO} on 2 cores)"
    print(f"  {label:52} {r['ratio']:6.2f}   {r['cpu_ratio']:6.2f}  {ok}")
    print(f"  {'  the early cuts, while the last clip is made':52} {r['early_s']:6.2f}   {r['early_cpu_s']:6.2f}"
          f"   (hidden if it lands ≥ {r['early_s']:.0f} s after the others)")  # fmt: skip
    print(f"  {'all three from scratch (the Formats button)':52} {r['formats_s']:6.2f}   {r['formats_cpu_s']:6.2f}"
          f"   ratio {r['scratch_ratio']:.2f} wall, {r['scratch_cpu_ratio']:.2f} CPU")  # fmt: skip
    for key, f in r["formats"].items():
        print(f"  {key:>5}: {f['wall_s']:6.2f} s wall, {f['cpu_s']:6.2f} s CPU, {f['bytes'] / MiB:.2f} MiB"
              f"{'  ' + f['error'] if f['error'] else ''}")  # fmt: skip


async def run_quality(env: str, out: Path) -> dict[str, Any]:
    """The formats with quick analysis and with the master's (see the module's doc), per content."""
    profile = EnvProfile(env)
    master = Composer(profile.output_width, profile.output_height)
    reference = Composer(master.width, master.height, crf=4)
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    kit = BrandKit(cta="Order today")
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="jant-bench-formats-q-") as tmp:
        d = Path(tmp)
        emulator = d / "emulator.mp4"
        await asyncio.to_thread(emulator.write_bytes, await media.mp4_bytes(576, 1024, 25, 7))
        for content, clip in (("emulator", emulator), ("detail", await _svd_like_clip(d / "detail.mp4"))):
            scenes = [
                SceneSource(s.clip, s.duration, {**s.overlay, "brand": kit,
                            "end_card_s": end_card_seconds(s.duration) if i == len(SCENES) - 1 else 0.0})
                for i, s in enumerate(_scenes([clip] * len(SCENES)))
            ]  # fmt: skip
            soundtrack = await master.mix_audio([], None, sum(SCENES), d / "soundtrack.m4a")
            made: dict[str, dict[str, Path]] = {}
            for variant, composer, quick in (
                ("ref", reference, False),
                ("full", master, False),
                ("quick", master, True),
            ):
                vdir = d / f"{content}-{variant}"
                vdir.mkdir()
                cpu = _children_cpu()
                results = await render_formats(composer, vdir / "final.mp4", list(FORMATS), scenes,
                                               soundtrack=soundtrack, byte_limit=None if variant == "ref" else LIMIT,
                                               quick_analysis=quick)  # fmt: skip
                made[variant] = {r.format.key: r.path for r in results if r.path}
                rows.setdefault(content, {})[f"{variant}_cpu_s"] = round(_children_cpu() - cpu, 2)
            for key in list(FORMATS)[1:]:
                row = rows[content].setdefault(key, {})
                for variant in ("full", "quick"):
                    path = made[variant][key]
                    row[variant] = {
                        "bytes": path.stat().st_size,
                        "ssim": await _ssim(path, made["ref"][key]),
                        "psnr": await _psnr(path, made["ref"][key]),
                    }
                    for name, at in (("1s", 1.0), ("card", sum(SCENES) - 0.1)):
                        png = out / f"{content}-{key.replace(':', 'x')}-{variant}-{name}.png"
                        await run_ffmpeg(["-ss", f"{at}", "-i", str(path), "-frames:v", "1", "-y", str(png)])
    return {"env": env, "rows": rows, "load_1min": round(os.getloadavg()[0], 1)}


async def _psnr(a: Path, ref: Path) -> float:
    err = await run_ffmpeg(["-i", str(a), "-i", str(ref), "-lavfi", "psnr", "-f", "null", "-"])
    m = re.search(r"average:([0-9.]+|inf)", err)
    return round(float(m[1]), 2) if m else float("nan")


def print_quality(q: dict[str, Any]) -> None:
    print(f"formats, quick analysis vs the master's ({q['env']}, load {q['load_1min']}); "
          "against CRF 4 of the same format:")  # fmt: skip
    for content, row in q["rows"].items():
        print(f"  {content}: ffmpeg CPU for all three, full {row['full_cpu_s']:.2f} s, "
              f"quick {row['quick_cpu_s']:.2f} s "
              f"({row['quick_cpu_s'] / row['full_cpu_s'] - 1:+.1%})")  # fmt: skip
        for key in list(FORMATS)[1:]:
            f, k = row[key]["full"], row[key]["quick"]
            print(f"    {key:>5}: SSIM {f['ssim']:.4f} → {k['ssim']:.4f}, PSNR {f['psnr']:.2f} → {k['psnr']:.2f} dB, "
                  f"{f['bytes'] / MiB:.2f} → {k['bytes'] / MiB:.2f} MiB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_formats", description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=("prod", "dev"), default="prod", help="output sizes (default prod)")
    parser.add_argument("--quality", type=Path, metavar="DIR", help="compare quick and full analysis instead")
    args = parser.parse_args()
    if args.quality is not None:
        print_quality(asyncio.run(run_quality(args.env, args.quality)))
        return
    print_formats(asyncio.run(run_formats_bench(args.env)))


if __name__ == "__main__":
    main()

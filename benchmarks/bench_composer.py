"""Composer benchmark: what normalising, joining and fitting an ad costs on this machine.

    python -m benchmarks.bench_composer

Content is deliberately hard: SVD-shaped clips (25 frames, 7 fps, 576x1024) of a test pattern
under fresh per-frame noise, so sizes are a worst case, not a typical ad.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline.composer import Composer, target_bitrate
from pipeline.ffmpeg import ffmpeg_version, probe, run_ffmpeg

MiB = 1024 * 1024
LIMIT = 10 * MiB
SCENES = [4.0, 5.0, 6.0, 6.0, 5.0, 4.0]
SIZES = [(720, 1280), (1080, 1920)]
CLIP_S = 4.0  # one scene's length for the per-clip figures


async def _svd_like_clip(dst: Path) -> Path:
    await run_ffmpeg([
        "-f", "lavfi", "-i", "testsrc2=s=576x1024:r=7,noise=alls=16:allf=t+u",
        "-frames:v", "25", "-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-pix_fmt", "yuv420p",
        str(dst),
    ])  # fmt: skip
    return dst


async def _timed(coro: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = await coro
    return result, time.perf_counter() - start


async def run_composer_bench() -> dict[str, Any]:
    """Normalise RTFs (duplication and mci, dev and prod sizes), join time, fit-to-10-MiB outcome."""
    out: dict[str, Any] = {"cpus": os.cpu_count(), "ffmpeg": await ffmpeg_version(), "normalize": []}
    with tempfile.TemporaryDirectory(prefix="jant-bench-") as tmp:
        d = Path(tmp)
        src = await _svd_like_clip(d / "svd.mp4")

        for w, h in SIZES:
            for interpolate in (False, True):
                c = Composer(w, h, interpolate=interpolate)
                _, secs = await _timed(c.normalize_clip(src, d / f"n-{w}-{interpolate}.mp4", CLIP_S))
                out["normalize"].append({
                    "size": f"{w}x{h}", "mode": "mci" if interpolate else "dup",
                    "seconds": round(secs, 2), "rtf": round(secs / CLIP_S, 3),
                })  # fmt: skip

        # The production ad: six scenes normalised as they arrive, then the join.
        w, h = SIZES[-1]
        c = Composer(w, h)
        clips: list[Path] = []
        normalise_total = 0.0
        for i, dur in enumerate(SCENES):
            clip, secs = await _timed(c.normalize_clip(src, d / f"scene-{i + 1}.mp4", dur))
            clips.append(clip)
            normalise_total += secs
        copy, copy_s = await _timed(c.join(clips, d / "final-copy.mp4"))
        fit, fit_s = await _timed(c.join(clips, d / "final-fit.mp4", byte_limit=LIMIT))
        info = await probe(fit.path)
        out["join"] = {
            "size": f"{w}x{h}", "clips": len(clips), "duration_s": copy.duration_s,
            "normalise_all_seconds": round(normalise_total, 2),
            "copy_seconds": round(copy_s, 2), "copy_bytes": copy.bytes,
            "limit_bytes": LIMIT, "fit_seconds": round(fit_s, 2), "fit_bytes": fit.bytes,
            "fit_encodes": fit.encodes, "fit_size": f"{info.width}x{info.height}",
        }  # fmt: skip

        # What the orchestrator does: cap each clip's bitrate at normalise time, so the join copies.
        cap = target_bitrate(sum(SCENES), LIMIT)
        capped: list[Path] = []
        for i, dur in enumerate(SCENES):
            capped.append(await c.normalize_clip(src, d / f"capped-{i + 1}.mp4", dur, max_bitrate=cap))
        result, secs = await _timed(c.join(capped, d / "final-capped.mp4", byte_limit=LIMIT))
        out["capped"] = {
            "max_bitrate": cap,
            "join_seconds": round(secs, 2),
            "bytes": result.bytes,
            "encodes": result.encodes,
        }
    return out


def _print(r: dict[str, Any]) -> None:
    print(f"Composer benchmark — {r['cpus']} CPUs — {r['ffmpeg']}")
    print(f"\nNormalise one {CLIP_S:g} s scene (SVD 25 frames @ 7 fps -> 24 fps), libx264 veryfast crf 23")
    print(f"  {'size':<10} {'mode':<5} {'wall s':>7} {'RTF':>6}")
    for n in r["normalize"]:
        print(f"  {n['size']:<10} {n['mode']:<5} {n['seconds']:>7.2f} {n['rtf']:>6.2f}")
    j = r["join"]
    print(f"\nJoin {j['clips']} normalised scenes, {j['size']}, {j['duration_s']:g} s "
          f"(normalising all six took {j['normalise_all_seconds']:.1f} s, one at a time)")  # fmt: skip
    print(f"  stream copy           {j['copy_seconds']:>6.2f} s  {j['copy_bytes'] / MiB:6.2f} MiB")
    fit_mib, limit_mib = j["fit_bytes"] / MiB, j["limit_bytes"] / MiB
    print(f"  fit under {limit_mib:g} MiB      {j['fit_seconds']:>6.2f} s  {fit_mib:6.2f} MiB"
          f"  encodes={j['fit_encodes']} output={j['fit_size']}")  # fmt: skip
    c = r["capped"]
    cap_mbps = c["max_bitrate"] / 1e6
    print(f"  clips capped at {cap_mbps:.2f} Mb/s {c['join_seconds']:>5.2f} s  {c['bytes'] / MiB:6.2f} MiB"
          f"  encodes={c['encodes']}")  # fmt: skip


if __name__ == "__main__":
    _print(asyncio.run(run_composer_bench()))

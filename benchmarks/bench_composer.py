"""Composer benchmark: what normalising, joining and fitting an ad costs on this machine.

    python -m benchmarks.bench_composer

Content is deliberately hard: SVD-shaped clips (25 frames, 7 fps, 576x1024) of a test pattern
under fresh per-frame noise, so sizes are a worst case, not a typical ad.

- Real-time factor of normalising one scene (wall seconds per output second), frame duplication
  and motion interpolation, at the dev (720x1280) and prod (1080x1920) output sizes.
- The orchestrator's path for a 6-scene, 30 s ad under a 10 MiB limit: each clip normalised as it
  arrives with its bitrate capped so that the join can stream-copy; the time from the last clip's
  arrival (the longest scene, captioned: the worst case) to the final file and contact sheet.
- The fallback when clips were not capped: the join re-encodes to fit.
- The soundtrack: six voice lines over the offline music bed, ducked and mastered (mix_audio).
- The captions' share of normalise time: the last clip (6 s, urgent, capped) with no text, with
  the headline alone, and with the headline and karaoke captions of a spoken line, median of
  CAPTION_RUNS runs each (the host is noisy), at both sizes. `--captions` runs only this part.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline.composer import Composer, target_bitrate
from pipeline.config import EnvProfile
from pipeline.ffmpeg import avc_decoder_config, ffmpeg_version, probe, run_ffmpeg
from pipeline.speech_timing import proportional_word_timings
from tests.emulators import media

MiB = 1024 * 1024
LIMIT = 10 * MiB
SCENES = [4.0, 5.0, 6.0, 6.0, 5.0, 4.0]
LAST = 3  # index of the clip that arrives last: a 6 s scene, captioned
PROFILES = {env: EnvProfile(env) for env in ("dev", "prod")}  # the sizes JANT_ENV buys, from one place
SIZES = {env: (p.output_width, p.output_height) for env, p in PROFILES.items()}
SEED_SIZES = {env: (p.seed_width, p.seed_height) for env, p in PROFILES.items()}
HEADLINE = "Get Lumen"
# The last scene's voiceover: ~2.5 words a second over its 6 s, as a storyboard writes them.
LINE = "Lumen keeps your desk bright all night, and it folds flat into any bag you carry"
WORDS = proportional_word_timings(LINE, SCENES[LAST] - 0.4, lead_in=0.2)
CAPTION_RUNS = 5
DUP_S, MCI_S = 4.0, 2.0  # scene lengths for the real-time factors (mci costs ~4-7 s per output second)


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


async def _seed_images(d: Path, env: str) -> list[Path]:
    w, h = SEED_SIZES[env]
    paths = []
    for i in range(len(SCENES)):
        p = d / f"seed-{env}-{i + 1}.png"
        await asyncio.to_thread(p.write_bytes, media.png_bytes(w, h, seed=i))
        paths.append(p)
    return paths


async def _orchestrator_path(src: Path, d: Path, env: str) -> dict[str, Any]:
    """Five clips normalised as they arrived; then the last one, the join and the contact sheet."""
    w, h = SIZES[env]
    c = Composer(w, h)
    cap = target_bitrate(sum(SCENES), LIMIT)
    clips = [d / f"{env}-scene-{i + 1}.mp4" for i in range(len(SCENES))]
    for i, dur in enumerate(SCENES):
        if i != LAST:
            await c.normalize_clip(src, clips[i], dur, max_bitrate=cap)
    seeds = await _seed_images(d, env)
    start = time.perf_counter()
    # Urgent, as the orchestrator does for the clip the ad waits on (every other scene is done).
    await c.normalize_clip(src, clips[LAST], SCENES[LAST], caption=HEADLINE, words=WORDS, max_bitrate=cap, urgent=True)
    normalised = time.perf_counter()
    result, _ = await asyncio.gather(  # as Orchestrator._finish does
        c.join(clips, d / f"final-{env}.mp4", byte_limit=LIMIT),
        c.contact_sheet(seeds, [f"scene {i + 1}" for i in range(len(SCENES))], d / f"sheet-{env}.png", title="Lumen"),
    )
    done = time.perf_counter()
    out: dict[str, Any] = {}
    if env == "prod":
        # The same clip at full analysis (what every earlier clip gets), and both against a
        # near-lossless encode of the scene: what `urgent` costs in time and in picture.
        normal, normal_s = await _timed(
            c.normalize_clip(src, d / f"{env}-normal.mp4", SCENES[LAST], caption=HEADLINE, words=WORDS, max_bitrate=cap)
        )
        reference = Composer(w, h, preset="ultrafast", crf=1)
        ref = await reference.normalize_clip(src, d / f"{env}-ref.mp4", SCENES[LAST], caption=HEADLINE, words=WORDS)
        out = {
            "urgent_normalise_s": round(normalised - start, 2), "normal_normalise_s": round(normal_s, 2),
            "urgent_ssim": await _ssim(clips[LAST], ref), "normal_ssim": await _ssim(normal, ref),
            "urgent_bytes": clips[LAST].stat().st_size, "normal_bytes": normal.stat().st_size,
            "same_decoder_config": avc_decoder_config(clips[LAST]) == avc_decoder_config(normal),
        }  # fmt: skip
    return {
        "size": f"{w}x{h}", "after_last_clip_s": round(done - start, 2),
        "last_normalise_s": round(normalised - start, 2), "join_and_sheet_s": round(done - normalised, 2),
        "bytes": result.bytes, "limit_bytes": LIMIT, "join_encodes": result.encodes,
        "max_bitrate": cap, **out,
    }  # fmt: skip


async def _caption_share(src: Path, d: Path, env: str) -> dict[str, Any]:
    """Normalising the last clip with no text, the headline, and headline + karaoke captions."""
    w, h = SIZES[env]
    c = Composer(w, h)
    cap = target_bitrate(sum(SCENES), LIMIT)
    variants: dict[str, dict[str, Any]] = {
        "none": {}, "headline": {"caption": HEADLINE}, "karaoke": {"caption": HEADLINE, "words": WORDS},
    }  # fmt: skip
    wall: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    for run in range(CAPTION_RUNS):  # interleaved, so a slow moment of the host hits every variant
        for name, kwargs in variants.items():
            before = _children_cpu()
            _, secs = await _timed(
                c.normalize_clip(src, d / f"cap-{env}-{name}-{run}.mp4", SCENES[LAST], max_bitrate=cap,
                                 urgent=True, **kwargs)
            )  # fmt: skip
            wall[name].append(secs)
            cpu[name].append(_children_cpu() - before)
    w_med = {k: statistics.median(v) for k, v in wall.items()}
    c_med = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "size": f"{w}x{h}", "runs": CAPTION_RUNS, "words": len(WORDS),
        **{f"{k}_s": round(v, 3) for k, v in w_med.items()},
        **{f"{k}_cpu_s": round(v, 3) for k, v in c_med.items()},
        "headline_share": round(w_med["headline"] / w_med["none"] - 1, 3),
        "karaoke_share": round(w_med["karaoke"] / w_med["none"] - 1, 3),
        # CPU seconds of the ffmpeg processes: what a neighbour on a shared host can't blur.
        "headline_cpu_share": round(c_med["headline"] / c_med["none"] - 1, 3),
        "karaoke_cpu_share": round(c_med["karaoke"] / c_med["none"] - 1, 3),
    }  # fmt: skip


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


async def run_caption_bench() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="jant-bench-") as tmp:
        d = Path(tmp)
        src = await _svd_like_clip(d / "svd.mp4")
        return {env: await _caption_share(src, d, env) for env in SIZES}


async def _ssim(a: Path, ref: Path) -> float:
    err = await run_ffmpeg(["-i", str(a), "-i", str(ref), "-lavfi", "ssim", "-f", "null", "-"])
    m = re.search(r"All:([0-9.]+)", err)
    return round(float(m[1]), 4) if m else float("nan")


async def run_composer_bench(*, fallback: bool = True) -> dict[str, Any]:
    """Normalise RTFs (duplication and mci, dev and prod sizes), the orchestrator's compose path
    (after-last-clip time, size under 10 MiB) and, with `fallback`, the fit-by-re-encoding path."""
    out: dict[str, Any] = {"cpus": os.cpu_count(), "ffmpeg": await ffmpeg_version(), "normalize": []}
    with tempfile.TemporaryDirectory(prefix="jant-bench-") as tmp:
        d = Path(tmp)
        src = await _svd_like_clip(d / "svd.mp4")

        for env, (w, h) in SIZES.items():
            for interpolate, scene_s in ((False, DUP_S), (True, MCI_S)):
                c = Composer(w, h, interpolate=interpolate)
                _, secs = await _timed(c.normalize_clip(src, d / f"n-{w}-{interpolate}.mp4", scene_s))
                out["normalize"].append({
                    "env": env, "size": f"{w}x{h}", "mode": "mci" if interpolate else "dup",
                    "scene_s": scene_s, "seconds": round(secs, 2), "rtf": round(secs / scene_s, 3),
                })  # fmt: skip

        out["compose"] = {env: await _orchestrator_path(src, d, env) for env in SIZES}
        out["audio_mix"] = await run_audio_mix_bench(d)
        out["captions"] = {env: await _caption_share(src, d, env) for env in SIZES}

        if fallback:  # clips normalised without the cap: the join has to re-encode to fit
            w, h = SIZES["prod"]
            c = Composer(w, h)
            # One uncapped 5 s scene six times over (30 s): the same content as six, a fifth of the time.
            free = await c.normalize_clip(src, d / "free.mp4", sum(SCENES) / len(SCENES))
            clips = [free] * len(SCENES)
            copy, copy_s = await _timed(c.join(clips, d / "final-copy.mp4"))
            fit, fit_s = await _timed(c.join(clips, d / "final-fit.mp4", byte_limit=LIMIT))
            info = await probe(fit.path)
            out["fallback"] = {
                "size": f"{w}x{h}", "uncapped_bytes": copy.bytes, "copy_seconds": round(copy_s, 2),
                "fit_seconds": round(fit_s, 2), "fit_bytes": fit.bytes, "fit_encodes": fit.encodes,
                "fit_size": f"{info.width}x{info.height}", "limit_bytes": LIMIT,
            }  # fmt: skip
    return out


async def _voice_like_line(dst: Path, seconds: float, f0: float) -> Path:
    """A TTS-shaped line (22.05 kHz mono, like piper's): a harmonic buzz gated into syllables."""
    expr = (f"0.3*(sin(2*PI*{f0}*t)+0.5*sin(2*PI*{2 * f0}*t)+0.3*sin(2*PI*{3 * f0}*t))"
            "*pow(0.5+0.5*sin(2*PI*4*t),2)")  # fmt: skip
    await run_ffmpeg(["-f", "lavfi", "-i", f"aevalsrc='{expr}':s=22050:d={seconds:.2f}", str(dst)])
    return dst


async def run_audio_mix_bench(d: Path, *, runs: int = 3) -> dict[str, Any]:
    """The soundtrack of a 30 s ad: six voice lines at the scenes' starts over the offline bed,
    ducked and mastered (Composer.mix_audio); and the bed's own synthesis. Median of `runs`."""
    from pipeline.audio_mix import measure
    from pipeline.moods import MUSIC_STYLES, Mood
    from pipeline.providers.offline_music import synthesize_bed

    starts = [sum(SCENES[:i]) for i in range(len(SCENES))]
    lines = [await _voice_like_line(d / f"line-{i}.wav", dur - 0.8, 140 + 15 * i) for i, dur in enumerate(SCENES)]
    bed_s, mix_s = [], []
    for r in range(runs):
        bed, secs = await _timed(synthesize_bed(MUSIC_STYLES[Mood.ENERGETIC], r, sum(SCENES), d / f"bed-{r}.wav"))
        bed_s.append(secs)
        mix, secs = await _timed(Composer(*SIZES["prod"]).mix_audio(
            list(zip(lines, starts, strict=True)), bed, sum(SCENES), d / f"soundtrack-{r}.m4a"
        ))  # fmt: skip
        mix_s.append(secs)
    loud = await measure(mix)
    return {
        "ad_s": sum(SCENES), "lines": len(lines), "runs": runs,
        "bed_seconds": round(sorted(bed_s)[runs // 2], 2), "mix_seconds": round(sorted(mix_s)[runs // 2], 2),
        "mix_seconds_all": [round(x, 2) for x in mix_s], "lufs": loud.integrated, "true_peak_dbtp": loud.true_peak,
        "bytes": mix.stat().st_size,
    }  # fmt: skip


def print_audio_mix(a: dict[str, Any]) -> None:
    print(f"  soundtrack of a {a['ad_s']:g} s ad ({a['lines']} voice lines + offline bed, median of {a['runs']}): "
          f"mix {a['mix_seconds']:.2f} s (runs {a['mix_seconds_all']}), bed synthesis {a['bed_seconds']:.2f} s, "
          f"{a['lufs']:.1f} LUFS, {a['true_peak_dbtp']:.1f} dBTP, {a['bytes'] / 1024:.0f} KiB")  # fmt: skip


def print_composer(r: dict[str, Any]) -> None:
    print(f"Composer — {r['cpus']} CPUs — {r['ffmpeg'][:60]}")
    print("  normalise one scene (SVD 25 frames @ 7 fps -> 24 fps), libx264 veryfast crf 23")
    print(f"    {'size':<10} {'mode':<5} {'scene s':>7} {'wall s':>7} {'RTF':>6}")
    for n in r["normalize"]:
        print(f"    {n['size']:<10} {n['mode']:<5} {n['scene_s']:>7g} {n['seconds']:>7.2f} {n['rtf']:>6.2f}")
    print("  6 scenes, 30 s, clips capped for a 10 MiB limit; the last clip (6 s, captioned) arrives last")
    for env, c in r["compose"].items():
        print(f"    {env:<5} {c['size']:<10} last clip -> final {c['after_last_clip_s']:5.2f} s "
              f"(normalise {c['last_normalise_s']:.2f} + join & sheet {c['join_and_sheet_s']:.2f})  "
              f"{c['bytes'] / MiB:5.2f} MiB  re-encodes at join: {c['join_encodes']}")  # fmt: skip
        if "urgent_ssim" not in c:
            continue
        print(f"    {'':<16} that clip urgent {c['urgent_normalise_s']:.2f} s, SSIM {c['urgent_ssim']:.4f}, "
              f"{c['urgent_bytes'] / MiB:.2f} MiB; full analysis {c['normal_normalise_s']:.2f} s, SSIM "
              f"{c['normal_ssim']:.4f}, {c['normal_bytes'] / MiB:.2f} MiB; same stream headers: "
              f"{c['same_decoder_config']}")  # fmt: skip
    if "audio_mix" in r:
        print_audio_mix(r["audio_mix"])
    if "captions" in r:
        print_captions(r["captions"])
    if "fallback" in r:
        f = r["fallback"]
        print(f"  fallback, uncapped clips {f['size']}: {f['uncapped_bytes'] / MiB:.1f} MiB -> fit in "
              f"{f['fit_seconds']:.1f} s, {f['fit_bytes'] / MiB:.2f} MiB, encodes={f['fit_encodes']}, "
              f"output {f['fit_size']}")  # fmt: skip


def print_captions(r: dict[str, Any]) -> None:
    first = next(iter(r.values()))
    print(f"  captions' share of normalising the last clip (6 s, urgent, capped; median of {first['runs']})")
    for env, c in r.items():
        print(f"    {env:<5} {c['size']:<10} no text {c['none_s']:.2f} s, headline {c['headline_s']:.2f} s "
              f"({c['headline_share']:+.1%}), headline + karaoke ({c['words']} words) {c['karaoke_s']:.2f} s "
              f"({c['karaoke_share']:+.1%})")  # fmt: skip
        print(f"    {'':<16} ffmpeg CPU: no text {c['none_cpu_s']:.2f} s, headline {c['headline_cpu_s']:.2f} s "
              f"({c['headline_cpu_share']:+.1%}), headline + karaoke {c['karaoke_cpu_s']:.2f} s "
              f"({c['karaoke_cpu_share']:+.1%})")  # fmt: skip


BRAND_RUNS = 3


async def _brand_share(src: Path, d: Path, env: str, logo: Path) -> dict[str, Any]:
    """Normalising the last (CTA) scene unbranded, with a brand (font, colours, watermark), and
    with the brand and its end card (colour and blur): median of BRAND_RUNS runs, interleaved."""
    from pipeline.brand import BrandKit

    w, h = SIZES[env]
    c = Composer(w, h)
    cap = target_bitrate(sum(SCENES), LIMIT)
    kit = BrandKit(name="Lumen", primary="#0e7490", accent="#facc15", cta="Shop the Lumen lamp",
                   url="https://lumen.example", logo_path=str(logo))  # fmt: skip
    variants: dict[str, dict[str, Any]] = {
        "plain": {}, "brand": {"brand": kit},
        "card": {"brand": kit, "end_card_s": 2.5},
        "blur_card": {"brand": kit.model_copy(update={"end_card": "blur"}), "end_card_s": 2.5},
    }  # fmt: skip
    wall: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    for run in range(BRAND_RUNS):
        for name, kwargs in variants.items():
            before = _children_cpu()
            _, secs = await _timed(
                c.normalize_clip(src, d / f"brand-{env}-{name}-{run}.mp4", SCENES[LAST], caption=HEADLINE,
                                 words=WORDS, max_bitrate=cap, urgent=True, **kwargs)
            )  # fmt: skip
            wall[name].append(secs)
            cpu[name].append(_children_cpu() - before)
    med = {k: statistics.median(v) for k, v in wall.items()}
    c_med = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "size": f"{w}x{h}", "runs": BRAND_RUNS, **{f"{k}_s": round(v, 3) for k, v in med.items()},
        **{f"{k}_share": round(v / med["plain"] - 1, 3) for k, v in med.items() if k != "plain"},
        # CPU seconds of the ffmpeg processes: what a neighbour on a shared host can't blur.
        **{f"{k}_cpu_s": round(v, 3) for k, v in c_med.items()},
        **{f"{k}_cpu_share": round(v / c_med["plain"] - 1, 3) for k, v in c_med.items() if k != "plain"},
    }  # fmt: skip


async def run_brand_bench() -> dict[str, Any]:
    from PIL import Image, ImageDraw

    with tempfile.TemporaryDirectory(prefix="jant-bench-") as tmp:
        d = Path(tmp)
        src = await _svd_like_clip(d / "svd.mp4")
        logo = d / "logo.png"
        img = Image.new("RGBA", (600, 300), (0, 0, 0, 0))
        ImageDraw.Draw(img).ellipse((0, 0, 299, 299), fill=(230, 30, 200, 255))
        img.save(logo)
        return {env: await _brand_share(src, d, env, logo) for env in SIZES}


def print_brand(r: dict[str, Any]) -> None:
    first = next(iter(r.values()))
    print(f"  the brand's share of normalising the last scene (6 s, headline + karaoke, urgent, capped; "
          f"median of {first['runs']})")  # fmt: skip
    for env, b in r.items():
        print(f"    {env:<5} {b['size']:<10} unbranded {b['plain_s']:.2f} s, brand (font, colours, logo) "
              f"{b['brand_s']:.2f} s ({b['brand_share']:+.1%}), + end card {b['card_s']:.2f} s "
              f"({b['card_share']:+.1%}), + blurred end card {b['blur_card_s']:.2f} s "
              f"({b['blur_card_share']:+.1%})")  # fmt: skip
        print(f"    {'':<16} ffmpeg CPU: unbranded {b['plain_cpu_s']:.2f} s, brand {b['brand_cpu_s']:.2f} s "
              f"({b['brand_cpu_share']:+.1%}), + end card {b['card_cpu_s']:.2f} s ({b['card_cpu_share']:+.1%}), "
              f"+ blurred end card {b['blur_card_cpu_s']:.2f} s ({b['blur_card_cpu_share']:+.1%})")  # fmt: skip


if __name__ == "__main__":
    if "--brand" in sys.argv[1:]:
        print_brand(asyncio.run(run_brand_bench()))
    elif "--captions" in sys.argv[1:]:
        print_captions(asyncio.run(run_caption_bench()))
    else:
        print_composer(asyncio.run(run_composer_bench()))

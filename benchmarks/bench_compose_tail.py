"""The compose tail of an ad with sound: from the last clip's arrival to the finished `final.mp4`.

    python -m benchmarks.bench_compose_tail [runs]      # default 3; 1080x1920, real ffmpeg, real time

What issue 12 promises: the ad is still ready ≤ 3 s after its last clip at 1080x1920 with a voice,
a music bed and karaoke captions. The orchestrator's order is reproduced: the soundtrack (six voice
lines over the music bed, ducked and mastered, `Composer.mix_audio`) is built as soon as voice and
music are ready, before the last clip lands; five clips were normalised as they arrived, each with
its headline-free karaoke captions; then the timed tail — the last clip (the 6 s captioned scene,
`urgent`, with its spoken words) normalised, and the join (video stream-copied, soundtrack muxed)
beside the contact sheet. The clips' bitrate cap leaves room for the audio (`target_bitrate(...,
audio_bps=AUDIO_BITRATE)`), so the join stays a copy plus a mux: its re-encode count is reported.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_composer import LAST, LIMIT, SCENES, SIZES, _seed_images, _svd_like_clip, _voice_like_line
from pipeline.audio_mix import AUDIO_BITRATE
from pipeline.composer import Composer, target_bitrate
from pipeline.ffmpeg import probe
from pipeline.speech_timing import WordTiming, proportional_word_timings

HEADLINE = "Get Lumen"
# One line per scene, about 2.5 words a second of its scene, as the storyboard writes them.
LINES = (
    "Your desk lamp should know what time it is",
    "Lumen warms at dusk and wakes you bright",
    "It follows your rhythm from morning to midnight work",
    "Lumen keeps your desk bright all night, and it folds flat",
    "Drop your phone on its base and it charges",
    "Get Lumen today at lumen dot shop",
)
TAIL = 0.8  # seconds of each scene left after its line ends


async def _lines(d: Path) -> tuple[list[tuple[Path, float]], list[tuple[WordTiming, ...]]]:
    """The voice files at their scenes' starts, and each line's words timed within its scene."""
    placed, words = [], []
    for i, (text, scene_s) in enumerate(zip(LINES, SCENES, strict=True)):
        spoken = scene_s - TAIL
        path = await _voice_like_line(d / f"tail-line-{i}.wav", spoken, 140 + 15 * i)
        placed.append((path, sum(SCENES[:i])))
        words.append(proportional_word_timings(text, spoken))
    return placed, words


async def run_compose_tail_bench(runs: int = 3, env: str = "prod") -> dict[str, Any]:
    from pipeline.moods import MUSIC_STYLES, Mood
    from pipeline.providers.offline_music import synthesize_bed

    w, h = SIZES[env]
    c = Composer(w, h)
    total = sum(SCENES)
    cap = target_bitrate(total, LIMIT, audio_bps=AUDIO_BITRATE)
    with tempfile.TemporaryDirectory(prefix="jant-bench-") as tmp:
        d = Path(tmp)
        src = await _svd_like_clip(d / "svd.mp4")
        placed, words = await _lines(d)
        bed = await synthesize_bed(MUSIC_STYLES[Mood.ENERGETIC], 7, total, d / "bed.wav")
        t = time.perf_counter()
        soundtrack = await c.mix_audio(placed, bed, total, d / "soundtrack.m4a")  # before the last clip
        mix_s = time.perf_counter() - t
        clips = [d / f"scene-{i + 1}.mp4" for i in range(len(SCENES))]
        for i, dur in enumerate(SCENES):
            if i != LAST:
                await c.normalize_clip(src, clips[i], dur, words=words[i], max_bitrate=cap)
        seeds = await _seed_images(d, env)
        silent_clips = [*clips[:LAST], d / "scene-last-silent.mp4", *clips[LAST + 1 :]]
        silent_cap = target_bitrate(total, LIMIT)
        tails: list[dict[str, Any]] = []
        for run in range(runs):
            # The ad with sound, then the same ad silent (headline only, no soundtrack) right after:
            # on a host whose load moves from one minute to the next, their ratio is the figure
            # that compares with the silent tail measured on an idle host (benchmarks/README.md).
            sound = await _tail(c, src, clips, soundtrack, words[LAST], cap, seeds, d / f"final-{run}.mp4")
            silent = await _tail(c, src, silent_clips, None, None, silent_cap, seeds, d / f"silent-{run}.mp4")
            tails.append({
                **sound, "silent_after_last_clip_s": silent["after_last_clip_s"],
                "silent_ffmpeg_cpu_s": silent["ffmpeg_cpu_s"], "join_silent_s": silent["join_and_sheet_s"],
                "sound_over_silent": sound["after_last_clip_s"] / silent["after_last_clip_s"],
            })  # fmt: skip
        info = await probe(d / f"final-{runs - 1}.mp4")
    timed = ("after_last_clip_s", "normalise_s", "join_and_sheet_s", "ffmpeg_cpu_s", "join_silent_s",
             "silent_after_last_clip_s", "silent_ffmpeg_cpu_s", "sound_over_silent")  # fmt: skip
    median = {k: statistics.median(t[k] for t in tails) for k in timed}
    return {
        "size": f"{w}x{h}", "ad_s": total, "runs": runs, "lines": len(LINES),
        "words": sum(len(x) for x in words), "last_clip_words": len(words[LAST]),
        **{k: round(v, 2) for k, v in median.items()},
        "after_last_clip_s_all": [round(t["after_last_clip_s"], 2) for t in tails],
        "mix_s": round(mix_s, 2), "bytes": tails[-1]["bytes"], "limit_bytes": LIMIT,
        "join_encodes": max(t["encodes"] for t in tails), "has_audio": info.has_audio,
        "duration_s": info.duration_s, "max_bitrate": cap,
    }  # fmt: skip


async def _tail(
    c: Composer,
    src: Path,
    clips: list[Path],
    soundtrack: Path | None,
    words: tuple[WordTiming, ...] | None,
    cap: int,
    seeds: list[Path],
    final: Path,
) -> dict[str, Any]:
    """The last clip normalised (urgent), then the join beside the contact sheet: wall and ffmpeg CPU."""
    cpu0 = _children_cpu()
    start = time.perf_counter()
    await c.normalize_clip(src, clips[LAST], SCENES[LAST], caption=HEADLINE, words=words, max_bitrate=cap,
                           urgent=True)  # fmt: skip
    normalised = time.perf_counter()
    result, _ = await asyncio.gather(  # as Orchestrator._finish does
        c.join(clips, final, byte_limit=LIMIT, audio=soundtrack),
        c.contact_sheet(seeds, [f"scene {i + 1}" for i in range(len(SCENES))], final.with_suffix(".png"),
                        title="Lumen"),
    )  # fmt: skip
    done = time.perf_counter()
    return {
        "after_last_clip_s": done - start, "normalise_s": normalised - start, "join_and_sheet_s": done - normalised,
        "bytes": result.bytes, "encodes": result.encodes, "ffmpeg_cpu_s": _children_cpu() - cpu0,
    }  # fmt: skip


def _children_cpu() -> float:
    """CPU seconds of the ffmpeg processes so far: what a busy neighbour on the host cannot inflate."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def print_compose_tail(r: dict[str, Any]) -> None:
    print(f"  compose tail with sound, {r['size']} ({r['lines']} voice lines over a bed, karaoke captions, "
          f"median of {r['runs']}): last clip -> final {r['after_last_clip_s']:.2f} s "
          f"(normalise {r['normalise_s']:.2f} + join & sheet {r['join_and_sheet_s']:.2f}; runs "
          f"{r['after_last_clip_s_all']}), {r['bytes'] / 2**20:.2f} MiB, re-encodes at join: {r['join_encodes']}, "
          f"audio: {r['has_audio']}; soundtrack mixed beforehand in {r['mix_s']:.2f} s")  # fmt: skip
    print(f"    ffmpeg CPU in the tail {r['ffmpeg_cpu_s']:.2f} s; the join with the soundtrack "
          f"{r['join_and_sheet_s']:.2f} s (beside the sheet), without it {r['join_silent_s']:.2f} s")  # fmt: skip
    print(f"    the same ad silent (headline only), right after each: {r['silent_after_last_clip_s']:.2f} s, "
          f"ffmpeg CPU {r['silent_ffmpeg_cpu_s']:.2f} s; sound / silent {r['sound_over_silent']:.3f}")  # fmt: skip


if __name__ == "__main__":
    print_compose_tail(asyncio.run(run_compose_tail_bench(int(sys.argv[1]) if len(sys.argv) > 1 else 3)))

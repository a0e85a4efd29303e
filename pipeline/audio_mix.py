"""The ad's soundtrack: voice lines on the timeline, a music bed ducked under them, mastered.

Four short ffmpeg passes, each a few hundred milliseconds for a 30 s ad:

1. stems — the voice lines placed at their start seconds (one track) and the music bed trimmed
   to the ad, each rendered to float WAV and measured (EBU R128) in the same run;
2. mix — each stem levelled from its measurement (voice to VOICE_LUFS, the bed BED_UNDER_VOICE_DB
   below it), the bed faded and ducked by a sidechain compressor keyed on the voice, summed;
3. master — a gain measured from the mix to land on TARGET_LUFS, a limiter that keeps the peaks
   clear of the true-peak ceiling, AAC-LC 48 kHz stereo, exactly the ad's length;
4. check — the encoded file measured again; one corrective encode when it is off.

Levelling the stems first is what makes the ducking depth predictable: whatever level a TTS
provider or music model delivers, the compressor always sees a voice at VOICE_LUFS.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.atomic_files import replace_durably, scratch_path
from pipeline.errors import ComposeError
from pipeline.ffmpeg import run_ffmpeg

SAMPLE_RATE = 48_000
AUDIO_BITRATE = 128_000  # bits/s of the AAC track: what callers pass to target_bitrate(audio_bps=…)
TARGET_LUFS = -14.0  # short-form platforms normalise to about this
TRUE_PEAK_CEILING = -1.0  # dBTP the master never exceeds
LOUDNESS_TOLERANCE = 0.5  # LU: a master further off than this from TARGET_LUFS is encoded again
# Sample-peak ceiling of the limiter. Inter-sample peaks and the AAC encoder add up to ~1 dB on
# speech (measured); the check pass lowers it further if a file still lands above the ceiling.
LIMITER_CEILING_DB = -2.2
VOICE_LUFS = -16.0
BED_UNDER_VOICE_DB = 9.0  # the bed's level in the gaps, below the voice
BED_ALONE_LUFS = -16.0  # no voice: the bed is the whole soundtrack
# The ducking compressor, keyed on a voice at VOICE_LUFS: speech sits ~12-18 dB over the
# threshold, so a 4:1 ratio pulls the bed down ~10-12 dB while a line is spoken. The release
# bridges the pauses between words so the bed does not pump.
DUCK_THRESHOLD = 0.032  # ≈ −30 dBFS
DUCK_RATIO = 4
DUCK_ATTACK_MS = 15
DUCK_RELEASE_MS = 450
FADE_IN_S = 1.0
FADE_OUT_S = 2.0
SILENT_LUFS = -60.0  # a stem quieter than this is treated as silence, never amplified
MAX_STEM_GAIN_DB = 30.0


@dataclass(frozen=True)
class Loudness:
    integrated: float  # LUFS; -70 or lower for silence
    true_peak: float  # dBTP; -inf for digital silence


_SUMMARY = re.compile(r"Summary:(.*)", re.DOTALL)
_INTEGRATED = re.compile(r"I:\s*(-?[\d.]+|-inf)\s*LUFS")
_PEAK = re.compile(r"True peak:\s*Peak:\s*(-?[\d.]+|-inf)\s*dBFS")


def parse_ebur128(stderr: str) -> Loudness:
    """Integrated loudness and true peak from the summary `ebur128=peak=true` prints at the end."""
    summaries = _SUMMARY.findall(stderr)
    if not summaries:
        raise ComposeError("ffmpeg printed no loudness summary for the soundtrack.")
    text = summaries[-1]
    i, p = _INTEGRATED.search(text), _PEAK.search(text)
    if i is None:
        raise ComposeError("ffmpeg's loudness summary has no integrated loudness.")
    return Loudness(float(i[1]), float(p[1]) if p else float("-inf"))


# `framelog=quiet` keeps the per-100-ms lines out of stderr; the summary is still printed.
MEASURE = "ebur128=peak=true:framelog=quiet"


async def measure(path: Path, *, timeout: float = 120) -> Loudness:  # noqa: ASYNC109
    """The integrated loudness and true peak of an audio (or video) file's first audio stream."""
    stderr = await run_ffmpeg(
        ["-i", str(path), "-map", "0:a:0", "-filter:a", MEASURE, "-f", "null", "-"], timeout=timeout
    )
    return parse_ebur128(stderr)


def _stereo() -> str:
    return f"aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=stereo"


def _fit_length(duration: float) -> str:
    """Pad with silence and cut, so a stem is exactly `duration` seconds long."""
    return f"apad=whole_dur={duration:.6f},atrim=end={duration:.6f},asetpts=N/SR/TB"


def voice_stem_graph(starts: Sequence[float], duration: float, gains_db: Sequence[float] | None = None) -> str:
    """Inputs 0..n-1 (voice lines) levelled by `gains_db`, delayed to their start seconds and
    summed into [out]."""
    parts = []
    for i, start in enumerate(starts):
        delay = max(0, round(start * 1000))
        gain = gains_db[i] if gains_db is not None else 0.0
        parts.append(f"[{i}:a]{_stereo()},volume={gain:.3f}dB,adelay=delays={delay}:all=1[v{i}]")
    labels = "".join(f"[v{i}]" for i in range(len(starts)))
    tail = f"{_fit_length(duration)},{MEASURE}[out]"
    if len(starts) == 1:
        return f"{parts[0].rsplit('[', 1)[0]},{tail}"
    # normalize=0: the lines rarely overlap, and amix must not halve each one's level.
    return ";".join(parts) + f";{labels}amix=inputs={len(starts)}:normalize=0:duration=longest,{tail}"


def bed_stem_graph(duration: float) -> str:
    return f"[0:a]{_stereo()},{_fit_length(duration)},{MEASURE}[out]"


def stem_gain(measured: Loudness, target_lufs: float) -> float | None:
    """dB that bring a stem to `target_lufs`; None when the stem is silence (leave it out)."""
    if measured.integrated <= SILENT_LUFS:
        return None
    return max(-MAX_STEM_GAIN_DB, min(MAX_STEM_GAIN_DB, target_lufs - measured.integrated))


def duck_graph(voice_gain_db: float, bed_gain_db: float, duration: float, *, output: str = "mix") -> str:
    """Input 0 is the voice stem, input 1 the bed stem; [out] is the mix (or the ducked bed alone).

    `output="bed"` renders only the ducked bed through the very same chain: that is how the
    ducking depth is measured.
    """
    duck = (
        f"sidechaincompress=threshold={DUCK_THRESHOLD}:ratio={DUCK_RATIO}:"
        f"attack={DUCK_ATTACK_MS}:release={DUCK_RELEASE_MS}"
    )
    graph = (
        f"[0:a]volume={voice_gain_db:.3f}dB,asplit=2[vo][key];"
        f"[1:a]volume={bed_gain_db:.3f}dB,{_fades(duration)}[bed];"
        f"[bed][key]{duck}[ducked];"
    )
    if output == "bed":
        return graph + f"[vo]anullsink;[ducked]{_fit_length(duration)},{MEASURE}[out]"
    return graph + f"[ducked][vo]amix=inputs=2:normalize=0:duration=first,{MEASURE}[out]"


def _fades(duration: float) -> str:
    fade_in = min(FADE_IN_S, duration / 4)
    fade_out = min(FADE_OUT_S, duration / 3)
    return f"afade=t=in:d={fade_in:.3f},afade=t=out:st={duration - fade_out:.6f}:d={fade_out:.3f}"


def master_chain(gain_db: float, ceiling_db: float, duration: float) -> str:
    # level=disabled: alimiter must not add its own make-up gain after limiting. The compressor
    # and the limiter each hold back a few milliseconds at the end: pad back to the exact length.
    limit = 10 ** (ceiling_db / 20)
    return (
        f"volume={gain_db:.3f}dB,"
        f"alimiter=limit={limit:.5f}:attack=5:release=60:level=disabled,"
        f"{_stereo()},{_fit_length(duration)}"
    )


def aac_args(duration: float) -> list[str]:
    return [
        "-c:a", "aac", "-profile:a", "aac_low", "-b:a", str(AUDIO_BITRATE),
        "-ar", str(SAMPLE_RATE), "-ac", "2", "-t", f"{duration:.6f}",
        "-map_metadata", "-1", "-movflags", "+faststart", "-f", "mp4",
    ]  # fmt: skip


@contextlib.contextmanager
def _work_dir(near: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f".{near.stem}.mix-", dir=near.parent) as d:
        yield Path(d)


async def render_stem(graph: str, inputs: Sequence[Path], dest: Path, *, timeout: float) -> Loudness:  # noqa: ASYNC109
    args: list[str] = []
    for p in inputs:
        args += ["-i", str(p)]
    stderr = await run_ffmpeg(
        [*args, "-filter_complex", graph, "-map", "[out]", "-c:a", "pcm_f32le", "-f", "wav", str(dest)],
        timeout=timeout,
    )
    return parse_ebur128(stderr)


async def mix_soundtrack(
    voice: Sequence[tuple[Path, float]],
    music: Path | None,
    duration: float,
    dest: Path,
    *,
    timeout: float = 300,  # noqa: ASYNC109
) -> Path:
    """Write the ad's soundtrack to `dest` (AAC-LC in MP4, 48 kHz stereo, `duration` s, −14 LUFS).

    `voice` is (file, start second on the ad's timeline) per line; either side may be empty, and
    with neither the track is silence of the right length.
    """
    if duration <= 0:
        raise ValueError(f"duration must be positive (got {duration})")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with scratch_path(dest, ".m4a") as tmp, _work_dir(dest) as work:
        await _mix_into(voice, music, duration, tmp, work, timeout)
        await asyncio.to_thread(replace_durably, tmp, dest)
    return dest


@dataclass(frozen=True)
class Stems:
    """The voice track and the bed, each exactly the ad's length, with the gains that level them.

    A gain is None when that side is absent or silent.
    """

    voice: Path
    bed: Path
    voice_gain: float | None
    bed_gain: float | None


async def render_stems(
    voice: Sequence[tuple[Path, float]],
    music: Path | None,
    duration: float,
    work: Path,
    *,
    timeout: float = 300,  # noqa: ASYNC109
) -> Stems:
    """Voice lines on the timeline and the bed trimmed to the ad, as WAVs in `work`, measured."""
    lines = [(Path(p), max(0.0, float(s))) for p, s in voice if float(s) < duration]
    voice_wav, bed_wav = work / "voice.wav", work / "bed.wav"
    jobs = []
    if lines:
        # Each line levelled on its own: a quiet line next to a loud one must still be heard, and
        # the ducking compressor must see every line at the same level.
        heard = await asyncio.gather(*(measure(p, timeout=timeout) for p, _ in lines))
        gains = [stem_gain(m, VOICE_LUFS) or 0.0 for m in heard]
        graph = voice_stem_graph([s for _, s in lines], duration, gains)
        jobs.append(render_stem(graph, [p for p, _ in lines], voice_wav, timeout=timeout))
    if music is not None:
        jobs.append(render_stem(bed_stem_graph(duration), [Path(music)], bed_wav, timeout=timeout))
    measured = list(await asyncio.gather(*jobs))
    voice_gain = stem_gain(measured.pop(0), VOICE_LUFS) if lines else None
    bed_target = VOICE_LUFS - BED_UNDER_VOICE_DB if voice_gain is not None else BED_ALONE_LUFS
    bed_gain = stem_gain(measured.pop(0), bed_target) if music is not None else None
    return Stems(voice_wav, bed_wav, voice_gain, bed_gain)


async def _mix_into(
    voice: Sequence[tuple[Path, float]],
    music: Path | None,
    duration: float,
    out: Path,
    work: Path,
    timeout: float,  # noqa: ASYNC109
) -> None:
    stems = await render_stems(voice, music, duration, work, timeout=timeout)
    voice_gain, bed_gain = stems.voice_gain, stems.bed_gain
    voice_wav, bed_wav = stems.voice, stems.bed
    if voice_gain is None and bed_gain is None:
        await run_ffmpeg(
            ["-f", "lavfi", "-i", f"anullsrc=r={SAMPLE_RATE}:cl=stereo", *aac_args(duration), str(out)],
            timeout=timeout,
        )
        return

    premix = work / "mix.wav"
    if voice_gain is not None and bed_gain is not None:
        graph = duck_graph(voice_gain, bed_gain, duration)
        inputs = [voice_wav, bed_wav]
    elif voice_gain is not None:
        graph = f"[0:a]volume={voice_gain:.3f}dB,{MEASURE}[out]"
        inputs = [voice_wav]
    else:
        assert bed_gain is not None
        graph = f"[0:a]volume={bed_gain:.3f}dB,{_fades(duration)},{MEASURE}[out]"
        inputs = [bed_wav]
    mixed = await render_stem(graph, inputs, premix, timeout=timeout)
    if mixed.integrated <= SILENT_LUFS:
        gain = 0.0
    else:
        gain = TARGET_LUFS - mixed.integrated
    ceiling = LIMITER_CEILING_DB
    for _ in range(3):
        await run_ffmpeg(
            ["-i", str(premix), "-filter:a", master_chain(gain, ceiling, duration), *aac_args(duration), str(out)],
            timeout=timeout,
        )
        got = await measure(out, timeout=timeout)
        if got.integrated <= SILENT_LUFS:
            return
        off = TARGET_LUFS - got.integrated
        over = got.true_peak - (TRUE_PEAK_CEILING - 0.1)
        if abs(off) <= LOUDNESS_TOLERANCE and over <= 0:
            return
        # Limiting costs loudness and AAC adds peak: correct by what was measured, once or twice.
        gain += off
        if over > 0:
            ceiling -= over + 0.2
    if got.true_peak > TRUE_PEAK_CEILING or abs(TARGET_LUFS - got.integrated) > 1.0:
        raise ComposeError(
            f"The soundtrack could not be mastered to {TARGET_LUFS:g} LUFS under {TRUE_PEAK_CEILING:g} dBTP "
            f"(got {got.integrated:.1f} LUFS, {got.true_peak:.1f} dBTP).",
            hint="The voice and music files are kept: retry the job, or set JANT_MUSIC=none to leave the music out.",
        )

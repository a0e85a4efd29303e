"""The soundtrack and the offline music bed, made by the real bundled ffmpeg and measured.

Voices are synthetic (a harmonic buzz gated into syllables, at deliberately different levels), the
bed is the offline generator's. Loudness and true peak come from ffmpeg's `ebur128=peak=true`;
the ducking depth from the RMS of the ducked bed inside and outside the voice's windows.
"""

from __future__ import annotations

import array
import asyncio
import hashlib
import math
import re
import subprocess
from pathlib import Path

import pytest

from pipeline.audio_mix import (
    TARGET_LUFS,
    TRUE_PEAK_CEILING,
    duck_graph,
    measure,
    render_stem,
    render_stems,
)
from pipeline.composer import Composer
from pipeline.ffmpeg import ffmpeg_exe, run_ffmpeg
from pipeline.moods import MUSIC_STYLES, Mood, mood_preset
from pipeline.providers.base import MusicRequest, StageContext
from pipeline.providers.offline_music import OfflineMusicGenerator, synthesize_bed

AD_S = 14.0
# (start, length) of the two lines on the ad's timeline: a gap between them and after them.
LINES = [(1.0, 3.0), (6.5, 2.5)]


def _voice(dst: Path, seconds: float, f0: float, level: float) -> Path:
    """A voice-like stem: a 22.05 kHz mono harmonic buzz gated into ~4 syllables a second."""
    expr = (
        f"{level}*(sin(2*PI*{f0}*t)+0.5*sin(2*PI*{2 * f0}*t)+0.3*sin(2*PI*{3 * f0}*t)+0.2*sin(2*PI*{5 * f0}*t))"
        f"*pow(0.5+0.5*sin(2*PI*4*t),2)"
    )
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", f"aevalsrc='{expr}':s=22050:d={seconds}", str(dst)],
        check=True,
    )
    return dst


def _pcm(path: Path, start: float = 0.0, end: float | None = None) -> array.array:
    """Mono float samples at 48 kHz of [start, end) of a file."""
    cut = ["-ss", f"{start}"] + (["-to", f"{end}"] if end is not None else [])
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), *cut, "-ac", "1", "-ar", "48000", "-f", "f32le", "-"],
        check=True,
        capture_output=True,
    ).stdout
    samples = array.array("f")
    samples.frombytes(raw)
    return samples


def _rms_db(path: Path, start: float, end: float) -> float:
    x = _pcm(path, start, end)
    power = math.fsum(v * v for v in x) / max(1, len(x))
    return 10 * math.log10(power) if power > 0 else -200.0


def _streams(path: Path) -> tuple[list[str], float]:
    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    streams = re.findall(r"Stream #\d+:\d+.*?: (.*)", err)
    m = re.search(r"Duration: (\d+):(\d+):([\d.]+)", err)
    assert m, err
    return streams, int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("mix")
    loud = _voice(d / "line1.wav", LINES[0][1], 150, 0.5)
    quiet = _voice(d / "line2.wav", LINES[1][1], 210, 0.03)  # ~24 dB quieter: levelling must cope
    bed = asyncio.run(synthesize_bed(MUSIC_STYLES[Mood.ENERGETIC], 3, AD_S, d / "bed.wav"))
    return {"dir": d, "line1": loud, "line2": quiet, "bed": bed}


def _voice_timeline(s: dict[str, Path]) -> list[tuple[Path, float]]:
    return [(s["line1"], LINES[0][0]), (s["line2"], LINES[1][0])]


async def test_two_lines_and_music_are_mastered_to_minus_14_lufs_under_minus_1_dbtp(
    sources: dict[str, Path],
) -> None:
    out = await Composer(720, 1280).mix_audio(_voice_timeline(sources), sources["bed"], AD_S, sources["dir"] / "a.m4a")
    loud = await measure(out)
    assert abs(loud.integrated - TARGET_LUFS) <= 1.0, loud
    assert loud.true_peak <= TRUE_PEAK_CEILING, loud
    streams, duration = _streams(out)
    assert len(streams) == 1 and re.match(r"Audio: aac \(LC\).*48000 Hz, stereo", streams[0]), streams
    assert duration == pytest.approx(AD_S, abs=0.03)
    # Both lines are there, where they were placed: the quiet one was levelled up, not lost.
    in_line2 = _rms_db(out, LINES[1][0] + 0.3, LINES[1][0] + LINES[1][1] - 0.3)
    in_line1 = _rms_db(out, LINES[0][0] + 0.3, LINES[0][0] + LINES[0][1] - 0.3)
    assert abs(in_line1 - in_line2) < 4.0, (in_line1, in_line2)


async def test_the_bed_is_ducked_at_least_6_db_while_the_voice_speaks(sources: dict[str, Path]) -> None:
    work = sources["dir"] / "duck"
    work.mkdir(exist_ok=True)
    stems = await render_stems(_voice_timeline(sources), sources["bed"], AD_S, work)
    assert stems.voice_gain is not None and stems.bed_gain is not None
    ducked = work / "ducked-bed.wav"
    await render_stem(
        duck_graph(stems.voice_gain, stems.bed_gain, AD_S, output="bed"), [stems.voice, stems.bed], ducked, timeout=120
    )

    def depth(path: Path) -> float:
        # Inside: the body of each line (past the compressor's attack). Outside: the gaps, from
        # one release after a line ends; clear of the fades at both ends.
        inside = [_rms_db(path, s + 0.4, s + n - 0.2) for s, n in LINES]
        gaps = [(LINES[0][0] + LINES[0][1] + 0.8, LINES[1][0] - 0.1), (LINES[1][0] + LINES[1][1] + 0.8, AD_S - 2.2)]
        outside = [_rms_db(path, a, b) for a, b in gaps]
        return sum(outside) / len(outside) - sum(inside) / len(inside)

    # The bed's own level changes from bar to bar; what ducking adds is the difference.
    natural, measured = depth(stems.bed), depth(ducked)
    assert measured - natural >= 6.0, (measured, natural)


async def test_voice_alone_and_music_alone_are_mastered_and_nothing_is_silence(sources: dict[str, Path]) -> None:
    c, d = Composer(720, 1280), sources["dir"]
    voice_only, music_only, silent = await asyncio.gather(
        c.mix_audio(_voice_timeline(sources), None, AD_S, d / "v.m4a"),
        c.mix_audio([], sources["bed"], AD_S, d / "m.m4a"),
        c.mix_audio([], None, AD_S, d / "s.m4a"),
    )
    for path in (voice_only, music_only):
        loud = await measure(path)
        assert abs(loud.integrated - TARGET_LUFS) <= 1.0 and loud.true_peak <= TRUE_PEAK_CEILING, (path, loud)
    # Voice alone: nothing but silence between the lines.
    assert _rms_db(voice_only, 4.3, 6.2) < -60
    assert (await measure(silent)).integrated <= -70
    for path in (voice_only, music_only, silent):
        streams, duration = _streams(path)
        assert "48000 Hz, stereo" in streams[0] and duration == pytest.approx(AD_S, abs=0.03)


async def test_a_line_starting_after_the_end_is_left_out_and_the_length_holds(sources: dict[str, Path]) -> None:
    out = await Composer(720, 1280).mix_audio(
        [(sources["line1"], 12.0), (sources["line2"], 30.0)], None, AD_S, sources["dir"] / "late.m4a"
    )
    _, duration = _streams(out)
    assert duration == pytest.approx(AD_S, abs=0.03)
    assert _rms_db(out, 0.5, 11.5) < -60 and _rms_db(out, 12.3, 13.0) > -30


# -- the offline bed ------------------------------------------------------------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(_pcm(path).tobytes()).hexdigest()


async def test_offline_beds_differ_per_mood_and_repeat_for_the_same_seed(tmp_path: Path) -> None:
    seconds = 6.0
    beds = {m: await synthesize_bed(MUSIC_STYLES[m], 11, seconds, tmp_path / f"{m.value}.wav") for m in Mood}
    again = await synthesize_bed(MUSIC_STYLES[Mood.TECH], 11, seconds, tmp_path / "tech-again.wav")
    other_seed = await synthesize_bed(MUSIC_STYLES[Mood.TECH], 12, seconds, tmp_path / "tech-12.wav")
    hashes = {m: _sha(p) for m, p in beds.items()}
    assert len(set(hashes.values())) == len(Mood)
    assert _sha(again) == hashes[Mood.TECH]
    assert _sha(other_seed) != hashes[Mood.TECH]
    for m, p in beds.items():
        assert len(_pcm(p)) == round(seconds * 48000), m


async def test_an_offline_bed_is_soft_music_not_a_test_tone(tmp_path: Path) -> None:
    ctx = StageContext(job_id="j", scene_index=-1, stage="music", attempt=1)  # type: ignore[arg-type]
    req = MusicRequest(mood=mood_preset("cinematic"), duration=20.0, dest=tmp_path / "bed.m4a", seed=5)
    result = await OfflineMusicGenerator().compose(req, ctx)
    path = result.path
    streams, duration = _streams(path)
    assert duration == pytest.approx(20.0, abs=0.03) and "stereo" in streams[0]
    loud = await measure(path)
    assert -40 < loud.integrated < -10 and loud.true_peak < -1.0, loud
    # Low-passed: the band above 5 kHz carries next to nothing of the energy.
    top = await run_ffmpeg(
        ["-i", str(path), "-af", "highpass=f=5000:p=2,highpass=f=5000:p=2,ebur128=framelog=quiet", "-f", "null", "-"]
    )
    top_i = float(re.findall(r"I:\s*(-?[\d.]+) LUFS", top)[-1])
    assert top_i < loud.integrated - 25, (top_i, loud.integrated)
    # Faded in and out, and the chords change: the level moves over time, it is not a steady tone.
    assert _rms_db(path, 0.0, 0.1) < _rms_db(path, 1.0, 3.0) - 15
    assert _rms_db(path, 19.8, 20.0) < _rms_db(path, 10.0, 13.0) - 15
    windows = [_rms_db(path, t, t + 0.25) for t in (4.0, 4.25, 4.5, 4.75, 5.0, 5.25, 5.5, 5.75)]
    assert max(windows) - min(windows) > 1.0, windows

"""The ad speaks, end to end: `jant makead` offline (real ffmpeg, the offline voice and music bed)
makes a final.mp4 with one H.264 and one AAC stream, mastered loudness, speech in every scene, each
line ending before its scene's cut — and, with voice or music turned off, says what is missing.

Each ad is made once per session (tests/conftest.py: first_ad, voice_only_ad, music_only_ad,
silent_ad, french_ad) and shared by the assertions on it; the spoken one is a new user's first ad.
The music-only and silent ones are the sample brand kit's two ads of tests/test_cli_brand.py (JANT_VOICE=none;
the second kit says music = "none"; JANT_MUSIC=none is the voice-only ad's).
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from bot.cli import main as cli_main
from pipeline.ffmpeg import ffmpeg_exe
from pipeline.providers.offline_voice import piper_installed
from pipeline.soundtrack import LINE_LEAD_S
from tests.made_ads import AD_TIMEOUT_S, SPOKEN_PRODUCT, MadeAd

needs_voice = pytest.mark.skipif(not piper_installed(), reason="the offline voice (jant[voice]) is not installed")


def _ffmpeg(*args: str) -> str:
    done = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostats", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def streams(path: Path) -> list[tuple[str, str]]:
    """(kind, codec) of each stream in the file (ffmpeg's input listing, before its own output's)."""
    listing = _ffmpeg("-i", str(path), "-f", "null", "-").split("Stream mapping:")[0]
    return re.findall(r"Stream #0:\d+.*?: (Video|Audio): (\w+)", listing)


def loudness(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) as ffmpeg's ebur128 measures them."""
    out = _ffmpeg("-i", str(path), "-map", "0:a", "-af", "ebur128=peak=true", "-f", "null", "-")
    summary = out[out.rindex("Summary:") :]
    integrated = float(re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary).group(1))  # type: ignore[union-attr]
    peak = re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary).group(1)  # type: ignore[union-attr]
    return integrated, float(peak)


def mean_volume(path: Path, start: float, end: float) -> float:
    """Mean level (dBFS) of the audio between `start` and `end` s; about −91 for digital silence."""
    out = _ffmpeg("-i", str(path), "-map", "0:a", "-af",
                  f"atrim={start:.3f}:{end:.3f},volumedetect", "-f", "null", "-")  # fmt: skip
    found = re.search(r"mean_volume: (-?[\d.]+|-inf) dB", out)
    return -200.0 if found is None or found.group(1) == "-inf" else float(found.group(1))


def duration_s(path: Path) -> float:
    found = re.search(r"Duration: (\d+):(\d+):([\d.]+)", _ffmpeg("-i", str(path), "-f", "null", "-"))
    assert found is not None
    h, m, s = found.groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


@needs_voice
@pytest.mark.timeout(AD_TIMEOUT_S)
def test_the_offline_ad_has_one_video_and_one_aac_stream_30_s_at_minus_14_lufs(first_ad: MadeAd) -> None:
    assert streams(first_ad.final) == [("Video", "h264"), ("Audio", "aac")]
    assert 29.0 <= duration_s(first_ad.final) <= 31.0
    integrated, peak = loudness(first_ad.final)
    assert abs(integrated - -14.0) <= 1.0, integrated
    assert peak <= -1.0, peak
    assert first_ad.notes == []  # nothing is missing
    assert len(first_ad.voices()) == len(first_ad.timing["durations"])
    assert all(v["status"] == "done" and v["duration"] > 0.5 for v in first_ad.voices().values())


@needs_voice
@pytest.mark.timeout(AD_TIMEOUT_S)
def test_each_line_ends_before_its_scene_does(first_ad: MadeAd) -> None:
    timing = first_ad.timing
    assert 29.0 <= sum(timing["durations"]) <= 31.0
    for index, voice in first_ad.voices().items():
        start, end = first_ad.scene_window(index)
        spoken_until = start + LINE_LEAD_S + voice["duration"] / timing["speeds"][index - 1]
        assert spoken_until < end, (index, spoken_until, end)
        # Word timings are stored with the stage, so a restarted job draws the same captions.
        words = json.loads(voice["words_json"])
        assert words and words[-1][2] <= voice["duration"] + 0.01


def highlighted_pixels(video: Path, at: float, dest: Path) -> int:
    """Karaoke-yellow pixels in the captions' band of the frame at `at` s (above the preview banner)."""
    _ffmpeg("-ss", f"{at:.3f}", "-i", str(video), "-frames:v", "1", "-y", str(dest))
    with Image.open(dest) as frame:
        rgb = frame.convert("RGB")
        w, h = rgb.size
        band = rgb.crop((0, int(h * 0.45), w, int(h * 0.88)))
        red, green, blue = (channel.tobytes() for channel in band.split())
        return sum(1 for r, g, b in zip(red, green, blue, strict=True) if r > 200 and g > 150 and b < 90)


@needs_voice
@pytest.mark.timeout(AD_TIMEOUT_S)
def test_the_spoken_word_is_highlighted_when_it_is_said(first_ad: MadeAd, tmp_path: Path) -> None:
    index = 3
    voice = first_ad.voices()[index]
    start, _ = first_ad.scene_window(index)
    word, begins, ends = json.loads(voice["words_json"])[1]
    speed = first_ad.timing["speeds"][index - 1]
    said_at = start + LINE_LEAD_S + (begins + ends) / 2 / speed
    lit = highlighted_pixels(first_ad.final, said_at, tmp_path / "said.png")
    before = highlighted_pixels(first_ad.final, start + 0.04, tmp_path / "before.png")
    assert lit > 500 and before < lit / 10, (word, lit, before)


@needs_voice
@pytest.mark.timeout(AD_TIMEOUT_S)
def test_without_music_every_scene_window_carries_the_voice_and_the_cuts_are_quiet(voice_only_ad: MadeAd) -> None:
    final = voice_only_ad.final
    assert streams(final) == [("Video", "h264"), ("Audio", "aac")]
    assert any("no music" in n and "JANT_MUSIC=none" in n for n in voice_only_ad.notes), voice_only_ad.notes
    for index, voice in voice_only_ad.voices().items():
        start, end = voice_only_ad.scene_window(index)
        said = start + LINE_LEAD_S + voice["duration"] / voice_only_ad.timing["speeds"][index - 1]
        speaking = mean_volume(final, start + LINE_LEAD_S, said)
        # Just before the cut the line is over: the voice alone leaves (near) silence there.
        before_cut = mean_volume(final, end - 0.12, end - 0.02)
        assert speaking > -35.0, (index, speaking)
        assert before_cut < speaking - 20.0, (index, speaking, before_cut)


@pytest.mark.timeout(AD_TIMEOUT_S)
def test_voice_none_makes_an_ad_with_music_alone(music_only_ad: MadeAd) -> None:
    assert music_only_ad.voices() == {}
    assert streams(music_only_ad.final) == [("Video", "h264"), ("Audio", "aac")]
    integrated, peak = loudness(music_only_ad.final)
    assert abs(integrated - -14.0) <= 1.0 and peak <= -1.0, (integrated, peak)
    assert any("no voiceover" in n and "JANT_VOICE=none" in n for n in music_only_ad.notes), music_only_ad.notes
    assert "no voiceover" in music_only_ad.result.stdout  # the CLI says it too


@pytest.mark.timeout(AD_TIMEOUT_S)
def test_voice_and_music_none_make_a_silent_track_and_say_so(silent_ad: MadeAd) -> None:
    assert streams(silent_ad.final) == [("Video", "h264"), ("Audio", "aac")]
    assert mean_volume(silent_ad.final, 0.0, 29.0) < -80.0
    notes = " ".join(silent_ad.notes)
    assert "no voiceover" in notes and "no music" in notes and "silent" in notes, notes
    assert "silent" in silent_ad.result.stdout


@needs_voice
@pytest.mark.timeout(AD_TIMEOUT_S)
def test_a_french_ad_with_the_offline_voice_says_so_once_and_keeps_its_music(french_ad: MadeAd) -> None:
    voices = french_ad.voices()
    assert voices and all(v["status"] == "failed" for v in voices.values())
    assert all(v["attempt"] == 1 for v in voices.values())  # "does not speak French" is not retried
    speaking = [n for n in french_ad.notes if "does not speak French" in n]
    assert len(speaking) == 1, french_ad.notes
    assert "captions and music" in speaking[0]
    assert streams(french_ad.final) == [("Video", "h264"), ("Audio", "aac")]
    assert mean_volume(french_ad.final, 2.0, 28.0) > -40.0  # the music bed plays


@needs_voice
def test_an_unknown_voice_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"  # JANT_DATA_DIR (conftest)
    monkeypatch.setenv("JANT_OFFLINE", "1")
    # The CLI's entry point in this process (what `jant` runs), without an interpreter start.
    code = cli_main(["makead", SPOKEN_PRODUCT, "--voice", "Wise_Woman", "--yes"])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "--voice: 'Wise_Woman' is not one of the voices of offline-piper" in err
    assert "en_US-joe-medium" in err
    with sqlite3.connect(data / "jant.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone() == (0,)
    with pytest.raises(SystemExit) as exited:  # argparse's own refusal exits
        cli_main(["makead", SPOKEN_PRODUCT, "--voice", "x", "--no-voice", "--yes"])
    assert exited.value.code == 2 and "not allowed with argument" in capsys.readouterr().err

"""A voice line's length, read from its file's headers, is what ffmpeg plays when it decodes it.

The files are real: what the emulators answer (MiniMax's and the speech server's WAV, MP3, FLAC,
Opus; Stable Audio's MP3) and what ffmpeg's own muxers write in the awkward cases (a streamed WAV,
MP3 without a Xing frame, MPEG-2 and layer II, Vorbis). The reference is ffmpeg decoding every
sample (`decoded_duration`), whose `time=` is cut to the centisecond: a header is right when it
reads the same or up to 10 ms more.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from pipeline.errors import ProviderError
from pipeline.providers import audio_length
from pipeline.providers.audio_length import decoded_duration, header_duration, measured_duration
from tests.emulators.fake_replicate import music_mp3
from tests.emulators.media import ffmpeg_exe
from tests.emulators.speech_audio import speech_bytes

# (seconds, sample rate, channels): MiniMax's 32 kHz mono, the speech server's 24 kHz, stereo, 16 kHz.
VOICES = [(3.37, 32000, 1), (7.1, 24000, 1), (1.05, 48000, 2), (12.9, 16000, 1)]
OPUS_RATES = {48000, 24000, 16000, 12000, 8000}


def assert_plays_as_decoded(header: float | None, decoded: float) -> None:
    assert header is not None, "the header should say how long the file plays"
    assert 0 <= header - decoded < 0.0101, (header, decoded)


@pytest.mark.parametrize("fmt", ["wav", "mp3", "flac", "opus"])
@pytest.mark.parametrize(("seconds", "rate", "channels"), VOICES)
async def test_an_emulated_voice_reads_as_long_as_ffmpeg_plays_it(
    tmp_path: Path, fmt: str, seconds: float, rate: int, channels: int
) -> None:
    if fmt == "opus" and rate not in OPUS_RATES:
        pytest.skip("Opus has no such sample rate")
    path = tmp_path / f"voice.{fmt}"
    path.write_bytes(speech_bytes(seconds, fmt, rate, channels))
    header = header_duration(path)
    assert_plays_as_decoded(header, await decoded_duration(path))
    assert header == pytest.approx(seconds, abs=0.001)


async def test_a_streamed_music_bed_mp3_reads_frame_by_frame(tmp_path: Path) -> None:
    path = tmp_path / "music.mp3"
    path.write_bytes(await music_mp3(30, 5))  # piped: no Xing frame, so every frame is counted
    header = header_duration(path)
    assert_plays_as_decoded(header, await decoded_duration(path))
    assert header is not None and 30.0 <= header < 30.0 + 2 * 1152 / 44100


def ffmpeg_file(path: Path, *args: str, pipe: bool = False) -> Path:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args]
    if pipe:  # a muxer that cannot seek back leaves the length out of the header
        path.write_bytes(subprocess.run([*cmd, "-"], check=True, capture_output=True).stdout)
    else:
        subprocess.run([*cmd, str(path)], check=True, capture_output=True)
    return path


def tone(seconds: float, rate: int) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency=300:sample_rate={rate}:duration={seconds}"]


@pytest.mark.parametrize(
    ("name", "args", "pipe", "seconds"),
    [
        ("streamed.wav", [*tone(2.345, 24000), "-f", "wav"], True, 2.345),
        ("float.wav", [*tone(1.7, 48000), "-c:a", "pcm_f32le", "-ac", "2"], False, 1.7),
        ("vbr.mp3", [*tone(5.5, 44100), "-c:a", "libmp3lame", "-q:a", "4"], False, 5.5),
        ("mpeg2.mp3", [*tone(3.3, 16000), "-c:a", "libmp3lame", "-b:a", "32k"], False, 3.3),
        # No Xing/LAME frame: every frame's samples play, the encoder's delay and padding too.
        ("no-xing.mp3", [*tone(4.2, 44100), "-c:a", "libmp3lame", "-b:a", "128k", "-write_xing", "0"], False, None),
        ("layer2.mp2", [*tone(2.2, 48000), "-c:a", "mp2", "-f", "mp2"], False, None),
        ("vorbis.ogg", [*tone(2.2, 44100), "-c:a", "libvorbis"], False, 2.2),
    ],
)  # fmt: skip
async def test_other_writers_headers_read_as_long_as_ffmpeg_plays_them(
    tmp_path: Path, name: str, args: list[str], pipe: bool, seconds: float | None
) -> None:
    path = ffmpeg_file(tmp_path / name, *args, pipe=pipe)
    header = header_duration(path)
    assert_plays_as_decoded(header, await decoded_duration(path))
    if seconds is not None:
        assert header == pytest.approx(seconds, abs=0.001)


def test_a_wav_header_that_promises_more_than_the_file_holds_reads_the_file(tmp_path: Path) -> None:
    data = bytearray(speech_bytes(2.0, "wav", 32000, 1))
    at = data.index(b"data")
    struct.pack_into("<I", data, at + 4, 10 * 32000 * 2)  # claims 10 s
    cut = tmp_path / "cut.wav"
    cut.write_bytes(bytes(data[: at + 8 + 32000 * 2]))  # holds 1 s
    assert header_duration(cut) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("name", "args", "pipe"),
    [
        ("voice.aac", [*tone(3.0, 24000), "-c:a", "aac", "-f", "adts"], False),  # no length anywhere
        ("adpcm.wav", [*tone(1.7, 22050), "-c:a", "adpcm_ima_wav"], False),  # bytes are not frames
        ("streamed.flac", [*tone(2.3, 24000), "-f", "flac"], True),  # STREAMINFO says 0 samples
    ],
)
async def test_what_the_headers_cannot_say_is_decoded(tmp_path: Path, name: str, args: list[str], pipe: bool) -> None:
    path = ffmpeg_file(tmp_path / name, *args, pipe=pipe)
    assert header_duration(path) is None
    assert await measured_duration(path) == await decoded_duration(path) > 1


async def test_a_readable_header_runs_no_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_ffmpeg(*args: object, **kwargs: object) -> str:
        raise AssertionError("ffmpeg ran for a file whose header says its length")

    path = tmp_path / "voice.wav"
    path.write_bytes(speech_bytes(3.37, "wav", 32000, 1))
    monkeypatch.setattr(audio_length, "run_ffmpeg", no_ffmpeg)
    assert await measured_duration(path) == 3.37


async def test_a_file_that_is_not_audio_is_refused_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "voice.wav"
    path.write_bytes(b"<html>Service Unavailable</html>" * 40)
    assert header_duration(path) is None
    with pytest.raises(ProviderError, match="not playable audio") as caught:
        await measured_duration(path)
    assert caught.value.retryable is False

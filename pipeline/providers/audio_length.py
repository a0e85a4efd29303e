"""How long an audio file plays: read from its headers, decoded by ffmpeg only when they cannot say.

A voice line's length sets its scene's timing and its captions, so it must be what a decoder plays,
not an estimate. The headers of the formats voices arrive in say exactly that (`header_duration`):
WAV (its data size over its frame size; a streamed WAV whose header has no size: the file's),
FLAC (STREAMINFO's sample count), Ogg Vorbis/Opus (the last page's granule position, less Opus's
pre-skip) and MP3 (LAME's Xing/Info frame count less the encoder delay and padding it records —
what ffmpeg trims too; a VBRI frame count; or, with neither, every frame header walked). Reading
them takes 0.1–2 ms; the ffmpeg process this replaced took 15–60 ms per line, 300 of them at once
when fifty ads are approved together, on the cores the seeds were being noticed on.

Anything else (AAC, a WAV in a compressed codec without a sample count, a header that contradicts
the file) is decoded to the null muxer, which counts every sample (there is no ffprobe).
"""

from __future__ import annotations

import asyncio
import os
import re
import struct
from pathlib import Path
from typing import BinaryIO

from pipeline.errors import ProviderError
from pipeline.ffmpeg import FfmpegError, run_ffmpeg

_TIME = re.compile(r"time=\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")

# WAV codecs whose size is a fixed number of bytes per frame: PCM, IEEE float, A-law, µ-law, and
# WAVE_FORMAT_EXTENSIBLE (checked for one of those in its sub-format).
_WAV_FIXED_FRAME_CODECS = {0x0001, 0x0003, 0x0006, 0x0007}
_WAV_EXTENSIBLE = 0xFFFE
_WAV_UNKNOWN_SIZES = {0, 0xFFFFFFFF}  # a header written before the length was known (a stream)

# MP3 frame header tables: (version bits) → MPEG version; bitrates in kbit/s by version and layer.
_MPEG_VERSIONS = {0b00: 2.5, 0b10: 2.0, 0b11: 1.0}
_SAMPLE_RATES = {1.0: (44100, 48000, 32000), 2.0: (22050, 24000, 16000), 2.5: (11025, 12000, 8000)}
_BITRATES = {
    (1.0, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (1.0, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (1.0, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2.0, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2.0, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_BITRATES[(2.0, 3)] = _BITRATES[(2.0, 2)]
_MP3_MAX_BYTES = 64 * 2**20  # walking frame headers of anything bigger is the decoder's job


def _seconds(match: re.Match[str]) -> float:
    return int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])


async def measured_duration(path: str | os.PathLike[str]) -> float:
    """Seconds of audio in the file's first audio stream; ProviderError if it holds none."""
    seconds = await asyncio.to_thread(header_duration, Path(path))
    if seconds is not None:
        return round(seconds, 3)
    return await decoded_duration(path)


async def decoded_duration(path: str | os.PathLike[str]) -> float:
    """The same, by decoding every sample with ffmpeg (the reference, and the fallback)."""
    try:
        stderr = await run_ffmpeg(["-i", os.fspath(path), "-map", "0:a:0", "-f", "null", "-"], timeout=60)
    except FfmpegError as exc:
        raise ProviderError(f"The voice file is not playable audio: {exc}", retryable=False) from exc
    found = list(_TIME.finditer(stderr))
    if not found:
        raise ProviderError("The voice file holds no audio.", retryable=False)
    return round(_seconds(found[-1]), 3)


def header_duration(path: Path) -> float | None:
    """Seconds of audio read from the file's headers, or None when they cannot say it exactly."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
            f.seek(0)
            size = path.stat().st_size
            if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
                return _wav(f.read(min(size, 1 << 16)), size)
            if head[:4] == b"fLaC":
                return _flac(f.read(64))
            if head[:4] == b"OggS":
                return _ogg(f, size)
            if size <= _MP3_MAX_BYTES:
                return _mp3(f.read())
    except (OSError, struct.error, IndexError, ValueError, ZeroDivisionError):
        return None  # a header that does not parse: the decoder decides
    return None


def _wav(data: bytes, file_size: int) -> float | None:
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        chunk, length = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk == b"fmt ":
            fmt = data[body : body + length]
        elif chunk == b"data":
            if fmt is None or len(fmt) < 16:
                return None
            codec, _channels, rate, _byte_rate, block_align = struct.unpack_from("<HHIIH", fmt)
            if codec == _WAV_EXTENSIBLE and len(fmt) >= 26:
                codec = struct.unpack_from("<H", fmt, 24)[0]  # the sub-format GUID's first two bytes
            if codec not in _WAV_FIXED_FRAME_CODECS or not rate or not block_align:
                return None
            available = file_size - body
            if length in _WAV_UNKNOWN_SIZES or length > available:
                length = available  # streamed (size unknown when the header went out) or cut short
            return (length // block_align) / rate
        pos = body + length + (length & 1)  # chunks are word-aligned
    return None


def _flac(data: bytes) -> float | None:
    # "fLaC", then STREAMINFO (always the first metadata block): 4-byte block header, then
    # min/max block size (2+2), min/max frame size (3+3), then 20 bits rate, 3 channels, 5 bps, 36 samples.
    if len(data) < 8 + 18 or data[4] & 0x7F != 0:
        return None
    bits = int.from_bytes(data[18:26], "big")
    rate = bits >> 44
    samples = bits & ((1 << 36) - 1)
    if not rate or not samples:  # 0 samples: "unknown" (a stream written without seeking back)
        return None
    return samples / rate


def _ogg(f: BinaryIO, size: int) -> float | None:
    first = f.read(4096)
    segments = first[26]
    packet = first[27 + segments :]
    if packet.startswith(b"\x01vorbis"):
        rate, pre_skip = struct.unpack_from("<I", packet, 12)[0], 0
    elif packet.startswith(b"OpusHead"):
        rate, pre_skip = 48000, struct.unpack_from("<H", packet, 10)[0]  # Opus granules count 48 kHz
    else:
        return None  # FLAC or Speex in Ogg: the decoder
    serial = first[14:18]
    f.seek(max(0, size - 65536))
    tail = f.read()
    at = tail.rfind(b"OggS")
    while at >= 0:  # the last page of this stream with a granule position
        granule = struct.unpack_from("<q", tail, at + 6)[0]
        if tail[at + 14 : at + 18] == serial and granule >= 0:
            return max(0, granule - pre_skip) / rate if rate else None
        at = tail.rfind(b"OggS", 0, at)
    return None


def _mp3(data: bytes) -> float | None:
    pos = 0
    if data[:3] == b"ID3":  # ID3v2: a 10-byte header and a syncsafe size (+10 with a footer)
        tag = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]
        pos = 10 + tag + (10 if data[5] & 0x10 else 0)
    end = len(data) - (128 if data[-128:-125] == b"TAG" else 0)
    # The first frame right where the tags end, and a second one where it says it ends: a sync
    # word found further in could be inside anything (AAC, a picture) and is the decoder's to judge.
    start, header = pos, _parse_header(data, pos)
    if header is None or (start + header[3] + 4 <= end and _parse_header(data, start + header[3]) is None):
        return None
    version, layer, rate, _length, samples_per_frame, mono = header
    # The Xing/Info frame sits where the first frame's audio would, after its side information.
    side_info = (17 if mono else 32) if version == 1.0 else (9 if mono else 17)
    xing = start + 4 + side_info
    marker = data[xing : xing + 4]
    if layer == 3 and marker in (b"Xing", b"Info"):
        flags = struct.unpack_from(">I", data, xing + 4)[0]
        if flags & 0x1:
            frames = struct.unpack_from(">I", data, xing + 8)[0]
            lame = xing + 8 + 4 * bool(flags & 0x1) + 4 * bool(flags & 0x2) + 100 * bool(flags & 0x4)
            lame += 4 * bool(flags & 0x8)
            delay = padding = 0
            if data[lame : lame + 4] in (b"LAME", b"Lavc", b"Lavf"):  # LAME's tag; ffmpeg writes it too
                gap = int.from_bytes(data[lame + 21 : lame + 24], "big")
                delay, padding = gap >> 12, gap & 0xFFF
            return max(0, frames * samples_per_frame - delay - padding) / rate
    vbri = start + 4 + 32
    if data[vbri : vbri + 4] == b"VBRI":
        frames = struct.unpack_from(">I", data, vbri + 14)[0]
        return frames * samples_per_frame / rate
    # Neither header (plain CBR): count the frames, each one's length from its own header.
    frames, at = 0, start
    while at + 4 <= end:
        found = _parse_header(data, at)
        if found is None or found[3] <= 4:
            break
        frames, at = frames + 1, at + found[3]
    if frames == 0 or at < end - 4:  # stopped inside the stream: not something to trust
        return None
    return frames * samples_per_frame / rate


Mp3Header = tuple[float, int, int, int, int, bool]  # version, layer, rate, frame length, samples, mono


def _parse_header(data: bytes, at: int) -> Mp3Header | None:
    if at + 4 > len(data) or data[at] != 0xFF or data[at + 1] & 0xE0 != 0xE0:
        return None
    b1, b2, b3 = data[at + 1], data[at + 2], data[at + 3]
    version = _MPEG_VERSIONS.get((b1 >> 3) & 0b11)
    layer = 4 - ((b1 >> 1) & 0b11)
    bitrate_index, rate_index = b2 >> 4, (b2 >> 2) & 0b11
    if version is None or layer == 4 or bitrate_index in (0, 15) or rate_index == 3:
        return None  # reserved values, or free format (no length in the header)
    rate = _SAMPLE_RATES[version][rate_index]
    bitrate = _BITRATES[(1.0 if version == 1.0 else 2.0, layer)][bitrate_index] * 1000
    padding = (b2 >> 1) & 1
    if layer == 1:
        samples, length = 384, (12 * bitrate // rate + padding) * 4
    else:
        samples = 576 if (layer == 3 and version != 1.0) else 1152
        length = samples // 8 * bitrate // rate + padding
    return version, layer, rate, length, samples, (b3 >> 6) == 0b11

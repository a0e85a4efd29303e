"""How long an audio file really plays, measured by decoding it (ffmpeg; there is no ffprobe).

A header's Duration is an estimate for MP3 and absent for raw streams; decoding to the null muxer
counts every sample, and ffmpeg prints the final `time=` even with -nostats.
"""

from __future__ import annotations

import os
import re

from pipeline.errors import ProviderError
from pipeline.ffmpeg import FfmpegError, run_ffmpeg

_TIME = re.compile(r"time=\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")


def _seconds(match: re.Match[str]) -> float:
    return int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])


async def measured_duration(path: str | os.PathLike[str]) -> float:
    """Seconds of audio in the file's first audio stream; ProviderError if it holds none."""
    try:
        stderr = await run_ffmpeg(["-i", os.fspath(path), "-map", "0:a:0", "-f", "null", "-"], timeout=60)
    except FfmpegError as exc:
        raise ProviderError(f"The voice file is not playable audio: {exc}", retryable=False) from exc
    found = list(_TIME.finditer(stderr))
    if not found:
        raise ProviderError("The voice file holds no audio.", retryable=False)
    return round(_seconds(found[-1]), 3)

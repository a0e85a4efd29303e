"""Real audio bytes standing in for speech, for the TTS emulators (Replicate's MiniMax, OpenAI's speech).

A voice-like signal — a low tone under pink noise with a syllable-rate tremolo — made by the ffmpeg
binary imageio-ffmpeg ships, lasting in proportion to the text the way speech does (about 15
characters a second at speed 1), in the container the caller asked for.
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
from pathlib import Path

from tests.emulators.media import ffmpeg_exe

__all__ = ["CHARS_PER_SECOND", "speech_bytes", "speech_seconds"]

CHARS_PER_SECOND = 15.0
_CODECS = {
    "wav": ["-c:a", "pcm_s16le", "-f", "wav"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"],
    "flac": ["-c:a", "flac", "-f", "flac"],
    "pcm": ["-c:a", "pcm_s16le", "-f", "s16le"],
    "aac": ["-c:a", "aac", "-b:a", "64k", "-f", "adts"],
    "opus": ["-c:a", "libopus", "-b:a", "32k", "-f", "ogg"],
}


def speech_seconds(text: str, speed: float = 1.0) -> float:
    """How long the emulated voice speaks `text`: 0.4 s of breath plus 15 characters a second."""
    return round(0.4 + len(text.strip()) / CHARS_PER_SECOND / max(0.1, speed), 2)


@functools.lru_cache(maxsize=64)
def speech_bytes(seconds: float, fmt: str = "wav", sample_rate: int = 32000, channels: int = 1) -> bytes:
    """`seconds` of voice-like audio encoded as `fmt` (wav, mp3, flac, pcm, aac, opus)."""
    if fmt not in _CODECS:
        raise ValueError(f"unknown audio format {fmt!r}")
    src = (
        f"sine=frequency=170:sample_rate={sample_rate}:duration={seconds}[t];"
        f"anoisesrc=color=pink:amplitude=0.08:sample_rate={sample_rate}:duration={seconds}:seed=7[n];"
        "[t][n]amix=inputs=2:duration=first:normalize=0,tremolo=f=4:d=0.8,volume=0.6[a]"
    )
    # A seekable file, not a pipe: WAV and FLAC write their real lengths into the header at the end.
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"speech.{fmt}"
        args = [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-filter_complex", src, "-map", "[a]",
            "-ac", str(channels), "-ar", str(sample_rate), *_CODECS[fmt], str(out),
        ]  # fmt: skip
        subprocess.run(args, check=True, capture_output=True, timeout=60)
        return out.read_bytes()

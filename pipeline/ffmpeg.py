"""Running the bundled ffmpeg without blocking the event loop, and reading what it made.

imageio-ffmpeg ships a static ffmpeg but no ffprobe, so `probe` parses the stream banner that
`ffmpeg -i` prints, and counts frames exactly by stream-copying into the null muxer (no decode).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from pipeline.errors import ComposeError

STDERR_TAIL_LINES = 12
# How much lower a background ffmpeg runs (nice 10: it gets about a tenth of a core that a normal
# process also wants), e.g. cutting the other formats while the ad's own scenes are cut.
BACKGROUND_NICENESS = 10

ProgressCallback = Callable[[float], Awaitable[None]]


class FfmpegError(ComposeError):
    """ffmpeg exited non-zero, timed out, or could not be started."""

    def __init__(self, message: str, *, returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary (imageio-ffmpeg's, or IMAGEIO_FFMPEG_EXE when set)."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise FfmpegError("ffmpeg is not available: the imageio-ffmpeg package is missing.") from exc
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise FfmpegError(f"ffmpeg is not available: {exc}") from exc


def _tail(stderr: str, lines: int = STDERR_TAIL_LINES) -> str:
    # Progress lines end in \r; keep only what a person would read in a terminal.
    kept = [ln.rsplit("\r", 1)[-1].rstrip() for ln in stderr.split("\n")]
    return "\n".join([ln for ln in kept if ln][-lines:])[-4000:]


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    # Reap it, even if we are being cancelled: no zombies, no stray encoder eating both cores.
    with contextlib.suppress(Exception):
        await asyncio.shield(proc.wait())


# A `timeout` here is the deadline after which the ffmpeg *process* is killed, not just a
# cancellation scope around an await, hence the ASYNC109 exemptions below.
async def _exec(
    args: list[str],
    *,
    timeout: float | None,  # noqa: ASYNC109
    progress: ProgressCallback | None = None,
    duration_s: float | None = None,
    stdout: list[bytes] | None = None,
    env: Mapping[str, str] | None = None,
    background: bool = False,
) -> tuple[int, str]:
    """Run ffmpeg with `args` (already complete but for the binary); return (exit code, stderr).

    Standard output goes to `stdout` when a list is given, else to the progress parser or nowhere.
    `env` adds to (or overrides) this process's environment for ffmpeg. `background`: the process
    runs at a lower CPU priority (BACKGROUND_NICENESS), so work someone waits for goes first.
    """
    cmd = [ffmpeg_exe(), *args]
    if progress is not None:
        cmd[1:1] = ["-progress", "pipe:1"]
    want_stdout = progress is not None or stdout is not None
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if want_stdout else asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **env} if env else None,
        )
    except OSError as exc:
        raise FfmpegError(f"could not start ffmpeg ({cmd[0]}): {exc}") from exc
    if background:
        # After the start rather than in preexec_fn, which is unsafe with the threads asyncio.to_thread
        # runs: the first milliseconds at normal priority do not matter.
        with contextlib.suppress(OSError, AttributeError):  # AttributeError: no setpriority (Windows)
            os.setpriority(os.PRIO_PROCESS, proc.pid, BACKGROUND_NICENESS)

    async def read_stderr() -> bytes:
        assert proc.stderr is not None
        return await proc.stderr.read()

    async def read_stdout() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            if stdout is not None:
                stdout.append(raw)
            if progress is None:
                continue
            line = raw.decode("ascii", "replace").strip()
            if line.startswith("out_time_us=") and duration_s:
                with contextlib.suppress(ValueError):
                    done = int(line.partition("=")[2]) / 1e6
                    await progress(max(0.0, min(1.0, done / duration_s)))
            elif line == "progress=end":
                await progress(1.0)

    async def communicate() -> bytes:
        err_task = asyncio.ensure_future(read_stderr())
        try:
            if want_stdout:
                await read_stdout()
            err = await err_task
        finally:
            err_task.cancel()
        await proc.wait()
        return err

    try:
        async with asyncio.timeout(timeout):
            err = await communicate()
    except TimeoutError:
        await _kill(proc)
        raise FfmpegError(f"ffmpeg took longer than {timeout:g} s and was stopped.") from None
    except BaseException:
        await _kill(proc)
        raise
    assert proc.returncode is not None
    return proc.returncode, err.decode("utf-8", "replace")


async def run_ffmpeg(
    args: list[str],
    *,
    timeout: float | None = 600,  # noqa: ASYNC109
    progress: ProgressCallback | None = None,
    duration_s: float | None = None,
    env: Mapping[str, str] | None = None,
    background: bool = False,
) -> str:
    """Run ffmpeg non-interactively, overwriting outputs; return its stderr.

    `progress`, with the expected output `duration_s`, is awaited with the fraction done (0–1)
    as ffmpeg reports it. Raises FfmpegError (a ComposeError) with the end of stderr on failure;
    the process is killed on timeout or cancellation.
    """
    full = ["-hide_banner", "-nostdin", "-nostats", "-y", *args]
    code, stderr = await _exec(
        full, timeout=timeout, progress=progress, duration_s=duration_s, env=env, background=background
    )
    if code != 0:
        raise FfmpegError(f"ffmpeg failed (exit code {code}):\n{_tail(stderr)}", returncode=code, stderr=stderr)
    return stderr


async def ffmpeg_version(*, timeout: float = 20) -> str:  # noqa: ASYNC109
    """The first line of `ffmpeg -version` (printed on stdout, so run_ffmpeg can't return it)."""
    out: list[bytes] = []
    code, stderr = await _exec(["-hide_banner", "-nostdin", "-version"], timeout=timeout, stdout=out)
    if code != 0:
        raise FfmpegError(f"ffmpeg -version failed:\n{_tail(stderr, 4)}", returncode=code, stderr=stderr)
    text = b"".join(out).decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else ""


@dataclass(frozen=True)
class MediaInfo:
    """The first video stream of a file, as ffmpeg describes it."""

    duration_s: float | None
    width: int | None
    height: int | None
    fps: float | None
    codec: str | None
    pix_fmt: str | None
    frames: int | None = None  # exact count, when probed with count_frames=True
    bitrate: int | None = None  # container bit rate, bits/s
    has_audio: bool = False

    @property
    def aspect(self) -> float | None:
        return self.width / self.height if self.width and self.height else None


_DURATION = re.compile(r"Duration:\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
_BITRATE = re.compile(r"Duration:.*?bitrate:\s*(\d+)\s*kb/s")
_VIDEO = re.compile(r"Stream #\d+:\d+.*?: Video: (.*)")
_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})\b")
_RATE = re.compile(r"^([\d.]+)(k?)\s+(fps|tbr)$")
_FRAME = re.compile(r"frame=\s*(\d+)")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses: `yuv420p(tv, bt709)` stays one part."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def parse_banner(stderr: str) -> MediaInfo:
    """MediaInfo from the text `ffmpeg -i FILE` prints (pure; exposed for tests)."""
    duration = bitrate = None
    if m := _DURATION.search(stderr):
        duration = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
    if m := _BITRATE.search(stderr):
        bitrate = int(m[1]) * 1000
    width = height = None
    fps = codec = pix_fmt = None
    if m := _VIDEO.search(stderr):
        parts = _split_top_level(m[1])
        codec = parts[0].split()[0] if parts and parts[0] else None
        if len(parts) > 1 and (pm := re.match(r"^([a-z0-9_]+)", parts[1])):
            pix_fmt = pm[1]
        rates: dict[str, float] = {}
        for part in parts:
            if (sm := _SIZE.match(part)) and width is None:
                width, height = int(sm[1]), int(sm[2])
            elif rm := _RATE.match(part):
                rates[rm[3]] = float(rm[1]) * (1000 if rm[2] else 1)
        fps = rates.get("fps", rates.get("tbr"))
    has_audio = re.search(r"Stream #\d+:\d+.*?: Audio: ", stderr) is not None
    return MediaInfo(duration, width, height, fps, codec, pix_fmt, None, bitrate, has_audio)


async def probe(
    path: str | os.PathLike[str],
    *,
    count_frames: bool = False,
    timeout: float = 60,  # noqa: ASYNC109
) -> MediaInfo:
    """Describe a media file's first video stream. Raises FfmpegError if ffmpeg can't read it.

    With `count_frames`, the exact number of video frames comes from stream-copying the file into
    the null muxer: one packet per frame for H.264, and no decoding, so it stays cheap.
    """
    p = os.fspath(path)
    if count_frames:
        args = [
            "-hide_banner",
            "-nostdin",
            "-nostats",
            "-i",
            p,
            "-map",
            "0:v:0",
            "-c",
            "copy",
            "-f",
            "null",
            "-",
        ]
    else:
        args = ["-hide_banner", "-nostdin", "-i", p]
    code, stderr = await _exec(args, timeout=timeout)
    info = parse_banner(stderr)
    if info.width is None and info.duration_s is None:
        raise FfmpegError(f"ffmpeg cannot read {p}:\n{_tail(stderr, 4)}", returncode=code, stderr=stderr)
    if count_frames:
        if code != 0:
            raise FfmpegError(f"ffmpeg cannot read {p}:\n{_tail(stderr, 4)}", returncode=code, stderr=stderr)
        frames = [int(x) for x in _FRAME.findall(stderr)]
        info = MediaInfo(**{**info.__dict__, "frames": frames[-1] if frames else None})
    return info


def mp4_top_level_boxes(path: str | os.PathLike[str]) -> list[tuple[str, int, int]]:
    """(type, offset, size) of each top-level ISO-BMFF box, stopping at the first malformed one."""
    boxes: list[tuple[str, int, int]] = []
    with open(path, "rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        offset = 0
        while offset + 8 <= end:
            fh.seek(offset)
            size, kind = struct.unpack(">I4s", fh.read(8))
            if size == 1:  # 64-bit "largesize" follows the type
                raw = fh.read(8)
                if len(raw) < 8:
                    break
                (size,) = struct.unpack(">Q", raw)
            elif size == 0:  # box runs to the end of the file
                size = end - offset
            if size < 8:
                break
            boxes.append((kind.decode("latin-1"), offset, size))
            offset += size
    return boxes


def has_faststart(path: str | os.PathLike[str]) -> bool:
    """True when the MP4's index (moov) comes before its media data (mdat): playable while loading."""
    try:
        kinds = [kind for kind, _, _ in mp4_top_level_boxes(path)]
    except OSError:
        return False
    if "moov" not in kinds:
        return False
    return "mdat" not in kinds or kinds.index("moov") < kinds.index("mdat")


def avc_decoder_config(path: str | os.PathLike[str]) -> bytes | None:
    """The H.264 decoder configuration (the avcC box: profile, level, SPS and PPS) of an MP4.

    Clips joined by stream copy are decoded with the first clip's configuration, so they must all
    carry the same one; None when the file has no moov box or no avcC inside it.
    """
    try:
        moov = next(((o, s) for kind, o, s in mp4_top_level_boxes(path) if kind == "moov"), None)
        if moov is None:
            return None
        with open(path, "rb") as fh:
            fh.seek(moov[0])
            data = fh.read(moov[1])
    except OSError:
        return None
    at = data.find(b"avcC")
    if at < 4:
        return None
    (size,) = struct.unpack(">I", data[at - 4 : at])
    if size < 8 or at - 4 + size > len(data):
        return None
    return data[at + 4 : at - 4 + size]

"""Real media bytes for the emulators and their tests.

Everything here produces or inspects *real* files: PNGs that Pillow and ffmpeg decode, H.264 MP4s
written by the ffmpeg binary that imageio-ffmpeg ships (there is no ffprobe there, so `probe_video`
reads ffmpeg's own stderr).

Public API
    png_bytes(width, height, *, seed=0) -> bytes                  cached, deterministic
    image_size(data) -> (width, height)                           any format Pillow opens
    data_uri(data, mime="image/png") -> str
    decode_data_uri(uri) -> (mime, bytes)
    ffmpeg_exe() -> str
    await mp4_bytes(width, height, frames, fps) -> bytes          H.264/yuv420p, cached per key
    mp4_bytes_sync(width, height, frames, fps) -> bytes
    await probe_video(data) -> VideoInfo(width, height, fps, frames, duration, codec)
    probe_video_sync(data) -> VideoInfo
    has_ftyp(data) -> bool                                        ISO-BMFF `ftyp` box at offset 4
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import os
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from fractions import Fraction

from PIL import Image, ImageDraw

__all__ = [
    "VideoInfo",
    "data_uri",
    "decode_data_uri",
    "ffmpeg_exe",
    "has_ftyp",
    "image_size",
    "mp4_bytes",
    "mp4_bytes_sync",
    "png_bytes",
    "probe_video",
    "probe_video_sync",
]


# ----------------------------------------------------------------------------------------------- images


@functools.lru_cache(maxsize=64)
def png_bytes(width: int, height: int, *, seed: int = 0) -> bytes:
    """A real RGB PNG of exactly width x height: a diagonal gradient with a grid and some circles.

    Deterministic for a given (width, height, seed), so two calls give identical bytes.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"bad image size {width}x{height}")
    # Build the gradient from two 1-D ramps (fast even at 1024x1024).
    hr = Image.linear_gradient("L").resize((width, height))
    vr = Image.linear_gradient("L").rotate(90).resize((width, height))
    shift = (seed * 37) % 256
    blue = Image.new("L", (width, height), shift)
    img = Image.merge("RGB", (hr, vr, blue))
    draw = ImageDraw.Draw(img)
    step = max(8, min(width, height) // 8)
    for x in range(0, width, step):
        draw.line([(x, 0), (x, height)], fill=(255, 255, 255), width=1)
    for y in range(0, height, step):
        draw.line([(0, y), (width, y)], fill=(255, 255, 255), width=1)
    r = max(4, min(width, height) // 6)
    for i in range(3):
        cx = (width * (i + 1)) // 4 + (seed * 13) % max(1, step)
        cy = height // 2 + ((i - 1) * height) // 5
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=(0, 0, 0), width=3)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=1)
    return buf.getvalue()


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of an encoded image; raises PIL.UnidentifiedImageError if it is not one."""
    with Image.open(io.BytesIO(data)) as im:
        im.verify()
        return im.size


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


_DATA_URI = re.compile(r"^data:(?P<mime>[^;,]*)(?P<b64>;base64)?,(?P<payload>.*)$", re.S)


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    m = _DATA_URI.match(uri)
    if not m:
        raise ValueError("not a data: URI")
    payload = m.group("payload")
    if m.group("b64"):
        return m.group("mime") or "application/octet-stream", base64.b64decode(payload)
    from urllib.parse import unquote_to_bytes

    return m.group("mime") or "text/plain", unquote_to_bytes(payload)


# ----------------------------------------------------------------------------------------------- video


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _mp4_cmd(width: int, height: int, frames: int, fps: int, out: str) -> list[str]:
    # testsrc2 draws a moving pattern and a frame counter, so every frame differs (useful when a
    # composer retimes or interpolates clips). libx264 + yuv420p like cog-svd's encode
    # (`ffmpeg -r {fps+1} ... -c:v libx264 -vf fps=...,format=yuv420p`); moov at the end (no faststart),
    # as that command produces.
    return [
        ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={width}x{height}:rate={fps}",
        "-frames:v",
        str(frames),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-pix_fmt",
        "yuv420p",
        "-r",
        str(fps),
        "-f",
        "mp4",
        out,
    ]


def _check_mp4_args(width: int, height: int, frames: int, fps: int) -> None:
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"H.264/yuv420p needs even positive dimensions, got {width}x{height}")
    if frames <= 0 or fps <= 0:
        raise ValueError(f"bad frames/fps {frames}/{fps}")


_mp4_cache: dict[tuple[int, int, int, int], bytes] = {}
_mp4_locks: dict[tuple[int, int, int, int], asyncio.Lock] = {}
_mp4_sync_lock = threading.Lock()


async def mp4_bytes(width: int, height: int, frames: int, fps: int) -> bytes:
    """A real H.264 MP4 (yuv420p) of `frames` frames at `fps`, encoded off the event loop. Cached."""
    _check_mp4_args(width, height, frames, fps)
    key = (width, height, frames, fps)
    if key in _mp4_cache:
        return _mp4_cache[key]
    lock = _mp4_locks.setdefault(key, asyncio.Lock())
    async with lock:
        if key in _mp4_cache:
            return _mp4_cache[key]
        fd, path = tempfile.mkstemp(suffix=".mp4", prefix="fake-svd-")
        os.close(fd)
        try:
            proc = await asyncio.create_subprocess_exec(
                *_mp4_cmd(width, height, frames, fps, path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {err.decode(errors='replace')}")
            with open(path, "rb") as f:  # noqa: ASYNC230 - small local temp file
                data = f.read()
        finally:
            os.unlink(path)
        _mp4_cache[key] = data
        return data


def mp4_bytes_sync(width: int, height: int, frames: int, fps: int) -> bytes:
    """Blocking variant of mp4_bytes (shares its cache)."""
    _check_mp4_args(width, height, frames, fps)
    key = (width, height, frames, fps)
    with _mp4_sync_lock:
        if key in _mp4_cache:
            return _mp4_cache[key]
        fd, path = tempfile.mkstemp(suffix=".mp4", prefix="fake-svd-")
        os.close(fd)
        try:
            subprocess.run(_mp4_cmd(width, height, frames, fps, path), check=True, capture_output=True)
            with open(path, "rb") as f:
                data = f.read()
        finally:
            os.unlink(path)
        _mp4_cache[key] = data
        return data


def has_ftyp(data: bytes) -> bool:
    return len(data) >= 12 and data[4:8] == b"ftyp"


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frames: int
    duration: float
    codec: str


_STREAM = re.compile(r"Stream #\d+:\d+.*?: Video: (?P<codec>\w+).*?, (?P<w>\d{2,5})x(?P<h>\d{2,5})")
_FPS = re.compile(r"(?P<fps>[\d.]+(?:/[\d.]+)?) fps")
_DURATION = re.compile(r"Duration: (?P<h>\d+):(?P<m>\d+):(?P<s>[\d.]+)")
_FRAMES = re.compile(r"frame=\s*(?P<n>\d+)")


def _parse_probe(stderr: str) -> VideoInfo:
    sm = _STREAM.search(stderr)
    if not sm:
        raise ValueError(f"no video stream in ffmpeg output:\n{stderr[-2000:]}")
    line = stderr[sm.start() : stderr.find("\n", sm.start())]
    fm = _FPS.search(line)
    fps = float(Fraction(fm.group("fps"))) if fm else 0.0
    dm = _DURATION.search(stderr)
    duration = int(dm.group("h")) * 3600 + int(dm.group("m")) * 60 + float(dm.group("s")) if dm else 0.0
    counts = _FRAMES.findall(stderr)
    frames = int(counts[-1]) if counts else 0
    return VideoInfo(int(sm.group("w")), int(sm.group("h")), fps, frames, duration, sm.group("codec"))


def _probe_cmd(path: str) -> list[str]:
    # `-c copy -f null -` counts packets (= frames for these streams) without decoding.
    return [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-i",
        path,
        "-map",
        "0:v:0",
        "-c",
        "copy",
        "-f",
        "null",
        "-",
    ]


async def probe_video(data: bytes) -> VideoInfo:
    """Width, height, fps, frame count, duration and codec of an encoded video, via ffmpeg's stderr."""
    fd, path = tempfile.mkstemp(suffix=".mp4", prefix="probe-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        proc = await asyncio.create_subprocess_exec(
            *_probe_cmd(path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
    finally:
        os.unlink(path)
    return _parse_probe(err.decode(errors="replace"))


def probe_video_sync(data: bytes) -> VideoInfo:
    fd, path = tempfile.mkstemp(suffix=".mp4", prefix="probe-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        res = subprocess.run(_probe_cmd(path), capture_output=True)
    finally:
        os.unlink(path)
    return _parse_probe(res.stderr.decode(errors="replace"))

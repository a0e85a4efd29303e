"""Offline clips: animate a seed image with a camera move, shaped exactly like the chosen model's output.

Same frame count (25 for svd-xt, 14 for svd; 81 for Wan, 120 for Kling …), same frame rate (SVD's
`fps + 1`, the others' own) and size as the real model (`pipeline.video_models`), so everything
downstream — retiming or cutting, joining, size fitting — runs the same code offline.
The move follows the scene's beat: push in on the hook, drift down on the intro, pan across
features, pull out on the call to action; calm moods (low motion_bucket_id) move less.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass
from pathlib import Path

from pipeline.atomic_files import replace_durably, temp_beside
from pipeline.errors import ProviderError
from pipeline.ffmpeg import run_ffmpeg
from pipeline.models import Beat
from pipeline.providers.base import ClipRequest, StageContext, StageResult
from pipeline.providers.offline_images import CAMERA_SAFE, offline_band
from pipeline.video_models import VIDEO_MODELS

FRAMES_FOR_LENGTH = {"25_frames_with_svd_xt": 25, "14_frames_with_svd": 14}
# zoompan rounds its crop window to whole input pixels; at 1:1 that shows as a visible shimmer.
# Upscaling the still first makes each step a quarter of an output pixel: smooth, still < 1 s.
UPSCALE = 4
MAX_CANVAS_WIDTH = 2304  # 576 x 4: SVD's clips keep the full upscale


@dataclass(frozen=True)
class CameraMove:
    """Zoom and window position (0 = left/top edge, 1 = right/bottom) at the clip's start and end."""

    name: str
    zoom: tuple[float, float]
    x: tuple[float, float]
    y: tuple[float, float]


def derive_clip_seed(request: ClipRequest) -> int:
    digest = hashlib.sha256(f"{request.scene.index}\x1f{request.scene.description}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFF_FFFF


def camera_move(beat: Beat, scene_index: int, motion_bucket_id: int, seed: int) -> CameraMove:
    """The move for a scene (pure): its kind from the beat, its size from the motion bucket. No move
    leaves more than `CAMERA_SAFE` of any side out of the frame, so the seed's text stays whole."""
    amount = 0.05 + 0.09 * max(1, min(255, motion_bucket_id)) / 255  # extra zoom: 5 %–14 %
    lean = ((seed >> 8) % 21 - 10) / 100  # ±0.10: where the camera settles, varied per scene
    if beat is Beat.HOOK:
        move = CameraMove("push-in", (1.0, 1.0 + amount), (0.5, 0.5 + lean), (0.5, 0.42))
    elif beat is Beat.INTRO:
        move = CameraMove("tilt-down", (1.0 + amount, 1.0 + amount * 0.8), (0.5 + lean, 0.5), (0.0, 0.8))
    elif beat is Beat.CTA:
        move = CameraMove("pull-out", (1.0 + amount, 1.0), (0.5 + lean, 0.5), (0.42, 0.5))
    else:
        left_to_right = (scene_index + seed) % 2 == 0
        xs = (0.0, 1.0) if left_to_right else (1.0, 0.0)
        move = CameraMove("pan-right" if left_to_right else "pan-left", (1.0 + amount, 1.0 + amount), xs, (0.45, 0.55))
    return _kept_in_frame(move)


def _kept_in_frame(move: CameraMove) -> CameraMove:
    """`move` with its window positions pulled in so that it leaves at most `CAMERA_SAFE` of each side
    out. At zoom z the window leaves out 1 - 1/z of the side, that times its position on one side and
    that times one minus it on the other. Every frame's zoom is at most the move's largest and its
    position lies between the two ends: ends held to the bound at the largest zoom hold every frame."""
    cut = 1.0 - 1.0 / max(move.zoom)
    if cut <= CAMERA_SAFE:
        return move
    lo, hi = 1.0 - CAMERA_SAFE / cut, CAMERA_SAFE / cut

    def held(ends: tuple[float, float]) -> tuple[float, float]:
        a, b = (min(hi, max(lo, v)) for v in ends)
        return a, b

    return CameraMove(move.name, move.zoom, held(move.x), held(move.y))


def side_cut(move: CameraMove, t: float) -> tuple[float, float, float, float]:
    """The share of the seed's left, right, top and bottom that `move` leaves out at time t (0..1)."""
    z = move.zoom[0] + (move.zoom[1] - move.zoom[0]) * t
    x = move.x[0] + (move.x[1] - move.x[0]) * t
    y = move.y[0] + (move.y[1] - move.y[0]) * t
    cut = 1.0 - 1.0 / z
    return cut * x, cut * (1 - x), cut * y, cut * (1 - y)


def zoompan_filter(move: CameraMove, frames: int, width: int, height: int, fps: int) -> str:
    """A filter chain that covers the still to the output aspect, upscales it and runs the move."""
    last = max(1, frames - 1)
    # Half linear, half smoothstep: the camera is already moving at the cut, yet never lurches.
    ease = f"(st(0,on/{last});0.5*ld(0)+0.5*ld(0)*ld(0)*(3-2*ld(0)))"

    def lerp(a: float, b: float) -> str:
        return f"({a:.6f}+({b - a:.6f})*{ease})"

    # Bigger clips (720p, 1080p models) need less headroom for the same smoothness, and 4x of 1080
    # wide would be a 4320x7680 canvas per frame.
    upscale = max(1, min(UPSCALE, MAX_CANVAS_WIDTH // width))
    uw, uh = width * upscale, height * upscale
    return ",".join([
        f"scale={uw}:{uh}:force_original_aspect_ratio=increase:flags=bicubic",
        f"crop={uw}:{uh}",
        "format=yuv444p",  # full-resolution chroma, so colour edges don't step at odd offsets
        f"zoompan=z='{lerp(*move.zoom)}':x='(iw-iw/zoom)*{lerp(*move.x)}':y='(ih-ih/zoom)*{lerp(*move.y)}'"
        f":d={frames}:s={width}x{height}:fps={fps}",
        "setsar=1",
    ])  # fmt: skip


def _write_band(width: int, height: int, dst: Path) -> int:
    band, y = offline_band(width, height)
    band.save(dst, format="PNG")
    return y


class OfflineVideoGenerator:
    """`VideoGenerator` that animates seeds locally with ffmpeg: no key, no network."""

    name = "offline-animator"
    offline = True

    def __init__(self, *, preset: str = "veryfast", crf: int = 18) -> None:
        self.preset, self.crf = preset, crf

    async def animate(self, request: ClipRequest, ctx: StageContext) -> StageResult:
        frames, rate, width, height = self.shape(request)
        if not await asyncio.to_thread(Path(request.seed_image).is_file):
            raise ProviderError(f"the seed image {request.seed_image} is missing", retryable=False)
        seed = request.seed if request.seed is not None else derive_clip_seed(request)
        move = camera_move(request.scene.beat, request.scene.index, request.motion_bucket_id, seed)
        dest = Path(request.dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp, band_png = temp_beside(dest, ".mp4"), temp_beside(dest, ".band.png")
        await ctx.progress(2, f"animating offline ({move.name})")

        async def on_progress(fraction: float) -> None:
            await ctx.progress(2 + 93 * fraction)

        try:
            band_y = await asyncio.to_thread(_write_band, width, height, band_png)
            graph = (
                f"[0:v]{zoompan_filter(move, frames, width, height, rate)}[moving];"
                f"[moving][1:v]overlay=x=0:y={band_y}:format=auto,format=yuv420p[v]"
            )
            await run_ffmpeg(
                [
                    "-i", str(request.seed_image), "-i", str(band_png),
                    "-filter_complex", graph, "-map", "[v]",
                    "-frames:v", str(frames), "-r", str(rate),
                    "-an", "-map_metadata", "-1",
                    "-c:v", "libx264", "-preset", self.preset, "-crf", str(self.crf), "-pix_fmt", "yuv420p",
                    "-movflags", "+faststart", "-f", "mp4", str(tmp),
                ],
                timeout=120,
                progress=on_progress,
                duration_s=frames / rate,
            )  # fmt: skip
            await asyncio.to_thread(replace_durably, tmp, dest)
        finally:
            for leftover in (tmp, band_png):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
        await ctx.progress(100, "done")
        return StageResult(path=dest, seed=seed)

    @staticmethod
    def shape(request: ClipRequest) -> tuple[int, int, int, int]:
        """(frames, fps, width, height) of the clip the request's model would return."""
        if request.model == "svd":
            frames = FRAMES_FOR_LENGTH.get(request.video_length)
            if frames is None:
                choices = ", ".join(FRAMES_FOR_LENGTH)
                raise ProviderError(
                    f"unknown video length {request.video_length!r}; use one of: {choices}", retryable=False
                )
            # What SVD encodes at (fps + 1, see the README's "How the pieces fit"), at the input's size.
            return frames, request.fps + 1, request.width, request.height
        model = VIDEO_MODELS.get(request.model)
        if model is None:
            raise ProviderError(f"unknown video model {request.model!r}", retryable=False)
        width, height = model.output_size
        return model.clip.frames, round(model.fps), width, height

    async def cancel(self, prediction_id: str) -> None:
        """Nothing runs remotely, so there is nothing to cancel."""

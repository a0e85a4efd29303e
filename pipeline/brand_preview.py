"""A brand kit's preview: one PNG with a caption sample and the end card, side by side, drawn
exactly as an ad draws them (the composer's own ffmpeg/libass path, one frame of each).

Used by `/brand show` and `jant brand check`. It costs nothing: no prediction, a second or two of
ffmpeg on a small frame.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import tempfile
from pathlib import Path

from PIL import Image

from pipeline.atomic_files import atomic_path
from pipeline.brand import BrandKit
from pipeline.composer import Composer
from pipeline.ffmpeg import run_ffmpeg
from pipeline.speech_timing import WordTiming

# Half the 1080x1920 output: legible in a Discord embed, quick to render.
PANEL_W, PANEL_H = 540, 960
GAP = 24
BACKDROP = (24, 24, 28)
SCENE_S, CARD_S = 4.0, 2.0
CAPTION_AT, CARD_AT = 1.0, SCENE_S - 0.05  # a moment in the caption sample; the card, faded in
SAMPLE_HEADLINE = "Your headline here"
SAMPLE_CTA = "Shop now"
SAMPLE_WORDS = (
    WordTiming("Made", 0.3, 0.7),
    WordTiming("for", 0.7, 0.9),
    WordTiming("you", 0.9, 1.4),
)


def render_brand_preview(kit: BrandKit, dest: Path) -> Path:
    """Write the preview of `kit` to `dest` (PNG) and return it.

    Blocking (ffmpeg and Pillow): call it through `asyncio.to_thread` from async code.
    """
    dest = Path(dest)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_render(kit, dest))
    # Called on an event loop's thread after all: run on a thread of its own rather than fail.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _render(kit, dest)).result()


async def _render(kit: BrandKit, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="jant-brand-preview-") as tmp:
        d = Path(tmp)
        still, scene = d / "scene.png", d / "scene.mp4"
        await asyncio.to_thread(_backdrop, still)
        await run_ffmpeg([
            "-loop", "1", "-framerate", "7", "-i", str(still), "-frames:v", "3",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "12", "-pix_fmt", "yuv420p", str(scene),
        ])  # fmt: skip
        composer = Composer(PANEL_W, PANEL_H, preset="ultrafast", crf=12)
        clip = await composer.normalize_clip(
            scene, d / "sample.mp4", SCENE_S, caption=kit.name or SAMPLE_HEADLINE, words=SAMPLE_WORDS,
            captions=kit.captions or "karaoke", brand=kit, end_card_s=CARD_S, cta=SAMPLE_CTA,
        )  # fmt: skip
        frames = [await _frame(clip, at, d / f"frame-{i}.png") for i, at in enumerate((CAPTION_AT, CARD_AT))]
        await asyncio.to_thread(_side_by_side, frames, dest)
    return dest


def _backdrop(dst: Path) -> None:
    """A quiet gradient from dusk blue to sand stands in for a scene: text and logo must read on a
    picture, dark and light."""
    w, h = PANEL_W // 2, PANEL_H // 2
    top, bottom = (59, 74, 107), (217, 185, 155)
    ramp = Image.linear_gradient("L").resize((w, h))
    Image.composite(Image.new("RGB", (w, h), bottom), Image.new("RGB", (w, h), top), ramp).save(dst)


async def _frame(video: Path, seconds: float, dst: Path) -> Path:
    index = round(seconds * 24)
    await run_ffmpeg(["-i", str(video), "-vf", f"select='eq(n,{index})'", "-frames:v", "1", str(dst)])
    return dst


def _side_by_side(frames: list[Path], dest: Path) -> None:
    sheet = Image.new("RGB", (len(frames) * PANEL_W + (len(frames) + 1) * GAP, PANEL_H + 2 * GAP), BACKDROP)
    for i, path in enumerate(frames):
        with Image.open(path) as im:
            sheet.paste(im.convert("RGB"), (GAP + i * (PANEL_W + GAP), GAP))
    with atomic_path(dest, ".png") as tmp:
        sheet.save(tmp, format="PNG")

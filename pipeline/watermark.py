"""The brand's logo as a small watermark in a top corner of every scene, inside the platforms'
safe zone (below the top band where Reels, Shorts and TikTok draw their own buttons).

The logo is scaled here with Pillow to its exact pixel size for the output frame, its alpha kept,
and handed to ffmpeg's `overlay` as one still: a PNG once per clip, no per-frame scaling.
Runs in a thread (Pillow work).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from pipeline.brand import LogoCorner
from pipeline.captions import REFERENCE_SIZE, safe_area

# The largest box the watermark fills at 1080x1920: small, a signature rather than a banner.
WATERMARK_BOX = (220, 120)
# Gap between the safe zone's top edge and the logo, at 1080x1920.
WATERMARK_MARGIN = 24


@dataclass(frozen=True)
class Placed:
    path: Path  # the scaled logo, RGBA PNG
    x: int
    y: int
    width: int
    height: int


def load_logo(path: str | Path | None) -> Image.Image | None:
    """The logo as RGBA, or None when there is none or its file is gone or unreadable (the ad
    is then made without it; /brand show tells the team to upload it again)."""
    if not path:
        return None
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def fit_into(logo: Image.Image, box: tuple[int, int]) -> Image.Image:
    """`logo` scaled (up or down) to the largest size inside `box`, aspect kept."""
    scale = min(box[0] / logo.width, box[1] / logo.height)
    size = (max(1, round(logo.width * scale)), max(1, round(logo.height * scale)))
    return logo.resize(size, Image.Resampling.LANCZOS)


def place_watermark(
    logo_path: str | Path | None, corner: LogoCorner | str, width: int, height: int, dst: Path
) -> Placed | None:
    """Write the logo scaled for a `width`x`height` frame to `dst` and say where it goes; None
    when there is no corner or no readable logo."""
    corner = LogoCorner(corner)
    if corner is LogoCorner.NONE:
        return None
    logo = load_logo(logo_path)
    if logo is None:
        return None
    u = width / REFERENCE_SIZE[0]
    scaled = fit_into(logo, (round(WATERMARK_BOX[0] * u), round(WATERMARK_BOX[1] * u)))
    safe = safe_area(width, height)
    y = safe.top + round(WATERMARK_MARGIN * u)
    x = safe.left if corner is LogoCorner.TOP_LEFT else safe.right - scaled.width
    scaled.save(dst, format="PNG")  # a scratch file of the clip being made
    return Placed(dst, x, y, scaled.width, scaled.height)

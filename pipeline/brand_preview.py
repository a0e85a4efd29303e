"""A still preview of a brand kit: its end card (primary colour, logo, CTA, URL) beside a caption
sample in its accent colour. `/brand show` and `jant brand check` post it.

Placeholder body, kept only until the composer's own preview (helper wendcard) is merged: same
signature, simple Pillow drawing. CPU work: call it through `asyncio.to_thread`.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from pipeline.brand import BrandKit
from pipeline.typography import font, hex_rgb, luminance

PREVIEW_SIZE = (540, 960)  # 9:16 at half the ad's size


def render_brand_preview(kit: BrandKit, dest: Path) -> Path:
    width, height = PREVIEW_SIZE
    primary = hex_rgb(kit.primary)
    ink = (255, 255, 255) if luminance(primary) < 0.5 else (17, 17, 17)
    img = Image.new("RGB", PREVIEW_SIZE, primary)
    draw = ImageDraw.Draw(img)
    y = height // 3
    if kit.logo_path and Path(kit.logo_path).is_file():
        with Image.open(kit.logo_path) as logo:
            logo.thumbnail((width // 2, height // 5))
            mark = logo.convert("RGBA")
        img.paste(mark, ((width - mark.width) // 2, y - mark.height), mark)
    for text, size in ((kit.cta or kit.name or "Your call to action", 40), (kit.url or "", 26)):
        if text:
            y += size + 20
            draw.text((width // 2, y), text, fill=ink, font=font(size), anchor="mm")
    sample = "Caption sample"
    draw.rounded_rectangle((40, height - 200, width - 40, height - 120), radius=16, fill=(0, 0, 0))
    draw.text((width // 2, height - 160), sample, fill=hex_rgb(kit.accent), font=font(36), anchor="mm")
    dest.parent.mkdir(parents=True, exist_ok=True)
    img.save(dest, format="PNG")
    return dest

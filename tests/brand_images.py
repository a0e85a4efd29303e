"""Images for brand and photo tests, drawn here (nothing downloaded): a logo with transparency, a
JPEG photo, an animated PNG, a decompression bomb, and bytes that are no image at all."""

from __future__ import annotations

import io

from PIL import Image


def png(width: int, height: int, colour: tuple[int, ...] = (200, 30, 60, 255), mode: str = "RGBA") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def logo_png(size: int = 256) -> bytes:
    """A red disc on a transparent square: the alpha channel must survive the re-encode."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    from PIL import ImageDraw

    ImageDraw.Draw(img).ellipse((size // 8, size // 8, size * 7 // 8, size * 7 // 8), fill=(220, 20, 60, 255))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def photo_jpeg(width: int = 640, height: int = 800) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 200)).save(out, format="JPEG", quality=90)
    return out.getvalue()


def animated_png(size: int = 256) -> bytes:
    frames = [Image.new("RGB", (size, size), c) for c in ((255, 0, 0), (0, 0, 255))]
    out = io.BytesIO()
    frames[0].save(out, format="PNG", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def bomb_png() -> bytes:
    """10000x10000 one-bit pixels: a few kB on disk, 100 megapixels (over Pillow's 89 MP guard) decoded."""
    out = io.BytesIO()
    Image.new("1", (10_000, 10_000), 0).save(out, format="PNG", optimize=True)
    return out.getvalue()

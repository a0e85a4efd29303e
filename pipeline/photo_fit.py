"""The team's product photo fitted into a seed frame: the whole photo, scaled to fit, over a blurred,
darkened cover of itself. Never stretched, never cropped through the product; the bars a different
aspect ratio leaves are the photo's own colours, not black, so the video model sees one scene.

CPU work (decode, blur, encode): call `fit_photo` through `asyncio.to_thread`.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from pipeline.atomic_files import atomic_path

# The fill is a backdrop: blurred enough that no second product shows in it, dark enough that the
# sharp photo stands out from it and captions drawn over it stay legible.
FILL_BLUR_FRACTION = 0.04  # Gaussian radius as a share of the frame's longer side
FILL_BRIGHTNESS = 0.55


def fitted_with_blurred_fill(photo: Image.Image, width: int, height: int) -> Image.Image:
    """`photo` scaled (aspect kept) to fit inside width x height, centred over a blurred, darkened
    cover-scaled copy of itself. RGB; a transparent photo's alpha shows the fill behind it."""
    rgba = photo.convert("RGBA")
    # A cut-out product (transparent background) would blur into black: flatten it on white first.
    flat = Image.new("RGB", rgba.size, (255, 255, 255))
    flat.paste(rgba, mask=rgba)
    fill = ImageOps.fit(flat, (width, height), Image.Resampling.BILINEAR)
    fill = fill.filter(ImageFilter.GaussianBlur(radius=max(width, height) * FILL_BLUR_FRACTION))
    fill = ImageEnhance.Brightness(fill).enhance(FILL_BRIGHTNESS)
    front = ImageOps.contain(rgba, (width, height), Image.Resampling.LANCZOS)
    fill.paste(front, ((width - front.width) // 2, (height - front.height) // 2), front)
    return fill


def fit_photo(photo: Path, width: int, height: int, dest: Path) -> Path:
    """Write the fitted seed to `dest` as PNG; readers see the old file or the new one, never half."""
    with Image.open(photo) as src:
        src.load()
        seed = fitted_with_blurred_fill(src, width, height)
    with atomic_path(dest) as tmp:
        seed.save(tmp, format="PNG")
    return dest

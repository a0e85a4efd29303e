"""Images a team hands us (a brand logo, a product photo): checked before anything is stored or
paid, then re-encoded so only pixels we decoded ourselves ever reach disk or a model.

Checks, in the order a user can fix them: size in bytes, that it is an image at all, its format
(PNG, JPEG or WebP), that it is a still (an animated GIF/PNG/WebP is refused, not silently cut to
its first frame), its pixel count (Pillow's decompression-bomb guard, as an error rather than a
warning) and its short side. The output is a PNG with no metadata (EXIF, ICC, text chunks go) that
keeps transparency, so a logo with an alpha channel stays one.

CPU work (decode, encode): call `validate_image` through `asyncio.to_thread`.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP"}
# Pillow's own default (~89 MP) is its warning threshold; above twice that it raises. We refuse at
# the warning threshold: no logo or product photo needs more.
MAX_PIXELS = 89_478_485

MIB = 1024 * 1024
LOGO_MAX_BYTES = 5 * MIB
LOGO_MIN_SHORT_SIDE = 128
PHOTO_MAX_BYTES = 10 * MIB
PHOTO_MIN_SHORT_SIDE = 512


class UploadedImageError(ValueError):
    """Why an image cannot be used, in words the user can act on."""


@dataclass(frozen=True)
class CheckedImage:
    png: bytes  # the re-encoded image, metadata stripped, alpha kept
    width: int
    height: int
    source_format: str  # "PNG" | "JPEG" | "WebP"
    has_alpha: bool


def _mib(n: int) -> str:
    return f"{n / MIB:.1f} MiB"


def check_byte_size(size: int, *, what: str, max_bytes: int) -> None:
    """The size check alone: a caller that can see a file's size refuses it before reading it."""
    if size > max_bytes:
        raise UploadedImageError(
            f"{what} is {_mib(size)}; the limit is {max_bytes / MIB:g} MiB. Upload a smaller file."
        )


def validate_image(data: bytes, *, what: str, max_bytes: int, min_short_side: int) -> CheckedImage:
    """`what` names the image in messages ("The logo", "The product photo")."""
    check_byte_size(len(data), what=what, max_bytes=max_bytes)
    if not data:
        raise UploadedImageError(f"{what} is an empty file. Upload a PNG, JPEG or WebP image.")
    with warnings.catch_warnings():
        # A bomb below Pillow's hard limit only warns: make it the same error as one above.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as probe:
                fmt = probe.format or ""
                width, height = probe.size
                frames = getattr(probe, "n_frames", 1)
                if fmt not in ALLOWED_FORMATS:
                    raise UploadedImageError(
                        f"{what} is a {fmt or 'file Pillow cannot name'} image; upload a PNG, JPEG or WebP."
                    )
                if frames > 1 or getattr(probe, "is_animated", False):
                    raise UploadedImageError(f"{what} is animated ({frames} frames); upload a still image.")
                if width * height > MAX_PIXELS:
                    raise UploadedImageError(
                        f"{what} is {width}x{height} pixels, too many to decode safely; upload one under 89 megapixels."
                    )
                if min(width, height) < min_short_side:
                    raise UploadedImageError(
                        f"{what} is {width}x{height}; its short side must be at least {min_short_side} px. "
                        "Upload a larger image."
                    )
                probe.load()
                img = ImageOps.exif_transpose(probe)  # a phone photo stands the way it was taken
        except UploadedImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise UploadedImageError(
                f"{what} claims more pixels than is safe to decode (a decompression bomb?); upload a normal image."
            ) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise UploadedImageError(f"{what} is not an image Jant can read; upload a PNG, JPEG or WebP.") from None
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    clean = img.convert("RGBA" if has_alpha else "RGB")
    out = io.BytesIO()
    # A fresh image from the pixels alone: no EXIF, ICC profile or text chunks are carried over.
    Image.frombytes(clean.mode, clean.size, clean.tobytes()).save(out, format="PNG", optimize=False)
    return CheckedImage(out.getvalue(), clean.width, clean.height, ALLOWED_FORMATS[fmt], has_alpha)

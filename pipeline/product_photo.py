"""The team's own product photo, accepted: checked with the photo limits, re-encoded to a clean PNG
and stored under the data directory, named by its content (the same photo twice is one file). The
stored path is what `AdRequest.photo` holds; nothing else of the user's file is kept.

Front ends call `check_photo` before anything is created or paid, then `store_photo`; both do their
CPU and file work in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from pipeline.atomic_files import atomic_path
from pipeline.uploaded_images import (
    PHOTO_MAX_BYTES,
    PHOTO_MIN_SHORT_SIDE,
    CheckedImage,
    UploadedImageError,
    check_byte_size,
    validate_image,
)

WHAT = "The product photo"
PHOTO_DIR = "photos"


def _check_file(path: Path) -> CheckedImage:
    try:
        size = path.stat().st_size
        check_byte_size(size, what=WHAT, max_bytes=PHOTO_MAX_BYTES)  # a huge file is refused unread
        data = path.read_bytes()
    except UploadedImageError:
        raise
    except IsADirectoryError:
        raise UploadedImageError(f"{WHAT} {path} is a folder; give the path of an image file.") from None
    except OSError as exc:
        raise UploadedImageError(f"{WHAT} {path} cannot be read ({exc.strerror or exc}).") from None
    return check_photo_bytes(data)


def check_photo_bytes(data: bytes) -> CheckedImage:
    return validate_image(data, what=WHAT, max_bytes=PHOTO_MAX_BYTES, min_short_side=PHOTO_MIN_SHORT_SIDE)


async def check_photo(data: bytes) -> CheckedImage:
    """An uploaded photo's bytes, checked (raises `UploadedImageError` with the user's words)."""
    return await asyncio.to_thread(check_photo_bytes, data)


async def check_photo_file(path: Path) -> CheckedImage:
    """A photo on disk (the CLI's `--photo`), checked without reading a file over the size limit."""
    return await asyncio.to_thread(_check_file, Path(path))


def store_photo_png(png: bytes, data_dir: Path) -> Path:
    """`png` is `CheckedImage.png` (re-encoded by `validate_image`), never a user's original file;
    named by its content, so the same photo uploaded twice is one file."""
    dest = data_dir / PHOTO_DIR / f"photo-{hashlib.sha256(png).hexdigest()[:16]}.png"
    if not dest.exists():
        with atomic_path(dest) as tmp:
            tmp.write_bytes(png)
    return dest


async def store_photo(photo: CheckedImage, data_dir: Path) -> Path:
    """The checked photo's PNG under data_dir/photos/; its path is what `AdRequest.photo` holds."""
    return await asyncio.to_thread(store_photo_png, photo.png, Path(data_dir))

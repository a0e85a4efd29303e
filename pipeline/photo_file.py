"""Where a team's validated product photo is kept: data_dir/photos/, named by its content, so the
same photo uploaded twice is one file and a stored request (`AdRequest.photo`) keeps pointing at it."""

from __future__ import annotations

import hashlib
from pathlib import Path


def store_photo(png: bytes, data_dir: Path) -> Path:
    """`png` is `CheckedImage.png` (re-encoded by `validate_image`), never a user's original file."""
    dest = data_dir / "photos" / f"photo-{hashlib.sha256(png).hexdigest()[:16]}.png"
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".tmp")
        tmp.write_bytes(png)
        tmp.replace(dest)
    return dest

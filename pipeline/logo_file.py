"""Whether a brand kit's logo can still be drawn: the kit keeps a path under the data directory,
and that file can be deleted (a cleanup, a moved data directory, a restored database) while the
kit lives on. An ad is then made without the logo, and its notes say to upload it again, rather
than failing the whole ad over a watermark.

File work (a stat and an 8-byte read): call through `asyncio.to_thread`.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.brand import BrandKit

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"  # every stored logo was re-encoded to PNG on the way in

MISSING_LOGO_NOTE = (
    "The ad has no logo: the brand kit's logo file is gone from disk. "
    "Upload it again (/brand logo, or logo = in the brand file)."
)


def usable_logo(kit: BrandKit | None) -> Path | None:
    """The kit's logo file when it is there and is still a PNG; None when the kit has no logo or
    its file is gone or damaged."""
    if kit is None or not kit.logo_path:
        return None
    path = Path(kit.logo_path)
    try:
        with path.open("rb") as f:
            head = f.read(len(_PNG_SIGNATURE))
    except OSError:
        return None
    return path if head == _PNG_SIGNATURE else None


def missing_logo_note(kit: BrandKit | None) -> str | None:
    """The note for a job whose kit names a logo that cannot be drawn; None when nothing is missing."""
    if kit is None or not kit.logo_path or usable_logo(kit) is not None:
        return None
    return MISSING_LOGO_NOTE

"""Rules for a size cap on the finished ad (`--byte-limit`, `JANT_BYTE_LIMIT`), checked where it enters.

A cap below `MIN_BYTE_LIMIT` cannot hold 30 s of video anyone could read, so it is refused before a
job is written. A cap above it but under what `READABLE_VIDEO_BPS` needs is accepted with a warning
that names the bitrate the composer will use: the ad is made, and the user knows why it looks soft.
"""

from __future__ import annotations

MIB = 1024 * 1024
MIN_BYTE_LIMIT = 1 * MIB
# Below about 600 kb/s a 720x1280 H.264 stream of moving footage smears captions and edges (x264
# at this size needs ~0.03 bits per pixel per frame at 24 fps to keep text legible).
READABLE_VIDEO_BPS = 600_000
NOMINAL_AD_S = 30.0


def byte_limit_problem(limit: int) -> str | None:
    """Why `limit` cannot be used, in words a user can act on; None when it can."""
    if limit <= 0:
        return f"the byte limit must be a positive number of bytes (got {limit}); use at least {MIN_BYTE_LIMIT} (1 MiB)"
    if limit < MIN_BYTE_LIMIT:
        return (
            f"a byte limit of {limit} bytes is too small for a 30-second video; use at least {MIN_BYTE_LIMIT} (1 MiB)"
        )
    return None


def video_bitrate_for(limit: int, duration_s: float = NOMINAL_AD_S) -> int:
    """The video bitrate the composer will aim for under `limit` for an ad of `duration_s`."""
    from pipeline.composer import target_bitrate  # Pillow and ffmpeg helpers: not for reading settings

    return target_bitrate(duration_s, limit)


def byte_limit_warning(limit: int, duration_s: float = NOMINAL_AD_S) -> str | None:
    """A warning when `limit` forces a bitrate under `READABLE_VIDEO_BPS`; None when it does not."""
    bps = video_bitrate_for(limit, duration_s)
    if bps >= READABLE_VIDEO_BPS:
        return None
    return (
        f"a byte limit of {limit / MIB:.1f} MiB leaves about {bps // 1000} kb/s of video for a "
        f"{duration_s:g}-second ad (under {READABLE_VIDEO_BPS // 1000} kb/s text and detail will smear); "
        f"about {_limit_for(READABLE_VIDEO_BPS, duration_s) / MIB:.1f} MiB keeps it sharp"
    )


def _limit_for(bps: int, duration_s: float) -> int:
    """The smallest limit that gives at least `bps` (inverse of target_bitrate, rounded up)."""
    low, high = MIN_BYTE_LIMIT, 1024 * MIB
    while low < high:
        mid = (low + high) // 2
        if video_bitrate_for(mid, duration_s) >= bps:
            high = mid
        else:
            low = mid + 1
    return low

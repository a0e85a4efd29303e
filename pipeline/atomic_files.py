"""Files that appear whole or not at all: written beside their destination, then renamed over it.

A reader (the join, a resumed job, Discord's upload) sees either the old file or the new one, never
a half-written one; after a crash the same holds, because the data and the rename are synced to
disk before the caller goes on. Blocking calls: from async code, run them with `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


def temp_beside(dest: Path, suffix: str | None = None) -> Path:
    """A hidden, unique path in `dest`'s directory (the same filesystem, so the rename is atomic)."""
    return dest.with_name(f".{dest.stem}.{uuid.uuid4().hex[:8]}{dest.suffix if suffix is None else suffix}")


@contextlib.contextmanager
def scratch_path(near: Path, suffix: str | None = None) -> Iterator[Path]:
    """A temporary path beside `near`, removed when the block ends unless it was moved away."""
    tmp = temp_beside(near, suffix)
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def replace_durably(tmp: Path, dest: Path) -> None:
    """Sync `tmp`'s data, rename it over `dest`, then sync the directory so the rename survives a crash."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, dest)
    with contextlib.suppress(OSError):  # some filesystems cannot sync a directory; the rename is still atomic
        dir_fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def atomic_path(dest: Path, suffix: str | None = None) -> Iterator[Path]:
    """A temporary path to write `dest`'s new content to; it replaces `dest` when the block ends
    without an error, and is removed (leaving `dest` as it was) when it raises."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with scratch_path(dest, suffix) as tmp:
        yield tmp
        replace_durably(tmp, dest)


def write_text_atomic(dest: Path, text: str) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")

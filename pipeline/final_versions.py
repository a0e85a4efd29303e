"""The files of a re-render: one at a time per job, a scratch folder, and the new final put in place
without ever losing the previous one.

`final.mp4` is always a whole ad, old or new: the new one is renamed over it only after the old one
is linked to the next free `final-N.mp4`. A re-render killed at any point leaves the old final (and
at worst a spare numbered copy of it, and a scratch folder the next re-render clears). Blocking
calls: from async code, run them with `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from pipeline.atomic_files import replace_durably

LOCK_NAME = ".rerender.lock"
SCRATCH_NAME = ".rerender"
FINAL_NAME = "final.mp4"


def take_render_lock(directory: Path) -> int | None:
    """An exclusive lock on the job's re-render (None: another one holds it, in this process or another).

    An OS lock on an open file: it goes away with the process, so a crash never leaves it stuck."""
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def release_render_lock(fd: int) -> None:
    os.close(fd)  # closing the file drops its lock


def render_lock_free(directory: Path) -> bool:
    """Nobody holds the job's render lock right now (a check to refuse early; the render takes it itself)."""
    fd = take_render_lock(directory)
    if fd is None:
        return False
    release_render_lock(fd)
    return True


def fresh_scratch(directory: Path) -> Path:
    """An empty scratch folder for the re-render (what a killed one left is cleared: we hold the lock)."""
    scratch = directory / SCRATCH_NAME
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    return scratch


def kept_name(directory: Path) -> Path:
    """The next free numbered name for a previous final: final-1.mp4, final-2.mp4, …"""
    n = 1
    while (directory / f"final-{n}.mp4").exists():
        n += 1
    return directory / f"final-{n}.mp4"


def install_new_final(directory: Path, new_final: Path, recut: Sequence[tuple[Path, Path]]) -> Path | None:
    """Make `new_final` the job's final.mp4, keeping the previous one under the next numbered name
    (returned; None when there was none), then move the re-cut scenes over the old cuts (pairs of
    new, old) so a later re-roll joins cuts of the same look."""
    final = directory / FINAL_NAME
    kept = None
    if final.exists():
        kept = kept_name(directory)
        try:
            os.link(final, kept)  # both names on one file: final.mp4 stays whole throughout
        except OSError:
            shutil.copy2(final, kept)
    replace_durably(new_final, final)
    for new, old in recut:
        with contextlib.suppress(FileNotFoundError):
            replace_durably(new, old)
    return kept

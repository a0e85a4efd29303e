"""Which shapes a finished ad has and which it can still be cut into, and a user's choice among them.

The Formats button and `jant formats` both ask for shapes after the ad was made; they read what is on
disk beside `final.mp4` (a format asked for at /makead that could not be made counts as still to make).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pipeline.action_rules import FORMATS_ALREADY_MADE, FORMATS_MASTER
from pipeline.formats import FORMATS, MASTER_FORMAT, formats_problem


def formats_on_disk(final: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(made, missing): the extra formats of the ad at `final` that exist beside it, and the others,
    each in table order. Blocking (a few stats)."""
    made: list[str] = []
    missing: list[str] = []
    for fmt in FORMATS.values():
        if fmt.key != MASTER_FORMAT:
            (made if final.with_name(fmt.filename).is_file() else missing).append(fmt.key)
    return tuple(made), tuple(missing)


def parse_format_list(text: str) -> tuple[str, ...]:
    """ "4x5, 1:1" → ("4:5", "1:1") as typed (the master is not added). Raises ValueError with the reason."""
    keys = [k.strip().replace("x", ":").replace("X", ":") for k in text.split(",") if k.strip()]
    if problem := formats_problem(keys):
        raise ValueError(problem)
    return tuple(keys)


def in_table_order(keys: Iterable[str]) -> tuple[str, ...]:
    wanted = set(keys)
    return tuple(k for k in FORMATS if k in wanted)


def choice_problem(job_id: str, keys: Iterable[str], missing: tuple[str, ...]) -> str | None:
    """Why `keys` cannot be cut now for a job still missing `missing`; None when they can. Made
    formats are not made again: a re-render redraws the ad, this only adds shapes."""
    keys = tuple(keys)
    if problem := formats_problem(keys):
        return problem[0].upper() + problem[1:] + "."
    listed = ", ".join(missing)
    if MASTER_FORMAT in keys:
        return FORMATS_MASTER.format(missing=listed)
    made = [k for k in keys if k not in missing]
    if made:
        return FORMATS_ALREADY_MADE.format(keys=" and ".join(made), job_id=job_id, missing=listed)
    return None

"""Scene durations that fit the voice: a pure policy, no I/O.

Lines are synthesised at approval, so their measured lengths are known before any clip is retimed.
A line must end a short tail before its scene does (the cut lands on a breath, not a syllable). When
it does not, the scene takes the time it needs from the others, in proportion to what each can spare
above its own line and the 2 s floor, so the ad keeps its planned length; if the others cannot give
enough the ad may grow to 31 s. Only then are lines sped up — all by the same, smallest factor, at
most 1.15× (pitch-preserving `atempo` later, inaudible at that rate) — and a line that still cannot
fit is reported with the reason, and the ad goes on.

Everything is computed in whole centiseconds: durations come back with two decimals, as `Scene`
stores them, and "fits" means fits after rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.models import SCENE_MAX_S, SCENE_MIN_S, TOTAL_MAX_S, TOTAL_MIN_S

VOICE_TAIL_S = 0.3  # silence kept between the end of a line and the cut
MAX_SPEED = 1.15  # beyond this a sped-up voice starts to sound hurried


@dataclass(frozen=True)
class SceneTiming:
    """Final scene durations (s), the speed each scene's voice is played at (1.0 = as synthesised),
    and, per scene, why its line still does not fit (None when it does or when there is no line)."""

    durations: tuple[float, ...]
    speeds: tuple[float, ...]
    problems: tuple[str | None, ...]

    @property
    def total(self) -> float:
        return round(sum(self.durations), 2)

    @property
    def ok(self) -> bool:
        return not any(self.problems)


def _cs(seconds: float) -> int:
    """Seconds → centiseconds, rounded up: a line never gets less time than it needs."""
    return math.ceil(round(seconds * 100, 6))


def _allocate(planned: list[int], floors: list[int], low: int, high: int) -> list[int] | None:
    """Durations ≥ floors, as close to `planned` as possible, summing to the planned total clamped to
    [low, high] when the donors can give enough, else to more but ≤ high; None when even the floors
    sum past `high`."""
    if sum(floors) > high:
        return None
    durations = [max(p, f) for p, f in zip(planned, floors, strict=True)]
    target = min(max(sum(planned), low), high)
    excess = sum(durations) - target
    slack = [d - f for d, f in zip(durations, floors, strict=True)]
    spare = sum(slack)
    give = min(max(excess, 0), spare)
    if give:
        cuts = [give * s // spare for s in slack]
        left = give - sum(cuts)
        # The remainder, one centisecond at a time, from whoever still has the most to spare.
        for i in sorted(range(len(slack)), key=lambda i: (-(slack[i] - cuts[i]), i))[:left]:
            cuts[i] += 1
        durations = [d - c for d, c in zip(durations, cuts, strict=True)]
    return durations


def _floors(voice_cs: list[int | None], speed: float, tail: int, low: int, high: int) -> list[int]:
    return [low if v is None else min(max(math.ceil(v / speed) + tail, low), high) for v in voice_cs]


def fit_scenes_to_voice(
    planned: Sequence[float],
    voice: Sequence[float | None],
    *,
    tail: float = VOICE_TAIL_S,
    max_speed: float = MAX_SPEED,
    scene_min: float = SCENE_MIN_S,
    scene_max: float = SCENE_MAX_S,
    total_min: float = TOTAL_MIN_S,
    total_max: float = TOTAL_MAX_S,
) -> SceneTiming:
    """Re-balance `planned` scene durations so each scene's measured `voice` length (None: no line)
    ends `tail` seconds before the scene does."""
    if len(planned) != len(voice):
        raise ValueError(f"{len(planned)} scene durations but {len(voice)} voice lengths")
    lo, hi, tail_cs = _cs(scene_min), math.floor(round(scene_max * 100, 6)), _cs(tail)
    t_lo, t_hi = _cs(total_min), math.floor(round(total_max * 100, 6))
    plan = [min(max(round(p * 100), lo), hi) for p in planned]
    voice_cs = [None if v is None or v <= 0 else _cs(v) for v in voice]

    durations = _allocate(plan, _floors(voice_cs, 1.0, tail_cs, lo, hi), t_lo, t_hi)
    if durations is None:
        # Not even 31 s holds every line: find the smallest common speed-up that makes them fit.
        slow, fast = 1.0, max_speed
        if sum(_floors(voice_cs, fast, tail_cs, lo, hi)) <= t_hi:
            for _ in range(40):
                mid = (slow + fast) / 2
                slow, fast = (slow, mid) if sum(_floors(voice_cs, mid, tail_cs, lo, hi)) <= t_hi else (mid, fast)
            durations = _allocate(plan, _floors(voice_cs, fast, tail_cs, lo, hi), t_lo, t_hi)
            assert durations is not None
            durations = _spend_rounding(durations, voice_cs, tail_cs, hi, t_hi)
        else:
            durations = _squeezed(_floors(voice_cs, max_speed, tail_cs, lo, hi), lo, t_hi)
    assert durations is not None

    speeds: list[float] = []
    problems: list[str | None] = []
    exact = [None if v is None or v <= 0 else round(v * 100, 6) for v in voice]
    for index, (v, d) in enumerate(zip(exact, durations, strict=True), start=1):
        room = d - tail_cs
        if v is None or v <= room:
            speeds.append(1.0)
            problems.append(None)
            continue
        speed = math.ceil(v / room * 1000) / 1000 if room > 0 else math.inf
        if speed <= max_speed:
            speeds.append(speed)
            problems.append(None)
            continue
        speeds.append(max_speed)
        problems.append(_problem(index, v / 100, tail, max_speed, scene_max, total_min, total_max))
    return SceneTiming(tuple(d / 100 for d in durations), tuple(speeds), tuple(problems))


def _spend_rounding(durations: list[int], voice_cs: list[int | None], tail: int, high: int, total: int) -> list[int]:
    """Rounding the common speed-up leaves a few centiseconds under 31 s: give them, one by one, to the
    line that is sped up the most."""
    durations = list(durations)

    def strain(i: int) -> float:
        v = voice_cs[i]
        return 0.0 if v is None or durations[i] >= high else v / max(durations[i] - tail, 1)

    for _ in range(total - sum(durations)):
        i = max(range(len(durations)), key=lambda i: (strain(i), -i))
        if strain(i) <= 1.0:
            break
        durations[i] += 1
    return durations


def _squeezed(floors: list[int], low: int, total: int) -> list[int]:
    """Lines that cannot all fit even at full speed: cut the scenes above the minimum in proportion
    to their excess until the ad is `total` long (those lines will be reported)."""
    excess = sum(floors) - total
    room = [f - low for f in floors]
    spare = sum(room)
    cuts = [excess * r // spare for r in room]
    for i in sorted(range(len(room)), key=lambda i: (-(room[i] - cuts[i]), i))[: excess - sum(cuts)]:
        cuts[i] += 1
    return [f - c for f, c in zip(floors, cuts, strict=True)]


def _problem(
    index: int, line: float, tail: float, max_speed: float, scene_max: float, total_min: float, total_max: float
) -> str:
    need = line / max_speed + tail
    if need > scene_max:
        return (
            f"scene {index}'s line lasts {line:.1f} s: even {max_speed:g}× faster it needs {need:.1f} s, "
            f"more than the {scene_max:g} s a scene may last. Shorten the line."
        )
    return (
        f"scene {index}'s line lasts {line:.1f} s: even {max_speed:g}× faster it needs {need:.1f} s, and the "
        f"other scenes have no time left to give (the ad must stay {total_min:g}–{total_max:g} s). "
        "Shorten this line or another one."
    )

"""Scene timing follows the voice: stories a producer would recognise, then the same rules checked
over thousands of random storyboards and line lengths (a seeded loop: hypothesis is not installed)."""

from __future__ import annotations

import random

import pytest

from pipeline.scene_timing import MAX_SPEED, VOICE_TAIL_S, fit_scenes_to_voice

PLANNED = (4.0, 5.0, 5.0, 5.0, 5.0, 6.0)
EPS = 1e-9


def test_lines_that_fit_leave_the_storyboard_alone() -> None:
    timing = fit_scenes_to_voice(PLANNED, [2.1, 3.0, 4.2, 1.0, None, 5.7])
    assert timing.durations == PLANNED and set(timing.speeds) == {1.0} and timing.ok


def test_a_long_hook_line_borrows_time_from_the_others_and_the_ad_stays_30_s() -> None:
    timing = fit_scenes_to_voice(PLANNED, [4.5, 2.0, 2.0, 2.0, 2.0, 3.0])
    assert timing.durations[0] == pytest.approx(4.5 + VOICE_TAIL_S)
    assert timing.total == 30.0 and set(timing.speeds) == {1.0} and timing.ok
    assert all(d < p for d, p in zip(timing.durations[1:], PLANNED[1:], strict=True))  # everyone gave a little


def test_a_scene_whose_line_barely_fits_gives_nothing() -> None:
    timing = fit_scenes_to_voice(PLANNED, [4.5, 4.7, 2.0, 2.0, 2.0, 3.0])
    assert timing.durations[1] == 5.0  # its line needs 5.0 s with the tail: no time to spare
    assert timing.total == 30.0


def test_when_every_line_is_long_the_ad_grows_to_31_s_then_lines_speed_up_together() -> None:
    timing = fit_scenes_to_voice(PLANNED, [4.0, 5.0, 5.0, 5.0, 5.0, 6.0])  # 30 s of speech + tails
    assert timing.total == 31.0 and timing.ok
    assert 1.0 < max(timing.speeds) <= MAX_SPEED
    assert max(timing.speeds) - min(timing.speeds) < 0.02  # one common, smallest factor


def test_a_line_longer_than_any_scene_is_reported_and_the_ad_goes_on() -> None:
    timing = fit_scenes_to_voice(PLANNED, [2.0, 2.0, 10.0, 2.0, 2.0, 3.0])
    assert timing.durations[2] == 8.0 and timing.speeds[2] == MAX_SPEED
    assert timing.problems[2] == (
        "scene 3's line lasts 10.0 s: even 1.15× faster it needs 9.0 s, more than the 8 s a scene may last. "
        "Shorten the line."
    )
    assert [p for i, p in enumerate(timing.problems) if i != 2] == [None] * 5
    assert 29.0 <= timing.total <= 31.0


def test_lines_that_cannot_all_fit_in_31_s_say_so() -> None:
    timing = fit_scenes_to_voice(PLANNED, [6.0, 6.5, 6.5, 6.5, 6.5, 6.5])
    assert timing.total == 31.0 and not timing.ok
    assert "the other scenes have no time left to give (the ad must stay 29–31 s)" in next(
        p for p in timing.problems if p
    )


def test_an_old_storyboard_without_lines_keeps_its_durations() -> None:
    timing = fit_scenes_to_voice(PLANNED, [None] * 6)
    assert timing.durations == PLANNED and timing.speeds == (1.0,) * 6 and timing.ok


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="6 scene durations but 5 voice lengths"):
        fit_scenes_to_voice(PLANNED, [1.0] * 5)


def _random_storyboard(rng: random.Random) -> list[float]:
    while True:
        n = rng.randint(5, 7)
        durations = [rng.randint(200, 800) / 100 for _ in range(n)]
        if 29.0 <= sum(durations) <= 31.0:
            return durations


def _random_voice(rng: random.Random, n: int) -> list[float | None]:
    kind = rng.random()
    scale = 0.6 if kind < 0.4 else 1.0 if kind < 0.8 else 1.4  # mostly short, some long, some hopeless
    return [None if rng.random() < 0.1 else round(rng.uniform(0.3, 8.0) * scale, 3) for _ in range(n)]


def test_the_rules_hold_for_many_storyboards_and_lines() -> None:
    rng = random.Random(20261204)
    seen = {"untouched": 0, "rebalanced": 0, "sped_up": 0, "problem": 0}
    for _ in range(4000):
        planned = _random_storyboard(rng)
        voice = _random_voice(rng, len(planned))
        timing = fit_scenes_to_voice(planned, voice)
        assert len(timing.durations) == len(timing.speeds) == len(timing.problems) == len(planned)
        assert 29.0 - EPS <= timing.total <= 31.0 + EPS
        assert all(2.0 - EPS <= d <= 8.0 + EPS for d in timing.durations)
        assert all(round(d, 2) == d for d in timing.durations)
        fits_as_planned = all(v is None or v + VOICE_TAIL_S <= p + EPS for v, p in zip(voice, planned, strict=True))
        if fits_as_planned:
            assert timing.durations == pytest.approx(planned) and timing.ok
        for v, p, d, speed, problem in zip(
            voice, planned, timing.durations, timing.speeds, timing.problems, strict=True
        ):
            if v is None:
                assert speed == 1.0 and problem is None
            if v is None or v + VOICE_TAIL_S <= p + EPS:
                assert d <= p + EPS  # a scene that had room never grows: it can only give time
            if v is not None and v + VOICE_TAIL_S <= d + EPS:
                assert speed == 1.0  # never sped up without need
            if problem is None and v is not None:
                assert 1.0 <= speed <= MAX_SPEED
                assert v / speed + VOICE_TAIL_S <= d + 1e-6  # the line ends a tail before the cut
            if problem is not None:
                assert speed == MAX_SPEED and v is not None and v / MAX_SPEED + VOICE_TAIL_S > d
        if not timing.ok:
            # A reported line really was impossible: too long for any scene, or no allocation of 31 s holds all.
            floors = [0.0 if v is None else min(max(v / MAX_SPEED + VOICE_TAIL_S, 2.0), 8.0) for v in voice]
            too_long = any(v is not None and v / MAX_SPEED + VOICE_TAIL_S > 8.0 for v in voice)
            assert too_long or sum(max(f, 2.0) for f in floors) > 31.0 - 0.07
        assert fit_scenes_to_voice(planned, voice) == timing  # deterministic
        seen["untouched" if fits_as_planned else "sped_up" if max(timing.speeds) > 1 else "rebalanced"] += 1
        seen["problem"] += not timing.ok
    assert min(seen.values()) > 100, seen  # every branch was exercised many times

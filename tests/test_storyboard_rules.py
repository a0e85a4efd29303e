"""Every storyboard rule has a case that breaks it, and the error names the rule."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipeline.models import AdRequest, Beat, Scene, Storyboard, storyboard_problem
from pipeline.moods import Mood, mood_preset


def scene(index: int, beat: str, duration: float, **kw) -> dict:
    return {"index": index, "beat": beat, "duration": duration, "description": f"scene {index}",
            "visual_prompt": f"prompt {index}", **kw}  # fmt: skip


def board(*scenes: dict) -> dict:
    return {"title": "Lumen", "scenes": list(scenes)}


GOOD = board(scene(1, "hook", 4), scene(2, "intro", 5), scene(3, "feature", 5), scene(4, "feature", 5),
             scene(5, "feature", 5), scene(6, "cta", 6))  # fmt: skip


def problem(data: dict) -> str:
    with pytest.raises(ValidationError) as info:
        Storyboard.model_validate(data)
    return storyboard_problem(info.value)


def test_a_good_storyboard_passes() -> None:
    sb = Storyboard.model_validate(GOOD)
    assert sb.total_duration == 30
    assert sb.scenes[0].beat is Beat.HOOK and sb.scenes[-1].beat is Beat.CTA


def test_too_few_scenes() -> None:
    data = board(scene(1, "hook", 8), scene(2, "intro", 8), scene(3, "feature", 7), scene(4, "cta", 7))
    assert "5 to 7 scenes (got 4)" in problem(data)


def test_too_many_scenes() -> None:
    data = board(*(scene(i, "feature", 4) for i in range(1, 9)))
    assert "5 to 7 scenes (got 8)" in problem(data)


def test_total_too_short() -> None:
    data = board(scene(1, "hook", 3), scene(2, "intro", 4), scene(3, "feature", 4), scene(4, "feature", 4),
                 scene(5, "cta", 4))  # fmt: skip
    assert "add up to 29–31 s (got 19 s)" in problem(data)


def test_total_too_long() -> None:
    data = board(scene(1, "hook", 8), scene(2, "intro", 8), scene(3, "feature", 8), scene(4, "feature", 8),
                 scene(5, "cta", 8))  # fmt: skip
    assert "(got 40 s)" in problem(data)


@pytest.mark.parametrize("duration", [1.5, 8.5])
def test_scene_duration_out_of_range(duration: float) -> None:
    data = board(scene(1, "hook", duration), *GOOD["scenes"][1:])
    msg = problem(data)
    assert "scenes.0.duration" in msg and "between 2 and 8 s" in msg


def test_first_scene_must_be_hook() -> None:
    data = board(scene(1, "intro", 4), *GOOD["scenes"][1:])
    assert "first scene must be the hook (got intro)" in problem(data)


def test_last_scene_must_be_cta() -> None:
    data = board(*GOOD["scenes"][:-1], scene(6, "feature", 6))
    assert "last scene must be the call to action (got feature)" in problem(data)


def test_scenes_numbered_in_order() -> None:
    data = board(*GOOD["scenes"][:2], scene(4, "feature", 5), *GOOD["scenes"][3:])
    assert "numbered 1, 2, 3" in problem(data)


def test_empty_description_rejected() -> None:
    data = board(scene(1, "hook", 4, description="   "), *GOOD["scenes"][1:])
    assert "must not be empty" in problem(data)


def test_unknown_beat_rejected() -> None:
    data = board(scene(1, "teaser", 4), *GOOD["scenes"][1:])
    assert "scenes.0.beat" in problem(data)


def test_long_model_text_is_capped_and_control_characters_dropped() -> None:
    overlay = "Buy\x00 now\x1b[31m" + "!" * 99
    s = Scene.model_validate(scene(1, "hook", 4, description="x" * 5000, on_screen_text=overlay))
    assert len(s.description) == 300
    assert "\x00" not in (s.on_screen_text or "") and "\x1b" not in (s.on_screen_text or "")
    assert len(s.on_screen_text or "") <= 60


@pytest.mark.parametrize(
    ("product", "message"),
    [("", "empty"), ("   \n ", "empty"), ("x" * 2001, "at most 2000")],
)
def test_bad_product_text(product: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AdRequest(product=product)


def test_unknown_mood_names_the_valid_ones() -> None:
    with pytest.raises(ValidationError, match="choose one of: energetic, luxury"):
        AdRequest(product="Lumen", mood="grumpy")
    with pytest.raises(ValueError, match="choose one of"):
        mood_preset("grumpy")


def test_every_mood_has_a_full_preset() -> None:
    for mood in Mood:
        preset = mood_preset(mood)
        assert preset.style_keywords and len(preset.palette) >= 3 and preset.aesthetic
        assert 1 <= preset.motion_bucket_id <= 255

"""Formats, free: one job gives the 9:16 master and its 4:5, 1:1 and 16:9 versions from the same clips
and soundtrack, without a single new prediction (counted by the Replicate emulator, driven by the real
`replicate` client); captions are laid out again for each frame.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest
from PIL import Image, ImageChops, ImageFilter, ImageStat
from pydantic import ValidationError

from pipeline.captions import build_ass, safe_area
from pipeline.config import Settings
from pipeline.ffmpeg import probe
from pipeline.formats import FORMATS, formats_problem, parse_formats
from pipeline.models import AdRequest, JobStatus
from pipeline.runtime import Runtime
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import FakeReplicate
from tests.service_fakes import SDXL, SMALL_H, SMALL_W, SVD, open_small_runtime, service_env

PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm, dims at night and charges your phone"
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
# The master is composed at 360x640 (a small 9:16: the CLI tests make the profile's 720x1280), so its
# 16:9 is 640x360.
W, H = SMALL_W, SMALL_H
WIDE_W, WIDE_H = 640, 360


def test_formats_are_checked_with_a_specific_message() -> None:
    assert parse_formats("16:9, 4x5") == ("9:16", "16:9", "4:5")
    assert formats_problem(["9:16", "3:2"]) == (
        "unknown format '3:2'; choose among 9:16, 4:5, 1:1, 16:9 (width:height, e.g. 4:5)"
    )
    assert formats_problem(["4:5", "4:5"]) == "format '4:5' is asked for twice"
    with pytest.raises(ValidationError, match="unknown format '2:1'"):
        AdRequest(product=PRODUCT, formats=("2:1",))
    # The master is always made, and a request stored before formats existed still loads.
    assert AdRequest(product=PRODUCT, formats=("1:1",)).formats == ("9:16", "1:1")
    assert AdRequest.model_validate_json('{"product": "A lamp"}').formats == ("9:16",)


def test_landscape_text_is_sized_by_the_height_and_kept_in_a_title_safe_margin() -> None:
    # The 9:16 platform zones stay as they were.
    assert (safe_area(1080, 1920).top, safe_area(1080, 1920).right) == (250, 910)
    wide = safe_area(1920, 1080)
    assert (wide.left, wide.top, wide.right, wide.bottom) == (96, 54, 1824, 972)
    script = build_ass(1920, 1080, 3.0, headline="Light that knows the time of day, every day, all year")
    assert script is not None
    sizes = [int(s) for s in re.findall(r"\\fs(\d+)", script)]
    # Scaled by the width, the headline would be 188 px: three lines of it would fill half the frame.
    assert sizes and max(sizes) <= 1080 * 0.08
    (x, y) = (int(v) for v in re.search(r"\\pos\((\d+),(\d+)\)", script).groups())  # type: ignore[union-attr]
    assert x == 960 and y < 972


def _audio_streams(path: Path) -> list[str]:
    out = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True, check=False)
    return re.findall(r"Stream #\d+:\d+.*?: Audio: (\w+)", out.stderr)


def _frame(path: Path, at_s: float, dst: Path) -> Image.Image:
    subprocess.run(
        [FFMPEG, "-v", "error", "-ss", f"{at_s}", "-i", str(path), "-frames:v", "1", "-y", str(dst)], check=True
    )
    return Image.open(dst).convert("L")


def _detail(img: Image.Image) -> float:
    """High-frequency energy: the mean of the edge filter's response (a blurred area has next to none)."""
    return ImageStat.Stat(img.filter(ImageFilter.FIND_EDGES)).mean[0]


@pytest.fixture
async def runtime(fakes: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path):  # type: ignore[no-untyped-def]
    rt = await open_small_runtime(Settings(**service_env(*fakes, tmp_path / "data")))
    yield rt
    await rt.close()
    for provider in (rt.providers.planner, rt.providers.images, rt.providers.video):
        await provider.aclose()  # type: ignore[attr-defined]


async def test_one_job_gives_four_formats_with_no_extra_prediction(
    fakes: tuple[FakeOpenAI, FakeReplicate], runtime: Runtime, tmp_path: Path
) -> None:
    _, rep = fakes
    orch = runtime.orchestrator
    job = await orch.create_job(AdRequest(product=PRODUCT, formats=("9:16", "4:5", "1:1", "16:9")))
    await orch.plan(job)
    job = await asyncio.wait_for(await orch.approve(job), 240)
    assert job.status is JobStatus.COMPLETED, job.error
    assert not [n for n in job.notes if "version was not made" in n]

    final = Path(job.final_path or "")
    master = await probe(final, count_frames=True)
    assert (master.width, master.height) == (W, H)
    master_s = master.frames / master.fps  # type: ignore[operator]
    expected = {"final-4x5.mp4": (360, 450), "final-1x1.mp4": (360, 360), "final-16x9.mp4": (WIDE_W, WIDE_H)}
    for name, size in expected.items():
        path = final.with_name(name)
        info = await probe(path, count_frames=True)
        assert (info.width, info.height) == size, name
        assert info.frames is not None and info.fps is not None
        assert abs(info.frames / info.fps - master_s) <= 0.1, name
        assert _audio_streams(path) == ["aac"], name
        assert path.stat().st_size <= (job.byte_limit or 10 * 1024 * 1024)
    assert {f.filename for f in FORMATS.values()} == {"final.mp4", *expected}

    # Zero extra predictions: what Replicate created is exactly one 9:16 ad's worth (a seed and a clip
    # per scene, a voice per spoken scene and one music bed), and each is one stored prediction.
    n = len(job.scenes)
    stored = await runtime.store.predictions(job.id)
    assert {p["prediction_id"] for p in stored} == set(rep.predictions)
    assert rep.counts.creates[SDXL] == n and rep.counts.creates[SVD] == n
    assert len(rep.predictions) == 3 * n + 1

    # The 16:9: the whole 9:16 picture in the middle, a blurred fill (varied, but without edges) on each side.
    wide = _frame(final.with_name("final-16x9.mp4"), 2.0, tmp_path / "wide.png")
    picture_w = round(WIDE_H * 9 / 16)
    left_edge = (WIDE_W - picture_w) // 2
    above_captions = WIDE_H * 7 // 9  # measured here: the sides' detail 0.28x the middle's (0.32x at 1280x720)
    left = wide.crop((0, 0, left_edge - 8, above_captions))
    right = wide.crop((left_edge + picture_w + 8, 0, WIDE_W, above_captions))
    middle = wide.crop((left_edge + 8, 0, left_edge + picture_w - 8, above_captions))
    portrait = _frame(final, 2.0, tmp_path / "master.png")
    for side in (left, right):
        assert ImageStat.Stat(side).stddev[0] > 4  # a picture, not a flat bar
        assert _detail(side) < _detail(middle) / 3
    # The middle is the master's picture, whole and scaled (compared above any text: the top third).
    master_top = portrait.resize((picture_w, WIDE_H), Image.Resampling.BILINEAR).crop(
        (8, 0, picture_w - 8, WIDE_H // 3)
    )
    wide_top = middle.crop((0, 0, middle.width, WIDE_H // 3))
    assert ImageStat.Stat(ImageChops.difference(master_top, wide_top)).mean[0] < 10

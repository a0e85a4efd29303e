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
from pipeline.composer import Composer
from pipeline.config import Settings
from pipeline.early_formats import EarlyFormatCuts
from pipeline.ffmpeg import probe
from pipeline.formats import FORMATS, SceneSource, formats_problem, parse_formats, render_formats
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


def _frame(path: Path, at_s: float, dst: Path, mode: str = "L") -> Image.Image:
    subprocess.run(
        [FFMPEG, "-v", "error", "-ss", f"{at_s}", "-i", str(path), "-frames:v", "1", "-y", str(dst)], check=True
    )
    return Image.open(dst).convert(mode)


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
    rep.script(SVD, "slow:2")  # one clip lands well after the others (the clip timeout here is 3 s)
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
    # Scenes that landed before the slow one were cut for the formats while it was made (how many of
    # them is up to the host: those cuts run at low priority); the scene the ad waited on never is,
    # and no early or partial file is left.
    early = [e["detail"] for e in await runtime.store.events(job.id) if e["kind"] == "formats_cut_early"]
    assert len(early) == 1 and early[0].endswith(f"of {len(job.scenes)} scenes"), early
    counts = {k: int(n) for k, n in (part.rsplit(" ", 1) for part in early[0].rsplit(" of ", 1)[0].split(", "))}
    assert set(counts) == {"4:5", "1:1", "16:9"}, early
    assert sum(counts.values()) >= 1 and max(counts.values()) < len(job.scenes), early
    left = await asyncio.to_thread(
        lambda: [p.name for p in final.parent.iterdir() if ".early-" in p.name or ".scene-" in p.name]
    )
    assert not left

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


async def _color_clip(dst: Path, color: str) -> Path:
    """An SVD-shaped clip (576x1024, 25 frames at 7 fps) of one flat colour."""
    args = [FFMPEG, "-v", "error", "-f", "lavfi", "-i", f"color=c={color}:s=576x1024:r=7", "-frames:v", "25",
            "-pix_fmt", "yuv420p", "-y", str(dst)]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(*args)
    assert await proc.wait() == 0
    return dst


async def test_a_scene_cut_early_is_used_as_it_is_and_then_removed(tmp_path: Path) -> None:
    master = Composer(180, 320)
    grey, red = await _color_clip(tmp_path / "grey.mp4", "gray"), await _color_clip(tmp_path / "red.mp4", "red")
    final = tmp_path / "final.mp4"
    cuts = EarlyFormatCuts(master, final, ["9:16", "1:1"], gate=asyncio.Semaphore(1))
    # Scene 2 is cut early for 1:1 from a red clip: if render_formats cut it again from its own (grey)
    # clip, the square's scene 2 would be grey like the 4:5's.
    cuts.start(2, SceneSource(red, 1.0, {}), max_bitrate=None)
    await cuts.settle()
    ready = await cuts.collect()
    assert list(ready) == [2] and set(ready[2]) == {"1:1"} and ready[2]["1:1"].is_file()
    scenes = [SceneSource(grey, 1.0, {}), SceneSource(grey, 1.0, {}, cut=ready[2])]
    results = await render_formats(master, final, ["4:5", "1:1"], scenes, soundtrack=None, byte_limit=None)
    by_key = {r.format.key: r for r in results}
    assert [by_key["4:5"].early, by_key["1:1"].early] == [0, 1]
    square = _frame(final.with_name("final-1x1.mp4"), 1.5, tmp_path / "square.png", "RGB")
    feed = _frame(final.with_name("final-4x5.mp4"), 1.5, tmp_path / "feed.png", "RGB")
    first = _frame(final.with_name("final-1x1.mp4"), 0.5, tmp_path / "first.png", "RGB")
    assert _is_red(square) and not _is_red(feed) and not _is_red(first)
    await cuts.discard()
    left = await asyncio.to_thread(lambda: sorted(p.name for p in tmp_path.glob("final*")))
    assert left == ["final-1x1.mp4", "final-4x5.mp4"]


async def test_early_cuts_still_queued_are_left_to_the_formats_and_discard_removes_the_rest(tmp_path: Path) -> None:
    grey = await _color_clip(tmp_path / "grey.mp4", "gray")
    gate = asyncio.Semaphore(1)
    cuts = EarlyFormatCuts(Composer(180, 320), tmp_path / "final.mp4", ["4:5"], gate=gate)
    await gate.acquire()  # another job's early cut holds the one place
    cuts.start(1, SceneSource(grey, 1.0, {}), max_bitrate=None)
    # Waiting for it would put the formats behind another job's queue: it is cancelled unstarted.
    assert await asyncio.wait_for(cuts.collect(), 10) == {}
    gate.release()
    cuts.start(2, SceneSource(grey, 1.0, {}), max_bitrate=None)
    await cuts.settle()
    made = await cuts.collect()
    assert made[2]["4:5"].is_file()
    await cuts.discard()
    assert not await asyncio.to_thread(lambda: list(tmp_path.glob("*.early-*")))


def _is_red(img: Image.Image) -> bool:
    r, g, b = ImageStat.Stat(img).mean
    return r > 150 and g < 80 and b < 80

"""The team's own product photo in the ad.

Stories: a teammate makes an ad with a photo of their product — the scenes that show the product
are animated from that photo (the Replicate emulator decodes the video model's input and sees the
photo's pixels), no SDXL prediction is made for them, and the painted scenes are asked for the
photo's colours; a restart in the middle keeps the photo's seeds and paints nothing more; offline,
`jant makead --photo` seeds those scenes with the photo fitted whole over a blurred fill; a bad
photo is refused in one line before anything is written; the storyboard card prices the photo
scenes without SDXL and says which they are.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageStat

from bot.cli import main as cli_main
from bot.scene_editor import SceneEditModal
from bot.storyboard_embed import render_storyboard
from pipeline.config import Settings
from pipeline.cost_estimate import TYPICAL_SEED_GPU_S, estimate_job_cost
from pipeline.models import AdRequest, Job, JobStatus, StageStatus
from pipeline.photo_fit import fitted_with_blurred_fill
from pipeline.photo_palette import dominant_colours
from pipeline.product_photo import check_photo_file, store_photo
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.runtime import Runtime
from pipeline.stage_kinds import PHOTO_SEED
from pipeline.uploaded_images import MIB
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import SVD_VERSION, FakeReplicate
from tests.service_fakes import SDXL, SVD, open_small_runtime, service_env

PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm, dims at night and charges your phone"
REPO = Path(__file__).resolve().parents[1]
PHOTO_SIZE = (1200, 800)  # landscape: in a 9:16 frame it leaves tall bars above and below
SKY, RED, NAVY, YELLOW = (120, 180, 235), (200, 30, 30), (20, 30, 80), (245, 220, 50)


def product_photo() -> Image.Image:
    """A red bottle with a navy cap on a sky-blue backdrop, framed by a sharp yellow border, with a
    fine checker on the backdrop so a blurred copy and a sharp one are easy to tell apart."""
    img = Image.new("RGB", PHOTO_SIZE, SKY)
    d = ImageDraw.Draw(img)
    for x in range(40, 1160, 40):
        for y in range(40, 760, 40):
            if (x // 40 + y // 40) % 2:
                d.rectangle([x, y, x + 19, y + 19], fill=(100, 160, 215))
    d.rectangle([0, 0, PHOTO_SIZE[0] - 1, PHOTO_SIZE[1] - 1], outline=YELLOW, width=30)
    d.rounded_rectangle([500, 150, 700, 700], radius=40, fill=RED)
    d.ellipse([560, 80, 640, 170], fill=NAVY)
    return img


def write_photo(path: Path, fmt: str = "JPEG") -> Path:
    product_photo().save(path, format=fmt, quality=95)
    return path


def band_rows(width: int, height: int) -> tuple[int, int]:
    """Where the whole photo lands when fitted (aspect kept) into width x height: its rows."""
    band = round(width * PHOTO_SIZE[1] / PHOTO_SIZE[0])
    top = (height - band) // 2
    return top, top + band


def photo_difference(frame: Image.Image) -> float:
    """Mean absolute difference (0–255) between the frame's photo band and the photo, scaled to it
    independently of the code under test. A few pixels are shaved off each edge for rounding."""
    top, bottom = band_rows(*frame.size)
    expected = product_photo().resize((frame.width, bottom - top), Image.Resampling.LANCZOS)
    inset = (4, 4, frame.width - 4, bottom - top - 4)
    got = frame.convert("RGB").crop((0, top, frame.width, bottom)).crop(inset)
    diff = ImageChops.difference(got, expected.crop(inset))
    return sum(ImageStat.Stat(diff).mean) / 3


def bar_regions(frame: Image.Image) -> list[Image.Image]:
    top, bottom = band_rows(*frame.size)
    return [frame.convert("RGB").crop((0, 0, frame.width, top - 8)),
            frame.convert("RGB").crop((0, bottom + 8, frame.width, frame.height))]  # fmt: skip


def sharpest_edge(region: Image.Image) -> float:
    """The strongest local edge in a region (mean of the top 1 % of edge strengths)."""
    edges = region.convert("L").filter(ImageFilter.FIND_EDGES).crop((2, 2, region.width - 2, region.height - 2))
    hist = edges.histogram()
    wanted, seen, total = max(1, sum(hist) // 100), 0, 0
    for level in range(255, -1, -1):
        take = min(hist[level], wanted - seen)
        seen, total = seen + take, total + take * level
        if seen >= wanted:
            break
    return total / wanted


def assert_fitted_with_blurred_fill(frame: Image.Image) -> None:
    """The whole photo, undistorted, in the middle; above and below it a blurred, darkened fill in
    the photo's own colours (not black, not a stretched sharp copy)."""
    assert photo_difference(frame) < 6, photo_difference(frame)  # measured: 0 in the seed, 2 after JPEG
    # The centre of the frame is the centre of the photo: the red bottle.
    r, g, b = frame.convert("RGB").getpixel((frame.width // 2, frame.height // 2))  # type: ignore[misc]
    assert r > 150 and g < 80 and b < 80, (r, g, b)
    photo_edge = sharpest_edge(
        product_photo().resize((frame.width, band_rows(*frame.size)[1] - band_rows(*frame.size)[0]))
    )
    photo_mean = ImageStat.Stat(product_photo()).mean
    for bar in bar_regions(frame):
        mean = ImageStat.Stat(bar).mean
        # The photo's own colours, darkened: every channel a similar share of the photo's (not black).
        shares = [m / p for m, p in zip(mean, photo_mean, strict=True)]
        assert all(0.3 < share < 0.9 for share in shares), f"the fill is not a darkened copy: {mean} vs {photo_mean}"
        assert sharpest_edge(bar) < photo_edge / 4, (sharpest_edge(bar), photo_edge)  # blurred, not sharp


# ---------------------------------------------------------------------------------- the real path


@pytest.fixture
async def runtime(fakes: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(**service_env(*fakes, tmp_path / "data"))
    rt = await open_small_runtime(settings)  # the seeds and the clips' inputs are under test, not the ad's size
    yield rt
    await rt.close()


async def photo_request(settings: Settings, tmp_path: Path) -> AdRequest:
    checked = await check_photo_file(write_photo(tmp_path / "bottle.jpg"))
    stored = await store_photo(checked, settings.storage.data_dir)
    return AdRequest(product=PRODUCT, mood="minimal", photo=str(stored))


def sdxl_prompts(rep: FakeReplicate) -> list[str]:
    return [p.input["prompt"] for p in rep.predictions.values() if p.model.ref == SDXL]


async def test_the_product_scenes_are_animated_from_the_photo_and_paint_nothing(
    fakes: tuple[FakeOpenAI, FakeReplicate], runtime: Runtime, tmp_path: Path
) -> None:
    _, rep = fakes
    orch = runtime.orchestrator
    job = await orch.create_job(await photo_request(runtime.settings, tmp_path))
    await orch.plan(job)
    assert job.photo_scenes() == [2, 5]  # the writer marked the intro and the CTA as showing the product
    job = await asyncio.wait_for(await orch.approve(job), 60)
    assert job.status is JobStatus.COMPLETED, job.error

    # SDXL painted scenes 1, 3 and 4 once each and never a product scene; every scene has a clip.
    prompts = sdxl_prompts(rep)
    assert rep.counts.creates[SDXL] == 3
    assert sorted(p.split(" ", 1)[0] for p in prompts) == ["SCENE-1", "SCENE-3", "SCENE-4"]
    assert rep.counts.creates[SVD] == 5
    # The painted scenes are asked for the photo's colours, measured from the photo.
    assert dominant_colours(Path(job.request.photo or "")) == ("sky blue", "red", "yellow")
    assert all("Colours matching the product: sky blue, red, yellow." in p for p in prompts)

    stored = await runtime.store.get(job.id)
    assert stored is not None and stored.providers[PHOTO_SEED] == "product-photo"
    for i in (2, 5):
        seed = stored.scene(i).seed
        assert seed.status is StageStatus.DONE and seed.prediction_id is None and seed.cost_usd == 0.0
        # What the video model decoded is the photo: the uploaded pixels, fitted with a blurred fill.
        clip_id = stored.scene(i).clip.prediction_id
        assert clip_id is not None and rep.predictions[clip_id].model.ref == SVD
        seen = Image.open(io.BytesIO(rep.video_inputs[clip_id]))
        assert seen.size == (576, 1024)
        assert_fitted_with_blurred_fill(seen)
    for i in (1, 3, 4):  # a painted scene's clip starts from its SDXL seed, not from the photo
        seen = Image.open(io.BytesIO(rep.video_inputs[stored.scene(i).clip.prediction_id or ""]))
        assert photo_difference(seen) > 30
    # The seed is given inline (a data URI), never as a URL of someone else's.
    svd_creates = [r for r in rep.requests if r.method == "POST" and (r.json or {}).get("version") == SVD_VERSION]
    assert svd_creates and all(r.json["input"]["input_image"].startswith("data:image/") for r in svd_creates)
    # Paid only for what was made: the photo's seeds cost nothing and billed no GPU time.
    seeds_billed = [p for p in await runtime.store.predictions(job.id) if p["stage"] == "seed"]
    assert sorted(p["scene_index"] for p in seeds_billed) == [1, 3, 4]


async def _until(predicate: Callable[[], bool], limit_s: float = 20.0) -> None:
    async with asyncio.timeout(limit_s):
        while not predicate():  # noqa: ASYNC110 - bounded by the timeout
            await asyncio.sleep(0.01)


async def test_a_restart_keeps_the_photo_seeds_and_paints_nothing_more(
    fakes: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path
) -> None:
    _, rep = fakes
    settings = Settings(**service_env(*fakes, tmp_path / "data"))
    first = await Runtime.open(settings)
    rep.script_by(lambda model, version, inp: "never" if model == SVD else None)  # the clips hang
    job = await first.orchestrator.create_job(await photo_request(settings, tmp_path))
    await first.orchestrator.plan(job)
    await first.orchestrator.approve(job)
    await _until(lambda: all(job.scene(i).seed.status is StageStatus.DONE for i in range(1, 6)))
    seeds = {i: Path(job.scene(i).seed.path or "") for i in (2, 5)}
    made = {i: p.stat().st_mtime_ns for i, p in seeds.items()}
    await first.close()  # a shutdown: the job stays running, its predictions are left to poll

    rep.script_by(None)  # after the restart the hung clips time out and are made again
    second = await open_small_runtime(settings)
    try:
        (task,) = await second.orchestrator.resume_all()
        job = await asyncio.wait_for(task, 60)
    finally:
        await second.close()
    assert job.status is JobStatus.COMPLETED, job.error
    assert rep.counts.creates[SDXL] == 3  # nothing painted again, the product scenes never
    assert {i: p.stat().st_mtime_ns for i, p in seeds.items()} == made  # the fitted seeds were reused
    for i in (2, 5):
        seen = Image.open(io.BytesIO(rep.video_inputs[job.scene(i).clip.prediction_id or ""]))
        assert photo_difference(seen) < 6


# ------------------------------------------------------------------------------------ the CLI


def jant(*args: str, cwd: Path, data: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REPLICATE_", "JANT_", "DISCORD_"))}
    env |= {"JANT_DATA_DIR": str(data), "COLUMNS": "140", "PYTHONPATH": str(REPO)}
    # The photo's seeds are under test, not the sound track or the motion: no offline voice or music bed
    # (~7 CPU-s), and SVD's 14 frames rather than SVD-XT's 25 (~2 CPU-s).
    env |= {"JANT_VOICE": "none", "JANT_MUSIC": "none", "JANT_SVD_VIDEO_LENGTH": "14_frames_with_svd"}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


async def test_makead_photo_offline_seeds_the_product_scenes_with_the_photo(tmp_path: Path) -> None:
    data = tmp_path / "data"
    photo = write_photo(tmp_path / "bottle.jpg")
    result = await asyncio.to_thread(jant, "makead", PRODUCT, "--photo", str(photo), "--yes", cwd=tmp_path, data=data)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Your product photo is the picture of scenes 2, 3, 7" in result.stdout
    (job_dir,) = (data / "jobs").iterdir()
    board = json.loads((job_dir / "storyboard.json").read_text())
    # The request holds the clean PNG stored under the data directory, not the user's file.
    stored = Path(board["request"]["photo"])
    assert stored.parent == data / "photos" and stored.suffix == ".png"
    with Image.open(stored) as png:
        assert png.format == "PNG" and png.size == PHOTO_SIZE and not png.info.get("exif")
    shows = [s["index"] for s in board["storyboard"]["scenes"] if s["shows_product"]]
    assert shows == [2, 3, 7]  # the offline writer: the intro, the first feature and the CTA
    for i in shows:
        with Image.open(job_dir / f"seed-{i}.png") as seed:
            assert seed.size == (640, 1136)
            assert_fitted_with_blurred_fill(seed)
    with Image.open(job_dir / "seed-1.png") as painted:
        assert photo_difference(painted) > 30


def _bomb_png() -> bytes:
    """A valid 1x1 PNG whose header claims 20000x20000 pixels (400 MP)."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = bytes(data[12:16]) + struct.pack(">II", 20_000, 20_000) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", 20_000, 20_000)
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    return bytes(data)


def _animated_png() -> bytes:
    buf = io.BytesIO()
    frames = [Image.new("RGB", (600, 600), c) for c in (RED, SKY)]
    frames[0].save(buf, format="PNG", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def _small_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (800, 400), SKY).save(buf, format="PNG")
    return buf.getvalue()


def _write_big(path: Path) -> None:
    with path.open("wb") as f:
        f.truncate(11 * MIB)  # sparse: 11 MiB on paper, nothing to write


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("notes.png", lambda p: p.write_text("not a picture"),
         "The product photo is not an image Jant can read; upload a PNG, JPEG or WebP."),
        ("spin.png", lambda p: p.write_bytes(_animated_png()),
         "The product photo is animated (2 frames); upload a still image."),
        ("huge.jpg", _write_big, "The product photo is 11.0 MiB; the limit is 10 MiB. Upload a smaller file."),
        ("small.png", lambda p: p.write_bytes(_small_png()),
         "The product photo is 800x400; its short side must be at least 512 px. Upload a larger image."),
        ("bomb.png", lambda p: p.write_bytes(_bomb_png()),
         "The product photo claims more pixels than is safe to decode (a decompression bomb?); upload a normal image."),
    ],
)  # fmt: skip
def test_a_bad_photo_is_refused_in_one_line_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, make: Callable[[Path], object], message: str
) -> None:
    data = tmp_path / "data"  # JANT_DATA_DIR (conftest)
    photo = tmp_path / name
    make(photo)
    # In this process (the CLI's own entry point), so the five cases cost no interpreter starts.
    code = cli_main(["makead", PRODUCT, "--photo", str(photo), "--yes"])
    out, err = capsys.readouterr()
    assert code == 2, err + out
    assert [line for line in err.splitlines() if line.strip()] == [f"error: {message}"], err
    assert not data.exists()  # no job, no database, no stored photo


# ---------------------------------------------------------------------------- the storyboard card


async def test_the_card_prices_photo_scenes_without_sdxl_and_marks_them() -> None:
    settings = Settings(JANT_DATA_DIR=Path("unused"))
    board = await OfflineStoryboardPlanner().plan(AdRequest(product=PRODUCT))
    providers = {"planner": "openai-gpt-4o", "seed": "replicate-sdxl", "clip": "replicate-svd"}

    def job(photo: str | None) -> Job:
        return Job(request=AdRequest(product=PRODUCT, photo=photo), storyboard=board, providers=providers,
                   status=JobStatus.AWAITING_APPROVAL)  # fmt: skip

    painted = estimate_job_cost(job(None), settings)
    with_photo = estimate_job_cost(job("/data/photos/photo-1.png"), settings)
    photo_scenes = [s.index for s in board.scenes if s.shows_product]
    assert len(photo_scenes) == 3
    assert painted.gpu_seconds - with_photo.gpu_seconds == pytest.approx(3 * TYPICAL_SEED_GPU_S["dev"])
    assert with_photo.seeds.usd < painted.seeds.usd and with_photo.clips.usd == painted.clips.usd
    embed = render_storyboard(job("/data/photos/photo-1.png"), settings)
    marked = [f.name for f in embed.fields if "your product photo" in (f.name or "")]
    assert [int((name or "").split(" ")[0][1:]) for name in marked] == photo_scenes
    assert "(your photo)" in str(embed.fields[-1].value) and "scenes 2, 3, 7" in str(embed.fields[-1].value)
    unmarked = render_storyboard(job(None), settings)
    assert not any("your product photo" in (f.name or "") for f in unmarked.fields)


# ------------------------------------------------------------------------------- a cut-out product


def test_a_cut_out_product_sits_on_a_soft_fill_and_its_colours_ignore_the_transparency(tmp_path: Path) -> None:
    cut_out = Image.new("RGBA", (900, 1200), (0, 0, 0, 0))
    ImageDraw.Draw(cut_out).ellipse([200, 200, 700, 1000], fill=(30, 160, 60, 255))
    cut_out.save(tmp_path / "cut-out.png")
    seed = fitted_with_blurred_fill(cut_out, 576, 1024)
    assert seed.mode == "RGB" and seed.getpixel((288, 512)) == (30, 160, 60)
    for corner in ((4, 4), (571, 4), (4, 1019), (571, 1019)):
        assert min(seed.getpixel(corner)) > 100, corner  # type: ignore[arg-type] - a light fill, not black
    assert dominant_colours(tmp_path / "cut-out.png") == ("green",)  # transparent pixels are not "black"


# ---------------------------------------------------------------------------------- editing a scene


def photo_checkboxes(job: Job, index: int) -> list[tuple[str, bool]]:
    """The checkboxes of the scene editor's modal for scene `index`: (custom id, ticked)."""
    modal = SceneEditModal(cast(Any, None), job, index)  # the actions are only used on submit
    inner = [c.get("component", {}) for c in modal.to_components()]
    return [(c["custom_id"], bool(c.get("default"))) for c in inner if c.get("type") == 23]


async def test_edit_scene_chooses_whether_a_scene_shows_the_photo(settings: Settings, tmp_path: Path) -> None:
    runtime = await Runtime.open(settings)  # offline
    try:
        orch = runtime.orchestrator
        job = await orch.create_job(await photo_request(settings, tmp_path))
        await orch.plan(job)
        assert job.photo_scenes() == [2, 3, 7]
        # The scene editor offers the choice, ticked as the storyboard has it.
        assert photo_checkboxes(job, 1) == [("shows_product", False)]
        assert photo_checkboxes(job, 2) == [("shows_product", True)]
        await orch.edit_scene(job, 1, shows_product=True)
        await orch.edit_scene(job, 7, shows_product=False)
        assert job.photo_scenes() == [1, 2, 3]
        stored = await runtime.store.get(job.id)
        assert stored is not None and stored.photo_scenes() == [1, 2, 3]
        # Without a photo the modal does not offer the choice: it would change nothing.
        plain = await orch.create_job(AdRequest(product=PRODUCT))
        await orch.plan(plain)
        assert photo_checkboxes(plain, 1) == []
    finally:
        await runtime.close()

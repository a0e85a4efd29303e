"""The composer with the real bundled ffmpeg: SVD-shaped clips in, a 9:16 ad that fits out.

Source clips are made the way cog-svd makes them (25 frames at 7 fps, 576x1024, moov at the end).
Tests use the ultrafast preset where encode quality isn't what is being checked.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from pipeline.composer import (
    CONTAINER_OVERHEAD_BYTES,
    MIN_VIDEO_BITRATE,
    Composer,
    clip_maxrate,
    concat_line,
    fit_size,
    min_bitrate,
    sheet_layout,
    target_bitrate,
)
from pipeline.errors import ComposeError, DoesNotFit
from pipeline.ffmpeg import (
    FfmpegError,
    MediaInfo,
    avc_decoder_config,
    ffmpeg_exe,
    has_faststart,
    parse_banner,
    probe,
    run_ffmpeg,
)

MiB = 1024 * 1024
FRAME = 1 / 24
SCENE_DURATIONS = [4.0, 5.0, 6.0, 6.0, 5.0, 4.0]


def _make_clip(dst: Path, source: str, *, width: int = 576, height: int = 1024, frames: int = 25) -> Path:
    """Like cog-svd's output: H.264 yuv420p at 7 fps, no faststart."""
    subprocess.run(
        [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"{source.format(w=width, h=height)}",
            "-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18",
            "-pix_fmt", "yuv420p", str(dst),
        ],
        check=True,
    )  # fmt: skip
    return dst


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A quote in the directory name: the concat list must escape it (ffmpeg's '\'' rule).
    d = tmp_path_factory.mktemp("composer") / "team's ad"
    d.mkdir()
    return d


@pytest.fixture(scope="module")
def svd_clip(media_dir: Path) -> Path:
    return _make_clip(media_dir / "svd.mp4", "testsrc2=s={w}x{h}:r=7")


@pytest.fixture(scope="module")
def noisy_clip(media_dir: Path) -> Path:
    """High-detail content: every frame full of fresh noise, which H.264 can't predict away."""
    return _make_clip(media_dir / "noisy.mp4", "testsrc2=s={w}x{h}:r=7,noise=alls=24:allf=t+u")


def composer() -> Composer:
    return Composer(720, 1280, preset="ultrafast")


@pytest.fixture(scope="module")
def normalised(svd_clip: Path, media_dir: Path) -> list[Path]:
    """Six scenes, 4/5/6/6/5/4 s (30 s), two of them captioned, as the orchestrator leaves them."""

    async def run() -> list[Path]:
        c = composer()
        return list(
            await asyncio.gather(*(
                c.normalize_clip(svd_clip, media_dir / f"scene-{i + 1}.mp4", d,
                                 caption="Light that keeps your rhythm" if i in (0, 5) else None)
                for i, d in enumerate(SCENE_DURATIONS)
            ))
        )  # fmt: skip

    return asyncio.run(run())


@pytest.fixture(scope="module")
def noisy_normalised(noisy_clip: Path, media_dir: Path) -> list[Path]:
    async def run() -> list[Path]:
        c = composer()
        return [await c.normalize_clip(noisy_clip, media_dir / f"noisy-{i}.mp4", 2.0) for i in range(3)]

    return asyncio.run(run())


async def frame_png(video: Path, index: int, dst: Path) -> Image.Image:
    await run_ffmpeg(["-i", str(video), "-vf", f"select='eq(n,{index})'", "-frames:v", "1", str(dst)])
    with Image.open(dst) as im:
        return im.convert("RGB")


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def mean_diff(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def assert_normalised(info: MediaInfo, duration: float) -> None:
    assert (info.width, info.height) == (720, 1280)
    assert info.fps == 24
    assert info.codec == "h264" and info.pix_fmt == "yuv420p"
    assert not info.has_audio
    assert info.frames is not None and abs(info.frames / 24 - duration) <= FRAME + 1e-9
    assert info.duration_s is not None and abs(info.duration_s - duration) <= FRAME


# -- pure policy ----------------------------------------------------------------------------------


def test_target_bitrate_leaves_headroom_under_the_limit() -> None:
    b = target_bitrate(30, 10 * MiB)
    assert 2_400_000 < b < 2_600_000  # what a 10 MiB Discord upload allows a 30 s ad
    assert b * 30 / 8 + CONTAINER_OVERHEAD_BYTES <= 10 * MiB * 0.92 + 1
    assert target_bitrate(30, 25 * MiB) > b > target_bitrate(60, 10 * MiB)
    assert target_bitrate(30, 10 * MiB, safety=0.8) < b
    assert target_bitrate(30, 20_000) == 0  # smaller than the container itself


@pytest.mark.parametrize(("duration", "limit", "safety"), [(0, MiB, 0.9), (-1, MiB, 0.9), (30, 0, 0.9), (30, MiB, 0)])
def test_target_bitrate_rejects_nonsense(duration: float, limit: int, safety: float) -> None:
    with pytest.raises(ValueError):
        target_bitrate(duration, limit, safety=safety)


def test_the_floor_is_250_kbps_at_720p_and_big_outputs_step_down_before_giving_up() -> None:
    assert min_bitrate(720, 1280, 24) == MIN_VIDEO_BITRATE == 250_000
    assert min_bitrate(1080, 1920, 24) > 500_000
    assert fit_size(1080, 1920, 24, 2_500_000) == (1080, 1920)
    assert fit_size(1080, 1920, 24, 400_000) == (720, 1280)
    assert fit_size(720, 1280, 24, 260_000) == (720, 1280)


def test_a_capped_clip_budgets_for_the_encoder_burst() -> None:
    assert clip_maxrate(2_000_000, 4.0) < 2_000_000
    assert clip_maxrate(2_000_000, 2.0) < clip_maxrate(2_000_000, 6.0) < 2_000_000
    assert clip_maxrate(2_000_000, 6.0) > 1_800_000  # not needlessly stingy on longer scenes


def test_concat_list_quotes_paths_the_way_ffmpeg_reads_them() -> None:
    assert concat_line(Path("/data/jobs/ab12/scene-1.mp4")) == "file '/data/jobs/ab12/scene-1.mp4'\n"
    assert concat_line(Path("/data/team's ad/s.mp4")) == "file '/data/team'\\''s ad/s.mp4'\n"
    with pytest.raises(ComposeError):
        concat_line(Path("/data/evil\nfile '/etc/passwd'"))


def test_banner_parsing_reads_size_rate_codec_and_pixel_format() -> None:
    banner = (
        "Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'x.mp4':\n"
        "  Duration: 00:00:03.57, start: 0.000000, bitrate: 1525 kb/s\n"
        "  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709, progressive), "
        "576x1024 [SAR 1:1 DAR 9:16], 1523 kb/s, 23.98 fps, 23.98 tbr, 24k tbn (default)\n"
        "  Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, stereo, fltp, 128 kb/s\n"
    )
    info = parse_banner(banner)
    assert info == MediaInfo(3.57, 576, 1024, 23.98, "h264", "yuv420p", None, 1_525_000, True)


# -- ffmpeg plumbing --------------------------------------------------------------------------------


async def test_probe_counts_frames_of_an_svd_shaped_clip(svd_clip: Path) -> None:
    info = await probe(svd_clip, count_frames=True)
    assert (info.width, info.height, info.fps, info.frames) == (576, 1024, 7, 25)
    assert info.duration_s == pytest.approx(25 / 7, abs=0.01)
    assert not has_faststart(svd_clip)  # made like cog-svd: index at the end


async def test_a_failing_ffmpeg_says_why(tmp_path: Path) -> None:
    with pytest.raises(FfmpegError) as err:
        await run_ffmpeg(["-i", str(tmp_path / "missing.mp4"), str(tmp_path / "out.mp4")])
    assert err.value.returncode != 0
    assert "missing.mp4" in str(err.value)
    assert isinstance(err.value, ComposeError)


async def test_a_stuck_ffmpeg_is_killed_at_its_timeout() -> None:
    with pytest.raises(FfmpegError, match="longer than"):
        await run_ffmpeg(["-re", "-f", "lavfi", "-i", "testsrc2=r=1", "-f", "null", "-"], timeout=0.5)


async def test_cancelling_a_job_kills_its_ffmpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[asyncio.subprocess.Process] = []
    real_exec = asyncio.create_subprocess_exec

    async def spy(*args: object, **kwargs: object) -> asyncio.subprocess.Process:
        proc = await real_exec(*args, **kwargs)  # type: ignore[arg-type]
        started.append(proc)
        return proc

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spy)
    running = asyncio.Event()

    async def on_progress(_: float) -> None:
        running.set()

    task = asyncio.create_task(
        run_ffmpeg(["-re", "-f", "lavfi", "-i", "testsrc2=r=25", "-f", "null", "-"],
                   progress=on_progress, duration_s=3600)
    )  # fmt: skip
    await running.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(started) == 1
    assert started[0].returncode is not None and started[0].returncode < 0  # killed and reaped


# -- normalising one clip ---------------------------------------------------------------------------


@pytest.mark.parametrize("duration", [4.0, 6.5])
async def test_a_clip_is_retimed_to_its_scene_at_24_fps_in_9_16(
    svd_clip: Path, tmp_path: Path, duration: float
) -> None:
    out = await composer().normalize_clip(svd_clip, tmp_path / "scene.mp4", duration)
    assert out == tmp_path / "scene.mp4"
    assert_normalised(await probe(out, count_frames=True), duration)
    assert has_faststart(out)
    assert names(tmp_path) == ["scene.mp4"]  # no temp files left behind


async def test_a_caption_is_burned_into_the_lower_third(svd_clip: Path, tmp_path: Path) -> None:
    c = composer()
    plain = await c.normalize_clip(svd_clip, tmp_path / "plain.mp4", 3.0)
    captioned = await c.normalize_clip(
        svd_clip, tmp_path / "captioned.mp4", 3.0, caption="Café-grade light — all night 🚀"
    )
    assert_normalised(await probe(captioned, count_frames=True), 3.0)
    a = await frame_png(plain, 60, tmp_path / "a.png")
    b = await frame_png(captioned, 60, tmp_path / "b.png")
    lower_third = (0, int(1280 * 0.62), 720, int(1280 * 0.80))
    top = (0, 0, 720, int(1280 * 0.5))
    assert mean_diff(a.crop(lower_third), b.crop(lower_third)) > 15
    assert mean_diff(a.crop(top), b.crop(top)) < 3
    # Fading in: the caption is fainter on the first frame than once it has settled.
    first = await frame_png(captioned, 0, tmp_path / "c.png")
    plain_first = await frame_png(plain, 0, tmp_path / "d.png")
    assert mean_diff(first.crop(lower_third), plain_first.crop(lower_third)) < mean_diff(
        a.crop(lower_third), b.crop(lower_third)
    )


async def test_any_input_aspect_is_cover_cropped_to_the_output(media_dir: Path, tmp_path: Path) -> None:
    landscape = await asyncio.to_thread(
        _make_clip, tmp_path / "wide.mp4", "testsrc2=s={w}x{h}:r=7", width=1024, height=576, frames=14
    )
    out = await composer().normalize_clip(landscape, tmp_path / "scene.mp4", 2.5)
    assert_normalised(await probe(out, count_frames=True), 2.5)
    frame = await frame_png(out, 10, tmp_path / "f.png")
    # Cover, not letterbox: the top rows carry picture, not black bars.
    assert ImageStat.Stat(frame.crop((0, 0, 720, 40)).convert("L")).mean[0] > 30


async def test_interpolation_makes_in_between_frames(svd_clip: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.mp4"
    await run_ffmpeg(["-i", str(svd_clip), "-frames:v", "3", "-c", "copy", str(short)])
    dup = await Composer(360, 640, preset="ultrafast").normalize_clip(short, tmp_path / "dup.mp4", 1.0)
    mci = await Composer(360, 640, preset="ultrafast", interpolate=True).normalize_clip(
        short, tmp_path / "mci.mp4", 1.0
    )
    info = await probe(mci, count_frames=True)
    assert info.frames == 24 and info.fps == 24
    # Frame 4 lies between source frames 0 and 1: duplication repeats frame 0, mci synthesises.
    d0, d4 = await frame_png(dup, 0, tmp_path / "d0.png"), await frame_png(dup, 4, tmp_path / "d4.png")
    m0, m4 = await frame_png(mci, 0, tmp_path / "m0.png"), await frame_png(mci, 4, tmp_path / "m4.png")
    assert mean_diff(d0, d4) < 1
    assert mean_diff(m0, m4) > mean_diff(d0, d4) + 0.1


# -- joining the ad -------------------------------------------------------------------------------


async def test_six_scenes_join_by_stream_copy_into_a_30_s_ad(normalised: list[Path], media_dir: Path) -> None:
    result = await composer().join(normalised, media_dir / "final.mp4", byte_limit=10 * MiB)
    assert result.encodes == 0
    assert result.path == media_dir / "final.mp4"
    assert result.bytes == result.path.stat().st_size <= 10 * MiB
    assert result.duration_s == pytest.approx(30.0, abs=FRAME)
    info = await probe(result.path, count_frames=True)
    assert_normalised(info, 30.0)
    assert info.frames == 720
    assert has_faststart(result.path)
    # The copy is clean: a full decode reports no errors (mismatched parameters would).
    assert await run_ffmpeg(["-v", "error", "-i", str(result.path), "-f", "null", "-"]) == ""
    assert not [n for n in names(media_dir) if n.startswith(".")]


async def test_an_ad_over_the_upload_limit_is_re_encoded_to_fit(noisy_normalised: list[Path], tmp_path: Path) -> None:
    limit = int(1.5 * MiB)
    c = composer()
    copied = await c.join(noisy_normalised, tmp_path / "copy.mp4")
    assert copied.bytes > limit, "test content must be too big for a plain copy"
    result = await c.join(noisy_normalised, tmp_path / "final.mp4", byte_limit=limit)
    assert result.encodes >= 1
    assert result.bytes == result.path.stat().st_size <= limit
    info = await probe(result.path, count_frames=True)
    assert_normalised(info, 6.0)
    assert has_faststart(result.path)


async def test_clips_capped_at_the_target_bitrate_join_by_copy_under_the_limit(
    noisy_clip: Path, tmp_path: Path
) -> None:
    # What the orchestrator does: cap every clip as it arrives, so the last step stays a copy.
    limit = int(1.5 * MiB)
    c = composer()
    cap = target_bitrate(3 * 2.0, limit)
    clips = [await c.normalize_clip(noisy_clip, tmp_path / f"s{i}.mp4", 2.0, max_bitrate=cap) for i in range(3)]
    result = await c.join(clips, tmp_path / "final.mp4", byte_limit=limit)
    assert result.encodes == 0
    assert result.bytes <= limit


async def test_an_impossible_limit_fails_clearly_and_writes_nothing(
    noisy_normalised: list[Path], tmp_path: Path
) -> None:
    with pytest.raises(DoesNotFit) as err:
        await composer().join(noisy_normalised, tmp_path / "final.mp4", byte_limit=50_000)
    assert err.value.limit == 50_000 and err.value.size > 50_000
    assert "upload limit" in err.value.user_message
    assert names(tmp_path) == []


async def test_a_clip_in_another_format_is_re_normalised_before_the_join(
    normalised: list[Path], svd_clip: Path, tmp_path: Path
) -> None:
    # An SVD clip that never went through normalize_clip: 576x1024 at 7 fps.
    result = await composer().join([normalised[0], svd_clip], tmp_path / "final.mp4")
    assert result.encodes == 1
    info = await probe(result.path, count_frames=True)
    assert (info.width, info.height, info.fps) == (720, 1280, 24)
    assert result.duration_s == pytest.approx(4.0 + 25 / 7, abs=2 * FRAME)


async def test_an_urgent_clip_keeps_the_stream_headers_so_the_join_still_copies(svd_clip: Path, tmp_path: Path) -> None:
    # The product's own preset: the clip the ad waits on is encoded with less analysis...
    c = Composer(360, 640)
    normal = await c.normalize_clip(svd_clip, tmp_path / "a.mp4", 2.0, caption="Fast")
    urgent = await c.normalize_clip(svd_clip, tmp_path / "b.mp4", 2.0, caption="Fast", urgent=True)
    # (x264 writes its settings into the stream: the urgent one really was encoded differently)
    assert b"subme=1 " in urgent.read_bytes() and b"subme=1 " not in normal.read_bytes()
    # ...yet its decoder configuration (SPS/PPS) is byte for byte the same,
    assert avc_decoder_config(urgent) == avc_decoder_config(normal) is not None
    # as is a clip capped for an upload limit (VBV leaves the headers alone too);
    capped = await c.normalize_clip(svd_clip, tmp_path / "c.mp4", 2.0, max_bitrate=400_000)
    assert avc_decoder_config(capped) == avc_decoder_config(normal)
    # so a composer that made none of them (as after a restart) still joins them by stream copy, cleanly.
    result = await Composer(360, 640).join([normal, urgent, capped], tmp_path / "final.mp4")
    assert result.encodes == 0
    assert (await probe(result.path, count_frames=True)).frames == 144
    assert await run_ffmpeg(["-v", "error", "-i", str(result.path), "-f", "null", "-"]) == ""


async def test_a_clip_with_other_stream_headers_is_re_normalised_not_copied(svd_clip: Path, tmp_path: Path) -> None:
    ours = await Composer(360, 640).normalize_clip(svd_clip, tmp_path / "a.mp4", 2.0)
    # Same size, rate, codec and pixel format, but another preset: other SPS/PPS (no CABAC, …).
    theirs = await Composer(360, 640, preset="ultrafast").normalize_clip(svd_clip, tmp_path / "b.mp4", 2.0)
    a, b = await probe(ours), await probe(theirs)
    assert (a.width, a.height, a.fps, a.codec, a.pix_fmt) == (b.width, b.height, b.fps, b.codec, b.pix_fmt)
    assert avc_decoder_config(theirs) != avc_decoder_config(ours)
    result = await Composer(360, 640).join([ours, theirs], tmp_path / "final.mp4")
    assert result.encodes == 1
    assert (await probe(result.path, count_frames=True)).frames == 96
    assert await run_ffmpeg(["-v", "error", "-i", str(result.path), "-f", "null", "-"]) == ""


async def test_a_clip_replaced_on_disk_is_looked_at_again(svd_clip: Path, tmp_path: Path) -> None:
    c = composer()
    first = await c.normalize_clip(svd_clip, tmp_path / "a.mp4", 2.0)
    second = await c.normalize_clip(svd_clip, tmp_path / "b.mp4", 2.0)
    # Behind the composer's back: scene b is now a raw SVD clip (576x1024, 7 fps).
    await asyncio.to_thread(shutil.copyfile, svd_clip, second)
    result = await c.join([first, second], tmp_path / "final.mp4")
    assert result.encodes == 1
    info = await probe(result.path, count_frames=True)
    assert (info.width, info.height, info.fps) == (720, 1280, 24)


async def test_joining_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ComposeError):
        await composer().join([], tmp_path / "final.mp4")


# -- contact sheet --------------------------------------------------------------------------------


async def test_the_contact_sheet_shows_every_scene(tmp_path: Path) -> None:
    images = []
    for i in range(6):
        p = tmp_path / f"seed-{i + 1}.png"
        Image.new("RGB", (576, 1024), (40 * i, 90, 200 - 30 * i)).save(p)
        images.append(p)
    images[3] = tmp_path / "missing.png"  # a failed scene still gets its tile
    labels = ["hook · 4s", "intro · 5s", "feature · 6s", "feature · 6s", "feature · 5s", "cta · 4s"]
    title = "Lumen — light that follows you"
    out = await composer().contact_sheet(images, labels, tmp_path / "sheet.png", title=title)
    _, _, width, height = sheet_layout(6)
    with Image.open(out) as im:
        assert im.format == "PNG"
        assert im.size == (width, height)
        assert im.size[0] > 3 * 200 and im.size[1] > 2 * 400  # three columns, two rows of 9:16 tiles
    with pytest.raises(ValueError):
        await composer().contact_sheet(images, labels[:2], tmp_path / "bad.png", title="x")

"""Offline seeds and clips: what a new user without API keys sees first, so it must look like an ad
storyboard, say plainly that it's an offline preview, and be shaped exactly like SDXL/SVD output."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from pipeline.captions import build_ass, text_top
from pipeline.errors import ProviderError
from pipeline.ffmpeg import has_faststart, probe, run_ffmpeg
from pipeline.models import Beat, Scene, StageName, Storyboard
from pipeline.moods import Mood, mood_preset
from pipeline.providers.base import ClipRequest, ImageGenerator, SeedRequest, StageContext, VideoGenerator
from pipeline.providers.offline_images import (
    CAMERA_SAFE,
    OFFLINE_LABEL,
    OfflineImageGenerator,
    SeedPainter,
    derive_seed,
    offline_band,
    product_name,
)
from pipeline.providers.offline_video import OfflineVideoGenerator, camera_move, side_cut
from pipeline.speech_timing import WordTiming
from pipeline.typography import drawable

PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm, dims itself at night and charges your phone"


def storyboard() -> Storyboard:
    beats = [Beat.HOOK, Beat.INTRO, Beat.FEATURE, Beat.FEATURE, Beat.FEATURE, Beat.CTA]
    texts = [
        "A dark desk at 2 a.m.; a harsh overhead light makes a tired face squint.",
        "Lumen appears on a clean oak desk, a slim arc of warm light.",
        "Morning: the lamp glows cool blue-white, matching daylight through the window.",
        "Evening: Lumen shifts to a warm amber as the city lights come on outside.",
        "A phone set on the base lights up with a charging ring. No cables in sight.",
        "Lumen on the desk with the line: Order at lumen.example",
    ]
    return Storyboard(
        title="Lumen: light that keeps your rhythm",
        scenes=[
            Scene(index=i + 1, beat=b, duration=d, description=t, visual_prompt=t)
            for i, (b, d, t) in enumerate(zip(beats, [4, 5, 6, 6, 5, 4], texts, strict=True))
        ],
    )


class Progress:
    def __init__(self) -> None:
        self.reports: list[float] = []

    async def __call__(self, percent: float, note: str | None) -> None:
        self.reports.append(percent)


def ctx(stage: StageName, index: int = 1, progress: Progress | None = None) -> StageContext:
    return StageContext(job_id="j1", scene_index=index, stage=stage, attempt=1, on_progress=progress)


def seed_request(dest: Path, index: int = 1, *, mood: Mood = Mood.TECH, seed: int | None = None,
                 width: int = 576, height: int = 1024, product: str = PRODUCT) -> SeedRequest:  # fmt: skip
    sb = storyboard()
    return SeedRequest(storyboard=sb, scene=sb.scenes[index - 1], mood=mood_preset(mood), product=product,
                       width=width, height=height, steps=20, dest=dest, seed=seed)  # fmt: skip


def clip_request(seed_image: Path, dest: Path, index: int = 1, **kw: object) -> ClipRequest:
    sb = storyboard()
    return ClipRequest(scene=sb.scenes[index - 1], mood=mood_preset(Mood.TECH), seed_image=seed_image,
                       dest=dest, **kw)  # type: ignore[arg-type]  # fmt: skip


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def diff(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


async def frame(video: Path, index: int, dst: Path) -> Image.Image:
    await run_ffmpeg(["-i", str(video), "-vf", f"select='eq(n,{index})'", "-frames:v", "1", str(dst)])
    with Image.open(dst) as im:
        return im.convert("RGB")


@pytest.fixture(scope="module")
def seed_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import asyncio

    dest = tmp_path_factory.mktemp("seeds") / "seed-1.png"
    asyncio.run(OfflineImageGenerator().generate(seed_request(dest), ctx(StageName.SEED)))
    return dest


# -- the painter ------------------------------------------------------------------------------------


def test_offline_providers_implement_the_interfaces() -> None:
    assert isinstance(OfflineImageGenerator(), ImageGenerator)
    assert isinstance(OfflineVideoGenerator(), VideoGenerator)
    assert OfflineImageGenerator.offline and OfflineVideoGenerator.offline
    assert (OfflineImageGenerator.name, OfflineVideoGenerator.name) == ("offline-painter", "offline-animator")


async def test_a_seed_is_a_png_of_the_requested_size_labelled_offline(tmp_path: Path) -> None:
    progress = Progress()
    dest = tmp_path / "job" / "seed-1.png"
    result = await OfflineImageGenerator().generate(
        seed_request(dest, width=640, height=1136), ctx(StageName.SEED, progress=progress)
    )
    assert result.path == dest
    assert result.seed == derive_seed(PRODUCT, 1)
    with Image.open(dest) as im:
        assert im.format == "PNG" and im.size == (640, 1136) and im.mode == "RGB"
        assert im.text["jant:offline"] == "true" and OFFLINE_LABEL in im.text["Description"]
        # The offline band is really painted at the bottom of the picture.
        band, y = offline_band(640, 1136)
        assert diff(im.crop((0, y, 640, 1136)), band) < 1
    assert progress.reports[-1] == 100 and len(progress.reports) >= 3
    assert progress.reports == sorted(progress.reports)
    assert names(dest.parent) == ["seed-1.png"]


async def test_the_same_scene_paints_the_same_bytes(tmp_path: Path) -> None:
    gen = OfflineImageGenerator()
    a = await gen.generate(seed_request(tmp_path / "a.png", 3), ctx(StageName.SEED, 3))
    b = await gen.generate(seed_request(tmp_path / "b.png", 3), ctx(StageName.SEED, 3))
    assert a.seed == b.seed
    assert a.path.read_bytes() == b.path.read_bytes()


async def test_scenes_seeds_and_moods_look_different(tmp_path: Path) -> None:
    gen = OfflineImageGenerator()

    async def paint(name: str, **kw: object) -> Image.Image:
        r = await gen.generate(seed_request(tmp_path / name, **kw), ctx(StageName.SEED))  # type: ignore[arg-type]
        with Image.open(r.path) as im:
            return im.convert("RGB")

    hook, cta = await paint("1.png", index=1), await paint("6.png", index=6)
    reseeded = await paint("1b.png", index=1, seed=42)
    luxury = await paint("1l.png", index=1, mood=Mood.LUXURY)
    assert diff(hook, cta) > 3
    assert diff(hook, reseeded) > 1
    assert diff(hook, luxury) > 10


async def test_the_explicit_seed_is_used_and_reported(tmp_path: Path) -> None:
    req = seed_request(tmp_path / "s.png", seed=1234)
    r = await OfflineImageGenerator().generate(req, ctx(StageName.SEED))
    assert r.seed == 1234


async def test_text_the_bundled_font_cannot_draw_is_folded_not_boxed(tmp_path: Path) -> None:
    assert drawable("Café Crème — 20 € 🚀") == "Cafe Creme - 20 EUR"
    assert product_name(PRODUCT) == "Lumen"
    assert product_name("Brew, the quiet espresso machine") == "Brew"
    product = "Crème brûlée torch — 🔥 " + "very long product description " * 60
    req = seed_request(tmp_path / "u.png", product=product)
    r = await OfflineImageGenerator().generate(req, ctx(StageName.SEED))
    with Image.open(r.path) as im:
        assert im.size == (576, 1024)


# -- the animator -----------------------------------------------------------------------------------


async def test_a_clip_is_shaped_like_svd_xt_output(seed_png: Path, tmp_path: Path) -> None:
    progress = Progress()
    dest = tmp_path / "clip-1.mp4"
    result = await OfflineVideoGenerator().animate(clip_request(seed_png, dest), ctx(StageName.CLIP, progress=progress))
    assert result.path == dest and result.seed is not None
    info = await probe(dest, count_frames=True)
    assert (info.frames, info.fps, info.width, info.height) == (25, 7, 576, 1024)
    assert info.codec == "h264" and info.pix_fmt == "yuv420p"
    assert info.duration_s == pytest.approx(25 / 7, abs=0.02)
    assert has_faststart(dest)
    assert progress.reports[0] < 10 and progress.reports[-1] == 100
    assert names(tmp_path) == ["clip-1.mp4"]

    first, last = await frame(dest, 0, tmp_path / "f0.png"), await frame(dest, 24, tmp_path / "f24.png")
    picture = (0, 0, 576, 800)
    assert diff(first.crop(picture), last.crop(picture)) > 4, "the camera should move"
    # The offline label stays put while the picture moves.
    _, band_y = offline_band(576, 1024)
    assert diff(first.crop((0, band_y + 8, 576, 1024)), last.crop((0, band_y + 8, 576, 1024))) < 2


async def test_svd_14_frame_clips_and_frame_rate_follow_the_request(seed_png: Path, tmp_path: Path) -> None:
    dest = tmp_path / "clip.mp4"
    req = clip_request(seed_png, dest, 6, video_length="14_frames_with_svd", fps=5)
    await OfflineVideoGenerator(preset="ultrafast").animate(req, ctx(StageName.CLIP, 6))
    info = await probe(dest, count_frames=True)
    assert (info.frames, info.fps) == (14, 6)


async def test_an_unknown_video_length_is_a_final_error(seed_png: Path, tmp_path: Path) -> None:
    req = clip_request(seed_png, tmp_path / "c.mp4", video_length="100_frames")
    with pytest.raises(ProviderError) as err:
        await OfflineVideoGenerator().animate(req, ctx(StageName.CLIP))
    assert err.value.retryable is False
    with pytest.raises(ProviderError):
        missing_seed = clip_request(tmp_path / "nope.png", tmp_path / "c.mp4")
        await OfflineVideoGenerator().animate(missing_seed, ctx(StageName.CLIP))


def test_the_camera_move_follows_the_beat_and_the_mood() -> None:
    hook = camera_move(Beat.HOOK, 1, 127, 0)
    cta = camera_move(Beat.CTA, 6, 127, 0)
    assert hook.name == "push-in" and hook.zoom[1] > hook.zoom[0]
    assert cta.name == "pull-out" and cta.zoom[1] < cta.zoom[0]
    pans = {camera_move(Beat.FEATURE, i, 127, 0).name for i in (3, 4)}
    assert pans == {"pan-left", "pan-right"}  # consecutive features sweep opposite ways
    calm, lively = camera_move(Beat.HOOK, 1, 60, 0), camera_move(Beat.HOOK, 1, 200, 0)
    assert calm.zoom[1] < lively.zoom[1]


def test_no_camera_move_leaves_more_than_the_safe_margin_of_any_side_out_of_the_frame() -> None:
    """The seed's text lies inside CAMERA_SAFE; a move that cut deeper would cut the title's first
    letters off (a feature's pan at 20 % zoom used to leave out 17 % of a side)."""
    widest = 0.0
    for beat in Beat:
        for bucket in (1, 60, 127, 200, 255):
            for seed in range(0, 4096, 97):
                move = camera_move(beat, 3, bucket, seed)
                for step in range(11):
                    widest = max(widest, *side_cut(move, step / 10))
    assert widest <= CAMERA_SAFE + 1e-9
    assert widest > CAMERA_SAFE * 0.9  # the lively moves still use the room they have


@pytest.mark.parametrize("size", [(576, 1024), (720, 1280), (1080, 1920)])
@pytest.mark.parametrize(
    "headline",
    [None, "Meet Lumen.", "Stop scrolling: meet Lumen.", "Light that keeps your rhythm from dawn to the last call"],
)  # fmt: skip
def test_a_seeds_text_stays_inside_the_safe_margin_and_above_the_burned_in_captions(
    size: tuple[int, int], headline: str | None
) -> None:
    """The offline seed's description card ends above where the composer's headline and spoken words
    reach (they used to land on it: two texts over each other in the ad's first second), and the
    product disc fits between the two."""
    w, h = size
    for index in range(1, 7):
        request = seed_request(Path("unused.png"), index, width=w, height=h)
        scene = request.scene.model_copy(update={"on_screen_text": headline})
        lay = SeedPainter(SeedRequest(**{**request.__dict__, "scene": scene}), 1).layout
        assert lay.margin == round(w * CAMERA_SAFE)
        assert lay.card_top > lay.title_y and lay.card_bottom <= lay.text_top
        assert lay.card_bottom <= lay.hero_cy - lay.hero_r  # the disc is under the card, not on it
        assert lay.text_top == text_top(w, h, headline)


def test_text_top_is_where_the_spoken_words_over_the_headline_begin() -> None:
    """`text_top` agrees with `build_ass`: the karaoke line's top (bottom-anchored) is exactly there."""
    w, h = 1080, 1920
    words = [WordTiming("meet", 0.2, 0.5), WordTiming("Lumen.", 0.5, 1.0)]
    script = build_ass(w, h, 3.0, headline="Stop scrolling: meet Lumen.", words=words)
    assert script is not None
    caption = next(line for line in script.splitlines() if line.startswith("Dialogue: 2,"))
    pos = caption.split("\\pos(", 1)[1]
    bottom = int(pos.split(")", 1)[0].split(",")[1])
    size = int(caption.split("\\fs", 1)[1].split("}", 1)[0].split("\\", 1)[0])
    assert bottom - size == text_top(w, h, "Stop scrolling: meet Lumen.", caption_lines=1)

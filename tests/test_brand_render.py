"""The brand drawn into the ad, proven on extracted frames: the brand font and colours in the
captions, the logo watermark in its corner, the end card inside the last scene, the preview."""

from __future__ import annotations

import asyncio
import collections
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, ImageStat

from pipeline import typography as ty
from pipeline.brand import BRAND_FONTS, BrandKit
from pipeline.brand_preview import render_brand_preview
from pipeline.brand_style import HIGHLIGHT_CONTRAST, OUTLINE_CONTRAST, caption_style, contrast
from pipeline.captions import DEFAULT_STYLE, WHITE, ass_escape, build_ass, safe_area
from pipeline.composer import Composer
from pipeline.end_card import card_text, plan_card
from pipeline.ffmpeg import ffmpeg_exe, run_ffmpeg
from pipeline.speech_timing import WordTiming
from tests.test_captions import _burn, _flat_clip, count, frame_at, ink

W, H, FPS = 720, 1280, 24
PRIMARY, ACCENT = "#0e7490", "#facc15"
MAGENTA = (230, 30, 200)  # the test logo's disc: a colour nothing else in these frames has


@pytest.fixture(scope="module")
def flat_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _flat_clip(tmp_path_factory.mktemp("brand") / "flat.mp4")


@pytest.fixture(scope="module")
def logo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A magenta disc and a white bar with a transparent gap between them (transparency must
    show the scene through)."""
    img = Image.new("RGBA", (400, 200), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.ellipse((0, 0, 199, 199), fill=(*MAGENTA, 255))
    draw.rectangle((240, 40, 399, 159), fill=(255, 255, 255, 255))
    path = tmp_path_factory.mktemp("logo") / "logo.png"
    img.save(path)
    return path


def kit(logo: Path | None, **changes: object) -> BrandKit:
    values: dict[str, object] = {
        "name": "Lumen", "primary": PRIMARY, "accent": ACCENT, "cta": "Shop the lamp",
        "url": "https://lumen.example", "logo_path": str(logo) if logo else None,
    }  # fmt: skip
    return BrandKit(**{**values, **changes})


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return ty.hex_rgb(hex_colour)


def near(img: Image.Image, colour: tuple[int, int, int], tol: int = 10) -> Image.Image:
    """Pixels within `tol` of `colour` in every channel (4:2:0 and x264 shift flat colours a little)."""
    bands = [img.getchannel(c).point(lambda v, t=colour[c]: 255 if abs(v - t) <= tol else 0) for c in range(3)]
    return ImageChops.multiply(ImageChops.multiply(bands[0], bands[1]), bands[2]).convert("1")


def dominant(img: Image.Image) -> tuple[int, int, int]:
    """The most common colour, quantised to steps of 4 (noise-proof), as the step's centre."""
    small = img.resize((90, 160), Image.Resampling.NEAREST)
    data = small.tobytes()
    counts = collections.Counter(tuple(v // 4 for v in data[i : i + 3]) for i in range(0, len(data), 3))
    q = counts.most_common(1)[0][0]
    return (q[0] * 4 + 2, q[1] * 4 + 2, q[2] * 4 + 2)


def magenta(img: Image.Image) -> Image.Image:
    return near(img, MAGENTA, 30)


def _read_frames(dst: Path) -> list[Image.Image]:
    frames = []
    for p in sorted(dst.glob("f*.png")):
        with Image.open(p) as im:
            frames.append(im.convert("RGB"))
    return frames


async def all_frames(video: Path, dst: Path) -> list[Image.Image]:
    """Every frame, small (90x160): enough to say what each one shows."""
    await asyncio.to_thread(dst.mkdir, parents=True, exist_ok=True)
    await run_ffmpeg(["-i", str(video), "-vf", "scale=90:160:flags=area", str(dst / "f%04d.png")])
    return await asyncio.to_thread(_read_frames, dst)


async def branded(flat_clip: Path, tmp_path: Path, brand: BrandKit, *, seconds: float = 6.0, card: float = 2.5) -> Path:
    words = [WordTiming("Glow", 0.2, 0.9), WordTiming("all", 0.9, 1.6), WordTiming("night", 1.6, 2.4)]
    return await Composer(W, H, preset="ultrafast").normalize_clip(
        flat_clip, tmp_path / "b.mp4", seconds, caption="Glow all night", words=words, brand=brand, end_card_s=card
    )


# -- the end card --------------------------------------------------------------------------------


async def test_the_end_card_is_the_primary_colour_for_its_last_seconds_inside_the_scene(
    flat_clip: Path, logo: Path, tmp_path: Path
) -> None:
    out = await branded(flat_clip, tmp_path, kit(logo))
    frames = await all_frames(out, tmp_path / "frames")
    assert len(frames) == 6 * FPS, "the card is inside the scene, not added after it"
    primary = rgb(PRIMARY)
    on_card = [count(near(f, primary, 10)) > 0.6 * 90 * 160 for f in frames]
    first = on_card.index(True)
    assert all(on_card[first:]), "once shown, the card stays to the end"
    assert not any(on_card[:first])
    # The card starts 2.5 s before the end; its fade (0.4 s) reaches the colour a few frames in.
    assert 2.0 <= (len(frames) - first) / FPS <= 3.0
    last = await frame_at(out, 5.95, tmp_path / "last.png")
    assert all(abs(a - b) <= 6 for a, b in zip(dominant(last), primary, strict=True)), dominant(last)
    # The logo (large, centred in the safe zone), the CTA's accent button and the URL are on it.
    disc = magenta(last).getbbox()
    safe = safe_area(W, H)
    assert disc is not None and count(magenta(last)) > 5000
    assert disc[0] < safe.centre_x < disc[2] + 0.6 * (disc[2] - disc[0])
    assert count(near(last, rgb(ACCENT), 12)) > 8000
    assert count(near(last, WHITE, 40)) > 1000  # the URL (white on this dark teal) and the logo's bar
    # The headline and captions stop where the card starts: below the URL the card is bare.
    below = last.crop((0, round(0.72 * H), W, safe.bottom))
    assert count(near(below, primary, 10)) > 0.995 * below.width * below.height
    before = await frame_at(out, 1.25, tmp_path / "before.png")
    assert count(ink(before.crop((0, round(0.72 * H), W, safe.bottom)))) > 1000, "the headline was there"


@pytest.fixture(scope="module")
def busy_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SVD-sized clip of sharp black and white squares: blur shows as lost edges."""
    dst = tmp_path_factory.mktemp("busy") / "busy.mp4"
    subprocess.run(
        [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", "color=c=white:s=576x1024:r=7",
            "-vf", "drawgrid=w=48:h=48:t=24:c=black", "-frames:v", "25",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p", str(dst),
        ],
        check=True,
    )  # fmt: skip
    return dst


def edges(img: Image.Image, box: tuple[int, int, int, int]) -> float:
    return ImageStat.Stat(img.crop(box).convert("L").filter(ImageFilter.FIND_EDGES)).mean[0]


async def test_the_blurred_end_card_is_the_scene_blurred_and_darkened(
    busy_clip: Path, logo: Path, tmp_path: Path
) -> None:
    colour = await branded(busy_clip, tmp_path / "c", kit(logo))
    blurred = await branded(busy_clip, tmp_path / "b", kit(logo, end_card="blur"))
    a, b = await frame_at(colour, 5.95, tmp_path / "c.png"), await frame_at(blurred, 5.95, tmp_path / "b.png")
    scene = await frame_at(blurred, 1.0, tmp_path / "s.png")
    assert sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) > 60, "not the colour card"
    # A strip of picture below the text: the scene's squares, their edges gone, darker.
    strip = (0, round(0.72 * H), W, safe_area(W, H).bottom)
    assert edges(scene, strip) > 20 and edges(b, strip) < 0.15 * edges(scene, strip)
    assert ImageStat.Stat(b.crop(strip)).mean[0] < 0.7 * ImageStat.Stat(scene.crop(strip)).mean[0]
    assert count(magenta(b)) > 5000, "the logo is on the blurred card too"


async def test_the_ad_keeps_its_length_with_the_end_card_and_ends_on_it(
    flat_clip: Path, logo: Path, tmp_path: Path
) -> None:
    """Six scenes adding up to 30 s, the last one carrying the card: the joined ad is still 30 s,
    and its last 2-3 s are the card."""
    c = Composer(W // 2, H // 2, preset="ultrafast")
    durations = [4.0, 5.0, 6.0, 6.0, 5.0, 4.0]
    clips = []
    for i, d in enumerate(durations):
        last = i == len(durations) - 1
        clips.append(
            await c.normalize_clip(
                flat_clip, tmp_path / f"s{i}.mp4", d, caption="Scene", brand=kit(logo),
                end_card_s=2.5 if last else 0.0,
            )
        )  # fmt: skip
    result = await c.join(clips, tmp_path / "final.mp4")
    assert 29.0 <= result.duration_s <= 31.0
    frames = await all_frames(result.path, tmp_path / "frames")
    on_card = [count(near(f, rgb(PRIMARY), 10)) > 0.6 * 90 * 160 for f in frames]
    assert 2.0 <= sum(on_card) / FPS <= 3.0 and all(on_card[-sum(on_card) :])


# -- the watermark -------------------------------------------------------------------------------


@pytest.mark.parametrize("corner", ["top-left", "top-right", "none"])
async def test_the_logo_sits_in_the_chosen_corner_inside_the_safe_zone(
    flat_clip: Path, logo: Path, tmp_path: Path, corner: str
) -> None:
    out = await branded(flat_clip, tmp_path, kit(logo, logo_corner=corner))
    frame = await frame_at(out, 1.0, tmp_path / "f.png")
    disc = magenta(frame)
    if corner == "none":
        assert count(disc) == 0
        return
    box = disc.getbbox()
    assert box is not None and count(disc) > 300
    safe = safe_area(W, H)
    assert safe.top <= box[1] and box[3] < safe.top + 0.1 * H, "just below the platforms' top band"
    if corner == "top-left":
        assert safe.left <= box[0] and box[2] < W / 2
    else:
        assert box[0] > W / 2 and box[2] <= safe.right
    # The logo's transparent gap shows the scene (grey) between the disc and the bar.
    gap = frame.crop((box[2] + 2, box[1] + 10, box[2] + 8, box[3] - 10))
    assert count(ink(gap)) == 0


@pytest.mark.parametrize("size", [(1080, 1920), (540, 960)])
async def test_the_watermark_scales_with_the_output(
    flat_clip: Path, logo: Path, tmp_path: Path, size: tuple[int, int]
) -> None:
    w, h = size
    out = await Composer(w, h, preset="ultrafast").normalize_clip(flat_clip, tmp_path / "w.mp4", 1.0, brand=kit(logo))
    box = magenta(await frame_at(out, 0.5, tmp_path / "w.png")).getbbox()
    assert box is not None
    # The disc is half the logo's width; the logo fills a 220x120 box at 1080 wide.
    assert abs((box[2] - box[0]) - 110 * w / 1080) <= 3


# -- text in the brand's font and colours ---------------------------------------------------------


async def test_captions_use_the_accent_for_the_spoken_word(flat_clip: Path, tmp_path: Path) -> None:
    out = await branded(flat_clip, tmp_path, kit(None, accent="#22d3ee"))
    frame = await frame_at(out, 1.25, tmp_path / "k.png")
    style = caption_style(kit(None, accent="#22d3ee"))
    assert count(near(frame, style.highlight, 30)) > 300, "the word being spoken is in the accent colour"
    assert count(near(frame, (255, 212, 0), 30)) == 0, "not the unbranded yellow"
    assert count(near(frame, style.outline, 12)) > 1000, "outlined in the (darkened) primary colour"


def test_brand_colours_are_adjusted_until_they_read() -> None:
    pale = caption_style(BrandKit(primary="#fde68a", accent="#fef3c7"))
    assert contrast(WHITE, pale.outline) >= OUTLINE_CONTRAST
    assert contrast(pale.highlight, pale.outline) >= HIGHLIGHT_CONTRAST
    dark = caption_style(BrandKit(primary="#0b1020", accent="#f97316"))
    assert dark.outline == (11, 16, 32) and dark.highlight == (249, 115, 22), "readable colours stay as given"


def _glyph_grid_script(family: str, chars: str) -> str:
    events = []
    for i, ch in enumerate(chars):
        x, y = 90 + (i % 6) * 108, 160 + (i // 6) * 160
        events.append(f"Dialogue: 3,0:00:00.00,0:00:01.00,Card,,0,0,0,,{{\\an5\\pos({x},{y})\\fs96}}{ass_escape(ch)}")
    script = build_ass(W, H, 1.0, style=caption_style(BrandKit(font=_key(family))), extra=events)
    assert script is not None
    return script


def _key(family: str) -> str:
    return next(k for k, v in BRAND_FONTS.items() if v == family)


SAMPLE = "Café — Привет — 日本語"
NOT_IN_ANY_FONT = "\U0010fffd"


@pytest.mark.parametrize("family", sorted(BRAND_FONTS.values()))
async def test_every_brand_font_draws_every_glyph_with_the_bundled_fallbacks(family: str, tmp_path: Path) -> None:
    chars = [ch for ch in SAMPLE if not ch.isspace()] + [NOT_IN_ANY_FONT]
    frame = await _burn(_glyph_grid_script(family, "".join(chars)), ty.FONTS_DIR, tmp_path, family.replace(" ", ""))
    cells = []
    for i in range(len(chars)):
        x, y = 90 + (i % 6) * 108, 160 + (i // 6) * 160
        cells.append(ink(frame.crop((x - 54, y - 70, x + 54, y + 70))))
    missing = cells[-1]  # what a glyph no font has looks like (a box, or nothing)
    for ch, cell in zip(chars[:-1], cells[:-1], strict=True):
        assert count(cell) > 60, f"{ch!r} drew nothing in {family}"
        assert count(ImageChops.logical_xor(cell, missing)) > 0.3 * count(cell), f"{ch!r} is a missing-glyph box"
    # Every distinct character drew a distinct shape.
    shapes = {ch: bytes(cell.tobytes()) for ch, cell in zip(chars[:-1], cells[:-1], strict=True)}
    assert len(set(shapes.values())) == len(shapes)


def _shape(mask: Image.Image) -> Image.Image:
    box = mask.getbbox()
    assert box is not None
    return mask.crop(box).convert("L").resize((240, 60), Image.Resampling.BILINEAR)


def _similarity(a: Image.Image, b: Image.Image) -> float:
    return 1 - ImageStat.Stat(ImageChops.difference(a, b)).mean[0] / 255


@pytest.mark.parametrize("family", sorted(BRAND_FONTS.values()))
async def test_the_kits_font_is_the_one_drawn(family: str, tmp_path: Path) -> None:
    """libass's rendering of a word in the kit's font looks most like Pillow's rendering of the
    same word in that font file, of all the bundled brand fonts."""
    word = "Handgloves"
    event = f"Dialogue: 3,0:00:00.00,0:00:01.00,Card,,0,0,0,,{{\\an5\\pos(360,640)\\fs120\\bord0}}{word}"
    script = build_ass(W, H, 1.0, style=caption_style(BrandKit(font=_key(family))), extra=[event])
    assert script is not None
    drawn = _shape(ink(await _burn(script, ty.FONTS_DIR, tmp_path, "word")))
    scores = {}
    for other in BRAND_FONTS.values():
        face = ty.STYLE_FACES[other]
        img = Image.new("L", (1400, 300), 0)
        ImageDraw.Draw(img).text((20, 40), word, font=ImageFont.truetype(str(face.path), 120), fill=255)
        scores[other] = _similarity(drawn, _shape(img.point(lambda v: 255 if v > 96 else 0)))
    assert max(scores, key=lambda k: scores[k]) == family, scores


# -- text safety ---------------------------------------------------------------------------------


def test_card_text_cannot_inject_ass_tags() -> None:
    attack = kit(None, cta="{\\fs300\\c&H0000FF&}Buy", name="Lumen {\\an1}")
    plan = plan_card(attack, card_text(attack, None), W, H, 3.5, 7.0)
    for event in plan.events:
        body = event.split(",,", 1)[1]
        tags, text = body.split("}", 1)  # our one leading override block, then the text
        assert "{" not in text.replace("\\{", "") and "}" not in text.replace("\\}", ""), event
        assert "\\fs300" not in tags and "\\an1" not in tags


def test_the_cta_is_the_kits_else_the_requests() -> None:
    assert card_text(kit(None), "Buy now").cta == "Shop the lamp"
    assert card_text(kit(None, cta=None), "Buy now").cta == "Buy now"
    assert card_text(BrandKit(), None).empty


# -- the preview ---------------------------------------------------------------------------------


async def test_the_preview_shows_a_caption_sample_and_the_end_card(logo: Path, tmp_path: Path) -> None:
    dest = await asyncio.to_thread(render_brand_preview, kit(logo), tmp_path / "preview.png")
    with Image.open(dest) as im:
        sheet = im.convert("RGB")
    assert sheet.size == (2 * 540 + 3 * 24, 960 + 2 * 24)
    left, right = sheet.crop((24, 24, 564, 984)), sheet.crop((588, 24, 1128, 984))
    assert dominant(right) != dominant(left)
    assert all(abs(a - b) <= 6 for a, b in zip(dominant(right), rgb(PRIMARY), strict=True))
    assert count(magenta(left)) > 100, "the watermark on the caption sample"
    assert count(magenta(right)) > 2000, "the logo on the card"
    style = caption_style(kit(logo))
    assert count(near(left, style.highlight, 30)) > 100, "a word lit in the accent colour"


async def test_a_branded_scene_is_the_same_bytes_every_time(flat_clip: Path, logo: Path, tmp_path: Path) -> None:
    a = await branded(flat_clip, tmp_path / "a", kit(logo, end_card="blur"), seconds=3.0, card=2.0)
    b = await branded(flat_clip, tmp_path / "b", kit(logo, end_card="blur"), seconds=3.0, card=2.0)
    assert await asyncio.to_thread(a.read_bytes) == await asyncio.to_thread(b.read_bytes)


def test_colours_left_at_their_defaults_keep_the_classic_captions() -> None:
    assert caption_style(BrandKit()) == DEFAULT_STYLE
    serif = caption_style(BrandKit(font="noto-serif"))
    assert serif.family == "Noto Serif"
    assert (serif.outline, serif.highlight) == (DEFAULT_STYLE.outline, DEFAULT_STYLE.highlight)
    only_primary = caption_style(BrandKit(primary="#0e7490"))
    assert only_primary.outline == (14, 116, 144) and contrast(only_primary.highlight, only_primary.outline) >= 3


async def test_an_offline_previews_end_card_still_says_it_is_a_preview(
    flat_clip: Path, logo: Path, tmp_path: Path
) -> None:
    """The card covers the "OFFLINE PREVIEW" band an offline scene carries, so it says so itself."""
    note = "OFFLINE PREVIEW · drawn locally"
    words = [WordTiming("Glow", 0.2, 0.9)]
    out = await Composer(W, H, preset="ultrafast").normalize_clip(
        flat_clip, tmp_path / "n.mp4", 6.0, words=words, brand=kit(logo), end_card_s=2.5, card_note=note
    )
    last = await frame_at(out, 5.95, tmp_path / "last.png")
    safe = safe_area(W, H)
    foot = last.crop((0, safe.bottom - 60, W, safe.bottom))
    lettered = foot.width * foot.height - count(near(foot, rgb(PRIMARY), 10))
    assert lettered > 300, "the note is drawn at the card's foot"
    plain = await branded(flat_clip, tmp_path, kit(logo))
    bare = (await frame_at(plain, 5.95, tmp_path / "bare.png")).crop((0, safe.bottom - 60, W, safe.bottom))
    assert count(near(bare, rgb(PRIMARY), 10)) > 0.995 * bare.width * bare.height  # no note: bare card

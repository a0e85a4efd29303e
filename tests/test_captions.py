"""Burned-in captions, proven on frames: the spoken word is lit, every script draws, nothing
leaves the safe zone, user text can't inject ASS tags, and "off" draws nothing."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import string
import subprocess
from pathlib import Path

import pytest
from fontTools import subset
from fontTools.ttLib import TTFont
from PIL import Image, ImageChops, ImageStat

from pipeline import typography as ty
from pipeline.captions import (
    ass_escape,
    build_ass,
    drawable_text,
    safe_area,
    split_unspaced,
    uncovered_characters,
    uncovered_scripts,
    word_groups,
)
from pipeline.composer import Composer, filter_value
from pipeline.ffmpeg import ffmpeg_exe, run_ffmpeg
from pipeline.speech_timing import WordTiming, proportional_word_timings

GREY = (90, 90, 90)
FPS = 24


def _flat_clip(dst: Path) -> Path:
    """An SVD-sized clip of flat grey: any pixel that is not grey was drawn by the captions."""
    subprocess.run(
        [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", "color=c=0x5a5a5a:s=576x1024:r=7", "-frames:v", "25",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p", str(dst),
        ],
        check=True,
    )  # fmt: skip
    return dst


@pytest.fixture(scope="module")
def flat_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _flat_clip(tmp_path_factory.mktemp("captions") / "flat.mp4")


async def frame_at(video: Path, seconds: float, dst: Path) -> Image.Image:
    index = round(seconds * FPS)
    await run_ffmpeg(["-i", str(video), "-vf", f"select='eq(n,{index})'", "-frames:v", "1", str(dst)])
    with Image.open(dst) as im:
        return im.convert("RGB")


def _band(img: Image.Image, channel: int, low: int, high: int) -> Image.Image:
    return img.getchannel(channel).point(lambda v: 255 if low <= v <= high else 0, mode="1")


def _all(*masks: Image.Image) -> Image.Image:
    out = masks[0]
    for m in masks[1:]:
        out = ImageChops.logical_and(out, m)
    return out


def ink(img: Image.Image) -> Image.Image:
    """Pixels that are not the background grey (text, outline, shadow, panel)."""
    grey = _all(*(_band(img, c, g - 24, g + 24) for c, g in enumerate(GREY)))
    return ImageChops.invert(grey)


def highlight(img: Image.Image) -> Image.Image:
    """The karaoke highlight's yellow (255, 212, 0), allowing for 4:2:0 chroma."""
    return _all(_band(img, 0, 201, 255), _band(img, 1, 151, 255), _band(img, 2, 0, 89))


def red(img: Image.Image) -> Image.Image:
    return _all(_band(img, 0, 151, 255), _band(img, 1, 0, 89), _band(img, 2, 0, 89))


def white(img: Image.Image) -> Image.Image:
    return _all(*(_band(img, c, 216, 255) for c in range(3)))


def count(mask: Image.Image) -> int:
    return mask.convert("L").histogram()[255]


TIMED = (
    WordTiming("Glow", 0.2, 0.9),
    WordTiming("all", 0.9, 1.6),
    WordTiming("night", 1.6, 2.4),
)


# -- frames --------------------------------------------------------------------------------------


async def test_the_word_being_spoken_is_the_one_highlighted(flat_clip: Path, tmp_path: Path) -> None:
    out = await Composer(720, 1280, preset="ultrafast").normalize_clip(flat_clip, tmp_path / "k.mp4", 3.0, words=TIMED)
    boxes = []
    for i, w in enumerate(TIMED):
        frame = await frame_at(out, (w.start + w.end) / 2, tmp_path / f"{i}.png")
        lit = highlight(frame)
        assert count(lit) > 300, f"no highlighted word while {w.word!r} is spoken"
        assert count(white(frame)) > 600, "the group's other words are drawn white"
        boxes.append(lit.getbbox())
    # One group of three on one line: the lit box walks left to right, never two words at once.
    for (_, _, right, _), (left, _, _, _) in itertools.pairwise(boxes):
        assert right < left
    # After the last word nothing is drawn.
    assert count(ink(await frame_at(out, 2.8, tmp_path / "after.png"))) == 0


async def test_plain_captions_light_no_word_and_off_draws_none(flat_clip: Path, tmp_path: Path) -> None:
    c = Composer(720, 1280, preset="ultrafast")
    plain = await c.normalize_clip(flat_clip, tmp_path / "p.mp4", 3.0, words=TIMED, captions="plain")
    off = await c.normalize_clip(flat_clip, tmp_path / "o.mp4", 3.0, words=TIMED, captions="off")
    frame = await frame_at(plain, 1.25, tmp_path / "p.png")
    assert count(white(frame)) > 1000 and count(highlight(frame)) == 0
    assert count(ink(await frame_at(off, 1.25, tmp_path / "o.png"))) == 0


def _font_without(src: Path, dst: Path, keep: str) -> Path:
    """A copy of the bundled font (same family name) holding only `keep`: what libass draws
    with no fallback for the other scripts."""
    font = TTFont(src)
    options = subset.Options()
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=keep)
    subsetter.subset(font)
    dst.parent.mkdir(parents=True, exist_ok=True)
    font.save(dst)
    shutil.copy(ty.FONTS_CONFIG, dst.parent / "fonts.conf")  # this folder only, as in production
    return dst


async def _burn(script: str, fonts: Path, tmp_path: Path, name: str) -> Image.Image:
    ass = tmp_path / f"{name}.ass"
    ass.write_text(script, encoding="utf-8")
    png = tmp_path / f"{name}.png"
    await run_ffmpeg([
        "-f", "lavfi", "-i", "color=c=0x5a5a5a:s=720x1280:r=24:d=1",
        "-vf", f"ass=filename={filter_value(str(ass))}:fontsdir={filter_value(str(fonts))}",
        "-ss", "0.5", "-frames:v", "1", str(png),
    ], env={"FONTCONFIG_FILE": str(fonts / "fonts.conf")})  # fmt: skip
    with Image.open(png) as im:
        return im.convert("RGB")


@pytest.mark.parametrize("text", ["Café crème", "Привет", "日本語", "한국어 Ελληνικά"])
async def test_accents_cyrillic_and_cjk_draw_real_glyphs(text: str, tmp_path: Path) -> None:
    latin_only = await asyncio.to_thread(
        _font_without,
        ty.BUNDLED_FACES[0].path,
        tmp_path / "latin" / "latin.ttf",
        string.ascii_letters + " ",
    )
    words = [WordTiming(w, 0.0, 1.0) for w in text.split()]
    script = build_ass(720, 1280, 1.0, words=words, mode="plain")
    assert script is not None
    shipped = await _burn(script, ty.FONTS_DIR, tmp_path, "shipped")
    lacking = await _burn(script, latin_only.parent, tmp_path, "lacking")
    # What a font without those glyphs draws in the same place: nothing (libass has no
    # fallback outside the fonts it is given).
    drawn, fallback = ink(shipped), ink(lacking)
    glyphs = text.replace(" ", "")
    lacked = sum(1 for ch in glyphs if ch not in string.ascii_letters)
    assert count(drawn) > 400 * len(glyphs)
    assert count(fallback) < count(drawn)
    # The glyphs the Latin-only font lacks are where the two renders part: at least half their
    # share of the ink differs.
    diff = ImageChops.logical_xor(drawn, fallback)
    assert count(diff) > 0.5 * count(drawn) * lacked / len(glyphs), "the bundled fonts drew nothing more"
    assert drawable_text(text) == text


@pytest.mark.parametrize("size", [(1080, 1920), (720, 1280)])
async def test_captions_and_headline_stay_inside_the_safe_zone(
    flat_clip: Path, tmp_path: Path, size: tuple[int, int]
) -> None:
    w, h = size
    words = proportional_word_timings("Wonderful WWWWWWWWWWWWW MMMMMMM everywhere, entirely unmissable", 3.0)
    out = await Composer(w, h, preset="ultrafast").normalize_clip(
        flat_clip, tmp_path / "s.mp4", 3.0, caption="MMMM WWWW " * 8, words=words
    )
    sx, sy = w / 1080, h / 1920
    seen = 0
    for t in (0.4, 1.2, 2.0, 2.8):
        mask = ink(await frame_at(out, t, tmp_path / f"{t}.png"))
        seen += count(mask)
        for name, box in {
            "top": (0, 0, w, round(250 * sy)),
            "bottom": (0, h - round(420 * sy), w, h),
            "right": (w - round(170 * sx), 0, w, h),
        }.items():
            assert mask.crop(box).getbbox() is None, f"text in the {name} band at {t}s"
    assert seen > 10_000  # the frames did carry text


async def test_user_text_cannot_inject_ass_tags(flat_clip: Path, tmp_path: Path) -> None:
    c = Composer(720, 1280, preset="ultrafast")
    attack = "{\\c&H0000FF&}pwned \\N {\\fs200}big"
    literal = "(/c&H0000FF&)pwned /N (/fs200)big"  # same glyph count and widths, no backslash
    words = [WordTiming(x, 0.2, 2.8) for x in attack.split()]
    hit = await c.normalize_clip(flat_clip, tmp_path / "a.mp4", 3.0, caption=attack, words=words)
    ref = await c.normalize_clip(
        flat_clip, tmp_path / "b.mp4", 3.0, caption=literal, words=[WordTiming(x, 0.2, 2.8) for x in literal.split()]
    )
    frame, plain = await frame_at(hit, 1.5, tmp_path / "a.png"), await frame_at(ref, 1.5, tmp_path / "b.png")
    assert count(red(frame)) == 0, "an injected colour tag took effect"
    a, b = ink(frame).getbbox(), ink(plain).getbbox()
    assert a is not None and b is not None
    # \N or \fs200 taking effect would add a line or triple the size: the text keeps its shape.
    assert abs((a[3] - a[1]) - (b[3] - b[1])) < 0.1 * (b[3] - b[1])
    assert count(white(frame)) > 0.8 * count(white(plain))


async def test_a_headline_alone_renders_as_before_without_words(flat_clip: Path, tmp_path: Path) -> None:
    c = Composer(720, 1280, preset="ultrafast")
    a = await c.normalize_clip(flat_clip, tmp_path / "a.mp4", 2.0, caption="Café crème")
    b = await c.normalize_clip(flat_clip, tmp_path / "b.mp4", 2.0, caption="Café crème", words=None)
    fa, fb = await frame_at(a, 1.5, tmp_path / "a.png"), await frame_at(b, 1.5, tmp_path / "b.png")
    assert sum(ImageStat.Stat(ImageChops.difference(fa, fb)).mean) == 0
    box = ink(fa).getbbox()
    assert box is not None and box[1] > 1280 * 0.6  # the lower third, as before


# -- pure functions ------------------------------------------------------------------------------


def test_escaped_text_has_no_override_block_or_escape_left() -> None:
    escaped = ass_escape("{\\c&H0000FF&}x \\N \\n \\h }{")
    # Outside "\{" and "\}" no brace is left, and no backslash is followed by N, n or h.
    bare = escaped.replace("\\{", "").replace("\\}", "")
    assert "{" not in bare and "}" not in bare
    # Every other backslash is followed by a word joiner, so libass reads no escape after it.
    assert all(bare[i + 1 : i + 2] == "\u2060" for i, ch in enumerate(bare) if ch == "\\")
    assert bare.count("\\") == 4


def test_words_are_grouped_two_or_three_at_a_time_and_sentences_are_not_joined() -> None:
    def sizes(text: str) -> list[int]:
        return [len(g) for g in word_groups(proportional_word_timings(text, 5.0))]

    assert sizes("one two three four") == [2, 2]
    assert sizes("one two three four five") == [3, 2]
    assert sizes("one two three four five six seven") == [3, 2, 2]
    assert sizes("Buy now. Light that lasts all night!") == [2, 3, 2]
    assert sizes("Hi") == [1]


def test_unspaced_cjk_is_lit_a_few_characters_at_a_time() -> None:
    line = WordTiming("日本語のキャプションです。", 1.0, 3.6)  # 13 characters, no space
    pieces = split_unspaced([WordTiming("Hello", 0.0, 1.0), line])
    assert [p.word for p, _ in pieces] == ["Hello", "日本語", "のキャ", "プショ", "ンです。"]
    assert [g for _, g in pieces] == [False, True, True, True, False]
    assert pieces[1][0].start == 1.0 and pieces[-1][0].end == 3.6
    assert all(a.end == b.start for (a, _), (b, _) in itertools.pairwise(pieces[1:]))
    script = build_ass(720, 1280, 4.0, words=[line])
    assert script is not None
    # Glued back without spaces on screen; one event per piece, each lighting one piece.
    events = [ln for ln in script.splitlines() if ",Caption," in ln]
    assert len(events) == 4
    assert all(
        ev.replace("{\\1c&H00D4FF&}", "").replace("{\\1c&HFFFFFF&}", "").endswith(("キャ", "です。")) for ev in events
    )
    assert "日本語 " not in script


def test_every_spoken_word_is_lit_even_when_its_group_does_not_fit() -> None:
    line = "Wonderful WWWWWWWWWWWWW MMMMMMM everywhere, entirely unmissable"
    script = build_ass(1080, 1920, 3.0, words=proportional_word_timings(line, 3.0))
    assert script is not None
    lit = [
        ev.split("{\\1c&H00D4FF&}")[1].split("{")[0].split(" ")[0].replace("\\N", "")
        for ev in script.splitlines()
        if ",Caption," in ev
    ]
    assert lit == line.split()
    assert "…" not in script


def test_the_safe_area_scales_with_the_frame() -> None:
    big = safe_area(1080, 1920)
    assert (big.top, big.bottom, big.right) == (250, 1500, 910)
    small = safe_area(720, 1280)
    assert (small.top, small.bottom, small.right) == (167, 1000, 607)


def test_scripts_the_font_lacks_are_named_once() -> None:
    covered = "Café crème — Привет — Київ їжак — 日本語 한국어 Ελληνικά Straße Łódź Tiếng Việt İstanbul ş ğ"
    assert uncovered_characters(covered) == ""
    assert uncovered_scripts(covered) == []
    assert uncovered_scripts("สวัสดี Hello 🚀 مرحبا สวัสดี") == ["Thai", "Emoji and symbols", "Arabic"]
    # What the font lacks is left out of the drawn text, never drawn as boxes.
    assert drawable_text("Hello 🚀 world") == "Hello world"
    script = build_ass(720, 1280, 2.0, words=[WordTiming("สวัสดี", 0, 1), WordTiming("Hello", 1, 2)])
    assert script is not None and "ส" not in script and "Hello" in script


def test_glyph_coverage_is_the_fonts_cmap() -> None:
    cmaps = [TTFont(face.path)["cmap"].getBestCmap() for face in ty.BUNDLED_FACES]
    sample = "aéЖжїΆά日本語한ΩЁ€—Łő" + "ส🚀مא" + "".join(chr(c) for c in range(0x4E00, 0x9FFF, 997))
    for ch in sample:
        assert ty.bundled_has_glyph(ch) == any(ord(ch) in cmap for cmap in cmaps), ch

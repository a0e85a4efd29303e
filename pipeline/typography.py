"""Text on pictures: fonts, wrapping and legible drawing for captions, previews and contact sheets.

Fonts are shipped, never the system's: Pillow's own (`ImageFont.load_default(size=…)`, Pillow ≥
10.1; ASCII only) for previews and contact sheets, and the bundled Noto Sans Bold (Latin with
accents, Greek, Cyrillic) with Noto Sans CJK JP Bold (kana, CJK, Hangul) in `pipeline/fonts/`,
which the burned-in headline and captions are measured with here and drawn with by libass, and
the brand fonts (`STYLE_FACES`) a kit may put first.
Pillow's font has no bold face; a stroke in the fill colour thickens it into a convincing
semi-bold. Fonts are built per call, never shared between threads (FreeType faces are not
thread-safe and Pillow work runs in `asyncio.to_thread`), but for the glyph probes, behind a lock.
"""

from __future__ import annotations

import functools
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from PIL import ImageDraw, ImageFont

RGB = tuple[int, int, int]
RGBA = tuple[int, int, int, int]


def font(size: int) -> ImageFont.FreeTypeFont:
    f = ImageFont.load_default(size=max(6, int(size)))
    if not isinstance(f, ImageFont.FreeTypeFont):  # pragma: no cover - Pillow without FreeType
        raise RuntimeError("Pillow was built without FreeType; text rendering needs it")
    return f


FONTS_DIR = Path(__file__).with_name("fonts")
# A fontconfig setup that lists only FONTS_DIR, for ffmpeg's environment (FONTCONFIG_FILE): libass
# does not fall back from one `fontsdir` font to another, but through fontconfig it does, and then
# only to these files.
FONTS_CONFIG = FONTS_DIR / "fonts.conf"


@dataclass(frozen=True)
class BundledFace:
    path: Path
    family: str
    # (OS/2 winAscent + winDescent) / unitsPerEm: libass (like VSFilter) sizes a font so that
    # this height is its font size; Pillow sizes the em.
    line_height_em: float


# The style font first (Latin with every accent, Greek, Cyrillic), then the fallback for what it
# lacks (kana, CJK ideographs, Hangul), in the order fontconfig would pick them.
BUNDLED_FACES = (
    BundledFace(FONTS_DIR / "NotoSans-Bold.ttf", "Noto Sans", (1069 + 293) / 1000),
    BundledFace(FONTS_DIR / "NotoSansCJKjp-Bold-subset.otf", "Noto Sans CJK JP", (1160 + 288) / 1000),
)
BUNDLED_FAMILY = BUNDLED_FACES[0].family

# The faces a brand may choose as its style font (pipeline.brand.BRAND_FONTS names them by key).
# A glyph one lacks (League Spartan has no Cyrillic, none has CJK) comes from BUNDLED_FACES through
# fontconfig, in that order: measured the same way here.
STYLE_FACES: dict[str, BundledFace] = {
    face.family: face
    for face in (
        BUNDLED_FACES[0],
        BundledFace(FONTS_DIR / "NotoSerif-Bold.ttf", "Noto Serif", (1069 + 293) / 1000),
        BundledFace(FONTS_DIR / "BebasNeue-Bold.otf", "Bebas Neue", (900 + 300) / 1000),
        BundledFace(FONTS_DIR / "LeagueSpartan-Bold.otf", "League Spartan", (2305 + 675) / 2000),
    )
}


def style_chain(family: str) -> tuple[BundledFace, ...]:
    """The faces libass draws `family` with: that face first, then the fallbacks."""
    if family not in STYLE_FACES:
        raise ValueError(f"no bundled font for the family {family!r}")
    first = STYLE_FACES[family]
    return (first, *(face for face in BUNDLED_FACES if face.path != first.path))


class BundledFont:
    """The bundled fonts at one libass font size, measuring text the way libass will draw it:
    each character in the first face that has it, each face scaled to its own line height.
    `family` is the style font (a STYLE_FACES key); the fallbacks follow it."""

    def __init__(self, size: float, family: str = BUNDLED_FAMILY) -> None:
        self.size = size  # libass font size: the line height in pixels
        self._faces = style_chain(family)
        self._fonts = [
            ImageFont.truetype(str(face.path), max(6, round(size / face.line_height_em))) for face in self._faces
        ]

    def getlength(self, text: str) -> float:
        total, run, run_face = 0.0, "", 0
        for ch in text:
            face = _chain_index(self._faces, ch)
            if run and face != run_face:
                total += self._fonts[run_face].getlength(run)
                run = ""
            run, run_face = run + ch, face
        return total + (self._fonts[run_face].getlength(run) if run else 0.0)


def bundled_has_glyph(ch: str) -> bool:
    """Whether any bundled font's cmap maps `ch` (whitespace always counts as drawable)."""
    return ch.isspace() or _face_of(ch) >= 0


def _face_of(ch: str) -> int:
    """Index of the first bundled face that has `ch`; -1 when none has it."""
    return _chain_index(BUNDLED_FACES, ch)


@functools.lru_cache(maxsize=16384)
def _chain_index(faces: tuple[BundledFace, ...], ch: str) -> int:
    """Index of the first of `faces` that has `ch`; -1 when none has it."""
    for i, face in enumerate(faces):
        if ch.isspace() or _maps(face.path, ch):
            return i
    return -1


def _maps(path: Path, ch: str) -> bool:
    # An unmapped character draws as the .notdef glyph: compare with one that can't be mapped.
    # The probe fonts are shared, and FreeType faces are not thread-safe: one caller at a time.
    with _PROBE_LOCK:
        return bytes(_probe_font(path).getmask(ch)) != _notdef_mask(path)


_PROBE_LOCK = threading.Lock()


@functools.cache
def _probe_font(path: Path) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), 16)  # small: cheap masks


@functools.cache
def _notdef_mask(path: Path) -> bytes:
    return bytes(_probe_font(path).getmask("\U0010fffd"))


# Pillow's default font (Aileron, subset) covers ASCII and a little Latin-1 punctuation only: even "é"
# and "—" render as boxes. Map what has a good ASCII stand-in, fold accents, drop the rest (emoji).
_STAND_INS = str.maketrans({
    "—": " - ", "–": "-", "‒": "-", "―": "-", "−": "-", "•": "·", "×": "x", "→": "->", "←": "<-",
    "€": "EUR ", "£": "GBP ", "¥": "JPY ", "®": "(R)", "ß": "ss", "Ł": "L", "ł": "l", "Ø": "O", "ø": "o",
    "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe", "Đ": "D", "đ": "d", "ı": "i",
    "\u00a0": " ", "\u2009": " ", "\u202f": " ",
})  # fmt: skip
_COVERAGE: dict[str, bool] = {}


def _has_glyph(ch: str) -> bool:
    known = _COVERAGE.get(ch)
    if known is None:
        f = font(24)
        missing = f.getmask("\U0010fffd")
        mask = f.getmask(ch)
        known = ch.isspace() or (mask.size, bytes(mask)) != (missing.size, bytes(missing))
        _COVERAGE[ch] = known
    return known


def drawable(text: str) -> str:
    """`text` restricted to what the bundled font can draw, with sensible stand-ins."""
    text = text.translate(_STAND_INS)
    out = []
    for ch in text:
        if _has_glyph(ch):
            out.append(ch)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        out.append("".join(c for c in base if _has_glyph(c)))
    return " ".join("".join(out).split())


def hex_rgb(value: str) -> RGB:
    v = value.lstrip("#")
    return int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16)


def luminance(rgb: RGB) -> float:
    """Relative luminance, 0 (black) to 1 (white)."""

    def lin(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


Measure = ImageFont.FreeTypeFont | BundledFont  # anything with getlength(text) in pixels


def _break_word(word: str, f: Measure, max_width: float) -> list[str]:
    parts, current = [], ""
    for ch in word:
        if current and f.getlength(current + ch) > max_width:
            parts.append(current)
            current = ch
        else:
            current += ch
    return [*parts, current] if current else parts


def wrap(text: str, f: Measure, max_width: float, max_lines: int | None = None) -> list[str]:
    """Greedy word wrap by rendered width; over-long words are broken; overflow ends in '…'."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        pieces = _break_word(word, f, max_width) if f.getlength(word) > max_width else [word]
        for piece in pieces:
            candidate = f"{current} {piece}" if current else piece
            if current and f.getlength(candidate) > max_width:
                lines.append(current)
                current = piece
            else:
                current = candidate
    if current:
        lines.append(current)
    if max_lines is not None and len(lines) > max_lines:
        kept = lines[:max_lines]
        last = kept[-1]
        while last and f.getlength(last + "…") > max_width:
            last = last[:-1].rstrip()
        kept[-1] = last + "…"
        return kept
    return lines


@dataclass(frozen=True)
class TextBlock:
    font: Measure
    lines: list[str]
    line_height: int

    @property
    def height(self) -> int:
        return self.line_height * len(self.lines)

    def width(self) -> int:
        return max((round(self.font.getlength(ln)) for ln in self.lines), default=0)


def fit_text(
    text: str,
    max_width: float,
    *,
    size: int,
    min_size: int,
    max_lines: int,
    leading: float = 1.22,
    bundled: bool = False,
    family: str = BUNDLED_FAMILY,
) -> TextBlock:
    """The largest font size (≤ size, ≥ min_size) at which `text` wraps into `max_lines` lines.

    `bundled`: `size`/`min_size` are libass font sizes, measured with the bundled fonts, and
    `text` is left as it is (the caller has already removed what those fonts lack); `family`
    is then the style font.
    """
    if not bundled:
        text = drawable(text)
    s = size
    while True:
        f: Measure = BundledFont(s, family) if bundled else font(s)
        lines = wrap(text, f, max_width)
        if len(lines) <= max_lines or s <= min_size:
            if len(lines) > max_lines:
                lines = wrap(text, f, max_width, max_lines)
            return TextBlock(f, lines, round(s * leading))
        s = max(min_size, int(s * 0.9))


def draw_block(
    draw: ImageDraw.ImageDraw,
    block: TextBlock,
    *,
    x: float,
    y: float,
    fill: RGB | RGBA,
    align: str = "center",
    weight: int = 0,
    shadow: RGBA | None = None,
    shadow_offset: int = 0,
    outline: RGBA | None = None,
    outline_width: int = 0,
) -> None:
    """Draw `block` with its top at `y`; `x` is the centre (align=center) or left edge (left).

    `weight` is a stroke in the fill colour (faux bold); `outline` a darker stroke under it for
    legibility on busy pictures; `shadow` a copy offset down-right.
    """
    font = block.font
    if not isinstance(font, ImageFont.FreeTypeFont):
        raise TypeError("a BundledFont only measures text for libass; Pillow draws with its own fonts")
    for i, line in enumerate(block.lines):
        ly = y + i * block.line_height
        lx = x - font.getlength(line) / 2 if align == "center" else x
        if shadow is not None and shadow_offset:
            draw.text(
                (lx + shadow_offset, ly + shadow_offset),
                line,
                font=font,
                fill=shadow,
                stroke_width=max(weight, outline_width),
                stroke_fill=shadow,
            )
        if outline is not None and outline_width > weight:
            draw.text((lx, ly), line, font=font, fill=outline, stroke_width=outline_width, stroke_fill=outline)
        draw.text((lx, ly), line, font=font, fill=fill, stroke_width=weight, stroke_fill=fill)

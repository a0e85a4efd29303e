"""Burned-in text as one ASS script for libass: the scene's headline and its spoken-word captions.

Both are laid out here, in the frame's own pixels (PlayResX/Y = the output size), inside the
platforms' safe zone, and drawn by ffmpeg's `ass` filter with the bundled fonts only (`fontsdir`,
and a fontconfig that sees nothing else: see pipeline/fonts/README.md).
The headline sits at the bottom of the safe zone, white on a dark outline; the captions show
2–3 spoken words at a time right above it, the word being spoken in the highlight colour (one
event per word, so exactly one word is lit at a time and a gap between words lights none).
A brand changes the font and those colours (`TextStyle`, from pipeline/brand_style.py), and its end
card's words join the same script (pipeline/end_card.py).

Lines are wrapped here, measured by Pillow with the same font files (libass only breaks at
spaces, and CJK text has none), so the script carries explicit `\\N` breaks and libass never
re-wraps. Long unspaced CJK runs are lit a few characters at a time (split_unspaced).
Text from users or the model is escaped so it can never become an override tag.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pipeline import typography as ty
from pipeline.speech_timing import WordTiming


class CaptionMode(StrEnum):
    KARAOKE = "karaoke"  # 2–3 words at a time, the spoken word highlighted
    PLAIN = "plain"  # the same groups, no highlight
    OFF = "off"


# Where Reels, Shorts and TikTok draw their own buttons and text over a 1080x1920 video.
REFERENCE_SIZE = (1080, 1920)
SAFE_TOP, SAFE_BOTTOM, SAFE_RIGHT = 250, 420, 170
# Not a platform zone: text flush to the left edge reads as cut off.
SAFE_LEFT = 60
# Feed and landscape frames (4:5, 1:1, 16:9: Meta feeds, YouTube) have their buttons outside the
# picture, so they get a plain title-safe margin (fractions of the side) instead of the 9:16 zones,
# which scaled onto 1920x1080 would waste a fifth of the height on a bar that is not there. The
# bottom keeps a little more for the players' progress bar and sound toggle.
FEED_MARGIN_X, FEED_MARGIN_TOP, FEED_MARGIN_BOTTOM = 0.05, 0.05, 0.10
# Text keeps its 9:16 size (relative to the width) down to a 4:5 frame's height; squarer and
# landscape frames size it by the height instead, or three headline lines would fill the picture.
TEXT_HEIGHT_REFERENCE = 1350

# libass font sizes (a line's height in px) at the reference width. The headline is a little
# smaller than the captions the viewer reads along with.
HEADLINE_SIZE, HEADLINE_MIN_SIZE, HEADLINE_LINES = 106, 64, 3
CAPTION_SIZE, CAPTION_MIN_SIZE, CAPTION_LINES = 104, 72, 2
HEADLINE_PAD_X, BOTTOM_PAD = 24, 16  # inside the safe area, room for the outline
CAPTION_GAP = 36  # between the captions' last line and the headline's first
# Outlines only, no panel and no shadow: libass blends every bitmap into every frame, and a
# translucent panel plus shadows cost more than the rest of the text together (benchmarks/README).
CAPTION_OUTLINE, HEADLINE_OUTLINE = 6, 5
# Pillow's and libass's shaping can differ by a pixel or two per glyph: wrap a little short.
WIDTH_SLACK = 0.94
HEADLINE_FADE_START, HEADLINE_FADE_S = 0.15, 0.6
# A gap between two groups shorter than this keeps the previous group on screen (no flicker).
HOLD_GAP_S = 0.35

Scale = Callable[[float], int]  # reference-width pixels -> this frame's pixels


def _scale(width: int, height: int) -> Scale:
    u = min(width / REFERENCE_SIZE[0], height / TEXT_HEIGHT_REFERENCE)
    return lambda v: max(1, round(v * u))


WHITE, HIGHLIGHT, INK = (255, 255, 255), (255, 212, 0), (0, 0, 0)
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class TextStyle:
    """How the burned-in text looks: the style font (a typography.STYLE_FACES family), the text's
    fill, the spoken word's highlight and the outline that keeps both legible on any picture."""

    family: str = ty.BUNDLED_FAMILY
    fill: RGB = WHITE
    highlight: RGB = HIGHLIGHT
    outline: RGB = INK


DEFAULT_STYLE = TextStyle()


@dataclass(frozen=True)
class SafeArea:
    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def centre_x(self) -> int:
        return (self.left + self.right) // 2


def safe_area(width: int, height: int) -> SafeArea:
    """The part of a `width`x`height` frame no platform covers: the 1080x1920 zones, scaled, for
    portrait frames as tall as 9:16; a title-safe margin for feed and landscape frames."""
    if height * REFERENCE_SIZE[0] < width * REFERENCE_SIZE[1] * 0.99:
        return SafeArea(
            left=round(width * FEED_MARGIN_X),
            top=round(height * FEED_MARGIN_TOP),
            right=width - round(width * FEED_MARGIN_X),
            bottom=height - round(height * FEED_MARGIN_BOTTOM),
        )
    sx, sy = width / REFERENCE_SIZE[0], height / REFERENCE_SIZE[1]
    return SafeArea(
        left=round(SAFE_LEFT * sx),
        top=round(SAFE_TOP * sy),
        right=width - round(SAFE_RIGHT * sx),
        bottom=height - round(SAFE_BOTTOM * sy),
    )


# -- text in, safe text out ----------------------------------------------------------------------


def ass_escape(text: str) -> str:
    """`text` as literal ASS dialogue text: no override block, no \\N/\\n/\\h escape survives.

    libass reads `\\{` and `\\}` as literal braces. A backslash is followed by a word joiner
    (U+2060, drawn as nothing), so `\\N` typed by a user stays a backslash and an N on screen.
    """
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\u2060")
        elif ch in "{}":
            out.append("\\" + ch)
        elif ch in "\r\n\t":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def drawable_text(text: str) -> str:
    """`text` normalised (NFC), without control characters and what the bundled font lacks."""
    text = unicodedata.normalize("NFC", text)
    kept = [ch if ch.isspace() or ty.bundled_has_glyph(ch) else " " for ch in text if not _invisible(ch)]
    return " ".join("".join(kept).split())


def uncovered_characters(text: str) -> str:
    """The distinct characters of `text` the bundled font cannot draw, in order of appearance."""
    seen: dict[str, None] = {}
    for ch in unicodedata.normalize("NFC", text):
        if ch not in seen and not ch.isspace() and not _invisible(ch) and not ty.bundled_has_glyph(ch):
            seen[ch] = None
    return "".join(seen)


def uncovered_scripts(text: str) -> list[str]:
    """Names of the scripts in `text` the bundled font does not cover (e.g. ["Thai", "Emoji"]).

    For the job's notes: say once which part of the text will not be drawn, and why.
    """
    names: dict[str, None] = {}
    for ch in uncovered_characters(text):
        names[_script_of(ch)] = None
    return list(names)


def _invisible(ch: str) -> bool:
    # Controls, zero-width joiners and variation selectors: nothing to draw, nothing to report.
    return unicodedata.category(ch) in ("Cc", "Cf") or 0xFE00 <= ord(ch) <= 0xFE0F


def _script_of(ch: str) -> str:
    category = unicodedata.category(ch)
    if category.startswith("S") or 0x1F000 <= ord(ch) <= 0x1FAFF:
        return "Emoji and symbols"
    name = unicodedata.name(ch, "")
    if not name:
        return "Unassigned characters"
    first = name.split()[0]
    return {"CJK": "CJK (rare ideographs)", "HANGUL": "Korean (rare syllables)"}.get(first, first.title())


# -- grouping spoken words -------------------------------------------------------------------------


def word_groups(words: Sequence[WordTiming], *, size: int = 3) -> list[list[WordTiming]]:
    """Words in groups of 2–3 as they are spoken: a sentence end closes a group, no group of one
    unless the line is one word (4 words → 2+2, 5 → 3+2, 7 → 3+2+2)."""
    sentences: list[list[WordTiming]] = [[]]
    for w in words:
        sentences[-1].append(w)
        if w.word.rstrip("\"'”’»)").endswith((".", "!", "?", "…", "。", "！", "？")):
            sentences.append([])
    groups: list[list[WordTiming]] = []
    for sentence in sentences:
        n = len(sentence)
        if not n:
            continue
        count = -(-n // size)  # as few groups as possible, then as even as possible
        base, extra = divmod(n, count)
        i = 0
        for k in range(count):
            take = base + (1 if k < extra else 0)
            groups.append(sentence[i : i + take])
            i += take
    return groups


# Characters per lit piece of CJK text, which is written without spaces: about one spoken beat.
CJK_PIECE = 3


def split_unspaced(words: Sequence[WordTiming]) -> list[tuple[WordTiming, bool]]:
    """Words, with long runs of unspaced CJK text cut into pieces of CJK_PIECE characters, each
    with its share of the word's time (a voice line in Japanese or Chinese is one "word" to a
    whitespace split). The flag says a piece is glued to the next one: no space between them."""
    out: list[tuple[WordTiming, bool]] = []
    for w in words:
        if len(w.word) <= CJK_PIECE + 1 or not any(unicodedata.east_asian_width(ch) == "W" for ch in w.word):
            out.append((w, False))
            continue
        parts = [w.word[i : i + CJK_PIECE] for i in range(0, len(w.word), CJK_PIECE)]
        if len(parts[-1]) == 1:  # a lone last character (often 。) stays with its piece
            last = parts.pop()
            parts[-1] += last
        t, span = w.start, w.end - w.start
        for k, part in enumerate(parts):
            d = span * len(part) / len(w.word)
            out.append((WordTiming(part, round(t, 3), round(t + d, 3)), k < len(parts) - 1))
            t += d
    return out


# -- the ASS script --------------------------------------------------------------------------------


def ass_colour(rgb: tuple[int, int, int], opacity: float = 1.0) -> str:
    """An ASS colour (&HAABBGGRR) for styles and inline tags."""
    r, g, b = rgb
    return f"&H{round((1 - opacity) * 255):02X}{b:02X}{g:02X}{r:02X}"


def ass_time(seconds: float) -> str:
    cs = max(0, round(seconds * 100))
    h, rest = divmod(cs, 360_000)
    m, rest = divmod(rest, 6000)
    s, cs = divmod(rest, 100)
    return f"{h}:{m:02d}:{s:02d}.{cs:02d}"


@dataclass(frozen=True)
class _Block:
    lines: list[str]
    size: int  # libass font size: each line is this many pixels tall

    @property
    def height(self) -> int:
        return self.size * len(self.lines)


def _layout(
    text: str, max_width: float, *, size: int, min_size: int, max_lines: int, family: str = ty.BUNDLED_FAMILY
) -> _Block:
    block = ty.fit_text(
        text, max_width * WIDTH_SLACK, size=size, min_size=min_size, max_lines=max_lines, bundled=True, family=family
    )
    return _Block(block.lines, round(block.font.size))


def layout_block(
    text: str, max_width: float, *, size: int, min_size: int, max_lines: int, family: str
) -> tuple[list[str], int]:
    """(lines, libass font size) of `text` wrapped to `max_width` in `family`, as the captions are."""
    block = _layout(text, max_width, size=size, min_size=min_size, max_lines=max_lines, family=family)
    return block.lines, block.size


def text_top(
    width: int, height: int, headline: str | None, *, caption_lines: int = 1, family: str = ty.BUNDLED_FAMILY
) -> int:
    """How high a scene's burned-in text reaches (y, from the top): its headline wrapped as `build_ass`
    wraps it, with `caption_lines` lines of spoken words above it. Painted art keeps its own text
    above this line (the offline seeds), so the two never land on each other."""
    safe, px = safe_area(width, height), _scale(width, height)
    top = safe.bottom - px(BOTTOM_PAD)
    head = drawable_text(headline or "")
    if head:
        top -= _headline_block(head, safe, px, family).height + px(CAPTION_GAP)
    return top - caption_lines * px(CAPTION_SIZE)


def _headline_block(head: str, safe: SafeArea, px: Scale, family: str) -> _Block:
    """The headline as it is drawn: wrapped to the safe width, shrunk to fit its lines."""
    return _layout(
        head, safe.width - 2 * px(HEADLINE_PAD_X), size=px(HEADLINE_SIZE), min_size=px(HEADLINE_MIN_SIZE),
        max_lines=HEADLINE_LINES, family=family,
    )  # fmt: skip


def build_ass(
    width: int,
    height: int,
    duration: float,
    *,
    headline: str | None = None,
    words: Sequence[WordTiming] | None = None,
    mode: CaptionMode | str = CaptionMode.KARAOKE,
    style: TextStyle = DEFAULT_STYLE,
    until: float | None = None,
    extra: Sequence[str] = (),
) -> str | None:
    """The ASS script for one scene, or None when there is nothing to draw.

    `words` are timed from the scene's start; words past `duration` are dropped. Text the
    bundled font lacks is left out (report it with uncovered_scripts). `style` is the font and
    colours (a brand's). `until`: the headline and captions end there (an end card takes the
    rest of the scene); `extra` are more Dialogue lines (the end card's text, style "Card").
    """
    mode = CaptionMode(mode)
    safe = safe_area(width, height)
    px = _scale(width, height)
    events: list[str] = []
    family = style.family
    text_end = duration + 1 if until is None else until
    if until is not None:
        duration = min(duration, until)

    text_bottom = safe.bottom - px(BOTTOM_PAD)
    head = drawable_text(headline or "")
    if head:
        block = _headline_block(head, safe, px, family)
        start, end = ass_time(min(HEADLINE_FADE_START, duration)), ass_time(text_end)
        fade = f"\\fad({round(HEADLINE_FADE_S * 1000)},0)"
        text = "\\N".join(ass_escape(line) for line in block.lines)
        events.append(
            f"Dialogue: 1,{start},{end},Headline,,0,0,0,,"
            f"{{\\an2\\pos({safe.centre_x},{text_bottom})\\fs{block.size}{fade}}}{text}"
        )
        text_bottom -= block.height + px(CAPTION_GAP)

    caption_bottom = text_bottom
    if words and mode is not CaptionMode.OFF and duration > 0:
        events += _caption_events(
            words, duration, x=safe.centre_x, bottom=caption_bottom, max_width=safe.width, px=px, mode=mode,
            style=style,
        )  # fmt: skip
    events += extra

    if not events:
        return None
    return _script(width, height, px, style) + "\n".join(events) + "\n"


def _caption_events(
    words: Sequence[WordTiming],
    duration: float,
    *,
    x: int,
    bottom: int,
    max_width: int,
    px: Scale,
    mode: CaptionMode,
    style: TextStyle,
) -> list[str]:
    timed = [
        WordTiming(text, w.start, min(w.end, duration))
        for w in words
        # A word is one unit on screen: what the font lacks is dropped, not turned into a space.
        if w.start < duration and (text := "".join(drawable_text(w.word).split()))
    ]
    pieces = split_unspaced(timed)
    glue = {id(w): g for w, g in pieces}

    def lay_out(group: list[WordTiming]) -> _Block:
        text = "".join(w.word + ("" if glue[id(w)] else " ") for w in group).strip()
        return _layout(
            text, max_width, size=px(CAPTION_SIZE), min_size=px(CAPTION_MIN_SIZE), max_lines=CAPTION_LINES,
            family=style.family,
        )  # fmt: skip

    # Lay each group out once; every event of a group draws the same lines, only colours change,
    # so the words never move while the group is on screen. A group that does not fit its lines
    # even at the smallest size is shown a word at a time rather than cut short.
    laid: list[tuple[list[WordTiming], _Block]] = []
    for group in word_groups([w for w, _ in pieces]):
        block = lay_out(group)
        if len(group) > 1 and _truncated(block, group):
            laid += [([w], lay_out([w])) for w in group]
        else:
            laid.append((group, block))
    events: list[str] = []
    for gi, (group, block) in enumerate(laid):
        placed = _place_words(block.lines, [w.word for w in group])
        group_end = group[-1].end
        if gi + 1 < len(laid) and laid[gi + 1][0][0].start - group_end < HOLD_GAP_S:
            group_end = laid[gi + 1][0][0].start
        head = f"{{\\an2\\pos({x},{bottom})\\fs{block.size}}}"
        if mode is CaptionMode.PLAIN:
            text = _coloured(placed, lit=None, style=style)
            events.append(f"Dialogue: 2,{ass_time(group[0].start)},{ass_time(group_end)},Caption,,0,0,0,,{head}{text}")
            continue
        for wi, w in enumerate(group):
            start = w.start
            end = group[wi + 1].start if wi + 1 < len(group) else group_end
            if end <= start:
                continue
            text = _coloured(placed, lit=wi, style=style)
            events.append(f"Dialogue: 2,{ass_time(start)},{ass_time(end)},Caption,,0,0,0,,{head}{text}")
    return events


def _truncated(block: _Block, group: list[WordTiming]) -> bool:
    shown = sum(len(line.replace(" ", "").removesuffix("…")) for line in block.lines)
    return shown < sum(len(w.word) for w in group)


# A line break between runs; never compared with user text (which may well be "\\N" itself).
_BREAK = -1


def _place_words(lines: list[str], words: list[str]) -> list[tuple[str, int | None]]:
    """The wrapped lines as runs of (text, index of the word it belongs to; None for spaces and
    an ellipsis the wrapper added; _BREAK between lines). A word split across lines keeps its
    index."""
    owner = [i for i, w in enumerate(words) for _ in w]  # the word each non-space character is from
    runs: list[tuple[str, int | None]] = []
    k = 0
    for li, line in enumerate(lines):
        if li:
            runs.append(("", _BREAK))
        for ch in line:
            wi = None
            if ch != " " and k < len(owner):
                wi, k = owner[k], k + 1
            if runs and runs[-1][1] == wi:
                runs[-1] = (runs[-1][0] + ch, wi)
            else:
                runs.append((ch, wi))
    return runs


def _coloured(runs: list[tuple[str, int | None]], *, lit: int | None, style: TextStyle) -> str:
    out, current = [], style.fill
    for text, wi in runs:
        if wi == _BREAK:
            out.append("\\N")
            continue
        want = style.highlight if lit is not None and wi == lit else style.fill
        if want != current and wi is not None:
            r, g, b = want
            out.append(f"{{\\1c&H{b:02X}{g:02X}{r:02X}&}}")
            current = want
        out.append(ass_escape(text))
    return "".join(out)


def _script(width: int, height: int, px: Scale, style: TextStyle = DEFAULT_STYLE) -> str:
    font, fill, lit, ink = style.family, style.fill, style.highlight, style.outline
    styles = [
        # Name, Fontname, Fontsize, Primary, Secondary, Outline, Back, Bold, Italic, Underline,
        # StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment,
        # MarginL, MarginR, MarginV, Encoding
        f"Style: Caption,{font},{px(CAPTION_SIZE)},{ass_colour(fill)},{ass_colour(lit)},"
        f"{ass_colour(ink)},{ass_colour(ink)},-1,0,0,0,100,100,0,0,1,{px(CAPTION_OUTLINE)},0,2,0,0,0,1",
        f"Style: Headline,{font},{px(HEADLINE_SIZE)},{ass_colour(fill)},{ass_colour(fill)},"
        f"{ass_colour(ink, 0.85)},{ass_colour(ink)},-1,0,0,0,100,100,0,0,1,{px(HEADLINE_OUTLINE)},0,2,0,0,0,1",
        # The end card's text: colours and size per event, on a flat card, so no outline.
        f"Style: Card,{font},{px(CAPTION_SIZE)},{ass_colour(fill)},{ass_colour(fill)},"
        f"{ass_colour(ink)},{ass_colour(ink)},-1,0,0,0,100,100,0,0,1,0,0,5,0,0,0,1",
    ]
    return (
        "[Script Info]\n"
        "ScriptType: v4.00+\n"
        f"PlayResX: {width}\nPlayResY: {height}\n"
        # 2: no automatic wrapping, the lines are broken here; borders scale with PlayRes.
        "WrapStyle: 2\nScaledBorderAndShadow: yes\nYCbCr Matrix: TV.601\n\n"
        "[V4+ Styles]\n"
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, "
        "Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, "
        "Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n" + "\n".join(styles) + "\n\n[Events]\n"
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
    )

"""A brand kit's colours turned into text that reads on video: the captions' and headline's font,
fill, highlight and outline, and the end card's text colours.

A brand colour is used as it is where it reads, and darkened or lightened just enough where it
would not (WCAG contrast ratios): white text needs an outline dark enough to stand out on a
bright sky, and the spoken word's highlight must stand out from that outline.
"""

from __future__ import annotations

from pipeline import typography as ty
from pipeline.brand import BrandKit
from pipeline.captions import DEFAULT_STYLE, WHITE, TextStyle

RGB = tuple[int, int, int]
BLACK: RGB = (0, 0, 0)
NEAR_BLACK: RGB = (17, 17, 17)

# White on the outline: 4.5:1 is WCAG AA for text; the outline only frames the letters, so a
# brand colour that reaches it is dark enough to be seen as an edge.
OUTLINE_CONTRAST = 4.5
# The highlighted word against the outline around it.
HIGHLIGHT_CONTRAST = 3.0


def contrast(a: RGB, b: RGB) -> float:
    """WCAG contrast ratio of two colours, 1 (same) to 21 (black on white)."""
    la, lb = ty.luminance(a), ty.luminance(b)
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


def _towards(colour: RGB, target: RGB, against: RGB, ratio: float) -> RGB:
    """`colour` mixed towards `target` in small steps until it contrasts `ratio`:1 with `against`."""
    for step in range(21):
        mixed = ty.mix(colour, target, step / 20)
        if contrast(mixed, against) >= ratio:
            return mixed
    return target


def caption_style(kit: BrandKit) -> TextStyle:
    """White text in the brand font, outlined in the primary colour (darkened until white reads
    on it), the spoken word in the accent colour (lightened until it stands out from the outline).

    A colour the team left at its default keeps the captions' classic look (black outline,
    yellow highlight): a server without a kit gets the captions it always had."""
    outline, highlight = DEFAULT_STYLE.outline, DEFAULT_STYLE.highlight
    if kit.primary != _DEFAULT_KIT.primary:
        outline = _towards(ty.hex_rgb(kit.primary), BLACK, WHITE, OUTLINE_CONTRAST)
    if kit.accent != _DEFAULT_KIT.accent or outline != DEFAULT_STYLE.outline:
        accent = ty.hex_rgb(kit.accent) if kit.accent != _DEFAULT_KIT.accent else DEFAULT_STYLE.highlight
        highlight = _towards(accent, WHITE, outline, HIGHLIGHT_CONTRAST)
    return TextStyle(family=kit.font_family, fill=WHITE, highlight=highlight, outline=outline)


_DEFAULT_KIT = BrandKit()


def ink_on(background: RGB) -> RGB:
    """White or near-black, whichever reads better on `background`."""
    return WHITE if contrast(WHITE, background) >= contrast(NEAR_BLACK, background) else NEAR_BLACK

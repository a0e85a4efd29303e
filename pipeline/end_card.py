"""The end card: the last seconds of the CTA scene, inside the ad's length, showing the brand.

The card is two layers over the scene's own frames, both faded in together:
- a picture drawn here with Pillow (the primary colour, or for `end_card = "blur"` a dark veil
  over the blurred scene, the logo, and the CTA's button shape in the accent colour);
- its words (the brand name when there is no logo, the CTA, the URL) as ASS events drawn by
  libass in the brand font with the bundled fallbacks, exactly as the captions are.
Product names, CTAs and URLs are always drawn by us, never asked of a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from pipeline import typography as ty
from pipeline.brand import BrandKit, EndCardStyle
from pipeline.brand_style import ink_on
from pipeline.captions import (
    REFERENCE_SIZE,
    WHITE,
    ass_colour,
    ass_escape,
    ass_time,
    drawable_text,
    layout_block,
    safe_area,
)
from pipeline.watermark import fit_into, load_logo

# The card's length when the orchestrator asks for one: the 2–3 s.
END_CARD_S = 2.5
CARD_FADE_S = 0.4
# The blurred variant: the scene is shrunk by this factor, blurred and scaled back (cheap and
# very soft), under a black veil of this opacity so white text reads on any picture.
BLUR_SHRINK, BLUR_SIGMA, VEIL_OPACITY = 8, 4, 0.5

# Layout at 1080x1920 (scaled to the frame): the logo's box and centre, the CTA button, the URL.
LOGO_BOX = (600, 380)
LOGO_CENTRE_Y = 0.37
NAME_SIZE, NAME_MIN_SIZE = 120, 72
CTA_CENTRE_Y = 0.585
CTA_SIZE, CTA_MIN_SIZE, CTA_LINES = 80, 52, 2
CTA_ONE_LINE_MIN_SIZE = 62
PILL_PAD_X, PILL_PAD_Y = 56, 30
URL_SIZE, URL_MIN_SIZE = 60, 36
NOTE_SIZE = 34  # the foot note (an offline preview says so)
URL_GAP = 44


@dataclass(frozen=True)
class CardText:
    """What the card says: the CTA (the kit's, else the request's), the URL, and the brand's
    name (drawn only when there is no logo to show instead)."""

    cta: str | None
    url: str | None
    name: str | None
    has_logo: bool
    # A line in small print at the foot of the card: an offline preview says so here, because the
    # card covers the "OFFLINE PREVIEW" band its scenes carry.
    note: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.cta or self.url or self.name or self.has_logo)


def card_text(kit: BrandKit, request_cta: str | None, note: str | None = None) -> CardText:
    """What the card of `kit` says; nothing at all (`empty`) means the ad gets no card (the note
    alone makes none). Reads the logo file: run it in a thread."""
    cta = drawable_text(kit.cta or request_cta or "") or None
    url = (drawable_text(_display_url(kit.url)) or None) if kit.url else None
    name = drawable_text(kit.name or "") or None
    return CardText(cta, url, name, load_logo(kit.logo_path) is not None, drawable_text(note or "") or None)


def end_card_seconds(scene_duration: float) -> float:
    """The card's length in a last scene of `scene_duration` s: END_CARD_S, never more than the
    scene (a short CTA scene becomes all card)."""
    return max(0.0, min(END_CARD_S, scene_duration))


def _display_url(url: str) -> str:
    """The URL as a viewer types it: no scheme, no `www.`, no trailing slash."""
    text = url.split("://", 1)[-1]
    text = text.removeprefix("www.")
    return text.rstrip("/")


@dataclass(frozen=True)
class CardPlan:
    events: list[str]  # ASS Dialogue lines, style "Card"
    pill: tuple[int, int, int, int] | None  # the CTA button's box
    logo_centre: tuple[int, int]
    logo_box: tuple[int, int]


def background(kit: BrandKit) -> ty.RGB:
    return ty.hex_rgb(kit.primary)


def text_colour(kit: BrandKit) -> ty.RGB:
    """The card's text colour: on the primary colour whichever of white/black reads; white on
    the darkened blur."""
    return WHITE if kit.end_card is EndCardStyle.BLUR else ink_on(background(kit))


def plan_card(kit: BrandKit, text: CardText, width: int, height: int, start: float, end: float) -> CardPlan:
    """Where everything on the card goes in a `width`x`height` frame, and its text as ASS events
    shown from `start` to `end` s (fading in with the picture)."""
    u = width / REFERENCE_SIZE[0]

    def px(v: float) -> int:
        return max(1, round(v * u))

    safe = safe_area(width, height)
    max_w = safe.width - 2 * px(PILL_PAD_X)
    family = kit.font_family
    ink = text_colour(kit)
    fade = f"\\fad({round(CARD_FADE_S * 1000)},0)"
    when = f"{ass_time(start)},{ass_time(end)}"
    events: list[str] = []
    # Centred in the safe zone, as the captions are: the platforms' buttons cover the right edge.
    cx = safe.centre_x

    def event(lines: list[str], size: int, y: int, colour: ty.RGB) -> str:
        body = "\\N".join(ass_escape(line) for line in lines)
        return (
            f"Dialogue: 3,{when},Card,,0,0,0,,"
            f"{{\\an5\\pos({cx},{y})\\fs{size}\\bord0\\shad0\\1c{ass_colour(colour)}{fade}}}{body}"
        )

    logo_centre = (cx, round(height * LOGO_CENTRE_Y))
    if text.name and not text.has_logo:
        lines, size = layout_block(
            text.name, safe.width, size=px(NAME_SIZE), min_size=px(NAME_MIN_SIZE), max_lines=2, family=family
        )
        events.append(event(lines, size, logo_centre[1], ink))

    pill = None
    y = round(height * CTA_CENTRE_Y)
    if text.cta:
        # One line when it fits at a good size (a button reads as one phrase), else two.
        lines, size = layout_block(
            text.cta, max_w, size=px(CTA_SIZE), min_size=px(CTA_ONE_LINE_MIN_SIZE), max_lines=1, family=family
        )
        if lines[-1].endswith("…") and not text.cta.endswith("…"):
            lines, size = layout_block(
                text.cta, max_w, size=px(CTA_SIZE), min_size=px(CTA_MIN_SIZE), max_lines=CTA_LINES, family=family
            )
        text_w = max(ty.BundledFont(size, family).getlength(line) for line in lines)
        half_w = round(text_w / 2) + px(PILL_PAD_X)
        half_h = round(size * len(lines) / 2) + px(PILL_PAD_Y)
        pill = (cx - half_w, y - half_h, cx + half_w, y + half_h)
        events.append(event(lines, size, y, ink_on(ty.hex_rgb(kit.accent))))
        y += half_h
    if text.url:
        lines, size = layout_block(
            text.url, safe.width, size=px(URL_SIZE), min_size=px(URL_MIN_SIZE), max_lines=1, family=family
        )
        events.append(event(lines, size, y + px(URL_GAP) + size // 2, ink))
    if text.note:
        lines, size = layout_block(
            text.note, safe.width, size=px(NOTE_SIZE), min_size=px(NOTE_SIZE) // 2, max_lines=1, family=family
        )
        events.append(event(lines, size, safe.bottom - size, ink))
    return CardPlan(events, pill, logo_centre, (px(LOGO_BOX[0]), px(LOGO_BOX[1])))


def draw_card(kit: BrandKit, plan: CardPlan, width: int, height: int, dst: Path) -> Path:
    """The card's picture as an RGBA PNG: opaque primary colour (or a translucent veil for the
    blurred variant), the logo, the CTA's button. Pillow work: run it in a thread."""
    if kit.end_card is EndCardStyle.BLUR:
        card = Image.new("RGBA", (width, height), (0, 0, 0, round(VEIL_OPACITY * 255)))
    else:
        card = Image.new("RGBA", (width, height), (*background(kit), 255))
    logo = load_logo(kit.logo_path)
    if logo is not None:
        scaled = fit_into(logo, plan.logo_box)
        cx, cy = plan.logo_centre
        card.alpha_composite(scaled, (cx - scaled.width // 2, cy - scaled.height // 2))
    if plan.pill is not None:
        radius = (plan.pill[3] - plan.pill[1]) // 2
        ImageDraw.Draw(card).rounded_rectangle(plan.pill, radius=radius, fill=(*ty.hex_rgb(kit.accent), 255))
    card.save(dst, format="PNG")
    return dst

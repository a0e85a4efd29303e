"""Offline seed images: a styled storyboard card per scene, painted locally with Pillow.

No network and no model: the mood's palette, deterministic geometric shapes and the scene's text,
with a clear "OFFLINE PREVIEW" label so nobody mistakes it for generated art. The same inputs
always give the same bytes, so offline runs are reproducible and testable.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter
from PIL.PngImagePlugin import PngInfo

from pipeline import typography as ty
from pipeline.atomic_files import atomic_path
from pipeline.captions import text_top
from pipeline.models import Beat, Scene
from pipeline.providers.base import SeedRequest, StageContext, StageResult

OFFLINE_LABEL = "OFFLINE PREVIEW"
OFFLINE_NOTE = "placeholder art - no image model was used"
# The most of each side of the seed the offline camera may leave out of the frame (its zoom and pan,
# `offline_video.camera_move`): the painter keeps its text inside this margin, so no move cuts a word.
CAMERA_SAFE = 0.10


@dataclass(frozen=True)
class SeedLayout:
    """Where a seed's parts go (pixels). The text sits inside the camera-safe margin; the description
    card ends above `text_top`, where the composer's headline and spoken words reach up to, so the
    burned-in text never lands on the painted text; the product disc takes the room between the two."""

    margin: int  # left and right, and the top of the scene chip
    title_y: int
    card_top: int
    card_bottom: int
    hero_cx: float
    hero_cy: float
    hero_r: int
    text_top: int


def derive_seed(product: str, scene_index: int) -> int:
    """A stable 31-bit seed for (product, scene): same ad, same pictures, on any machine."""
    digest = hashlib.sha256(f"{product}\x1f{scene_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFF_FFFF


def product_name(product: str, max_chars: int = 40) -> str:
    """The name a product description starts with: 'Lumen — a smart desk lamp…' → 'Lumen'."""
    head = re.split(r"\s[—–-]\s|[:,.;!?(]|\n", product.strip(), maxsplit=1)[0].strip()
    if not head:
        head = product.strip()
    if len(head) > max_chars:
        head = head[:max_chars].rsplit(" ", 1)[0] + "…"
    return head


def _monogram(name: str) -> str:
    letters = [w[0] for w in ty.drawable(name).split() if w[:1].isalnum()]
    return "".join(letters[:2]).upper() or "★"


class SeedPainter:
    """Paints one scene card. Pure apart from its output: all randomness comes from `seed`."""

    def __init__(self, request: SeedRequest, seed: int) -> None:
        self.r = request
        self.rng = random.Random(seed)
        self.w, self.h = request.width, request.height
        self.u = self.w / 1080  # layout unit: sizes are designed for 1080 wide
        pal = [ty.hex_rgb(c) for c in request.mood.palette]
        self.bg, self.bg2, self.accent, self.accent2 = (pal + pal)[:4]
        self.dark = ty.luminance(self.bg) < 0.35
        self.ink = (248, 248, 250) if self.dark else (24, 24, 28)
        self.soft_ink = ty.mix(self.ink, self.bg, 0.3)

    def px(self, v: float) -> int:
        return round(v * self.u)

    @cached_property
    def blocks(self) -> tuple[ty.TextBlock, ty.TextBlock, ty.TextBlock]:
        """The product name, the ad's title and the scene's description, wrapped to the safe width."""
        r, margin = self.r, self.margin
        name = product_name(r.product)
        title = ty.fit_text(name, self.w - 2 * margin, size=self.px(104), min_size=self.px(60), max_lines=2,
                            leading=1.1)  # fmt: skip
        sub = ty.fit_text(r.storyboard.title, self.w - 2 * margin, size=self.px(40), min_size=self.px(30), max_lines=1)
        desc = ty.fit_text(r.scene.description, self.w - 2 * margin - self.px(64), size=self.px(40),
                           min_size=self.px(30), max_lines=4, leading=1.3)  # fmt: skip
        return title, sub, desc

    @property
    def margin(self) -> int:
        return round(self.w * CAMERA_SAFE)

    @cached_property
    def layout(self) -> SeedLayout:
        w, h, px, margin = self.w, self.h, self.px, self.margin
        title, sub, desc = self.blocks
        chip_top = round(h * CAMERA_SAFE)
        title_y = chip_top + px(110)
        card_top = title_y + title.height + px(14) + sub.height + px(44)
        card_bottom = card_top + desc.height + px(56)
        # The composer's text: the scene's headline as it will be wrapped, and a line of spoken words.
        top = text_top(w, h, self.r.scene.on_screen_text, caption_lines=1)
        room = max(0, top - card_bottom)
        hero_r = max(px(90), min(px(230), room // 2 - px(30)))
        return SeedLayout(margin=margin, title_y=title_y, card_top=card_top, card_bottom=card_bottom,
                          hero_cx=w / 2, hero_cy=card_bottom + max(room / 2, hero_r + px(30)), hero_r=hero_r,
                          text_top=top)  # fmt: skip

    # -- layers --------------------------------------------------------------------------

    def background(self) -> Image.Image:
        # Diagonal two-tone gradient, computed small and scaled up (smooth and cheap).
        gw, gh = 64, 112
        grad = Image.new("L", (gw, gh))
        angle = self.rng.uniform(-0.5, 0.5)
        ca, sa = math.cos(angle), math.sin(angle)
        grad.putdata([
            max(0, min(255, round(255 * (0.5 + ((x / gw - 0.5) * sa + (y / gh - 0.5) * ca) * 0.95))))
            for y in range(gh)
            for x in range(gw)
        ])  # fmt: skip
        grad = grad.resize((self.w, self.h), Image.Resampling.BICUBIC)
        top = ty.mix(self.bg, self.bg2, 0.75)
        img = Image.composite(
            Image.new("RGB", (self.w, self.h), self.bg), Image.new("RGB", (self.w, self.h), top), grad
        )
        # A soft studio glow in the accent colour, blurred at quarter size for speed.
        q = 4
        glow = Image.new("L", (self.w // q, self.h // q), 0)
        gx = self.rng.uniform(0.3, 0.7) * self.w / q
        gy = self.rng.uniform(0.3, 0.45) * self.h / q
        gr = self.w / q * self.rng.uniform(0.35, 0.5)
        ImageDraw.Draw(glow).ellipse((gx - gr, gy - gr, gx + gr, gy + gr), fill=110 if self.dark else 80)
        glow = glow.filter(ImageFilter.GaussianBlur(gr * 0.6)).resize((self.w, self.h), Image.Resampling.BICUBIC)
        return Image.composite(Image.new("RGB", (self.w, self.h), self.accent), img, glow)

    def shapes(self, canvas: Image.Image) -> None:
        layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
        d = ImageDraw.Draw(layer)
        rng, w, h = self.rng, self.w, self.h
        colours = [self.accent, self.accent2, ty.mix(self.accent, self.ink, 0.5)]

        def colour(alpha: int) -> tuple[int, int, int, int]:
            return (*rng.choice(colours), alpha)

        for _ in range(rng.randint(5, 8)):
            kind = rng.choice(("ring", "disc", "bar", "dots", "tile"))
            cx, cy = rng.uniform(-0.1, 1.1) * w, rng.uniform(0.05, 0.95) * h
            size = rng.uniform(0.08, 0.3) * w
            if kind == "ring":
                d.ellipse((cx - size, cy - size, cx + size, cy + size), outline=colour(90), width=self.px(10))
            elif kind == "disc":
                d.ellipse((cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2), fill=colour(45))
            elif kind == "bar":
                # Bold diagonal bars: the ad's sense of direction.
                t = self.px(rng.uniform(18, 46))
                d.line((cx - size * 2, cy + size, cx + size * 2, cy - size), fill=colour(55), width=t)
            elif kind == "dots":
                step = self.px(34)
                c = colour(110)
                for i in range(5):
                    for j in range(5):
                        x, y = cx + i * step, cy + j * step
                        d.ellipse((x - self.px(5), y - self.px(5), x + self.px(5), y + self.px(5)), fill=c)
            else:
                d.rounded_rectangle((cx, cy, cx + size, cy + size * 0.6), radius=self.px(28), fill=colour(40))
        self.motif(d)
        canvas.alpha_composite(layer)

    def motif(self, d: ImageDraw.ImageDraw) -> None:
        """A beat-specific shape language: burst for the hook, rings for the intro, tiles for
        features, a button for the call to action."""
        h, px = self.h, self.px
        cx, cy = self.layout.hero_cx, self.layout.hero_cy
        beat = self.r.scene.beat
        if beat is Beat.HOOK:
            rays = 18
            for i in range(rays):
                a0 = 2 * math.pi * i / rays + self.rng.uniform(0, 0.05)
                a1 = a0 + math.pi / rays * 0.55
                far = h
                tip0 = (cx + far * math.cos(a0), cy + far * math.sin(a0))
                tip1 = (cx + far * math.cos(a1), cy + far * math.sin(a1))
                d.polygon([(cx, cy), tip0, tip1], fill=(*self.accent, 28))
        elif beat is Beat.INTRO:
            for k in range(1, 6):
                r = px(120) + k * px(70)
                d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=(*self.accent2, 110 - k * 16), width=px(4))
        elif beat is Beat.FEATURE:
            tile, gap = px(150), px(26)
            cols = 3
            x0 = cx - (cols * tile + (cols - 1) * gap) / 2
            y0 = max(h * 0.63, self.layout.hero_cy + self.layout.hero_r + px(40))  # under the disc
            for i in range(cols):
                x = x0 + i * (tile + gap)
                alpha = 70 if i == self.r.scene.index % cols else 35
                d.rounded_rectangle((x, y0, x + tile, y0 + tile * 0.72), radius=px(22), fill=(*self.accent, alpha))
        else:
            # Below the lower third, where the composer puts the scene's caption.
            bw, bh = px(520), px(120)
            y0 = h * 0.815
            d.rounded_rectangle((cx - bw / 2, y0, cx + bw / 2, y0 + bh), radius=bh // 2, fill=(*self.accent, 230))
            ax, ay = cx + bw / 2 - px(78), y0 + bh / 2
            arrow_ink = (20, 20, 24, 255) if ty.luminance(self.accent) > 0.4 else (250, 250, 250, 255)
            d.line((ax - px(34), ay, ax + px(20), ay), fill=arrow_ink, width=px(10))
            d.line((ax + px(2), ay - px(22), ax + px(24), ay), fill=arrow_ink, width=px(10))
            d.line((ax + px(2), ay + px(22), ax + px(24), ay), fill=arrow_ink, width=px(10))

    def hero(self, canvas: Image.Image, name: str) -> None:
        """The product stand-in: a glowing disc with the product's monogram."""
        w, h, px = self.w, self.h, self.px
        cx, cy, r = self.layout.hero_cx, self.layout.hero_cy, self.layout.hero_r
        shadow = Image.new("L", (w // 4, h // 4), 0)
        box = ((cx - r) / 4, (cy - r + px(30)) / 4, (cx + r) / 4, (cy + r + px(30)) / 4)
        ImageDraw.Draw(shadow).ellipse(box, fill=150)
        shadow = shadow.filter(ImageFilter.GaussianBlur(px(40) / 4 + 1)).resize((w, h), Image.Resampling.BICUBIC)
        canvas.paste((0, 0, 0), (0, 0), shadow)
        layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
        d = ImageDraw.Draw(layer)
        plate = ty.mix(self.bg, self.accent, 0.25)
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(*plate, 245), outline=(*self.accent, 255), width=px(8))
        d.ellipse((cx - r + px(26), cy - r + px(26), cx + r - px(26), cy + r - px(26)),
                  outline=(*self.accent2, 120), width=px(3))  # fmt: skip
        mono = _monogram(name)
        f = ty.font(round((190 if len(mono) == 1 else 160) * r / px(230)))
        mono_ink = (250, 250, 252) if ty.luminance(plate) < 0.4 else (24, 24, 28)
        d.text((cx, cy), mono, font=f, fill=mono_ink, anchor="mm", stroke_width=px(4), stroke_fill=mono_ink)
        canvas.alpha_composite(layer)

    def text(self, canvas: Image.Image) -> None:
        r, w, h, px, lay = self.r, self.w, self.h, self.px, self.layout
        d = ImageDraw.Draw(canvas)
        margin = lay.margin
        # Top row: scene chip on the left, mood on the right.
        chip_font = ty.font(px(34))
        total = len(r.storyboard.scenes)
        chip = f"SCENE {r.scene.index}/{total}  ·  {r.scene.beat.value.upper()}"
        cw = chip_font.getlength(chip)
        y0 = round(h * CAMERA_SAFE)
        d.rounded_rectangle((margin, y0, margin + cw + px(48), y0 + px(66)), radius=px(33), fill=(*self.accent, 235))
        chip_ink = (20, 20, 24) if ty.luminance(self.accent) > 0.4 else (250, 250, 250)
        d.text((margin + px(24), y0 + px(33)), chip, font=chip_font, fill=chip_ink, anchor="lm",
               stroke_width=1, stroke_fill=chip_ink)  # fmt: skip
        mood = ty.drawable(r.mood.label.upper())
        d.text((w - margin, y0 + px(33)), mood, font=chip_font, fill=self.soft_ink, anchor="rm")

        # Product name, big; the ad's title under it.
        title, sub, desc = self.blocks
        ty.draw_block(d, title, x=margin, y=lay.title_y, fill=self.ink, align="left", weight=px(3),
                      shadow=(0, 0, 0, 90) if self.dark else None, shadow_offset=px(4))  # fmt: skip
        ty.draw_block(d, sub, x=margin, y=lay.title_y + title.height + px(14), fill=self.soft_ink, align="left")

        # The scene's description on a translucent card, under the title and above the product disc.
        card = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
        cd = ImageDraw.Draw(card)
        card_fill = (0, 0, 0, 120) if self.dark else (255, 255, 255, 150)
        cd.rounded_rectangle((margin, lay.card_top, w - margin, lay.card_bottom), radius=px(30), fill=card_fill)
        canvas.alpha_composite(card)
        d = ImageDraw.Draw(canvas)
        ty.draw_block(d, desc, x=margin + px(32), y=lay.card_top + px(24), fill=self.ink, align="left")

        # The offline label: impossible to miss, impossible to mistake for generated art.
        band, by = offline_band(w, h)
        canvas.alpha_composite(band, (0, by))

    def paint(self) -> Image.Image:
        name = product_name(self.r.product)
        canvas = self.background().convert("RGBA")
        self.shapes(canvas)
        self.hero(canvas, name)
        self.text(canvas)
        return canvas.convert("RGB")


def offline_band(width: int, height: int) -> tuple[Image.Image, int]:
    """The "OFFLINE PREVIEW" band (opaque RGBA strip) and its top y, for a width×height frame.

    The painter paints it into every seed; the offline animator overlays the same band, still, on
    every frame, so the label stays on screen whatever the camera move does to the picture.
    """
    u = width / 1080
    # It runs to the bottom edge: when the camera moves, the painted copy slides under this one.
    band_h = round(176 * u)
    by = height - band_h
    band = Image.new("RGBA", (width, band_h), (10, 10, 12, 255))
    d = ImageDraw.Draw(band)
    step, lip = round(44 * u), round(16 * u)
    for x in range(-band_h, width + band_h, step * 2):
        d.polygon([(x, lip), (x + step, lip), (x + step + lip, 0), (x + lip, 0)], fill=(255, 196, 0, 255))
    yellow = (255, 196, 0)
    d.text((width / 2, round(70 * u)), OFFLINE_LABEL, font=ty.font(round(52 * u)), fill=yellow, anchor="mm",
           stroke_width=max(1, round(2 * u)), stroke_fill=yellow)  # fmt: skip
    d.text(
        (width / 2, round(120 * u)),
        OFFLINE_NOTE,
        font=ty.font(round(32 * u)),
        fill=(225, 225, 230),
        anchor="mm",
    )
    return band, by


def _save_png_atomic(img: Image.Image, dest: Path, meta: dict[str, str]) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    info = PngInfo()
    for k, v in meta.items():
        info.add_text(k, v)
    with atomic_path(dest, ".png") as tmp:
        img.save(tmp, format="PNG", pnginfo=info, compress_level=6)


class OfflineImageGenerator:
    """`ImageGenerator` that paints scene cards locally: no key, no network, deterministic."""

    name = "offline-painter"
    offline = True

    async def generate(self, request: SeedRequest, ctx: StageContext) -> StageResult:
        seed = request.seed if request.seed is not None else derive_seed(request.product, request.scene.index)
        await ctx.progress(5, "painting offline preview")
        painter = SeedPainter(request, seed)
        img = await asyncio.to_thread(painter.paint)
        await ctx.progress(80, "saving")
        meta = {
            "Software": f"Jant {self.name}",
            "jant:offline": "true",
            "jant:seed": str(seed),
            "jant:scene": str(request.scene.index),
            "Description": f"{OFFLINE_LABEL}: {scene_caption(request.scene)}",
        }
        await asyncio.to_thread(_save_png_atomic, img, Path(request.dest), meta)
        await ctx.progress(100, "done")
        return StageResult(path=Path(request.dest), seed=seed)

    async def cancel(self, prediction_id: str) -> None:
        """Nothing runs remotely, so there is nothing to cancel."""


def scene_caption(scene: Scene) -> str:
    return f"scene {scene.index} ({scene.beat.value}): {scene.description}"

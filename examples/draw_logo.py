"""Draws examples/logo.png, the sample logo that examples/brand.toml uses: a desk lamp for "Lumen",
made from shapes alone, so the project ships its own artwork and nothing is downloaded.

    python examples/draw_logo.py        # rewrites examples/logo.png (the same bytes every time)
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 512
SCALE = 4  # drawn 4x larger and shrunk: smooth edges without an anti-aliasing library
AMBER = (245, 158, 11, 255)
INK = (17, 24, 39, 255)
WHITE = (255, 255, 255, 255)


def draw_logo() -> Image.Image:
    s = SIZE * SCALE

    def px(v: float) -> int:
        return round(v * s)

    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))  # transparent around the badge: a watermark, not a box
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((0, 0, s - 1, s - 1), radius=px(0.22), fill=INK)
    # The light: a warm beam from the shade's mouth to the desk (opaque: a watermark must not let the
    # video through the middle of the badge).
    glow = (*(round(a * 0.45 + b * 0.55) for a, b in zip(AMBER[:3], INK[:3], strict=True)), 255)
    d.polygon([(px(0.56), px(0.56)), (px(0.82), px(0.46)), (px(0.90), px(0.80)), (px(0.52), px(0.80))], fill=glow)
    # The arm: base, two segments and the hinge.
    d.rounded_rectangle((px(0.18), px(0.80), px(0.92), px(0.86)), radius=px(0.03), fill=WHITE)
    d.line((px(0.34), px(0.80), px(0.30), px(0.50)), fill=WHITE, width=px(0.045))
    d.line((px(0.30), px(0.50), px(0.52), px(0.30)), fill=WHITE, width=px(0.045))
    d.ellipse((px(0.27), px(0.47), px(0.33), px(0.53)), fill=WHITE)
    # The shade: a tilted cone, open towards the desk.
    d.polygon([(px(0.48), px(0.22)), (px(0.62), px(0.16)), (px(0.82), px(0.46)), (px(0.56), px(0.56))], fill=AMBER)
    return img.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


def main() -> None:
    dest = Path(__file__).with_name("logo.png")
    draw_logo().save(dest, format="PNG", optimize=True)
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()

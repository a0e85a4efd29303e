"""The product photo's dominant colours, named, so painted seeds can match the photo's scenes.

The image model reads words, not hex codes: each dominant colour is named after the nearest entry of
a small palette of plain colour words. Measured once per photo file (its name is its content's hash)
in a thread: decoding and quantising a 10 MiB photo is CPU work.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from pathlib import Path

from PIL import Image

log = logging.getLogger(__name__)

COLOURS_NAMED = 3
_SAMPLE_SIDE = 96  # the photo is shrunk to this before counting: enough for dominant colours
_MIN_SHARE = 0.06  # a colour covering less of the photo than this is a detail, not its look

# Plain colour words an image model knows, with a representative sRGB value each.
COLOUR_WORDS: dict[str, tuple[int, int, int]] = {
    "black": (20, 20, 20), "charcoal grey": (64, 64, 64), "grey": (128, 128, 128),
    "silver": (192, 192, 192), "white": (245, 245, 245), "cream": (240, 230, 200),
    "beige": (215, 195, 160), "brown": (120, 75, 40), "tan": (190, 150, 100),
    "red": (200, 30, 30), "burgundy": (110, 20, 40), "pink": (240, 150, 180),
    "orange": (240, 130, 30), "gold": (210, 170, 50), "yellow": (245, 220, 50),
    "olive green": (110, 120, 40), "green": (40, 150, 60), "mint green": (160, 225, 180),
    "teal": (20, 130, 130), "turquoise": (60, 200, 200), "sky blue": (120, 180, 235),
    "blue": (40, 80, 200), "navy blue": (20, 30, 80), "purple": (110, 50, 150),
    "lavender": (190, 170, 225), "magenta": (200, 40, 150),
}  # fmt: skip


def colour_word(rgb: tuple[int, int, int]) -> str:
    """The nearest colour word (a weighted RGB distance that tracks the eye better than plain RGB)."""
    r, g, b = rgb

    def distance(ref: tuple[int, int, int]) -> float:
        dr, dg, db = r - ref[0], g - ref[1], b - ref[2]
        mean_r = (r + ref[0]) / 2
        return (2 + mean_r / 256) * dr * dr + 4 * dg * dg + (2 + (255 - mean_r) / 256) * db * db

    return min(COLOUR_WORDS, key=lambda name: distance(COLOUR_WORDS[name]))


def dominant_colours(photo: Path, n: int = COLOURS_NAMED) -> tuple[str, ...]:
    """Up to `n` colour words, most of the photo first, each named once. Transparent pixels (around a
    cut-out product) are not the product's colours and are not counted."""
    with Image.open(photo) as src:
        src.draft("RGB", (_SAMPLE_SIDE * 4, _SAMPLE_SIDE * 4))  # JPEG: decode at a fraction of full size
        rgba = src.convert("RGBA")
    rgba.thumbnail((_SAMPLE_SIDE, _SAMPLE_SIDE))
    # Many small clusters, then summed by their word: with few clusters a small product gets merged
    # with its large backdrop into a colour that is neither.
    quantised = rgba.convert("RGB").quantize(colors=16, method=Image.Quantize.MEDIANCUT)
    palette = quantised.getpalette() or []
    # One byte per pixel in both: the palette index, the alpha.
    indices, alphas = quantised.tobytes(), rgba.getchannel("A").tobytes()
    opaque = [index for index, alpha in zip(indices, alphas, strict=True) if alpha >= 128]
    words = [colour_word((palette[i * 3], palette[i * 3 + 1], palette[i * 3 + 2])) for i in range(len(palette) // 3)]
    shares = Counter(words[index] for index in opaque)
    total = max(1, len(opaque))
    return tuple(word for word, count in shares.most_common(n) if count / total >= _MIN_SHARE)


@functools.lru_cache(maxsize=32)
def _cached(photo: str) -> tuple[str, ...]:
    return dominant_colours(Path(photo))


async def matching_colours(photo: Path) -> tuple[str, ...]:
    """The photo's colour words; none when it cannot be read (the seed is then painted in the mood's
    colours alone, and the photo's own scenes say what is wrong with it)."""
    try:
        return await asyncio.to_thread(_cached, str(photo))
    except OSError as exc:
        log.warning("could not measure the colours of the product photo %s: %s", photo, exc)
        return ()

"""A server's brand kit: what a team may set, what is refused with which words, and that it
survives in the database per server (a server with no kit gets the defaults)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError

from pipeline.brand import BrandKit, GuildPolicy
from pipeline.store import JobStore
from pipeline.uploaded_images import LOGO_MAX_BYTES, UploadedImageError, validate_image


def test_colours_are_normalised_and_bad_values_named() -> None:
    kit = BrandKit(primary="1A2B3C", accent="#FFaa00", url="https://lumen.example/buy?x=1", cta="Order  now")
    assert (kit.primary, kit.accent, kit.cta) == ("#1a2b3c", "#ffaa00", "Order now")
    cases = {
        "primary": ("red", "primary must be a hex colour like #1a2b3c or 1a2b3c (got 'red')."),
        "url": ("ftp://lumen.example", "url must start with http:// or https:// and name a site"),
        "cta": ("Buy it @everyone", "cta cannot contain mentions"),
        "name": ("x" * 41, "name is 41 characters; at most 40 fit on the end card."),
        "font": ("comic-sans", "font must be one of"),
    }
    for field, (value, message) in cases.items():
        with pytest.raises(ValidationError) as refused:
            BrandKit(**{field: value})
        assert message in str(refused.value), field


async def test_each_server_keeps_its_own_kit(tmp_path: Path) -> None:
    store = await JobStore.open(tmp_path / "jant.db")
    try:
        assert await store.guild_brand("1") == BrandKit() and await store.guild_brand(None) == BrandKit()
        await store.save_guild_brand("1", BrandKit(primary="#ff0000", cta="Buy now"), updated_by="42")
        await store.save_guild_policy("1", GuildPolicy(budget_daily_usd=5))
        assert (await store.guild_brand("1")).primary == "#ff0000"
        assert (await store.guild_policy("1")).budget_daily_usd == 5
        assert await store.guild_brand("2") == BrandKit()  # another server: the defaults
    finally:
        await store.close()


def _encoded(img: Image.Image, fmt: str, **kw: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


def test_a_logo_is_re_encoded_without_metadata_and_keeps_transparency() -> None:
    img = Image.new("RGBA", (256, 160), (200, 30, 30, 0))
    img.paste((10, 200, 10, 255), (20, 20, 120, 120))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    checked = validate_image(
        _encoded(img.convert("RGBA"), "WEBP", lossless=True, exif=exif),
        what="The logo",
        max_bytes=LOGO_MAX_BYTES,
        min_short_side=128,
    )
    out = Image.open(io.BytesIO(checked.png))
    assert out.format == "PNG" and out.mode == "RGBA" and checked.has_alpha
    assert b"SecretCam" not in checked.png and not out.info.get("exif")
    assert out.getpixel((0, 0))[3] == 0 and out.getpixel((50, 50)) == (10, 200, 10, 255)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GIF89a not really", "The logo is not an image Jant can read; upload a PNG, JPEG or WebP."),
        (_encoded(Image.new("RGB", (200, 200)), "GIF"), "The logo is a GIF image; upload a PNG, JPEG or WebP."),
        (_encoded(Image.new("RGB", (100, 300)), "PNG"), "The logo is 100x300; its short side must be at least 128 px"),
        (b"\0" * (LOGO_MAX_BYTES + 1024 * 1024), "The logo is 6.0 MiB; the limit is 5 MiB. Upload a smaller file."),
        (
            _encoded(Image.new("1", (20000, 20000)), "PNG"),
            "The logo claims more pixels than is safe to decode (a decompression bomb?)",
        ),
        (
            _encoded(
                Image.new("RGB", (200, 200)),
                "WEBP",
                save_all=True,
                append_images=[Image.new("RGB", (200, 200), (255, 0, 0))],
            ),
            "The logo is animated (2 frames); upload a still image.",
        ),
    ],
    ids=["not-an-image", "gif", "too-small", "too-large", "bomb", "animated"],
)
def test_bad_logos_are_refused_with_what_to_do(data: bytes, message: str) -> None:
    with pytest.raises(UploadedImageError) as refused:
        validate_image(data, what="The logo", max_bytes=LOGO_MAX_BYTES, min_short_side=128)
    assert message in str(refused.value)

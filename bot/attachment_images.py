"""Images a team attaches to a command (`/brand logo image:`, `/makead photo:`): taken only from
Discord's attachment servers, refused by their declared size before any byte is downloaded and cut
off while downloading should a file be larger than declared, checked by `validate_image` in a
thread, and only then stored under the data directory. A refusal stores nothing and pays nothing.

Only Discord's own hosts are trusted because the attachment's URL arrives inside the interaction
payload: a forged or relayed payload must not make the bot fetch from (or probe) anywhere else. A
`DISCORD_API_BASE` override (the local emulator in tests, a proxy in front of Discord) is trusted
as the deployment's own Discord.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import discord

from bot.display_text import shown
from pipeline.brand_file import store_logo
from pipeline.config import Settings
from pipeline.errors import InvalidRequest
from pipeline.product_photo import store_photo_png
from pipeline.uploaded_images import (
    LOGO_MAX_BYTES,
    LOGO_MIN_SHORT_SIDE,
    MIB,
    PHOTO_MAX_BYTES,
    PHOTO_MIN_SHORT_SIDE,
    UploadedImageError,
    validate_image,
)

DISCORD_ATTACHMENT_HOSTS = ("cdn.discordapp.com", "media.discordapp.net")
FETCH_TIMEOUT_S = 30.0
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ImageUse:
    """What an uploaded image is for: its name in messages, its limits and where it is kept."""

    what: str
    max_bytes: int
    min_short_side: int
    store: Callable[[bytes, Path], Path]


LOGO = ImageUse("The logo", LOGO_MAX_BYTES, LOGO_MIN_SHORT_SIDE, store_logo)
PHOTO = ImageUse("The product photo", PHOTO_MAX_BYTES, PHOTO_MIN_SHORT_SIDE, store_photo_png)

Origin = tuple[str, str, int]  # scheme, host, port


def _origin(url: str) -> Origin | None:
    try:
        parts = urlsplit(url)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.scheme, parts.hostname.lower(), port


def trusted_origins(api_base: str | None) -> frozenset[Origin]:
    origins = {("https", host, 443) for host in DISCORD_ATTACHMENT_HOSTS}
    if api_base and (own := _origin(api_base)):
        origins.add(own)
    return frozenset(origins)


def check_source(url: str, use: ImageUse, api_base: str | None) -> None:
    """Refuse, before any request, a URL outside Discord's attachment servers."""
    origin = _origin(url)
    if origin is None or origin not in trusted_origins(api_base):
        where = shown(urlsplit(url).netloc or url, 60) if url else "nowhere"
        raise InvalidRequest(
            f"{use.what} must be attached to the command itself: I only download from Discord's attachment "
            f"servers ({', '.join(DISCORD_ATTACHMENT_HOSTS)}), not from {where}."
        )


def too_large(use: ImageUse, size: int) -> InvalidRequest:
    # The same words validate_image uses, so a file refused here or there reads the same.
    return InvalidRequest(
        f"{use.what} is {size / MIB:.1f} MiB; the limit is {use.max_bytes / MIB:g} MiB. Upload a smaller file."
    )


async def fetch_capped(url: str, use: ImageUse) -> bytes:
    """The file's bytes; never holds more than `use.max_bytes` + one chunk, whatever the server sends."""
    what = use.what[0].lower() + use.what[1:]
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            # No redirects: a 3xx could point anywhere, and the host check must hold for every request.
            session.get(url, allow_redirects=False) as response,
        ):
            if response.status != 200:
                raise InvalidRequest(
                    f"I could not download {what} from Discord (HTTP {response.status}); attach it again."
                )
            if response.content_length is not None and response.content_length > use.max_bytes:
                raise too_large(use, response.content_length)
            data = bytearray()
            async for chunk in response.content.iter_chunked(_CHUNK):
                data += chunk
                if len(data) > use.max_bytes:
                    raise InvalidRequest(
                        f"{use.what} is larger than the {use.max_bytes / MIB:g} MiB limit. Upload a smaller file."
                    )
            return bytes(data)
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = "it took too long" if isinstance(exc, TimeoutError) else "the connection failed"
        raise InvalidRequest(f"I could not download {what} from Discord ({reason}); try again in a minute.") from None


def check_attachment(attachment: discord.Attachment, use: ImageUse, settings: Settings) -> None:
    """What can be refused without downloading: where the file is, and the size Discord declares."""
    check_source(attachment.url, use, settings.discord.api_base)
    if attachment.size > use.max_bytes:
        raise too_large(use, attachment.size)


async def receive_image(attachment: discord.Attachment, use: ImageUse, settings: Settings) -> Path:
    """The stored, validated PNG of `attachment`; InvalidRequest (nothing stored) when it cannot be used."""
    check_attachment(attachment, use, settings)
    data = await fetch_capped(attachment.url, use)
    try:
        checked = await asyncio.to_thread(
            validate_image, data, what=use.what, max_bytes=use.max_bytes, min_short_side=use.min_short_side
        )
    except UploadedImageError as exc:
        raise InvalidRequest(str(exc)) from None
    return await asyncio.to_thread(use.store, checked.png, settings.storage.data_dir)

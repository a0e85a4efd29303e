"""Attachments a team hands the bot: what the Discord emulator sends for an attachment option (and
that discord.py reads it), /makead's product photo end to end, and the download's guards (hosts,
a stream larger than declared) on their own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from bot.attachment_images import LOGO, PHOTO, check_source, fetch_capped
from pipeline.errors import InvalidRequest
from tests.bot_harness import running_team
from tests.brand_images import photo_jpeg
from tests.emulators.discord_server import DiscordEmulator

pytest_plugins = ["tests.conftest_discord"]  # the discord_emulator and discord_errors fixtures


async def test_makead_with_a_photo_stores_the_validated_png_and_the_emulator_sends_discords_shape(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        rec, _, job_id = await team.makead(photo=("lamp.jpg", photo_jpeg(640, 800)))  # type: ignore[arg-type]
        [option] = [o for o in rec.data["options"] if o["name"] == "photo"]
        assert option["type"] == 11
        sent = rec.data["resolved"]["attachments"][option["value"]]
        assert set(sent) == {"id", "filename", "size", "url", "proxy_url", "content_type", "width", "height",
                             "ephemeral"}  # fmt: skip
        shape = (sent["filename"], sent["content_type"], sent["width"], sent["height"], sent["ephemeral"])
        assert shape == ("lamp.jpg", "image/jpeg", 640, 800, True)
        url, proxy = urlsplit(sent["url"]), urlsplit(sent["proxy_url"])
        assert url.path == f"/cdn/ephemeral-attachments/{emu.application_id}/{sent['id']}/lamp.jpg"
        assert proxy.path == url.path.replace("/cdn/", "/media/", 1)
        assert set(parse_qs(url.query)) == {"ex", "is", "hm"}

        job = await team.job(job_id)
        photo = Path(job.request.photo or "")
        assert photo.parent == team.bot.settings.storage.data_dir / "photos"
        with Image.open(photo) as img:  # re-encoded to PNG, pixels as uploaded
            assert img.format == "PNG" and img.size == (640, 800)
            r, g, b = img.convert("RGB").getpixel((320, 400))
            assert abs(r - 30) + abs(g - 120) + abs(b - 200) < 12

        # The CDN answers a link whose signature was tampered with as it does an expired one.
        async with aiohttp.ClientSession() as session:
            async with session.get(sent["url"].replace("hm=", "hm=0")) as response:
                assert response.status == 404 and await response.text() == "This content is no longer available."
            async with session.get(sent["proxy_url"]) as response:
                assert response.status == 200 and await response.read() == photo_jpeg(640, 800)


async def test_a_photo_too_small_is_refused_privately_and_no_job_or_file_is_made(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        rec = await emu.slash_command(team.guild_id, team.channel_id, team.alice.id, "makead",
                                      {"product": "Lumen lamp", "mood": "tech",
                                       "photo": ("lamp.jpg", photo_jpeg(300, 300))})  # fmt: skip
        [reply] = await (await rec.wait_response()).wait_followups(1, timeout=10)
        assert reply.ephemeral and reply.content == (
            "⚠️ The product photo is 300x300; its short side must be at least 512 px. Upload a larger image."
        )
        placeholder = emu.message(rec.original_message_id)
        assert placeholder.deleted and placeholder.loading  # the channel never saw the refusal
        assert await team.bot.runtime.store.list() == []
        assert not (team.bot.settings.storage.data_dir / "photos").exists()

        # Over 10 MiB as declared: refused before deferring, before any download.
        before = len(emu.cdn_requests)
        big = photo_jpeg(600, 600) + bytes(11 * 1024 * 1024)
        rec = await emu.slash_command(team.guild_id, team.channel_id, team.alice.id, "makead",
                                      {"product": "Lumen lamp", "mood": "tech", "photo": ("big.jpg", big)})  # fmt: skip
        await rec.wait_response()
        assert rec.response_type == 4 and rec.ephemeral
        assert rec.content == "⚠️ The product photo is 11.0 MiB; the limit is 10 MiB. Upload a smaller file."
        assert len(emu.cdn_requests) == before and await team.bot.runtime.store.list() == []


@contextlib.asynccontextmanager
async def endless_file(sent: list[int]) -> AsyncIterator[str]:
    """A server that streams zeros with no Content-Length, counting what it managed to send."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = bytes(64 * 1024)
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            for _ in range(1024):  # 64 MiB if nobody stops reading
                await response.write(chunk)
                sent[0] += len(chunk)
        return response

    app = web.Application()
    app.router.add_get("/file.png", handler)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/file.png"
    finally:
        await runner.cleanup()


async def test_a_download_larger_than_the_limit_stops_reading_at_the_limit() -> None:
    sent = [0]
    async with endless_file(sent) as url:
        with pytest.raises(InvalidRequest) as refused:
            await fetch_capped(url, LOGO)
    assert str(refused.value) == "The logo is larger than the 5 MiB limit. Upload a smaller file."
    assert sent[0] < 32 * 1024 * 1024, f"the server got to send {sent[0]} bytes"


@pytest.mark.parametrize(
    "url",
    [
        "http://cdn.discordapp.com/attachments/1/2/logo.png",  # not https
        "https://cdn.discordapp.com:8443/attachments/1/2/logo.png",
        "https://cdn.discordapp.com.evil.example/attachments/1/2/logo.png",
        "https://cdn.discordapp.com@evil.example/attachments/1/2/logo.png",
        "https://127.0.0.1:9/attachments/1/2/logo.png",  # local, but not the configured Discord
        "file:///etc/passwd",
        "",
    ],
)
def test_only_discords_attachment_hosts_and_the_configured_api_host_are_trusted(url: str) -> None:
    with pytest.raises(InvalidRequest, match=r"^The product photo must be attached to the command itself"):
        check_source(url, PHOTO, api_base="http://127.0.0.1:8080")


def test_discords_hosts_and_the_emulators_host_are_accepted() -> None:
    check_source("https://cdn.discordapp.com/ephemeral-attachments/1/2/a.png?ex=1&is=2&hm=3&", LOGO, None)
    check_source("https://MEDIA.discordapp.net/ephemeral-attachments/1/2/a.png", LOGO, None)
    check_source("http://127.0.0.1:8080/cdn/ephemeral-attachments/1/2/a.png", LOGO, "http://127.0.0.1:8080/api/v10")

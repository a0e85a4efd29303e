"""`/makead formats:` on Discord: the extra shapes are posted with the ad when they fit one message
together, else in follow-up messages, each under the upload limit; a bad choice is refused privately.
The same whole ad carries the server's brand kit, set with `/brand` by an admin: its end card is the
primary colour, its logo is in the chosen corner before the card."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.result_delivery import format_batches, formats_text
from pipeline.composer import Composer
from pipeline.ffmpeg import probe
from pipeline.formats import FORMATS, MadeFormat
from pipeline.models import AdRequest, Job, JobStatus
from tests.bot_harness import running_team
from tests.brand_images import logo_png
from tests.emulators.discord_server import DiscordEmulator
from tests.test_bot_brand import add_admin, brand
from tests.test_captions import frame_at

pytest_plugins = ["tests.conftest_discord"]
MIB = 1024 * 1024
# The master's size: a small 9:16 keeps the test quick (the CLI tests cover the dev profile's 720x1280);
# the formats are sized from it (16:9: 640x360). Pixel counts scale with the area (measured at this
# size: the card 93 % of the frame, the button 5,538 px, the logo's disc 658 px, none on the left).
W, H = 360, 640
AREA = W * H / (720 * 1280)


def _made(key: str, size: int) -> MadeFormat:
    fmt = FORMATS[key]
    return MadeFormat(fmt, Path(fmt.filename), size, *fmt.size(720))


def test_formats_ride_with_the_ad_when_they_fit_else_follow_within_the_limit() -> None:
    small = [_made("4:5", 2 * MIB), _made("16:9", 2 * MIB)]
    assert format_batches(3 * MIB, small, 10 * MIB) == (small, [])
    big = [_made("4:5", 6 * MIB), _made("1:1", 3 * MIB), _made("16:9", 5 * MIB)]
    with_ad, later = format_batches(3 * MIB, big, 10 * MIB)
    assert with_ad == [] and [[m.format.key for m in b] for b in later] == [["4:5", "1:1"], ["16:9"]]
    over = [_made("16:9", 11 * MIB)]
    assert format_batches(3 * MIB, over, 10 * MIB) == ([], [])
    job = Job(request=AdRequest(product="A lamp", formats=("4:5", "16:9")))
    job.notes.append("The 4:5 version was not made: it is too big for the upload limit: The ad is 12.0 MiB …")
    text = formats_text(job, over, 10 * MIB)
    assert "The 4:5 version was not made: it is too big" in text
    assert "The 16:9 version is 11.0 MiB, over this server's 10.0 MiB upload limit" in text


@pytest.mark.timeout(300)  # a whole offline ad and two more shapes, with real ffmpeg
async def test_makead_formats_posts_each_shape_with_the_ad(
    discord_emulator: DiscordEmulator,
    discord_errors,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    emu = discord_emulator
    # Shapes, brand and delivery are under test here, not the sound track (tests/test_bot_formats_button.py
    # cuts shapes of an ad with voice and music): no offline voice or music bed, ~7 CPU-s less.
    silent = {"JANT_VOICE": "none", "JANT_MUSIC": "none"}
    async with running_team(emu, tmp_path, discord_errors, real_providers=True, composer=Composer(W, H),
                            **silent) as team:  # fmt: skip
        refused = await emu.slash_command(
            team.guild_id, team.channel_id, team.alice.id, "makead",
            {"product": "Lumen desk lamp", "mood": "tech", "formats": "4:5,3:2"},
        )  # fmt: skip
        await refused.wait_response()
        assert refused.ephemeral and refused.content is not None
        assert refused.content.startswith("⚠️ `formats`: unknown format '3:2'; choose among 9:16, 4:5, 1:1, 16:9")

        # An admin gives the server its brand: every ad of this server is drawn with it.
        dave = add_admin(team)
        reply = await brand(team, dave, "set", primary="0e7490", cta="Order today", logo_corner="top-right")
        assert reply.content is not None and reply.content.startswith("✅ Brand kit updated"), reply.content
        rec = await emu.slash_command(team.guild_id, team.channel_id, dave.id, "brand logo",
                                      {"image": ("logo.png", logo_png(256))})  # fmt: skip
        [saved] = await (await rec.wait_response()).wait_followups(1, timeout=10)
        assert saved.content is not None and saved.content.startswith("✅ Logo saved"), saved.content

        _, board, job_id = await team.makead(product="Lumen desk lamp", formats="4:5,16:9")
        await team.click(board, "approve", job_id, team.alice)
        status = await team.status_message(job_id)

        job = await team.settled(job_id, timeout=240, what="the ad and its formats to be posted")
        assert job.status is JobStatus.COMPLETED and job.ui.delivered == "posted"
        result = await emu.wait_for_message(
            status.channel_id, lambda m: any(a.filename.endswith("-16x9.mp4") for a in m.attachments)
        )
        names = sorted(a.filename for a in result.attachments)
        assert names == sorted(
            [f"jant-ad-{job_id}.mp4", f"jant-ad-{job_id}-contact-sheet.png",
             f"jant-ad-{job_id}-4x5.mp4", f"jant-ad-{job_id}-16x9.mp4"]
        )  # fmt: skip
        wide = next(a for a in result.attachments if a.filename.endswith("-16x9.mp4"))
        posted = tmp_path / "posted-16x9.mp4"
        await asyncio.to_thread(posted.write_bytes, wide.data)
        info = await probe(posted)
        assert (info.width, info.height) == FORMATS["16:9"].size(W) == (640, 360)

        # The 9:16 ad as posted: it ends on the kit's card, and its logo rode in the corner before.
        master = next(a for a in result.attachments if a.filename == f"jant-ad-{job_id}.mp4")
        ad = tmp_path / "posted.mp4"
        await asyncio.to_thread(ad.write_bytes, master.data)
        length = (await probe(ad)).duration_s or 0.0
        assert 29.0 <= length <= 31.0
        last = await frame_at(ad, length - 0.1, tmp_path / "last.png")
        primary = (0x0E, 0x74, 0x90)
        on_card = sum(1 for px in last.getdata() if max(abs(a - b) for a, b in zip(px, primary, strict=True)) <= 8)
        assert on_card > 0.6 * last.width * last.height, "the end card is the server's primary colour"
        accent = (0xF5, 0x9E, 0x0B)  # the kit's accent (its default): the call to action's button
        button = sum(1 for px in last.getdata() if max(abs(a - b) for a, b in zip(px, accent, strict=True)) <= 12)
        assert button > 3000 * AREA, "the CTA is drawn on the card"
        early = await frame_at(ad, 1.0, tmp_path / "early.png")
        corner = early.crop((early.width // 2, 0, early.width, early.height // 4))
        red = sum(1 for r, g, b in corner.getdata() if r > 170 and g < 80 and b < 110)  # the logo's red disc
        assert red > 500 * AREA, "the logo sits in the top-right corner"
        left = early.crop((0, 0, early.width // 2, early.height // 4))
        assert sum(1 for r, g, b in left.getdata() if r > 170 and g < 80 and b < 110) < 50 * AREA

"""/brand through the Discord emulator with the real discord.py client: who may change a server's kit,
what each bad value is answered with (exactly), that a refused logo stores nothing, and that the
approver role moves per server. Alice and Bob are plain members, Carol has the default approver role
(JANT_APPROVER_ROLE), Dave has Manage Server."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

from PIL import Image

from bot.access_policy import Actor, ApproverRole, approver_role, may_change_brand
from bot.brand_embed import LOGO_MISSING
from pipeline.brand import BrandKit, GuildPolicy
from pipeline.models import JobStatus
from tests.bot_harness import Team, running_team
from tests.brand_images import animated_png, bomb_png, logo_png, png
from tests.emulators.discord_server import DiscordEmulator, StoredMessage, User

pytest_plugins = ["tests.conftest_discord"]  # the discord_emulator and discord_errors fixtures

REFUSED = "⚠️ Only members with Manage Server or the **Ad approver** role can change this server's brand kit."


def add_admin(team: Team) -> User:
    dave = team.emu.add_user("dave")
    admins = team.emu.add_role(team.guild_id, "Server admins", ["MANAGE_GUILD"])
    team.emu.add_member(team.guild_id, dave.id, roles=[admins.id])
    return dave


async def brand(team: Team, user: User, sub: str, guild_id: int | None = None, channel_id: int | None = None,
                **options: Any) -> StoredMessage:  # fmt: skip
    """Run `/brand <sub>`; the message the member reads (the reply, or the followup after a defer)."""
    await team.emu.settle()
    rec = await team.emu.slash_command(guild_id or team.guild_id, channel_id or team.channel_id, user.id,
                                       f"brand {sub}", options)  # fmt: skip
    await rec.wait_response()
    if rec.response_type == 5:
        [reply] = await rec.wait_followups(1, timeout=10)
        return reply
    assert rec.original is not None
    return rec.original


async def raw_brand(team: Team, user: User, sub: str, options: dict[str, Any], *,
                    sent: dict[str, Any] | None = None, edit: Any = None) -> StoredMessage:  # fmt: skip
    """`/brand <sub>` as a raw API call could send it: option values replaced by `sent` (past the
    limits Discord's own client enforces), and the payload changed by `edit` (a forged attachment)."""
    emu = team.emu
    data = emu._command_data(team.guild_id, team.channel_id, user.id, f"brand {sub}", options, focused=None)
    for option in data["options"][0]["options"]:
        option["value"] = (sent or {}).get(option["name"], option["value"])
    if edit is not None:
        edit(data)
    rec = await emu.inject_interaction(emu._envelope(2, team.guild_id, team.channel_id, user.id, data))
    await rec.wait_response()
    if rec.response_type == 5:
        return (await rec.wait_followups(1, timeout=10))[0]
    assert rec.original is not None
    return rec.original


def logo_files(team: Team) -> list[Path]:
    return sorted((team.bot.settings.storage.data_dir / "brand").glob("*.png"))


async def test_an_admin_sets_the_kit_and_uploads_a_logo_and_show_previews_it(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        dave = add_admin(team)
        store = team.bot.runtime.store
        reply = await brand(team, dave, "set", primary="1A2B3C", accent="#FFCC00", cta="Order today",
                            url="https://lumen.example/buy", captions="plain", logo_corner="top-left",
                            music="none", budget_daily=5.0)  # fmt: skip
        assert reply.ephemeral and not emu.would_ping(reply)
        assert reply.content == (
            "✅ Brand kit updated: `primary`, `accent`, `cta`, `url`, `music`, `captions`, `logo_corner`, "
            "`budget_daily`. New ads use it from now on; `/brand show` previews it."
        )
        kit = await store.guild_brand(str(team.guild_id))
        assert (kit.primary, kit.accent, kit.cta, kit.url) == ("#1a2b3c", "#ffcc00", "Order today",
                                                               "https://lumen.example/buy")  # fmt: skip
        assert (kit.captions, kit.logo_corner, kit.music) == ("plain", "top-left", "none")
        assert (await store.guild_policy(str(team.guild_id))).budget_daily_usd == 5.0

        rec = await emu.slash_command(team.guild_id, team.channel_id, dave.id, "brand logo",
                                      {"image": ("logo.png", logo_png(256))})  # fmt: skip
        [reply] = await (await rec.wait_response()).wait_followups(1, timeout=10)
        assert reply.ephemeral
        assert reply.content.startswith("✅ Logo saved (256x256 px). New ads carry it;"), reply.content
        [stored] = logo_files(team)
        kit = await store.guild_brand(str(team.guild_id))
        assert kit.logo_path == str(stored)
        with Image.open(stored) as img:  # re-encoded, transparency kept: the corner is see-through
            assert img.format == "PNG" and img.mode == "RGBA" and img.getpixel((2, 2))[3] == 0
        # Downloaded from the CDN once, by its signed ephemeral-attachment URL.
        assert [s for p, s in emu.cdn_requests if "/ephemeral-attachments/" in p] == [200]

        shown = await brand(team, team.alice, "show")  # anyone may look
        assert shown.ephemeral
        [embed] = shown.embeds
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert embed["title"] == "Brand kit" and embed["color"] == 0x1A2B3C
        assert fields["Colours"] == "primary `#1a2b3c` · accent `#ffcc00`"
        assert fields["Call to action"] == "Order today" and fields["Logo"] == "shown top-left"
        assert fields["URL"] == "`https://lumen.example/buy`"
        assert fields["Budgets"] == "daily $5.00 · monthly no limit"
        assert fields["Approver role"] == "**Ad approver**"  # the JANT_APPROVER_ROLE default
        [preview] = shown.attachments
        assert preview.filename == "brand-preview.png" and embed["image"]["url"] == "attachment://brand-preview.png"
        with Image.open(io.BytesIO(preview.data)) as img:
            # The end card (right half), drawn through the video path: within a rounding of the colour.
            card = img.convert("RGB").getpixel((img.width - 40, 40))
            assert max(abs(a - b) for a, b in zip(card, (0x1A, 0x2B, 0x3C), strict=True)) <= 3

        # The logo file vanishes from disk: show says so, instead of failing or pretending.
        stored.unlink()
        shown = await brand(team, team.alice, "show")
        assert {f["name"]: f["value"] for f in shown.embeds[0]["fields"]}["Logo"] == LOGO_MISSING

        reply = await brand(team, dave, "reset")
        assert reply.content == (
            "✅ The brand kit is back to the defaults. The approver role and the budgets are unchanged."
        )
        assert (await store.guild_brand(str(team.guild_id))) == BrandKit()
        assert (await store.guild_policy(str(team.guild_id))).budget_daily_usd == 5.0


async def test_a_second_server_without_a_kit_gets_the_defaults(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        dave = add_admin(team)
        await brand(team, dave, "set", primary="#ff0000", cta="Buy the lamp")
        other = emu.add_guild("Second team")
        channel = emu.add_text_channel(other.id, "ads")
        emu.add_member(other.id, team.alice.id)
        shown = await brand(team, team.alice, "show", guild_id=other.id, channel_id=channel.id)
        [embed] = shown.embeds
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        defaults = BrandKit()
        assert embed["title"] == "Brand kit (defaults)"
        assert fields["Colours"] == f"primary `{defaults.primary}` · accent `{defaults.accent}`"
        assert fields["Call to action"] == "the ad's own" and fields["Logo"] == "none yet: `/brand logo`"
        with Image.open(io.BytesIO(shown.attachments[0].data)) as img:
            card = img.convert("RGB").getpixel((img.width - 40, 40))
            assert max(abs(a - b) for a, b in zip(card, (0x11, 0x18, 0x27), strict=True)) <= 3  # the default, not red
        assert (await team.bot.runtime.store.guild_brand(str(other.id))) == defaults


async def test_a_plain_member_is_refused_with_who_may_and_nothing_is_stored_or_downloaded(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        for sub, options in (("set", {"cta": "Free lamps"}), ("logo", {"image": ("logo.png", logo_png())}),
                             ("reset", {})):  # fmt: skip
            reply = await brand(team, team.bob, sub, **options)
            assert reply.ephemeral and reply.content == REFUSED, sub
            assert not emu.would_ping(reply)
        assert await team.bot.runtime.store.repo.guild_settings(str(team.guild_id)) is None
        assert logo_files(team) == [] and emu.cdn_requests == []  # refused before downloading


async def test_the_approver_may_change_the_kit_but_only_manage_server_moves_the_role_or_the_budgets(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        store = team.bot.runtime.store
        reply = await brand(team, team.carol, "set", cta="Try it for 30 days")  # the default approver role
        assert reply.content.startswith("✅ Brand kit updated: `cta`.")
        reply = await brand(team, team.carol, "set", budget_monthly=1000.0)
        assert reply.content == (
            "⚠️ Only members with Manage Server can change the approver role or the budgets; "
            "ask one of them, or leave those options out."
        )
        assert await store.guild_policy(str(team.guild_id)) == GuildPolicy()


async def test_a_server_approver_role_replaces_the_default_for_brand_and_for_approving_ads(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        dave = add_admin(team)
        brand_team = emu.add_role(team.guild_id, "Brand team")
        erin = emu.add_user("erin")
        emu.add_member(team.guild_id, erin.id, roles=[brand_team.id])

        _, board, job_id = await team.makead()  # Alice's ad, before the role moves
        reply = await team.click(board, "approve", job_id, erin)
        assert reply.content == (  # the default still applies: Erin is refused, Carol named
            f"Only <@{team.alice.id}> (who asked for it), members with the **Ad approver** role or members "
            "with Manage Server can approve this ad."
        )
        assert (await brand(team, erin, "set", cta="x")).content == REFUSED

        reply = await brand(team, dave, "set", approver_role=brand_team.id)
        assert reply.content.startswith("✅ Brand kit updated: `approver_role`.")
        policy = await team.bot.runtime.store.guild_policy(str(team.guild_id))
        assert policy.approver_role_id == brand_team.id

        moved = "⚠️ Only members with Manage Server or the **Brand team** role can change this server's brand kit."
        assert (await brand(team, team.carol, "set", cta="x")).content == moved  # the default no longer counts
        assert (await brand(team, erin, "set", cta="Made for night owls")).content.startswith("✅")
        reply = await team.click(board, "approve", job_id, team.carol)
        assert "members with the **Brand team** role" in reply.content
        await team.click(board, "approve", job_id, erin)
        job = await team.job(job_id)
        assert job.status not in (JobStatus.PLANNING, JobStatus.AWAITING_APPROVAL)  # Erin's click approved it


async def test_each_bad_value_gets_its_exact_message_and_nothing_is_changed(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        dave = add_admin(team)
        store = team.bot.runtime.store
        hex_please = "must be a hex colour like #1a2b3c or 1a2b3c"
        cases = {
            "primary": ("blue", f"⚠️ primary {hex_please} (got 'blue'). Nothing was changed."),
            "accent": ("#12345", f"⚠️ accent {hex_please} (got '#12345'). Nothing was changed."),
            "url": ("ftp://lumen.example", "⚠️ url must start with http:// or https:// and name a site "
                    "(got 'ftp://lumen.example'). Nothing was changed."),
            "cta": ("Ping @everyone now", "⚠️ cta cannot contain mentions (@everyone, @here, <@…>); write the name "
                    "instead. Nothing was changed."),
        }  # fmt: skip
        for option, (value, message) in cases.items():
            reply = await brand(team, dave, "set", **{option: value})
            assert reply.ephemeral and reply.content == message, option
            assert not emu.would_ping(reply)
        # Past what Discord's own client lets a member type (max_length), as a raw API call could.
        reply = await raw_brand(team, dave, "set", {"cta": "x"}, sent={"cta": "Order " * 12})
        assert reply.content == "⚠️ cta is 71 characters; at most 60 fit on the end card. Nothing was changed."
        assert await store.repo.guild_settings(str(team.guild_id)) is None


async def test_each_bad_logo_gets_its_exact_message_and_nothing_is_stored(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        dave = add_admin(team)
        cases = [
            ("notes.png", b"these are my notes, not a picture",
             "⚠️ The logo is not an image Jant can read; upload a PNG, JPEG or WebP."),
            ("spin.png", animated_png(), "⚠️ The logo is animated (2 frames); upload a still image."),
            ("tiny.png", png(64, 64),
             "⚠️ The logo is 64x64; its short side must be at least 128 px. Upload a larger image."),
            ("bomb.png", bomb_png(), "⚠️ The logo claims more pixels than is safe to decode (a decompression bomb?); "
             "upload a normal image."),
        ]  # fmt: skip
        for filename, data, message in cases:
            reply = await brand(team, dave, "logo", image=(filename, data))
            assert reply.ephemeral and reply.content == message, filename

        # Over 5 MiB as Discord declares it: refused before a single byte is downloaded.
        fetched = len(emu.cdn_requests)
        huge = png(300, 300) + bytes(6 * 1024 * 1024)
        reply = await brand(team, dave, "logo", image=("huge.png", huge))
        assert reply.content == "⚠️ The logo is 6.0 MiB; the limit is 5 MiB. Upload a smaller file."
        assert len(emu.cdn_requests) == fetched

        # A payload whose attachment says it is small but is not: stopped by what the CDN sends.
        def lie(data: dict[str, Any]) -> None:
            [attachment] = data["resolved"]["attachments"].values()
            attachment["size"] = 1000

        reply = await raw_brand(team, dave, "logo", {"image": ("liar.png", huge)}, edit=lie)
        assert reply.content == "⚠️ The logo is 6.0 MiB; the limit is 5 MiB. Upload a smaller file."

        # An attachment URL on another host (a forged payload): refused with the hosts it may come from.
        def elsewhere(data: dict[str, Any]) -> None:
            [attachment] = data["resolved"]["attachments"].values()
            attachment["url"] = attachment["proxy_url"] = "https://images.evil.example/logo.png?x=1"

        fetched = len(emu.cdn_requests)
        reply = await raw_brand(team, dave, "logo", {"image": ("logo.png", logo_png())}, edit=elsewhere)
        assert reply.content == (
            "⚠️ The logo must be attached to the command itself: I only download from Discord's attachment "
            "servers (cdn.discordapp.com, media.discordapp.net), not from images.evil.example."
        )
        assert len(emu.cdn_requests) == fetched
        assert logo_files(team) == []
        assert await team.bot.runtime.store.repo.guild_settings(str(team.guild_id)) is None


async def test_two_changes_at_once_both_stick(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        dave = add_admin(team)
        await emu.settle()
        recs = await asyncio.gather(
            *(emu.slash_command(team.guild_id, team.channel_id, who.id, "brand set", options)
              for who, options in ((dave, {"primary": "#222222"}), (team.carol, {"cta": "Dim the night"}),
                                   (dave, {"url": "https://lumen.example"})))
        )  # fmt: skip
        for rec in recs:
            await rec.wait_response()
            assert (rec.content or "").startswith("✅"), rec.content
        kit = await team.bot.runtime.store.guild_brand(str(team.guild_id))
        assert (kit.primary, kit.cta, kit.url) == ("#222222", "Dim the night", "https://lumen.example")


class NamedVoice:
    """Stands in for the Replicate voice in the provider table: /brand set only asks for its voices."""

    name = "replicate-minimax-tts"


async def test_the_voice_is_one_of_the_configured_providers_voices(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    from pipeline.providers.base import Providers
    from pipeline.providers.offline_planner import OfflineStoryboardPlanner
    from pipeline.providers.replicate_voice import minimax_voices
    from tests.scripted_providers import ScriptedImages, ScriptedVideo

    emu = discord_emulator
    voices = minimax_voices()
    providers = Providers(OfflineStoryboardPlanner(), ScriptedImages("seed"), ScriptedVideo("clip"),  # type: ignore[arg-type]
                          stages={"voice": NamedVoice()})  # type: ignore[dict-item]  # fmt: skip
    async with running_team(emu, tmp_path, discord_errors, providers=providers) as team:
        dave = add_admin(team)
        await emu.settle()
        typed = voices[0][:4]
        rec = await emu.autocomplete(team.guild_id, team.channel_id, dave.id, "brand set", {"voice": typed}, "voice")
        await rec.wait_response()
        assert [c["value"] for c in rec.choices or []] == [v for v in voices if typed.lower() in v.lower()][:25]

        reply = await brand(team, dave, "set", voice="Gravel_Voice_99")
        assert reply.content == (
            "⚠️ 'Gravel_Voice_99' is not one of the voices of replicate-minimax-tts; "
            f"choose one of: {', '.join(voices)}."
        )
        assert await team.bot.runtime.store.repo.guild_settings(str(team.guild_id)) is None
        assert (await brand(team, dave, "set", voice=voices[1])).content.startswith("✅ Brand kit updated: `voice`.")
        assert (await team.bot.runtime.store.guild_brand(str(team.guild_id))).voice == voices[1]
        await brand(team, dave, "set", voice="default")
        assert (await team.bot.runtime.store.guild_brand(str(team.guild_id))).voice is None


def test_the_server_approver_role_is_matched_by_id_and_the_default_by_name() -> None:
    member = Actor(1, ("Ad approver",), False, (77,))
    assert approver_role(None, None, "Ad approver") == ApproverRole("Ad approver")
    assert may_change_brand(member, approver_role(None, None, "ad APPROVER"))  # names match case-insensitively
    server = approver_role(55, "Brand team", "Ad approver")
    assert server == ApproverRole("Brand team", 55) and not may_change_brand(member, server)
    assert may_change_brand(Actor(2, ("renamed",), False, (55,)), server)  # a renamed role still counts
    assert approver_role(55, None, "Ad approver") == ApproverRole("Ad approver")  # deleted role: the default
    assert approver_role(None, None, None) is None and not may_change_brand(member, None)
    assert may_change_brand(Actor(3, (), True), None)  # Manage Server always may

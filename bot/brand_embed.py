"""The `/brand show` embed: a server's brand kit and policy as a teammate reads them. Pure."""

from __future__ import annotations

import discord

from bot.access_policy import ApproverRole
from bot.display_text import shown
from pipeline.brand import BrandKit, GuildPolicy, LogoCorner

PREVIEW_FILE = "brand-preview.png"
LOGO_MISSING = "⚠️ The logo file is gone from the server's disk: upload it again with `/brand logo`."


def _usd(value: float | None) -> str:
    return "no limit" if value is None else f"${value:,.2f}"


def render_brand(
    kit: BrandKit,
    policy: GuildPolicy,
    *,
    approver: ApproverRole | None,
    captions_default: str,
    logo_missing: bool = False,
    with_preview: bool = False,
) -> discord.Embed:
    title = "Brand kit" + (f": {shown(kit.name, 60)}" if kit.name else "") + (" (defaults)" if kit.is_default else "")
    embed = discord.Embed(title=title, colour=discord.Colour(int(kit.primary[1:], 16)))
    embed.add_field(name="Colours", value=f"primary `{kit.primary}` · accent `{kit.accent}`")
    embed.add_field(name="Font", value=f"{kit.font} ({kit.font_family})")
    embed.add_field(name="Call to action", value=shown(kit.cta, 100) or "the ad's own")
    # In a code span: markdown escapes would end up inside the link, and nothing in one is markup.
    embed.add_field(name="URL", value=f"`{kit.url.replace('`', 'ˋ')}`" if kit.url else "none")
    embed.add_field(name="Voice", value=shown(kit.voice, 64) or "the voice provider's default")
    music = {None: "the ad's mood", "none": "no music"}.get(kit.music, kit.music)
    embed.add_field(name="Music", value=shown(music, 40))
    embed.add_field(name="Captions", value=kit.captions.value if kit.captions else f"{captions_default} (default)")
    embed.add_field(name="End card", value=kit.end_card.value)
    if logo_missing:
        logo = LOGO_MISSING
    elif kit.logo_path is None:
        logo = "none yet: `/brand logo`"
    else:
        logo = "hidden" if kit.logo_corner is LogoCorner.NONE else f"shown {kit.logo_corner.value}"
    embed.add_field(name="Logo", value=logo, inline=False)
    embed.add_field(name="Approver role", value=f"**{shown(approver.name, 100)}**" if approver else "none")
    embed.add_field(
        name="Budgets", value=f"daily {_usd(policy.budget_daily_usd)} · monthly {_usd(policy.budget_monthly_usd)}"
    )
    if with_preview:
        embed.set_image(url=f"attachment://{PREVIEW_FILE}")
    embed.set_footer(text="/brand set changes it · /brand logo uploads the logo · /brand reset restores the defaults")
    return embed

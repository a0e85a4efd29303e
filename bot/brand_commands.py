"""/brand show | set | logo | reset: a server's brand kit (pipeline.brand.BrandKit) and its policy
(approver role, budgets; pipeline.brand.GuildPolicy), stored per server.

Anyone may look; only Manage Server or the server's approver role may change the kit, and only
Manage Server may move the approver role or the budgets (an approver could otherwise raise their
own spending or hand the role on). Every reply is private: the kit is a setting, not news.
"""

from __future__ import annotations

import asyncio
import io
import logging
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands
from pydantic import ValidationError

from bot.access_policy import ApproverRole, brand_refusal, may_change_brand
from bot.attachment_images import LOGO, receive_image
from bot.brand_embed import PREVIEW_FILE, render_brand
from bot.commands import DISCORD_MAX_CHOICES
from bot.display_text import shown
from bot.server_approver import actor_of, server_approver
from pipeline.brand import BRAND_FONTS, CTA_MAX, NAME_MAX, URL_MAX, BrandKit, EndCardStyle, GuildPolicy, LogoCorner
from pipeline.brand_preview import render_brand_preview
from pipeline.captions import CaptionMode
from pipeline.errors import InvalidRequest
from pipeline.models import StageName
from pipeline.moods import Mood
from pipeline.voice_choice import check_voice_choice, provider_voices

if TYPE_CHECKING:
    from bot.app import JantBot

log = logging.getLogger(__name__)

CLEAR = "none"  # name/cta/url: removes the value
DEFAULT_VOICE = "default"  # voice: back to the provider's default
AUTO_MUSIC = "auto"  # music: the ad's own mood
NOTHING_GIVEN = "Give at least one option to change; `/brand show` shows the kit as it is."
MANAGE_SERVER_ONLY = (
    "Only members with Manage Server can change the approver role or the budgets; "
    "ask one of them, or leave those options out."
)


def _choices(values: list[str]) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=v, value=v) for v in values][:DISCORD_MAX_CHOICES]


def kit_problem(exc: ValidationError) -> str:
    """The first invalid value, in the validator's own words (they name the field)."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ()))
    message = str(err.get("msg", "")).removeprefix("Value error, ")
    return message if message.startswith(field) else f"{field}: {message}"


def preview_png(kit: BrandKit) -> bytes:
    """CPU and file work: run in a thread."""
    with tempfile.TemporaryDirectory() as tmp:
        return render_brand_preview(kit, Path(tmp) / PREVIEW_FILE).read_bytes()


def _clearable(value: str) -> str | None:
    return None if value.strip().lower() == CLEAR else value


class BrandCommands(commands.Cog):
    brand = app_commands.Group(
        name="brand", description="This server's brand kit: colours, font, logo, call to action", guild_only=True
    )

    def __init__(self, bot: JantBot) -> None:
        self.bot = bot
        # One change at a time per server: each change reads the kit, edits it and writes it back,
        # so two admins at once must not lose one another's edit.
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    # -- looking --------------------------------------------------------------------------------

    @brand.command(name="show", description="Show this server's brand kit and a preview of its end card")
    async def show(self, interaction: discord.Interaction[Any]) -> None:
        with self.bot.in_flight.track():
            await interaction.response.defer(ephemeral=True, thinking=True)
            store = self.bot.runtime.store
            guild_id = str(interaction.guild_id)
            kit, policy = await store.guild_brand(guild_id), await store.guild_policy(guild_id)
            approver = await server_approver(self.bot, interaction)
            missing = kit.logo_path is not None and not await asyncio.to_thread(Path(kit.logo_path).is_file)
            drawn = kit.model_copy(update={"logo_path": None}) if missing else kit
            try:
                png: bytes | None = await asyncio.to_thread(preview_png, drawn)
            except Exception:  # the kit is still worth showing without its picture
                log.warning("brand preview failed for guild %s", guild_id, exc_info=True)
                png = None
            embed = render_brand(kit, policy, approver=approver, logo_missing=missing, with_preview=png is not None,
                                 captions_default=self.bot.settings.audio.captions)  # fmt: skip
            files = [discord.File(io.BytesIO(png), filename=PREVIEW_FILE)] if png is not None else []
            await interaction.followup.send(embed=embed, files=files, ephemeral=True)

    # -- changing -------------------------------------------------------------------------------

    async def _allowed(self, interaction: discord.Interaction[Any]) -> ApproverRole | None:
        """The server's approver role, once the member is known to be allowed to change the kit."""
        approver = await server_approver(self.bot, interaction)
        if not may_change_brand(actor_of(interaction), approver):
            raise InvalidRequest(brand_refusal(approver))
        return approver

    @brand.command(name="set", description="Change this server's brand kit (Manage Server or the approver role)")
    @app_commands.describe(
        name="The brand's name ('none' removes it)",
        primary="Main colour, hex like #1a2b3c: the end card's background",
        accent="Second colour, hex like #f59e0b: highlighted caption words",
        font="The font of captions, headline and end card",
        cta="Call to action on the end card, e.g. 'Order today' ('none' removes it)",
        url="Website on the end card, http(s) ('none' removes it)",
        voice="The voice that reads the lines ('default': the voice provider's own)",
        music="The music's mood, 'auto' for the ad's own, or 'none' for no music",
        captions="Spoken-word captions: karaoke, plain or off",
        logo_corner="Where the logo watermark sits, or none",
        end_card="The end card's background: the primary colour, or the last frame blurred",
        approver_role="The role that may approve ads and change the kit (Manage Server only)",
        budget_daily="Most this server may spend per day, in USD (Manage Server only)",
        budget_monthly="Most this server may spend per month, in USD (Manage Server only)",
    )
    @app_commands.choices(
        font=_choices(sorted(BRAND_FONTS)),
        music=_choices([AUTO_MUSIC, *(m.value for m in Mood), "none"]),
        captions=_choices([c.value for c in CaptionMode]),
        logo_corner=_choices([c.value for c in LogoCorner]),
        end_card=_choices([s.value for s in EndCardStyle]),
    )
    async def set_(
        self,
        interaction: discord.Interaction[Any],
        name: app_commands.Range[str, 1, NAME_MAX] | None = None,
        primary: app_commands.Range[str, 1, 20] | None = None,
        accent: app_commands.Range[str, 1, 20] | None = None,
        font: app_commands.Choice[str] | None = None,
        cta: app_commands.Range[str, 1, CTA_MAX] | None = None,
        url: app_commands.Range[str, 1, URL_MAX] | None = None,
        voice: app_commands.Range[str, 1, 64] | None = None,
        music: app_commands.Choice[str] | None = None,
        captions: app_commands.Choice[str] | None = None,
        logo_corner: app_commands.Choice[str] | None = None,
        end_card: app_commands.Choice[str] | None = None,
        approver_role: discord.Role | None = None,
        budget_daily: app_commands.Range[float, 0, None] | None = None,
        budget_monthly: app_commands.Range[float, 0, None] | None = None,
    ) -> None:
        with self.bot.in_flight.track():
            await self._allowed(interaction)
            changes: dict[str, Any] = {}
            for key, text in (("name", name), ("cta", cta), ("url", url)):
                if text is not None:
                    changes[key] = _clearable(text)
            for key, text in (("primary", primary), ("accent", accent)):
                if text is not None:
                    changes[key] = text
            for key, choice in (("font", font), ("captions", captions), ("logo_corner", logo_corner),
                                ("end_card", end_card)):  # fmt: skip
                if choice is not None:
                    changes[key] = choice.value
            if music is not None:
                changes["music"] = None if music.value == AUTO_MUSIC else music.value
            if voice is not None:
                said = voice.strip()
                if said.lower() != DEFAULT_VOICE:
                    check_voice_choice(self.bot.runtime.providers, said, True)
                changes["voice"] = None if said.lower() == DEFAULT_VOICE else said
            policy_changes: dict[str, Any] = {}
            if approver_role is not None:
                policy_changes["approver_role_id"] = approver_role.id
            if budget_daily is not None:
                policy_changes["budget_daily_usd"] = float(budget_daily)
            if budget_monthly is not None:
                policy_changes["budget_monthly_usd"] = float(budget_monthly)
            if not changes and not policy_changes:
                raise InvalidRequest(NOTHING_GIVEN)
            if policy_changes and not actor_of(interaction).manage_guild:
                raise InvalidRequest(MANAGE_SERVER_ONLY)
            if approver_role is not None and (approver_role.is_default() or approver_role.managed):
                raise InvalidRequest(
                    f"**{shown(approver_role.name, 100)}** cannot be the approver role: pick a role members are given."
                )

            store = self.bot.runtime.store
            guild_id = str(interaction.guild_id)
            who = str(interaction.user.id)
            async with self._locks[guild_id]:
                kit = await store.guild_brand(guild_id)
                policy = await store.guild_policy(guild_id)
                try:  # validate everything before saving anything
                    new_kit = BrandKit.model_validate({**kit.model_dump(), **changes})
                    new_policy = GuildPolicy.model_validate({**policy.model_dump(), **policy_changes})
                except ValidationError as exc:
                    raise InvalidRequest(kit_problem(exc) + " Nothing was changed.") from None
                if changes:
                    await store.save_guild_brand(guild_id, new_kit, updated_by=who)
                if policy_changes:
                    await store.save_guild_policy(guild_id, new_policy, updated_by=who)
            log.info("brand kit of guild %s changed by %s: %s", guild_id, who, sorted([*changes, *policy_changes]))
            approver = await server_approver(self.bot, interaction)
            given = {*changes, *(_OPTION_OF[k] for k in policy_changes)}
            names = ", ".join(f"`{k}`" for k in SET_OPTIONS if k in given)
            embed = render_brand(
                new_kit, new_policy, approver=approver, captions_default=self.bot.settings.audio.captions
            )
            await interaction.response.send_message(
                f"✅ Brand kit updated: {names}. New ads use it from now on; `/brand show` previews it.",
                embed=embed,
                ephemeral=True,
            )

    @set_.autocomplete("voice")
    async def _voice_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        voices = [DEFAULT_VOICE, *(provider_voices(self.bot.runtime.providers.get(StageName.VOICE)) or ())]
        typed = current.strip().lower()
        return _choices([v for v in voices if typed in v.lower()])

    @brand.command(name="logo", description="Upload the brand's logo: PNG, JPEG or WebP (Manage Server or approver)")
    @app_commands.describe(image="PNG, JPEG or WebP, at most 5 MiB, at least 128 px on its short side")
    async def logo(self, interaction: discord.Interaction[Any], image: discord.Attachment) -> None:
        await self._allowed(interaction)
        with self.bot.in_flight.track():
            await interaction.response.defer(ephemeral=True, thinking=True)
            path = await receive_image(image, LOGO, self.bot.settings)
            store = self.bot.runtime.store
            guild_id = str(interaction.guild_id)
            async with self._locks[guild_id]:
                kit = await store.guild_brand(guild_id)
                hidden = kit.logo_corner is LogoCorner.NONE
                new_kit = BrandKit.model_validate({**kit.model_dump(), "logo_path": str(path)})
                await store.save_guild_brand(guild_id, new_kit, updated_by=str(interaction.user.id))
            log.info("brand logo of guild %s replaced by %s", guild_id, interaction.user.id)
            note = " It is hidden (`logo_corner` is none): `/brand set logo_corner:` shows it." if hidden else ""
            await interaction.followup.send(
                f"✅ Logo saved ({image.width or '?'}x{image.height or '?'} px). New ads carry it; "
                f"`/brand show` previews it.{note}",
                ephemeral=True,
            )

    @brand.command(name="reset", description="Put this server's brand kit back to the defaults")
    async def reset(self, interaction: discord.Interaction[Any]) -> None:
        with self.bot.in_flight.track():
            await self._allowed(interaction)
            guild_id = str(interaction.guild_id)
            async with self._locks[guild_id]:
                await self.bot.runtime.store.save_guild_brand(guild_id, BrandKit(), updated_by=str(interaction.user.id))
            log.info("brand kit of guild %s reset by %s", interaction.guild_id, interaction.user.id)
            await interaction.response.send_message(
                "✅ The brand kit is back to the defaults. The approver role and the budgets are unchanged.",
                ephemeral=True,
            )


# In the order /brand set lists them, which is the order the confirmation names them in.
SET_OPTIONS = ("name", "primary", "accent", "font", "cta", "url", "voice", "music", "captions", "logo_corner",
               "end_card", "approver_role", "budget_daily", "budget_monthly")  # fmt: skip
_OPTION_OF = {"approver_role_id": "approver_role", "budget_daily_usd": "budget_daily",
              "budget_monthly_usd": "budget_monthly"}  # fmt: skip

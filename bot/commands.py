"""Slash commands: /makead, /jobs, /job, /cancel, /reroll, /rerender — and the one place app-command errors
are answered."""

from __future__ import annotations

import contextlib
import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands
from pydantic import ValidationError

from bot.attachment_images import PHOTO, check_attachment, receive_image
from bot.display_text import cap, mib, shown
from bot.error_replies import RESTARTING, reply_ephemeral, reply_error
from bot.job_buttons import storyboard_buttons
from bot.result_delivery import attachments, result_files, result_text, too_large_text
from bot.status_view import render_status
from bot.storyboard_embed import render_storyboard
from pipeline.errors import InvalidRequest, JantError
from pipeline.models import HOOKS_MAX, SCENES_MAX, TEXT_FIELD_MAX_CHARS, AdRequest, Job, JobStatus, StageName, utcnow
from pipeline.moods import MOOD_PRESETS
from pipeline.providers.base import Providers
from pipeline.video_models import VIDEO_MODELS
from pipeline.voice_choice import NO_VOICE, provider_voices

if TYPE_CHECKING:
    from bot.app import JantBot

log = logging.getLogger(__name__)

PRODUCT_MAX = 1000  # Discord enforces max_length in its client; a raw API call could still exceed it
JOB_ID = re.compile(r"^[0-9a-f]{8}$")
RECENT_JOBS = 10
DISCORD_MAX_CHOICES = 25  # an autocomplete answer holds at most 25 choices

_STATUS_WORDS = {
    JobStatus.PLANNING: "🖊️ planning",
    JobStatus.AWAITING_APPROVAL: "🕓 awaiting approval",
    JobStatus.QUEUED: "⏳ queued",
    JobStatus.RUNNING: "🎥 generating",
    JobStatus.COMPOSING: "🎬 composing",
    JobStatus.COMPLETED: "✅ done",
    JobStatus.PARTIAL: "⚠️ partial",
    JobStatus.FAILED: "❌ failed",
    JobStatus.CANCELLED: "⏹️ cancelled",
}


class JantCommandTree(app_commands.CommandTree):
    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        """While the bot shuts down, commands get a short 'try again in a minute' instead of half a job."""
        if getattr(interaction.client, "closing", False):
            await reply_ephemeral(interaction, RESTARTING)
            return False
        return True

    async def on_error(self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError) -> None:
        await reply_error(interaction, error)


def _field_problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = {
        "product": "product",
        "audience": "audience",
        "cta": "cta",
        "mood": "mood",
        "language": "language",
        "formats": "formats",
        "hooks": "hooks",
    }.get(str(err.get("loc", ("",))[0]), "input")
    return f"`{field}`: {str(err.get('msg', '')).removeprefix('Value error, ')}."


def ad_request(
    product: str, mood: str, audience: str | None, cta: str | None, language: str | None = None,
    voice: str | None = None, formats: str | None = None, hooks: int | None = None,
) -> AdRequest:  # fmt: skip
    if len(product) > PRODUCT_MAX:
        raise InvalidRequest(f"`product` is {len(product)} characters; keep it to {PRODUCT_MAX} or fewer.")
    for name, value in (("audience", audience), ("cta", cta)):
        if value is not None and len(value) > TEXT_FIELD_MAX_CHARS:
            raise InvalidRequest(f"`{name}` is {len(value)} characters; keep it to {TEXT_FIELD_MAX_CHARS} or fewer.")
    try:
        said = voice.strip() if voice else None
        return AdRequest.model_validate(
            {"product": product, "mood": mood, "audience": audience, "cta": cta, "language": language,
             "voice": None if said in (None, "", NO_VOICE) else said, "speak": said != NO_VOICE,
             **({"formats": formats} if formats and formats.strip() else {}),
             **({"hooks": hooks} if hooks is not None else {})}
        )  # fmt: skip
    except ValidationError as exc:
        raise InvalidRequest(_field_problem(exc)) from None


def voice_choices(providers: Providers, current: str) -> list[app_commands.Choice[str]]:
    """The provider's voices matching what was typed, and "none"; Discord shows at most 25."""
    voices = [*(provider_voices(providers.get(StageName.VOICE)) or ()), NO_VOICE]
    typed = current.strip().lower()
    return [app_commands.Choice(name=v, value=v) for v in voices if typed in v.lower()][:DISCORD_MAX_CHOICES]


def model_choices(allowed: tuple[str, ...], current: str) -> list[app_commands.Choice[str]]:
    """The video models this server allows, matching what was typed, each with its price."""
    typed = current.strip().lower()
    models = [VIDEO_MODELS[k] for k in allowed if k in VIDEO_MODELS]
    return [
        app_commands.Choice(name=f"{m.label} — {m.price_text}"[:100], value=m.key)
        for m in models
        if typed in m.key or typed in m.label.lower()
    ][:DISCORD_MAX_CHOICES]


def parse_job_id(text: str) -> str:
    job_id = text.strip().lower()
    if not JOB_ID.match(job_id):
        raise InvalidRequest(
            f"Job ids are 8 characters of 0-9 and a-f, like `1a2b3c4d` (got `{cap(shown(text, 20), 20)}`)."
        )
    return job_id


def job_link(job: Job) -> str:
    if job.guild_id and job.ui.storyboard_channel_id and job.ui.storyboard_message_id:
        return (
            f"https://discord.com/channels/{job.guild_id}/{job.ui.storyboard_channel_id}/{job.ui.storyboard_message_id}"
        )
    return ""


class AdCommands(commands.Cog):
    def __init__(self, bot: JantBot) -> None:
        self.bot = bot

    @app_commands.command(name="makead", description="Turn a product description into a 30-second 9:16 video ad")
    @app_commands.describe(
        product="What you are advertising: name, what it does, what makes it special",
        mood="The look and pace of the ad",
        audience="Who the ad speaks to (optional)",
        cta="The call to action, e.g. 'Order at example.com' (optional)",
        language="The language the ad speaks, e.g. fr, de, ja (optional: detected from the product text)",
        voice="The voice that speaks the lines, or 'none' for captions and music only (optional)",
        photo="Your own product photo, shown in the product scenes: PNG, JPEG or WebP, at least 512 px (optional)",
        model="The video model that animates the scenes (optional: the server's default)",
        formats="More shapes from the same footage, free: e.g. 4:5,1:1,16:9 (optional; 9:16 is always made)",
        hooks="Test 2 or 3 opening hooks: one more seed and clip each, posted as hook A, B, C (optional)",
    )
    @app_commands.choices(mood=[app_commands.Choice(name=p.label, value=m.value) for m, p in MOOD_PRESETS.items()])
    @app_commands.guild_only()
    async def makead(
        self,
        interaction: discord.Interaction[Any],
        product: app_commands.Range[str, 1, PRODUCT_MAX],
        mood: app_commands.Choice[str],
        audience: app_commands.Range[str, 1, TEXT_FIELD_MAX_CHARS] | None = None,
        cta: app_commands.Range[str, 1, TEXT_FIELD_MAX_CHARS] | None = None,
        language: app_commands.Range[str, 2, 40] | None = None,
        voice: app_commands.Range[str, 1, 64] | None = None,
        photo: discord.Attachment | None = None,
        formats: app_commands.Range[str, 3, 40] | None = None,
        model: app_commands.Range[str, 1, 40] | None = None,
        hooks: app_commands.Range[int, 1, HOOKS_MAX] | None = None,
    ) -> None:
        # Before deferring: errors stay private.
        request = ad_request(product, mood.value, audience, cta, language, voice, formats, hooks)
        orchestrator = self.bot.runtime.orchestrator
        orchestrator.check_request(request)
        # A model this server does not allow (or that does not exist): refused before anything is paid.
        guild_id = str(interaction.guild_id) if interaction.guild_id else None
        request = await orchestrator.with_video_model(request.model_copy(update={"model": model}), guild_id)
        if photo is not None:
            check_attachment(photo, PHOTO, self.bot.settings)  # the host and declared size: no download yet
        with self.bot.in_flight.track():
            await self._makead(interaction, request, photo)

    @makead.autocomplete("voice")
    async def _voice_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return voice_choices(self.bot.runtime.providers, current)

    @makead.autocomplete("model")
    async def _model_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        guild_id = str(interaction.guild_id) if interaction.guild_id else None
        allowed = await self.bot.runtime.orchestrator.allowed_video_models(guild_id)
        return model_choices(allowed, current)

    async def _makead(
        self, interaction: discord.Interaction[Any], request: AdRequest, photo: discord.Attachment | None
    ) -> None:
        orchestrator = self.bot.runtime.orchestrator
        # Before deferring: a refusal is answered privately, not in the channel's "thinking…" message.
        await orchestrator.check_daily_quota(str(interaction.user.id))
        await interaction.response.defer(thinking=True)
        try:
            if photo is not None:  # downloading can outlast the 3 s before an interaction must be answered
                stored = await receive_image(photo, PHOTO, self.bot.settings)
                request = request.model_copy(update={"photo": str(stored)})
            await self._plan_in_public(interaction, request)
        except Exception:
            # The public "thinking…" placeholder must not turn into an error for the whole channel:
            # remove it, and the error handler answers the requester privately.
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
            raise

    async def _plan_in_public(self, interaction: discord.Interaction[Any], request: AdRequest) -> None:
        orchestrator = self.bot.runtime.orchestrator
        guild = interaction.guild
        limit = interaction.filesize_limit or (guild.filesize_limit if guild else None)
        job = await orchestrator.create_job(
            request,
            requester_id=str(interaction.user.id),
            guild_id=str(interaction.guild_id) if interaction.guild_id else None,
            channel_id=str(interaction.channel_id) if interaction.channel_id else None,
            byte_limit=limit,
        )
        interaction.extras["job_id"] = job.id
        log.info("job %s created by user %s in guild %s", job.id, interaction.user.id, interaction.guild_id)
        try:
            await orchestrator.plan(job)
        except JantError as exc:
            await interaction.followup.send(f"⚠️ I couldn't write a storyboard (job `{job.id}`): {exc.user_message}")
            return
        budget = await orchestrator.spend_caps.left(job.guild_id)
        message = await interaction.followup.send(
            embed=render_storyboard(job, self.bot.settings, budget=budget), view=storyboard_buttons(job.id), wait=True
        )
        await self.bot.records.save_ui(job, storyboard_channel_id=message.channel.id, storyboard_message_id=message.id)

    @app_commands.command(name="jobs", description="Your recent ad jobs")
    @app_commands.guild_only()
    async def jobs(self, interaction: discord.Interaction[Any]) -> None:
        with self.bot.in_flight.track():
            await self._jobs(interaction)

    async def _jobs(self, interaction: discord.Interaction[Any]) -> None:
        jobs = await self.bot.runtime.store.list(requester_id=str(interaction.user.id), limit=RECENT_JOBS)
        if not jobs:
            await interaction.response.send_message(
                "You have no ad jobs yet. Start one with `/makead`.", ephemeral=True
            )
            return
        lines = []
        for job in jobs:
            when = discord.utils.format_dt(job.created_at, "R")
            link = job_link(job)
            product = shown(job.request.product, 60)
            lines.append(
                f"`{job.id}` {_STATUS_WORDS[job.status]} · {when} · {product}" + (f" · [open]({link})" if link else "")
            )
        embed = discord.Embed(title="Your recent ads", description=cap("\n".join(lines), 4096))
        embed.set_footer(text="/job id:<id> shows one job and re-posts its ad")
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="job", description="Show one ad job and re-post its result")
    @app_commands.describe(id="The job id, e.g. 1a2b3c4d (see /jobs)")
    @app_commands.guild_only()
    async def job(self, interaction: discord.Interaction[Any], id: app_commands.Range[str, 1, 20]) -> None:
        with self.bot.in_flight.track():
            await self._job(interaction, id)

    @app_commands.command(name="cancel", description="Stop an ad job; finished scenes are kept")
    @app_commands.describe(id="The job id, e.g. 1a2b3c4d (see /jobs)")
    @app_commands.guild_only()
    async def cancel(self, interaction: discord.Interaction[Any], id: app_commands.Range[str, 1, 20]) -> None:
        # Same rules as the Cancel button: the requester, the approver role or Manage Server.
        await self.bot.job_actions.handle(interaction, "cancel", parse_job_id(id))

    @app_commands.command(name="reroll", description="Make one scene of a finished ad again and re-join the ad")
    @app_commands.describe(
        id="The job id, e.g. 1a2b3c4d (see /jobs)",
        scene="The scene number, as on the storyboard",
        part="A new seed image (and so a new clip), or only a new clip from the same image",
    )
    @app_commands.choices(
        part=[
            app_commands.Choice(name="new seed image and clip", value=StageName.SEED.value),
            app_commands.Choice(name="new clip, same image", value=StageName.CLIP.value),
        ]
    )
    @app_commands.guild_only()
    async def reroll(
        self,
        interaction: discord.Interaction[Any],
        id: app_commands.Range[str, 1, 20],
        scene: app_commands.Range[int, 1, SCENES_MAX],
        part: app_commands.Choice[str],
    ) -> None:
        job_id = parse_job_id(id)
        await self.bot.job_actions.handle(interaction, "reroll", job_id, scene=scene, part=StageName(part.value))

    @app_commands.command(name="rerender", description="Compose a finished ad again with the brand kit as it is now")
    @app_commands.describe(id="The job id, e.g. 1a2b3c4d (see /jobs)")
    @app_commands.guild_only()
    async def rerender(self, interaction: discord.Interaction[Any], id: app_commands.Range[str, 1, 20]) -> None:
        # Same rules as the Re-render button: the requester, the approver role or Manage Server.
        await self.bot.job_actions.handle(interaction, "rerender", parse_job_id(id))

    async def _job(self, interaction: discord.Interaction[Any], id: str) -> None:
        job_id = parse_job_id(id)
        job = await self.bot.records.load(job_id)
        if job is None or (job.guild_id and job.guild_id != str(interaction.guild_id)):
            raise InvalidRequest(f"There is no job `{job_id}` in this server. `/jobs` lists yours.")
        interaction.extras["job_id"] = job.id
        if job.status in (JobStatus.PLANNING, JobStatus.AWAITING_APPROVAL) or job.storyboard is None:
            if job.storyboard is None:
                raise InvalidRequest(f"Job `{job.id}` has no storyboard yet ({job.status.value.replace('_', ' ')}).")
            link = job_link(job)
            banner = f"🕓 Waiting for approval{f' — [open the storyboard]({link})' if link else ''}."
            budget = await self.bot.runtime.orchestrator.spend_caps.left(job.guild_id)
            await interaction.response.send_message(
                embed=render_storyboard(job, self.bot.settings, banner=banner, budget=budget), ephemeral=True
            )
            return
        await interaction.response.defer(thinking=True)
        status = render_status(job, utcnow()).embed
        files = result_files(job) if job.status in (JobStatus.COMPLETED, JobStatus.PARTIAL) else None
        if files is None:
            await interaction.followup.send(embed=status)
            return
        limit = interaction.filesize_limit
        if files.ad_bytes > limit:
            await interaction.followup.send(too_large_text(job, files.ad_bytes, limit), embed=status)
            return
        try:
            await interaction.followup.send(result_text(job, files.ad_bytes), embed=status,
                                            files=await attachments(files, limit, job.id))  # fmt: skip
        except discord.HTTPException as exc:
            if exc.status != 413 and exc.code != 40005:
                raise
            await interaction.followup.send(f"⚠️ Discord refused the {mib(files.ad_bytes)} upload: "
                                            + too_large_text(job, files.ad_bytes, limit), embed=status)  # fmt: skip

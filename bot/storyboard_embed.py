"""The storyboard message's embed: what will be made, how long it runs, what it costs. Pure."""

from __future__ import annotations

import discord

from bot.display_text import cap, duration, shown
from bot.voice_label import voice_id_for
from pipeline.budgets import BudgetLeft
from pipeline.config import Settings
from pipeline.cost_estimate import CostEstimate, CostLine, estimate_job_cost
from pipeline.job_choices import job_choices
from pipeline.language import language_name, lines_language_note
from pipeline.models import Job, JobStatus, Scene, hook_letter
from pipeline.moods import mood_preset
from pipeline.stage_kinds import STAGE_KINDS, StageName
from pipeline.video_models import video_model

# Embed limits (Discord): title 256, description 4096, 25 fields, field name 256 / value 1024, 6000 in all.
EMBED_TOTAL_MAX = 6000
PRODUCT_SHOWN_MAX = 1000
LINE_SHOWN_MAX = 300  # a 8 s line is at most 21 words; more would be a planner bug, cut rather than overflow
NO_VOICE = "no voice"

COLOUR_PENDING = discord.Colour.blurple()
COLOUR_APPROVED = discord.Colour.green()
COLOUR_CLOSED = discord.Colour.dark_grey()


def estimate_line(est: CostEstimate, settings: Settings) -> str:
    """The card's Estimate field: the total, its parts and how they were counted, and the wait."""
    ready = f"ready in about {duration(est.wall_seconds)}"
    if est.free and est.offline:
        return f"Free offline preview (drawn locally, no API cost) · {ready}"
    per_scene = "SDXL + SVD time per scene"
    if est.photo_scenes:  # a scene seeded from the team's photo paints nothing: only its clip is paid
        scenes = ("scene " if len(est.photo_scenes) == 1 else "scenes ") + ", ".join(map(str, est.photo_scenes))
        per_scene = f"SDXL + SVD time per painted scene, SVD for {scenes} (your photo)"
    if est.extra_hooks:
        per_scene += f", incl. {est.extra_hooks} extra hook{'s' if est.extra_hooks > 1 else ''} (a seed + a clip each)"
    footage = (
        f"~{est.gpu_seconds:.0f} GPU-seconds (typical {per_scene} × ${settings.replicate.price_per_gpu_second:g}/GPU-s)"
    )
    paid_footage = est.seeds.billed or est.clips.billed
    if est.voice is None and est.music is None:
        return f"≈ ${est.footage_usd:.2f} for {footage} · {ready}"
    footage_text = CostLine(est.footage_usd, paid_footage).text()
    parts = [f"seeds+clips {footage_text}" + (f" for {footage}" if paid_footage else "")]
    if est.voice is not None:
        parts.append(f"voice {est.voice.text()}" + (f" ({est.voice.detail})" if est.voice.usd else ""))
    if est.music is not None:
        parts.append(f"music {est.music.text()}" + (f" ({est.music.detail})" if est.music.usd else ""))
    return f"≈ ${est.total_usd:.2f}: {', '.join(parts)} · {ready}"


def voice_label(job: Job, settings: Settings) -> str:
    """The voice the lines will be read in: the voice id and the provider, or "no voice"."""
    provider = job.providers.get(StageName.VOICE)
    if provider is None or not job.request.speak:  # `--no-voice`
        return NO_VOICE
    # `--voice`, `/makead voice:`, else the brand kit's once approved, else JANT_VOICE_ID.
    voice_id = voice_id_for(provider, settings, job_choices(job, settings).voice_id)
    return f"{voice_id} · {provider}"


def offline_note(job: Job) -> str | None:
    offline = [stage for stage, name in job.providers.items() if "offline" in name]
    if not offline:
        return None
    # By stage kind; "images"/"video" are how jobs written before stages were data name them.
    what = {"planner": "storyboard", "images": "seed images", "video": "clips"}
    what |= {k.name: f"{k.noun}s" for k in STAGE_KINDS.values()}
    parts = ", ".join(what.get(s, s) for s in offline)
    return f"Offline preview: {parts} made locally, not by GPT-4o / SDXL / SVD."


def spoken_line(scene: Scene, limit: int) -> str:
    """The scene's voiceover as the card shows it; a storyboard made before voiceovers says it is silent."""
    if scene.voiceover is None:
        return "🔇 No line: planned before Jant wrote voiceovers (Edit scene can add one)."
    return f"🗣️ “{shown(scene.voiceover, limit)}”"


def render_storyboard(
    job: Job,
    settings: Settings,
    *,
    banner: str | None = None,
    voice: str | None = None,
    budget: BudgetLeft | None = None,
) -> discord.Embed:
    """One embed: product, mood, voice, a field per scene with its spoken line, total, estimate.
    `banner` heads the description (who approved it, a failed re-plan …); it is trusted bot text, not
    user text. `voice` names the voice the lines will be read in (default: the job's voice provider);
    none means the ad is made without a voice. `budget` is what the server has left, shown under the
    estimate of an ad that costs money."""
    assert job.storyboard is not None, "render_storyboard needs a planned job"
    board = job.storyboard
    req = job.request
    mood = mood_preset(req.mood)
    if job.status in (JobStatus.PLANNING, JobStatus.AWAITING_APPROVAL):
        colour = COLOUR_PENDING
    elif job.status in (JobStatus.CANCELLED, JobStatus.FAILED):
        colour = COLOUR_CLOSED
    else:
        colour = COLOUR_APPROVED

    lines = []
    if banner:
        lines.append(banner)
        lines.append("")
    lines.append(f"**Product:** {shown(req.product, PRODUCT_SHOWN_MAX)}")
    details = [f"**Mood:** {mood.label}"]
    if req.audience:
        details.append(f"**Audience:** {shown(req.audience, 200)}")
    if req.cta:
        details.append(f"**Call to action:** {shown(req.cta, 200)}")
    lines.append(" · ".join(details))
    spoken = board.language or req.language
    voice = voice or voice_label(job, settings)
    lines.append(f"**Voice:** {shown(voice, 100)}" + (f" · **Language:** {language_name(spoken)}" if spoken else ""))
    model = video_model(req.model)
    lines.append(f"**Video model:** {model.label} (`{model.key}`, {model.clip_seconds:g} s clips at {model.fps:g} fps)")
    if note := lines_language_note(req.language, board.language):
        lines.append(f"*{note}*")
    if job.offline and (note := offline_note(job)):
        lines.append(f"*{note}*")
    if board.model_note:
        lines.append(f"*{board.model_note}*")

    embed = discord.Embed(
        title=cap(f"Storyboard · {shown(board.title, 200)}", 256),
        description=cap("\n".join(lines), 4096),
        colour=colour,
    )
    scene_budget = 1024
    photo_scenes = set(job.photo_scenes())
    for _ in range(4):  # shrink scene text until the whole embed fits Discord's 6000-character cap
        embed.clear_fields()
        for scene in board.scenes:
            value = shown(scene.description, min(300, scene_budget))
            value += f"\n{spoken_line(scene, min(LINE_SHOWN_MAX, scene_budget))}"
            if scene.on_screen_text:
                value += f"\n> On screen: “{shown(scene.on_screen_text, 60)}”"
            photo = " · 📷 your product photo" if scene.index in photo_scenes else ""
            embed.add_field(
                name=f"#{scene.index} · {scene.beat.value} · {scene.duration:g}s{photo}",
                value=cap(value, 1024) or "—",
                inline=False,
            )
        hooks = board.hook_scenes()[: req.hooks] if req.hooks > 1 else []
        for n, hook in enumerate(hooks):  # inline: side by side, to compare the openings at a glance
            value = f"{spoken_line(hook, min(LINE_SHOWN_MAX, scene_budget))}"
            if hook.on_screen_text:
                value += f"\n> On screen: “{shown(hook.on_screen_text, 60)}”"
            value += f"\n{shown(hook.visual_prompt, min(160, scene_budget))}"
            embed.add_field(name=f"Hook {hook_letter(n)}" + (" (scene #1)" if n == 0 else ""), value=cap(value, 1024),
                            inline=True)  # fmt: skip
        tested = f" · {len(hooks)} hooks to test" if hooks else ""
        embed.add_field(
            name="Total", value=f"{board.total_duration:g} s · {len(board.scenes)} scenes · 9:16{tested}", inline=True
        )
        est = estimate_job_cost(job, settings)
        value = estimate_line(est, settings)
        if budget is not None and not est.free:
            value += f"\n**Budget:** {budget.text()}"
        embed.add_field(name="Estimate", value=value, inline=False)
        if len(embed) <= EMBED_TOTAL_MAX:
            break
        scene_budget //= 2
    embed.set_footer(text=f"Job {job.id}")
    return embed

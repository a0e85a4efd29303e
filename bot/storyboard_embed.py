"""The storyboard message's embed: what will be made, how long it runs, what it costs. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass

import discord

from bot.display_text import cap, duration, shown
from bot.voice_label import voice_id_for
from pipeline.config import Settings
from pipeline.job_choices import job_choices
from pipeline.language import language_name, lines_language_note
from pipeline.models import Job, JobStatus, Scene
from pipeline.moods import mood_preset
from pipeline.stage_kinds import STAGE_KINDS, StageName

# Embed limits (Discord): title 256, description 4096, 25 fields, field name 256 / value 1024, 6000 in all.
EMBED_TOTAL_MAX = 6000
PRODUCT_SHOWN_MAX = 1000
LINE_SHOWN_MAX = 300  # a 8 s line is at most 21 words; more would be a planner bug, cut rather than overflow
NO_VOICE = "no voice"

# Typical billed GPU seconds per scene on Replicate (A100-class), from public run times: an SDXL seed
# at the dev/prod profile and one SVD clip. Only an estimate; the real figure comes from
# `metrics.predict_time` and is shown when the job ends.
TYPICAL_SEED_GPU_S = {"dev": 6.0, "prod": 20.0}
TYPICAL_CLIP_GPU_S = {"14_frames_with_svd": 50.0, "25_frames_with_svd_xt": 90.0}
COMPOSE_WALL_S = 30.0

COLOUR_PENDING = discord.Colour.blurple()
COLOUR_APPROVED = discord.Colour.green()
COLOUR_CLOSED = discord.Colour.dark_grey()


@dataclass(frozen=True)
class Estimate:
    gpu_seconds: float
    cost_usd: float  # seeds and clips: billed by GPU time
    wall_seconds: float
    offline: bool
    voice_usd: float | None = None  # the voiceover lines, billed by character; None: no voice
    voice_chars: int = 0
    music_usd: float | None = None  # the music bed, billed by run; None: no music

    @property
    def total_usd(self) -> float:
        return self.cost_usd + (self.voice_usd or 0.0) + (self.music_usd or 0.0)

    def line(self, settings: Settings) -> str:
        ready = f"ready in about {duration(self.wall_seconds)}"
        if self.total_usd == 0 and self.offline:
            return f"Free offline preview (drawn locally, no API cost) · {ready}"
        footage = (
            f"~{self.gpu_seconds:.0f} GPU-seconds "
            f"(typical SDXL + SVD time per scene × ${settings.replicate.price_per_gpu_second:g}/GPU-s)"
        )
        if self.voice_usd is None and self.music_usd is None:
            return f"≈ ${self.cost_usd:.2f} for {footage} · {ready}"
        parts = [f"seeds+clips {_usd(self.cost_usd)}" + ("" if self.offline else f" for {footage}")]
        if self.voice_usd is not None:
            per_1k = settings.audio.tts_price_per_1k_chars
            parts.append(
                f"voice {_usd(self.voice_usd)}"
                + (f" ({self.voice_chars} characters × ${per_1k:g}/1k)" if self.voice_usd else "")
            )
        if self.music_usd is not None:
            parts.append(f"music {_usd(self.music_usd)}" + (" (one run)" if self.music_usd else ""))
        return f"≈ ${self.total_usd:.2f}: {', '.join(parts)} · {ready}"


def _usd(amount: float) -> str:
    if not amount:
        return "free (local)"
    return f"${amount:.2f}" if amount >= 0.005 else "<$0.01"


def _speaks(job: Job) -> bool:
    """False when the request asked for no voice (`--no-voice`)."""
    return job.request.speak


def _billed_by_replicate(job: Job, kind: str) -> bool:
    return job.providers.get(kind, "").startswith("replicate")


def voice_estimate(job: Job, settings: Settings) -> tuple[float | None, int]:
    """(what the lines cost to speak, None when the ad has no voice; how many characters are spoken)."""
    if StageName.VOICE not in job.providers or job.storyboard is None or not _speaks(job):
        return None, 0
    chars = sum(len(s.voiceover or "") for s in job.storyboard.scenes)
    if not _billed_by_replicate(job, StageName.VOICE):  # offline, or a speech server we know no price of
        return 0.0, chars
    return round(chars * settings.audio.tts_price_per_1k_chars / 1000, 4), chars


def music_estimate(job: Job, settings: Settings) -> float | None:
    if StageName.MUSIC not in job.providers:
        return None
    return settings.audio.music_price_per_run if _billed_by_replicate(job, StageName.MUSIC) else 0.0


def estimate(job: Job, settings: Settings) -> Estimate:
    scenes = len(job.storyboard.scenes) if job.storyboard else 0
    seed_s = TYPICAL_SEED_GPU_S.get(job.env, TYPICAL_SEED_GPU_S["dev"])
    clip_s = TYPICAL_CLIP_GPU_S.get(settings.replicate.svd_video_length, 90.0)
    gpu = scenes * (seed_s + clip_s)
    voice_usd, voice_chars = voice_estimate(job, settings)
    music_usd = music_estimate(job, settings)
    if job.offline:
        wall = max(20.0, 6.0 * scenes + COMPOSE_WALL_S)
        return Estimate(0.0, 0.0, wall, True, voice_usd=voice_usd, voice_chars=voice_chars, music_usd=music_usd)
    # Scenes run side by side up to the prediction limit (a seed and a clip slot each). The voice and
    # the music run beside the seeds and clips and take less time than a clip: they add no wall time.
    waves = math.ceil(scenes / max(1, settings.limits.max_concurrent_predictions // 2)) if scenes else 0
    wall = waves * (seed_s + clip_s) + COMPOSE_WALL_S
    footage_usd = round(gpu * settings.replicate.price_per_gpu_second, 2)
    return Estimate(gpu, footage_usd, wall, False, voice_usd=voice_usd, voice_chars=voice_chars, music_usd=music_usd)


def voice_label(job: Job, settings: Settings) -> str:
    """The voice the lines will be read in: the voice id and the provider, or "no voice"."""
    provider = job.providers.get(StageName.VOICE)
    if provider is None or not _speaks(job):
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
    job: Job, settings: Settings, *, banner: str | None = None, voice: str | None = None
) -> discord.Embed:
    """One embed: product, mood, voice, a field per scene with its spoken line, total, estimate.
    `banner` heads the description (who approved it, a failed re-plan …); it is trusted bot text, not
    user text. `voice` names the voice the lines will be read in (default: the job's voice provider);
    none means the ad is made without a voice."""
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
    for _ in range(4):  # shrink scene text until the whole embed fits Discord's 6000-character cap
        embed.clear_fields()
        for scene in board.scenes:
            value = shown(scene.description, min(300, scene_budget))
            value += f"\n{spoken_line(scene, min(LINE_SHOWN_MAX, scene_budget))}"
            if scene.on_screen_text:
                value += f"\n> On screen: “{shown(scene.on_screen_text, 60)}”"
            embed.add_field(
                name=f"#{scene.index} · {scene.beat.value} · {scene.duration:g}s",
                value=cap(value, 1024) or "—",
                inline=False,
            )
        embed.add_field(
            name="Total", value=f"{board.total_duration:g} s · {len(board.scenes)} scenes · 9:16", inline=True
        )
        embed.add_field(name="Estimate", value=estimate(job, settings).line(settings), inline=False)
        if len(embed) <= EMBED_TOTAL_MAX:
            break
        scene_budget //= 2
    embed.set_footer(text=f"Job {job.id}")
    return embed

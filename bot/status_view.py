"""The status message: a line per scene, one for the voice and one for the music, an overall bar,
elapsed and ETA, and on the final state what the ad was made without. Pure rendering.

`render_status(job, now)` draws from one job snapshot alone, so the edit throttle can keep only the
latest snapshot and render it when the edit actually goes out ("latest state wins").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import discord

from bot.display_text import cap, duration, mib, shown
from bot.result_delivery import DELIVERY_FAILED
from bot.sound_progress import PartProgress, PartState, missing_parts, music_progress, voice_progress
from pipeline.hook_variants import alt_hook_stages
from pipeline.job_choices import NO_MUSIC
from pipeline.models import Job, JobStatus, SceneState, StageStatus, hook_letter
from pipeline.stage_kinds import StageName

BAR_CELLS = 12
DESCRIPTION_MAX = 4096
ERROR_SHOWN_MAX = 180

COLOUR_RUNNING = discord.Colour.blurple()
COLOUR_DONE = discord.Colour.green()
COLOUR_PARTIAL = discord.Colour.gold()  # amber
COLOUR_FAILED = discord.Colour.red()
COLOUR_CANCELLED = discord.Colour.dark_grey()


class SceneStage(StrEnum):
    QUEUED = "queued"
    SEED = "painting seed"
    ANIMATING = "animating"
    NORMALISING = "normalising"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


_ICONS = {
    SceneStage.QUEUED: "⏳",
    SceneStage.SEED: "🎨",
    SceneStage.ANIMATING: "🎞️",
    SceneStage.NORMALISING: "🔧",
    SceneStage.DONE: "✅",
    SceneStage.FAILED: "❌",
    SceneStage.CANCELLED: "⏹️",
}


@dataclass(frozen=True)
class StatusRender:
    embed: discord.Embed
    final: bool  # the job ended: this is the last state the message will show


def progress_bar(percent: float, cells: int = BAR_CELLS) -> str:
    percent = max(0.0, min(100.0, percent))
    filled = round(percent / 100 * cells)
    return "█" * filled + "░" * (cells - filled)


def scene_stage(scene: SceneState) -> SceneStage:
    if scene.done:
        return SceneStage.DONE
    if scene.failed:
        return SceneStage.FAILED
    if StageStatus.CANCELLED in (scene.seed.status, scene.clip.status):
        return SceneStage.CANCELLED
    if scene.seed.status in (StageStatus.RUNNING, StageStatus.RETRYING):
        return SceneStage.SEED
    if scene.clip.status in (StageStatus.RUNNING, StageStatus.RETRYING):
        return SceneStage.ANIMATING
    if scene.clip.status is StageStatus.DONE:
        return SceneStage.NORMALISING
    return SceneStage.QUEUED


def _attempt_note(scene: SceneState) -> str:
    for stage in (scene.seed, scene.clip):
        if stage.status is StageStatus.RETRYING:
            reason = f": {shown(stage.error, 120)}" if stage.error else ""
            return f" · attempt {stage.attempt}/{stage.max_attempts} failed, retrying{reason}"
        if stage.status is StageStatus.RUNNING and stage.attempt > 1:
            return f" · attempt {stage.attempt}/{stage.max_attempts}"
    return ""


def scene_line(job: Job, scene: SceneState) -> str:
    stage = scene_stage(scene)
    beat = ""
    if job.storyboard is not None and scene.index <= len(job.storyboard.scenes):
        beat = job.storyboard.scenes[scene.index - 1].beat.value
    head = f"{_ICONS[stage]} `#{scene.index}` {beat} · **{stage}**"
    if stage is SceneStage.FAILED:
        return f"{head}\n  ↳ {shown(scene.error or 'no reason recorded', ERROR_SHOWN_MAX)}"
    if stage is SceneStage.CANCELLED:
        return head
    return f"{head} `{progress_bar(scene.progress)}` {scene.progress:.0f}%{_attempt_note(scene)}"


def _failures(part: PartProgress, what: str) -> str:
    if not part.failures:
        return ""
    which = ", ".join(str(i) for i, _ in part.failures)
    return f" · ❌ {what} {which} failed: {shown(part.failures[0][1], ERROR_SHOWN_MAX)}"


def _attempt(part: PartProgress) -> str:
    return f" · {shown(part.attempt_note, ERROR_SHOWN_MAX)}" if part.attempt_note else ""


def voice_line(job: Job) -> str:
    """All scenes' voiceover in one line with a count: seven scene lines stay short enough to read."""
    part = voice_progress(job)
    count = f"{part.done}/{part.total} line{'s' if part.total != 1 else ''}"
    if part.state is PartState.OFF:
        return "🔇 voice · **off**"
    if part.state is PartState.READY:
        return f"🎙️ voice · **ready** · {count}"
    if part.state is PartState.CANCELLED:
        return f"⏹️ voice · **cancelled** · {count}"
    if part.state is PartState.FAILED:
        icon = "❌" if part.done == 0 else "⚠️"
        return f"{icon} voice · **{count}**{_failures(part, 'line')}"
    if part.state is PartState.QUEUED:
        return f"🎙️ voice · **queued** · {count}{_failures(part, 'line')}"
    return (
        f"🎙️ voice · **speaking** `{progress_bar(part.percent)}` {count} · {part.percent:.0f}%"
        f"{_attempt(part)}{_failures(part, 'line')}"
    )


def music_line(job: Job) -> str:
    part = music_progress(job)
    if part.state is PartState.OFF:
        if job.brand is not None and job.brand.music == NO_MUSIC:
            return "🔇 music bed · **off** (the brand kit says music = none)"
        return "🔇 music bed · **off**"
    if part.state is PartState.READY:
        return "🎵 music bed · **ready**"
    if part.state is PartState.CANCELLED:
        return "⏹️ music bed · **cancelled**"
    if part.state is PartState.FAILED:
        return f"❌ music bed · **failed**: {shown(part.failures[0][1], ERROR_SHOWN_MAX)}"
    if part.state is PartState.QUEUED:
        return "🎵 music bed · **queued**"
    return f"🎵 music bed · **composing** `{progress_bar(part.percent)}` {part.percent:.0f}%{_attempt(part)}"


def hooks_line(job: Job) -> str | None:
    """The other hooks of an A/B test, one state each (scene 1's own row is hook A)."""
    if job.request.hooks < 2 or not job.scenes:
        return None
    parts = []
    for hook in range(1, job.request.hooks):
        stages = alt_hook_stages(job, hook)
        seed, clip = stages.get(StageName.SEED), stages.get(StageName.CLIP)
        if seed is None or clip is None:
            continue
        letter = hook_letter(hook)
        if clip.status is StageStatus.DONE:
            parts.append(f"{letter} ✅")
        elif StageStatus.FAILED in (seed.status, clip.status):
            parts.append(f"{letter} ❌ {shown((clip.error or seed.error or 'failed'), 80)}")
        elif StageStatus.CANCELLED in (seed.status, clip.status):
            parts.append(f"{letter} ⏹️")
        elif clip.status in (StageStatus.RUNNING, StageStatus.RETRYING):
            parts.append(f"{letter} animating {clip.progress:.0f}%")
        elif seed.status in (StageStatus.RUNNING, StageStatus.RETRYING):
            parts.append(f"{letter} painting")
        else:
            parts.append(f"{letter} queued")
    return "🧪 other hooks · " + " · ".join(parts) if parts else None


def _elapsed_s(job: Job, now: datetime) -> float | None:
    if job.started_at is None:
        return None
    end = job.finished_at if job.status.is_terminal and job.finished_at else now
    return max(0.0, (end - job.started_at).total_seconds())


def _eta(progress: float, elapsed: float | None) -> str:
    if elapsed is None or progress < 3.0:
        return "estimating…"
    if progress >= 100:
        return "any moment"
    return "~" + duration(elapsed * (100.0 - progress) / progress)


def _headline(job: Job, queue_position: int | None) -> tuple[str, discord.Colour]:
    failed = [s.index for s in job.scenes if s.failed]
    if job.status in (JobStatus.COMPLETED, JobStatus.PARTIAL) and job.ui.delivered == DELIVERY_FAILED:
        why = shown(job.ui.delivery_error or "no reason recorded", 300)
        return (
            f"⚠️ **Made, but not posted.** Posting the ad failed: {why}. `/job id:{job.id}` posts it.",
            COLOUR_PARTIAL,
        )
    if job.status is JobStatus.COMPLETED:
        size = f" ({mib(job.final_bytes)})" if job.final_bytes else ""
        return f"✅ **Done.** The ad{size} is posted below.", COLOUR_DONE
    if job.status is JobStatus.PARTIAL:
        which = ", ".join(str(i) for i in failed) or "some"
        return (
            f"⚠️ **Finished without scene{'s' if len(failed) != 1 else ''} {which}.** The ad below skips "
            f"{'them' if len(failed) != 1 else 'it'}; press **Retry failed** to re-make only the failed scenes.",
            COLOUR_PARTIAL,
        )
    if job.status is JobStatus.FAILED:
        why = shown(job.error or "no reason recorded", 1500)
        return f"❌ **Failed.** {why}", COLOUR_FAILED
    if job.status is JobStatus.CANCELLED:
        return "⏹️ **Cancelled.** Finished scenes are kept; nothing else will be generated.", COLOUR_CANCELLED
    if job.status is JobStatus.COMPOSING:
        return "🎬 **Joining the clips into the final ad…**", COLOUR_RUNNING
    if queue_position is not None:
        return f"⏳ **Waiting for a free generation slot: number {queue_position} in line.**", COLOUR_RUNNING
    if job.status is JobStatus.QUEUED:
        return "⏳ **Queued.** Generation starts as soon as a slot is free.", COLOUR_RUNNING
    return "🎥 **Generating.** Each scene: seed image → clip → normalised.", COLOUR_RUNNING


def render_status(job: Job, now: datetime, *, queue_position: int | None = None) -> StatusRender:
    """`queue_position`: the job's place in line for a generation slot while none of its scenes runs."""
    headline, colour = _headline(job, None if job.status.is_terminal else queue_position)
    elapsed = _elapsed_s(job, now)
    final = job.status.is_terminal
    overall = 100.0 if job.status is JobStatus.COMPLETED else job.progress
    timing = f"Elapsed {duration(elapsed)}" if elapsed is not None else "Not started yet"
    if not final:
        timing += f" · ETA {_eta(overall, elapsed)}"
    footer_lines = [f"**Overall** `{progress_bar(overall)}` {overall:.0f}%", timing]
    if job.cost_usd:  # seeds and clips billed by GPU time, voice lines by character, music by run
        gpu = f"GPU time {job.gpu_seconds:.0f} s · " if job.gpu_seconds else ""
        footer_lines.append(f"{gpu}cost ${job.cost_usd:.2f}")
    if job.offline:  # a voice on Replicate still costs (JANT_OFFLINE with JANT_VOICE=replicate)
        footer_lines.append("*Offline preview: made locally, no API cost.*" if not job.cost_usd
                            else "*Offline preview: footage made locally.*")  # fmt: skip

    lines = [scene_line(job, s) for s in job.scenes]
    if hooks := hooks_line(job):
        lines.append(hooks)
    if job.scenes:  # the voice and music are made from approval on: before it there is nothing to show
        lines += [voice_line(job), music_line(job)]
    if final and (missing := missing_parts(job)):
        lines += ["", *(f"⚠️ {shown(note, ERROR_SHOWN_MAX * 2)}" for note in missing)]
    fixed = len(headline) + sum(len(x) + 1 for x in footer_lines) + 4
    body = "\n".join(lines)
    if fixed + len(body) > DESCRIPTION_MAX:  # only long error reasons can get here: trim them evenly
        each = max(40, (DESCRIPTION_MAX - fixed) // max(1, len(lines)) - 1)
        body = "\n".join(cap(line, each) for line in lines)
    description = cap("\n\n".join([headline, body, "\n".join(footer_lines)]), DESCRIPTION_MAX)

    title = "Ad job " + job.id
    if job.storyboard is not None:
        title += " · " + shown(job.storyboard.title, 200)
    embed = discord.Embed(title=cap(title, 256), description=description, colour=colour)
    embed.set_footer(text=f"Job {job.id} · {job.status.value.replace('_', ' ')}")
    return StatusRender(embed=embed, final=final)

"""Posting the finished ad (and its contact sheet) — or saying clearly why it cannot be attached.

Where: next to the status message (the job's thread), else the channel the ad was asked for in. When
neither exists any more (a moderator deleted them) the ad stays on the bot's disk and `/job id:` posts
it wherever it is asked for. What happened is written to `job.ui.delivered`, so a restarted bot knows
which finished ads still have to be posted.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import discord

from bot.display_text import mib, shown
from bot.hook_delivery import post_hooks
from bot.job_buttons import result_buttons
from pipeline.formats import MASTER_FORMAT, MadeFormat, extra_formats, made_formats, not_made_prefix
from pipeline.models import Job, JobStatus

if TYPE_CHECKING:
    from bot.app import JantBot

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES  # 10 MiB, an unboosted server
MAX_ATTACHMENTS = 10  # per message
FILE_TOO_LARGE = 40005
MISSING_PERMISSIONS = 50013
MISSING_ACCESS = 50001
UNKNOWN_CHANNEL = 10003

# job.ui.delivered: how the result reached Discord (or why it did not).
POSTED, TOO_LARGE, NOT_PERMITTED = "posted", "too_large", "not_permitted"
FILE_MISSING, NOWHERE = "file_missing", "nowhere"
DELIVERY_FAILED = "failed"  # an unexpected error while posting; job.ui.delivery_error says which


def delivery_failed_text(job: Job, reason: str) -> str:
    return (
        f"⚠️ The ad for job `{job.id}` is made, but posting it failed: {reason}. It is kept on the bot's "
        f"disk; `/job id:{job.id}` posts it."
    )


@dataclass(frozen=True)
class ResultFiles:
    ad: Path
    ad_bytes: int
    sheet: Path | None


def result_files(job: Job) -> ResultFiles | None:
    if not job.final_path:
        return None
    ad = Path(job.final_path)
    if not ad.is_file():
        return None
    sheet = ad.with_name("contact-sheet.png")
    return ResultFiles(ad, ad.stat().st_size, sheet if sheet.is_file() else None)


def too_large_text(job: Job, size: int, limit: int) -> str:
    return (
        f"⚠️ The ad for job `{job.id}` is {mib(size)}, over this server's {mib(limit)} upload limit, so I "
        f"can't attach it. It is kept on the bot's disk. Re-post it with `/job id:{job.id}` once the server "
        f"allows bigger files (Server Boost level 2 raises the limit to 50 MiB), or make a shorter ad."
    )


def result_text(job: Job, size: int) -> str:
    title = shown(job.storyboard.title, 120) if job.storyboard else "Your ad"
    seconds = job.storyboard.total_duration if job.storyboard else 0
    who = f" for <@{job.requester_id}>" if job.requester_id else ""
    text = f"🎬 **{title}**{who} · job `{job.id}` · {seconds:g} s, {MASTER_FORMAT} · {mib(size)}"
    if job.status is JobStatus.PARTIAL:
        missing = [str(s.index) for s in job.scenes if not s.done]
        which = f"Scene {missing[0]} is" if len(missing) == 1 else f"Scenes {', '.join(missing)} are"
        text += f"\n⚠️ {which} missing; **Retry failed** on the status message re-makes only those."
    if job.offline:
        text += "\n*Offline preview: placeholder footage made locally. Set the API keys for the real thing.*"
    return text


def formats_text(job: Job, made: Sequence[MadeFormat], limit: int) -> str:
    """One line per extra format: attached, over the limit, or not made and why."""
    lines = []
    have = {m.format.key: m for m in made}
    for fmt in extra_formats(job.request.formats):
        m = have.get(fmt.key)
        if m is None:
            why = next((n for n in job.notes if n.startswith(not_made_prefix(fmt))), None)
            lines.append(f"⚠️ {why or f'The {fmt.key} version was not made.'}")
        elif m.bytes > limit:
            lines.append(
                f"⚠️ The {fmt.key} version is {mib(m.bytes)}, over this server's {mib(limit)} upload limit; "
                "it is kept on the bot's disk."
            )
    return "\n".join(lines)


def format_batches(
    first: int, made: Sequence[MadeFormat], limit: int
) -> tuple[list[MadeFormat], list[list[MadeFormat]]]:
    """Which formats ride with the result message (`first` bytes already in it) and which follow.

    All of them with the master when everything fits in one message's limit; else each follow-up
    carries as many as fit together (a file over the limit goes nowhere: formats_text says so).
    """
    postable = [m for m in made if m.bytes <= limit]
    if first + sum(m.bytes for m in postable) <= limit and len(postable) + 2 <= MAX_ATTACHMENTS:
        return postable, []
    batches: list[list[MadeFormat]] = []
    for m in postable:
        if batches and sum(b.bytes for b in batches[-1]) + m.bytes <= limit:
            batches[-1].append(m)
        else:
            batches.append([m])
    return [], batches


async def format_files(made: Sequence[MadeFormat], job_id: str) -> list[discord.File]:
    out = []
    for m in made:
        data = await asyncio.to_thread(m.path.read_bytes)
        shape = m.path.stem.removeprefix("final-")  # 4x5, 1x1, 16x9
        out.append(discord.File(io.BytesIO(data), filename=f"jant-ad-{job_id}-{shape}.mp4"))
    return out


async def attachments(files: ResultFiles, limit: int, job_id: str) -> list[discord.File]:
    """Read on a thread: a 10 MiB read must not block the event loop."""
    out = [discord.File(io.BytesIO(await asyncio.to_thread(files.ad.read_bytes)), filename=f"jant-ad-{job_id}.mp4")]
    if files.sheet is not None and files.sheet.stat().st_size <= limit:
        data = await asyncio.to_thread(files.sheet.read_bytes)
        out.append(discord.File(io.BytesIO(data), filename=f"jant-ad-{job_id}-contact-sheet.png"))
    return out


def channel_gone(exc: discord.HTTPException) -> bool:
    """The channel (or thread) was deleted, or the bot can no longer see it."""
    return (isinstance(exc, discord.NotFound) and exc.code == UNKNOWN_CHANNEL) or (
        isinstance(exc, discord.Forbidden) and exc.code == MISSING_ACCESS
    )


class ResultDelivery:
    def __init__(self, bot: JantBot) -> None:
        self.bot = bot

    async def deliver(self, job: Job, channel_id: int) -> discord.Message | None:
        """Post the result in `channel_id`, else in the job's own channel; record what happened."""
        candidates = [int(channel_id)]
        if job.channel_id and int(job.channel_id) not in candidates:
            candidates.append(int(job.channel_id))
        for where in candidates:
            try:
                message, how = await self._deliver_in(job, where)
            except discord.HTTPException as exc:
                if not channel_gone(exc):
                    raise
                log.info("job %s: channel %s is gone (%s); trying the next place for the result", job.id, where, exc)
                continue
            await self.bot.records.save_ui(
                job, delivered=how, result_channel_id=where, result_message_id=message.id if message else None
            )
            return message
        log.warning("job %s: nowhere left to post the result; it is kept for /job", job.id)
        await self.bot.records.save_ui(job, delivered=NOWHERE)
        return None

    async def _deliver_in(self, job: Job, channel_id: int) -> tuple[discord.Message | None, str]:
        channel = self.bot.get_partial_messageable(channel_id, guild_id=int(job.guild_id) if job.guild_id else None)
        files = result_files(job)
        if files is None:
            await channel.send(f"⚠️ Job `{job.id}` finished but its video file is missing from the bot's disk.")
            return None, FILE_MISSING
        limit = self.upload_limit(job)
        if files.ad_bytes > limit:
            await channel.send(too_large_text(job, files.ad_bytes, limit))
            return None, TOO_LARGE
        made = await made_formats(files.ad, job.request.formats)
        first = files.ad_bytes + (files.sheet.stat().st_size if files.sheet is not None else 0)
        with_master, later = format_batches(first, made, limit)
        text = "\n".join(t for t in (result_text(job, files.ad_bytes), formats_text(job, made, limit)) if t)
        try:
            files_out = [*await attachments(files, limit, job.id), *await format_files(with_master, job.id)]
            # Re-render and Reroll scene ride on the ad itself: persistent, so they work after a restart.
            view = result_buttons(job)
            if view is None:
                message = await channel.send(text, files=files_out)
            else:
                message = await channel.send(text, files=files_out, view=view)
        except discord.HTTPException as exc:
            refused = self.rejected_text(job, files.ad_bytes, limit, exc)
            if refused is None:
                raise
            log.warning("job %s: upload rejected (%s %s)", job.id, exc.status, exc.code)
            await channel.send(refused)
            return None, TOO_LARGE if exc.code != MISSING_PERMISSIONS else NOT_PERMITTED
        for batch in later:
            keys = ", ".join(m.format.key for m in batch)
            await channel.send(f"🎞️ Job `{job.id}` · {keys}", files=await format_files(batch, job.id))
        await post_hooks(channel, job, limit)
        return message, POSTED

    def upload_limit(self, job: Job) -> int:
        """The job's limit from its /makead interaction, lowered if the server lost boosts since."""
        limit = job.byte_limit or DEFAULT_UPLOAD_LIMIT
        guild = self.bot.get_guild(int(job.guild_id)) if job.guild_id else None
        return min(limit, guild.filesize_limit) if guild is not None else limit

    @staticmethod
    def rejected_text(job: Job, size: int, limit: int, exc: discord.HTTPException) -> str | None:
        if exc.status == 413 or exc.code == FILE_TOO_LARGE:
            return too_large_text(job, size, limit)
        if exc.code == MISSING_PERMISSIONS:
            return (
                f"⚠️ The ad for job `{job.id}` is ready, but I may not attach files here. Give me "
                f"**Attach Files**, then re-post it with `/job id:{job.id}`."
            )
        return None

"""Posting a hook A/B test: after the ad (hook A), the versions with the other hooks, their lines side
by side so the team sees at a glance what each one opens with.

Hook A is the ad already posted with the result (final.mp4), so only B and C are uploaded. Each file
fits the upload limit or the text says it is kept on the bot's disk; a hook that was not made says why
(from the job's notes).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from pathlib import Path

import discord

from bot.display_text import mib, shown
from pipeline.hook_variants import MadeHook, hook_finals, hook_line, made_hooks
from pipeline.models import Job

HOOK_LINE_SHOWN = 140
MAX_ATTACHMENTS = 10


def hooks_text(job: Job, made: Sequence[MadeHook], limit: int) -> str:
    """The hook test's message: one line per hook, what it says and where its version is."""
    directory = Path(job.final_path).parent if job.final_path else Path()
    have = {m.letter: m for m in made}
    lines = [f"🧪 **Hook test** · job `{job.id}` · the same ad with {job.request.hooks} openings:"]
    for letter, _path, scene in hook_finals(job, directory):
        line = f"**{letter}** “{shown(hook_line(scene), HOOK_LINE_SHOWN)}”"
        m = have.get(letter)
        if m is None:
            why = next((n for n in job.notes if n.startswith(f"Hook {letter}'s version")), None)
            line += f" — ⚠️ {why or 'not made.'}"
        elif letter == "A":
            line += " — the ad above"
        elif m.bytes > limit:
            line += f" — ⚠️ {mib(m.bytes)}, over this server's {mib(limit)} upload limit; kept on the bot's disk"
        else:
            line += f" — `{hook_file_name(job.id, letter)}`"
        lines.append(line)
    return "\n".join(lines)


def hook_file_name(job_id: str, letter: str) -> str:
    return f"jant-ad-{job_id}-hook-{letter}.mp4"


def hook_batches(made: Sequence[MadeHook], limit: int) -> list[list[MadeHook]]:
    """The versions to upload (not A: it is the ad above), as many per message as fit the limit together."""
    batches: list[list[MadeHook]] = []
    for m in made:
        if m.letter == "A" or m.bytes > limit:
            continue
        if batches and sum(b.bytes for b in batches[-1]) + m.bytes <= limit and len(batches[-1]) < MAX_ATTACHMENTS:
            batches[-1].append(m)
        else:
            batches.append([m])
    return batches


async def post_hooks(channel: discord.abc.Messageable, job: Job, limit: int) -> None:
    """Post the hook test after the result (nothing for a one-hook ad)."""
    if job.request.hooks < 2 or not job.final_path:
        return
    made = await asyncio.to_thread(made_hooks, job, Path(job.final_path).parent)
    batches = hook_batches(made, limit)
    text = hooks_text(job, made, limit)
    for n, batch in enumerate(batches or [[]]):
        files = []
        for m in batch:
            data = await asyncio.to_thread(m.path.read_bytes)
            files.append(discord.File(io.BytesIO(data), filename=hook_file_name(job.id, m.letter)))
        await channel.send(text if n == 0 else f"🧪 Job `{job.id}` · hook test, continued", files=files)

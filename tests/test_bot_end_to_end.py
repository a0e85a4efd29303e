"""The whole story through the Discord emulator, with the real offline providers and the real composer:
a teammate asks for an ad, a colleague may not approve it, the requester does, the status message walks
through the stages at most once every 2 s, and a real MP4 under the server's upload limit arrives."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

from bot.app import JantBot
from pipeline.composer import Composer
from pipeline.models import JobStatus
from pipeline.providers.base import ClipRequest, Providers, SeedRequest, StageContext, StageResult
from pipeline.providers.offline_images import OfflineImageGenerator
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.providers.offline_video import OfflineVideoGenerator
from tests.bot_harness import APPROVER_ROLE, embed_text, running_team
from tests.emulators.discord_server import DiscordEmulator

pytest_plugins = ["tests.conftest_discord"]  # the discord_emulator and discord_errors fixtures

MiB = 1024 * 1024


class Gated:
    """A real offline provider that holds every call at a gate, so a test can watch each stage."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.gate = inner, asyncio.Event()
        self.name, self.offline = inner.name, inner.offline

    async def generate(self, request: SeedRequest, ctx: StageContext) -> StageResult:
        await self.gate.wait()
        return await self.inner.generate(request, ctx)

    async def animate(self, request: ClipRequest, ctx: StageContext) -> StageResult:
        await self.gate.wait()
        return await self.inner.animate(request, ctx)

    async def cancel(self, prediction_id: str) -> None:
        await self.inner.cancel(prediction_id)


async def test_a_teammate_gets_an_approved_ad_as_an_mp4_under_the_upload_limit(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    seeds, clips = Gated(OfflineImageGenerator()), Gated(OfflineVideoGenerator())
    providers = Providers(OfflineStoryboardPlanner(), seeds, clips)  # type: ignore[arg-type]
    settings = {"JANT_STATUS_EDIT_INTERVAL_S": 2.0, "JANT_SVD_VIDEO_LENGTH": "14_frames_with_svd"}
    composer = Composer(360, 640)  # a small 9:16 keeps the test quick; the CLI tests cover full size
    async with running_team(emu, tmp_path, discord_errors, providers=providers, composer=composer, **settings) as team:
        bot: JantBot = team.bot
        assert bot.intents.value == 1  # guilds only: no message content, no members
        rec, board, job_id = await team.makead()
        assert rec.response_type == 5 and rec.latency is not None and rec.latency < 3
        assert board.button_labels == ["Approve", "New storyboard", "Edit scene", "Cancel"]
        [embed] = board.embeds
        assert embed["fields"][0]["name"].startswith("#1 · hook · ")
        assert "Free offline preview" in embed["fields"][-1]["value"] and "Offline preview" in embed["description"]

        refused = await team.click(board, "approve", job_id, team.bob)
        assert refused.ephemeral and refused.content == (
            f"Only <@{team.alice.id}> (who asked for it), members with the **{APPROVER_ROLE}** role or members "
            "with Manage Server can approve this ad."
        )
        approved = await team.click(board, "approve", job_id, team.alice)
        assert approved.response_type == 7
        status = await team.status_message(job_id)
        [thread] = emu.threads
        assert status.channel_id == thread.id and thread.id == board.id  # a thread opened from the storyboard
        assert status.versions[0].source == "create"  # a bot message, not the interaction's response

        def seen(words: str) -> bool:
            return any(words in embed_text(status, i) for i in range(len(status.versions)))

        await team.wait_until(lambda: seen("**painting seed**"), what="seeds painting")
        seeds.gate.set()
        await team.wait_until(lambda: seen("**animating**"), what="clips animating")
        clips.gate.set()
        await team.wait_until(lambda: "✅ **Done.**" in embed_text(status), timeout=60, what="the final state")
        final = await emu.wait_for_message(thread.id, lambda m: bool(m.attachments), timeout=30)

        job = await team.job(job_id)
        assert job.status is JobStatus.COMPLETED and job.byte_limit == 10 * MiB
        names = [a.filename for a in final.attachments]
        assert names == [f"jant-ad-{job_id}.mp4", f"jant-ad-{job_id}-contact-sheet.png"]
        mp4 = final.attachments[0]
        assert mp4.data[4:8] == b"ftyp" and 0 < mp4.size <= 10 * MiB
        assert final.attachments[1].data[:8] == b"\x89PNG\r\n\x1a\n"

        # Stages seen in order on one scene's line, and never more than one edit per 2 s.
        texts = [embed_text(status, i) for i in range(len(status.versions))]
        first = [
            next(i for i, t in enumerate(texts) if w in t)
            for w in ("**painting seed**", "**animating**", "✅ **Done.**")
        ]
        assert first == sorted(first)
        times = [v.at for v in status.versions]
        assert all(b - a >= 2.0 for a, b in itertools.pairwise(times)), [
            round(b - a, 2) for a, b in itertools.pairwise(times)
        ]
        assert status.embeds[0]["color"] == 0x2ECC71  # green
        assert not status.custom_ids  # nothing left to press
        assert not any(emu.would_ping(m) for m in team.bot_messages())
        assert all(m.allowed_mentions == {"parse": []} for m in team.bot_messages() if not m.loading), [
            (m.versions[0].source, m.versions[-1].source, m.allowed_mentions) for m in team.bot_messages()
        ]

"""Generation stories through the Discord emulator: cancel, Discord faults on the status message,
failed scenes and Retry failed, upload limits, /jobs and /job, quotas and our own bugs."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from pipeline.composer import ComposeResult
from pipeline.models import JobStatus
from pipeline.providers.base import Providers
from tests.bot_harness import embed_text, running_team
from tests.emulators.discord_server import DiscordEmulator
from tests.scripted_providers import CopyComposer, ScriptedImages, ScriptedVideo

pytest_plugins = ["tests.conftest_discord"]  # the discord_emulator and discord_errors fixtures

MiB = 1024 * 1024
STATUS_EDIT = r"^/channels/\d+/messages/\d+$"


class PaddedComposer(CopyComposer):
    """Joins into a file of a chosen size: an ad that does not fit the server's upload limit."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    async def join(self, clips: list[Path], dst: Path, *, byte_limit: int | None = None) -> ComposeResult:
        await asyncio.to_thread(dst.write_bytes, b"\0\0\0\x18ftypmp42" + b"\0" * (self.size - 12))
        return ComposeResult(path=dst, bytes=self.size, duration_s=30.0, encodes=1)


async def test_cancel_during_generation_stops_the_job_and_says_so(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        team.video.outcomes[3] = ["hang"]
        _, job_id, status = await team.start_generating(until_clip=3)
        refused = await team.click(status, "cancel", job_id, team.bob)
        assert refused.ephemeral and "can cancel this ad" in (refused.content or "")
        cancel = await team.click(status, "cancel", job_id, team.alice)
        assert cancel.response_type == 5 and cancel.ephemeral
        [note] = await cancel.wait_followups(1)
        assert note.ephemeral and note.content == (
            f"⏹️ Stopped job `{job_id}`. Finished scenes are kept; nothing more will be generated or charged."
        )
        await team.wait_until(lambda: "⏹️ **Cancelled.**" in embed_text(status), what="the cancelled state")
        job = await team.job(job_id)
        assert job.status is JobStatus.CANCELLED
        assert "clip-3-1" in team.video.cancelled  # the paid prediction was cancelled too
        assert status.custom_ids == [] and status.embeds[0]["color"] == 0x607D8B
        assert not [m for m in emu.messages(status.channel_id) if m.attachments]  # no ad posted


async def test_rate_limits_and_errors_on_status_edits_are_survived_and_the_final_state_is_written(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        team.video.gates[1] = asyncio.Event()
        _, board, job_id = await team.makead()
        limited = emu.fail_next("PATCH", STATUS_EDIT, status=429, retry_after=0.3, times=2)
        broken = emu.fail_next("PATCH", STATUS_EDIT, status=503, times=1)
        await team.click(board, "approve", job_id, team.alice)
        status = await team.status_message(job_id)
        await team.wait_until(lambda: limited.hits == 2 and broken.hits == 1, what="the injected faults")
        team.video.gates[1].set()
        await team.wait_until(lambda: "✅ **Done.**" in embed_text(status), what="the final state")
        await emu.wait_for_message(status.channel_id, lambda m: bool(m.attachments))
        rejected = emu.count("PATCH", STATUS_EDIT, status=429) + emu.count("PATCH", STATUS_EDIT, status=503)
        assert rejected == 3 and status.edit_count >= 1
        # discord.py waited out the 429s itself; the 503 reached the throttle, which kept the state and retried.
        assert any(r.name == "discord.http" and "rate limited" in r.getMessage() for r in caplog.records)
        assert any(r.name == "bot.edit_throttle" and "latest state is kept" in r.getMessage() for r in caplog.records)


async def test_a_deleted_status_message_is_posted_again_and_goes_on(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        team.video.gates[2] = asyncio.Event()
        _, job_id, first = await team.start_generating(until_clip=2)
        await emu.delete_message(first.channel_id, first.id)
        team.video.gates[2].set()
        second = await team.status_message(job_id)
        assert second.id != first.id and second.channel_id == first.channel_id
        await team.wait_until(lambda: "✅ **Done.**" in embed_text(second), what="the final state")
        await emu.wait_for_message(second.channel_id, lambda m: bool(m.attachments))
        assert (await team.job(job_id)).ui.status_message_id == second.id  # remembered for restarts


async def test_a_failed_scene_ends_amber_and_retry_failed_remakes_only_it(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        team.images.outcomes[3] = ["nsfw"]
        _, board, job_id = await team.makead()
        await team.click(board, "approve", job_id, team.alice)
        status = await team.status_message(job_id)
        await team.wait_until(lambda: "Finished without scene 3" in embed_text(status), what="the partial state")
        assert status.embeds[0]["color"] == 0xF1C40F  # amber
        assert "NSFW content detected." in embed_text(status) and status.button_labels == ["Retry failed"]
        first = await emu.wait_for_message(status.channel_id, lambda m: bool(m.attachments))
        assert "⚠️ Scene 3 is missing; **Retry failed** on the status message re-makes only those." in first.content

        retry = await team.click(status, "retry", job_id, team.alice)
        assert retry.ephemeral and retry.content.startswith(f"🔁 Re-making scene 3 of job `{job_id}`")
        await team.wait_until(lambda: "✅ **Done.**" in embed_text(status), what="the completed state")
        await team.wait_until(lambda: len([m for m in emu.messages(status.channel_id) if m.attachments]) == 2)
        assert team.images.creates[3] == 2 and all(team.images.creates[i] == 1 for i in (1, 2, 4))
        assert (await team.job(job_id)).status is JobStatus.COMPLETED


async def test_an_ad_over_the_upload_limit_is_not_attached_and_job_reposts_it_after_a_boost(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors, composer=PaddedComposer(11 * MiB)) as team:
        _, board, job_id = await team.makead()
        await team.click(board, "approve", job_id, team.alice)
        status = await team.status_message(job_id)
        note = await emu.wait_for_message(status.channel_id, lambda m: "upload limit" in m.content)
        assert note.content == (
            f"⚠️ The ad for job `{job_id}` is 11.0 MiB, over this server's 10.0 MiB upload limit, so I can't attach "
            f"it. It is kept on the bot's disk. Re-post it with `/job id:{job_id}` once the server allows bigger "
            "files (Server Boost level 2 raises the limit to 50 MiB), or make a shorter ad."
        )
        assert not any(r.files for r in emu.requests)  # nothing over the limit was even sent

        listing = await emu.slash_command(team.guild_id, team.channel_id, team.alice.id, "jobs")
        await listing.wait_response()
        assert listing.ephemeral and f"`{job_id}` ✅ done" in embed_text(listing.original)
        nobody = await emu.slash_command(team.guild_id, team.channel_id, team.bob.id, "jobs")
        await nobody.wait_response()
        assert nobody.content == "You have no ad jobs yet. Start one with `/makead`."

        emu.set_premium_tier(team.guild_id, 2)  # 50 MiB
        await emu.settle()
        again = await emu.slash_command(team.guild_id, team.channel_id, team.alice.id, "job", {"id": job_id})
        await again.wait_response()
        [posted] = await again.wait_followups(1, timeout=10)
        assert not posted.ephemeral and posted.attachments[0].filename == f"jant-ad-{job_id}.mp4"
        assert posted.attachments[0].size == 11 * MiB and "✅ **Done.**" in embed_text(posted)


async def test_an_upload_discord_rejects_gets_a_clear_message(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        _, board, job_id = await team.makead()
        too_big = emu.fail_next(
            "POST", r"^/channels/\d+/messages$", status=413, code=40005, message="Request entity too large"
        )
        too_big.times = 0  # armed once the status message is posted (a plain send too)
        await team.click(board, "approve", job_id, team.alice)
        status = await team.status_message(job_id)
        too_big.times = 1
        note = await emu.wait_for_message(status.channel_id, lambda m: "upload limit" in m.content)
        assert note.content.startswith(f"⚠️ The ad for job `{job_id}` is ") and f"/job id:{job_id}" in note.content
        assert too_big.hits == 1


async def test_a_user_over_the_concurrent_limit_is_told_and_the_storyboard_is_untouched(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors, JANT_USER_CONCURRENT_JOBS=1) as team:
        team.video.gates[1] = asyncio.Event()
        _, board1, job1 = await team.makead()
        await team.click(board1, "approve", job1, team.alice)
        _, board2, job2 = await team.makead()
        refused = await team.click(board2, "approve", job2, team.alice)
        assert refused.ephemeral and refused.content.startswith(
            "⚠️ You already have 1 ads generating, the limit of 1 at a time."
        )
        assert emu.message(board2.id).edit_count == 1 and emu.message(board2.id).button_labels[0] == "Approve"
        assert (await team.job(job2)).status is JobStatus.AWAITING_APPROVAL
        team.video.gates[1].set()


class RefusingPlanner:
    name, offline = "refusing-planner", True

    async def plan(self, request, *, feedback=None):
        from pipeline.errors import PlannerError

        raise PlannerError("The storyboard writer refused this product description.")


async def test_a_planner_failure_tells_the_user_what_happened_and_what_to_do(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    providers = Providers(RefusingPlanner(), ScriptedImages("seed"), ScriptedVideo("clip"))  # type: ignore[arg-type]
    async with running_team(emu, tmp_path, discord_errors, providers=providers) as team:
        rec = await emu.slash_command(
            team.guild_id, team.channel_id, team.alice.id, "makead", {"product": "Lumen lamp", "mood": "tech"}
        )
        [reply] = await rec.wait_followups(1)
        [job] = await team.bot.runtime.store.list()
        assert reply.content == (
            f"⚠️ I couldn't write a storyboard (job `{job.id}`): The storyboard writer refused this product "
            "description. Try again, or rephrase the product description."
        )
        assert job.status is JobStatus.FAILED and reply.custom_ids == []


async def test_without_thread_permission_progress_goes_to_the_channel_and_without_send_the_user_is_told(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        emu.deny_bot(team.channel_id, "CREATE_PUBLIC_THREADS")
        await emu.settle()
        _, board, job_id = await team.makead()
        await team.click(board, "approve", job_id, team.alice)
        status = await team.status_message(job_id)
        assert status.channel_id == team.channel_id and emu.threads == []
        await team.wait_until(lambda: "✅ **Done.**" in embed_text(status), what="the final state")
        await emu.wait_for_message(team.channel_id, lambda m: bool(m.attachments))

        emu.deny_bot(team.channel_id, "SEND_MESSAGES")
        await emu.settle()
        _, board, job_id = await team.makead()
        approved = await team.click(board, "approve", job_id, team.alice)
        [told] = await approved.wait_followups(1)
        assert told.ephemeral and told.content == (
            "I can't post progress here (Missing Permissions). The ad is being made anyway: "
            f"`/job id:{job_id}` shows how it is going and posts the result."
        )


async def test_a_restart_resumes_the_running_job_and_keeps_editing_its_status_message(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        team.video.gates[4] = asyncio.Event()  # never opened in this process
        _, job_id, status = await team.start_generating(until_clip=4)
    # The process stopped mid-generation; a new one starts on the same database.
    async with running_team(emu, tmp_path, discord_errors) as team:
        await team.wait_until(lambda: "✅ **Done.**" in embed_text(status), what="the resumed job to finish")
        assert (await team.status_message(job_id)).id == status.id  # the same message, found again
        await emu.wait_for_message(status.channel_id, lambda m: bool(m.attachments))
        assert team.video.creates[4] == 0  # polled by its stored prediction id, never paid for twice

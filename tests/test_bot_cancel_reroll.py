"""`/cancel id:` and `/reroll` through the Discord emulator: the same rules as the buttons, the exact
answers, paid predictions cancelled, finished work kept, one scene made again and the ad re-joined."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pipeline.models import JobStatus, StageStatus
from tests.bot_harness import APPROVER_ROLE, Team, embed_text, eventually, running_team
from tests.emulators.discord_server import DiscordEmulator, InteractionRecord, User

pytest_plugins = ["tests.conftest_discord"]  # the discord_emulator and discord_errors fixtures

REFUSED = "Only <@{alice}> (who asked for it), members with the **" + APPROVER_ROLE + "** role or members with "


async def command(team: Team, user: User, name: str, **options: object) -> InteractionRecord:
    rec = await team.emu.slash_command(team.guild_id, team.channel_id, user.id, name, options)
    return await rec.wait_response()


async def storyboard_saved(team: Team, job_id: str) -> bool:
    return (await team.job(job_id)).ui.storyboard_message_id is not None


async def answer(rec: InteractionRecord) -> str:
    """The private answer: the response itself, or the followup after a private 'thinking…'."""
    if rec.response_type == 5:
        [note] = await rec.wait_followups(1)
        assert note.ephemeral
        return note.content
    assert rec.ephemeral
    return rec.content or ""


async def test_cancel_by_id_follows_the_button_rules_and_keeps_finished_scenes(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        team.video.outcomes[3] = ["hang"]
        _, job_id, status = await team.start_generating(until_clip=3)
        await asyncio.wait_for(team.video.finished[1].wait(), 5)

        refused = await command(team, team.bob, "cancel", id=job_id)
        assert await answer(refused) == REFUSED.format(alice=team.alice.id) + "Manage Server can cancel this ad."
        assert (await team.job(job_id)).status is JobStatus.RUNNING

        stopped = await command(team, team.alice, "cancel", id=f"  {job_id.upper()} ")
        assert await answer(stopped) == (
            f"⏹️ Stopped job `{job_id}`. Finished scenes are kept; nothing more will be generated or charged."
        )
        job = await team.job(job_id)
        assert job.status is JobStatus.CANCELLED
        assert "clip-3-1" in team.video.cancelled  # the paid prediction in flight was cancelled
        assert job.scene(1).clip.status is StageStatus.DONE and job.scene(1).clip.path  # finished work kept
        await team.wait_until(lambda: "⏹️ **Cancelled.**" in embed_text(status), what="the cancelled state")

        again = await command(team, team.alice, "cancel", id=job_id)
        assert await answer(again) == f"Nothing to cancel: job `{job_id}` was cancelled."
        bad = await command(team, team.alice, "cancel", id="lamp!")
        assert await answer(bad) == "⚠️ Job ids are 8 characters of 0-9 and a-f, like `1a2b3c4d` (got `lamp!`)."
        unknown = await command(team, team.alice, "cancel", id="0badf00d")
        assert await answer(unknown) == "I have no job `0badf00d` any more; `/jobs` lists yours."

        # A storyboard nobody approved yet: cancelled by id, and its message says so (edited with the bot token).
        _, board2, job2 = await team.makead()
        await eventually(lambda: storyboard_saved(team, job2), what="the storyboard message id stored")
        before = emu.message(board2.id).edit_count
        cancelled = await command(team, team.alice, "cancel", id=job2)
        assert await answer(cancelled) == f"⏹️ Cancelled job `{job2}` before anything was generated."
        await team.wait_until(lambda: emu.message(board2.id).edit_count > before, what="the storyboard edit")
        assert f"⏹️ Cancelled by <@{team.alice.id}>. Nothing was generated." in embed_text(emu.message(board2.id))
        assert all(c.get("disabled") for c in emu.message(board2.id).iter_components() if c.get("type") == 2)
        assert (await team.job(job2)).status is JobStatus.CANCELLED
        assert team.images.creates == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1}  # job 2 paid for nothing


async def test_reroll_remakes_one_scene_rejoins_the_ad_and_posts_it_again(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        _, board, job_id = await team.makead()
        early = await command(team, team.alice, "reroll", id=job_id, scene=2, part="clip")
        assert await answer(early) == f"Nothing to re-roll: job `{job_id}` is still waiting for approval."
        await team.click(board, "approve", job_id, team.alice)
        status = await team.status_message(job_id)
        await team.wait_until(lambda: "✅ **Done.**" in embed_text(status), what="the first ad")
        await emu.wait_for_message(status.channel_id, lambda m: bool(m.attachments))
        scenes = len((await team.job(job_id)).scenes)

        refused = await command(team, team.bob, "reroll", id=job_id, scene=2, part="clip")
        assert await answer(refused) == REFUSED.format(alice=team.alice.id) + "Manage Server can re-roll this ad."

        edits = status.edit_count
        rolled = await command(team, team.carol, "reroll", id=job_id, scene=2, part="clip")  # the approver role may
        assert await answer(rolled) == (
            f"🎲 Re-rolling scene 2 of job `{job_id}`: a new clip from the same seed image. The other scenes are "
            "kept and the ad is joined again; the status message follows along."
        )
        results = lambda: [m for m in emu.messages(status.channel_id) if m.attachments]  # noqa: E731
        await team.wait_until(lambda: len(results()) == 2, what="the re-joined ad")
        assert status.edit_count > edits and "✅ **Done.**" in embed_text(status)  # the same status message
        assert team.video.creates[2] == 2 and all(team.video.creates[i] == 1 for i in range(1, scenes + 1) if i != 2)
        assert all(n == 1 for n in team.images.creates.values())

        seeded = await command(team, team.alice, "reroll", id=job_id, scene=4, part="seed")
        assert (await answer(seeded)).startswith(f"🎲 Re-rolling scene 4 of job `{job_id}`: a new seed image and clip.")
        await team.wait_until(lambda: len(results()) == 3, what="the ad with a new scene 4")
        assert team.images.creates[4] == 2 and team.video.creates[4] == 2
        job = await team.settled(job_id, what="the re-rolled ad to settle")
        assert job.status is JobStatus.COMPLETED and job.ui.delivered == "posted"
        assert len(team.bot.runtime.orchestrator.composer.joined) == 3  # type: ignore[attr-defined]

"""Re-render and Reroll scene on the finished ad, through the Discord emulator: the buttons ride on the
result message and survive a restart, a re-render is posted as a new message with the server's kit as
it is now and generates nothing, `/rerender id:` does the same, and refusals say why."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pipeline.action_rules import RERENDER_MEDIA_GONE
from pipeline.brand import BrandKit
from pipeline.captions import CaptionMode
from pipeline.models import JobStatus
from tests.bot_harness import Team, embed_text, eventually, running_team
from tests.emulators.discord_server import DiscordEmulator, InteractionRecord, StoredMessage, User
from tests.scripted_providers import CopyComposer

pytest_plugins = ["tests.conftest_discord"]  # the discord_emulator and discord_errors fixtures

REFUSED = "Only <@{alice}> (who asked for it), members with the **Ad approver** role or members with Manage Server "
WAIT_S = 60.0
STARTED = (
    "🎞️ Re-rendering job `{job_id}` with this server's brand kit as it is now: the scenes on disk are cut "
    "again, nothing new is generated or charged. The new ad is posted here as a new message."
)


def results(team: Team, channel_id: int) -> list[StoredMessage]:
    return [m for m in team.emu.messages(channel_id) if m.attachments and not m.deleted]


async def finished_ad(team: Team) -> tuple[str, StoredMessage]:
    """Alice's ad, approved and posted: the job id and the result message."""
    _, board, job_id = await team.makead()
    await team.click(board, "approve", job_id, team.alice)
    status = await team.status_message(job_id)
    # Generous waits on conditions: a loaded machine may take a while, a broken bot never gets there.
    await team.wait_until(lambda: "✅ **Done.**" in embed_text(status), timeout=WAIT_S, what="the ad")
    [result] = await team.wait_until(lambda: results(team, status.channel_id), timeout=WAIT_S, what="the result")
    return job_id, result


async def posted(team: Team, channel_id: int, count: int, what: str) -> None:
    await team.wait_until(lambda: len(results(team, channel_id)) == count, timeout=WAIT_S, what=what)


async def command(team: Team, user: User, name: str, **options: object) -> InteractionRecord:
    rec = await team.emu.slash_command(team.guild_id, team.channel_id, user.id, name, options)
    return await rec.wait_response()


def creates(team: Team) -> tuple[int, int]:
    return sum(team.images.creates.values()), sum(team.video.creates.values())


async def test_rerender_button_and_command_post_a_new_ad_with_the_servers_kit_and_pay_nothing(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        job_id, result = await finished_ad(team)
        assert f"jant:rerender:{job_id}" in result.custom_ids and f"jant:reroll:{job_id}" in result.custom_ids
        paid = creates(team)
        directory = tmp_path / "data" / "jobs" / job_id

        refused = await team.click(result, "rerender", job_id, team.bob)
        assert refused.ephemeral and refused.content == REFUSED.format(alice=team.alice.id) + "can re-render this ad."

        # The team turned captions off since: the re-render draws that, the job records it.
        kit = BrandKit(name="Lumen", captions=CaptionMode.OFF)
        await team.bot.runtime.store.save_guild_brand(str(team.guild_id), kit, updated_by=str(team.alice.id))
        composer: CopyComposer = team.bot.runtime.orchestrator.composer  # type: ignore[assignment]
        cuts = len(composer.normalized)
        pressed = await team.click(result, "rerender", job_id, team.alice)
        assert pressed.ephemeral and pressed.content == STARTED.format(job_id=job_id)
        await posted(team, result.channel_id, 2, "the re-rendered ad")
        new = results(team, result.channel_id)[-1]
        assert new.id != result.id and f"job `{job_id}`" in (new.content or "")
        assert new.attachments[0].filename == f"jant-ad-{job_id}.mp4"
        assert f"jant:rerender:{job_id}" in new.custom_ids  # the new ad can be re-rendered in turn
        done = f"✅ Re-rendered job `{job_id}`: the new ad is posted below; the previous one is kept as `final-1.mp4`."
        await team.wait_until(lambda: pressed.original.content == done, timeout=WAIT_S, what="the note")  # type: ignore[union-attr]
        assert creates(team) == paid  # no seed image, no clip
        job = await team.job(job_id)
        assert job.brand == kit and job.status is JobStatus.COMPLETED
        n = len(job.scenes)
        assert sorted(i for i, _ in composer.normalized[cuts:]) == list(range(1, n + 1))  # every scene cut again
        assert {mode for mode, _ in composer.captions.values()} == {"off"}
        assert (directory / "final-1.mp4").is_file() and (directory / "final.mp4").is_file()

        # /rerender id: by the approver role, in the channel (the ad's thread aside): posted where it was
        # asked for, the second render kept as final-2.mp4.
        assert result.channel_id != team.channel_id and not results(team, team.channel_id)
        typed = await command(team, team.carol, "rerender", id=job_id.upper())
        assert typed.ephemeral and typed.content == STARTED.format(job_id=job_id)
        await posted(team, team.channel_id, 1, "the ad re-rendered by id")
        await eventually(lambda: _exists(directory / "final-2.mp4"), what="final-2.mp4")
        assert creates(team) == paid

        unknown = await command(team, team.alice, "rerender", id="0badf00d")
        assert unknown.content == "I have no job `0badf00d` any more; `/jobs` lists yours."
        _, board, waiting = await team.makead()
        early = await command(team, team.alice, "rerender", id=waiting)
        assert early.content == f"Nothing to re-render: job `{waiting}` is still waiting for approval."
        await team.click(board, "cancel", waiting, team.alice)
        cancelled = await command(team, team.alice, "rerender", id=waiting)
        assert cancelled.content == f"Nothing to re-render: job `{waiting}` was cancelled."

        # Retention deleted the scenes: said, and nothing is posted.
        for clip in directory.glob("clip-*.mp4"):
            clip.unlink()
        gone = await team.click(new, "rerender", job_id, team.alice)
        assert gone.ephemeral and gone.content == RERENDER_MEDIA_GONE.format(job_id=job_id)
        assert len(results(team, result.channel_id)) == 2 and len(results(team, team.channel_id)) == 1


async def _exists(path: Path) -> bool:
    return await asyncio.to_thread(path.is_file)


async def test_reroll_scene_button_opens_the_scene_picker_and_remakes_that_scene(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        job_id, result = await finished_ad(team)
        refused = await team.click(result, "reroll", job_id, team.bob)
        assert refused.content == REFUSED.format(alice=team.alice.id) + "can re-roll this ad."

        opened = await team.click(result, "reroll", job_id, team.alice)
        assert opened.ephemeral and opened.content == "Which scene do you want to make again?"
        [picker] = [c for c in opened.original.iter_components() if c.get("type") == 3]  # type: ignore[union-attr]
        n = len((await team.job(job_id)).scenes)
        options = picker["options"]
        assert [o["value"] for o in options] == [f"{i}:{p}" for i in range(1, n + 1) for p in ("seed", "clip")]
        assert options[3]["label"].startswith("#2 · ") and options[3]["label"].endswith("new clip, same image")
        picked = await emu.select(opened.original.id, f"jant:rerollpick:{job_id}", ["2:clip"], team.alice.id)  # type: ignore[union-attr]
        await picked.wait_response()
        assert picked.content == (
            f"🎲 Re-rolling scene 2 of job `{job_id}`: a new clip from the same seed image. The other scenes are "
            "kept and the ad is joined again; the status message follows along."
        )
        await posted(team, result.channel_id, 2, "the re-rolled ad")
        assert team.video.creates[2] == 2 and all(team.video.creates[i] == 1 for i in range(1, n + 1) if i != 2)
        assert all(count == 1 for count in team.images.creates.values())


async def test_the_result_buttons_work_after_a_restart(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        job_id, result = await finished_ad(team)
        paid = creates(team)

    # A new process: nothing in memory knows the message; its buttons carry the job id.
    async with running_team(emu, tmp_path, discord_errors) as team:
        pressed = await team.click(result, "rerender", job_id, team.carol)
        assert pressed.content == STARTED.format(job_id=job_id)
        await posted(team, result.channel_id, 2, "the re-rendered ad")
        assert creates(team) == (0, 0) and paid != (0, 0)  # this process generated nothing either
        opened = await team.click(result, "reroll", job_id, team.alice)
        assert opened.content == "Which scene do you want to make again?"
        assert (tmp_path / "data" / "jobs" / job_id / "final-1.mp4").is_file()

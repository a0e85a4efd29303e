"""Storyboard stories through the Discord emulator: who may press what, editing, re-planning,
stale clicks, restarts, mentions and bad input."""

from __future__ import annotations

from pathlib import Path

from pipeline.models import JobStatus
from tests.bot_harness import APPROVER_ROLE, embed_text, running_team
from tests.emulators.discord_server import DiscordEmulator

pytest_plugins = ["tests.conftest_discord"]  # the discord_emulator and discord_errors fixtures

BUTTONS = ["Approve", "New storyboard", "Edit scene", "Cancel"]


def buttons_disabled(emu: DiscordEmulator, message_id: int) -> bool:
    return all(c.get("disabled") for c in emu.message(message_id).iter_components() if c.get("type") == 2)


async def test_only_the_requester_an_approver_or_a_manager_may_press_the_buttons(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        _, board, job_id = await team.makead()
        assert board.button_labels == BUTTONS and not board.ephemeral
        for action in ("approve", "replan", "edit", "cancel"):
            refused = await team.click(board, action, job_id, team.bob)
            assert refused.response_type == 4 and refused.ephemeral
            assert refused.content.startswith(f"Only <@{team.alice.id}> (who asked for it), members with the")
        assert refused.content == (
            f"Only <@{team.alice.id}> (who asked for it), members with the **{APPROVER_ROLE}** role or members "
            "with Manage Server can cancel this ad."
        )
        assert (await team.job(job_id)).status is JobStatus.AWAITING_APPROVAL
        assert emu.message(board.id).edit_count == 1  # only the followup that filled "thinking…"

        approved = await team.click(board, "approve", job_id, team.carol)  # the approver role may
        assert approved.response_type == 7
        assert f"Approved by <@{team.carol.id}>" in embed_text(emu.message(board.id))
        assert buttons_disabled(emu, board.id)
        status = await team.status_message(job_id)
        await team.wait_until(lambda: "Done." in embed_text(status), what="the job to finish")

        # A member with Manage Server may cancel somebody else's storyboard.
        manager = emu.add_user("dana")
        mods = emu.add_role(team.guild_id, "Mods", ["MANAGE_GUILD"])
        emu.add_member(team.guild_id, manager.id, roles=[mods.id])
        _, board2, job2 = await team.makead()
        cancelled = await team.click(board2, "cancel", job2, manager)
        assert cancelled.response_type == 7
        assert f"Cancelled by <@{manager.id}>" in embed_text(emu.message(board2.id))
        assert (await team.job(job2)).status is JobStatus.CANCELLED and buttons_disabled(emu, board2.id)


async def test_a_stale_click_on_a_job_that_moved_on_says_so_instead_of_acting_twice(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        _, board, job_id = await team.makead()
        first = await team.click(board, "approve", job_id, team.alice)
        status = await team.status_message(job_id)
        # The same click again, from a client that still shows the old, enabled buttons.
        stale = dict(first.payload)
        stale["id"] = str(emu._snowflake())
        stale["token"] = f"stale-{stale['id']}"
        again = await (await emu.inject_interaction(stale)).wait_response()
        assert again.ephemeral and again.content.startswith(f"Nothing to approve: job `{job_id}` ")
        assert "already approved" in again.content or "already finished" in again.content
        await team.wait_until(lambda: "Done." in embed_text(status), what="the job to finish")
        await emu.wait_for_message(status.channel_id, lambda m: bool(m.attachments))
        assert len(emu.messages(status.channel_id)) == 2  # one status message and the result: approved once
        assert status.custom_ids == []  # the finished status message has nothing left to press


async def test_edit_scene_changes_one_scene_and_an_invalid_edit_gets_the_rule(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        _, board, job_id = await team.makead()
        job = await team.job(job_id)
        scene2 = job.storyboard.scenes[1]
        new_duration = scene2.duration + 0.5

        async def edit_scene_2(description: str, duration: str) -> str:
            opened = await team.click(board, "edit", job_id, team.alice)
            assert opened.ephemeral and opened.original is not None
            picked = await (
                await emu.select(opened.original.id, f"jant:pick:{job_id}", ["2"], team.alice.id)
            ).wait_response()
            assert picked.response_type == 9 and picked.modal["title"] == "Edit scene 2 · intro"
            submitted = await emu.submit_modal(
                f"jant:scene:{job_id}:2", {"description": description, "duration": duration}, team.alice.id
            )
            await submitted.wait_response()
            assert submitted.ephemeral
            return submitted.content or ""

        reply = await edit_scene_2("A slow close-up of the lamp glowing warm at dusk", f"{new_duration:g}")
        assert reply == f"✏️ Scene 2 is now {new_duration:g} s; the ad runs {job.storyboard.total_duration + 0.5:g} s."
        await team.wait_until(
            lambda: emu.message(board.id).embeds[0]["fields"][1]["name"] == f"#2 · intro · {new_duration:g}s",
            what="the storyboard message to show the edit",
        )
        field = emu.message(board.id).embeds[0]["fields"][1]
        assert field["value"].startswith("A slow close-up of the lamp glowing warm at dusk")
        assert board.button_labels == BUTTONS and not buttons_disabled(emu, board.id)
        stored = await team.job(job_id)
        assert stored.storyboard.scenes[1].duration == new_duration
        assert [s.duration for s in stored.storyboard.scenes if s.index != 2] == [
            s.duration for s in job.storyboard.scenes if s.index != 2
        ]

        edits_before = emu.message(board.id).edit_count
        others = stored.storyboard.total_duration - new_duration
        reply = await edit_scene_2("A slow close-up of the lamp glowing warm at dusk", "8")
        assert reply.startswith("⚠️ That edit breaks the storyboard: scene durations must add up to 29–31 s (got ")
        assert f"scene 2 can be {29 - others:g}–{31 - others:g} s. Nothing was changed." in reply
        reply = await edit_scene_2("Anything", "9")
        assert "scene duration must be between 2 and 8 s (got 9 s)" in reply
        reply = await edit_scene_2("Anything", "soon")
        assert reply == "⚠️ The duration must be a number of seconds, like 4 or 4.5 (got “soon”)."
        assert emu.message(board.id).edit_count == edits_before
        assert (await team.job(job_id)).storyboard == stored.storyboard  # the bad edits left no trace


async def test_edit_scene_rewrites_what_is_said_and_a_line_with_an_address_is_refused(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        _, board, job_id = await team.makead()
        job = await team.job(job_id)
        scene3 = job.storyboard.scenes[2]
        assert f"🗣️ “{scene3.voiceover}”" in emu.message(board.id).embeds[0]["fields"][2]["value"]

        async def edit_scene_3(**values: str) -> str:
            opened = await team.click(board, "edit", job_id, team.alice)
            picked = await (
                await emu.select(opened.original.id, f"jant:pick:{job_id}", ["3"], team.alice.id)
            ).wait_response()
            labels = [c["label"] for c in picked.modal["components"]]
            assert labels == ["What the scene shows", "What is said", "Duration in seconds"]
            said = next(c for c in picked.modal["components"] if c["label"] == "What is said")
            current = (await team.job(job_id)).storyboard.scenes[2].voiceover
            assert said["component"]["value"] == current  # the current line, ready to change
            submitted = await emu.submit_modal(f"jant:scene:{job_id}:3", values, team.alice.id)
            await submitted.wait_response()
            return submitted.content or ""

        line = "It dims itself at night, so you sleep better."
        reply = await edit_scene_3(voiceover=line)
        assert reply.endswith(f"Its line now says “{line}”.")
        await team.wait_until(
            lambda: line in emu.message(board.id).embeds[0]["fields"][2]["value"],
            what="the storyboard message to show the new line",
        )
        stored = await team.job(job_id)
        assert stored.storyboard.scenes[2].voiceover == line
        assert stored.storyboard.scenes[2].description == scene3.description  # only the line changed

        edits_before = emu.message(board.id).edit_count
        reply = await edit_scene_3(voiceover="Order now at lumen.example for $49")
        assert reply.startswith(
            "⚠️ That edit breaks the storyboard: scenes.2: scene 3 (feature): the voiceover line contains the web "
            "address “lumen.example”"
        )
        assert reply.endswith("Nothing was changed.")
        reply = await edit_scene_3(voiceover="")
        assert "scene 3 (feature): the voiceover line is empty" in reply
        assert emu.message(board.id).edit_count == edits_before
        assert (await team.job(job_id)).storyboard == stored.storyboard


async def test_makead_language_writes_the_lines_in_that_language_and_the_card_says_so(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        _, board, job_id = await team.makead(language="fr")
        job = await team.job(job_id)
        assert job.request.language == "fr" and job.storyboard.language == "fr"
        embed = emu.message(board.id).embeds[0]
        assert "**Language:** French" in embed["description"]
        assert any(w in embed["fields"][-3]["value"] for w in ("Procurez-vous", "Essayez"))  # the cta scene

        _, board, job_id = await team.makead(product="Lumen — una lampada da scrivania che segue il tuo ritmo.")
        assert (await team.job(job_id)).request.language == "it"  # detected
        assert "Lines are in English: the storyboard writer has no Italian lines" in embed_text(emu.message(board.id))


async def test_new_storyboard_replans_in_place(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        _, board, job_id = await team.makead()
        replanned = await team.click(board, "replan", job_id, team.alice)
        assert replanned.response_type == 7  # the same message, not a new one
        await team.wait_until(lambda: "New storyboard (take 2)" in embed_text(emu.message(board.id)), what="re-plan")
        assert not buttons_disabled(emu, board.id)
        assert [m.id for m in team.bot_messages()] == [board.id]
        assert (await team.job(job_id)).ui.replans == 1


async def test_buttons_of_an_old_storyboard_still_work_after_a_restart(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        _, board, job_id = await team.makead()
    async with running_team(emu, tmp_path, discord_errors) as team:  # a new process, the same database
        approved = await team.click(board, "approve", job_id, team.alice)
        assert approved.response_type == 7
        status = await team.status_message(job_id)
        await team.wait_until(lambda: "Done." in embed_text(status), what="the job to finish")
        await emu.wait_for_message(status.channel_id, lambda m: bool(m.attachments))


async def test_mentions_in_the_product_ping_nobody(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        staff = emu.add_role(team.guild_id, "Staff", mentionable=True)
        product = f"@everyone @here <@&{staff.id}> <@{team.bob.id}> Lumen — a lamp that **glows** and charges phones"
        _, board, job_id = await team.makead(product=product, cta=f"@everyone buy now <@&{staff.id}>")
        await team.click(board, "approve", job_id, team.alice)
        status = await team.status_message(job_id)
        await team.wait_until(lambda: "Done." in embed_text(status), what="the job to finish")
        result = await emu.wait_for_message(status.channel_id, lambda m: bool(m.attachments))
        messages = team.bot_messages()
        assert len(messages) >= 3 and result in messages
        assert not any(emu.would_ping(m, i) for m in messages for i in range(len(m.versions)))
        for m in messages:
            for v in m.versions:
                if v.source not in ("deferred",):
                    assert v.allowed_mentions == {"parse": []}, (m.id, v.source, v.allowed_mentions)
                text = v.content + str(v.embeds)
                assert "@everyone" not in text and "@here" not in text and f"<@&{staff.id}>" not in text
        assert "\\*\\*glows\\*\\*" in embed_text(board)


async def test_bad_input_gets_a_specific_private_answer(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        rec = await emu.slash_command(
            team.guild_id, team.channel_id, team.alice.id, "makead", {"product": " \u0000\u0007 ", "mood": "tech"}
        )
        await rec.wait_response()
        assert rec.response_type == 4 and rec.ephemeral
        assert rec.content == "⚠️ `product`: the product description is empty: say what you are advertising."
        assert await team.bot.runtime.store.list() == []  # nothing was created

        rec = await emu.slash_command(team.guild_id, team.channel_id, team.alice.id, "job", {"id": "lamp!"})
        await rec.wait_response()
        assert (
            rec.ephemeral and rec.content == "⚠️ Job ids are 8 characters of 0-9 and a-f, like `1a2b3c4d` (got `lamp!`)."
        )
        rec = await emu.slash_command(team.guild_id, team.channel_id, team.alice.id, "job", {"id": "0badf00d"})
        await rec.wait_response()
        assert rec.ephemeral and rec.content == "⚠️ There is no job `0badf00d` in this server. `/jobs` lists yours."

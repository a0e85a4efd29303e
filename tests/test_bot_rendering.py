"""What teammates read: the storyboard embed, the status message, and who may press which button."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.access_policy import Actor, may_act, moved_on, refusal
from bot.display_text import shown
from bot.status_view import (
    COLOUR_CANCELLED,
    COLOUR_DONE,
    COLOUR_FAILED,
    COLOUR_PARTIAL,
    COLOUR_RUNNING,
    render_status,
)
from bot.storyboard_embed import render_storyboard
from pipeline.config import Settings
from pipeline.models import (
    AdRequest,
    Beat,
    Job,
    JobStatus,
    Scene,
    StageStatus,
    Storyboard,
    fresh_job_stages,
    fresh_scene_states,
    utcnow,
)

LIVE = {"planner": "openai-gpt-4o", "seed": "replicate-sdxl", "clip": "replicate-svd"}
OFFLINE = {"planner": "offline-planner", "seed": "offline-painter", "clip": "offline-animator"}


def board(n: int = 6) -> Storyboard:
    durations = {5: [4, 6, 7, 7, 6], 6: [4, 5, 6, 5, 5, 5], 7: [3, 5, 4, 4, 4, 4, 6]}[n]
    beats = [Beat.HOOK, Beat.INTRO] + [Beat.FEATURE] * (n - 3) + [Beat.CTA]
    return Storyboard(
        title="Lumen launch",
        scenes=[
            Scene(
                index=i + 1,
                beat=b,
                duration=d,
                description=f"Scene {i + 1} of the lamp",
                visual_prompt="lamp",
                on_screen_text=f"Line {i + 1}",
                voiceover=f"Lumen says line {i + 1}.",
            )
            for i, (b, d) in enumerate(zip(beats, durations, strict=True))
        ],
        language="en",
    )


def job(product: str = "Lumen — a smart desk lamp", n: int = 6, *, offline: bool = False, **kw) -> Job:
    sb = board(n)
    j = Job(
        request=AdRequest(product=product, mood="tech"),
        storyboard=sb,
        offline=offline,
        providers=OFFLINE if offline else LIVE,
        requester_id="111",
        **kw,
    )
    j.scenes = fresh_scene_states(j.id, sb)
    return j


# -- the storyboard embed ----------------------------------------------------------------------------


def test_the_storyboard_shows_every_scene_with_beat_and_duration_and_an_estimate() -> None:
    j = job(status=JobStatus.AWAITING_APPROVAL)
    embed = render_storyboard(j, Settings())
    names = [f.name for f in embed.fields]
    assert names[:6] == [
        "#1 · hook · 4s",
        "#2 · intro · 5s",
        "#3 · feature · 6s",
        "#4 · feature · 5s",
        "#5 · feature · 5s",
        "#6 · cta · 5s",
    ]
    assert "Scene 3 of the lamp" in embed.fields[2].value and "On screen: “Line 3”" in embed.fields[2].value
    assert embed.fields[6].value.startswith("30 s · 6 scenes")
    estimate = embed.fields[7].value
    # 6 scenes × (6 s SDXL + 90 s SVD-XT) × $0.000725 per GPU-second
    assert "$0.42" in estimate and "GPU-second" in estimate and "typical" in estimate
    assert "**Product:** Lumen" in embed.description and "**Mood:** Tech" in embed.description


def test_an_offline_storyboard_says_so_and_costs_nothing() -> None:
    embed = render_storyboard(job(offline=True, status=JobStatus.AWAITING_APPROVAL), Settings())
    assert "Offline preview" in embed.description
    assert embed.fields[-1].value.startswith("Free offline preview")


def test_user_text_cannot_ping_or_restyle_the_embed() -> None:
    j = job(
        "@everyone **FREE** lamps for <@&123456789012345678> [click](https://x.y)", status=JobStatus.AWAITING_APPROVAL
    )
    embed = render_storyboard(j, Settings())
    assert "@everyone" not in embed.description and "@\u200beveryone" in embed.description
    assert "<@&123456789012345678>" not in embed.description
    assert "\\*\\*FREE\\*\\*" in embed.description and "\\[click\\]\\(https://x.y\\)" in embed.description


def test_markdown_inside_brackets_is_escaped_too() -> None:
    # discord.py's escape_markdown backslashes only the start of a greedy `[…](…)` match: the bold and the
    # second link inside it stayed live. Every markup character is escaped on its own now.
    text = "Lu\x00men\x1b[31m **bold** [click](https://evil.example/x_y) `code` ||spoiler|| # big ~~s~~"
    assert shown(AdRequest(product=text).product, 1000) == (
        "Lu men \\[31m \\*\\*bold\\*\\* \\[click\\]\\(https://evil.example/x\\_y\\) \\`code\\` "
        "\\|\\|spoiler\\|\\| # big \\~\\~s\\~\\~"
    )
    assert shown("# Big\n> quote\n- item\n1. first", 100) == "\\# Big\n\\> quote\n\\- item\n1\\. first"


def test_the_longest_allowed_input_still_fits_discords_embed_limits() -> None:
    long = "x" * 1000
    sound = {"voice": "replicate-minimax-tts", "music": "replicate-music"}
    j = Job(request=AdRequest(product=long, mood="luxury", audience="a" * 200, cta="c" * 200), providers=LIVE | sound)
    sb = Storyboard(
        title="t" * 120,
        scenes=[
            Scene(
                index=i + 1,
                beat=b,
                duration=d,
                description="d" * 300,
                visual_prompt="v",
                on_screen_text="o" * 60,
                voiceover=("y" * 49 + " ") * 8,
            )  # the longest line a 3 s scene accepts: 400 characters
            for i, (b, d) in enumerate(
                zip([Beat.HOOK, Beat.INTRO] + [Beat.FEATURE] * 4 + [Beat.CTA], [3, 5, 4, 4, 4, 4, 6], strict=True)
            )
        ],
    )
    j.storyboard, j.scenes = sb, fresh_scene_states(j.id, sb)
    embed = render_storyboard(j, Settings(), banner="✅ Approved by <@1>")
    assert len(embed) <= 6000 and len(embed.description) <= 4096 and len(embed.title) <= 256
    assert all(len(f.value) <= 1024 and len(f.name) <= 256 for f in embed.fields) and len(embed.fields) <= 25


def test_the_card_shows_each_scenes_line_and_the_chosen_voice() -> None:
    j = job(status=JobStatus.AWAITING_APPROVAL)
    embed = render_storyboard(j, Settings(), voice="Wise Woman · minimax")
    for i, field in enumerate(embed.fields[:6], start=1):
        assert f"🗣️ “Lumen says line {i}.”" in field.value
    assert "**Voice:** Wise Woman · minimax · **Language:** English" in embed.description
    assert "**Voice:** no voice" in render_storyboard(j, Settings()).description
    j.providers = {**LIVE, "voice": "replicate-minimax-tts"}
    assert "**Voice:** Wise\\_Woman · replicate-minimax-tts ·" in render_storyboard(j, Settings()).description
    chosen = render_storyboard(j, Settings(JANT_VOICE_ID="Deep_Voice_Man")).description
    assert "**Voice:** Deep\\_Voice\\_Man · replicate-minimax-tts ·" in chosen
    j.providers = {**OFFLINE, "voice": "offline-piper"}  # one bundled voice: JANT_VOICE_ID does not apply
    assert "**Voice:** en\\_US-joe-medium · offline-piper ·" in render_storyboard(j, chosen_settings()).description


def chosen_settings() -> Settings:
    return Settings(JANT_VOICE_ID="Deep_Voice_Man", JANT_TTS_PRICE_PER_1K_CHARS=1.0, JANT_MUSIC_PRICE_PER_RUN=0.3)


def test_the_estimate_adds_the_voice_by_character_and_the_music_by_run_as_parts() -> None:
    j = job(status=JobStatus.AWAITING_APPROVAL)
    j.providers |= {"voice": "replicate-minimax-tts", "music": "replicate-music"}
    estimate = render_storyboard(j, chosen_settings()).fields[-1].value
    # Six lines of 18 characters ("Lumen says line 1.") at $1 per 1,000 characters; one music run at $0.30.
    assert estimate.startswith("≈ $0.83: seeds+clips $0.42 for ~576 GPU-seconds")
    assert "voice $0.11 (108 characters × $1/1k), music $0.30 (one run) · ready in about" in estimate
    default = render_storyboard(j, Settings()).fields[-1].value  # $0.015 per 1,000: well under a cent
    assert default.startswith("≈ $0.62: seeds+clips $0.42") and "voice <$0.01" in default and "music $0.20" in default

    j.providers = {**LIVE, "voice": "offline-piper", "music": "offline-music"}
    estimate = render_storyboard(j, chosen_settings()).fields[-1].value
    assert estimate.startswith("≈ $0.42: seeds+clips $0.42") and "voice free (local), music free (local)" in estimate
    j.providers = {**LIVE, "music": "replicate-music"}  # no voice: no voice part
    assert "voice" not in render_storyboard(j, chosen_settings()).fields[-1].value


def test_an_offline_preview_with_offline_sound_is_still_free() -> None:
    j = job(offline=True, status=JobStatus.AWAITING_APPROVAL)
    j.providers |= {"voice": "offline-piper", "music": "offline-music"}
    embed = render_storyboard(j, chosen_settings())
    assert embed.fields[-1].value.startswith("Free offline preview")
    j.providers["voice"] = "replicate-minimax-tts"  # JANT_OFFLINE with JANT_VOICE=replicate: the lines are paid
    estimate = render_storyboard(j, chosen_settings()).fields[-1].value
    assert estimate.startswith("≈ $0.11: seeds+clips free (local), voice $0.11 (108 characters × $1/1k)")
    assert "Offline preview: storyboard, seed images, clips, voiceovers, music beds made locally" in embed.description


def test_a_storyboard_from_before_voiceovers_shows_its_scenes_are_silent() -> None:
    j = job(status=JobStatus.AWAITING_APPROVAL)
    assert j.storyboard is not None
    j.storyboard = Storyboard.model_validate(
        {**j.storyboard.model_dump(exclude={"language"}),
         "scenes": [s.model_dump(exclude={"voiceover"}) for s in j.storyboard.scenes]}
    )  # fmt: skip
    embed = render_storyboard(j, Settings())
    assert all("🔇 No line: planned before Jant wrote voiceovers" in f.value for f in embed.fields[:6])
    assert "**Language:** English" in embed.description  # the request's own, detected


def test_lines_written_in_another_language_than_asked_are_flagged() -> None:
    j = job("Lumen — una lampada da scrivania intelligente che segue il tuo ritmo.", status=JobStatus.AWAITING_APPROVAL)
    assert j.request.language == "it"
    embed = render_storyboard(j, Settings())
    assert "Lines are in English: the storyboard writer has no Italian lines" in embed.description


def test_a_line_cannot_ping_or_restyle_the_card() -> None:
    j = job(status=JobStatus.AWAITING_APPROVAL)
    assert j.storyboard is not None
    j.storyboard.scenes[1].voiceover = "Hey @everyone, **bold** and <@&123456789012345678>"
    value = render_storyboard(j, Settings()).fields[1].value
    assert "@\u200beveryone" in value and "\\*\\*bold\\*\\*" in value and "<@&123456789012345678>" not in value


# -- the status message --------------------------------------------------------------------------------


def running(j: Job, seconds_ago: float = 40) -> Job:
    j.status, j.started_at = JobStatus.RUNNING, utcnow() - timedelta(seconds=seconds_ago)
    return j


def test_each_scene_line_shows_its_stage_bar_and_attempt() -> None:
    j = running(job())
    s1, s2, s3, s4, s5 = (j.scene(i) for i in range(1, 6))
    s1.seed.status, s1.seed.progress = StageStatus.RUNNING, 50.0
    s2.seed.status, s2.clip.status, s2.clip.progress, s2.clip.attempt = StageStatus.DONE, StageStatus.RUNNING, 50, 2
    s3.seed.status, s3.seed.attempt, s3.seed.error = StageStatus.RETRYING, 1, "GPU hiccup (code: PA)"
    s4.seed.status, s4.clip.status = StageStatus.DONE, StageStatus.DONE
    s5.seed.status, s5.clip.status, s5.normalized_path = StageStatus.DONE, StageStatus.DONE, "scene-5.mp4"
    j.scene(6).seed.status, j.scene(6).seed.error = StageStatus.FAILED, "NSFW content **detected**."
    text = render_status(j, utcnow()).embed.description
    lines = text.splitlines()
    assert "`#1` hook · **painting seed** `█░░░░░░░░░░░` 10%" in lines[2]
    assert "`#2` intro · **animating** `███████░░░░░` 60%" in lines[3] and "attempt 2/3" in lines[3]
    assert "**painting seed**" in lines[4] and "attempt 1/3 failed, retrying: GPU hiccup" in lines[4]
    assert "**normalising**" in lines[5]
    assert "**done** `████████████` 100%" in lines[6]
    assert "`#6` cta · **failed**" in lines[7] and "NSFW content \\*\\*detected\\*\\*." in lines[8]
    assert "**Overall**" in text and "Elapsed 40 s · ETA ~" in text
    assert render_status(j, utcnow()).embed.colour == COLOUR_RUNNING


def test_a_job_that_has_not_started_estimates_nothing_yet_and_shows_its_place_in_line() -> None:
    j = job(status=JobStatus.QUEUED)
    text = render_status(j, utcnow()).embed.description
    assert "Queued" in text and "Not started yet" in text and "**queued**" in text
    text = render_status(j, utcnow(), queue_position=3).embed.description
    assert text.startswith("⏳ **Waiting for a free generation slot: number 3 in line.**")


@pytest.mark.parametrize(
    ("status", "colour", "words"),
    [
        (JobStatus.COMPLETED, COLOUR_DONE, "Done."),
        (JobStatus.PARTIAL, COLOUR_PARTIAL, "Finished without scene 3"),
        (JobStatus.FAILED, COLOUR_FAILED, "Failed.** No scene could be made"),
        (JobStatus.CANCELLED, COLOUR_CANCELLED, "Cancelled."),
    ],
)
def test_the_final_state_is_green_amber_red_or_grey(status: JobStatus, colour, words: str) -> None:
    j = running(job())
    for s in j.scenes:
        s.seed.status, s.clip.status, s.normalized_path = StageStatus.DONE, StageStatus.DONE, "x.mp4"
    if status is JobStatus.PARTIAL:
        j.scene(3).clip.status, j.scene(3).normalized_path, j.scene(3).clip.error = StageStatus.FAILED, None, "boom"
    j.status, j.finished_at = status, j.started_at + timedelta(seconds=95)
    j.error = "No scene could be made (scene 1: NSFW)." if status is JobStatus.FAILED else None
    render = render_status(j, utcnow() + timedelta(hours=1))
    assert render.final and render.embed.colour == colour and words in render.embed.description
    assert "Elapsed 1 min 35 s" in render.embed.description and "ETA" not in render.embed.description


def test_huge_error_reasons_are_trimmed_to_discords_limits() -> None:
    j = running(job(n=7))
    for s in j.scenes:
        s.seed.status, s.seed.error = StageStatus.FAILED, "e" * 5000
    j.status, j.error = JobStatus.FAILED, "x" * 5000
    embed = render_status(j, utcnow()).embed
    assert len(embed.description) <= 4096 and len(embed) <= 6000
    assert embed.description.count("**failed**") == 7


# -- who may press what ----------------------------------------------------------------------------------


def test_the_requester_an_approver_or_a_server_manager_may_act_and_nobody_else() -> None:
    j = job()
    assert may_act(j, Actor(111, (), False), "Ad approver")
    assert may_act(j, Actor(222, ("ad APPROVER",), False), "Ad approver")
    assert may_act(j, Actor(222, (), True), None)
    assert not may_act(j, Actor(222, ("Ad approver",), False), None)
    assert not may_act(j, Actor(222, ("Member",), False), "Ad approver")
    assert refusal(j, "approve", "Ad approver") == (
        "Only <@111> (who asked for it), members with the **Ad approver** role or members with Manage Server "
        "can approve this ad."
    )


def test_a_button_on_a_job_that_moved_on_says_so() -> None:
    j = job(status=JobStatus.RUNNING)
    assert moved_on(j, "approve") == f"Nothing to approve: job `{j.id}` was already approved and is being generated."
    assert moved_on(j, "cancel") is None
    j.status = JobStatus.CANCELLED
    assert moved_on(j, "cancel") == f"Nothing to cancel: job `{j.id}` was cancelled."


# -- the voice and music lines -----------------------------------------------------------------------


def sounding(n: int = 6) -> Job:
    """A running job made with a voiceover per scene and a music bed, all still queued."""
    j = running(job(n=n))
    assert j.storyboard is not None
    j.providers |= {"voice": "replicate-minimax-tts", "music": "replicate-music"}
    j.scenes = fresh_scene_states(j.id, j.storyboard, kinds=["seed", "clip", "voice"])
    j.job_stages = fresh_job_stages(j.id, kinds=["music"])
    return j


def footage_done(j: Job) -> None:
    for s in j.scenes:
        s.seed.status, s.clip.status, s.normalized_path = StageStatus.DONE, StageStatus.DONE, "x.mp4"


def status_lines(j: Job) -> list[str]:
    return render_status(j, utcnow()).embed.description.splitlines()


def test_the_voice_is_one_line_with_a_count_and_the_music_its_own_line() -> None:
    j = sounding()
    lines = status_lines(j)
    assert lines[2 + 6 :][:2] == ["🎙️ voice · **queued** · 0/6 lines", "🎵 music bed · **queued**"]

    voice = [s.stages["voice"] for s in j.scenes]
    voice[0].status = voice[1].status = StageStatus.DONE
    voice[2].status, voice[2].progress = StageStatus.RUNNING, 50.0
    voice[3].status, voice[3].attempt, voice[3].error = StageStatus.RETRYING, 1, "Replicate is busy: E6716"
    j.job_stages["music"].status, j.job_stages["music"].progress = StageStatus.RUNNING, 40.0
    lines = status_lines(j)
    # (100 + 100 + 50 + 0 + 0 + 0) / 6 = 42 %
    assert lines[8] == (
        "🎙️ voice · **speaking** `█████░░░░░░░` 2/6 lines · 42% · line 4: attempt 1/3 failed, retrying: "
        "Replicate is busy: E6716"
    )
    assert lines[9] == "🎵 music bed · **composing** `█████░░░░░░░` 40%"

    for st in voice:
        st.status = StageStatus.DONE
    j.job_stages["music"].status = StageStatus.DONE
    assert status_lines(j)[8:10] == ["🎙️ voice · **ready** · 6/6 lines", "🎵 music bed · **ready**"]


def test_a_job_made_without_voice_or_music_says_they_are_off() -> None:
    j = running(job())
    assert status_lines(j)[8:10] == ["🔇 voice · **off**", "🔇 music bed · **off**"]


def test_the_final_status_says_which_parts_are_missing_and_why() -> None:
    j = sounding()
    footage_done(j)
    for s in j.scenes:
        s.stages["voice"].status = StageStatus.DONE
    j.scene(3).stages["voice"].status = StageStatus.FAILED
    j.scene(3).stages["voice"].error = "MiniMax refused the line: **bad** characters"
    music = j.job_stages["music"]
    music.status, music.error = StageStatus.FAILED, "the music model refused the prompt (code: E_FLAG)"
    j.status, j.finished_at = JobStatus.COMPLETED, utcnow()
    text = render_status(j, utcnow()).embed.description
    assert "⚠️ voice · **5/6 lines** · ❌ line 3 failed: MiniMax refused the line: \\*\\*bad\\*\\* characters" in text
    assert "❌ music bed · **failed**: the music model refused the prompt \\(code: E\\_FLAG\\)" in text
    assert "⚠️ Made without music: the music model refused the prompt \\(code: E\\_FLAG\\)" in text
    assert "⚠️ Scene 3 made without a voiceover: MiniMax refused the line" in text
    # While the job runs, the lines show the failures, but the verdict waits for the end.
    j.status = JobStatus.RUNNING
    assert "Made without music" not in render_status(j, utcnow()).embed.description


def test_the_overall_bar_waits_for_the_music_bed() -> None:
    j = sounding()
    footage_done(j)
    for s in j.scenes:
        s.stages["voice"].status = StageStatus.DONE
    # Six scenes of weight 5.5 (seed 1, clip 4, voice 0.5) done, the music bed (weight 1) not started.
    assert j.progress == round(6 * 5.5 * 100 / (6 * 5.5 + 1), 1) == 97.1
    assert "**Overall** `████████████` 97%" in render_status(j, utcnow()).embed.description
    j.job_stages["music"].status, j.job_stages["music"].progress = StageStatus.RUNNING, 50.0
    assert j.progress == 98.5
    j.job_stages["music"].status = StageStatus.FAILED  # nothing left to wait for
    assert j.progress == 100.0


def test_seven_scenes_with_every_part_failing_at_length_still_fit_discord() -> None:
    j = sounding(7)
    for s in j.scenes:
        s.seed.status, s.seed.error = StageStatus.FAILED, "e" * 5000
        s.stages["voice"].status, s.stages["voice"].error = StageStatus.FAILED, "v" * 5000
    j.job_stages["music"].status, j.job_stages["music"].error = StageStatus.FAILED, "m" * 5000
    j.status, j.error, j.finished_at = JobStatus.FAILED, "x" * 5000, utcnow()
    embed = render_status(j, utcnow()).embed
    assert len(embed.description) <= 4096 and len(embed) <= 6000
    assert embed.description.count("**failed**") == 8  # seven scenes and the music bed
    assert "❌ voice · **0/7 lines**" in embed.description and "Made without music" in embed.description


# The per-job voice choice (`--voice`, `--no-voice`) and the job's notes come with the orchestrator's
# voice and music wiring; these run once it is in.


def test_the_card_names_the_voice_the_request_asked_for_or_none() -> None:
    j = job(status=JobStatus.AWAITING_APPROVAL)
    j.providers |= {"voice": "replicate-minimax-tts", "music": "replicate-music"}
    j.request = AdRequest(product="Lumen lamp", voice="Calm_Woman")  # type: ignore[call-arg]
    embed = render_storyboard(j, chosen_settings())  # JANT_VOICE_ID=Deep_Voice_Man: the request wins
    assert "**Voice:** Calm\\_Woman · replicate-minimax-tts ·" in embed.description
    assert "voice $0.11" in embed.fields[-1].value
    j.request = AdRequest(product="Lumen lamp", speak=False)  # type: ignore[call-arg]
    embed = render_storyboard(j, chosen_settings())
    assert "**Voice:** no voice ·" in embed.description and "voice" not in embed.fields[-1].value


def test_the_final_status_shows_the_jobs_notes_and_does_not_repeat_them() -> None:
    j = sounding()
    footage_done(j)
    for s in j.scenes:
        s.stages["voice"].status = StageStatus.DONE
    music = j.job_stages["music"]
    music.status, music.error = StageStatus.FAILED, "the music model refused the prompt"
    j.notes = ["The ad has no music: the music model refused the prompt", "Scene 4: a 2 s line sped up 1.1×"]  # type: ignore[attr-defined]
    j.status, j.finished_at = JobStatus.COMPLETED, utcnow()
    lines = status_lines(j)
    assert "⚠️ The ad has no music: the music model refused the prompt" in lines
    assert "⚠️ Scene 4: a 2 s line sped up 1.1×" in lines
    assert not any("Made without music" in line for line in lines)  # the note already says why


def test_the_cost_after_counts_per_unit_billing_without_gpu_time() -> None:
    j = running(job(offline=True))
    assert "*Offline preview: made locally, no API cost.*" in render_status(j, utcnow()).embed.description
    j.cost_usd = 0.11  # JANT_OFFLINE, but the lines were spoken on Replicate: billed per character, no GPU time
    text = render_status(j, utcnow()).embed.description
    assert "\ncost $0.11\n*Offline preview: footage made locally.*" in text and "GPU time" not in text
    j.gpu_seconds, j.cost_usd = 576.0, 0.53
    assert "GPU time 576 s · cost $0.53" in render_status(j, utcnow()).embed.description

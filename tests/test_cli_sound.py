"""What the command line says about the voice and the music: `jant doctor`'s rows for their providers
and settings, `jant show`'s stage of each part, and `jant makead`'s progress notes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import _part_note
from bot.sound_progress import music_progress, voice_progress
from pipeline.config import Settings
from pipeline.models import AdRequest, JobStatus, StageStatus
from pipeline.providers.offline_voice import piper_installed
from pipeline.providers.replicate_voice import minimax_voices
from pipeline.runtime import Runtime
from tests.made_ads import AD_TIMEOUT_S, MadeAd
from tests.test_cli import PRODUCT, jant

FAKE_TOKEN = "r8_fake_token_for_tests_only"


def doctor_rows(tmp_path: Path, **env: str) -> dict[str, tuple[str, str]]:
    """`jant doctor`'s table as {check: (status, detail)}; wrapped cells joined back into one line."""
    result = jant("doctor", cwd=tmp_path, env={"JANT_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "1000", **env})
    assert result.returncode == 0, result.stderr + result.stdout
    rows: dict[str, tuple[str, str]] = {}
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 3 and cells[0]:
            rows[cells[0]] = (cells[1], cells[2])
    return rows


@pytest.mark.skipif(piper_installed(), reason="the jant[voice] extra is installed in this environment")
def test_doctor_says_the_offline_voice_is_missing_and_how_to_install_it(tmp_path: Path) -> None:
    rows = doctor_rows(tmp_path, JANT_VOICE="offline")
    status, detail = rows["voiceovers"]
    assert status == "off" and "pip install 'jant[voice]'" in detail and "captions and music only" in detail
    assert "voice settings" not in rows  # said once, in the voice's own row
    status, detail = doctor_rows(tmp_path, JANT_VOICE="auto")["voiceovers"]  # no token either
    assert status == "off" and "REPLICATE_API_TOKEN is not set" in detail and "pip install 'jant[voice]'" in detail


def test_doctor_says_voice_and_music_are_off_and_why(tmp_path: Path) -> None:
    rows = doctor_rows(tmp_path, JANT_VOICE="none", JANT_MUSIC="none")
    assert rows["voiceovers"] == ("off", "JANT_VOICE=none: the ad has captions and music, no voiceover.")
    assert rows["music beds"] == ("off", "JANT_MUSIC=none: ads are made without a music bed.")


def test_doctor_shows_the_live_voice_and_music_and_lists_the_voices_when_the_id_is_wrong(tmp_path: Path) -> None:
    rows = doctor_rows(tmp_path, REPLICATE_API_TOKEN=FAKE_TOKEN, JANT_VOICE_ID="Nobody_Here")
    assert rows["voiceovers"] == ("live", "replicate-minimax-tts, voice Nobody_Here")
    assert rows["music beds"] == ("live", "replicate-music")
    status, detail = rows["voice settings"]
    assert status == "warning" and "JANT_VOICE_ID='Nobody_Here' is not a MiniMax voice" in detail
    assert detail.endswith("choose one of: " + ", ".join(minimax_voices()))

    rows = doctor_rows(tmp_path, REPLICATE_API_TOKEN=FAKE_TOKEN, JANT_VOICE_ID="Deep_Voice_Man")
    assert rows["voiceovers"] == ("live", "replicate-minimax-tts, voice Deep_Voice_Man")
    assert "voice settings" not in rows


def test_doctor_warns_that_openais_own_speech_models_shut_down(tmp_path: Path) -> None:
    rows = doctor_rows(tmp_path, JANT_VOICE="openai-compatible", JANT_TTS_BASE_URL="https://api.openai.com/v1")
    assert rows["voiceovers"] == ("live", "openai-compatible-tts, voice alloy")
    status, detail = rows["voice settings"]
    assert status == "warning" and "points at OpenAI" in detail and "shut down on 2027-01-06" in detail
    # A self-hosted server that speaks OpenAI's protocol is fine.
    rows = doctor_rows(tmp_path, JANT_VOICE="openai-compatible", JANT_TTS_BASE_URL="http://127.0.0.1:8880/v1")
    assert rows["voiceovers"][0] == "live" and "voice settings" not in rows


def test_doctor_says_the_music_bed_is_synthesised_offline_without_a_token(tmp_path: Path) -> None:
    status, detail = doctor_rows(tmp_path)["music beds"]
    assert status == "offline" and detail.startswith("offline-music — REPLICATE_API_TOKEN is not set")


async def test_show_lists_every_stage_the_music_bed_and_what_the_ad_lacks(tmp_path: Path) -> None:
    data = tmp_path / "data"
    runtime = await Runtime.open(Settings(JANT_DATA_DIR=data))
    try:
        store = runtime.store
        job = await runtime.orchestrator.create_job(AdRequest(product=PRODUCT))
        await runtime.orchestrator.plan(job)
        assert job.storyboard is not None
        await store.set_storyboard(job, job.storyboard, JobStatus.RUNNING, 3, kinds=["seed", "clip", "voice", "music"])
        for scene in job.scenes:
            for stage in scene.stages.values():
                stage.status = StageStatus.DONE
                await store.save_stage(stage)
        voice = job.scene(2).stages["voice"]
        voice.status, voice.attempt, voice.error = StageStatus.FAILED, 3, "MiniMax refused the line [bad characters]"
        await store.save_stage(voice)
        music = job.job_stages["music"]
        music.status, music.error = StageStatus.FAILED, "the music model refused the prompt"
        await store.save_stage(music)
        await store.update(job, status=JobStatus.COMPLETED, cost_usd=0.63, gpu_seconds=576.0)
    finally:
        await runtime.close()
    result = jant("show", job.id, cwd=tmp_path, env={"JANT_DATA_DIR": str(data), "COLUMNS": "400"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "  scene 1: seed done, clip done, voice done" in lines
    assert "  scene 2: seed done, clip done, voice failed: MiniMax refused the line [bad characters]" in lines
    assert "  music bed: music failed: the music model refused the prompt" in lines
    assert "cost $0.63 (GPU time 576.0 s)" in lines
    notes = lines[lines.index("notes:") + 1 :]
    assert notes[:2] == [
        "  Made without music: the music model refused the prompt",
        "  Scene 2 made without a voiceover: MiniMax refused the line [bad characters]",
    ]


def test_a_job_made_before_voice_and_music_shows_them_off(tmp_path: Path) -> None:
    from tests.test_bot_rendering import job, running

    j = running(job())
    assert _part_note(voice_progress(j), "lines") == "[dim]off[/]"
    assert _part_note(music_progress(j), None) == "[dim]off[/]"


def test_makeads_progress_notes_count_the_lines_and_name_what_failed() -> None:
    from tests.test_bot_rendering import sounding

    j = sounding()
    voice = [s.stages["voice"] for s in j.scenes]
    assert _part_note(voice_progress(j), "lines") == "queued 0/6 lines"
    voice[0].status, voice[1].status = StageStatus.DONE, StageStatus.RUNNING
    voice[2].status, voice[2].error = StageStatus.FAILED, "refused [markup]"
    assert _part_note(voice_progress(j), "lines") == r"speaking 1/6 lines [yellow](1 failed: refused \[markup])[/]"
    voice[3].status, voice[3].attempt, voice[3].error = StageStatus.RETRYING, 1, "busy"
    assert _part_note(voice_progress(j), "lines") == "[yellow]line 4: attempt 1/3 failed, retrying: busy[/]"
    for st in voice:
        st.status = StageStatus.DONE if st is not voice[2] else StageStatus.FAILED
    assert _part_note(voice_progress(j), "lines") == r"[yellow]5/6 lines, 1 failed: refused \[markup][/]"
    music = j.job_stages["music"]
    music.status, music.progress = StageStatus.RUNNING, 40.0
    assert _part_note(music_progress(j), None) == "composing" and music_progress(j).percent == 40.0
    music.status, music.error = StageStatus.FAILED, "the music model refused the prompt"
    assert _part_note(music_progress(j), None) == "[red]failed: the music model refused the prompt[/]"


@pytest.mark.timeout(AD_TIMEOUT_S)
def test_makeads_progress_has_a_music_bed_row_that_ends_ready(music_only_ad: MadeAd) -> None:
    result = music_only_ad.result  # `jant makead … --yes` with JANT_VOICE=none (tests/conftest.py)
    assert result.returncode == 0, result.stderr + result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("music bed")]
    assert len(rows) == 1 and "100% ready" in rows[0], result.stdout
    assert not any(line.startswith("voice ") for line in result.stdout.splitlines())  # JANT_VOICE=none: no row

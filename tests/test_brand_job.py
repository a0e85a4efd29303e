"""A team's brand kit on one job (issue 13): the kit a job is approved with stays its kit through a
kit change and a restart; its captions, voice and music choices decide what the ad is made with;
a logo deleted from disk leaves the ad without it and the notes say to upload it again."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError

from bot.cli import brand_lines
from bot.status_view import music_line
from bot.storyboard_embed import voice_label
from pipeline.brand import BrandKit
from pipeline.brand_file import store_logo
from pipeline.captions import CaptionMode
from pipeline.config import Settings
from pipeline.errors import InvalidRequest
from pipeline.job_choices import BRAND_NO_MUSIC_NOTE, JobChoices, job_choices
from pipeline.logo_file import MISSING_LOGO_NOTE, missing_logo_note, usable_logo
from pipeline.models import AdRequest, Job, JobStatus, StageName, StageStatus
from pipeline.moods import Mood
from pipeline.orchestrator import Orchestrator
from pipeline.providers.base import MusicRequest, Providers, StageContext, StageResult
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.store import JobStore
from tests.scripted_providers import CopyComposer, ScriptedImages, ScriptedVideo
from tests.test_voice_timing import MeasuredVoice

PRODUCT = "Lumen, a smart desk lamp that follows your circadian rhythm and dims itself at night"
GUILD = "4242"


# -- the job's effective choices: a pure function of the job and the settings ----------------------


def _job(brand: BrandKit | None = None, **request: object) -> Job:
    return Job(request=AdRequest(product=PRODUCT, **request), brand=brand)  # type: ignore[arg-type]


def test_without_a_kit_the_settings_and_the_request_decide(tmp_path: Path) -> None:
    settings = Settings(JANT_DATA_DIR=tmp_path, JANT_CAPTIONS="plain", JANT_VOICE_ID="Calm_Woman")
    expected = JobChoices(captions=CaptionMode.PLAIN, voice_id="Calm_Woman", music=Mood.LUXURY)
    assert job_choices(_job(mood="luxury"), settings) == expected
    assert job_choices(_job(BrandKit(), mood="luxury"), settings) == expected  # the defaults change nothing
    assert job_choices(_job(mood="luxury", voice="Wise_Woman"), settings).voice_id == "Wise_Woman"


def test_the_kit_overrides_the_settings_and_a_voice_the_request_names_overrides_the_kit(tmp_path: Path) -> None:
    settings = Settings(JANT_DATA_DIR=tmp_path, JANT_CAPTIONS="karaoke", JANT_VOICE_ID="Calm_Woman")
    kit = BrandKit(captions="off", voice="Deep_Voice_Man", music="cinematic")
    expected = JobChoices(CaptionMode.OFF, "Deep_Voice_Man", Mood.CINEMATIC)
    assert job_choices(_job(kit, mood="tech"), settings) == expected
    assert job_choices(_job(kit, voice="Wise_Woman"), settings).voice_id == "Wise_Woman"
    silent = job_choices(_job(BrandKit(music="none")), settings)
    assert silent.music is None and silent.music_off_by_brand
    assert not job_choices(_job(kit), settings).music_off_by_brand


def test_the_kits_music_is_a_mood_or_none() -> None:
    assert BrandKit(music=" Luxury ").music == "luxury" and BrandKit(music="NONE").music == "none"
    with pytest.raises(ValidationError) as refused:
        BrandKit(music="jazz")
    moods = "energetic, luxury, playful, minimal, cinematic, tech"
    assert f"music must be a mood ({moods}) or none (got 'jazz')." in str(refused.value)


# -- the logo on disk -----------------------------------------------------------------------------


def _logo_png(size: int = 200) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (size, size), (250, 160, 10, 255)).save(out, "PNG")
    return out.getvalue()


def test_a_logo_deleted_from_disk_is_not_drawn_and_the_note_says_to_upload_it_again(tmp_path: Path) -> None:
    path = store_logo(_logo_png(), tmp_path)
    kit = BrandKit(logo_path=str(path))
    assert usable_logo(kit) == path and missing_logo_note(kit) is None
    path.write_bytes(b"not a png any more")  # damaged: as good as gone
    assert usable_logo(kit) is None and missing_logo_note(kit) == MISSING_LOGO_NOTE
    path.unlink()
    assert usable_logo(kit) is None and missing_logo_note(kit) == MISSING_LOGO_NOTE
    assert MISSING_LOGO_NOTE == (
        "The ad has no logo: the brand kit's logo file is gone from disk. "
        "Upload it again (/brand logo, or logo = in the brand file)."
    )
    # No logo in the kit, or no kit: nothing is missing.
    assert usable_logo(BrandKit()) is None and missing_logo_note(BrandKit()) is None and missing_logo_note(None) is None


# -- through the orchestrator, with scripted providers ----------------------------------------------


class RecordingMusic:
    """A music bed provider that keeps each request; with `hold` set, it never finishes (a job
    interrupted by a restart while its bed was being composed)."""

    name, offline = "scripted-music", True

    def __init__(self, *, hold: bool = False) -> None:
        self.hold = hold
        self.requests: list[MusicRequest] = []

    async def compose(self, request: MusicRequest, ctx: StageContext) -> StageResult:
        self.requests.append(request)
        if self.hold:
            await asyncio.Event().wait()
        await asyncio.to_thread(request.dest.write_bytes, b"RIFF-music")
        return StageResult(path=request.dest, duration=request.duration)

    async def cancel(self, prediction_id: str) -> None:
        return None


class Harness:
    def __init__(self, settings: Settings, store: JobStore) -> None:
        self.settings, self.store = settings, store
        self.orchestrators: list[Orchestrator] = []

    def orchestrator(self, *, images: ScriptedImages | None = None, **stages: object) -> Orchestrator:
        providers = Providers(
            OfflineStoryboardPlanner(), images or ScriptedImages("seed"), ScriptedVideo("clip"),  # type: ignore[arg-type]
            stages=stages,  # type: ignore[arg-type]
        )  # fmt: skip
        orch = Orchestrator(self.settings, self.store, providers, composer=CopyComposer())  # type: ignore[arg-type]
        self.orchestrators.append(orch)
        return orch

    async def planned(self, orch: Orchestrator, request: AdRequest | None = None) -> Job:
        job = await orch.create_job(request or AdRequest(product=PRODUCT), requester_id="alice", guild_id=GUILD)
        return await orch.plan(job)


@pytest.fixture
async def h(settings: Settings) -> AsyncIterator[Harness]:
    store = await JobStore.open(settings.db_path)
    harness = Harness(settings, store)
    yield harness
    for orch in harness.orchestrators:
        await orch.shutdown()
    await store.close()


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():  # noqa: ASYNC110 - callers bound it with wait_for
        await asyncio.sleep(0.01)


def _captions(orch: Orchestrator) -> set[str]:
    composer: CopyComposer = orch.composer  # type: ignore[assignment]
    return {mode for mode, _ in composer.captions.values()}


async def test_a_kit_changed_after_approval_and_a_restart_do_not_change_the_job(h: Harness) -> None:
    at_approval = BrandKit(name="Lumen", primary="#0a84ff", captions="plain", voice="Calm_Woman", music="luxury")
    await h.store.save_guild_brand(GUILD, at_approval, updated_by="admin")
    stuck = ScriptedImages("seed")
    stuck.gates = {i: asyncio.Event() for i in range(1, 8)}  # seeds never finish: the job is mid-way
    first_music = RecordingMusic(hold=True)
    first = h.orchestrator(images=stuck, voice=MeasuredVoice(), music=first_music)
    job = await h.planned(first)
    await first.approve(job, approved_by="alice")
    await asyncio.wait_for(_until(lambda: bool(first_music.requests) and bool(stuck.calls)), 10)
    assert job.brand == at_approval

    # The team changes its kit while the job runs, then the bot restarts.
    await h.store.save_guild_brand(GUILD, BrandKit(captions="karaoke", voice="Deep_Voice_Man", music="none"))
    await first.shutdown()

    voice, music = MeasuredVoice(), RecordingMusic()
    second = h.orchestrator(voice=voice, music=music)
    [task] = await second.resume_all()
    job = await asyncio.wait_for(task, 15)

    assert job.status is JobStatus.COMPLETED, job.error
    stored = await h.store.get(job.id)
    assert stored is not None and stored.brand == at_approval
    assert _captions(second) == {"plain"}  # the kit's captions, not JANT_CAPTIONS (karaoke) nor the new kit's
    assert [r.mood.mood for r in music.requests] == [Mood.LUXURY]  # the bed re-made after the restart
    assert job.job_stages[StageName.MUSIC].status is StageStatus.DONE
    assert {r.voice_id for r in voice.requests.values()} <= {"Calm_Woman"}
    assert job_choices(stored, h.settings) == JobChoices(CaptionMode.PLAIN, "Calm_Woman", Mood.LUXURY)


async def test_music_none_in_the_kit_means_no_music_stage_and_the_job_says_why(h: Harness) -> None:
    music = RecordingMusic()
    orch = h.orchestrator(music=music)
    job = await h.planned(orch)
    assert StageName.MUSIC in job.job_stages  # planned with a bed: the kit is only known at approval
    job = await asyncio.wait_for(await orch.approve(job, brand=BrandKit(music="none", captions="off")), 15)

    assert job.status is JobStatus.COMPLETED, job.error
    assert music.requests == []  # never asked for, never paid
    stored = await h.store.get(job.id)
    assert stored is not None and StageName.MUSIC not in stored.job_stages and StageName.MUSIC not in job.job_stages
    assert BRAND_NO_MUSIC_NOTE in stored.notes
    assert music_line(stored) == "🔇 music bed · **off** (the brand kit says music = none)"
    composer: CopyComposer = orch.composer  # type: ignore[assignment]
    assert _captions(orch) == {"off"} and all(bed is None for _, bed, _ in composer.mixes)


async def test_a_job_with_no_server_kit_gets_the_defaults(h: Harness) -> None:
    music = RecordingMusic()
    orch = h.orchestrator(music=music)
    job = await h.planned(orch, AdRequest(product=PRODUCT, mood="playful"))
    job = await asyncio.wait_for(await orch.approve(job), 15)
    assert job.brand == BrandKit() and (await h.store.get(job.id)).brand == BrandKit()  # type: ignore[union-attr]
    assert _captions(orch) == {h.settings.audio.captions} and [r.mood.mood for r in music.requests] == [Mood.PLAYFUL]


async def test_a_kit_voice_the_provider_lacks_is_refused_at_approval_and_nothing_runs(h: Harness) -> None:
    voice = MeasuredVoice()
    voice.name = "offline-piper"  # a provider with a fixed list of voices: en_US-joe-medium
    images = ScriptedImages("seed")
    orch = h.orchestrator(images=images, voice=voice)
    job = await h.planned(orch)
    await h.store.save_guild_brand(GUILD, BrandKit(voice="Wise_Woman"))
    with pytest.raises(InvalidRequest) as refused:
        await orch.approve(job)
    assert refused.value.user_message == (
        "The brand kit's voice 'Wise_Woman' is not one of the voices of offline-piper; "
        "set voice to one of: en_US-joe-medium."
    )
    stored = await h.store.get(job.id)
    assert stored is not None and stored.status is JobStatus.AWAITING_APPROVAL and stored.brand is None
    assert images.calls == [] and voice.requests == {}

    # The kit's own voice, when the provider has it, is the one every line is spoken in.
    await h.store.save_guild_brand(GUILD, BrandKit(voice="en_US-joe-medium"))
    job = await asyncio.wait_for(await orch.approve(job), 15)
    assert job.status is JobStatus.COMPLETED and {r.voice_id for r in voice.requests.values()} == {"en_US-joe-medium"}


async def test_a_voice_the_request_names_wins_so_a_bad_kit_voice_does_not_block_it(h: Harness) -> None:
    voice = MeasuredVoice()
    voice.name = "offline-piper"
    orch = h.orchestrator(voice=voice)
    job = await h.planned(orch, AdRequest(product=PRODUCT, voice="en_US-joe-medium"))
    job = await asyncio.wait_for(await orch.approve(job, brand=BrandKit(voice="Wise_Woman")), 15)
    assert job.status is JobStatus.COMPLETED and {r.voice_id for r in voice.requests.values()} == {"en_US-joe-medium"}


async def test_a_deleted_logo_makes_the_ad_without_it_and_says_to_upload_it_again(
    h: Harness, settings: Settings
) -> None:
    logo = store_logo(_logo_png(), settings.storage.data_dir)
    kit = BrandKit(logo_path=str(logo))
    orch = h.orchestrator()
    kept = await asyncio.wait_for(await orch.approve(await h.planned(orch), brand=kit), 15)
    logo.unlink()
    gone = await asyncio.wait_for(await orch.approve(await h.planned(orch), brand=kit), 15)
    assert kept.status is gone.status is JobStatus.COMPLETED
    assert MISSING_LOGO_NOTE not in kept.notes
    assert MISSING_LOGO_NOTE in gone.notes and MISSING_LOGO_NOTE in (await h.store.get(gone.id)).notes  # type: ignore[union-attr]


def test_the_storyboard_card_names_the_kits_voice_once_the_job_has_its_kit(tmp_path: Path) -> None:
    settings = Settings(JANT_DATA_DIR=tmp_path, JANT_VOICE_ID="Calm_Woman")
    job = _job()
    job.providers = {"voice": "replicate-minimax-tts"}
    assert voice_label(job, settings) == "Calm_Woman · replicate-minimax-tts"
    job.brand = BrandKit(voice="Deep_Voice_Man")
    assert voice_label(job, settings) == "Deep_Voice_Man · replicate-minimax-tts"


def test_jant_show_says_which_kit_a_job_was_made_with_and_a_logo_that_is_gone() -> None:
    unrecorded = "brand: none recorded (a job's kit is recorded when it is approved)"
    assert brand_lines(None, logo_on_disk=False) == [unrecorded]
    assert brand_lines(BrandKit(), logo_on_disk=False) == ["brand: the defaults (no brand kit)"]
    kit = BrandKit(name="Lumen", music="none", captions="off", logo_path="/data/brand/logo-1.png")
    lines = brand_lines(kit, logo_on_disk=False)
    assert lines[0] == "brand:" and "  name      Lumen" in lines and "  music     none" in lines
    assert "  captions  off" in lines and "  voice     (JANT_VOICE_ID or the provider's default)" in lines
    assert "  logo      gone from disk (/data/brand/logo-1.png): upload it again" in lines
    assert "  logo      /data/brand/logo-1.png (top-right)" in brand_lines(kit, logo_on_disk=True)

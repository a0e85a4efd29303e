"""Voice and music through the real `replicate` client against the Replicate emulator, the way the
seeds and clips are already proven: what is paid for, kill -9 while it runs, and cancel.

Stories: one ad makes exactly one MiniMax prediction per scene and one Stable Audio prediction per
job, with inputs the emulator accepts for their schemas (the voice asked for, MiniMax told the ad's
language, the music as long as the ad rounded up); a `jant bot` killed with SIGKILL while every line
and the music bed are generating comes back, polls them by their stored ids, and finishes the ad
with zero duplicate creates; cancelling a job cancels its voice and music predictions in flight.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.ffmpeg import probe
from pipeline.models import AdRequest, JobStatus
from pipeline.orchestrator import Orchestrator
from pipeline.runtime import Runtime
from tests.bot_harness import embed_text, eventually
from tests.emulators import media
from tests.emulators.discord_server import DiscordEmulator
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import STABLE_AUDIO_REF, FakeReplicate
from tests.scripted_providers import CopyComposer
from tests.service_fakes import SDXL, SVD, draft, service_env
from tests.test_bot_restart import BotProcess, db_rows, makead_and_approve

pytest_plugins = ["tests.conftest_discord"]  # the discord_emulator fixture

TTS, MUSIC = "minimax/speech-02-turbo", STABLE_AUDIO_REF
VOICE_ID = "Deep_Voice_Man"  # not the provider's default (Wise_Woman): proves the setting is what is sent
SCENES = 5  # the fake GPT-4o's storyboard (tests.service_fakes.draft)
FRENCH = "Lumen — une lampe de bureau qui suit votre rythme circadien et recharge votre téléphone"
SOUND_ENV = {"JANT_VOICE": "replicate", "JANT_MUSIC": "replicate", "JANT_VOICE_ID": VOICE_ID}


def _creates(rep: FakeReplicate, model: str) -> list[dict[str, Any]]:
    """The inputs of the predictions Replicate accepted for `model` (created by model name)."""
    return [rep.predictions[p].input for p in rep.predictions if rep.predictions[p].model.ref == model]


def _ids(rep: FakeReplicate, model: str, status: str | None = None) -> set[str]:
    return {p.id for p in rep.predictions.values() if p.model.ref == model and (status is None or p.status == status)}


async def _until(predicate: Callable[[], bool], limit_s: float = 20.0) -> None:
    async with asyncio.timeout(limit_s):
        while not predicate():  # noqa: ASYNC110 - bounded by the timeout
            await asyncio.sleep(0.01)


async def _open(oai: FakeOpenAI, rep: FakeReplicate, data: Path) -> Runtime:
    """A runtime built from the settings alone, as `jant` builds it; its composer copies bytes (what
    is paid for is the story here; the kill -9 story below composes for real)."""
    rt = await Runtime.open(Settings(**service_env(oai, rep, data), **SOUND_ENV))
    rt.orchestrator = Orchestrator(rt.settings, rt.store, rt.providers, composer=CopyComposer())
    voice, music = rt.providers.get("voice"), rt.providers.get("music")
    assert voice is not None and voice.name == "replicate-minimax-tts", rt.providers.notices
    assert music is not None and music.name == "replicate-music", rt.providers.notices
    return rt


async def _close(rt: Runtime) -> None:
    await rt.close()
    for provider in rt.providers.every():  # the planner too: its client holds connections
        aclose = getattr(provider, "aclose", None)
        if aclose is not None:
            await aclose()


# -- in process: what is paid for, and cancel ----------------------------------------------------------


async def test_one_ad_pays_one_voice_per_scene_and_one_music_bed_with_schema_valid_inputs(
    fakes: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path
) -> None:
    oai, rep = fakes
    oai.responder = lambda body: draft((4, 6, 7, 6.5, 6))  # 29.5 s: the bed must be 30, not 29 or 190
    rt = await _open(oai, rep, tmp_path / "data")
    try:
        orch = rt.orchestrator
        job = await orch.create_job(AdRequest(product=FRENCH, mood="cinematic", language="fr"))
        await orch.plan(job)
        job = await asyncio.wait_for(await orch.approve(job), 60)
        stored = await rt.store.predictions(job.id)
    finally:
        await _close(rt)
    assert job.status is JobStatus.COMPLETED, job.error
    assert job.storyboard is not None and len(job.scenes) == SCENES

    # Exactly one paid line per scene and one bed per job; every create accepted by the schema.
    assert rep.counts.creates[TTS] == SCENES and rep.counts.creates[MUSIC] == 1
    creates = [r for r in rep.requests if r.method == "POST" and r.path.endswith("/predictions")]
    assert {r.status for r in creates} == {201}, [(r.path, r.status) for r in creates]
    assert rep.unknown_inputs == []  # nothing sent that the models would silently ignore
    voices = _creates(rep, TTS)
    assert sorted(v["text"] for v in voices) == sorted(s.voiceover for s in job.storyboard.scenes)
    assert {v["voice_id"] for v in voices} == {VOICE_ID}
    assert {v["language_boost"] for v in voices} == {"French"}
    [music] = _creates(rep, MUSIC)
    assert job.storyboard.total_duration == 29.5
    assert music["duration"] == math.ceil(job.storyboard.total_duration) and isinstance(music["duration"], int)

    # Each of them is the one stored on its stage and in the paid-predictions table.
    assert {s.stages["voice"].prediction_id for s in job.scenes} == _ids(rep, TTS, "succeeded")
    assert {job.job_stages["music"].prediction_id} == _ids(rep, MUSIC, "succeeded")
    assert {p["prediction_id"] for p in stored} == set(rep.predictions) and len(stored) == len(rep.predictions)


async def test_cancelling_a_job_cancels_its_voice_and_music_predictions_in_flight(
    fakes: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path
) -> None:
    oai, rep = fakes
    rep.script_by(lambda model, version, inp: "never" if model in (TTS, MUSIC) else None)  # they hang
    rt = await _open(oai, rep, tmp_path / "data")
    try:
        orch = rt.orchestrator
        job = await orch.create_job(AdRequest(product=FRENCH, mood="playful"))
        await orch.plan(job)
        task = await orch.approve(job)
        await _until(lambda: len(_ids(rep, TTS, "processing")) == SCENES and len(_ids(rep, MUSIC, "processing")) == 1)
        await asyncio.wait_for(orch.cancel(job, by="alice"), 10)
        assert task.cancelled()
        stored = await rt.store.get(job.id)
        paid = {p["prediction_id"]: p["status"] for p in await rt.store.predictions(job.id)}
    finally:
        await _close(rt)
    assert stored is not None and stored.status is JobStatus.CANCELLED
    cancelled = {r.path.split("/")[3] for r in rep.requests if r.path.endswith("/cancel")}
    sound = _ids(rep, TTS) | _ids(rep, MUSIC)
    assert len(sound) == SCENES + 1 and sound <= cancelled
    assert _ids(rep, TTS, "canceled") | _ids(rep, MUSIC, "canceled") == sound
    assert {paid[i] for i in sound} == {"canceled"}
    assert {stored.scene(i).stages["voice"].status.value for i in range(1, SCENES + 1)} == {"cancelled"}
    assert stored.job_stages["music"].status.value == "cancelled"


# -- a real `jant bot` process killed with SIGKILL mid-voice and mid-music ----------------------------

HOLD_S = 3.0  # wall seconds every line, the bed and the seeds stay "processing": the window to kill in


@pytest.fixture
async def held() -> AsyncIterator[tuple[FakeOpenAI, FakeReplicate]]:
    """The emulators, Replicate 10x faster, with voice, music and seeds held long enough to kill the bot
    while all of them run and no create is in flight (a create cut off mid-request is a different story)."""
    await media.mp4_bytes(576, 1024, 14, 7)  # warm the emulator's encode cache
    async with FakeOpenAI() as oai, FakeReplicate(time_factor=0.1) as rep:
        oai.responder = lambda body: draft()
        for model in (TTS, MUSIC, SDXL):
            rep.set_latency(model, processing=HOLD_S / rep.time_factor)
        rep.set_latency(SVD, processing=1.0 / rep.time_factor)
        yield oai, rep


def _bot_env(emu: DiscordEmulator, oai: FakeOpenAI, rep: FakeReplicate, data: Path) -> dict[str, str]:
    assert emu.guild is not None
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REPLICATE_", "JANT_", "DISCORD_"))}
    return {
        **base, **emu.env(), **service_env(oai, rep, data), **SOUND_ENV,
        "JANT_DISCORD_GUILD_IDS": str(emu.guild.id), "JANT_ENV": "dev",
        "JANT_SVD_VIDEO_LENGTH": "14_frames_with_svd", "JANT_CLIP_DEADLINE_S": "30",
        "JANT_STATUS_EDIT_INTERVAL_S": "0.2", "JANT_STATUS_HEARTBEAT_S": "0",
    }  # fmt: skip


async def _sound_in_flight(db: Path, rep: FakeReplicate, job_id: str) -> bool:
    """Every line, the bed and every seed is a prediction generating on Replicate, its id stored."""
    rows = await asyncio.to_thread(
        db_rows, db, "SELECT stage, prediction_id FROM stages WHERE job_id = ? AND status = 'running'"
        " AND prediction_id IS NOT NULL", job_id,
    )  # fmt: skip
    by_kind: dict[str, set[str]] = {}
    for kind, pid in rows:
        by_kind.setdefault(kind, set()).add(pid)
    wanted = {"voice": SCENES, "music": 1, "seed": SCENES}
    if any(len(by_kind.get(kind, ())) != n for kind, n in wanted.items()):
        return False
    ids = set().union(*(by_kind[k] for k in wanted))
    return all(i in rep.predictions and rep.predictions[i].status == "processing" for i in ids)


async def test_a_kill_9_mid_voice_and_music_resumes_them_with_zero_duplicate_creates(
    discord_emulator: DiscordEmulator, held: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path
) -> None:
    emu, (oai, rep) = discord_emulator, held
    data = tmp_path / "data"
    env, db = _bot_env(emu, oai, rep, data), data / "jant.db"

    first = await BotProcess(env, tmp_path).start(emu)
    try:
        _, job_id, _ = await makead_and_approve(emu)
        await eventually(lambda: _sound_in_flight(db, rep, job_id), what="every line and the bed generating")
        first.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        assert await first.wait(10) == -signal.SIGKILL
    finally:
        await first.stop()
    [(ui,)] = await asyncio.to_thread(db_rows, db, "SELECT ui_json FROM jobs WHERE id = ?", job_id)
    killed_mid = {p.id for p in rep.predictions.values() if p.model.ref in (TTS, MUSIC) and p.status == "processing"}
    assert len(killed_mid) == SCENES + 1  # the kill came while every one of them was generating
    before = rep.counts.creates.copy()

    second = await BotProcess(env, tmp_path).start(emu)
    try:
        status_id = json.loads(ui)["status_message_id"]
        await emu.wait_for(lambda: "✅ **Done.**" in embed_text(emu.message(status_id)), timeout=60,
                           description="the status message to reach its final state")  # fmt: skip
        [(status_now,)] = await asyncio.to_thread(db_rows, db, "SELECT status FROM jobs WHERE id = ?", job_id)
        assert status_now == "completed", second.log
    finally:
        second.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        await second.wait(10)
        await second.stop()

    # Zero duplicate creates: the lines and the bed were polled by their stored ids to the end.
    assert before == {TTS: SCENES, MUSIC: 1, SDXL: SCENES}  # the clips wait for the (held) seeds
    assert rep.counts.creates == {TTS: SCENES, MUSIC: 1, SDXL: SCENES, SVD: SCENES}  # only the clips are new
    assert killed_mid == _ids(rep, TTS, "succeeded") | _ids(rep, MUSIC, "succeeded")
    stored = await asyncio.to_thread(
        db_rows, db, "SELECT scene_index, stage, prediction_id, status FROM predictions WHERE job_id = ?", job_id
    )
    assert {r[2] for r in stored} == set(rep.predictions) and len(stored) == len(rep.predictions)
    sound = {(r[0], r[1]): r[2] for r in stored if r[1] in ("voice", "music")}
    assert set(sound) == {(i, "voice") for i in range(1, SCENES + 1)} | {(0, "music")}
    assert set(sound.values()) == killed_mid and {r[3] for r in stored} == {"succeeded"}
    stages = await asyncio.to_thread(
        db_rows, db, "SELECT stage, status, attempt FROM stages WHERE job_id = ? AND stage IN ('voice', 'music')",
        job_id,
    )  # fmt: skip
    assert sorted(stages) == [("music", "done", 1)] + [("voice", "done", 1)] * SCENES
    # And the ad that was made carries the sound that was paid for.
    [(final,)] = await asyncio.to_thread(db_rows, db, "SELECT final_path FROM jobs WHERE id = ?", job_id)
    assert (await probe(final)).has_audio

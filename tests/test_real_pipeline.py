"""The real provider path end to end: orchestrator → GPT-4o planner → SDXL → SVD → composer → final.mp4,
with the real `openai` and `replicate` clients talking to the local emulators (the composer at a
small 9:16; `jant makead --yes` makes the profile's size).

Stories: Replicate throttles a create, errors on polls and leaves one clip hanging, and the ad
still arrives, with one paid create per scene per attempt and the GPU time booked; a seed the
safety checker rejects fails only its scene, once, with the reason stored; `jant makead --yes`
makes a real-path ad from the terminal.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.models import AdRequest, JobStatus, StageStatus
from pipeline.runtime import Runtime
from tests.emulators import media
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import SDXL_VERSION, SVD_VERSION, FakeReplicate
from tests.service_fakes import SDXL, SVD, open_small_runtime, service_env

PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm, dims at night and charges your phone"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
async def runtime(fakes: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(**service_env(*fakes, tmp_path / "data"))
    rt = await open_small_runtime(settings)
    assert rt.providers.notices == [] and not rt.providers.offline
    yield rt
    await _close(rt)


async def test_throttling_poll_errors_and_a_stuck_clip_still_deliver_the_ad(
    fakes: tuple[FakeOpenAI, FakeReplicate], runtime: Runtime
) -> None:
    oai, rep = fakes
    rep.fail_create(429, retry_after=0.1)  # the first create is throttled
    rep.fail_get(500, times=2)  # two polls hit a server error
    rep.script(SVD_VERSION, "never")  # the first clip hangs until its 3 s deadline
    orch = runtime.orchestrator
    job = await orch.create_job(AdRequest(product=PRODUCT, mood="cinematic", audience="night owls"))
    await orch.plan(job)
    assert job.storyboard is not None and job.storyboard.title == "Lumen: light that knows the time"
    job = await asyncio.wait_for(await orch.approve(job), 60)

    assert job.status is JobStatus.COMPLETED, job.error
    final = Path(job.final_path or "")
    assert final.name == "final.mp4" and media.has_ftyp(await asyncio.to_thread(final.read_bytes))
    n = len(job.scenes)

    # 429 on create: refused before anything was created, retried as attempt 2 of that stage (a seed,
    # a voice or the music bed: they start together). Creates by version and by official model's name.
    creates = [r for r in rep.requests if r.method == "POST" and r.path.endswith("/predictions")]
    assert creates[0].status == 429
    first_wave = [st.attempt for st in job.all_stages() if st.stage != "clip"]
    assert sorted(first_wave) == [1] * (len(first_wave) - 1) + [2]
    # 500 on poll: absorbed by the poll loop, no attempt spent on it.
    assert [r.status for r in rep.requests if r.method == "GET" and r.status == 500] == [500, 500]
    # The stuck clip: cancelled at its deadline, then made again.
    (cancel,) = [r for r in rep.requests if r.path.endswith("/cancel")]
    stuck = cancel.path.split("/")[3]
    assert rep.prediction(stuck)["status"] == "canceled"
    assert sorted(s.clip.attempt for s in job.scenes) == [1] * (n - 1) + [2]

    # No duplicate spend: every prediction Replicate created is one stored (job, scene, stage, attempt).
    stored = await runtime.store.predictions(job.id)
    assert {p["prediction_id"] for p in stored} == set(rep.predictions)
    assert len(stored) == len(rep.predictions) == sum(1 for r in creates if r.status == 201)
    assert rep.counts.creates[SDXL] == n and rep.counts.creates[SVD] == n + 1
    assert {p["prediction_id"]: p["status"] for p in stored}[stuck] == "failed"

    # What was sent: dev-size seeds, portrait clips.
    sdxl_inputs = [r.json["input"] for r in creates if r.status == 201 and r.json.get("version") == SDXL_VERSION]
    assert {(i["width"], i["height"], i["num_inference_steps"]) for i in sdxl_inputs} == {(640, 1136, 20)}
    svd_inputs = [r.json["input"] for r in creates if r.status == 201 and r.json.get("version") == SVD_VERSION]
    assert {(i["sizing_strategy"], i["video_length"]) for i in svd_inputs} == {
        ("use_image_dimensions", "25_frames_with_svd_xt")
    }

    # Cost: predict_time of every succeeded prediction is stored and summed into the job; seeds and
    # clips are priced by GPU time, the voice by its characters and the music bed per run.
    succeeded = [p for p in stored if p["status"] == "succeeded"]
    assert len(succeeded) == 3 * n + 1 and all(p["predict_time"] > 0 for p in succeeded)
    gpu = sum(rep.prediction(p["prediction_id"])["metrics"]["predict_time"] for p in succeeded)
    assert job.gpu_seconds == pytest.approx(gpu, abs=0.01) and job.gpu_seconds > 0
    audio = runtime.settings.audio
    timed = sum(p["predict_time"] for p in succeeded if p["stage"] in ("seed", "clip"))
    chars = sum(len(rep.prediction(p["prediction_id"])["input"]["text"]) for p in succeeded if p["stage"] == "voice")
    expected = timed * runtime.settings.price_per_gpu_second + chars * audio.tts_price_per_1k_chars / 1000
    assert job.cost_usd == pytest.approx(expected + audio.music_price_per_run, abs=1e-3)
    reloaded = await runtime.store.get(job.id)
    assert reloaded is not None and reloaded.gpu_seconds == job.gpu_seconds
    assert all(s.seed.seed is not None and s.clip.seed is not None for s in reloaded.scenes)
    assert len(oai.chat_requests) == 1


async def test_an_unsafe_seed_fails_only_its_scene_once_with_the_reason_stored(
    fakes: tuple[FakeOpenAI, FakeReplicate], runtime: Runtime
) -> None:
    _, rep = fakes
    rep.script_by(lambda model, version, inp: "fail_nsfw" if "SCENE-2 " in inp.get("prompt", "") else None)
    orch = runtime.orchestrator
    job = await orch.create_job(AdRequest(product=PRODUCT, mood="tech"))
    await orch.plan(job)
    job = await asyncio.wait_for(await orch.approve(job), 60)

    assert job.status is JobStatus.PARTIAL and job.final_path
    assert await asyncio.to_thread(Path(job.final_path).exists)
    scene2 = [r for r in rep.requests if r.method == "POST" and "SCENE-2 " in str(r.json)]
    assert len(scene2) == 1  # no retry of a safety rejection
    stored = await runtime.store.get(job.id)
    assert stored is not None
    assert stored.scene(2).seed.status is StageStatus.FAILED
    assert "NSFW content detected" in (stored.scene(2).seed.error or "")
    assert stored.scene(2).clip.status is StageStatus.FAILED  # skipped, with a reason
    assert "scene 2" in (stored.error or "") and "NSFW" in (stored.error or "")
    assert all(stored.scene(i).done for i in (1, 3, 4, 5))
    assert rep.counts.creates[SDXL] == 5 and rep.counts.creates[SVD] == 4


async def test_jant_makead_yes_runs_the_real_path(fakes: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path) -> None:
    oai, rep = fakes
    data_dir = tmp_path / "cli-data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REPLICATE_", "JANT_", "DISCORD_"))}
    env.update(service_env(oai, rep, data_dir), PYTHONPATH=str(REPO), COLUMNS="120")
    # The emulators live in this event loop, so the CLI runs as an async subprocess.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "makead", PRODUCT, "--mood", "minimal", "--yes",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    except TimeoutError:
        proc.kill()
        raise
    text = out.decode() + err.decode()
    assert proc.returncode == 0, text
    (final,) = data_dir.glob("jobs/*/final.mp4")
    assert media.has_ftyp(final.read_bytes())
    assert "offline" not in err.decode().lower() and "completed" in text
    assert len(oai.chat_requests) == 1 and rep.counts.creates[SDXL] == 5 and rep.counts.creates[SVD] == 5
    assert "GPU time" in text


async def _until(predicate: Callable[[], bool], limit_s: float = 20.0) -> None:
    async with asyncio.timeout(limit_s):
        while not predicate():  # noqa: ASYNC110 - bounded by the timeout
            await asyncio.sleep(0.01)


def _svd_ids(rep: FakeReplicate, status: str | None = None) -> set[str]:
    return {p.id for p in rep.predictions.values() if p.model.ref == SVD and (status is None or p.status == status)}


async def test_cancelling_a_job_cancels_its_running_predictions(
    fakes: tuple[FakeOpenAI, FakeReplicate], runtime: Runtime
) -> None:
    _, rep = fakes
    rep.script_by(lambda model, version, inp: "never" if model == SVD else None)  # every clip hangs
    orch = runtime.orchestrator
    job = await orch.create_job(AdRequest(product=PRODUCT, mood="playful"))
    await orch.plan(job)
    task = await orch.approve(job)
    await _until(lambda: len(_svd_ids(rep, "processing")) == len(job.scenes))
    await asyncio.wait_for(orch.cancel(job, by="alice"), 10)
    assert task.cancelled()
    stored = await runtime.store.get(job.id)
    assert stored is not None and stored.status is JobStatus.CANCELLED
    cancelled = {r.path.split("/")[3] for r in rep.requests if r.path.endswith("/cancel")}
    assert _svd_ids(rep) == _svd_ids(rep, "canceled") <= cancelled  # every paid clip…
    # …and whatever else was still in flight (a voice, the music bed), never a finished seed.
    assert not any(rep.predictions[i].model.ref == SDXL for i in cancelled)


async def test_a_restart_resumes_polling_instead_of_paying_again(
    fakes: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path
) -> None:
    oai, rep = fakes
    rep.set_latency(SVD, processing=15.0)  # ≈1.5 s per clip: the bot restarts while they run
    settings = Settings(**service_env(oai, rep, tmp_path / "data"))
    first = await open_small_runtime(settings)
    job = await first.orchestrator.create_job(AdRequest(product=PRODUCT, mood="minimal"))
    await first.orchestrator.plan(job)
    await first.orchestrator.approve(job)
    await _until(lambda: len(_svd_ids(rep, "processing")) == len(job.scenes))
    await _close(first)  # shutdown: tasks stop, predictions keep running on Replicate
    assert _svd_ids(rep, "processing") == _svd_ids(rep) and rep.counts.cancels == 0
    creates_before = rep.counts.total_creates

    second = await open_small_runtime(settings)
    try:
        (task,) = await second.orchestrator.resume_all()
        done = await asyncio.wait_for(task, 60)
    finally:
        await _close(second)
    assert done.status is JobStatus.COMPLETED, done.error
    assert rep.counts.total_creates == creates_before  # the same predictions, polled to the end
    assert {s.clip.prediction_id for s in done.scenes} == _svd_ids(rep, "succeeded")


async def _close(rt: Runtime) -> None:
    await rt.close()
    for provider in (rt.providers.planner, rt.providers.images, rt.providers.video):
        await provider.aclose()  # type: ignore[attr-defined]

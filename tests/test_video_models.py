"""The video-model registry through the real `replicate` client and the local Replicate emulator.

Stories: each entry is created at the right endpoint (an official model by name, SVD by version)
with inputs its schema accepts, and its clip comes back at the model's own frame rate, length and
size; a fixed-length model's clip is played at its own speed and cut, never stretched over a longer
scene; a job made with Wan has six scenes of at most one clip each and an ad of 29–31 s; a model
Replicate no longer has fails its stage once, naming the setting to change; a model the server does
not allow, or one that does not exist, is refused before anything is created.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pipeline.brand import GuildPolicy
from pipeline.composer import Composer
from pipeline.config import Settings
from pipeline.errors import InvalidRequest, ProviderError
from pipeline.ffmpeg import probe, run_ffmpeg
from pipeline.models import TOTAL_MAX_S, TOTAL_MIN_S, AdRequest, JobStatus, StageName, StageStatus, Storyboard
from pipeline.moods import mood_preset
from pipeline.providers.base import ClipRequest, StageContext
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.providers.offline_video import OfflineVideoGenerator
from pipeline.providers.replicate_media import ReplicateVideoGenerator
from pipeline.retry import classify
from pipeline.runtime import Runtime
from pipeline.video_models import VIDEO_MODELS, VideoModel, choose_video_model
from pipeline.video_scenes import fit_to_clip_length
from tests.emulators import media
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import SVD_VERSION, WAN_REF, FakeReplicate
from tests.service_fakes import SDXL, open_small_runtime, service_env
from tests.test_openai_planner import draft

PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm, dims at night and charges your phone"
ENTRIES = list(VIDEO_MODELS.values())


@pytest.fixture
async def fake() -> AsyncIterator[FakeReplicate]:
    async with FakeReplicate(time_factor=0.1) as f:
        yield f


def settings_for(fake: FakeReplicate, tmp_path: Path, **env: str) -> Settings:
    values = {
        "REPLICATE_API_TOKEN": FakeReplicate.API_TOKEN, "REPLICATE_BASE_URL": fake.base_url,
        "JANT_ALLOWED_MEDIA_HOSTS": "127.0.0.1", "JANT_POLL_INTERVAL_S": "0.01", "JANT_CLIP_DEADLINE_S": "30",
        **env,
    }  # fmt: skip
    return Settings(JANT_DATA_DIR=tmp_path / "data", **values)


async def storyboard() -> Storyboard:
    return await OfflineStoryboardPlanner().plan(AdRequest(product=PRODUCT, mood="luxury"))


def clip_request(board: Storyboard, model: VideoModel, tmp_path: Path) -> ClipRequest:
    seed = tmp_path / "seed-1.png"
    seed.write_bytes(media.png_bytes(768, 1344, seed=3))  # SDXL's 9:16 bucket, as the seed stage paints it
    width, height = model.input_size
    mood = mood_preset("luxury")
    return ClipRequest(
        scene=board.scenes[0], mood=mood, seed_image=seed, dest=tmp_path / "clip-1.mp4", width=width,
        height=height, motion_bucket_id=mood.motion_bucket_id, model=model.key,
    )  # fmt: skip


def ctx(progress: list[tuple[float, str | None]], recorded: list[str]) -> StageContext:
    async def on_progress(percent: float, note: str | None) -> None:
        progress.append((percent, note))

    async def on_prediction(pid: str) -> None:
        recorded.append(pid)

    return StageContext(
        job_id="j1", scene_index=1, stage=StageName.CLIP, attempt=1, on_progress=on_progress,
        on_prediction=on_prediction,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ the data


def test_every_entry_names_its_endpoint_its_inputs_and_a_price() -> None:
    assert set(VIDEO_MODELS) == {"svd", "wan-2.2-i2v-fast", "kling-v2.1", "hailuo-02"}
    svd = VIDEO_MODELS["svd"]
    assert not svd.official and svd.version == SVD_VERSION and svd.retimes and svd.fps == 7
    assert svd.clip_price_usd(4.0, usd_per_gpu_second=0.001) == pytest.approx(0.075)
    for model in ENTRIES[1:]:
        assert model.official and not model.retimes and model.usable
        inputs = model.inputs(image="data:image/jpeg;base64,AA", prompt="a lamp", seed=7)
        assert inputs[model.image_input] == "data:image/jpeg;base64,AA" and inputs["prompt"] == "a lamp"
        assert ("seed" in inputs) == model.takes_seed
        assert 0 < model.clip_price_usd(model.clip_seconds) < 1
    assert VIDEO_MODELS["wan-2.2-i2v-fast"].clip_seconds == pytest.approx(81 / 16)
    assert VIDEO_MODELS["kling-v2.1"].allowed_seconds == (5.0, 10.0)
    assert VIDEO_MODELS["hailuo-02"].clip_price_usd(6) == pytest.approx(0.48)  # $0.08/s at 1080p


@pytest.mark.parametrize("model", ENTRIES[1:], ids=lambda m: m.key)
def test_scene_lengths_fit_the_clip_and_the_ad_stays_29_to_31_s(model: VideoModel) -> None:
    for plan in ([4, 5, 5, 5, 5, 6], [3, 5, 4, 4, 4, 4, 6], [3.5, 5, 5.5, 5.5, 5.5, 5.0], [8, 8, 6, 4, 4]):
        fitted = fit_to_clip_length([float(d) for d in plan], model)
        if len(plan) * model.scene_max_s < TOTAL_MIN_S:
            assert fitted is None  # five 5 s scenes cannot make 29 s
            continue
        assert fitted is not None and len(fitted) == len(plan)
        assert all(d <= model.scene_max_s for d in fitted), fitted
        assert TOTAL_MIN_S <= round(sum(fitted), 2) <= TOTAL_MAX_S, fitted
    assert fit_to_clip_length([4, 5, 5, 5, 5, 6], VIDEO_MODELS["svd"]) == [4, 5, 5, 5, 5, 6]  # SVD: the plan


def test_a_model_not_allowed_or_unknown_is_refused_with_what_can_be_chosen() -> None:
    allowed = ("svd", "wan-2.2-i2v-fast")
    assert choose_video_model(None, default="svd", allowed=allowed).key == "svd"
    assert choose_video_model("WAN-2.2-i2v-fast", default="svd", allowed=allowed).key == "wan-2.2-i2v-fast"
    with pytest.raises(ValueError) as gone:
        choose_video_model("sora", default="svd", allowed=allowed)
    assert str(gone.value) == "There is no video model called 'sora'. Choose one of: svd, wan-2.2-i2v-fast."
    with pytest.raises(ValueError) as refused:
        choose_video_model("kling-v2.1", default="svd", allowed=allowed)
    assert str(refused.value).startswith("Kling 2.1 (kling-v2.1) is not allowed on this server; allowed: svd, wan")


# ------------------------------------------------------------------------------------------ every entry, real client


@pytest.mark.parametrize("model", ENTRIES, ids=lambda m: m.key)
async def test_each_entry_is_created_at_its_endpoint_with_valid_inputs_and_returns_its_real_clip(
    fake: FakeReplicate, tmp_path: Path, model: VideoModel
) -> None:
    gen = ReplicateVideoGenerator(settings_for(fake, tmp_path))
    progress: list[tuple[float, str | None]] = []
    recorded: list[str] = []
    try:
        result = await gen.animate(clip_request(await storyboard(), model, tmp_path), ctx(progress, recorded))
    finally:
        await gen.aclose()
    (create,) = [r for r in fake.requests if r.method == "POST" and r.path.endswith("/predictions")]
    if model.official:
        assert create.path == f"/v1/models/{model.model_ref}/predictions" and "version" not in create.json
    else:
        assert create.path == "/v1/predictions" and create.json["version"] == model.version
    assert create.status == 201  # the schema accepted every input (a 422 otherwise)
    assert [key for ref, key in fake.unknown_inputs if ref == model.model_ref] == []  # and none was ignored
    sent = create.json["input"]
    assert sent[model.image_input].startswith("data:image/jpeg;base64,")
    image = media.decode_data_uri(sent[model.image_input])[1]
    assert media.image_size(image) == model.input_size  # the 768x1344 seed, resized for this model
    assert recorded == [result.prediction_id]
    info = await probe(result.path, count_frames=True)
    assert (info.width, info.height) == model.output_size
    assert info.fps == pytest.approx(model.fps) and info.frames == model.clip.frames
    assert [p for p, _ in progress] == sorted(p for p, _ in progress)
    assert result.cost_usd == model.clip.usd


async def _frame(path: Path, seconds: float, dest: Path, size: tuple[int, int]) -> bytes:
    """The frame shown at `seconds`, as raw grey pixels at `size`."""
    await run_ffmpeg(["-ss", f"{seconds:.3f}", "-i", str(path), "-frames:v", "1",
                      "-vf", f"scale={size[0]}:{size[1]},format=gray", "-f", "rawvideo", str(dest)])  # fmt: skip
    return await asyncio.to_thread(dest.read_bytes)


def _difference(a: bytes, b: bytes) -> float:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


@pytest.mark.parametrize("key", ["wan-2.2-i2v-fast", "kling-v2.1", "hailuo-02"])
async def test_a_fixed_length_clip_is_played_at_its_own_speed_never_stretched(
    fake: FakeReplicate, tmp_path: Path, key: str
) -> None:
    model = VIDEO_MODELS[key]
    gen = ReplicateVideoGenerator(settings_for(fake, tmp_path))
    try:
        result = await gen.animate(clip_request(await storyboard(), model, tmp_path), ctx([], []))
    finally:
        await gen.aclose()
    source = await probe(result.path, count_frames=True)
    assert source.frames and source.fps
    composer = Composer(360, 640)
    clip_s = source.frames / source.fps
    assert clip_s == pytest.approx(model.clip_seconds)
    full = await composer.normalize_clip(
        result.path, tmp_path / "full.mp4", model.scene_max_s, captions="off", retime=False
    )  # the longest scene this model may have: the whole clip, at its own speed
    assert (await probe(full, count_frames=True)).frames == round(model.scene_max_s * composer.fps)
    scene = 4.0  # a scene the voice fitting made shorter than the clip: the clip is cut, not squeezed
    out = await composer.normalize_clip(result.path, tmp_path / "scene-1.mp4", scene, captions="off", retime=False)
    made = await probe(out, count_frames=True)
    assert made.frames == round(scene * composer.fps)
    # By looking: 3 s into the scene is 3 s into the clip (testsrc2 draws a moving pattern and a
    # clock), not 3 s x (clip / scene) as retiming the clip to the scene would show.
    size = (90, 160)
    shown = await _frame(out, 3.0, tmp_path / "out.gray", size)
    same = await _frame(result.path, 3.0, tmp_path / "src-same.gray", size)
    retimed = await _frame(result.path, 3.0 * clip_s / scene, tmp_path / "src-retimed.gray", size)
    assert _difference(shown, same) < _difference(shown, retimed) / 3
    # SVD's way, for contrast: the same composer retiming the clip shows the other frame.
    squeezed = await composer.normalize_clip(result.path, tmp_path / "squeezed.mp4", scene, captions="off")
    other = await _frame(squeezed, 3.0, tmp_path / "squeezed.gray", size)
    assert _difference(other, retimed) < _difference(other, same) / 3


@pytest.mark.parametrize("model", ENTRIES, ids=lambda m: m.key)
async def test_the_offline_clip_has_the_models_shape(tmp_path: Path, model: VideoModel) -> None:
    if model.key == "hailuo-02":
        pytest.skip("a 1080x1920 offline clip takes ~20 s on two cores; its shape comes from the same code")
    result = await OfflineVideoGenerator().animate(clip_request(await storyboard(), model, tmp_path), ctx([], []))
    info = await probe(result.path, count_frames=True)
    assert info.frames == model.clip.frames and info.fps == pytest.approx(model.fps)
    assert (info.width, info.height) == model.output_size


# ------------------------------------------------------------------------------------------ gone models


async def test_a_model_replicate_no_longer_has_fails_naming_the_setting_and_is_not_retried(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    del fake.models[WAN_REF]  # renamed or removed upstream
    gen = ReplicateVideoGenerator(settings_for(fake, tmp_path))
    try:
        with pytest.raises(ProviderError) as ei:
            await gen.animate(clip_request(await storyboard(), VIDEO_MODELS["wan-2.2-i2v-fast"], tmp_path), ctx([], []))
    finally:
        await gen.aclose()
    decision = classify(ei.value)
    assert not decision.retry
    assert "does not have the model wan-video/wan-2.2-i2v-fast (404" in str(ei.value)
    assert "set JANT_VIDEO_MODEL to one that exists" in str(ei.value)
    assert [r.status for r in fake.requests if r.method == "POST"] == [404]


async def test_a_gone_svd_version_names_jant_svd_version(fake: FakeReplicate, tmp_path: Path) -> None:
    gen = ReplicateVideoGenerator(settings_for(fake, tmp_path, JANT_SVD_VERSION="f" * 64))
    try:
        with pytest.raises(ProviderError) as ei:
            await gen.animate(clip_request(await storyboard(), VIDEO_MODELS["svd"], tmp_path), ctx([], []))
    finally:
        await gen.aclose()
    assert not classify(ei.value).retry and "set JANT_SVD_VERSION" in str(ei.value)


# ------------------------------------------------------------------------------------------ whole jobs


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeOpenAI, FakeReplicate]]:
    async with FakeOpenAI() as oai, FakeReplicate(time_factor=0.1) as rep:
        oai.responder = lambda body: draft()
        yield oai, rep


@pytest.fixture
async def runtime(fakes: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path) -> AsyncIterator[Runtime]:
    env = service_env(*fakes, tmp_path / "data") | {"JANT_CLIP_DEADLINE_S": "30", "JANT_VOICE": "none",
                                                     "JANT_MUSIC": "none"}  # fmt: skip
    rt = await open_small_runtime(Settings(**env))  # lengths and frame counts are under test here, not the size
    yield rt
    await rt.close()


async def test_a_wan_job_has_clip_long_scenes_and_an_ad_of_29_to_31_s(
    fakes: tuple[FakeOpenAI, FakeReplicate], runtime: Runtime
) -> None:
    _, rep = fakes
    orch = runtime.orchestrator
    job = await orch.create_job(AdRequest(product=PRODUCT, model="wan-2.2-i2v-fast"))
    assert job.request.model == "wan-2.2-i2v-fast"
    await orch.plan(job)
    assert job.storyboard is not None
    durations = [s.duration for s in job.storyboard.scenes]
    assert durations == [4.7, 5.06, 5.06, 5.06, 5.06, 5.06]  # the planned 4/5/5/5/5/6, none past one clip
    job = await asyncio.wait_for(await orch.approve(job), 120)
    assert job.status is JobStatus.COMPLETED, job.error
    assert rep.counts.creates[WAN_REF] == 6 and rep.counts.creates[SDXL] == 6
    assert rep.counts.creates["stability-ai/stable-video-diffusion"] == 0
    final = await probe(Path(job.final_path or ""), count_frames=True)
    assert final.duration_s is not None and TOTAL_MIN_S - 0.1 <= final.duration_s <= TOTAL_MAX_S + 0.1
    for scene in job.scenes:
        clip = await probe(Path(scene.clip.path or ""), count_frames=True)
        made = await probe(Path(scene.normalized_path or ""), count_frames=True)
        assert clip.frames == 81 and clip.fps == 16
        assert made.frames and made.fps and made.frames / made.fps <= clip.frames / clip.fps + 1 / made.fps


async def test_a_model_the_server_does_not_allow_is_refused_before_anything_is_made(
    fakes: tuple[FakeOpenAI, FakeReplicate], runtime: Runtime
) -> None:
    oai, rep = fakes
    await runtime.store.save_guild_policy("g1", GuildPolicy(allowed_video_models=("svd",)))
    orch = runtime.orchestrator
    with pytest.raises(InvalidRequest) as refused:
        await orch.create_job(AdRequest(product=PRODUCT, model="kling-v2.1"), guild_id="g1")
    assert "Kling 2.1 (kling-v2.1) is not allowed on this server; allowed: svd." in refused.value.user_message
    with pytest.raises(InvalidRequest) as unknown:
        await orch.create_job(AdRequest(product=PRODUCT, model="veo-9"), guild_id="g2")
    assert "There is no video model called 'veo-9'" in unknown.value.user_message
    allowed_elsewhere = await orch.create_job(AdRequest(product=PRODUCT, model="kling-v2.1"), guild_id="g2")
    assert allowed_elsewhere.request.model == "kling-v2.1"
    default = await orch.create_job(AdRequest(product=PRODUCT), guild_id="g1")
    assert default.request.model == "svd"  # JANT_VIDEO_MODEL's, stored with the job
    assert rep.requests == [] and oai.chat_requests == []  # nothing asked, nothing paid


async def test_a_gone_model_fails_the_clip_stage_once_with_the_setting_named(
    fakes: tuple[FakeOpenAI, FakeReplicate], runtime: Runtime
) -> None:
    _, rep = fakes
    del rep.models[WAN_REF]
    orch = runtime.orchestrator
    job = await orch.create_job(AdRequest(product=PRODUCT, model="wan-2.2-i2v-fast"))
    await orch.plan(job)
    job = await asyncio.wait_for(await orch.approve(job), 120)
    assert job.status is JobStatus.FAILED
    for scene in job.scenes:
        assert scene.clip.status is StageStatus.FAILED and scene.clip.attempt == 1
        assert "JANT_VIDEO_MODEL" in (scene.clip.error or "")
    creates = [r for r in rep.requests if r.method == "POST" and r.path == f"/v1/models/{WAN_REF}/predictions"]
    assert [r.status for r in creates] == [404] * len(job.scenes)  # one per scene: none retried
    assert "JANT_VIDEO_MODEL" in (job.error or "")


# ------------------------------------------------------------------------------------------ the planners


async def test_the_storyboard_writer_is_told_the_clip_length_and_corrected_when_it_writes_too_few_scenes(
    tmp_path: Path,
) -> None:
    from pipeline.providers.openai_planner import OpenAIStoryboardPlanner

    async with FakeOpenAI() as oai:
        oai.reply_json(draft(durations=(6, 6, 6, 6, 6)))  # five 6 s scenes: Wan cannot fill them
        oai.reply_json(draft())  # 4/5/5/5/5/6: fitted to 4.7 + 5 x 5.06
        planner = OpenAIStoryboardPlanner(
            Settings(JANT_DATA_DIR=tmp_path / "data", OPENAI_API_KEY=FakeOpenAI.API_KEY, OPENAI_BASE_URL=oai.base_url)
        )
        try:
            board = await planner.plan(AdRequest(product=PRODUCT, model="wan-2.2-i2v-fast"))
        finally:
            await planner.aclose()
        first, second = (r.json["messages"] for r in oai.chat_requests)
    assert "Wan 2.2 i2v fast) makes clips of 5.0625 s: write at least 6 scenes" in first[0]["content"]
    assert "needs at least 6 scenes (this storyboard has 5)" in second[-1]["content"]
    assert [s.duration for s in board.scenes] == [4.7, 5.06, 5.06, 5.06, 5.06, 5.06]


@pytest.mark.parametrize("model", ENTRIES, ids=lambda m: m.key)
async def test_the_offline_planner_writes_enough_scenes_for_the_model(model: VideoModel) -> None:
    for product in (PRODUCT, "Lumen is a lamp. It glows."):  # four features, and the two generic ones
        board = await OfflineStoryboardPlanner().plan(AdRequest(product=product, model=model.key))
        assert len(board.scenes) >= model.min_scenes
        assert all(s.duration <= model.scene_max_s for s in board.scenes)
        assert TOTAL_MIN_S <= board.total_duration <= TOTAL_MAX_S


async def test_an_edit_longer_than_the_models_clip_is_refused(
    fakes: tuple[FakeOpenAI, FakeReplicate], runtime: Runtime
) -> None:
    orch = runtime.orchestrator
    job = await orch.create_job(AdRequest(product=PRODUCT, model="kling-v2.1"))
    await orch.plan(job)
    with pytest.raises(InvalidRequest) as ei:
        await orch.edit_scene(job, 2, duration=6.0)
    assert "Kling 2.1 makes 5 s clips: a scene may last at most 5 s (scene 2 (6 s))" in ei.value.user_message

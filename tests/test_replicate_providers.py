"""SDXL seeds and SVD clips through the real `replicate` client against the local Replicate emulator.

Stories: a seed is painted at the size, steps and seed we asked for and lands on disk as a real PNG;
a clip is animated from a 576x1024 portrait seed and lands as a real MP4; the prediction id is
stored before the prediction finishes, and a restart polls it instead of paying again; a stuck
prediction is cancelled at its deadline; each way a prediction can fail gets the right verdict.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import replicate
from replicate.exceptions import ReplicateError

from pipeline.config import Settings
from pipeline.errors import ProviderError, SafetyRejection, StageTimeout
from pipeline.models import AdRequest, StageName, Storyboard
from pipeline.moods import mood_preset
from pipeline.prompts import NEGATIVE_PROMPT
from pipeline.providers.base import ClipRequest, SeedRequest, StageContext
from pipeline.providers.media_download import PNG_SIGNATURE, MediaDownloader, OutputExpired, host_allowed
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.providers.replicate_media import (
    ReplicateImageGenerator,
    ReplicateVideoGenerator,
    multiple_of_8,
    sdxl_input,
    svd_progress,
)
from pipeline.providers.replicate_predictions import (
    TERMINAL,
    PredictionState,
    failure,
    parse_log_progress,
    poll_interval,
)
from pipeline.retry import classify
from tests.emulators import media
from tests.emulators.fake_replicate import (
    INTERRUPTED_ERROR,
    NSFW_ERROR,
    OOM_ERROR,
    SDXL_VERSION,
    SVD_VERSION,
    FakeReplicate,
    tqdm_line,
)

SDXL, SVD = "stability-ai/sdxl", "stability-ai/stable-video-diffusion"
PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm, dims at night and charges your phone"


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture
async def fake() -> AsyncIterator[FakeReplicate]:
    await media.mp4_bytes(576, 1024, 25, 7)  # warm the emulator's encode cache once per process
    async with FakeReplicate(time_factor=0.1) as f:
        yield f


@pytest.fixture
async def storyboard() -> Storyboard:
    return await OfflineStoryboardPlanner().plan(AdRequest(product=PRODUCT, mood="luxury"))


class Harness:
    def __init__(self, fake: FakeReplicate, tmp_path: Path) -> None:
        self.fake, self.tmp_path = fake, tmp_path
        self.recorded: list[str] = []
        self.progress: list[tuple[float, str | None]] = []
        self.closers: list[Callable[[], Any]] = []

    def settings(self, **env: Any) -> Settings:
        values = {
            "REPLICATE_API_TOKEN": FakeReplicate.API_TOKEN, "REPLICATE_BASE_URL": self.fake.base_url,
            "JANT_ALLOWED_MEDIA_HOSTS": "127.0.0.1", "JANT_POLL_INTERVAL_S": 0.01, "JANT_RETRY_BACKOFF_S": 0.02,
            "JANT_SEED_DEADLINE_S": 10, "JANT_CLIP_DEADLINE_S": 10, **env,
        }  # fmt: skip
        return Settings(JANT_DATA_DIR=self.tmp_path / "data", **values)

    def images(self, **env: Any) -> ReplicateImageGenerator:
        gen = ReplicateImageGenerator(self.settings(**env))
        self.closers.append(gen.aclose)
        return gen

    def video(self, **env: Any) -> ReplicateVideoGenerator:
        gen = ReplicateVideoGenerator(self.settings(**env))
        self.closers.append(gen.aclose)
        return gen

    def ctx(
        self,
        stage: StageName = StageName.SEED,
        *,
        existing: str | None = None,
        in_flight: int = 1,
        check: Callable[[str], None] | None = None,
    ) -> StageContext:
        async def on_prediction(pid: str) -> None:
            if check is not None:
                check(pid)
            self.recorded.append(pid)

        async def on_progress(percent: float, note: str | None) -> None:
            self.progress.append((percent, note))

        return StageContext(
            job_id="j1", scene_index=1, stage=stage, attempt=1, existing_prediction_id=existing,
            on_progress=on_progress, on_prediction=on_prediction, in_flight=lambda: in_flight,
        )  # fmt: skip

    def seed_request(self, storyboard: Storyboard, *, width: int = 640, height: int = 1136, steps: int = 20,
                     seed: int | None = None, name: str = "seed-1.png") -> SeedRequest:  # fmt: skip
        return SeedRequest(storyboard=storyboard, scene=storyboard.scenes[0], mood=mood_preset("luxury"),
                           product=PRODUCT, width=width, height=height, steps=steps,
                           dest=self.tmp_path / name, seed=seed)  # fmt: skip

    def clip_request(self, storyboard: Storyboard, seed_png: Path) -> ClipRequest:
        mood = mood_preset("luxury")
        return ClipRequest(
            scene=storyboard.scenes[0], mood=mood, seed_image=seed_png, dest=self.tmp_path / "clip-1.mp4",
            motion_bucket_id=mood.motion_bucket_id,
        )  # fmt: skip

    def creates(self) -> list[Any]:
        return [r for r in self.fake.requests if r.method == "POST" and r.path == "/v1/predictions"]


@pytest.fixture
async def h(fake: FakeReplicate, tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(fake, tmp_path)
    yield harness
    for close in harness.closers:
        await close()


def _seed_png(tmp_path: Path, width: int = 640, height: int = 1136) -> Path:
    path = tmp_path / "seed-1.png"
    path.write_bytes(media.png_bytes(width, height, seed=3))
    return path


def _no_leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".part")]


# ------------------------------------------------------------------------------------------ SDXL


async def test_a_seed_is_painted_as_asked_recorded_early_and_saved_as_a_png(h: Harness, storyboard: Storyboard) -> None:
    h.fake.set_latency(SDXL, starting=2.0, processing=3.0)  # ×0.1: long enough to see both phases

    def not_finished_yet(pid: str) -> None:
        assert h.fake.predictions[pid].status not in TERMINAL, "the id must be stored before the prediction ends"

    gen = h.images()
    result = await gen.generate(h.seed_request(storyboard), h.ctx(check=not_finished_yet))
    (create,) = h.creates()
    assert create.json["version"] == SDXL_VERSION
    inp = create.json["input"]
    assert (inp["width"], inp["height"], inp["num_inference_steps"], inp["num_outputs"]) == (640, 1136, 20, 1)
    assert inp["negative_prompt"] == NEGATIVE_PROMPT
    # Words and logos are drawn by us: the painter is told, both ways, to paint none.
    for unwanted in ("text", "letters", "logo", "watermark", "price tag", "brand name"):
        assert unwanted in inp["negative_prompt"].split(", ")
    assert "no text, no lettering, no logos, no watermarks" in inp["prompt"]
    scene, mood = storyboard.scenes[0], mood_preset("luxury")
    assert inp["prompt"].startswith(scene.visual_prompt) and mood.aesthetic in inp["prompt"]
    assert isinstance(inp["seed"], int) and result.seed == inp["seed"]  # reproducible from the job record
    assert h.recorded == [result.prediction_id]
    assert result.predict_time == pytest.approx(h.fake.prediction(result.prediction_id)["metrics"]["predict_time"])
    data = result.path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and media.image_size(data) == (640, 1136)
    assert _no_leftovers(result.path.parent) == []
    notes = [n for _, n in h.progress]
    assert notes[0] == "waiting for a GPU" and any(n and n.startswith("painting ") and "/20" in n for n in notes)
    assert [p for p, _ in h.progress] == sorted(p for p, _ in h.progress)


async def test_a_given_seed_is_sent_and_kept(h: Harness, storyboard: Storyboard) -> None:
    result = await h.images().generate(h.seed_request(storyboard, seed=1234), h.ctx())
    assert h.creates()[0].json["input"]["seed"] == 1234 and result.seed == 1234


def test_sdxl_sizes_by_environment_are_multiples_of_8(storyboard: Storyboard, tmp_path: Path) -> None:
    dev = Settings(JANT_DATA_DIR=tmp_path).profile
    prod = Settings(JANT_DATA_DIR=tmp_path, JANT_ENV="prod").profile
    h = Harness.__new__(Harness)
    h.tmp_path = tmp_path
    for profile, size in ((dev, (640, 1136)), (prod, (768, 1344))):  # prod: SDXL's 9:16 bucket
        req = h.seed_request(storyboard, width=profile.seed_width, height=profile.seed_height, steps=profile.seed_steps)
        inp = sdxl_input(req, 7)
        assert (inp["width"], inp["height"]) == size and inp["width"] % 8 == 0 and inp["height"] % 8 == 0
    assert prod.seed_steps == 50 and dev.seed_steps == 20
    assert (multiple_of_8(1081), multiple_of_8(1917), multiple_of_8(3)) == (1080, 1920, 8)


# ------------------------------------------------------------------------------------------ SVD


async def test_a_clip_is_animated_from_a_576x1024_portrait_seed(h: Harness, storyboard: Storyboard) -> None:
    h.fake.set_latency(SVD, processing=6.0)
    seed_png = _seed_png(h.tmp_path)  # a dev seed, 640x1136: cropped and scaled to 576x1024 for SVD
    result = await h.video().animate(h.clip_request(storyboard, seed_png), h.ctx(StageName.CLIP))
    (create,) = h.creates()
    assert create.json["version"] == SVD_VERSION
    inp = create.json["input"]
    assert inp["sizing_strategy"] == "use_image_dimensions"
    assert inp["video_length"] == "25_frames_with_svd_xt" and inp["frames_per_second"] == 6
    assert inp["motion_bucket_id"] == mood_preset("luxury").motion_bucket_id == 90
    assert inp["cond_aug"] == 0.02 and result.seed == inp["seed"]
    mime, image = media.decode_data_uri(inp["input_image"])
    assert mime.startswith("image/") and media.image_size(image) == (576, 1024)
    assert len(inp["input_image"]) < 1_000_000  # data URIs are for inputs under 1 MB
    assert not any(r.path == "/v1/files" for r in h.fake.requests)  # no upload round trip
    data = result.path.read_bytes()
    assert media.has_ftyp(data)
    info = await media.probe_video(data)
    assert (info.width, info.height, info.frames, info.codec) == (576, 1024, 25, "h264")
    notes = [n or "" for _, n in h.progress]
    assert any(n.startswith("animating ") and n.endswith("/30") for n in notes)  # SVD-xt: 30 steps, bar of 31
    assert (96.0, "encoding the clip") in h.progress or (97.0, "downloading") in h.progress
    assert max(p for p, _ in h.progress) < 100  # 100 % is the orchestrator's word, after the download


# ------------------------------------------------------------------------------------------ lifecycle


async def test_a_restart_polls_the_stored_prediction_and_creates_nothing(h: Harness, storyboard: Storyboard) -> None:
    transport = httpx.AsyncHTTPTransport()  # an earlier run of the bot, before a restart
    client = replicate.Client(api_token=FakeReplicate.API_TOKEN, base_url=h.fake.base_url, transport=transport)
    inp = {"prompt": "lamp", "width": 640, "height": 1136, "seed": 77}
    earlier = await client.predictions.async_create(version=SDXL_VERSION, input=inp)
    await transport.aclose()
    result = await h.images().generate(h.seed_request(storyboard), h.ctx(existing=earlier.id))
    assert result.prediction_id == earlier.id and result.seed == 77  # the seed that prediction really used
    assert len(h.creates()) == 1 and h.fake.counts.creates[SDXL] == 1  # only the earlier run's create
    assert h.recorded == []
    assert result.path.read_bytes().startswith(PNG_SIGNATURE)


async def test_a_stuck_prediction_is_cancelled_at_its_deadline(h: Harness, storyboard: Storyboard) -> None:
    h.fake.script(SDXL, "never")
    gen = h.images(JANT_SEED_DEADLINE_S=0.5)
    started = asyncio.get_running_loop().time()
    with pytest.raises(StageTimeout) as ei:
        await gen.generate(h.seed_request(storyboard), h.ctx())
    assert asyncio.get_running_loop().time() - started < 5
    (pid,) = h.recorded
    assert [r.path for r in h.fake.requests if r.path.endswith("/cancel")] == [f"/v1/predictions/{pid}/cancel"]
    assert h.fake.prediction(pid)["status"] == "canceled"
    assert "0.5 s" in str(ei.value) and classify(ei.value).retry


async def test_cancel_sends_the_cancel_request(h: Harness, storyboard: Storyboard) -> None:
    h.fake.script(SVD, "never")
    gen = h.video()
    task = asyncio.create_task(gen.animate(h.clip_request(storyboard, _seed_png(h.tmp_path)), h.ctx(StageName.CLIP)))
    async with asyncio.timeout(5):
        while not h.recorded:  # noqa: ASYNC110 - bounded by the timeout
            await asyncio.sleep(0.01)
    task.cancel()  # the orchestrator stops the task, then cancels what was paid for
    with pytest.raises(asyncio.CancelledError):
        await task
    assert h.fake.counts.cancels == 0  # stopping our task alone never cancels (a restart resumes it)
    await gen.cancel(h.recorded[0])
    assert h.fake.prediction(h.recorded[0])["status"] == "canceled" and h.fake.counts.cancels == 1


@pytest.mark.parametrize(
    ("outcome", "kind", "retry", "words"),
    [
        ("aborted", ProviderError, True, "aborted"),
        ("fail_nsfw", SafetyRejection, False, "NSFW content detected"),
        ("fail_infra", ProviderError, True, "code: PA"),
        ("fail_oom", ProviderError, True, "CUDA out of memory"),
        ("fail:Prompt is too long for the text encoder", ProviderError, False, "Prompt is too long"),
    ],
)
async def test_each_way_a_prediction_ends_gets_its_verdict(
    h: Harness, storyboard: Storyboard, outcome: str, kind: type, retry: bool, words: str
) -> None:
    h.fake.script(SDXL, outcome)
    with pytest.raises(ProviderError) as ei:
        await h.images().generate(h.seed_request(storyboard), h.ctx())
    assert type(ei.value) is kind and words in str(ei.value)
    assert classify(ei.value).retry is retry
    assert h.fake.counts.creates[SDXL] == 1 and h.fake.counts.cancels == 0
    assert not (h.tmp_path / "seed-1.png").exists()


async def test_poll_errors_do_not_fail_a_running_prediction(h: Harness, storyboard: Storyboard) -> None:
    h.fake.set_latency(SDXL, processing=3.0)
    h.fake.fail_get(500, times=2)  # the client does not retry a GET 500: our loop does
    h.fake.fail_get(429, retry_after=0.05)  # the client's own transport retries this one
    result = await h.images().generate(h.seed_request(storyboard), h.ctx())
    statuses = [r.status for r in h.fake.requests if r.method == "GET" and r.path.startswith("/v1/predictions/")]
    assert statuses[:4] == [500, 500, 429, 200]
    assert result.path.exists() and h.fake.counts.creates[SDXL] == 1


async def test_create_failures_reach_the_retry_policy_with_the_right_verdict(
    h: Harness, storyboard: Storyboard
) -> None:
    gen = h.images()
    h.fake.fail_create(429, retry_after=0.5)
    with pytest.raises(ReplicateError) as ei:
        await gen.generate(h.seed_request(storyboard), h.ctx())
    d = classify(ei.value)
    assert d.retry and d.retry_after == 0.5
    h.fake.fail_create(503)
    with pytest.raises(ReplicateError) as ei:
        await gen.generate(h.seed_request(storyboard), h.ctx())
    assert classify(ei.value).retry
    assert h.recorded == [] and h.fake.counts.total_creates == 0  # nothing was created, nothing stored

    with pytest.raises(ReplicateError) as ei:
        await h.images(REPLICATE_API_TOKEN="r8_wrong").generate(h.seed_request(storyboard), h.ctx())
    d = classify(ei.value)
    assert not d.retry and "REPLICATE_API_TOKEN" in d.reason
    with pytest.raises(ProviderError) as missing:  # 422 "Invalid version": the setting is named
        await h.images(JANT_SDXL_VERSION="0" * 64).generate(h.seed_request(storyboard), h.ctx())
    d = classify(missing.value)
    assert not d.retry and "set JANT_SDXL_VERSION" in d.reason and isinstance(missing.value.__cause__, ReplicateError)


# ------------------------------------------------------------------------------------------ downloads


async def test_an_expired_output_asks_for_a_new_prediction(h: Harness, storyboard: Storyboard) -> None:
    h.fake.script(SDXL, "expired_output")
    with pytest.raises(OutputExpired) as ei:
        await h.images().generate(h.seed_request(storyboard), h.ctx())
    assert "re-run" in str(ei.value) and classify(ei.value).retry
    assert not (h.tmp_path / "seed-1.png").exists() and _no_leftovers(h.tmp_path) == []


async def test_a_flaky_download_is_retried_without_a_new_prediction(h: Harness, storyboard: Storyboard) -> None:
    h.fake.fail_download(502)
    result = await h.images().generate(h.seed_request(storyboard), h.ctx())
    downloads = [r.status for r in h.fake.requests if r.path.startswith("/files/")]
    assert downloads == [502, 200] and result.path.exists() and h.fake.counts.creates[SDXL] == 1


async def test_outputs_from_other_hosts_are_refused_and_logged(
    h: Harness, storyboard: Storyboard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with pytest.raises(ProviderError) as ei:
        await h.images(JANT_ALLOWED_MEDIA_HOSTS="replicate.delivery").generate(h.seed_request(storyboard), h.ctx())
    assert "127.0.0.1" in str(ei.value) and "JANT_ALLOWED_MEDIA_HOSTS" in ei.value.user_message
    assert not classify(ei.value).retry
    assert h.fake.counts.downloads == 0 and not (h.tmp_path / "seed-1.png").exists()
    assert any("refused to download" in r.getMessage() for r in caplog.records)


async def test_a_download_over_the_size_cap_is_refused(h: Harness, storyboard: Storyboard) -> None:
    with pytest.raises(ProviderError) as ei:
        await h.images(JANT_MAX_DOWNLOAD_BYTES=1000).generate(h.seed_request(storyboard), h.ctx())
    assert "download limit" in str(ei.value) and "JANT_MAX_DOWNLOAD_BYTES" in ei.value.user_message
    assert not classify(ei.value).retry
    assert not (h.tmp_path / "seed-1.png").exists() and _no_leftovers(h.tmp_path) == []


def test_allowed_hosts() -> None:
    allowed = frozenset({"replicate.delivery", ".cdn.example", "127.0.0.1"})
    assert host_allowed("https://replicate.delivery/pbxt/a/out-0.png", allowed)
    assert host_allowed("https://x.cdn.example/a.png", allowed)
    assert not host_allowed("https://cdn.example.evil/a", allowed)
    assert not host_allowed("https://pbxt.replicate.delivery/a.png", allowed)  # exact names unless dotted
    assert not host_allowed("http://replicate.delivery/a.png", allowed)  # plain http only on loopback
    assert host_allowed("http://127.0.0.1:8080/files/a.png", allowed)
    assert not host_allowed("https://replicate.delivery.evil.com/a.png", allowed)
    assert not host_allowed("file:///etc/passwd", allowed) and not host_allowed("data:image/png;base64,AA", allowed)


def _serve(handler: Callable[[httpx.Request], httpx.Response]) -> MediaDownloader:
    return MediaDownloader(frozenset({"replicate.delivery"}), 1000, backoff_s=0.001,
                           transport=httpx.MockTransport(handler))  # fmt: skip


async def test_streamed_bodies_without_a_length_are_capped_too(tmp_path: Path) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield PNG_SIGNATURE + b"x" * 600
        yield b"y" * 600

    def chunked(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body())  # streamed: no Content-Length

    dl = _serve(chunked)
    with pytest.raises(ProviderError, match="download limit"):
        await dl.fetch("https://replicate.delivery/a.png", tmp_path / "a.png", "png")
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240 - a tiny local directory
    await dl.aclose()


async def test_a_body_that_is_not_media_is_fetched_again_then_refused(tmp_path: Path) -> None:
    calls: list[str] = []

    def html(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(200, text="<html>maintenance</html>")

    dl = _serve(html)
    with pytest.raises(ProviderError, match="not a PNG") as ei:
        await dl.fetch("https://replicate.delivery/a.png", tmp_path / "a.png", "png")
    assert len(calls) == 3 and not classify(ei.value).retry  # free re-downloads, no paid re-run
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240 - a tiny local directory
    await dl.aclose()


async def test_a_redirect_to_another_host_is_refused(tmp_path: Path) -> None:
    def redirect(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "https://evil.example/a.png"})

    dl = _serve(redirect)
    with pytest.raises(ProviderError, match=r"evil\.example"):
        await dl.fetch("https://replicate.delivery/a.png", tmp_path / "a.png", "png")
    await dl.aclose()


# ------------------------------------------------------------------------------------------ pure parts


def test_progress_is_read_from_the_last_bar_of_real_log_shapes() -> None:
    # The emulator's SVD-xt log: a prefixed bar, updates joined by \r, stopping at 30/31.
    desc = "Sampling with EulerEDMSampler for 31 steps"
    xt = "Using seed: 5\nSet consts\nLoaded model\n" + "\r".join(tqdm_line(n, 31, 1.9, desc) for n in range(0, 13))
    assert parse_log_progress(xt) == (12, 31)
    done = xt + "\r" + "\r".join(tqdm_line(n, 31, 1.9, desc) for n in range(13, 31)) + "\nffmpeg version 4.4.2\n"
    assert parse_log_progress(done) == (30, 31)
    svd = "\r".join(tqdm_line(n, 26, 1.2, "Sampling with EulerEDMSampler for 26 steps") for n in range(26))
    assert parse_log_progress(svd) == (25, 26)
    # PLATFORM-FACTS shapes: diffusers (SDXL) bars on their own lines, and SVD's prefixed bar.
    sdxl = "Using seed: 7\n  0%|          | 0/50 [00:00<?, ?it/s]\n 40%|████      | 20/50 [00:02<00:03,  9.80it/s]\n"
    assert parse_log_progress(sdxl) == (20, 50)
    svd_line = "Sampling with EulerEDMSampler for 26 steps:  40%|████      | 10/26 [00:12<00:19,  1.20s/it]"
    assert parse_log_progress(svd_line) == (10, 26)
    assert parse_log_progress("Using seed: 1\nLoaded model\n") is None and parse_log_progress("") is None


def test_svd_sampling_maps_to_0_96_percent() -> None:
    def at(n: int) -> tuple[float, str] | None:
        return svd_progress(PredictionState("p", "processing", logs=tqdm_line(n, 31, 1.0, "Sampling with X")))

    assert at(0) == (0.0, "animating 0/30")
    assert at(15) == (48.0, "animating 15/30")
    assert at(30) == (96.0, "encoding the clip")  # the bar never reaches 31/31
    assert svd_progress(PredictionState("p", "starting")) == (0.0, "waiting for a GPU")


def test_failed_predictions_are_told_apart_by_their_error() -> None:
    def verdict(error: str) -> tuple[type, bool]:
        exc = failure("SDXL seed image", PredictionState("p", "failed", error=error))
        return type(exc), classify(exc).retry

    assert verdict(NSFW_ERROR) == (SafetyRejection, False)
    assert verdict(OOM_ERROR) == (ProviderError, True)
    assert verdict(INTERRUPTED_ERROR) == (ProviderError, True)
    assert verdict("`height` and `width` have to be divisible by 8 but are 1001 and 1000.") == (ProviderError, False)


def test_the_poll_interval_widens_with_predictions_in_flight() -> None:
    assert poll_interval(1.0, 1) == 1.0 and poll_interval(1.0, 12) == 1.0
    assert poll_interval(1.0, 100) == 2.5  # 100 predictions × 24 polls/min = 2400/min, under 3000
    for n in (1, 12, 40, 200, 1000):
        assert n * 60 / poll_interval(1.0, n) <= 2400


async def test_a_busy_process_polls_each_prediction_less_often(h: Harness, storyboard: Storyboard) -> None:
    h.fake.set_latency(SDXL, processing=6.0)  # ≈0.6 s of processing

    async def gets_for(in_flight: int, name: str) -> tuple[int, float]:
        before, started = h.fake.counts.gets, time.monotonic()
        await h.images().generate(h.seed_request(storyboard, name=name), h.ctx(in_flight=in_flight))
        return h.fake.counts.gets - before, time.monotonic() - started

    quiet, _ = await gets_for(1, "a.png")  # every 0.025 s
    # Every 1 s: a poll a second however long the host makes it take, plus the first poll and the download.
    busy, took = await gets_for(40, "b.png")
    assert quiet >= 10 and busy <= math.ceil(took) + 2, (quiet, busy, took)

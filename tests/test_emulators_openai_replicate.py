"""The OpenAI and Replicate emulators, proven with the real `openai` and `replicate` clients.

Every wait is bounded (asyncio.timeout / fake.wait_for_status); nothing sleeps and hopes.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import httpx
import openai
import pydantic
import pytest
import replicate
from pydantic import v1 as pydantic_v1
from replicate.exceptions import ModelError, ReplicateError

from tests.emulators import media
from tests.emulators.fake_openai import FakeOpenAI, check_strict_schema
from tests.emulators.fake_replicate import (
    NSFW_ERROR,
    SDXL_VERSION,
    SVD_VERSION,
    FakeReplicate,
    svd_output_size,
    tqdm_line,
)

SDXL = "stability-ai/sdxl"
SVD = "stability-ai/stable-video-diffusion"
MSG = [
    {"role": "system", "content": "You write storyboards."},
    {"role": "user", "content": "Lumen desk lamp"},
]


class Scene(pydantic.BaseModel):
    prompt: str
    seconds: float


class Storyboard(pydantic.BaseModel):
    title: str
    scenes: list[Scene]


STORYBOARD = {"title": "Lumen", "scenes": [{"prompt": "a lamp at dusk", "seconds": 5.0}]}


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def oai(fake_openai: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=fake_openai.base_url, api_key=FakeOpenAI.API_KEY, max_retries=2)
    yield client
    await client.close()


@pytest.fixture
async def fake_rep() -> AsyncIterator[FakeReplicate]:
    async with FakeReplicate(time_factor=0.5) as fake:
        yield fake


def _close_later(clients: list[replicate.Client]):
    async def close() -> None:
        for c in clients:
            ac = c._Client__async_client  # type: ignore[attr-defined]  # replicate.Client has no close()
            if ac is not None:
                await ac.aclose()

    return close


@pytest.fixture
async def rep(fake_rep: FakeReplicate) -> AsyncIterator[replicate.Client]:
    client = replicate.Client(api_token=FakeReplicate.API_TOKEN, base_url=fake_rep.base_url)
    client.poll_interval = 0.05
    yield client
    await _close_later([client])()


async def _poll_until_done(client: replicate.Client, pid: str, limit_s: float = 10.0):
    seen = []
    async with asyncio.timeout(limit_s):
        while True:
            p = await client.predictions.async_get(pid)
            if not seen or seen[-1] != p.status:
                seen.append(p.status)
            if p.status in ("succeeded", "failed", "canceled"):
                return p, seen
            await asyncio.sleep(0.03)


async def _download(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as h:
        return await h.get(url)


# ----------------------------------------------------------------------------------------------- OpenAI


async def test_openai_parse_returns_parsed_model(fake_openai: FakeOpenAI, oai: openai.AsyncOpenAI) -> None:
    fake_openai.reply_json(STORYBOARD)
    r = await oai.chat.completions.parse(model="gpt-4o", messages=MSG, response_format=Storyboard)
    msg = r.choices[0].message
    assert msg.parsed == Storyboard.model_validate(STORYBOARD)
    assert msg.refusal is None and r.choices[0].finish_reason == "stop"
    assert r.model == "gpt-4o-2024-08-06" and r.usage and r.usage.total_tokens > 0
    assert r._request_id and r._request_id.startswith("req_")
    (req,) = fake_openai.chat_requests
    assert req.headers["Authorization"] == f"Bearer {FakeOpenAI.API_KEY}"
    rf = req.json["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
    assert rf["json_schema"]["name"] == "Storyboard"


async def test_openai_responder_and_schema_default(fake_openai: FakeOpenAI, oai: openai.AsyncOpenAI) -> None:
    # Nothing scripted, no responder: a schema-valid instance is synthesized.
    r = await oai.chat.completions.parse(model="gpt-4o", messages=MSG, response_format=Storyboard)
    assert isinstance(r.choices[0].message.parsed, Storyboard)

    def responder(body: dict) -> dict:
        product = body["messages"][-1]["content"]
        return {"title": product, "scenes": [{"prompt": f"{product}, hero shot", "seconds": 4}]}

    fake_openai.responder = responder
    r = await oai.chat.completions.parse(model="gpt-4o", messages=MSG, response_format=Storyboard)
    assert r.choices[0].message.parsed.title == "Lumen desk lamp"
    # A scripted reply still wins over the responder.
    fake_openai.reply_json(STORYBOARD)
    r = await oai.chat.completions.parse(model="gpt-4o", messages=MSG, response_format=Storyboard)
    assert r.choices[0].message.parsed.title == "Lumen"


async def test_openai_refusal_sets_refusal_not_parsed(fake_openai: FakeOpenAI, oai: openai.AsyncOpenAI) -> None:
    fake_openai.reply_refusal("I can't help with that.")
    r = await oai.chat.completions.parse(model="gpt-4o", messages=MSG, response_format=Storyboard)
    assert r.choices[0].message.refusal == "I can't help with that."
    assert r.choices[0].message.parsed is None


async def test_openai_bad_finishes_raise(fake_openai: FakeOpenAI, oai: openai.AsyncOpenAI) -> None:
    fake_openai.reply_length_cutoff().reply_content_filter().reply_invalid_json()
    with pytest.raises(openai.LengthFinishReasonError):
        await oai.chat.completions.parse(model="gpt-4o", messages=MSG, response_format=Storyboard)
    with pytest.raises(openai.ContentFilterFinishReasonError):
        await oai.chat.completions.parse(model="gpt-4o", messages=MSG, response_format=Storyboard)
    with pytest.raises(pydantic.ValidationError):
        await oai.chat.completions.parse(model="gpt-4o", messages=MSG, response_format=Storyboard)
    assert fake_openai.pending() == 0


async def test_openai_429_retried_then_exhausted(fake_openai: FakeOpenAI, oai: openai.AsyncOpenAI) -> None:
    fake_openai.fail(429, retry_after=0.05).reply_json(STORYBOARD)
    r = await oai.chat.completions.parse(model="gpt-4o", messages=MSG, response_format=Storyboard)
    assert r.choices[0].message.parsed is not None
    assert [q.status for q in fake_openai.chat_requests] == [429, 200]
    assert fake_openai.chat_requests[1].headers["x-stainless-retry-count"] == "1"

    fake_openai.requests.clear()
    fake_openai.fail(429, retry_after=0.05, times=3)
    with pytest.raises(openai.RateLimitError) as ei:
        await oai.chat.completions.parse(model="gpt-4o", messages=MSG, response_format=Storyboard)
    assert ei.value.code == "rate_limit_exceeded" and ei.value.type == "requests"
    assert ei.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert ei.value.response.headers["retry-after"] == "0.05"
    assert len(fake_openai.chat_requests) == 3  # 1 + max_retries=2


async def test_openai_500_retried_and_retry_after_over_120_not(
    fake_openai: FakeOpenAI, oai: openai.AsyncOpenAI
) -> None:
    fake_openai.fail(500, retry_after=0.05).reply_json(STORYBOARD)
    r = await oai.chat.completions.parse(model="gpt-4o", messages=MSG, response_format=Storyboard)
    assert r.choices[0].message.parsed is not None
    fake_openai.requests.clear()
    fake_openai.fail(429, retry_after=300)  # above the client's 120 s cap: raised at once
    with pytest.raises(openai.RateLimitError):
        await oai.chat.completions.parse(model="gpt-4o", messages=MSG, response_format=Storyboard)
    assert len(fake_openai.chat_requests) == 1


async def test_openai_timeout_then_retry(fake_openai: FakeOpenAI) -> None:
    client = openai.AsyncOpenAI(base_url=fake_openai.base_url, api_key=FakeOpenAI.API_KEY, timeout=0.3, max_retries=1)
    fake_openai.delay(2.0).reply_json({"title": "late", "scenes": []}).reply_json(STORYBOARD)
    async with asyncio.timeout(5):
        r = await client.chat.completions.parse(model="gpt-4o", messages=MSG, response_format=Storyboard)
    await client.close()
    # The first (delayed) answer was abandoned by the client; its retry got the next scripted reply.
    assert r.choices[0].message.parsed.title == "Lumen"
    assert len(fake_openai.chat_requests) == 2


async def test_openai_auth_model_and_request_errors(fake_openai: FakeOpenAI, oai: openai.AsyncOpenAI) -> None:
    bad = openai.AsyncOpenAI(base_url=fake_openai.base_url, api_key="sk-wrong-key-1234", max_retries=2)
    with pytest.raises(openai.AuthenticationError) as ei:
        await bad.chat.completions.create(model="gpt-4o", messages=MSG)
    await bad.close()
    assert ei.value.code == "invalid_api_key" and ei.value.type == "invalid_request_error"
    assert "sk-" in ei.value.message and "1234" in ei.value.message and "wrong" not in ei.value.message
    assert len(fake_openai.chat_requests) == 1  # 401 is not retried

    with pytest.raises(openai.NotFoundError) as ei2:
        await oai.chat.completions.parse(model="gpt-4o-does-not-exist", messages=MSG, response_format=Storyboard)
    assert ei2.value.code == "model_not_found"

    with pytest.raises(openai.BadRequestError) as ei3:
        await oai.chat.completions.create(model="gpt-4o", messages=[])
    assert ei3.value.code == "empty_array" and ei3.value.param == "messages"

    with pytest.raises(openai.BadRequestError) as ei4:  # structured outputs need 2024-08-06 or later
        await oai.chat.completions.parse(model="gpt-4o-2024-05-13", messages=MSG, response_format=Storyboard)
    assert ei4.value.param == "response_format" and "not supported with this model" in ei4.value.message


async def test_openai_rejects_non_strict_schemas(fake_openai: FakeOpenAI, oai: openai.AsyncOpenAI) -> None:
    def fmt(schema: dict) -> dict:
        return {
            "type": "json_schema",
            "json_schema": {"name": "Storyboard", "strict": True, "schema": schema},
        }

    loose = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    with pytest.raises(openai.BadRequestError) as ei:
        await oai.chat.completions.create(model="gpt-4o", messages=MSG, response_format=fmt(loose))
    assert ei.value.param == "response_format" and ei.value.code is None
    assert ei.value.body["message"] == (
        "Invalid schema for response_format 'Storyboard': In context=(), "
        "'additionalProperties' is required to be supplied and to be false."
    )
    nested = {
        "type": "object",
        "additionalProperties": False,
        "required": ["scene"],
        "properties": {
            "scene": {
                "type": "object",
                "additionalProperties": False,
                "required": ["a"],
                "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
            }
        },
    }
    with pytest.raises(openai.BadRequestError) as ei:
        await oai.chat.completions.create(model="gpt-4o", messages=MSG, response_format=fmt(nested))
    assert "In context=('properties', 'scene'), 'required' is required" in ei.value.message
    assert ei.value.message.endswith("Missing 'b'.")
    # Non-strict schemas are not checked; the openai helper's own schemas always pass.
    lax = {"type": "json_schema", "json_schema": {"name": "X", "strict": False, "schema": loose}}
    await oai.chat.completions.create(model="gpt-4o", messages=MSG, response_format=lax)
    assert check_strict_schema("S", openai.lib._pydantic.to_strict_json_schema(Storyboard)) is None
    assert "'allOf' is not permitted" in (check_strict_schema("S", {**nested, "allOf": []}) or "")
    with pytest.raises(openai.BadRequestError):  # root must be an object
        await oai.chat.completions.create(model="gpt-4o", messages=MSG, response_format=fmt({"type": "array"}))


async def test_openai_models_retrieve_and_shutdown_date(fake_openai: FakeOpenAI, oai: openai.AsyncOpenAI) -> None:
    m = await oai.models.retrieve("gpt-4o")
    assert (m.id, m.object, m.owned_by, m.shutdown_date) == ("gpt-4o", "model", "system", None)
    fake_openai.set_shutdown_date("gpt-4o", "2027-01-14")
    assert (await oai.models.retrieve("gpt-4o")).shutdown_date == "2027-01-14"
    fake_openai.remove_model("gpt-4o")
    with pytest.raises(openai.NotFoundError) as ei:
        await oai.models.retrieve("gpt-4o")
    assert ei.value.code == "model_not_found"


# -------------------------------------------------------------------------------------------- Replicate


async def test_sdxl_create_poll_download_png(fake_rep: FakeReplicate, rep: replicate.Client) -> None:
    fake_rep.set_latency(SDXL, processing=1.2)  # × time_factor 0.5: long enough to observe "processing"
    p = await rep.predictions.async_create(
        version=SDXL_VERSION, input={"prompt": "a desk lamp", "width": 576, "height": 1024, "seed": 7}
    )
    assert p.status == "starting" and p.model == SDXL and p.version == SDXL_VERSION
    assert p.urls["get"].endswith(f"/v1/predictions/{p.id}")
    await fake_rep.wait_for_status(p.id, "processing")
    mid = await rep.predictions.async_get(p.id)
    assert mid.status == "processing" and mid.started_at is not None
    done, seen = await _poll_until_done(rep, p.id)
    assert done.status == "succeeded", done.error
    assert seen[-1] == "succeeded" and done.completed_at and done.metrics["predict_time"] > 0
    assert done.logs.startswith("Using seed: 7\nPrompt: a desk lamp\ntxt2img mode\n")
    assert "100%|██████████| 50/50 [00:05<00:00,  9.80it/s]" in done.logs
    assert done.progress is not None and (done.progress.current, done.progress.total) == (50, 50)
    assert isinstance(done.output, list) and len(done.output) == 1
    url = done.output[0]
    assert isinstance(url, str) and url.startswith(fake_rep.base_url + "/files/")
    resp = await _download(url)
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
    assert resp.content[:8] == b"\x89PNG\r\n\x1a\n" and media.image_size(resp.content) == (576, 1024)
    assert fake_rep.counts.creates[SDXL] == 1 and fake_rep.counts.gets >= 2


async def test_svd_async_run_real_mp4(fake_rep: FakeReplicate, rep: replicate.Client) -> None:
    seed_png = media.png_bytes(576, 1024)
    out = await rep.async_run(
        f"{SVD}:{SVD_VERSION}",
        input={
            "input_image": media.data_uri(seed_png),
            "video_length": "25_frames_with_svd_xt",
            "sizing_strategy": "use_image_dimensions",
            "frames_per_second": 6,
            "motion_bucket_id": 90,
        },
    )
    # http:// output → replicate leaves it a plain str (real https:// outputs become FileOutput).
    assert isinstance(out, str)
    create = next(r for r in fake_rep.requests if r.method == "POST")
    assert create.path == "/v1/predictions" and create.headers["Prefer"] == "wait"
    assert create.json["version"] == SVD_VERSION and create.status == 201
    assert any(r.path == f"/v1/models/{SVD}/versions/{SVD_VERSION}" for r in fake_rep.requests)
    data = (await _download(out)).content
    assert media.has_ftyp(data)
    info = await media.probe_video(data)
    assert (info.codec, info.width, info.height, info.frames) == ("h264", 576, 1024, 25)
    assert info.fps == 7.0  # cog-svd encodes at frames_per_second + 1
    (pred,) = fake_rep.predictions.values()
    logs = fake_rep.prediction(pred.id)["logs"]
    assert "Sampling with EulerEDMSampler for 31 steps:" in logs and "| 30/31 [" in logs
    assert "| 31/31" not in logs  # tqdm total is steps+1: the bar stops one short


async def test_svd_maintain_aspect_with_uploaded_file(fake_rep: FakeReplicate, rep: replicate.Client) -> None:
    f = io.BytesIO(media.png_bytes(576, 1024))
    f.name = "seed.png"
    p = await rep.predictions.async_create(version=SVD_VERSION, input={"input_image": f})
    upload = next(r for r in fake_rep.requests if r.path == "/v1/files")
    assert upload.json["filename"] == "seed.png" and upload.json["content_type"] == "image/png"
    assert p.input["input_image"].startswith(f"{fake_rep.base_url}/v1/files/")
    done, _ = await _poll_until_done(rep, p.id)
    assert done.status == "succeeded", done.error
    info = await media.probe_video((await _download(done.output)).content)
    assert (info.width, info.height, info.frames, info.fps) == (320, 576, 14, 7.0)
    # SVD's "Sampling with ..." bar is not parseable by Prediction.progress (PLATFORM-FACTS A).
    assert done.progress is None
    assert "\rSampling with EulerEDMSampler for 26 steps:  96%|█████████▌| 25/26 [" in done.logs
    assert svd_output_size("crop_to_16_9", 576, 1024) == (1024, 576)
    assert svd_output_size("use_image_dimensions", 600, 1000) == (576, 960)
    assert svd_output_size("maintain_aspect_ratio", 1024, 576) == (1024, 576)
    assert tqdm_line(20, 50, 0.102) == " 40%|████      | 20/50 [00:02<00:03,  9.80it/s]"


async def test_prefer_wait_returns_starting_until_done(fake_rep: FakeReplicate, rep: replicate.Client) -> None:
    fake_rep.script(SDXL, "slow:1.5")
    async with asyncio.timeout(8):
        out = await rep.async_run(f"{SDXL}:{SDXL_VERSION}", input={"prompt": "x", "width": 512, "height": 512}, wait=1)
    assert isinstance(out, list) and len(out) == 1  # async_run saw "starting" and polled to the end
    create = next(r for r in fake_rep.requests if r.method == "POST")
    assert create.headers["Prefer"] == "wait=1"
    assert fake_rep.counts.gets >= 1


async def test_create_429_raises_without_retry(fake_rep: FakeReplicate, rep: replicate.Client) -> None:
    fake_rep.fail_create(429, retry_after=2)
    with pytest.raises(ReplicateError) as ei:
        await rep.predictions.async_create(version=SDXL_VERSION, input={"prompt": "x"})
    assert ei.value.status == 429
    assert ei.value.detail == "Request was throttled. Expected available in 2 seconds."
    posts = [r for r in fake_rep.requests if r.method == "POST"]
    assert len(posts) == 1  # replicate never retries POST
    # The next create goes through.
    p = await rep.predictions.async_create(version=SDXL_VERSION, input={"prompt": "x"})
    assert p.status == "starting"


async def test_get_503_retried_but_500_not(fake_rep: FakeReplicate, rep: replicate.Client) -> None:
    p = await rep.predictions.async_create(version=SDXL_VERSION, input={"prompt": "x"})
    fake_rep.fail_get(503, times=2)
    got = await rep.predictions.async_get(p.id)  # RetryTransport retries GET on 429/503/504
    assert got.id == p.id
    assert [r.status for r in fake_rep.requests if r.method == "GET"] == [503, 503, 200]
    fake_rep.fail_get(500)
    with pytest.raises(ReplicateError) as ei:  # ...but not on 500
        await rep.predictions.async_get(p.id)
    assert ei.value.status == 500 and ei.value.title == "Internal Server Error"


async def test_aborted_status_crashes_client(fake_rep: FakeReplicate, rep: replicate.Client) -> None:
    fake_rep.script(SDXL, "aborted")
    p = await rep.predictions.async_create(version=SDXL_VERSION, input={"prompt": "x"})
    await fake_rep.wait_for_status(p.id, "aborted")
    # replicate 1.0.7's Prediction.status Literal lacks "aborted" (PR #449): the trap, documented.
    with pytest.raises(pydantic_v1.ValidationError):
        await rep.predictions.async_get(p.id)


async def test_nsfw_and_infra_failures(fake_rep: FakeReplicate, rep: replicate.Client) -> None:
    fake_rep.script(SDXL, "fail_nsfw", "fail_infra")
    with pytest.raises(ModelError) as ei:
        await rep.async_run(f"{SDXL}:{SDXL_VERSION}", input={"prompt": "x", "width": 512, "height": 512})
    assert ei.value.prediction.status == "failed" and ei.value.prediction.error == NSFW_ERROR
    assert "NSFW content detected in image 0" in ei.value.prediction.logs
    p = await rep.predictions.async_create(version=SDXL_VERSION, input={"prompt": "x", "width": 512})
    done, _ = await _poll_until_done(rep, p.id)
    assert done.status == "failed" and "please retry" in done.error and done.output is None

    # predicate hook: outcome chosen per prediction from its input
    fake_rep.script_by(lambda model, version, inp: "fail_nsfw" if "forbidden" in inp.get("prompt", "") else None)
    ok = await rep.predictions.async_create(version=SDXL_VERSION, input={"prompt": "fine", "width": 512})
    bad = await rep.predictions.async_create(version=SDXL_VERSION, input={"prompt": "forbidden", "width": 512})
    assert (await fake_rep.wait_for_status(ok.id))["status"] == "succeeded"
    assert (await fake_rep.wait_for_status(bad.id))["error"] == NSFW_ERROR


async def test_input_validation_422(fake_rep: FakeReplicate, rep: replicate.Client) -> None:
    img = media.data_uri(media.png_bytes(64, 64))
    with pytest.raises(ReplicateError) as ei:
        await rep.predictions.async_create(version=SVD_VERSION, input={"input_image": img, "sizing_strategy": "bogus"})
    e = ei.value
    assert (e.status, e.title) == (422, "Input validation failed")
    assert e.detail == (
        "- input.sizing_strategy: sizing_strategy must be one of the following: "
        '"maintain_aspect_ratio", "crop_to_16_9", "use_image_dimensions"\n'
    )
    with pytest.raises(ReplicateError) as ei:
        await rep.predictions.async_create(version=SVD_VERSION, input={"frames_per_second": 40, "seed": "7"})
    assert ei.value.detail.splitlines() == [
        "- input: input_image is required",
        "- input.frames_per_second: Must be less than or equal to 30",
        "- input.seed: Invalid type. Expected: integer, given: string",
    ]
    with pytest.raises(ReplicateError) as ei:
        await rep.predictions.async_create(version=SDXL_VERSION, input={"num_outputs": 5})
    assert ei.value.detail == "- input.num_outputs: Must be less than or equal to 4\n"
    # width/height have no bounds in cog-sdxl: a bad size fails inside diffusers, not with a 422.
    p = await rep.predictions.async_create(version=SDXL_VERSION, input={"width": 1000, "height": 1001})
    done = await fake_rep.wait_for_status(p.id)
    assert done["status"] == "failed"
    assert done["error"] == "`height` and `width` have to be divisible by 8 but are 1001 and 1000."
    # Unknown input keys are ignored by the model, and recorded by the fake.
    await rep.predictions.async_create(version=SVD_VERSION, input={"input_image": img, "prompt": "ignored"})
    assert (SVD, "prompt") in fake_rep.unknown_inputs
    assert fake_rep.counts.creates[SVD] == 1 and fake_rep.counts.creates[SDXL] == 1


async def test_unknown_version_model_and_auth(fake_rep: FakeReplicate, rep: replicate.Client) -> None:
    with pytest.raises(ReplicateError) as ei:
        await rep.predictions.async_create(version="0" * 64, input={"prompt": "x"})
    assert (ei.value.status, ei.value.title) == (422, "Invalid version or not permitted")
    with pytest.raises(ReplicateError) as ei:  # community models have no model-level create endpoint
        await rep.models.predictions.async_create(model=SDXL, input={"prompt": "x"})
    assert ei.value.status == 404
    with pytest.raises(ReplicateError) as ei:
        await rep.async_run(f"{SDXL}:{'1' * 64}", input={"prompt": "x"})
    assert ei.value.status == 422
    model = await rep.models.async_get(SDXL)
    assert model.latest_version is not None and model.latest_version.id == SDXL_VERSION
    props = model.latest_version.openapi_schema["components"]["schemas"]["Input"]["properties"]
    assert props["num_outputs"]["maximum"] == 4 and "maximum" not in props["width"]

    bad = replicate.Client(api_token="r8_wrong", base_url=fake_rep.base_url)
    with pytest.raises(ReplicateError) as ei:
        await bad.predictions.async_create(version=SDXL_VERSION, input={"prompt": "x"})
    await _close_later([bad])()
    assert (ei.value.status, ei.value.title) == (401, "Unauthenticated")
    assert ei.value.detail == "You did not pass a valid authentication token"


async def test_cancel_never_and_concurrency(fake_rep: FakeReplicate, rep: replicate.Client) -> None:
    fake_rep.script(SVD_VERSION, "never")
    img = media.data_uri(media.png_bytes(576, 1024))
    p = await rep.predictions.async_create(version=SVD_VERSION, input={"input_image": img})
    await fake_rep.wait_for_status(p.id, "processing")
    async with asyncio.timeout(5):
        while True:  # "never" stalls at ~40 %: 10/26
            if "| 10/26 [" in (await rep.predictions.async_get(p.id)).logs:
                break
            await asyncio.sleep(0.02)
    canceled = await rep.predictions.async_cancel(p.id)
    assert canceled.status == "canceled" and canceled.completed_at is not None
    assert fake_rep.counts.cancels == 1

    fake_rep.set_concurrency(SDXL, 1)
    a = await rep.predictions.async_create(version=SDXL_VERSION, input={"width": 512, "height": 512})
    b = await rep.predictions.async_create(version=SDXL_VERSION, input={"width": 512, "height": 512})
    await fake_rep.wait_for_status(a.id, "processing")
    assert fake_rep.prediction(b.id)["status"] == "starting"  # queued behind a
    await fake_rep.wait_for_status(b.id, "succeeded")
    assert fake_rep.prediction(a.id)["status"] == "succeeded"


async def test_expired_output_404(fake_rep: FakeReplicate, rep: replicate.Client) -> None:
    fake_rep.script(SDXL, "expired_output")
    out = await rep.async_run(f"{SDXL}:{SDXL_VERSION}", input={"width": 512, "height": 512})
    assert (await _download(out[0])).status_code == 404
    out2 = await rep.async_run(f"{SDXL}:{SDXL_VERSION}", input={"width": 512, "height": 512})
    assert (await _download(out2[0])).status_code == 200
    fake_rep.expire_outputs()  # an hour later
    assert (await _download(out2[0])).status_code == 404


async def test_rate_limits_sliding_window() -> None:
    async with FakeReplicate(time_factor=0.1, create_limit=3, other_limit=2, rate_window=1.0) as fake:
        client = replicate.Client(api_token=FakeReplicate.API_TOKEN, base_url=fake.base_url)
        ids = [(await client.predictions.async_create(version=SDXL_VERSION, input={"width": 512})).id for _ in range(3)]
        with pytest.raises(ReplicateError) as ei:
            await client.predictions.async_create(version=SDXL_VERSION, input={"width": 512})
        assert ei.value.status == 429 and "resets in ~1s" in ei.value.detail
        assert fake.creates_per_minute() == 3 and fake.counts.throttled == 1
        # GETs: the third inside the window is throttled (Retry-After: 1); the client's RetryTransport
        # waits and retries, so the call still succeeds.
        async with asyncio.timeout(5):
            for pid in ids:
                await client.predictions.async_get(pid)
        statuses = [r.status for r in fake.requests if r.method == "GET"]
        assert statuses == [200, 200, 429, 200]
        assert fake.others_per_minute() == 3 and fake.counts.throttled == 2
        await _close_later([client])()

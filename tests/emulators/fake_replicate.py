"""A local emulator of the Replicate HTTP API for the real `replicate` client (1.0.7).

    fake = FakeReplicate()
    await fake.start()
    client = replicate.Client(api_token=FakeReplicate.API_TOKEN, base_url=fake.base_url)
    p = await client.predictions.async_create(version=SVD_VERSION, input={...})
    ...
    await fake.stop()

What it emulates (see PLATFORM-FACTS A/B):
- Predictions by version (`POST /v1/predictions`, `version` = 64-hex id, `owner/name:id`, or `owner/name`
  for official models) and by model (`POST /v1/models/{o}/{n}/predictions`, official models only:
  community models such as SDXL/SVD answer 404 there, as the live API does); GET, cancel, and the list
  (`GET /v1/predictions`: the token's predictions newest first, 100 a page, `next`/`previous` absolute
  URLs with a `cursor`, each result without its logs, as the live list answers).
  `Prefer: wait[=N]` holds the create up to N s (≤60) and answers "starting" while not done.
- Model and version metadata with a cog-style `openapi_schema`; input validation against it with the
  live API's 422 body (`title: "Input validation failed"`, `detail`, `invalid_fields`).
- Files API (`POST /v1/files` multipart field `content`, GET/list/delete, `/download`).
- Outputs served from `http://127.0.0.1:PORT/files/...` as real bytes: PNGs of the requested size
  (SDXL), H.264 MP4s of 14/25 frames at frames_per_second+1 fps sized per cog-svd's sizing strategy (SVD),
  MP3s of the requested `duration` (stable-audio-2.5, an official model; see the music block at the end).
- Lifecycle starting → processing → succeeded/failed/canceled/aborted with tqdm-style logs.
- Auth (`Authorization: Bearer|Token`), RFC 7807 error bodies, sliding-window rate limits
  (600 creates/min, 3000 other requests/min per token) with Retry-After.

Not emulated: webhooks are recorded but never delivered; `stream` is ignored; deployments, trainings.
Output URLs are http://, so replicate's `transform_output` leaves them as plain `str` (real ones are
https:// and become `FileOutput`): callers must accept both.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import hashlib
import json
import math
import os
import re
import secrets
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from tests.emulators import media
from tests.emulators.speech_audio import speech_bytes, speech_seconds

__all__ = [
    "INTERRUPTED_ERROR",
    "MINIMAX_TTS_MODELS",
    "MINIMAX_VOICES",
    "NSFW_ERROR",
    "OOM_ERROR",
    "OUTCOMES",
    "SDXL_VERSION",
    "SVD_VERSION",
    "Counts",
    "FakeModel",
    "FakeReplicate",
    "RecordedRequest",
    "svd_output_size",
    "tqdm_line",
    "validate_input",
]

SDXL_VERSION = "7762fd07cf82c948538e41f63f77d685e02b063e37e496e96eefd46c929f9bdc"
SVD_VERSION = "3f0457e4619daac51203dedb472816fd4af51f3149fa7a9e0b5ffcf1b8172438"

NSFW_ERROR = "NSFW content detected. Try running it again, or try a different prompt."
INTERRUPTED_ERROR = "Prediction interrupted; please retry (code: PA)"
OOM_ERROR = (
    "CUDA out of memory. Tried to allocate 2.25 GiB (GPU 0; 39.39 GiB total capacity; 33.02 GiB already "
    "allocated; 1.03 GiB free; 36.85 GiB reserved in total by PyTorch) If reserved memory is >> allocated "
    "memory try setting max_split_size_mb to avoid fragmentation."
)
# Outcomes accepted by script()/script_by(); "slow:SECONDS", "fail:MESSAGE" and "held:SECONDS" take an argument.
# "held:SECONDS": the create is accepted (stored, counted, run to success) but its answer is held back that
# long (or until `release_held()`): a client killed meanwhile never learns the prediction's id.
OUTCOMES = (
    "succeed",
    "fail_nsfw",
    "fail_infra",
    "fail_oom",
    "aborted",
    "never",
    "expired_output",
    "nsfw_partial",
    "slow:<seconds>",
    "fail:<message>",
    "held:<seconds>",
)
PAGE_SIZE = 100  # the live list's page
_TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
_NOT_FOUND = {"detail": "The requested resource could not be found.", "status": 404}
_UNAUTH = {
    "title": "Unauthenticated",
    "detail": "You did not pass a valid authentication token",
    "status": 401,
}
_INVALID_VERSION = {
    "title": "Invalid version or not permitted",
    "detail": "The specified version does not exist (or perhaps you don't have permission to use it?)",
    "status": 422,
}
_STATUS_TITLES = {
    400: "Bad Request",
    401: "Unauthenticated",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _now_iso(t: float | None = None) -> str:
    dt = datetime.fromtimestamp(time.time() if t is None else t, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _prediction_id() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(26))


# ------------------------------------------------------------------------------------------ tqdm logs

_TQDM_CHARSET = " " + "".join(chr(c) for c in range(0x258F, 0x2587, -1))  # " ▏▎▍▌▋▊▉█", as tqdm


def _fmt_interval(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def tqdm_line(n: int, total: int, seconds_per_it: float, desc: str | None = None) -> str:
    """One progress line exactly as tqdm's default format prints it (10-char bar, ASCII-less charset)."""
    frac = n / total if total else 0.0
    nsyms = len(_TQDM_CHARSET) - 1
    full, part = divmod(int(frac * 10 * nsyms), nsyms)
    bar = _TQDM_CHARSET[-1] * full
    if full < 10:
        bar += _TQDM_CHARSET[part] + _TQDM_CHARSET[0] * (10 - full - 1)
    elapsed = n * seconds_per_it
    if n == 0:
        tail = f"[{_fmt_interval(0)}<?, ?it/s]"
    else:
        remaining = (total - n) * seconds_per_it
        rate = f"{1 / seconds_per_it:5.2f}it/s" if seconds_per_it <= 1 else f"{seconds_per_it:5.2f}s/it"
        tail = f"[{_fmt_interval(elapsed)}<{_fmt_interval(remaining)}, {rate}]"
    left = f"{desc}: " if desc else ""
    return f"{left}{frac * 100:3.0f}%|{bar}| {n}/{total} {tail}"


# ----------------------------------------------------------------------------------- cog-like schemas


def _cog_openapi(
    props: dict[str, dict[str, Any]], required: list[str], enums: dict[str, list[str]], output: dict[str, Any]
) -> dict[str, Any]:
    """An openapi_schema shaped like the one cog generates (enum inputs via allOf/$ref)."""
    schemas: dict[str, Any] = {}
    input_props: dict[str, Any] = {}
    for order, (name, spec) in enumerate(props.items()):
        spec = dict(spec)
        spec.setdefault("title", name.replace("_", " ").title())
        spec["x-order"] = order
        if name in enums:
            schemas[name] = {
                "enum": enums[name],
                "type": "string",
                "title": name,
                "description": "An enumeration.",
            }
            spec["allOf"] = [{"$ref": f"#/components/schemas/{name}"}]
        input_props[name] = spec
    schemas["Input"] = {"type": "object", "title": "Input", "properties": input_props}
    if required:
        schemas["Input"]["required"] = required
    schemas["Output"] = {"title": "Output", **output}
    schemas["Status"] = {
        "enum": ["starting", "processing", "succeeded", "canceled", "failed"],
        "type": "string",
        "title": "Status",
        "description": "An enumeration.",
    }
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": {},
        "components": {"schemas": schemas},
    }


def _sdxl_schema() -> dict[str, Any]:
    # replicate/cog-sdxl predict.py @977c652 (predict() inputs). width/height have no bounds in cog;
    # non-multiples of 8 fail inside diffusers (prediction "failed"), not with a 422.
    props = {
        "prompt": {
            "type": "string",
            "default": "An astronaut riding a rainbow unicorn",
            "description": "Input prompt",
        },
        "negative_prompt": {"type": "string", "default": "", "description": "Input Negative Prompt"},
        "image": {
            "type": "string",
            "format": "uri",
            "description": "Input image for img2img or inpaint mode",
        },
        "mask": {
            "type": "string",
            "format": "uri",
            "description": "Input mask for inpaint mode. Black areas will be preserved, white areas will be inpainted.",
        },
        "width": {"type": "integer", "default": 1024, "description": "Width of output image"},
        "height": {"type": "integer", "default": 1024, "description": "Height of output image"},
        "num_outputs": {
            "type": "integer",
            "default": 1,
            "minimum": 1,
            "maximum": 4,
            "description": "Number of images to output.",
        },
        "scheduler": {"default": "K_EULER", "description": "scheduler"},
        "num_inference_steps": {
            "type": "integer",
            "default": 50,
            "minimum": 1,
            "maximum": 500,
            "description": "Number of denoising steps",
        },
        "guidance_scale": {
            "type": "number",
            "default": 7.5,
            "minimum": 1,
            "maximum": 50,
            "description": "Scale for classifier-free guidance",
        },
        "prompt_strength": {
            "type": "number",
            "default": 0.8,
            "minimum": 0,
            "maximum": 1,
            "description": "Prompt strength when using img2img / inpaint. 1.0 corresponds to "
            "full destruction of information in image",
        },
        "seed": {"type": "integer", "description": "Random seed. Leave blank to randomize the seed"},
        "refine": {"default": "no_refiner", "description": "Which refine style to use"},
        "high_noise_frac": {
            "type": "number",
            "default": 0.8,
            "minimum": 0,
            "maximum": 1,
            "description": "For expert_ensemble_refiner, the fraction of noise to use",
        },
        "refine_steps": {
            "type": "integer",
            "description": "For base_image_refiner, the number of steps to refine, defaults to num_inference_steps",
        },
        "apply_watermark": {
            "type": "boolean",
            "default": True,
            "description": "Applies a watermark to enable "
            "determining if an image is generated in downstream applications.",
        },
        "lora_scale": {
            "type": "number",
            "default": 0.6,
            "minimum": 0,
            "maximum": 1,
            "description": "LoRA additive scale. Only applicable on trained models.",
        },
        "replicate_weights": {
            "type": "string",
            "description": "Replicate LoRA weights to use. Leave blank to use the default weights.",
        },
        "disable_safety_checker": {
            "type": "boolean",
            "default": False,
            "description": "Disable safety checker "
            "for generated images. This feature is only available through the API.",
        },
    }
    enums = {
        "scheduler": [
            "DDIM",
            "DPMSolverMultistep",
            "HeunDiscrete",
            "KarrasDPM",
            "K_EULER_ANCESTRAL",
            "K_EULER",
            "PNDM",
        ],
        "refine": ["no_refiner", "expert_ensemble_refiner", "base_image_refiner"],
    }
    output = {"type": "array", "items": {"type": "string", "format": "uri"}}
    return _cog_openapi(props, [], enums, output)


def _svd_schema() -> dict[str, Any]:
    # replicate/cog-svd predict.py (the version with video_length/sizing_strategy) + sizing_strategy.py.
    props = {
        "input_image": {"type": "string", "format": "uri", "description": "Input image"},
        "video_length": {"default": "14_frames_with_svd", "description": "Use svd or svd_xt"},
        "sizing_strategy": {
            "default": "maintain_aspect_ratio",
            "description": "Decide how to resize the input image",
        },
        "frames_per_second": {
            "type": "integer",
            "default": 6,
            "minimum": 5,
            "maximum": 30,
            "description": "Frames per second",
        },
        "motion_bucket_id": {
            "type": "integer",
            "default": 127,
            "minimum": 1,
            "maximum": 255,
            "description": "Increase overall motion in the generated video",
        },
        "cond_aug": {"type": "number", "default": 0.02, "description": "conditional aug"},
        "decoding_t": {
            "type": "integer",
            "default": 7,
            "description": "Number of frames to decode at a time",
        },
        "seed": {"type": "integer", "description": "Random seed. Leave blank to randomize the seed"},
    }
    enums = {
        "video_length": ["14_frames_with_svd", "25_frames_with_svd_xt"],
        "sizing_strategy": ["maintain_aspect_ratio", "crop_to_16_9", "use_image_dimensions"],
    }
    return _cog_openapi(props, ["input_image"], enums, {"type": "string", "format": "uri"})


def _generic_schema() -> dict[str, Any]:
    return _cog_openapi({"prompt": {"type": "string"}}, [], {}, {"type": "string"})


_URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _fmt_num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def validate_input(openapi_schema: dict[str, Any], value: Any) -> list[dict[str, str]]:
    """invalid_fields the live API reports for `input` against a cog schema (gojsonschema wording)."""
    schemas = openapi_schema["components"]["schemas"]
    spec = schemas["Input"]
    if not isinstance(value, dict):
        return [
            {
                "type": "invalid_type",
                "field": "input",
                "description": f"Invalid type. Expected: object, given: {_json_type(value)}",
            }
        ]
    errors: list[dict[str, str]] = []
    for name in spec.get("required", []):
        if name not in value:
            errors.append({"type": "required", "field": "input", "description": f"{name} is required"})
    for name, v in value.items():
        prop = spec["properties"].get(name)
        if prop is None:
            continue  # cog's Input schema allows additional properties; they are ignored
        fld = f"input.{name}"
        enum = None
        for ref in prop.get("allOf", []):
            enum = schemas[ref["$ref"].rsplit("/", 1)[1]]["enum"]
        if enum is not None:
            if v not in enum:
                choices = ", ".join(json.dumps(c) for c in enum)
                errors.append(
                    {
                        "type": "enum",
                        "field": fld,
                        "description": f"{name} must be one of the following: {choices}",
                    }
                )
            continue
        typ = prop.get("type")
        given = _json_type(v)
        ok = (
            given == typ
            or (typ == "number" and given == "integer")
            or (typ == "integer" and given == "number" and float(v).is_integer())
        )
        if not ok:
            errors.append(
                {
                    "type": "invalid_type",
                    "field": fld,
                    "description": f"Invalid type. Expected: {typ}, given: {given}",
                }
            )
            continue
        if typ in ("integer", "number"):
            if "minimum" in prop and v < prop["minimum"]:
                errors.append(
                    {
                        "type": "number_gte",
                        "field": fld,
                        "description": f"Must be greater than or equal to {_fmt_num(prop['minimum'])}",
                    }
                )
            if "maximum" in prop and v > prop["maximum"]:
                errors.append(
                    {
                        "type": "number_lte",
                        "field": fld,
                        "description": f"Must be less than or equal to {_fmt_num(prop['maximum'])}",
                    }
                )
        if typ == "string" and prop.get("format") == "uri" and not _URI_RE.match(v):
            errors.append({"type": "format", "field": fld, "description": "Does not match format 'uri'"})
    return errors


def _validation_body(errors: list[dict[str, str]]) -> dict[str, Any]:
    detail = "".join(
        f"- {e['field']}: {e['description']}\n" if e["field"] else f"- {e['description']}\n" for e in errors
    )
    return {"detail": detail, "status": 422, "title": "Input validation failed", "invalid_fields": errors}


def svd_output_size(strategy: str, width: int, height: int) -> tuple[int, int]:
    """cog-svd sizing_strategy.py, ported: the (width, height) of the generated video."""
    if strategy == "crop_to_16_9":
        return 1024, 576
    if strategy == "maintain_aspect_ratio":
        aspect = width / height
        if aspect >= 1:
            new_w = min(width, 1024)
            new_h = int(new_w / aspect)
        else:
            new_h = min(height, 576)
            new_w = int(new_h * aspect)
        if new_h > 576:
            new_h = 576
            new_w = int(new_h * aspect)
        if new_w > 1024:
            new_w = 1024
            new_h = int(new_w / aspect)
        return new_w - new_w % 64, new_h - new_h % 64
    return width - width % 64, height - height % 64  # use_image_dimensions


# ------------------------------------------------------------------------------ text-to-speech (MiniMax)
# The TTS models (owned by the voice work; music models live in their own block). Schema from the
# model's Replicate API page as summarised in PLATFORM-FACTS G: `text` (≤ 5,000 characters, checked
# by the model at run time, not by the schema), the 17 system `voice_id`s, `speed` 0.5–2, `volume`
# 0–10, `pitch` −12..12, and enums for emotion, language_boost, sample_rate, bitrate, format, channel.
# Output: one audio URI. The exact wording of MiniMax's run-time errors is not verified.

MINIMAX_TTS_MODELS = ("minimax/speech-02-turbo", "minimax/speech-2.8-turbo")
MINIMAX_TTS_VERSION = "6b2f1a6b8e5d4c3b2a19f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6b5a43"
MINIMAX_VOICES = (
    "Wise_Woman", "Friendly_Person", "Inspirational_girl", "Deep_Voice_Man", "Calm_Woman", "Casual_Guy",
    "Lively_Girl", "Patient_Man", "Young_Knight", "Determined_Man", "Lovely_Girl", "Decent_Boy",
    "Imposing_Manner", "Elegant_Man", "Abbess", "Sweet_Girl_2", "Exuberant_Girl",
)  # fmt: skip
MINIMAX_MAX_CHARS = 5000
MINIMAX_LANGUAGE_BOOSTS = (
    "None", "Automatic", "Chinese", "Chinese,Yue", "English", "Arabic", "Russian", "Spanish", "French",
    "Portuguese", "German", "Turkish", "Dutch", "Ukrainian", "Vietnamese", "Indonesian", "Japanese", "Italian",
    "Korean", "Thai", "Polish", "Romanian", "Greek", "Czech", "Finnish", "Hindi",
)  # fmt: skip
VOICE_NOT_FOUND_ERROR = "MiniMax API error (status_code 2054): voice id not exist: {voice}"
TEXT_TOO_LONG_ERROR = "MiniMax API error (status_code 2013): invalid params, text length {n} exceeds 5000 characters"
_AUDIO_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav", "flac": "audio/flac", "pcm": "application/octet-stream"}
_PAUSE = re.compile(r"<#\s*([\d.]+)\s*#>")


def minimax_tts_schema() -> dict[str, Any]:
    props = {
        "text": {
            "type": "string",
            "description": "Text to convert to speech. Every character is 1 token. Maximum 5000 characters. "
            "Use <#x#> between words to control pause duration (0.01-99.99s).",
        },
        "voice_id": {
            "type": "string",
            "default": "Wise_Woman",
            "description": "Desired voice ID. Use a voice ID you have trained, or one of the following system "
            "voice IDs: " + ", ".join(MINIMAX_VOICES),
        },
        "speed": {"type": "number", "default": 1, "minimum": 0.5, "maximum": 2, "description": "Speech speed"},
        "volume": {"type": "number", "default": 1, "minimum": 0, "maximum": 10, "description": "Speech volume"},
        "pitch": {"type": "integer", "default": 0, "minimum": -12, "maximum": 12, "description": "Speech pitch"},
        "emotion": {"default": "auto", "description": "Speech emotion"},
        "english_normalization": {
            "type": "boolean",
            "default": False,
            "description": "Enable English text normalization for better number reading",
        },
        "sample_rate": {"default": 32000, "description": "Sample rate for the generated speech"},
        "bitrate": {"default": 128000, "description": "Bitrate for the generated speech"},
        "audio_format": {"default": "mp3", "description": "Audio format"},
        "channel": {"default": "mono", "description": "Number of audio channels"},
        "subtitle_enable": {"type": "boolean", "default": False, "description": "Sentence timestamps"},
        "language_boost": {"default": "None", "description": "Enhance recognition of specific languages"},
    }
    enums: dict[str, list[Any]] = {
        "emotion": ["auto", "happy", "sad", "angry", "fearful", "disgusted", "surprised", "calm", "fluent", "neutral"],
        "sample_rate": [8000, 16000, 22050, 24000, 32000, 44100],
        "bitrate": [32000, 64000, 128000, 256000],
        "audio_format": ["mp3", "wav", "flac", "pcm"],
        "channel": ["mono", "stereo"],
        "language_boost": list(MINIMAX_LANGUAGE_BOOSTS),
    }
    schema = _cog_openapi(props, ["text"], enums, {"type": "string", "format": "uri"})  # type: ignore[arg-type]
    for name in ("sample_rate", "bitrate"):
        schema["components"]["schemas"][name]["type"] = "integer"
    return schema


# --------------------------------------------------------------------------------------------- models


@dataclass
class FakeVersion:
    id: str
    created_at: str
    cog_version: str
    openapi_schema: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at,
            "cog_version": self.cog_version,
            "openapi_schema": self.openapi_schema,
        }


@dataclass
class FakeModel:
    owner: str
    name: str
    kind: str  # "sdxl" | "svd" | "generic"
    versions: dict[str, FakeVersion]
    latest_version: str
    official: bool = False
    starting: float = 0.05  # seconds in "starting" (boot/queue), scaled by time_factor
    processing: float = 0.3  # seconds in "processing", scaled by time_factor
    concurrency: int | None = None  # predictions processed at once; the rest wait in "starting"
    description: str = ""
    run_count: int = 0
    output: Any = None  # generic models: output value, or callable(input) -> output
    _slots: asyncio.Semaphore | None = None

    @property
    def ref(self) -> str:
        return f"{self.owner}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "url": f"https://replicate.com/{self.ref}",
            "owner": self.owner,
            "name": self.name,
            "description": self.description,
            "visibility": "public",
            "github_url": None,
            "paper_url": None,
            "license_url": None,
            "run_count": self.run_count,
            "cover_image_url": None,
            "default_example": None,
            "latest_version": self.versions[self.latest_version].to_json(),
        }


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    at: float  # time.monotonic()
    status: int | None = None


@dataclass
class Counts:
    creates: Counter[str] = field(default_factory=Counter)  # by "owner/name"
    gets: int = 0  # GET /v1/predictions/{id}
    lists: int = 0
    cancels: int = 0
    files: int = 0  # file uploads
    versions: int = 0
    models: int = 0
    downloads: int = 0  # output / file byte downloads
    throttled: int = 0  # 429s from the rate limiter (not scripted ones)
    dropped: int = 0  # stalled creates whose client went away before they were accepted
    unauthorized: int = 0

    @property
    def total_creates(self) -> int:
        return sum(self.creates.values())


@dataclass
class _Prediction:
    id: str
    model: FakeModel
    version: str
    input: dict[str, Any]
    outcome: str
    token: str
    created: float
    status: str = "starting"
    output: Any = None
    logs: str = ""
    error: str | None = None
    started: float | None = None
    completed: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    webhook: str | None = None
    task: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    output_keys: list[str] = field(default_factory=list)
    held: float = 0.0  # seconds its create's answer was held back ("held:SECONDS")


@dataclass
class _UploadedFile:
    id: str
    name: str
    content_type: str
    data: bytes
    metadata: dict[str, Any]
    created_at: str


@dataclass
class _Fault:
    status: int
    times: int
    retry_after: float | None = None
    detail: str | None = None
    html: bool = False


# --------------------------------------------------------------------------------------------- server


class FakeReplicate:
    API_TOKEN = "r8_fake_test_token"

    def __init__(
        self,
        *,
        api_token: str = API_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        time_factor: float = 1.0,
        sdxl_version: str = SDXL_VERSION,
        create_limit: int = 600,
        other_limit: int = 3000,
        rate_window: float = 60.0,
    ) -> None:
        self.tokens: set[str] = {api_token}
        self.host = host
        self.port = port
        self.time_factor = time_factor
        self.create_limit = create_limit
        self.other_limit = other_limit
        self.rate_window = rate_window
        self.base_url = ""
        self.models: dict[str, FakeModel] = {}
        self.predictions: dict[str, _Prediction] = {}
        self.files: dict[str, _UploadedFile] = {}
        self.requests: list[RecordedRequest] = []
        self.counts = Counts()
        self.unknown_inputs: list[tuple[str, str]] = []  # (model ref, input key) the model ignored
        # The image each video prediction was given, as the model decoded it (a data URI's or an uploaded
        # file's bytes), by prediction id: what a test compares with the seed it meant to animate.
        self.video_inputs: dict[str, bytes] = {}
        self.default_outcome = "succeed"
        self._scripts: dict[str, deque[str]] = {}
        self._predicate: Callable[[str, str, dict[str, Any]], str | None] | None = None
        self._create_faults: deque[_Fault] = deque()
        self._get_faults: deque[_Fault] = deque()
        self._list_faults: deque[_Fault] = deque()
        self._stalls: deque[float] = deque()
        self.stalled = 0  # creates stalled by `stall_creates` right now
        self._download_faults: deque[_Fault] = deque()
        self._blobs: dict[str, tuple[bytes, str]] = {}
        # One synthesis per distinct line: fifty ads approved together send the same lines at once,
        # and an ffmpeg run each was this host's CPU (not Replicate's) slowing every seed beside them.
        self._speech: dict[tuple[float, str, int, int], asyncio.Task[bytes]] = {}
        self._expired: set[str] = set()
        self._create_times: list[float] = []
        self._other_times: list[float] = []
        self._window: dict[tuple[str, str], deque[float]] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        # Ids of the creates whose answer is being held back now ("held:SECONDS"), and what ends every hold.
        self.holding: set[str] = set()
        self._release: asyncio.Event | None = None
        add_music_models(self)  # the music block at the end of this file
        add_video_models(self)  # the image-to-video block at the end of this file
        self.add_model(
            "stability-ai/sdxl",
            sdxl_version,
            kind="sdxl",
            starting=0.05,
            processing=0.3,
            description="A text-to-image generative AI model that creates beautiful images",
        )
        self.add_model(
            "stability-ai/stable-video-diffusion",
            SVD_VERSION,
            kind="svd",
            starting=0.05,
            processing=0.6,
            description="SVD is a research-only image to video model",
        )
        for ref in MINIMAX_TTS_MODELS:  # text-to-speech: official models, created by name
            self.add_model(
                ref, MINIMAX_TTS_VERSION, kind="tts", official=True, starting=0.02, processing=0.2,
                openapi_schema=minimax_tts_schema(), description="Text-to-Audio (T2A) with emotional expression",
            )  # fmt: skip

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> FakeReplicate:
        app = web.Application(client_max_size=100 * 1024 * 1024)
        r = app.router
        r.add_post("/v1/predictions", self._create_by_version)
        r.add_get("/v1/predictions", self._list_predictions)
        r.add_get("/v1/predictions/{id}", self._get_prediction)
        r.add_post("/v1/predictions/{id}/cancel", self._cancel_prediction)
        r.add_post("/v1/models/{owner}/{name}/predictions", self._create_by_model)
        r.add_get("/v1/models/{owner}/{name}", self._get_model)
        r.add_get("/v1/models/{owner}/{name}/versions", self._list_versions)
        r.add_get("/v1/models/{owner}/{name}/versions/{version}", self._get_version)
        r.add_post("/v1/files", self._upload_file)
        r.add_get("/v1/files", self._list_files)
        r.add_get("/v1/files/{id}", self._get_file)
        r.add_get("/v1/files/{id}/download", self._download_file)
        r.add_delete("/v1/files/{id}", self._delete_file)
        r.add_get("/files/{key:.+}", self._serve_blob)
        r.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://{self.host}:{self.port}"
        return self

    async def stop(self) -> None:
        self.release_held()
        tasks = [p.task for p in self.predictions.values() if p.task and not p.task.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeReplicate:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ configuration
    def add_model(
        self,
        ref: str,
        version: str,
        *,
        kind: str = "generic",
        official: bool = False,
        starting: float = 0.05,
        processing: float = 0.3,
        openapi_schema: dict[str, Any] | None = None,
        output: Any = None,
        description: str = "",
        cog_version: str = "0.8.6",
    ) -> FakeModel:
        """Register a model (or a new latest version of a known one). kind: sdxl | svd | generic."""
        owner, name = ref.split("/", 1)
        schema = openapi_schema or {"sdxl": _sdxl_schema, "svd": _svd_schema}.get(kind, _generic_schema)()
        ver = FakeVersion(version, _now_iso(time.time() - 86400 * 300), cog_version, schema)
        if ref in self.models:
            model = self.models[ref]
            model.versions[version] = ver
            model.latest_version = version
            return model
        model = FakeModel(
            owner,
            name,
            kind,
            {version: ver},
            version,
            official=official,
            starting=starting,
            processing=processing,
            description=description,
            output=output,
        )
        self.models[ref] = model
        return model

    def set_latency(self, model: str, *, processing: float | None = None, starting: float | None = None) -> None:
        """Per-model latency in seconds (both scaled by time_factor)."""
        m = self._model_by_key(model)
        if processing is not None:
            m.processing = processing
        if starting is not None:
            m.starting = starting

    def set_concurrency(self, model: str, n: int | None) -> None:
        """At most n predictions of this model process at once; the others wait in "starting"."""
        m = self._model_by_key(model)
        m.concurrency = n
        m._slots = asyncio.Semaphore(n) if n else None

    def script(self, model_or_version: str, *outcomes: str, times: int = 1) -> None:
        """Outcomes for the next predictions of a model ("owner/name") or version id, in order.

        script("stability-ai/sdxl", "fail_nsfw")          next SDXL prediction fails NSFW
        script(SVD_VERSION, "slow:2", "succeed")          next one takes 2 s (wall clock), then normal
        script("stability-ai/sdxl", "fail_infra", times=3)
        """
        for o in outcomes:
            _check_outcome(o)
        self._scripts.setdefault(model_or_version, deque()).extend(list(outcomes) * times)

    def script_by(self, fn: Callable[[str, str, dict[str, Any]], str | None] | None) -> None:
        """fn(model_ref, version_id, input) -> outcome or None (= default); consulted after script()."""
        self._predicate = fn

    def fail_create(
        self,
        status: int = 429,
        *,
        retry_after: float | None = 2,
        times: int = 1,
        detail: str | None = None,
        html: bool = False,
    ) -> None:
        """The next `times` prediction creates answer `status` (before validation or rate limiting)."""
        self._create_faults.append(_Fault(status, times, retry_after if status == 429 else None, detail, html))

    def fail_get(
        self,
        status: int = 500,
        *,
        times: int = 1,
        retry_after: float | None = None,
        detail: str | None = None,
        html: bool = False,
    ) -> None:
        """The next `times` GET /v1/predictions/{id} answer `status`."""
        self._get_faults.append(_Fault(status, times, retry_after, detail, html))

    def stall_creates(self, seconds: float, *, times: int = 1) -> None:
        """The next `times` creates reach the server but are not accepted for `seconds` (a request stuck on
        its way in): a client that gives up or is killed meanwhile leaves no prediction (`counts.dropped`)."""
        self._stalls.extend([seconds] * times)

    def fail_list(self, status: int = 500, *, times: int = 1, retry_after: float | None = None) -> None:
        """The next `times` GET /v1/predictions (the list) answer `status`."""
        self._list_faults.append(_Fault(status, times, retry_after))

    def fail_download(self, status: int = 502, *, times: int = 1) -> None:
        """The next `times` output-file downloads answer `status`."""
        self._download_faults.append(_Fault(status, times))

    def release_held(self) -> None:
        """Answer every create held back by "held:SECONDS" now, and end every stall (`stall_creates`)."""
        if self._release is not None:
            self._release.set()
        self._release = None

    def expire_outputs(self) -> None:
        """Every output produced so far now 404s (Replicate deletes outputs after an hour)."""
        self._expired.update(self._blobs)

    # ------------------------------------------------------------------ inspection
    def prediction(self, prediction_id: str) -> dict[str, Any]:
        return self._prediction_json(self.predictions[prediction_id])

    async def wait_for_status(
        self,
        prediction_id: str,
        *statuses: str,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Wait (bounded) until a prediction reaches one of `statuses` (default: any terminal one)."""
        wanted = set(statuses) or _TERMINAL
        deadline = time.monotonic() + timeout
        while True:
            p = self.predictions[prediction_id]
            if p.status in wanted:
                return self._prediction_json(p)
            if time.monotonic() > deadline:
                raise TimeoutError(f"prediction {prediction_id} is {p.status}, wanted {sorted(wanted)}")
            await asyncio.sleep(0.01)

    def creates_per_minute(self, window: float = 60.0) -> int:
        """Peak number of creates within any `window` seconds so far (60 s: per minute; a benchmark
        that compresses time passes its compressed minute, the same as its `rate_window`)."""
        return _peak(self._create_times, window)

    def others_per_minute(self, window: float = 60.0) -> int:
        """Peak number of non-create API requests within any `window` seconds so far."""
        return _peak(self._other_times, window)

    # ------------------------------------------------------------------ helpers
    def _model_by_key(self, key: str) -> FakeModel:
        if key in self.models:
            return self.models[key]
        for m in self.models.values():
            if key in m.versions:
                return m
        raise KeyError(key)

    def _json(
        self, rec: RecordedRequest, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> web.Response:
        rec.status = status
        return web.Response(
            status=status, text=json.dumps(body), content_type="application/json", headers=headers or {}
        )

    def _fault_response(self, rec: RecordedRequest, fault: _Fault) -> web.Response:
        headers: dict[str, str] = {}
        if fault.status == 429:
            wait = fault.retry_after if fault.retry_after is not None else 2
            secs = max(1, math.ceil(wait)) if wait >= 1 else wait
            headers["Retry-After"] = _fmt_num(secs)
            body: dict[str, Any] = {
                "detail": fault.detail or f"Request was throttled. Expected available in {_fmt_num(secs)} seconds.",
                "status": 429,
                "retry_after": secs,
            }
        else:
            if fault.retry_after is not None:
                headers["Retry-After"] = _fmt_num(fault.retry_after)
            title = _STATUS_TITLES.get(fault.status, "Error")
            body = {"title": title, "detail": fault.detail or f"{title}.", "status": fault.status}
        if fault.html:
            rec.status = fault.status
            html = f"<html><head><title>{fault.status}</title></head><body>{fault.status}</body></html>"
            return web.Response(status=fault.status, text=html, content_type="text/html", headers=headers)
        return self._json(rec, fault.status, body, headers)

    @staticmethod
    def _take(faults: deque[_Fault]) -> _Fault | None:
        if not faults:
            return None
        f = faults[0]
        f.times -= 1
        if f.times <= 0:
            faults.popleft()
        return f

    async def _record(self, request: web.Request, *, body: bool = True) -> RecordedRequest:
        data: Any = None
        if body and request.can_read_body and request.content_type == "application/json":
            raw = await request.read()
            try:
                data = json.loads(raw) if raw else None
            except ValueError:
                data = raw
        rec = RecordedRequest(request.method, request.path, dict(request.headers), data, time.monotonic())
        self.requests.append(rec)
        return rec

    def _token(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        for scheme in ("Bearer ", "Token "):
            if auth.startswith(scheme) and auth[len(scheme) :].strip() in self.tokens:
                return auth[len(scheme) :].strip()
        return None

    async def _gate(self, request: web.Request, kind: str) -> tuple[RecordedRequest, str | web.Response]:
        """Record, authenticate and rate-limit one API request. kind: "create" | "other"."""
        rec = await self._record(request, body=kind == "create")
        token = self._token(request)
        if token is None:
            self.counts.unauthorized += 1
            return rec, self._json(rec, 401, _UNAUTH)
        limit = self.create_limit if kind == "create" else self.other_limit
        now = time.monotonic()
        window = self._window.setdefault((token, kind), deque())
        while window and now - window[0] >= self.rate_window:
            window.popleft()
        if len(window) >= limit:
            self.counts.throttled += 1
            wait = max(1, math.ceil(self.rate_window - (now - window[0])))
            what = "creating predictions" if kind == "create" else "API requests"
            return rec, self._json(
                rec,
                429,
                {
                    "detail": f"Request was throttled. Your rate limit for {what} is {limit} requests per "
                    "minute. "
                    f"Your rate limit resets in ~{wait}s.",
                    "status": 429,
                    "retry_after": wait,
                },
                {"Retry-After": str(wait)},
            )
        window.append(now)
        (self._create_times if kind == "create" else self._other_times).append(now)
        return rec, token

    def _prediction_json(self, p: _Prediction) -> dict[str, Any]:
        base = f"{self.base_url}/v1/predictions/{p.id}"
        return {
            "id": p.id,
            "model": p.model.ref,
            "version": p.version,
            "input": p.input,
            "logs": p.logs,
            "output": p.output,
            "data_removed": False,
            "error": p.error,
            "status": p.status,
            "source": "api",
            "created_at": _now_iso(p.created),
            "started_at": _now_iso(p.started) if p.started else None,
            "completed_at": _now_iso(p.completed) if p.completed else None,
            "urls": {"cancel": f"{base}/cancel", "get": base, "web": f"https://replicate.com/p/{p.id}"},
            "metrics": dict(p.metrics),
            **({"webhook": p.webhook} if p.webhook else {}),
        }

    # ------------------------------------------------------------------ handlers: predictions
    async def _stall(self, request: web.Request) -> bool:
        """Hold a create before accepting it when `stall_creates` says so; False when its client left."""
        if not self._stalls:
            return True
        self.stalled += 1
        try:
            await self._held_for(self._stalls.popleft())
        finally:
            self.stalled -= 1
        if request.transport is None or request.transport.is_closing():
            self.counts.dropped += 1
            return False
        return True

    async def _create_by_version(self, request: web.Request) -> web.Response:
        if not await self._stall(request):
            return web.Response(status=499)
        rec, gate = await self._gate(request, "create")
        if isinstance(gate, web.Response):
            return gate
        if fault := self._take(self._create_faults):
            return self._fault_response(rec, fault)
        body = rec.json
        if not isinstance(body, dict):
            return self._json(
                rec,
                400,
                {"title": "Bad Request", "detail": "Request body must be a JSON object", "status": 400},
            )
        errors = []
        if "version" not in body:
            errors.append({"type": "required", "field": "", "description": "version is required"})
        if "input" not in body:
            errors.append({"type": "required", "field": "", "description": "input is required"})
        allowed = {"version", "input", "webhook", "webhook_completed", "webhook_events_filter", "stream"}
        for key in body:
            if key not in allowed:
                errors.append(
                    {
                        "type": "additional_property_not_allowed",
                        "field": "",
                        "description": f"Additional property {key} is not allowed",
                    }
                )
        if errors:
            return self._json(rec, 422, _validation_body(errors))
        ref = body["version"]
        model, version = self._resolve_version(ref if isinstance(ref, str) else "")
        if model is None:
            return self._json(rec, 422, _INVALID_VERSION)
        return await self._create(request, rec, gate, model, version, body)

    def _resolve_version(self, ref: str) -> tuple[FakeModel | None, str]:
        if ":" in ref:
            mref, vid = ref.split(":", 1)
            m = self.models.get(mref)
            return (m, vid) if m and vid in m.versions else (None, "")
        if "/" in ref:
            m = self.models.get(ref)
            return (m, m.latest_version) if m and m.official else (None, "")
        for m in self.models.values():
            if ref in m.versions:
                return m, ref
        return None, ""

    async def _create_by_model(self, request: web.Request) -> web.Response:
        if not await self._stall(request):
            return web.Response(status=499)
        rec, gate = await self._gate(request, "create")
        if isinstance(gate, web.Response):
            return gate
        if fault := self._take(self._create_faults):
            return self._fault_response(rec, fault)
        model = self.models.get(f"{request.match_info['owner']}/{request.match_info['name']}")
        if model is None or not model.official:
            return self._json(rec, 404, _NOT_FOUND)
        body = rec.json
        if not isinstance(body, dict) or "input" not in body:
            return self._json(
                rec,
                422,
                _validation_body([{"type": "required", "field": "", "description": "input is required"}]),
            )
        return await self._create(request, rec, gate, model, model.latest_version, body)

    async def _create(
        self,
        request: web.Request,
        rec: RecordedRequest,
        token: str,
        model: FakeModel,
        version: str,
        body: dict[str, Any],
    ) -> web.Response:
        schema = model.versions[version].openapi_schema
        inp = body.get("input")
        errors = validate_input(schema, inp)
        if errors:
            return self._json(rec, 422, _validation_body(errors))
        known = schema["components"]["schemas"]["Input"]["properties"]
        self.unknown_inputs.extend((model.ref, k) for k in inp if k not in known)
        outcome = self._pick_outcome(model, version, inp)
        held = float(outcome.split(":", 1)[1]) if outcome.startswith("held:") else 0.0
        outcome = "succeed" if held else outcome
        p = _Prediction(_prediction_id(), model, version, inp, outcome, token, time.time(), webhook=body.get("webhook"))
        p.held = held
        self.predictions[p.id] = p
        self.counts.creates[model.ref] += 1
        model.run_count += 1
        p.task = asyncio.get_running_loop().create_task(self._run(p))
        wait = _prefer_wait(request.headers.get("Prefer", ""))
        if wait:
            try:
                await asyncio.wait_for(p.done.wait(), timeout=wait)
            except TimeoutError:
                pass
        if held:
            await self._hold(p)
        out = self._prediction_json(p)
        if wait and p.status not in _TERMINAL:
            out["status"] = "starting"  # what the live sync API reports when the wait runs out
        return self._json(rec, 201, out, {"Location": out["urls"]["get"]})

    async def _hold(self, p: _Prediction) -> None:
        """Keep a create's answer back for `p.held` s (a client killed meanwhile never gets the id)."""
        self.holding.add(p.id)
        try:
            await self._held_for(p.held)
        finally:
            self.holding.discard(p.id)

    async def _held_for(self, seconds: float) -> None:
        """Wait `seconds`, or less if `release_held()` (or `stop()`) comes first."""
        if self._release is None:
            self._release = asyncio.Event()
        try:
            await asyncio.wait_for(self._release.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def _pick_outcome(self, model: FakeModel, version: str, inp: dict[str, Any]) -> str:
        for key in (version, model.ref):
            q = self._scripts.get(key)
            if q:
                return q.popleft()
        if self._predicate is not None:
            o = self._predicate(model.ref, version, inp)
            if o:
                _check_outcome(o)
                return o
        return self.default_outcome

    async def _list_predictions(self, request: web.Request) -> web.Response:
        rec, gate = await self._gate(request, "other")
        if isinstance(gate, web.Response):
            return gate
        self.counts.lists += 1
        if fault := self._take(self._list_faults):
            return self._fault_response(rec, fault)
        # Newest first; a cursor is where a page ends (for `next`) or starts (for `previous`), opaque to
        # the client, which follows the absolute URLs.
        mine = sorted((p for p in self.predictions.values() if p.token == gate), key=lambda p: (-p.created, p.id))
        start = 0
        if cursor := request.query.get("cursor"):
            try:
                direction, created, pid = _read_cursor(cursor)
            except ValueError:
                return self._json(rec, 400, {"title": "Bad Request", "detail": "Invalid cursor", "status": 400})
            after = bisect.bisect_right([(-p.created, p.id) for p in mine], (-created, pid))
            if direction == "n":
                start = after
            else:  # the page of newer predictions that ends just before the cursor's
                before = bisect.bisect_left([(-p.created, p.id) for p in mine], (-created, pid))
                start = max(0, before - PAGE_SIZE)
        page = mine[start : start + PAGE_SIZE]
        url = f"{self.base_url}/v1/predictions?cursor="
        nxt = url + _cursor("n", page[-1]) if page and start + PAGE_SIZE < len(mine) else None
        prev = url + _cursor("p", page[0]) if page and start > 0 else None
        items = [{k: v for k, v in self._prediction_json(p).items() if k != "logs"} for p in page]
        return self._json(rec, 200, {"next": nxt, "previous": prev, "results": items})

    async def _get_prediction(self, request: web.Request) -> web.Response:
        rec, gate = await self._gate(request, "other")
        if isinstance(gate, web.Response):
            return gate
        self.counts.gets += 1
        if fault := self._take(self._get_faults):
            return self._fault_response(rec, fault)
        p = self.predictions.get(request.match_info["id"])
        if p is None or p.token != gate:
            return self._json(rec, 404, _NOT_FOUND)
        return self._json(rec, 200, self._prediction_json(p))

    async def _cancel_prediction(self, request: web.Request) -> web.Response:
        rec, gate = await self._gate(request, "other")
        if isinstance(gate, web.Response):
            return gate
        self.counts.cancels += 1
        p = self.predictions.get(request.match_info["id"])
        if p is None or p.token != gate:
            return self._json(rec, 404, _NOT_FOUND)
        if p.status not in _TERMINAL:
            if p.task and not p.task.done():
                p.task.cancel()
            self._finish(p, "canceled")
        return self._json(rec, 200, self._prediction_json(p))

    # ------------------------------------------------------------------ handlers: models
    async def _get_model(self, request: web.Request) -> web.Response:
        rec, gate = await self._gate(request, "other")
        if isinstance(gate, web.Response):
            return gate
        self.counts.models += 1
        model = self.models.get(f"{request.match_info['owner']}/{request.match_info['name']}")
        if model is None:
            return self._json(rec, 404, _NOT_FOUND)
        return self._json(rec, 200, model.to_json())

    async def _list_versions(self, request: web.Request) -> web.Response:
        rec, gate = await self._gate(request, "other")
        if isinstance(gate, web.Response):
            return gate
        self.counts.versions += 1
        model = self.models.get(f"{request.match_info['owner']}/{request.match_info['name']}")
        if model is None:
            return self._json(rec, 404, _NOT_FOUND)
        items = [v.to_json() for v in reversed(list(model.versions.values()))]
        return self._json(rec, 200, {"next": None, "previous": None, "results": items})

    async def _get_version(self, request: web.Request) -> web.Response:
        rec, gate = await self._gate(request, "other")
        if isinstance(gate, web.Response):
            return gate
        self.counts.versions += 1
        model = self.models.get(f"{request.match_info['owner']}/{request.match_info['name']}")
        version = model.versions.get(request.match_info["version"]) if model else None
        if version is None:
            return self._json(rec, 404, _NOT_FOUND)
        return self._json(rec, 200, version.to_json())

    # ------------------------------------------------------------------ handlers: files
    def _file_json(self, f: _UploadedFile) -> dict[str, Any]:
        return {
            "id": f.id,
            "name": f.name,
            "content_type": f.content_type,
            "size": len(f.data),
            "etag": hashlib.md5(f.data).hexdigest(),
            "checksums": {
                "sha256": hashlib.sha256(f.data).hexdigest(),
                "md5": hashlib.md5(f.data).hexdigest(),
            },
            "metadata": f.metadata,
            "created_at": f.created_at,
            "expires_at": _now_iso(time.time() + 86400),
            "urls": {"get": f"{self.base_url}/v1/files/{f.id}"},
        }

    async def _upload_file(self, request: web.Request) -> web.Response:
        rec, gate = await self._gate(request, "other")
        if isinstance(gate, web.Response):
            return gate
        if not request.content_type.startswith("multipart/"):
            return self._json(
                rec, 400, {"title": "Bad Request", "detail": "Expected multipart/form-data", "status": 400}
            )
        content: tuple[str, str, bytes] | None = None
        metadata: dict[str, Any] = {}
        reader = await request.multipart()
        async for part in reader:
            if part.name == "content":
                content = (
                    part.filename or "file",
                    part.headers.get("Content-Type", "application/octet-stream"),
                    bytes(await part.read()),
                )
            elif part.name == "metadata":
                try:
                    metadata = json.loads(await part.text())
                except ValueError:
                    metadata = {}
        if content is None:
            return self._json(
                rec,
                422,
                _validation_body([{"type": "required", "field": "", "description": "content is required"}]),
            )
        self.counts.files += 1
        f = _UploadedFile(uuid.uuid4().hex[:12], content[0], content[1], content[2], metadata, _now_iso())
        self.files[f.id] = f
        rec.json = {
            "filename": f.name,
            "content_type": f.content_type,
            "size": len(f.data),
            "metadata": metadata,
        }
        return self._json(rec, 201, self._file_json(f))

    async def _list_files(self, request: web.Request) -> web.Response:
        rec, gate = await self._gate(request, "other")
        if isinstance(gate, web.Response):
            return gate
        return self._json(
            rec,
            200,
            {"next": None, "previous": None, "results": [self._file_json(f) for f in self.files.values()]},
        )

    async def _get_file(self, request: web.Request) -> web.Response:
        rec, gate = await self._gate(request, "other")
        if isinstance(gate, web.Response):
            return gate
        f = self.files.get(request.match_info["id"])
        if f is None:
            return self._json(rec, 404, _NOT_FOUND)
        return self._json(rec, 200, self._file_json(f))

    async def _download_file(self, request: web.Request) -> web.Response:
        rec, gate = await self._gate(request, "other")
        if isinstance(gate, web.Response):
            return gate
        f = self.files.get(request.match_info["id"])
        if f is None:
            return self._json(rec, 404, _NOT_FOUND)
        self.counts.downloads += 1
        rec.status = 200
        return web.Response(body=f.data, content_type=f.content_type)

    async def _delete_file(self, request: web.Request) -> web.Response:
        rec, gate = await self._gate(request, "other")
        if isinstance(gate, web.Response):
            return gate
        if self.files.pop(request.match_info["id"], None) is None:
            return self._json(rec, 404, _NOT_FOUND)
        rec.status = 204
        return web.Response(status=204)

    async def _serve_blob(self, request: web.Request) -> web.Response:
        # Output delivery (replicate.delivery in the real service): no auth, not rate limited.
        rec = await self._record(request, body=False)
        key = request.match_info["key"]
        if fault := self._take(self._download_faults):
            return self._fault_response(rec, fault)
        if key not in self._blobs or key in self._expired:
            rec.status = 404
            return web.Response(status=404, text="Not Found", content_type="text/plain")
        self.counts.downloads += 1
        data, ctype = self._blobs[key]
        rec.status = 200
        return web.Response(body=data, content_type=ctype)

    async def _not_found(self, request: web.Request) -> web.Response:
        rec = await self._record(request, body=False)
        return self._json(rec, 404, _NOT_FOUND)

    # ------------------------------------------------------------------ prediction lifecycle
    def _finish(self, p: _Prediction, status: str, *, error: str | None = None) -> None:
        p.status = status
        p.error = error
        p.completed = time.time()
        if status in ("succeeded", "failed") and p.started:
            p.metrics["predict_time"] = round(p.completed - p.started, 6)
        p.metrics["total_time"] = round(p.completed - p.created, 6)
        p.done.set()

    def _fail(self, p: _Prediction, error: str, *, traceback: bool = True) -> None:
        if traceback:
            p.logs += (
                "Traceback (most recent call last):\n"
                '  File "/root/.pyenv/versions/3.11.9/lib/python3.11/site-packages/cog/server/worker.py", '
                "line 221, in _predict\n    result = predict(**payload)\n"
                f"Exception: {error}\n"
            )
        self._finish(p, "failed", error=error)

    async def _run(self, p: _Prediction) -> None:
        try:
            await self._run_inner(p)
        except asyncio.CancelledError:
            if p.status not in _TERMINAL:
                self._finish(p, "canceled")
        except Exception as exc:  # a bug in the emulator must not hang the client: fail the prediction
            if p.status not in _TERMINAL:
                self._fail(p, f"fake_replicate internal error: {exc!r}")

    async def _run_inner(self, p: _Prediction) -> None:
        tf = self.time_factor
        outcome = p.outcome
        slow: float | None = float(outcome.split(":", 1)[1]) if outcome.startswith("slow:") else None
        m = p.model
        if m._slots is None and m.concurrency:
            m._slots = asyncio.Semaphore(m.concurrency)
        if m._slots is not None:
            await m._slots.acquire()
        try:
            await asyncio.sleep(m.starting * tf)
            if outcome == "aborted":
                self._finish(p, "aborted")
                return
            p.status = "processing"
            p.started = time.time()
            total = slow if slow is not None else m.processing * tf
            if m.kind == MUSIC_KIND:
                await run_stable_audio(self, p, total)
            elif m.kind == "sdxl":
                await self._run_sdxl(p, total)
            elif m.kind == "svd":
                await self._run_svd(p, total)
            elif m.kind == "tts":
                await self._run_tts(p, total)
            elif m.kind == I2V_KIND:
                await run_i2v(self, p, total)
            else:
                await self._run_generic(p, total)
        finally:
            if m._slots is not None:
                m._slots.release()

    async def _progress(
        self,
        p: _Prediction,
        total_time: float,
        steps: int,
        line: Callable[[int], str],
        sep: str,
        stop_at: float = 1.0,
    ) -> None:
        """Grow p.logs with progress lines from 0 to steps*stop_at over total_time seconds."""
        p.logs += line(0)
        shown = 0
        t0 = time.monotonic()
        tick = max(0.01, total_time / 25)
        target_steps = int(steps * stop_at)
        while shown < target_steps:
            await asyncio.sleep(tick)
            frac = 1.0 if total_time <= 0 else min(1.0, (time.monotonic() - t0) / total_time)
            now_step = min(target_steps, int(steps * frac))
            for n in range(shown + 1, now_step + 1):
                p.logs += sep + line(n)
            shown = max(shown, now_step)

    async def _hang(self, p: _Prediction, steps: int, line: Callable[[int], str], sep: str) -> None:
        """outcome "never": progress to ~40 % then stay processing until canceled."""
        await self._progress(p, 0.05, steps, line, sep, stop_at=0.4)
        await asyncio.Event().wait()

    def _store(self, p: _Prediction, name: str, data: bytes, ctype: str) -> str:
        key = f"{p.id}/{name}"
        self._blobs[key] = (data, ctype)
        p.output_keys.append(key)
        if p.outcome == "expired_output":
            self._expired.add(key)
        return f"{self.base_url}/files/{key}"

    async def _run_sdxl(self, p: _Prediction, total: float) -> None:
        inp = p.input
        seed = inp.get("seed")
        seed = int.from_bytes(os.urandom(2), "big") if seed is None else seed
        prompt = inp.get("prompt", "An astronaut riding a rainbow unicorn")
        width, height = int(inp.get("width", 1024)), int(inp.get("height", 1024))
        steps = int(inp.get("num_inference_steps", 50))
        n_out = int(inp.get("num_outputs", 1))
        mode = (
            "inpainting mode"
            if inp.get("image") and inp.get("mask")
            else ("img2img mode" if inp.get("image") else "txt2img mode")
        )
        p.logs = f"Using seed: {seed}\nPrompt: {prompt}\n{mode}\n"
        if height % 8 or width % 8:
            self._fail(p, f"`height` and `width` have to be divisible by 8 but are {height} and {width}.")
            return
        if width * height > 2048 * 2048 or p.outcome == "fail_oom":
            self._fail(p, OOM_ERROR)
            return

        def line(n: int) -> str:
            return tqdm_line(n, steps, 0.102)

        if p.outcome == "never":
            await self._hang(p, steps, line, "\n")
            return
        await self._progress(p, total * 0.9, steps, line, "\n")
        p.logs += "\n"
        if p.outcome == "fail_infra":
            self._fail(p, INTERRUPTED_ERROR, traceback=False)
            return
        if p.outcome.startswith("fail:"):
            self._fail(p, p.outcome.split(":", 1)[1])
            return
        flagged = set(range(n_out)) if p.outcome == "fail_nsfw" else ({0} if p.outcome == "nsfw_partial" else set())
        if inp.get("disable_safety_checker"):
            flagged = set()
        urls = []
        for i in range(n_out):
            if i in flagged:
                p.logs += f"NSFW content detected in image {i}\n"
                continue
            png = await asyncio.to_thread(media.png_bytes, width, height, seed=seed + i)
            urls.append(self._store(p, f"out-{i}.png", png, "image/png"))
        await asyncio.sleep(total * 0.1)
        if not urls:
            self._fail(p, NSFW_ERROR)
            return
        p.output = urls
        self._finish(p, "succeeded")

    async def _load_input_file(self, url: str) -> bytes:
        if url.startswith("data:"):
            return media.decode_data_uri(url)[1]
        own_files = f"{self.base_url}/files/"
        own_api = f"{self.base_url}/v1/files/"
        if url.startswith(own_files):
            key = url[len(own_files) :]
            if key in self._blobs and key not in self._expired:
                return self._blobs[key][0]
            raise FileNotFoundError(f"404 Client Error: Not Found for url: {url}")
        if url.startswith(own_api):
            fid = url[len(own_api) :].split("/", 1)[0]
            if fid in self.files:
                return self.files[fid].data
            raise FileNotFoundError(f"404 Client Error: Not Found for url: {url}")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
            if resp.status >= 400:
                raise FileNotFoundError(f"{resp.status} Client Error: {resp.reason} for url: {url}")
            return await resp.read()

    async def _run_svd(self, p: _Prediction, total: float) -> None:
        inp = p.input
        seed = inp.get("seed")
        seed = int.from_bytes(os.urandom(2), "big") if seed is None else seed
        strategy = inp.get("sizing_strategy", "maintain_aspect_ratio")
        xt = inp.get("video_length", "14_frames_with_svd") == "25_frames_with_svd_xt"
        frames, steps = (25, 30) if xt else (14, 25)
        fps = int(inp.get("frames_per_second", 6))
        p.logs = f"Using seed: {seed}\n"
        try:
            data = await self._load_input_file(inp["input_image"])
            src_w, src_h = await asyncio.to_thread(media.image_size, data)
            self.video_inputs[p.id] = data
        except FileNotFoundError as exc:
            self._fail(p, str(exc))
            return
        except Exception as exc:
            self._fail(p, f"cannot identify image file '/tmp/tmp{uuid.uuid4().hex[:8]}input_image' ({exc!r})")
            return
        width, height = svd_output_size(strategy, src_w, src_h)
        if strategy == "crop_to_16_9":
            p.logs += (
                f"Resizing and cropping to 16:9\nScale factor w: {1024 / src_w}, Scale factor h: "
                f"{576 / src_h}\nResized and cropped dimensions: 1024x576\n"
            )
        elif strategy == "maintain_aspect_ratio":
            p.logs += f"Resizing but keeping aspect ratio\nUsing dimensions {width}x{height}\n"
        else:
            p.logs += f"Using image dimensions\nOriginal dimensions: {src_w}x{src_h}\n"
            if (src_w, src_h) != (width, height):
                p.logs += f"WARNING: Your image is not divisible by 64 – resizing to {width}x{height}\n"
            p.logs += f"Using dimensions {width}x{height}\n"
        if width < 64 or height < 64:
            self._fail(p, f"Calculated output size {width}x{height} is too small")
            return
        p.logs += "Set consts\nLoaded model\n"
        if (height, width) != (576, 1024):
            p.logs += (
                "WARNING: The conditioning frame you provided is not 576x1024. This leads to suboptimal "
                "performance as model was only trained on 576x1024. Consider increasing `cond_aug`.\n"
            )
        if width * height > 1024 * 1024 * 1.5 or p.outcome == "fail_oom":
            self._fail(p, OOM_ERROR)
            return
        p.logs += (
            f"{'#' * 30}  Sampling setting  {'#' * 30}\nSampler: EulerEDMSampler\n"
            "Discretization: EDMDiscretization\nGuider: LinearPredictionGuider\n"
        )
        num_sigmas = steps + 1
        desc = f"Sampling with EulerEDMSampler for {num_sigmas} steps"
        sec_per_it = 1.2 * (width * height) / (1024 * 576) * (1.6 if xt else 1.0)

        def line(n: int) -> str:
            return tqdm_line(n, num_sigmas, sec_per_it, desc)

        if p.outcome == "never":
            await self._hang(p, steps, line, "\r")
            return
        # tqdm(total=num_sigmas) over range(num_sigmas - 1): the bar stops at steps/num_sigmas (25/26).
        await self._progress(p, total * 0.85, steps, line, "\r")
        p.logs += "\n"
        if p.outcome == "fail_infra":
            self._fail(p, INTERRUPTED_ERROR, traceback=False)
            return
        if p.outcome.startswith("fail:"):
            self._fail(p, p.outcome.split(":", 1)[1])
            return
        if p.outcome == "fail_nsfw":
            self._fail(p, NSFW_ERROR)
            return
        t_enc = time.monotonic()
        mp4 = await media.mp4_bytes(width, height, frames, fps + 1)
        p.logs += (
            f"ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright (c) 2000-2021 the FFmpeg developers\n"
            f"Input #0, image2, from 'output//frame_%06d.png':\n"
            f"Output #0, mp4, to 'output/000000.mp4':\n"
            f"frame={frames:5d} fps=0.0 q=-1.0 Lsize={len(mp4) // 1024:8d}kB "
            f"time=00:00:{frames / (fps + 1):05.2f} bitrate=N/A speed=5.1x\n"
        )
        rest = total * 0.15 - (time.monotonic() - t_enc)
        if rest > 0:
            await asyncio.sleep(rest)
        p.output = self._store(p, "000000.mp4", mp4, "video/mp4")
        self._finish(p, "succeeded")

    # ------------------------------------------------------------------ text-to-speech (MiniMax)
    async def _run_tts(self, p: _Prediction, total: float) -> None:
        inp = p.input
        text, voice = inp["text"], inp.get("voice_id", "Wise_Woman")
        fmt, rate = inp.get("audio_format", "mp3"), int(inp.get("sample_rate", 32000))
        p.logs = f"Using voice: {voice}\nText length: {len(text)} characters\n"
        if len(text) > MINIMAX_MAX_CHARS:
            self._fail(p, TEXT_TOO_LONG_ERROR.format(n=len(text)), traceback=False)
            return
        if voice not in MINIMAX_VOICES:
            self._fail(p, VOICE_NOT_FOUND_ERROR.format(voice=voice), traceback=False)
            return
        if p.outcome == "never":
            p.logs += "Generating speech...\n"
            await asyncio.Event().wait()
        await asyncio.sleep(total * 0.7)
        if p.outcome in ("fail_infra", "fail_nsfw") or p.outcome.startswith("fail:"):
            err = {"fail_infra": INTERRUPTED_ERROR, "fail_nsfw": NSFW_ERROR}.get(p.outcome)
            self._fail(p, err or p.outcome.split(":", 1)[1])
            return
        pauses = sum(float(x) for x in _PAUSE.findall(text))
        seconds = speech_seconds(_PAUSE.sub("", text), float(inp.get("speed", 1))) + pauses
        channels = 2 if inp.get("channel") == "stereo" else 1
        data = await self._speech_bytes(round(seconds, 2), fmt, rate, channels)
        p.logs += f"Generating speech...\nAudio generated: {seconds:.2f}s, {len(data)} bytes ({fmt})\n"
        await asyncio.sleep(total * 0.3)
        p.output = self._store(p, f"output.{fmt}", data, _AUDIO_TYPES[fmt])
        self._finish(p, "succeeded")

    async def _speech_bytes(self, seconds: float, fmt: str, rate: int, channels: int) -> bytes:
        key = (seconds, fmt, rate, channels)
        task = self._speech.get(key)
        if task is None or (task.done() and task.exception() is not None):
            task = self._speech[key] = asyncio.ensure_future(asyncio.to_thread(speech_bytes, *key))
        return await asyncio.shield(task)

    async def _run_generic(self, p: _Prediction, total: float) -> None:
        def line(n: int) -> str:
            return tqdm_line(n, 10, 0.1)

        if p.outcome == "never":
            await self._hang(p, 10, line, "\n")
            return
        await self._progress(p, total, 10, line, "\n")
        p.logs += "\n"
        if p.outcome in ("fail_infra", "fail_nsfw") or p.outcome.startswith("fail:"):
            err = {"fail_infra": INTERRUPTED_ERROR, "fail_nsfw": NSFW_ERROR}.get(p.outcome)
            self._fail(p, err or p.outcome.split(":", 1)[1])
            return
        out = p.model.output
        p.output = out(p.input) if callable(out) else out
        self._finish(p, "succeeded")


def _cursor(direction: str, p: _Prediction) -> str:
    raw = f"{direction}|{p.created!r}|{p.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_cursor(cursor: str) -> tuple[str, float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        direction, created, pid = raw.split("|")
        return direction, float(created), pid
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(cursor) from exc


def _check_outcome(o: str) -> None:
    if o.startswith(("slow:", "held:")):
        float(o.split(":", 1)[1])
        return
    if o.startswith("fail:"):
        return
    if o not in OUTCOMES:
        raise ValueError(f"unknown outcome {o!r}; expected one of {OUTCOMES}")


def _prefer_wait(header: str) -> float:
    """Seconds to hold a create for `Prefer: wait` / `wait=N` (capped at 60); 0 without the header."""
    for part in header.split(","):
        part = part.strip()
        if part == "wait":
            return 60.0
        if part.startswith("wait="):
            try:
                return float(min(60, max(1, int(part[5:]))))
            except ValueError:
                return 0.0
    return 0.0


def _peak(times: list[float], window: float) -> int:
    best = 0
    for i, t in enumerate(times):
        j = bisect.bisect_left(times, t + window, lo=i)
        best = max(best, j - i)
    return best


# ==================================================================================== music models
# (issue 12, music bed) stability-ai/stable-audio-2.5: an official model, created by model name
# (POST /v1/models/stability-ai/stable-audio-2.5/predictions). Schema of version a61ac8ed as
# replicate.com shows it: `duration` defaults to 190 s, so a client that forgets it gets (and
# pays for) 190 s of audio. Output: one audio URI (MP3 bytes made by ffmpeg).

STABLE_AUDIO_REF = "stability-ai/stable-audio-2.5"
STABLE_AUDIO_VERSION = "a61ac8edbb27cd2eda1b2eff2bbc03dcff1131f5560836ff77a052df05b77491"


def _stable_audio_schema() -> dict[str, Any]:
    props = {
        "seed": {
            "type": "integer",
            "description": "Random seed for reproducible results. Leave blank for random seed.",
        },
        "steps": {
            "type": "integer",
            "default": 8,
            "minimum": 4,
            "maximum": 8,
            "description": "Number of diffusion steps (higher = better quality but slower)",
        },
        "prompt": {"type": "string", "description": "Text prompt describing the desired audio"},
        "duration": {
            "type": "integer",
            "default": 190,
            "minimum": 1,
            "maximum": 190,
            "description": "Duration of generated audio in seconds",
        },
        "cfg_scale": {
            "type": "number",
            "default": 1,
            "minimum": 1,
            "maximum": 25,
            "description": "Classifier-free guidance scale (higher = more prompt adherence)",
        },
    }
    return _cog_openapi(props, ["prompt"], {}, {"type": "string", "format": "uri"})


MUSIC_KIND = "stable_audio"


def add_music_models(fake: FakeReplicate) -> None:
    fake.add_model(
        STABLE_AUDIO_REF,
        STABLE_AUDIO_VERSION,
        kind=MUSIC_KIND,
        openapi_schema=_stable_audio_schema(),
        official=True,
        starting=0.05,
        processing=0.4,
        description="Generate high-quality music and sound from text prompts",
    )


# (seconds, pitch) → the MP3: a bed is the same bytes for every seed of one pitch, and encoding 30 s
# of MP3 is this host's CPU (not Replicate's) landing just as the benchmarks' seeds finish.
_music_made: dict[tuple[int, int], bytes] = {}


async def music_mp3(seconds: int, seed: int) -> bytes:
    """`seconds` of a soft two-note chord (pitch from the seed) as MP3: real audio a decoder reads."""
    key = (seconds, seed % 12)
    if key not in _music_made:
        _music_made[key] = await _encode_music(*key)
    return _music_made[key]


async def _encode_music(seconds: int, pitch: int) -> bytes:
    f0 = 110 * 2 ** (pitch / 12)
    expr = f"0.2*sin(2*PI*{f0:.3f}*t)+0.15*sin(2*PI*{f0 * 1.5:.3f}*t)"
    proc = await asyncio.create_subprocess_exec(
        media.ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi",
        "-i", f"aevalsrc='{expr}':s=44100:d={seconds}", "-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k",
        "-f", "mp3", "-",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg could not make the fake music: {err.decode(errors='replace')[-300:]}")
    return out


async def run_stable_audio(fake: FakeReplicate, p: _Prediction, total: float) -> None:
    inp = p.input
    seed = inp.get("seed")
    seed = int.from_bytes(os.urandom(2), "big") if seed is None else int(seed)
    steps = int(inp.get("steps", 8))
    seconds = int(inp.get("duration", 190))
    p.logs = f"Using seed: {seed}\nGenerating {seconds}s of audio: {inp.get('prompt', '')}\n"

    def line(n: int) -> str:
        return tqdm_line(n, steps, 0.25)

    if p.outcome == "never":
        await fake._hang(p, steps, line, "\r")
        return
    await fake._progress(p, total * 0.8, steps, line, "\r")
    p.logs += "\n"
    if p.outcome == "fail_infra":
        fake._fail(p, INTERRUPTED_ERROR, traceback=False)
        return
    if p.outcome.startswith("fail:"):
        fake._fail(p, p.outcome.split(":", 1)[1])
        return
    data = await music_mp3(seconds, seed)
    p.logs += f"Saved output.mp3 ({len(data)} bytes)\n"
    p.output = fake._store(p, "output.mp3", data, "audio/mpeg")
    fake._finish(p, "succeeded")


# ----------------------------------------------------------------------------------- image-to-video models
# The registry's other entries (pipeline/video_models.py), as their replicate.com API pages describe
# them (PLATFORM-FACTS G): official models, created by name. Inputs are validated like every model's
# (the 422 body above); the output is one mp4 URI with the model's real frame rate, frame count and
# size for a 9:16 input; the logs are what each one prints (a tqdm bar for Wan, status lines for the
# hosted Kling and Hailuo).

I2V_KIND = "i2v"
WAN_REF = "wan-video/wan-2.2-i2v-fast"
KLING_REF = "kwaivgi/kling-v2.1"
HAILUO_REF = "minimax/hailuo-02"
I2V_VERSIONS = {
    WAN_REF: "0f8b1d5c2e7a4f3b9c6d8e1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e",
    KLING_REF: "7e3c9a1b5d2f4e6a8b0c1d3e5f7a9b2c4d6e8f0a1b3c5d7e9f2a4b6c8d0e1f3a",
    HAILUO_REF: "c2a4e6f8b0d1c3e5a7b9d2f4a6c8e0b1d3f5a7c9e2b4d6f8a0c1e3b5d7f9a2c4",
}


def _int_enum(schema: dict[str, Any], name: str) -> dict[str, Any]:
    schema["components"]["schemas"][name]["type"] = "integer"
    return schema


def wan_i2v_schema() -> dict[str, Any]:
    props = {
        "image": {"type": "string", "format": "uri", "description": "Input image to generate video from."},
        "prompt": {"type": "string", "description": "Prompt for video generation"},
        "num_frames": {"type": "integer", "default": 81, "minimum": 81, "maximum": 121,
                       "description": "Number of video frames. 81 frames give the best results"},
        "resolution": {"default": "480p", "description": "Resolution of video. 16:9 corresponds to 832x480px, "
                       "and 9:16 is 480x832px"},
        "frames_per_second": {"type": "integer", "default": 16, "minimum": 5, "maximum": 30,
                              "description": "Frames per second. Note that the pricing of this model is based "
                              "on the video duration at 16 fps"},
        "go_fast": {"type": "boolean", "default": True, "description": "Go fast"},
        "sample_shift": {"type": "number", "default": 12, "minimum": 1, "maximum": 20, "description": "Sample shift"},
        "interpolate_output": {"type": "boolean", "default": False,
                               "description": "Interpolate the generated video to 30 FPS using ffmpeg"},
        "disable_safety_checker": {"type": "boolean", "default": False, "description": "Disable safety checker"},
        "seed": {"type": "integer", "description": "Random seed. Leave blank for random"},
    }  # fmt: skip
    return _cog_openapi(
        props, ["image", "prompt"], {"resolution": ["480p", "720p"]}, {"type": "string", "format": "uri"}
    )


def kling_schema() -> dict[str, Any]:
    props = {
        "prompt": {"type": "string", "description": "Text prompt for video generation"},
        "negative_prompt": {"type": "string", "default": "", "description": "Things you do not want to see"},
        "start_image": {"type": "string", "format": "uri", "description": "First frame of the video"},
        "end_image": {"type": "string", "format": "uri", "description": "Last frame of the video (pro mode)"},
        "mode": {"default": "standard", "description": "standard has a resolution of 720p, pro is 1080p"},
        "duration": {"default": 5, "description": "Duration of the video in seconds"},
    }
    schema = _cog_openapi(
        props, ["prompt", "start_image"], {"mode": ["standard", "pro"], "duration": [5, 10]},  # type: ignore[list-item]
        {"type": "string", "format": "uri"},
    )  # fmt: skip
    return _int_enum(schema, "duration")


def hailuo_schema() -> dict[str, Any]:
    props = {
        "prompt": {"type": "string", "description": "Text prompt for generation"},
        "first_frame_image": {"type": "string", "format": "uri", "description": "First frame image for video"},
        "last_frame_image": {"type": "string", "format": "uri", "description": "Last frame image for video"},
        "duration": {"default": 6, "description": "Duration of the video in seconds. 10 seconds is only "
                     "available for 768p resolution."},
        "resolution": {"default": "1080p", "description": "Pick between 512p, 768p or 1080p"},
        "prompt_optimizer": {"type": "boolean", "default": True, "description": "Use prompt optimizer"},
    }  # fmt: skip
    schema = _cog_openapi(
        props, ["prompt"], {"duration": [6, 10], "resolution": ["512p", "768p", "1080p"]},  # type: ignore[list-item]
        {"type": "string", "format": "uri"},
    )  # fmt: skip
    return _int_enum(schema, "duration")


@dataclass(frozen=True)
class I2VOutput:
    """What one image-to-video prediction returns, decided from its input."""

    width: int
    height: int
    frames: int
    fps: int
    error: str | None = None


def _portrait(short: int, long: int, src_w: int, src_h: int) -> tuple[int, int]:
    """The model keeps the input's orientation: portrait in, portrait out."""
    return (short, long) if src_h >= src_w else (long, short)


def i2v_output(ref: str, inp: dict[str, Any], src_w: int, src_h: int) -> I2VOutput:
    if ref == WAN_REF:
        short, long = (720, 1280) if inp.get("resolution", "480p") == "720p" else (480, 832)
        w, h = _portrait(short, long, src_w, src_h)
        frames, fps = int(inp.get("num_frames", 81)), int(inp.get("frames_per_second", 16))
        if inp.get("interpolate_output"):
            frames, fps = frames * 2 - 1, fps * 2
        return I2VOutput(w, h, frames, fps)
    if ref == KLING_REF:
        short, long = (1080, 1920) if inp.get("mode", "standard") == "pro" else (720, 1280)
        w, h = _portrait(short, long, src_w, src_h)
        return I2VOutput(w, h, 24 * int(inp.get("duration", 5)), 24)
    resolution, seconds = inp.get("resolution", "1080p"), int(inp.get("duration", 6))
    if seconds == 10 and resolution != "768p":
        return I2VOutput(0, 0, 0, 25, error=f"10 second videos are only available at 768p (got {resolution})")
    short, long = {"512p": (512, 912), "768p": (768, 1366), "1080p": (1080, 1920)}[resolution]
    w, h = _portrait(short, long - long % 2, src_w, src_h)
    return I2VOutput(w, h, 25 * seconds, 25)


def add_video_models(fake: FakeReplicate) -> None:
    for ref, schema, about in (
        (WAN_REF, wan_i2v_schema, "A very fast and cheap PrunaAI optimized version of Wan 2.2 A14B image-to-video"),
        (KLING_REF, kling_schema, "Use Kling v2.1 to generate 5s and 10s videos in 720p and 1080p resolution"),
        (HAILUO_REF, hailuo_schema, "Hailuo 2 is a text-to-video and image-to-video model"),
    ):
        fake.add_model(
            ref, I2V_VERSIONS[ref], kind=I2V_KIND, official=True, starting=0.05, processing=0.5,
            openapi_schema=schema(), description=about,
        )  # fmt: skip


async def run_i2v(fake: FakeReplicate, p: _Prediction, total: float) -> None:
    inp, ref = p.input, p.model.ref
    image = inp.get("image") or inp.get("start_image") or inp.get("first_frame_image")
    if image is None:  # Hailuo takes a prompt alone (text-to-video); Jant always sends an image
        src_w, src_h = 720, 1280
    else:
        try:
            data = await fake._load_input_file(image)
            src_w, src_h = await asyncio.to_thread(media.image_size, data)
        except Exception as exc:
            fake._fail(p, f"cannot read the input image ({exc})")
            return
    out = i2v_output(ref, inp, src_w, src_h)
    if out.error:
        fake._fail(p, out.error, traceback=False)
        return
    if ref == WAN_REF:
        seed = inp.get("seed")
        seed = int.from_bytes(os.urandom(2), "big") if seed is None else seed
        p.logs = f"Using seed: {seed}\nGenerating {out.frames} frames at {out.width}x{out.height}\n"
        steps = 8

        def line(n: int) -> str:
            return tqdm_line(n, steps, 1.6)

        sep = "\n"
    else:
        p.logs = "Starting video generation\n"
        steps = 5

        def line(n: int) -> str:
            return f"Waiting for the video (status: {'Queueing' if n == 0 else 'Processing'})"

        sep = "\n"
    if p.outcome == "never":
        await fake._hang(p, steps, line, sep)
        return
    await fake._progress(p, total * 0.8, steps, line, sep)
    p.logs += "\n"
    if p.outcome == "fail_infra":
        fake._fail(p, INTERRUPTED_ERROR, traceback=False)
        return
    if p.outcome.startswith("fail:"):
        fake._fail(p, p.outcome.split(":", 1)[1])
        return
    if p.outcome == "fail_nsfw":
        fake._fail(p, NSFW_ERROR)
        return
    t_enc = time.monotonic()
    mp4 = await media.mp4_bytes(out.width, out.height, out.frames, out.fps)
    p.logs += f"Video generated: {out.frames} frames at {out.fps} fps ({out.frames / out.fps:.2f} s)\n"
    # The rest of the scripted time (writing the video), as SVD's does: a prediction scripted to take
    # `total` s takes it, or a benchmark's ideal (the scripted latencies) would be a fifth too long.
    rest = total * 0.2 - (time.monotonic() - t_enc)
    if rest > 0:
        await asyncio.sleep(rest)
    p.output = fake._store(p, "output.mp4", mp4, "video/mp4")
    fake._finish(p, "succeeded")

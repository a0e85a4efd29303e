"""A local emulator of the OpenAI HTTP API (the part Jant uses), for the real `openai` client.

    fake = FakeOpenAI()
    await fake.start()
    client = openai.AsyncOpenAI(base_url=fake.base_url, api_key=FakeOpenAI.API_KEY)
    fake.reply_json({"title": "x", "scenes": [...]})
    r = await client.chat.completions.parse(model="gpt-4o", messages=[...], response_format=Storyboard)
    await fake.stop()

Endpoints
    POST /v1/chat/completions   auth, model lookup, request validation (messages, roles, temperature,
                                response_format incl. strict json_schema rules), then the next scripted
                                reply, else `responder`, else a reply synthesized from the json_schema.
    GET  /v1/models             list
    GET  /v1/models/{id}        Model object {id, created, object, owned_by, shutdown_date}; 404
                                model_not_found for unknown or retired ids (same body as chat's)
    POST /v1/audio/speech       auth, model (404 model_not_found), voice/input/speed/response_format
                                checked with the API's 400 bodies, then raw audio bytes (duration in
                                proportion to the text) with the format's content type. Scripted
                                errors: fail_speech(status, ...), same arguments as fail().

Errors use OpenAI's body `{"error": {"message", "type", "param", "code"}}` and carry `x-request-id`;
successes carry `x-request-id`, `openai-processing-ms` and `x-ratelimit-*` headers.

Scripting (each call queues one reply; consumed in order by chat requests that pass auth/validation):
    reply_json(obj)            content = json.dumps(obj), finish_reason "stop"
    reply_text(text)           raw content
    reply_refusal(text)        content null, message.refusal = text
    reply_length_cutoff()      truncated JSON content, finish_reason "length"
    reply_content_filter()     finish_reason "content_filter"
    reply_invalid_json()       finish_reason "stop", content that is not valid JSON
    fail(status, code=..., retry_after=None, times=1)
    delay(seconds)             the next chat request waits this long before answering
A `responder(request_json) -> dict | str | Reply` (sync or async) answers when the queue is empty:
a dict becomes JSON content, a str raw content, a Reply anything else.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.emulators.speech_audio import speech_bytes, speech_seconds

__all__ = ["FakeOpenAI", "RecordedRequest", "Reply", "check_strict_schema", "synthesize_from_schema"]

Responder = Callable[[dict[str, Any]], "dict[str, Any] | str | Reply | Awaitable[dict[str, Any] | str | Reply]"]


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    at: float  # time.monotonic()
    status: int | None = None  # the status the fake answered with


@dataclass
class Reply:
    """One scripted answer. Either a completion (content/refusal/finish_reason) or an error (status>=400)."""

    content: str | None = None
    refusal: str | None = None
    finish_reason: str = "stop"
    status: int = 200
    error: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class _ModelInfo:
    id: str
    created: int
    owned_by: str = "system"
    structured_outputs: bool = True
    snapshot: str | None = None  # what `model` in a chat.completion says (gpt-4o -> gpt-4o-2024-08-06)
    shutdown_date: str | None = None


# Created timestamps as listed by GET /v1/models (public values). Strict structured outputs need
# gpt-4o-2024-08-06 or later / gpt-4o-mini; gpt-4o-2024-05-13 and older models answer 400.
_DEFAULT_MODELS = [
    _ModelInfo("gpt-4o", 1715367049, snapshot="gpt-4o-2024-08-06"),
    _ModelInfo("gpt-4o-2024-08-06", 1722814719),
    _ModelInfo("gpt-4o-2024-11-20", 1739331543),
    _ModelInfo("gpt-4o-2024-05-13", 1715368132, structured_outputs=False),
    _ModelInfo("gpt-4o-mini", 1721172741, snapshot="gpt-4o-mini-2024-07-18"),
    _ModelInfo("gpt-4o-mini-2024-07-18", 1721172717),
    _ModelInfo("gpt-4.1", 1744316542, snapshot="gpt-4.1-2025-04-14"),
    _ModelInfo("gpt-4.1-mini", 1744318173, snapshot="gpt-4.1-mini-2025-04-14"),
    # The gpt-6 family is what OpenAI names as gpt-4o's successor (Jant's default fallback); its
    # created time here is made up, not a published value.
    _ModelInfo("gpt-6-astra", 1790000000),
    _ModelInfo("gpt-4-turbo", 1712361441, structured_outputs=False, snapshot="gpt-4-turbo-2024-04-09"),
    _ModelInfo(
        "gpt-3.5-turbo",
        1677610602,
        owned_by="openai",
        structured_outputs=False,
        snapshot="gpt-3.5-turbo-0125",
    ),
]

SPEECH_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15")
SPEECH_VOICES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse", "marin", "cedar",
)  # fmt: skip
SPEECH_MAX_INPUT = 4096
SPEECH_CONTENT_TYPES = {
    "mp3": "audio/mpeg", "opus": "audio/opus", "aac": "audio/aac", "flac": "audio/flac", "wav": "audio/wav",
    "pcm": "audio/pcm",
}  # fmt: skip

_VALID_ROLES = ("system", "assistant", "user", "function", "tool", "developer")
_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# Keywords the Structured Outputs docs list as unsupported (plus the ones the API names in its errors).
_UNSUPPORTED_KEYWORDS = (
    "allOf",
    "not",
    "dependentRequired",
    "dependentSchemas",
    "if",
    "then",
    "else",
    "propertyNames",
    "patternProperties",
    "unevaluatedProperties",
)
_MAX_PROPERTIES = 5000
_MAX_DEPTH = 10
_MAX_ENUM_VALUES = 1000
_MAX_TOTAL_STRING = 120_000


def _error(
    message: str, *, type: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _model_not_found(model_id: str) -> dict[str, Any]:
    """What OpenAI answers, with 404, for a model that is retired, unknown or not open to this key."""
    return _error(f"The model `{model_id}` does not exist or you do not have access to it.", code="model_not_found")


# --------------------------------------------------------------------------------------- strict schema


def check_strict_schema(name: str, schema: Any) -> str | None:
    """The 400 message the API gives for a strict json_schema it rejects, or None if it is accepted.

    Checks what the API checks (docs "Supported schemas" + observed error texts): root is an object
    (not anyOf); every object has `additionalProperties: false` and lists every property in
    `required`; no unsupported composition keywords; size limits.
    """
    prefix = f"Invalid schema for response_format '{name}': "
    if not isinstance(schema, dict):
        return prefix + "schema must be a JSON Schema object."
    if "anyOf" in schema and "type" not in schema:
        return prefix + "schema must be a JSON Schema of 'type: \"object\"', got 'anyOf'."
    if schema.get("type") != "object":
        return prefix + f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{schema.get('type')}\"'."

    stats = {"props": 0, "enums": 0, "chars": 0}

    def walk(node: Any, ctx: tuple[str, ...], depth: int) -> str | None:
        if not isinstance(node, dict):
            return None
        for kw in _UNSUPPORTED_KEYWORDS:
            if kw in node:
                return f"In context={ctx!r}, '{kw}' is not permitted."
        types = node.get("type")
        is_object = types == "object" or (isinstance(types, list) and "object" in types) or "properties" in node
        if is_object:
            if depth > _MAX_DEPTH:
                return f"In context={ctx!r}, exceeded the maximum object nesting depth of {_MAX_DEPTH}."
            if node.get("additionalProperties") is not False:
                return f"In context={ctx!r}, 'additionalProperties' is required to be supplied and to be false."
            props = node.get("properties") or {}
            required = node.get("required")
            missing = [k for k in props if not isinstance(required, list) or k not in required]
            if not isinstance(required, list) or missing:
                text = (
                    f"In context={ctx!r}, 'required' is required to be supplied and to be an array "
                    "including every key in properties."
                )
                if missing:
                    text += f" Missing '{missing[0]}'."
                return text
            extra = [k for k in required if k not in props]
            if extra:
                return f"In context={ctx!r}, Extra required key '{extra[0]}' supplied."
            stats["props"] += len(props)
            stats["chars"] += sum(len(k) for k in props)
            for key, sub in props.items():
                err = walk(sub, (*ctx, "properties", key), depth + 1)
                if err:
                    return err
        if "enum" in node and isinstance(node["enum"], list):
            stats["enums"] += len(node["enum"])
            stats["chars"] += sum(len(v) for v in node["enum"] if isinstance(v, str))
        if isinstance(node.get("const"), str):
            stats["chars"] += len(node["const"])
        if "items" in node:
            err = walk(node["items"], (*ctx, "items"), depth)
            if err:
                return err
        for i, sub in enumerate(node.get("anyOf") or []):
            err = walk(sub, (*ctx, "anyOf", str(i)), depth)
            if err:
                return err
        for defs_key in ("$defs", "definitions"):
            for dname, sub in (node.get(defs_key) or {}).items():
                stats["chars"] += len(dname)
                err = walk(sub, (*ctx, defs_key, dname), depth)
                if err:
                    return err
        return None

    err = walk(schema, (), 1)
    if err:
        return prefix + err
    if stats["props"] > _MAX_PROPERTIES:
        return prefix + (
            f"Expected at most {_MAX_PROPERTIES} object properties in total within a single "
            f"schema, but received {stats['props']}."
        )
    if stats["enums"] > _MAX_ENUM_VALUES:
        return prefix + (
            f"Expected at most {_MAX_ENUM_VALUES} enum values in total within a single schema "
            f"when using structured outputs, but received {stats['enums']}. Consider reducing "
            "the number of enums, or use 'strict: false' to opt out of structured outputs."
        )
    if stats["chars"] > _MAX_TOTAL_STRING:
        return prefix + (
            f"Expected the total string length of property names, definition names, enum "
            f"values and const values to be at most {_MAX_TOTAL_STRING}, got {stats['chars']}."
        )
    return None


def synthesize_from_schema(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """A minimal instance satisfying a (strict) JSON schema: the default reply when nothing is scripted."""
    root = root if root is not None else schema
    if "$ref" in schema:
        ref = schema["$ref"]
        if ref == "#":
            return None
        target: Any = root
        for part in ref.lstrip("#/").split("/"):
            target = target[part]
        return synthesize_from_schema(target, root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"] or schema["anyOf"]
        return synthesize_from_schema(options[0], root)
    typ = schema.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "null")
    if typ == "object" or "properties" in schema:
        return {k: synthesize_from_schema(v, root) for k, v in (schema.get("properties") or {}).items()}
    if typ == "array":
        n = max(1, int(schema.get("minItems", 1)))
        if "maxItems" in schema:
            n = min(n, int(schema["maxItems"]))
        return [synthesize_from_schema(schema.get("items") or {}, root) for _ in range(n)]
    if typ in ("integer", "number"):
        lo = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        value = lo + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
        if "maximum" in schema:
            value = min(value, schema["maximum"])
        return int(value) if typ == "integer" else float(value)
    if typ == "boolean":
        return False
    if typ == "null":
        return None
    return "lorem ipsum"


# --------------------------------------------------------------------------------------------- server


class FakeOpenAI:
    API_KEY = "sk-fake-test-key"

    def __init__(self, *, api_key: str = API_KEY, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api_keys: set[str] = {api_key}
        self.host = host
        self.port = port
        self.models: dict[str, _ModelInfo] = {m.id: _ModelInfo(**m.__dict__) for m in _DEFAULT_MODELS}
        self.requests: list[RecordedRequest] = []
        self.responder: Responder | None = None
        self.latency: float = 0.0  # added to every chat reply
        self.rpm_limit: int | None = None  # optional requests-per-minute limit (sliding 60 s window)
        self._queue: deque[Reply] = deque()
        self._pending_delay: float = 0.0
        self._rpm_times: deque[float] = deque()
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.base_url = ""
        # Speech models and their announced shutdown date (openai 3.60 `SpeechModel` docstring).
        self.speech_models: dict[str, str | None] = dict.fromkeys(SPEECH_MODELS, "2027-01-06")
        self._speech_queue: deque[Reply] = deque()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> FakeOpenAI:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_get("/v1/models/{model_id:.+}", self._get_model)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.port = sock.getsockname()[1]
        self.base_url = f"http://{self.host}:{self.port}/v1"
        return self

    async def stop(self) -> None:
        self._stopping.set()  # release handlers still sleeping in delay()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ scripting
    def reply_json(self, obj: Any) -> FakeOpenAI:
        self._queue.append(Reply(content=json.dumps(obj)))
        return self

    def reply_text(self, text: str) -> FakeOpenAI:
        self._queue.append(Reply(content=text))
        return self

    def reply_refusal(self, text: str = "I'm sorry, I can't help with that request.") -> FakeOpenAI:
        self._queue.append(Reply(content=None, refusal=text))
        return self

    def reply_length_cutoff(self, partial: str = '{"title": "Lumen", "scenes": [{"prompt": "A desk lam') -> FakeOpenAI:
        self._queue.append(Reply(content=partial, finish_reason="length"))
        return self

    def reply_content_filter(self) -> FakeOpenAI:
        self._queue.append(Reply(content=None, finish_reason="content_filter"))
        return self

    def reply_invalid_json(self, text: str = '{"title": "Lumen", "scenes": [}') -> FakeOpenAI:
        self._queue.append(Reply(content=text))
        return self

    def reply(self, reply: Reply) -> FakeOpenAI:
        self._queue.append(reply)
        return self

    def fail(
        self,
        status: int,
        *,
        code: str | None = None,
        message: str | None = None,
        type: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> FakeOpenAI:
        """Queue `times` error replies. 429: rate_limit_exceeded + x-ratelimit-*; ≥500: server_error."""
        hdrs = dict(headers or {})
        if status == 429:
            code = code or "rate_limit_exceeded"
            if code == "insufficient_quota":
                type = type or "insufficient_quota"
                message = message or (
                    "You exceeded your current quota, please check your plan and billing "
                    "details. For more information on this error, read the docs: "
                    "https://platform.openai.com/docs/guides/error-codes/api-errors."
                )
            else:
                wait = retry_after if retry_after is not None else 0.12
                type = type or "requests"
                message = message or (
                    "Rate limit reached for gpt-4o in organization org-fake on requests per "
                    f"min (RPM): Limit 500, Used 500, Requested 1. Please try again in "
                    f"{_fmt_duration(wait)}. Visit https://platform.openai.com/account/"
                    "rate-limits to learn more."
                )
                hdrs.update(_ratelimit_headers(remaining_requests=0, reset_requests=wait))
        elif status >= 500:
            type = type or "server_error"
            message = message or (
                "The engine is currently overloaded, please try again later."
                if status == 503
                else "The server had an error while processing your request. Sorry about that!"
            )
        else:
            type = type or "invalid_request_error"
            message = message or f"Scripted error {status}."
        if retry_after is not None:
            hdrs["retry-after"] = _fmt_number(retry_after)
        for _ in range(times):
            self._queue.append(
                Reply(
                    status=status,
                    error=_error(message, type=type, param=param, code=code),
                    headers=dict(hdrs),
                )
            )
        return self

    def fail_speech(self, status: int, *, times: int = 1, **kwargs: Any) -> FakeOpenAI:
        """Like fail(), for the next `times` requests to /v1/audio/speech."""
        self.fail(status, times=times, **kwargs)
        for reply in [self._queue.pop() for _ in range(times)][::-1]:
            self._speech_queue.append(reply)
        return self

    def delay(self, seconds: float) -> FakeOpenAI:
        """The next chat request (scripted or not) waits `seconds` before answering."""
        self._pending_delay += seconds
        return self

    def pending(self) -> int:
        """Scripted replies not consumed yet."""
        return len(self._queue)

    def clear(self) -> None:
        self._queue.clear()
        self._pending_delay = 0.0

    # models
    def add_model(
        self,
        model_id: str,
        *,
        created: int | None = None,
        owned_by: str = "system",
        structured_outputs: bool = True,
        snapshot: str | None = None,
        shutdown_date: str | None = None,
    ) -> None:
        self.models[model_id] = _ModelInfo(
            model_id, created or int(time.time()), owned_by, structured_outputs, snapshot, shutdown_date
        )

    def remove_model(self, model_id: str) -> None:
        """The model is gone: chat answers 404 model_not_found, GET /models/{id} 404."""
        self.models.pop(model_id, None)

    def retire_model(self, model_id: str) -> None:
        """After its shutdown date a model answers like one that never existed (404 model_not_found)."""
        self.remove_model(model_id)

    def set_shutdown_date(self, model_id: str, date: str | None) -> None:
        self.models[model_id].shutdown_date = date

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def speech_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/audio/speech")]

    # ------------------------------------------------------------------ handlers
    async def _record(self, request: web.Request) -> RecordedRequest:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw
        rec = RecordedRequest(request.method, request.path, dict(request.headers), body, time.monotonic())
        self.requests.append(rec)
        return rec

    def _respond(
        self, rec: RecordedRequest, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> web.Response:
        rec.status = status
        hdrs = {
            "x-request-id": f"req_{uuid.uuid4().hex}",
            "openai-version": "2020-10-01",
            "openai-organization": "org-fake",
        }
        hdrs.update(headers or {})
        return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=hdrs)

    def _auth_error(self, request: web.Request) -> dict[str, Any] | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return _error(
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with "
                "blank username) if you're accessing the API from your browser and are prompted for a "
                "username. You "
                "can obtain an API key from https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        key = auth[7:].strip()
        if key not in self.api_keys:
            masked = key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 7 else "***"
            return _error(
                f"Incorrect API key provided: {masked}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        return None

    async def _not_found(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        return self._respond(rec, 404, _error(f"Invalid URL ({request.method} {request.path})"))

    async def _list_models(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        if err := self._auth_error(request):
            return self._respond(rec, 401, err)
        return self._respond(rec, 200, {"object": "list", "data": [self._model_json(m) for m in self.models.values()]})

    async def _get_model(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        if err := self._auth_error(request):
            return self._respond(rec, 401, err)
        model_id = request.match_info["model_id"]
        model = self.models.get(model_id)
        if model is None and model_id in self.speech_models:  # the speech models are models too
            model = _ModelInfo(model_id, 1_699_046_015, shutdown_date=self.speech_models[model_id])
        if model is None:
            return self._respond(rec, 404, _model_not_found(model_id))
        return self._respond(rec, 200, self._model_json(model))

    @staticmethod
    def _model_json(m: _ModelInfo) -> dict[str, Any]:
        # shutdown_date is YYYY-MM-DD once a shutdown is announced, null before.
        return {
            "id": m.id,
            "object": "model",
            "created": m.created,
            "owned_by": m.owned_by,
            "shutdown_date": m.shutdown_date,
        }

    def _validate_chat(self, body: Any) -> tuple[int, dict[str, Any]] | None:
        if not isinstance(body, dict):
            return 400, _error(
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
                "but what was sent was not valid JSON. If you have trouble figuring out how to fix "
                "this, please contact us through our help center at help.openai.com.)"
            )
        model_id = body.get("model")
        if not model_id:
            return 400, _error("you must provide a model parameter")
        if "messages" not in body:
            return 400, _error(
                "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter"
            )
        messages = body["messages"]
        if not isinstance(messages, list):
            return 400, _error(
                f"Invalid type for 'messages': expected an array, but got {type(messages).__name__} instead.",
                param="messages",
                code="invalid_type",
            )
        if not messages:
            return 400, _error(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
                "an empty array instead.",
                param="messages",
                code="empty_array",
            )
        for i, msg in enumerate(messages):
            role = msg.get("role") if isinstance(msg, dict) else None
            if role is None:
                return 400, _error(
                    f"Missing required parameter: 'messages[{i}].role'.",
                    param=f"messages[{i}].role",
                    code="missing_required_parameter",
                )
            if role not in _VALID_ROLES:
                return 400, _error(
                    f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                    "'function', 'tool', and 'developer'.",
                    param=f"messages[{i}].role",
                    code="invalid_value",
                )
        temp = body.get("temperature")
        if isinstance(temp, (int, float)) and not isinstance(temp, bool):
            if temp > 2:
                return 400, _error(
                    f"Invalid 'temperature': decimal above maximum value. Expected a value <= 2, "
                    f"but got {temp} instead.",
                    param="temperature",
                    code="decimal_above_max_value",
                )
            if temp < 0:
                return 400, _error(
                    f"Invalid 'temperature': decimal below minimum value. Expected a value >= 0, "
                    f"but got {temp} instead.",
                    param="temperature",
                    code="decimal_below_min_value",
                )
        model = self.models.get(model_id)
        if model is None:
            return 404, _model_not_found(model_id)
        if body.get("stream"):
            return 400, _error("fake_openai: stream=true is not emulated.", param="stream")
        rf = body.get("response_format")
        if isinstance(rf, dict):
            rtype = rf.get("type")
            if rtype == "json_object":
                text = json.dumps(messages).lower()
                if "json" not in text:
                    return 400, _error(
                        "'messages' must contain the word 'json' in some form, to use "
                        "'response_format' of type 'json_object'.",
                        param="messages",
                    )
            elif rtype == "json_schema":
                js = rf.get("json_schema")
                if not isinstance(js, dict):
                    return 400, _error(
                        "Missing required parameter: 'response_format.json_schema'.",
                        param="response_format.json_schema",
                        code="missing_required_parameter",
                    )
                name = js.get("name")
                if not isinstance(name, str):
                    return 400, _error(
                        "Missing required parameter: 'response_format.json_schema.name'.",
                        param="response_format.json_schema.name",
                        code="missing_required_parameter",
                    )
                if not _NAME_RE.match(name):
                    return 400, _error(
                        "Invalid 'response_format.json_schema.name': string does not match pattern. "
                        "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                        param="response_format.json_schema.name",
                        code="invalid_value",
                    )
                if not model.structured_outputs:
                    return 400, _error(
                        "Invalid parameter: 'response_format' of type 'json_schema' is not supported "
                        "with this model. Learn more about supported models at the Structured Outputs "
                        "guide: https://platform.openai.com/docs/guides/structured-outputs",
                        param="response_format",
                    )
                if js.get("strict"):
                    msg = check_strict_schema(name, js.get("schema"))
                    if msg:
                        return 400, _error(msg, param="response_format")
            elif rtype not in ("text", None):
                return 400, _error(
                    f"Invalid value: '{rtype}'. Supported values are: 'json_object', 'json_schema', and 'text'.",
                    param="response_format.type",
                    code="invalid_value",
                )
        return None

    def _rate_limited(self) -> float | None:
        if not self.rpm_limit:
            return None
        now = time.monotonic()
        while self._rpm_times and now - self._rpm_times[0] >= 60:
            self._rpm_times.popleft()
        if len(self._rpm_times) >= self.rpm_limit:
            return 60 - (now - self._rpm_times[0])
        self._rpm_times.append(now)
        return None

    async def _chat(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        if err := self._auth_error(request):
            return self._respond(rec, 401, err)
        body = rec.json
        invalid = self._validate_chat(body)
        if invalid:
            return self._respond(rec, *invalid)
        wait = self._rate_limited()
        if wait is not None:
            hdrs = _ratelimit_headers(limit_requests=self.rpm_limit or 0, remaining_requests=0, reset_requests=wait)
            hdrs["retry-after"] = str(max(1, math.ceil(wait)))
            return self._respond(
                rec,
                429,
                _error(
                    f"Rate limit reached for {body['model']} in organization org-fake on requests per min "
                    "(RPM): "
                    f"Limit {self.rpm_limit}, Used {self.rpm_limit}, Requested 1. Please try again in "
                    f"{_fmt_duration(wait)}. Visit https://platform.openai.com/account/rate-limits to learn "
                    "more.",
                    type="requests",
                    code="rate_limit_exceeded",
                ),
                hdrs,
            )

        delay = self.latency + self._pending_delay
        self._pending_delay = 0.0
        started = time.monotonic()
        reply = self._queue.popleft() if self._queue else await self._default_reply(body)
        delay += reply.delay
        if delay > 0:
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            except TimeoutError:
                pass
        if reply.status >= 400:
            return self._respond(rec, reply.status, reply.error or _error("error"), reply.headers)
        return self._respond(
            rec,
            200,
            self._completion(body, reply),
            {
                **_ratelimit_headers(),
                "openai-processing-ms": str(int((time.monotonic() - started) * 1000)),
                **reply.headers,
            },
        )

    # ------------------------------------------------------------------ speech
    def _validate_speech(self, body: Any) -> tuple[int, dict[str, Any]] | None:
        if not isinstance(body, dict):
            return 400, _error("We could not parse the JSON body of your request.")
        for name in ("model", "input", "voice"):
            if name not in body:
                return 400, _error(
                    f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
                )
        if body["model"] not in self.speech_models:
            return 404, _error(
                f"The model `{body['model']}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        text = body["input"]
        if not isinstance(text, str) or not text:
            return 400, _error("Invalid 'input': empty string.", param="input", code="empty_string")
        if len(text) > SPEECH_MAX_INPUT:
            return 400, _error(
                f"string too long. Expected a string with maximum length {SPEECH_MAX_INPUT}, but got a string "
                f"with length {len(text)} instead.",
                param="input",
                code="string_above_max_length",
            )
        voice = body["voice"]
        voice_id = voice.get("id") if isinstance(voice, dict) else voice
        if voice_id not in SPEECH_VOICES:
            return 400, _error(
                f"Invalid value: '{voice_id}'. Supported values are: "
                + ", ".join(f"'{v}'" for v in SPEECH_VOICES)
                + ".",
                param="voice",
                code="invalid_value",
            )
        fmt = body.get("response_format", "mp3")
        if fmt not in SPEECH_CONTENT_TYPES:
            return 400, _error(
                f"Invalid value: '{fmt}'. Supported values are: "
                + ", ".join(f"'{f}'" for f in SPEECH_CONTENT_TYPES)
                + ".",
                param="response_format",
                code="invalid_value",
            )
        speed = body.get("speed", 1.0)
        if not isinstance(speed, int | float) or isinstance(speed, bool):
            return 400, _error("Invalid type for 'speed': expected a decimal.", param="speed", code="invalid_type")
        if speed < 0.25:
            return 400, _error(
                f"Invalid 'speed': decimal below minimum value. Expected a value >= 0.25, but got {speed} instead.",
                param="speed",
                code="decimal_below_min_value",
            )
        if speed > 4:
            return 400, _error(
                f"Invalid 'speed': decimal above maximum value. Expected a value <= 4, but got {speed} instead.",
                param="speed",
                code="decimal_above_max_value",
            )
        return None

    async def _speech(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        if err := self._auth_error(request):
            return self._respond(rec, 401, err)
        body = rec.json
        invalid = self._validate_speech(body)
        if invalid:
            return self._respond(rec, *invalid)
        if self._speech_queue:
            reply = self._speech_queue.popleft()
            return self._respond(rec, reply.status, reply.error or _error("error"), reply.headers)
        wait = self._rate_limited()
        if wait is not None:
            hdrs = _ratelimit_headers(limit_requests=self.rpm_limit or 0, remaining_requests=0, reset_requests=wait)
            hdrs["retry-after"] = str(max(1, math.ceil(wait)))
            return self._respond(
                rec,
                429,
                _error(
                    f"Rate limit reached for {body['model']} in organization org-fake on requests per min (RPM): "
                    f"Limit {self.rpm_limit}, Used {self.rpm_limit}, Requested 1. Please try again in "
                    f"{_fmt_duration(wait)}.",
                    type="requests",
                    code="rate_limit_exceeded",
                ),
                hdrs,
            )
        fmt = body.get("response_format", "mp3")
        seconds = speech_seconds(body["input"], float(body.get("speed", 1.0)))
        data = await asyncio.to_thread(speech_bytes, seconds, fmt, 24000)
        rec.status = 200
        return web.Response(
            status=200,
            body=data,
            headers={
                "Content-Type": SPEECH_CONTENT_TYPES[fmt],
                "x-request-id": f"req_{uuid.uuid4().hex}",
                "openai-processing-ms": str(int(seconds * 40)),
                **_ratelimit_headers(),
            },
        )

    async def _default_reply(self, body: dict[str, Any]) -> Reply:
        if self.responder is not None:
            out = self.responder(body)
            if inspect.isawaitable(out):
                out = await out
            if isinstance(out, Reply):
                return out
            if isinstance(out, str):
                return Reply(content=out)
            return Reply(content=json.dumps(out))
        rf = body.get("response_format") or {}
        if rf.get("type") == "json_schema":
            schema = (rf.get("json_schema") or {}).get("schema") or {}
            return Reply(content=json.dumps(synthesize_from_schema(schema)))
        if rf.get("type") == "json_object":
            return Reply(content="{}")
        return Reply(content="This is a reply from the fake OpenAI server.")

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        model = self.models[body["model"]]
        prompt_tokens = max(1, len(json.dumps(body.get("messages"))) // 4)
        completion_tokens = max(1, len(reply.content or reply.refusal or "") // 4)
        n = body.get("n") or 1
        choices = [
            {
                "index": i,
                "message": {
                    "role": "assistant",
                    "content": reply.content,
                    "refusal": reply.refusal,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
            for i in range(n)
        ]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:29]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model.snapshot or model.id,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens * n,
                "total_tokens": prompt_tokens + completion_tokens * n,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": "fp_fake0000",
        }


def _fmt_number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _fmt_duration(seconds: float) -> str:
    """OpenAI's duration style: 120ms, 1.5s, 6m0s."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    return f"{int(seconds // 60)}m{int(seconds % 60)}s"


def _ratelimit_headers(
    *,
    limit_requests: int = 500,
    remaining_requests: int = 499,
    reset_requests: float = 0.12,
    limit_tokens: int = 30000,
    remaining_tokens: int = 29000,
    reset_tokens: float = 2.0,
) -> dict[str, str]:
    return {
        "x-ratelimit-limit-requests": str(limit_requests),
        "x-ratelimit-limit-tokens": str(limit_tokens),
        "x-ratelimit-remaining-requests": str(remaining_requests),
        "x-ratelimit-remaining-tokens": str(remaining_tokens),
        "x-ratelimit-reset-requests": _fmt_duration(reset_requests),
        "x-ratelimit-reset-tokens": _fmt_duration(reset_tokens),
    }

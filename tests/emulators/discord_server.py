"""A local Discord emulator that the REAL discord.py client (2.7) logs into.

It serves, on 127.0.0.1 with an ephemeral port, the REST API under ``/api/v10``, the gateway
websocket and a tiny CDN for uploaded attachments. Tests drive users (slash commands, button
clicks, selects, modal submits, plain messages), script faults (429s, 5xx, dropped gateway,
deleted messages/channels, expired tokens) and then assert on what the bot did: every message
with its full edit history, uploaded bytes, allowed_mentions, threads, synced commands and a log
of every request.

Quick start::

    from tests.emulators.discord_server import DiscordEmulator

    async def test_makead(discord_emulator):          # fixture from tests/conftest_discord.py
        emu = discord_emulator                        # started; discord.py already points at it
        bot = build_bot()                             # any discord.Client / commands.Bot
        async with emu.run(bot):                      # login + gateway, returns once on_ready fired
            await bot.tree.sync()
            rec = await emu.slash_command(emu.guild.id, emu.channel.id, emu.user.id,
                                          "makead", {"product": "Lumen", "mood": "tech"})
            await rec.wait_response()                 # the bot acked (rec.response_type == 5)
            [msg] = await rec.wait_followups(1)       # the followup that filled "thinking…"
            await emu.click_button(msg.id, "approve", emu.user.id)
            await emu.wait_for(lambda: emu.message(msg.id).content.startswith("Approved"))

Without the fixture::

    async with DiscordEmulator() as emu:              # start()/stop()
        with point_discord_py_at(emu):                # Route.BASE, DEFAULT_GATEWAY, Asset.BASE
            ...

Pointing a bot at it from the environment: ``emu.env()`` returns ``DISCORD_TOKEN``,
``DISCORD_API_BASE`` (``emu.base_url``, i.e. without ``/api/v10``) and ``DISCORD_GATEWAY_URL``.
The bot then sets ``discord.http.Route.BASE = f"{DISCORD_API_BASE}/api/v10"`` and
``DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(DISCORD_GATEWAY_URL)`` (``GET /gateway`` and
``GET /gateway/bot`` also return the gateway URL).

URLs: ``emu.base_url`` (``http://127.0.0.1:PORT``), ``emu.api_base`` (``…/api/v10``, what
``Route.BASE`` must be), ``emu.gateway_url`` (``ws://…/gateway``), ``emu.cdn_base``.

World (built synchronously; changes made while a bot is connected are also sent on the gateway,
``await emu.settle()`` waits for those sends):

- ``DiscordEmulator(default_guild=True)`` creates ``emu.guild`` ("Jant Test Guild", premium tier 0
  → 10 MiB uploads), ``emu.channel`` (#general), ``emu.user`` ("alice", a member) and the bot
  (``emu.bot_user``; ``emu.application_id == emu.bot_user.id``). The guild owner is a separate user.
- ``add_user(name)``, ``add_guild(name, premium_tier=0)``, ``add_role(guild_id, name, permissions)``,
  ``add_member(guild_id, user_id, roles=())``, ``add_text_channel(guild_id, name)``,
  ``set_premium_tier(guild_id, tier)`` (10 MiB, tier 2 → 50 MiB, tier 3 → 100 MiB).
- Permissions: ``deny_bot(channel_id, "SEND_MESSAGES", "ATTACH_FILES", "CREATE_PUBLIC_THREADS")``,
  ``allow_bot(...)``, ``set_permission_overwrite(channel_id, target_id, allow=..., deny=...)``,
  ``permissions_for(guild_id, user_id, channel_id)``. Names are Discord's (case-insensitive).

Users act (async; each returns an :class:`InteractionRecord`, sent as INTERACTION_CREATE):

- ``slash_command(guild_id, channel_id, user_id, "makead", {"product": "…"})``. The command must
  have been synced (``tree.sync()``); option types come from the synced definition. Subcommands:
  ``"group sub"``. Attachment options take ``(filename, bytes)`` or ``(filename, bytes,
  content_type)`` and arrive as Discord sends them: ``data.options`` type 11 with the attachment id
  as value, and ``data.resolved.attachments[id]`` with ``id, filename, size, url, proxy_url,
  content_type, ephemeral: true`` and, for images, ``width``/``height`` read from the file's header.
  The ``url`` is a signed ``…/cdn/ephemeral-attachments/{app_id}/{id}/{filename}?ex=&is=&hm=&``
  (a bad signature → 404 "This content is no longer available."), ``proxy_url`` the same path under
  ``emu.media_base`` (media.discordapp.net: 415 for files without dimensions). Every CDN/proxy GET
  is logged in ``emu.cdn_requests`` as ``(path, status)``. User/role/channel options take ids.
- ``click_button(message_id, custom_id, user_id)``, ``select(message_id, custom_id, values,
  user_id)``, ``submit_modal(custom_id, {text_input_custom_id: value}, user_id, channel_id)``
  (the modal must have been opened by the bot; its layout, type 18 labels or legacy rows, is
  mirrored), ``autocomplete(guild_id, channel_id, user_id, name, options, focused)``,
  ``user_message(channel_id, user_id, content)`` (MESSAGE_CREATE), ``inject_interaction(payload)``.
- An :class:`InteractionRecord` has ``await rec.wait_response(timeout=5)``, ``rec.response_type``
  (4, 5, 6, 7, 8 or 9), ``rec.acknowledged``, ``rec.callbacks`` (every attempt with status/code),
  ``rec.ephemeral``, ``rec.original`` / ``rec.content`` / ``rec.embeds`` / ``rec.components``
  (the response message, latest version), ``rec.followups``, ``await rec.wait_followups(n)``,
  ``rec.modal`` (the modal the bot opened), ``rec.choices`` (autocomplete), ``rec.latency``.

Inspect:

- ``messages(channel_id)``, ``message(message_id)`` → :class:`StoredMessage` with ``.versions``
  (each :class:`MessageVersion`: ``.at`` (emulator clock, ``time.monotonic()`` based), ``.content``,
  ``.embeds``, ``.components``, ``.attachments`` (each *is* the tuple ``(filename, bytes, size)``),
  ``.flags``, ``.allowed_mentions``, ``.source``), plus ``.content``/``.flags``/… of the latest.
- ``would_ping(message)``: does the delivered version mention @everyone/@here/users/roles in a way
  its allowed_mentions permits (no allowed_mentions = Discord's default, parse everything)?
- ``requests`` (:class:`RequestRecord`: method, path, status, code, at, json, files),
  ``count(method, path_regex, status=None)``, ``unknown_routes``, ``server_errors``.
- ``commands(guild_id=None)``, ``synced_commands``, ``threads``, ``interactions``, ``intents``,
  ``identify_count``, ``resume_count``, ``gateway_events`` (everything dispatched).
- ``await wait_for(predicate, timeout=10)``: re-evaluates ``predicate()`` on every state change
  (no polling); raises ``TimeoutError`` with a report of recent requests.

Faults and time:

- ``fail_next(method, path_regex, status=429, retry_after=1.0, times=1, global_=False)``: the next
  matching request(s) (``path_regex`` is searched in the path after ``/api/v10``, e.g.
  ``r"/channels/\\d+/messages/\\d+$"``) get a Discord-shaped 429 (``Via: 1.1 google``, JSON
  ``retry_after``) or, for other statuses, ``{"message", "code"}``. Returns a :class:`Fault`
  (``.hits``). ``set_rate_limit(method, path_regex, limit, per)`` enforces a real bucket.
- ``delete_message(channel_id, message_id)``, ``delete_channel(channel_id)``,
  ``drop_gateway(code=4000, resumable=True)`` (discord.py RESUMEs, or re-IDENTIFYs after
  INVALID_SESSION when ``resumable=False``), ``async with gateway_outage(): …`` (drops the
  connection and holds reconnects; events meanwhile are replayed on RESUME), ``send_reconnect()``.
- ``emu.clock``/``advance_clock(seconds)``: the 3 s acknowledgement deadline (``ack_deadline``,
  measured from injection → 404/10062) and the 15 min token lifetime (→ 401/50027) use this clock.

discord.py behaviour worth knowing when writing fast tests:

- on_ready waits ``guild_ready_timeout`` (2 s by default) after the last GUILD_CREATE: pass
  ``guild_ready_timeout=0.05`` to the Client/Bot constructor.
- Every re-IDENTIFY (not the first) sleeps 5 s in ``Client.before_identify_hook``; a test bot that
  goes through ``drop_gateway(resumable=False)`` can override that hook to return at once.
- A 5xx is retried after ``1 + 2·attempt`` seconds (REST and webhooks alike): each ``fail_next(…,
  status=500)`` costs a test at least 1 s. A 429 is retried after the body's ``retry_after``.
- A slash command synced only to a guild (``tree.sync(guild=…)``) must exist there: global
  commands need ``tree.copy_global_to(guild=…)`` first, or a global ``tree.sync()``.
- Exceptions in commands, views and modals are only logged: the ``discord_emulator`` fixture
  (``pytest_plugins = ["tests.conftest_discord"]``) fails the test on ERROR records of ``discord``.

Discord's rules enforced (400/50035 with Discord's nested ``errors`` unless noted): content ≤ 2000;
≤ 10 embeds, title 256, description 4096, 25 fields (name 256/value 1024), footer 2048, author 256,
6000 total; ≤ 5 action rows of ≤ 5 buttons (a select fills its row); custom_id 1..100 and unique
per message; button label ≤ 80; modal title ≤ 45 and 1..5 components; ≤ 10 attachments; empty
message → 50006; file over the guild's limit → 413/40005; ack after the deadline → 404/10062; second
ack → 400/40060; token older than 15 min → 401/50027; unknown message → 404/10008; unknown channel →
404/10003; missing permission → 403/50013; editing someone else's message → 403/50005. Unknown
routes answer ``{"message": "404: Not Found", "code": 0}`` and are logged (logger
``discord_emulator``) and kept in ``unknown_routes``. JSON responses carry exactly
``Content-Type: application/json`` and successes carry ``X-RateLimit-*`` headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import itertools
import json
import logging
import math
import mimetypes
import re
import socket
import time
import traceback
import warnings
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import WSMsgType, web

__all__ = [
    "ALL_PERMISSIONS",
    "DEFAULT_BOT_PERMISSIONS",
    "DEFAULT_EVERYONE_PERMISSIONS",
    "FAKE_TOKEN",
    "FLAG_EPHEMERAL",
    "FLAG_LOADING",
    "PERMISSIONS",
    "Attachment",
    "CallbackAttempt",
    "Channel",
    "Clock",
    "DiscordAPIError",
    "DiscordEmulator",
    "Fault",
    "Guild",
    "Interaction",
    "InteractionRecord",
    "Member",
    "MessageVersion",
    "RequestRecord",
    "Role",
    "StoredMessage",
    "User",
    "permission_bits",
    "point_discord_py_at",
]

log = logging.getLogger("discord_emulator")

FAKE_TOKEN = "fake-token-for-tests"
API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1_420_070_400_000
MiB = 1024 * 1024

# Gateway intents.
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

# Message flags.
FLAG_SUPPRESS_EMBEDS = 1 << 2
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_SUPPRESS_NOTIFICATIONS = 1 << 12
FLAG_COMPONENTS_V2 = 1 << 15

PERMISSIONS: dict[str, int] = {
    "CREATE_INSTANT_INVITE": 1 << 0,
    "KICK_MEMBERS": 1 << 1,
    "BAN_MEMBERS": 1 << 2,
    "ADMINISTRATOR": 1 << 3,
    "MANAGE_CHANNELS": 1 << 4,
    "MANAGE_GUILD": 1 << 5,
    "ADD_REACTIONS": 1 << 6,
    "VIEW_AUDIT_LOG": 1 << 7,
    "VIEW_CHANNEL": 1 << 10,
    "SEND_MESSAGES": 1 << 11,
    "SEND_TTS_MESSAGES": 1 << 12,
    "MANAGE_MESSAGES": 1 << 13,
    "EMBED_LINKS": 1 << 14,
    "ATTACH_FILES": 1 << 15,
    "READ_MESSAGE_HISTORY": 1 << 16,
    "MENTION_EVERYONE": 1 << 17,
    "USE_EXTERNAL_EMOJIS": 1 << 18,
    "CONNECT": 1 << 20,
    "SPEAK": 1 << 21,
    "CHANGE_NICKNAME": 1 << 26,
    "MANAGE_ROLES": 1 << 28,
    "MANAGE_WEBHOOKS": 1 << 29,
    "USE_APPLICATION_COMMANDS": 1 << 31,
    "MANAGE_THREADS": 1 << 34,
    "CREATE_PUBLIC_THREADS": 1 << 35,
    "CREATE_PRIVATE_THREADS": 1 << 36,
    "SEND_MESSAGES_IN_THREADS": 1 << 38,
}
ALL_PERMISSIONS = (1 << 51) - 1


def permission_bits(*permissions: str | int) -> int:
    """OR together permission names (``"send_messages"``, ``"ATTACH_FILES"``) and/or ints."""
    bits = 0
    for p in permissions:
        if isinstance(p, int):
            bits |= p
        else:
            try:
                bits |= PERMISSIONS[p.upper()]
            except KeyError:
                raise ValueError(f"unknown permission {p!r}; known: {sorted(PERMISSIONS)}") from None
    return bits


DEFAULT_EVERYONE_PERMISSIONS = permission_bits(
    "CREATE_INSTANT_INVITE",
    "ADD_REACTIONS",
    "VIEW_CHANNEL",
    "SEND_MESSAGES",
    "EMBED_LINKS",
    "ATTACH_FILES",
    "READ_MESSAGE_HISTORY",
    "USE_EXTERNAL_EMOJIS",
    "CONNECT",
    "SPEAK",
    "CHANGE_NICKNAME",
    "USE_APPLICATION_COMMANDS",
    "CREATE_PUBLIC_THREADS",
    "CREATE_PRIVATE_THREADS",
    "SEND_MESSAGES_IN_THREADS",
)
DEFAULT_BOT_PERMISSIONS = DEFAULT_EVERYONE_PERMISSIONS | permission_bits("MANAGE_MESSAGES", "MANAGE_THREADS")

_PREMIUM_LIMITS = {2: 50 * MiB, 3: 100 * MiB}
_PREMIUM_BOOSTS = {0: 0, 1: 2, 2: 7, 3: 14}
_SELECT_TYPES = (3, 5, 6, 7, 8)
_THREAD_TYPES = (10, 11, 12)
_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
_EVERYONE_MENTION = re.compile(r"@(everyone|here)\b")
_COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")


def _iso(dt: datetime | None = None) -> str:
    return (dt or datetime.now(UTC)).isoformat()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------------------------------
# Errors and time
# --------------------------------------------------------------------------------------------------


class DiscordAPIError(Exception):
    """An error answered the way Discord answers it: ``{"message", "code"[, "errors"]}``."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        errors: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


def _unknown(code: int, what: str) -> DiscordAPIError:
    return DiscordAPIError(404, code, f"Unknown {what}")


def _missing_permissions() -> DiscordAPIError:
    return DiscordAPIError(403, 50013, "Missing Permissions")


class _Errors:
    """Collects Discord's nested form errors: ``{"embeds": {"0": {"title": {"_errors": [...]}}}}``."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}

    def add(self, path: Sequence[str | int], code: str, message: str) -> None:
        node = self.tree
        for part in path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def length(
        self,
        path: Sequence[str | int],
        value: Any,
        *,
        max_len: int,
        min_len: int = 0,
        required: bool = False,
    ) -> int:
        """Check a string's length; returns its length (0 when absent or invalid)."""
        if value is None:
            if required:
                self.add(path, "BASE_TYPE_REQUIRED", "This field is required")
            return 0
        if not isinstance(value, str):
            self.add(path, "BASE_TYPE_STRING", "Must be a string.")
            return 0
        n = len(value)
        if min_len > 0 and not min_len <= n <= max_len:
            self.add(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {min_len} and {max_len} in length.")
        elif n > max_len:
            self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {max_len} or fewer in length.")
        return n

    def raise_if_any(self) -> None:
        if self.tree:
            raise DiscordAPIError(400, 50035, "Invalid Form Body", errors=self.tree)


class Clock:
    """Seconds from ``time.monotonic()`` plus an offset that tests advance to expire deadlines."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.offset += seconds


# --------------------------------------------------------------------------------------------------
# World model
# --------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class User:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "public_flags": 0,
        }
        if self.bot:
            data["bot"] = True
        return data


@dataclass(eq=False)
class Role:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False
    mentionable: bool = False
    bot_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": self.managed,
            "mentionable": self.mentionable,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass(eq=False)
class Member:
    guild_id: int
    user: User
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = field(default_factory=_iso)

    def to_dict(self, *, with_user: bool = True, permissions: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "roles": [str(r) for r in self.roles],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.to_dict()
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


@dataclass(eq=False)
class Channel:
    """A guild text channel (type 0), a thread (11 public, 12 private) or a DM (type 1)."""

    id: int
    type: int
    name: str
    guild_id: int | None
    parent_id: int | None = None
    position: int = 0
    topic: str | None = None
    overwrites: list[dict[str, Any]] = field(default_factory=list)
    owner_id: int | None = None
    archived: bool = False
    locked: bool = False
    auto_archive_duration: int = 1440
    invitable: bool = True
    created_at: str = field(default_factory=_iso)
    member_ids: set[int] = field(default_factory=set)
    message_count: int = 0
    recipient_ids: list[int] = field(default_factory=list)
    last_message_id: int | None = None
    starter_message_id: int | None = None
    deleted: bool = False

    @property
    def is_thread(self) -> bool:
        return self.type in _THREAD_TYPES

    def to_dict(self, users: Mapping[int, User]) -> dict[str, Any]:
        last = str(self.last_message_id) if self.last_message_id else None
        if self.type == 1:
            return {
                "id": str(self.id),
                "type": 1,
                "last_message_id": last,
                "flags": 0,
                "recipients": [users[u].to_dict() for u in self.recipient_ids],
            }
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "last_message_id": last,
            "rate_limit_per_user": 0,
            "flags": 0,
        }
        if self.is_thread:
            data.update(
                owner_id=str(self.owner_id),
                message_count=self.message_count,
                total_message_sent=self.message_count,
                member_count=len(self.member_ids),
                thread_metadata={
                    "archived": self.archived,
                    "auto_archive_duration": self.auto_archive_duration,
                    "archive_timestamp": self.created_at,
                    "locked": self.locked,
                    "invitable": self.invitable,
                    "create_timestamp": self.created_at,
                },
            )
        else:
            data.update(
                position=self.position,
                topic=self.topic,
                nsfw=False,
                default_auto_archive_duration=1440,
                permission_overwrites=[dict(o) for o in self.overwrites],
            )
        return data


@dataclass(eq=False)
class Guild:
    id: int
    name: str
    owner_id: int
    premium_tier: int = 0
    preferred_locale: str = "en-US"
    roles: dict[int, Role] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    channel_ids: list[int] = field(default_factory=list)
    joined_at: str = field(default_factory=_iso)

    @property
    def filesize_limit(self) -> int:
        """Per-file upload limit: 10 MiB, 50 MiB at premium tier 2, 100 MiB at tier 3."""
        return _PREMIUM_LIMITS.get(self.premium_tier, 10 * MiB)


class Attachment(tuple):
    """A stored attachment. It *is* the tuple ``(filename, data, size)``; ``.id``, ``.url``,
    ``.content_type`` and ``.description`` ride along as attributes."""

    id: int
    url: str
    proxy_url: str
    content_type: str | None
    description: str | None
    width: int | None
    height: int | None
    ephemeral: bool

    def __new__(
        cls,
        filename: str,
        data: bytes,
        *,
        id: int = 0,
        url: str = "",
        proxy_url: str | None = None,
        content_type: str | None = None,
        description: str | None = None,
        width: int | None = None,
        height: int | None = None,
        ephemeral: bool = False,
    ) -> Attachment:
        self = super().__new__(cls, (filename, bytes(data), len(data)))
        self.id = id
        self.url = url
        self.proxy_url = proxy_url or url
        self.content_type = content_type
        self.description = description
        self.width = width
        self.height = height
        self.ephemeral = ephemeral
        return self

    @property
    def filename(self) -> str:
        return self[0]

    @property
    def data(self) -> bytes:
        return self[1]

    @property
    def size(self) -> int:
        return self[2]

    def __repr__(self) -> str:  # never dump megabytes into a test report
        return f"Attachment({self.filename!r}, <{self.size} bytes>, {self.size})"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.proxy_url,
            "content_type": self.content_type,
        }
        if self.width is not None and self.height is not None:  # Discord sends both for images only
            data.update(width=self.width, height=self.height)
        if self.ephemeral:
            data["ephemeral"] = True
        if self.description is not None:
            data["description"] = self.description
        return data


@dataclass
class MessageVersion:
    """One state of a message: the original send or one edit."""

    at: float
    content: str
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]]
    attachments: list[Attachment]
    flags: int
    allowed_mentions: dict[str, Any] | None
    source: str  # create | edit | interaction-response | deferred | followup | original-edit | component-update
    edited_timestamp: str | None = None


def _walk_components(components: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for c in components:
        if not isinstance(c, Mapping):
            continue
        yield c
        if isinstance(c.get("components"), list):
            yield from _walk_components(c["components"])
        for key in ("component", "accessory"):
            if isinstance(c.get(key), Mapping):
                yield from _walk_components([c[key]])


@dataclass(eq=False)
class StoredMessage:
    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    type: int
    created_at: float
    timestamp: str
    versions: list[MessageVersion]
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_id: int | None = None
    interaction_metadata: dict[str, Any] | None = None
    message_reference: dict[str, Any] | None = None
    thread_id: int | None = None
    deleted: bool = False
    deleted_at: float | None = None
    reactions: list[str] = field(default_factory=list)

    @property
    def latest(self) -> MessageVersion:
        return self.versions[-1]

    @property
    def content(self) -> str:
        return self.latest.content

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return self.latest.embeds

    @property
    def components(self) -> list[dict[str, Any]]:
        return self.latest.components

    @property
    def attachments(self) -> list[Attachment]:
        return self.latest.attachments

    @property
    def flags(self) -> int:
        return self.latest.flags

    @property
    def allowed_mentions(self) -> dict[str, Any] | None:
        return self.latest.allowed_mentions

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """True while this is a deferred "Bot is thinking…" message nobody has filled yet."""
        return bool(self.flags & FLAG_LOADING)

    @property
    def edit_count(self) -> int:
        return len(self.versions) - 1

    def iter_components(self) -> Iterator[Mapping[str, Any]]:
        """Every component of the latest version, depth first (rows, their children, …)."""
        return _walk_components(self.components)

    @property
    def custom_ids(self) -> list[str]:
        return [c["custom_id"] for c in self.iter_components() if "custom_id" in c]

    def component(self, custom_id: str) -> Mapping[str, Any] | None:
        return next((c for c in self.iter_components() if c.get("custom_id") == custom_id), None)

    @property
    def button_labels(self) -> list[str]:
        return [c.get("label") or "" for c in self.iter_components() if c.get("type") == 2]


@dataclass
class RequestRecord:
    method: str
    path: str  # after /api/v10, without the query string
    at: float
    query: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    code: int | None = None  # Discord error code of a failed request
    route: str | None = None  # the matched template, e.g. "PATCH /channels/{channel_id}/messages/{message_id}"
    json: Any = None  # the JSON body (payload_json for multipart)
    files: list[tuple[str, int]] = field(default_factory=list)  # (filename, size)


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    retry_after: float
    times: int
    global_: bool
    code: int | None
    message: str | None
    hits: int = 0

    @property
    def remaining(self) -> int:
        return self.times - self.hits


@dataclass
class _RateLimitRule:
    method: str
    pattern: re.Pattern[str]
    limit: int
    per: float
    enforce: bool


@dataclass
class CallbackAttempt:
    at: float
    type: int | None
    status: int
    code: int | None
    payload: Any


@dataclass
class GatewayEvent:
    name: str
    seq: int
    data: Any
    at: float


@dataclass(eq=False)
class _GatewayConnection:
    ws: web.WebSocketResponse
    path: str
    query: dict[str, str]
    opened_at: float
    closed_at: float | None = None
    close_code: int | None = None
    heartbeats: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, frame: str) -> bool:
        async with self.lock:
            if self.ws.closed:
                return False
            try:
                await self.ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                return False
            return True


@dataclass(eq=False)
class _GatewaySession:
    session_id: str
    intents: int
    identify: dict[str, Any]
    seq: int = 0
    events: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=2000))
    conn: _GatewayConnection | None = None
    resumable: bool = True
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class _Upload:
    index: int
    filename: str
    data: bytes
    content_type: str | None


@dataclass
class _Req:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    payload: Any
    files: list[_Upload]
    record: RequestRecord


class _Reply:
    def __init__(self, status: int, body: Any = None) -> None:
        self.status = status
        self.body = body


_NO_CONTENT = _Reply(204)


class InteractionRecord:
    """What happened to one injected interaction. Also exported as ``Interaction``."""

    def __init__(self, emu: DiscordEmulator, payload: dict[str, Any], created_at: float) -> None:
        self._emu = emu
        self.payload = payload
        self.id = int(payload["id"])
        self.token: str = payload["token"]
        self.type: int = payload["type"]
        self.guild_id = int(payload["guild_id"]) if payload.get("guild_id") else None
        self.channel_id = int(payload["channel_id"])
        user = payload["member"]["user"] if "member" in payload else payload["user"]
        self.user_id = int(user["id"])
        self.attachment_size_limit: int = payload["attachment_size_limit"]
        self.created_at = created_at
        self.callbacks: list[CallbackAttempt] = []
        self.response_type: int | None = None
        self.response_data: dict[str, Any] | None = None
        self.responded_at: float | None = None
        self.original_message_id: int | None = None
        self.followup_ids: list[int] = []
        self.modal: dict[str, Any] | None = None
        self.choices: list[dict[str, Any]] | None = None
        self._deferred_filled = False

    def __repr__(self) -> str:
        return (
            f"<InteractionRecord id={self.id} type={self.type} name={self.name!r} "
            f"custom_id={self.custom_id!r} response_type={self.response_type}>"
        )

    @property
    def data(self) -> dict[str, Any]:
        return self.payload.get("data") or {}

    @property
    def name(self) -> str | None:
        return self.data.get("name")

    @property
    def custom_id(self) -> str | None:
        return self.data.get("custom_id")

    @property
    def message_id(self) -> int | None:
        """The message a component/modal interaction came from."""
        message = self.payload.get("message")
        return int(message["id"]) if message else None

    @property
    def acknowledged(self) -> bool:
        return self.response_type is not None

    @property
    def deferred(self) -> bool:
        return self.response_type in (5, 6)

    @property
    def latency(self) -> float | None:
        """Seconds between injection and the accepted callback."""
        return None if self.responded_at is None else self.responded_at - self.created_at

    @property
    def original(self) -> StoredMessage | None:
        if self.original_message_id is None:
            return None
        return self._emu._messages.get(self.original_message_id)

    @property
    def followups(self) -> list[StoredMessage]:
        return [self._emu._messages[i] for i in self.followup_ids]

    @property
    def ephemeral(self) -> bool:
        if self.response_type in (4, 5) and self.original is not None:
            return self.original.ephemeral
        return bool(((self.response_data or {}).get("flags") or 0) & FLAG_EPHEMERAL)

    @property
    def content(self) -> str | None:
        return self.original.content if self.original is not None else None

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return self.original.embeds if self.original is not None else []

    @property
    def components(self) -> list[dict[str, Any]]:
        return self.original.components if self.original is not None else []

    async def wait(
        self,
        predicate: Callable[[InteractionRecord], Any],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> InteractionRecord:
        await self._emu.wait_for(lambda: predicate(self), timeout=timeout, description=f"{self!r}: predicate")
        return self

    async def wait_response(self, timeout: float = 5.0) -> InteractionRecord:  # noqa: ASYNC109
        """Wait until the bot called back (accepted or rejected: look at ``callbacks``)."""
        await self._emu.wait_for(lambda: self.callbacks, timeout=timeout, description=f"a callback for {self!r}")
        return self

    async def wait_followups(self, count: int = 1, timeout: float = 5.0) -> list[StoredMessage]:  # noqa: ASYNC109
        await self._emu.wait_for(
            lambda: len(self.followup_ids) >= count,
            timeout=timeout,
            description=f"{count} followup(s) for {self!r}",
        )
        return self.followups


Interaction = InteractionRecord


# --------------------------------------------------------------------------------------------------
# Pointing discord.py at the emulator
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def point_discord_py_at(emulator: DiscordEmulator) -> Iterator[DiscordEmulator]:
    """Redirect discord.py's REST base, default gateway and CDN base to ``emulator``; restore after."""
    import yarl
    from discord.asset import Asset
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY, Asset.BASE)
    Route.BASE = emulator.api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(emulator.gateway_url)
    Asset.BASE = emulator.cdn_base
    try:
        yield emulator
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY, Asset.BASE = saved


# --------------------------------------------------------------------------------------------------
# Multipart
# --------------------------------------------------------------------------------------------------


def _image_size(data: bytes) -> tuple[int | None, int | None]:
    """An image's width and height from its header, as Discord reports them (None for other files)."""
    from PIL import Image  # tests already depend on Pillow

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                return img.size
    except Image.DecompressionBombError:
        # Pillow refuses to even open it; the PNG header still says how big it claims to be.
        # (Pillow's limit is process-wide, so it is not lowered here: the bot under test uses it.)
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        return None, None
    except Exception:
        return None, None


def _disposition_param(header: str, name: str) -> str | None:
    quoted = re.search(rf'(?:^|;)\s*{re.escape(name)}="((?:[^"\\]|\\.)*)"', header)
    if quoted:
        return re.sub(r"\\(.)", r"\1", quoted.group(1))
    bare = re.search(rf"(?:^|;)\s*{re.escape(name)}=([^;]+)", header)
    return bare.group(1).strip() if bare else None


def _parse_multipart(body: bytes, content_type: str) -> list[tuple[str, str | None, str | None, bytes]]:
    """(name, filename, content type, bytes) of each part. Small and strict on purpose."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise DiscordAPIError(400, 50035, "Invalid Form Body", {"_errors": [{"code": "BAD_MULTIPART"}]})
    delimiter = b"--" + m.group(1).encode()
    parts = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        head, _, data = chunk.partition(b"\r\n\r\n")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = _disposition_param(disposition, "name") or ""
        filename = _disposition_param(disposition, "filename*")
        if filename is not None:
            filename = unquote(filename.split("''", 1)[-1])
        else:
            filename = _disposition_param(disposition, "filename")
        parts.append((name, filename, headers.get("content-type"), data))
    return parts


# --------------------------------------------------------------------------------------------------
# Validation (pure functions over payloads)
# --------------------------------------------------------------------------------------------------


def _validate_embeds(embeds: Any, errors: _Errors, path: tuple[str | int, ...]) -> None:
    if not isinstance(embeds, list):
        errors.add(path, "BASE_TYPE_ARRAY", "Must be an array.")
        return
    if len(embeds) > 10:
        errors.add(path, "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    total = 0
    for i, embed in enumerate(embeds):
        p = (*path, i)
        if not isinstance(embed, dict):
            errors.add(p, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
            continue
        total += errors.length((*p, "title"), embed.get("title"), max_len=256)
        total += errors.length((*p, "description"), embed.get("description"), max_len=4096)
        fields = embed.get("fields") or []
        if len(fields) > 25:
            errors.add((*p, "fields"), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        for j, f in enumerate(fields):
            fp = (*p, "fields", j)
            total += errors.length((*fp, "name"), f.get("name"), min_len=1, max_len=256, required=True)
            total += errors.length((*fp, "value"), f.get("value"), min_len=1, max_len=1024, required=True)
        if isinstance(embed.get("footer"), dict):
            total += errors.length((*p, "footer", "text"), embed["footer"].get("text"), max_len=2048)
        if isinstance(embed.get("author"), dict):
            total += errors.length((*p, "author", "name"), embed["author"].get("name"), max_len=256, required=True)
    if total > 6000:
        errors.add(path, "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")


def _validate_custom_id(c: Mapping[str, Any], path: tuple, errors: _Errors, seen: set[str]) -> None:
    custom_id = c.get("custom_id")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 100:
        errors.add((*path, "custom_id"), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        return
    if custom_id in seen:
        errors.add((*path, "custom_id"), "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated")
    seen.add(custom_id)


def _validate_interactive(c: Mapping[str, Any], path: tuple, errors: _Errors, seen: set[str]) -> None:
    kind = c.get("type")
    if kind == 2:
        style = c.get("style")
        errors.length((*path, "label"), c.get("label"), max_len=80)
        if style == 5:
            if not c.get("url"):
                errors.add((*path, "url"), "BASE_TYPE_REQUIRED", "This field is required")
            if "custom_id" in c:
                errors.add(
                    (*path, "custom_id"),
                    "BUTTON_COMPONENT_CUSTOM_ID_NOT_ALLOWED",
                    "A link button cannot have a custom id",
                )
        elif style == 6:
            if not c.get("sku_id"):
                errors.add((*path, "sku_id"), "BASE_TYPE_REQUIRED", "This field is required")
        elif style in (1, 2, 3, 4):
            _validate_custom_id(c, path, errors, seen)
        else:
            errors.add((*path, "style"), "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4, 5, 6}.")
        if style != 6 and not c.get("label") and not c.get("emoji"):
            errors.add(path, "BUTTON_COMPONENT_LABEL_OR_EMOJI_REQUIRED", "A button must have a label or an emoji")
    elif kind in _SELECT_TYPES:
        _validate_custom_id(c, path, errors, seen)
        errors.length((*path, "placeholder"), c.get("placeholder"), max_len=150)
        min_values, max_values = c.get("min_values", 1), c.get("max_values", 1)
        if not 0 <= min_values <= 25:
            errors.add((*path, "min_values"), "NUMBER_TYPE_MAX", "int value should be between 0 and 25.")
        if not 1 <= max_values <= 25:
            errors.add((*path, "max_values"), "NUMBER_TYPE_MAX", "int value should be between 1 and 25.")
        if kind == 3:
            options = c.get("options") or []
            if not 1 <= len(options) <= 25:
                errors.add((*path, "options"), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 25 in length.")
            for k, o in enumerate(options):
                op = (*path, "options", k)
                errors.length((*op, "label"), o.get("label"), min_len=1, max_len=100, required=True)
                errors.length((*op, "value"), o.get("value"), min_len=1, max_len=100, required=True)
                errors.length((*op, "description"), o.get("description"), max_len=100)
    elif kind == 4:
        errors.add((*path, "type"), "COMPONENT_TYPE_INVALID", "Text inputs are only valid in modals")


def _validate_components(components: Any, flags: int, errors: _Errors, path: tuple) -> None:
    if not isinstance(components, list):
        errors.add(path, "BASE_TYPE_ARRAY", "Must be an array.")
        return
    seen: set[str] = set()
    if flags & FLAG_COMPONENTS_V2:
        if sum(1 for _ in _walk_components(components)) > 40:
            errors.add(path, "BASE_TYPE_MAX_LENGTH", "Must be 40 or fewer in length.")
        for c in _walk_components(components):
            _validate_interactive(c, path, errors, seen)
        return
    if len(components) > 5:
        errors.add(path, "BASE_TYPE_BAD_LENGTH", "Must be between 0 and 5 in length.")
    for i, row in enumerate(components):
        rp = (*path, i)
        if not isinstance(row, dict) or row.get("type") != 1:
            errors.add((*rp, "type"), "UNION_TYPE_CHOICES", 'Value of field "type" must be one of (1,).')
            continue
        children = row.get("components") or []
        if not 1 <= len(children) <= 5:
            errors.add((*rp, "components"), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")
        if any(c.get("type") in _SELECT_TYPES for c in children) and len(children) > 1:
            errors.add(
                (*rp, "components"),
                "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                "The specified component exceeds the maximum width",
            )
        for j, c in enumerate(children):
            _validate_interactive(c, (*rp, "components", j), errors, seen)


def _validate_allowed_mentions(am: Any, errors: _Errors, path: tuple) -> None:
    if am is None:
        return
    if not isinstance(am, dict):
        errors.add(path, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
        return
    parse = am.get("parse") or []
    for i, p in enumerate(parse):
        if p not in ("users", "roles", "everyone"):
            errors.add(
                (*path, "parse", i),
                "BASE_TYPE_CHOICES",
                "Value must be one of {'users', 'roles', 'everyone'}.",
            )
    for kind in ("users", "roles"):
        if kind in parse and am.get(kind):
            errors.add(
                (*path, "parse"),
                "SET_TYPE_ALREADY_CONTAINS_VALUE",
                f'"{kind}" in parse is mutually exclusive with the "{kind}" list.',
            )
        if len(am.get(kind) or []) > 100:
            errors.add((*path, kind), "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")


def _validate_message_fields(
    payload: Mapping[str, Any], uploads: Sequence[_Upload], errors: _Errors, path: tuple, *, flags: int
) -> None:
    """Checks of the fields present in a create/edit payload (limits of message.mdx, components)."""
    if "content" in payload and payload["content"] is not None:
        content = payload["content"]
        if not isinstance(content, str):
            errors.add((*path, "content"), "BASE_TYPE_STRING", "Must be a string.")
        elif len(content) > 2000:
            errors.add((*path, "content"), "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
    if payload.get("embeds") is not None:
        _validate_embeds(payload["embeds"], errors, (*path, "embeds"))
    if payload.get("components") is not None:
        _validate_components(payload["components"], flags, errors, (*path, "components"))
    if flags & FLAG_COMPONENTS_V2 and (payload.get("content") or payload.get("embeds")):
        errors.add(
            (*path, "content"),
            "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
            "The 'content' and 'embeds' fields cannot be used when using MessageFlags.IS_COMPONENTS_V2",
        )
    if len(uploads) > 10 or len(payload.get("attachments") or []) > 10:
        errors.add((*path, "attachments"), "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    _validate_allowed_mentions(payload.get("allowed_mentions"), errors, (*path, "allowed_mentions"))


def _check_upload_sizes(uploads: Sequence[_Upload], limit: int) -> None:
    if any(len(u.data) > limit for u in uploads):
        raise DiscordAPIError(413, 40005, "Request entity too large")


def _validate_text_input(c: Mapping[str, Any], path: tuple, errors: _Errors, seen: set[str], *, legacy: bool) -> None:
    _validate_custom_id(c, path, errors, seen)
    if c.get("style", 1) not in (1, 2):
        errors.add((*path, "style"), "BASE_TYPE_CHOICES", "Value must be one of {1, 2}.")
    if legacy:
        errors.length((*path, "label"), c.get("label"), min_len=1, max_len=45, required=True)
    errors.length((*path, "placeholder"), c.get("placeholder"), max_len=100)
    errors.length((*path, "value"), c.get("value"), max_len=4000)
    if not 0 <= c.get("min_length", 0) <= 4000:
        errors.add((*path, "min_length"), "NUMBER_TYPE_MAX", "int value should be between 0 and 4000.")
    if not 1 <= c.get("max_length", 4000) <= 4000:
        errors.add((*path, "max_length"), "NUMBER_TYPE_MAX", "int value should be between 1 and 4000.")


def _validate_modal(data: Mapping[str, Any], errors: _Errors, path: tuple) -> None:
    errors.length((*path, "title"), data.get("title"), min_len=1, max_len=45, required=True)
    errors.length((*path, "custom_id"), data.get("custom_id"), min_len=1, max_len=100, required=True)
    components = data.get("components") or []
    if not 1 <= len(components) <= 5:
        errors.add((*path, "components"), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")
    seen: set[str] = set()
    for i, c in enumerate(components):
        cp = (*path, "components", i)
        kind = c.get("type")
        if kind == 1:
            children = c.get("components") or []
            if len(children) != 1:
                errors.add((*cp, "components"), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 1 in length.")
            elif children[0].get("type") == 4:
                _validate_text_input(children[0], (*cp, "components", 0), errors, seen, legacy=True)
            elif children[0].get("type") in _SELECT_TYPES:
                _validate_custom_id(children[0], (*cp, "components", 0), errors, seen)
            else:
                errors.add((*cp, "components", 0, "type"), "COMPONENT_TYPE_INVALID", "Invalid component type")
        elif kind == 18:
            errors.length((*cp, "label"), c.get("label"), min_len=1, max_len=45, required=True)
            errors.length((*cp, "description"), c.get("description"), max_len=100)
            inner = c.get("component") or {}
            if inner.get("type") == 4:
                _validate_text_input(inner, (*cp, "component"), errors, seen, legacy=False)
            elif inner.get("type") in (*_SELECT_TYPES, 19, 21, 22, 23):
                _validate_custom_id(inner, (*cp, "component"), errors, seen)
            else:
                errors.add((*cp, "component", "type"), "COMPONENT_TYPE_INVALID", "Invalid component type")
        elif kind != 10:
            errors.add((*cp, "type"), "COMPONENT_TYPE_INVALID", "Invalid component type")


def _validate_command(cmd: Any, errors: _Errors, path: tuple) -> None:
    if not isinstance(cmd, dict):
        errors.add(path, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
        return
    kind = cmd.get("type", 1)
    name = cmd.get("name")
    if kind == 1:
        if not isinstance(name, str) or not _COMMAND_NAME.match(name) or name != name.lower():
            errors.add((*path, "name"), "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        errors.length((*path, "description"), cmd.get("description"), min_len=1, max_len=100, required=True)
        _validate_options(cmd.get("options") or [], errors, (*path, "options"))
    else:
        errors.length((*path, "name"), name, min_len=1, max_len=32, required=True)


def _validate_options(options: list[dict[str, Any]], errors: _Errors, path: tuple) -> None:
    if len(options) > 25:
        errors.add(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    seen_optional = False
    for i, o in enumerate(options):
        op = (*path, i)
        name = o.get("name")
        if not isinstance(name, str) or not _COMMAND_NAME.match(name) or name != name.lower():
            errors.add((*op, "name"), "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        errors.length((*op, "description"), o.get("description"), min_len=1, max_len=100, required=True)
        kind = o.get("type")
        if kind not in range(1, 12):
            errors.add((*op, "type"), "BASE_TYPE_CHOICES", "Value must be one of 1..11.")
        if kind in (1, 2):
            _validate_options(o.get("options") or [], errors, (*op, "options"))
            continue
        if o.get("required"):
            if seen_optional:
                errors.add(
                    (*op, "required"),
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
        else:
            seen_optional = True
        if len(o.get("choices") or []) > 25:
            errors.add((*op, "choices"), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        for key in ("min_length", "max_length"):
            if key in o and not 0 <= o[key] <= 6000:
                errors.add((*op, key), "NUMBER_TYPE_MAX", "int value should be between 0 and 6000.")


# --------------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------------

_Handler = Callable[[_Req], Awaitable[Any]]


class DiscordEmulator:
    """A fake Discord (REST + gateway + CDN) for one bot application. See the module docstring."""

    def __init__(
        self,
        *,
        token: str = FAKE_TOKEN,
        bot_name: str = "Jant",
        default_guild: bool = True,
        clock: Clock | None = None,
        heartbeat_interval: float = 41.25,
        ack_deadline: float = 3.0,
        token_lifetime: float = 15 * 60,
        privileged_intents: int = PRIVILEGED_INTENTS,
        max_request_size: int = 256 * MiB,
    ) -> None:
        self.token = token
        self.clock = clock or Clock()
        self.heartbeat_interval = heartbeat_interval
        self.ack_deadline = ack_deadline
        self.token_lifetime = token_lifetime
        self.privileged_intents = privileged_intents
        self.max_request_size = max_request_size

        self._snowflake_last = 0
        self.users: dict[int, User] = {}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self._messages: dict[int, StoredMessage] = {}
        self._cdn: dict[int, Attachment] = {}
        # Every GET on the CDN and media proxy, (path, status): a test can tell "refused before
        # downloading" from "downloaded, then refused".
        self.cdn_requests: list[tuple[str, int]] = []
        self._cdn_secret = hashlib.sha256(f"{id(self)}:{time.time_ns()}".encode()).hexdigest()

        self.bot_user = self.add_user(bot_name, bot=True)
        self.application_id = self.bot_user.id
        self.owner_user = self.add_user("jant-owner")

        self.synced_commands: dict[int | None, list[dict[str, Any]]] = {}
        self.sync_count = 0
        self.interactions: list[InteractionRecord] = []
        self._interactions_by_id: dict[int, InteractionRecord] = {}
        self._interactions_by_token: dict[str, InteractionRecord] = {}

        self.requests: list[RequestRecord] = []
        self.unknown_routes: list[tuple[str, str]] = []
        self.server_errors: list[str] = []
        self.faults: list[Fault] = []
        self._rate_rules: list[_RateLimitRule] = []
        self._buckets: dict[tuple[str, str], deque[float]] = {}

        self.gateway_connections: list[_GatewayConnection] = []
        self.gateway_events: list[GatewayEvent] = []
        self.identify_payloads: list[dict[str, Any]] = []
        self.presence_updates: list[dict[str, Any]] = []
        self.identify_count = 0
        self.resume_count = 0
        self.replayed_events = 0
        self._session: _GatewaySession | None = None
        self._session_counter = itertools.count(1)
        self._gateway_open = asyncio.Event()
        self._gateway_open.set()

        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._routes = self._build_routes()
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

        self.guild: Guild | None = None
        self.channel: Channel | None = None
        self.user: User | None = None
        if default_guild:
            self.guild = self.add_guild("Jant Test Guild")
            self.channel = self.add_text_channel(self.guild.id, "general")
            self.user = self.add_user("alice", global_name="Alice")
            self.add_member(self.guild.id, self.user.id)

    # ---------------------------------------------------------------- lifecycle and URLs

    async def start(self) -> DiscordEmulator:
        app = web.Application(client_max_size=self.max_request_size)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._handle_api)
        app.router.add_get("/gateway", self._handle_gateway)
        app.router.add_get("/gateway-resume", self._handle_gateway)
        app.router.add_get("/cdn/{tail:.*}", self._handle_cdn)
        app.router.add_get("/media/{tail:.*}", self._handle_media_proxy)
        app.router.add_route("*", "/{tail:.*}", self._handle_outside_api)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        for conn in self.gateway_connections:
            if not conn.ws.closed:
                with contextlib.suppress(Exception):
                    await conn.ws.close(code=1001, message=b"emulator stopping")
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordEmulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: the value for ``DISCORD_API_BASE``."""
        if self.port is None:
            raise RuntimeError("the emulator is not started; await emu.start() first")
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """``http://127.0.0.1:PORT/api/v10``: the value for ``discord.http.Route.BASE``."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def resume_gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway-resume"

    @property
    def cdn_base(self) -> str:
        return self.base_url + "/cdn"

    @property
    def media_base(self) -> str:
        """Stands in for media.discordapp.net, the image proxy behind ``proxy_url``."""
        return self.base_url + "/media"

    def env(self) -> dict[str, str]:
        """Environment for a bot process: token, REST base (without /api/v10) and gateway URL."""
        return {
            "DISCORD_TOKEN": self.token,
            "DISCORD_API_BASE": self.base_url,
            "DISCORD_GATEWAY_URL": self.gateway_url,
        }

    @contextlib.asynccontextmanager
    async def run(
        self,
        client: Any,
        *,
        token: str | None = None,
        ready_timeout: float = 10.0,
        point: bool = True,
    ) -> AsyncIterator[Any]:
        """Log ``client`` in, connect it, wait for on_ready; close it on exit.

        Pass ``guild_ready_timeout=0.05`` to the client's constructor, or on_ready waits 2 s.
        """
        with contextlib.ExitStack() as stack:
            if point:
                stack.enter_context(point_discord_py_at(self))
            task: asyncio.Task[Any] | None = None
            try:
                await client.login(token or self.token)
                task = asyncio.create_task(client.connect(reconnect=True), name="discord-emulator-client")
                ready = asyncio.create_task(client.wait_until_ready())
                done, _ = await asyncio.wait({task, ready}, timeout=ready_timeout, return_when=asyncio.FIRST_COMPLETED)
                if ready not in done:
                    ready.cancel()
                    if task in done:
                        task.result()
                        raise RuntimeError("the discord client stopped before it became ready")
                    raise TimeoutError(self._report(f"client ready within {ready_timeout}s"))
                yield client
            finally:
                await client.close()
                if task is not None:
                    try:
                        await asyncio.wait_for(task, 5)
                    except TimeoutError:
                        log.warning("discord client did not stop within 5 s after close()")

    # ---------------------------------------------------------------- world building

    def _snowflake(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        value = max(ms << 22, self._snowflake_last + 1)
        self._snowflake_last = value
        return value

    def add_user(self, username: str, *, bot: bool = False, global_name: str | None = None) -> User:
        user = User(id=self._snowflake(), username=username, global_name=global_name, bot=bot)
        self.users[user.id] = user
        return user

    def add_guild(
        self,
        name: str = "Jant Test Guild",
        *,
        premium_tier: int = 0,
        owner_id: int | None = None,
        locale: str = "en-US",
        bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
    ) -> Guild:
        """A guild the bot is in: @everyone role (id == guild id), a managed bot role, the owner."""
        gid = self._snowflake()
        owner = owner_id or self.owner_user.id
        guild = Guild(id=gid, name=name, owner_id=owner, premium_tier=premium_tier, preferred_locale=locale)
        guild.roles[gid] = Role(id=gid, guild_id=gid, name="@everyone", permissions=DEFAULT_EVERYONE_PERMISSIONS)
        bot_role = Role(
            id=self._snowflake(),
            guild_id=gid,
            name=self.bot_user.username,
            permissions=bot_permissions,
            position=1,
            managed=True,
            bot_id=self.bot_user.id,
        )
        guild.roles[bot_role.id] = bot_role
        guild.members[self.bot_user.id] = Member(gid, self.bot_user, [bot_role.id])
        guild.members[owner] = Member(gid, self.users[owner])
        self.guilds[gid] = guild
        self._announce("GUILD_CREATE", lambda: self._guild_json(guild, full=True), INTENT_GUILDS)
        return guild

    def add_role(
        self,
        guild_id: int,
        name: str,
        permissions: int | Iterable[str | int] = 0,
        *,
        mentionable: bool = False,
    ) -> Role:
        guild = self._guild(guild_id)
        bits = permissions if isinstance(permissions, int) else permission_bits(*permissions)
        role = Role(
            id=self._snowflake(),
            guild_id=guild_id,
            name=name,
            permissions=bits,
            position=len(guild.roles),
            mentionable=mentionable,
        )
        guild.roles[role.id] = role
        self._announce("GUILD_ROLE_CREATE", lambda: {"guild_id": str(guild_id), "role": role.to_dict()}, INTENT_GUILDS)
        return role

    def add_member(self, guild_id: int, user_id: int, *, roles: Iterable[int] = (), nick: str | None = None) -> Member:
        guild = self._guild(guild_id)
        member = Member(guild_id, self.users[user_id], list(roles), nick)
        guild.members[user_id] = member
        self._announce(
            "GUILD_MEMBER_ADD", lambda: {**member.to_dict(), "guild_id": str(guild_id)}, INTENT_GUILD_MEMBERS
        )
        return member

    def add_text_channel(self, guild_id: int, name: str, *, topic: str | None = None) -> Channel:
        guild = self._guild(guild_id)
        channel = Channel(
            id=self._snowflake(),
            type=0,
            name=name,
            guild_id=guild_id,
            topic=topic,
            position=len(guild.channel_ids),
        )
        self.channels[channel.id] = channel
        guild.channel_ids.append(channel.id)
        self._announce("CHANNEL_CREATE", lambda: self._channel_json(channel), INTENT_GUILDS)
        return channel

    def set_premium_tier(self, guild_id: int, tier: int) -> None:
        guild = self._guild(guild_id)
        guild.premium_tier = tier
        self._announce("GUILD_UPDATE", lambda: self._guild_json(guild), INTENT_GUILDS)

    def set_permission_overwrite(
        self,
        channel_id: int,
        target_id: int,
        *,
        allow: Iterable[str | int] | int = (),
        deny: Iterable[str | int] | int = (),
    ) -> None:
        """Replace the overwrite for a role or member (the type is inferred) on a channel."""
        channel = self._channel(channel_id)
        guild = self._guild(channel.guild_id)
        allow_bits = allow if isinstance(allow, int) else permission_bits(*allow)
        deny_bits = deny if isinstance(deny, int) else permission_bits(*deny)
        channel.overwrites = [o for o in channel.overwrites if int(o["id"]) != target_id]
        channel.overwrites.append(
            {
                "id": str(target_id),
                "type": 0 if target_id in guild.roles else 1,
                "allow": str(allow_bits),
                "deny": str(deny_bits),
            }
        )
        self._announce_channel_update(channel)

    def deny_bot(self, channel_id: int, *permissions: str | int) -> None:
        """Deny the bot permissions on a channel, e.g. ``deny_bot(cid, "ATTACH_FILES")``."""
        allow, deny = self._bot_overwrite(channel_id)
        bits = permission_bits(*permissions)
        self.set_permission_overwrite(channel_id, self.bot_user.id, allow=allow & ~bits, deny=deny | bits)

    def allow_bot(self, channel_id: int, *permissions: str | int) -> None:
        allow, deny = self._bot_overwrite(channel_id)
        bits = permission_bits(*permissions)
        self.set_permission_overwrite(channel_id, self.bot_user.id, allow=allow | bits, deny=deny & ~bits)

    def _bot_overwrite(self, channel_id: int) -> tuple[int, int]:
        for o in self._channel(channel_id).overwrites:
            if int(o["id"]) == self.bot_user.id:
                return int(o["allow"]), int(o["deny"])
        return 0, 0

    def permissions_for(self, guild_id: int, user_id: int, channel_id: int | None = None) -> int:
        """Discord's permission algorithm: base roles, administrator, then channel overwrites."""
        guild = self._guild(guild_id)
        if user_id == guild.owner_id:
            return ALL_PERMISSIONS
        member = guild.members.get(user_id)
        if member is None:
            return 0
        perms = guild.roles[guild.id].permissions
        for role_id in member.roles:
            if role_id in guild.roles:
                perms |= guild.roles[role_id].permissions
        if perms & PERMISSIONS["ADMINISTRATOR"]:
            return ALL_PERMISSIONS
        if channel_id is None:
            return perms
        channel = self.channels[channel_id]
        if channel.is_thread and channel.parent_id:
            channel = self.channels[channel.parent_id]
        by_id = {int(o["id"]): o for o in channel.overwrites}
        if guild.id in by_id:
            perms = (perms & ~int(by_id[guild.id]["deny"])) | int(by_id[guild.id]["allow"])
        allow = deny = 0
        for role_id in member.roles:
            if role_id in by_id:
                allow |= int(by_id[role_id]["allow"])
                deny |= int(by_id[role_id]["deny"])
        perms = (perms & ~deny) | allow
        if user_id in by_id:
            perms = (perms & ~int(by_id[user_id]["deny"])) | int(by_id[user_id]["allow"])
        return perms

    def _bot_can(self, channel: Channel, *names: str) -> bool:
        if channel.guild_id is None:
            return True
        bits = permission_bits(*names)
        return self.permissions_for(channel.guild_id, self.bot_user.id, channel.id) & bits == bits

    # ---------------------------------------------------------------- lookups

    def get_guild(self, guild_id: int) -> Guild:
        return self._guild(guild_id)

    def get_channel(self, channel_id: int) -> Channel:
        return self._channel(channel_id)

    def get_user(self, user_id: int) -> User:
        return self.users[user_id]

    def _guild(self, guild_id: int | None) -> Guild:
        if guild_id is None or guild_id not in self.guilds:
            raise KeyError(f"unknown guild {guild_id}")
        return self.guilds[guild_id]

    def _channel(self, channel_id: int) -> Channel:
        if channel_id not in self.channels:
            raise KeyError(f"unknown channel {channel_id}")
        return self.channels[channel_id]

    def messages(
        self, channel_id: int, *, include_deleted: bool = False, include_ephemeral: bool = True
    ) -> list[StoredMessage]:
        """Messages of a channel (or thread) in the order they were created."""
        return [
            m
            for m in self._messages.values()
            if m.channel_id == channel_id
            and (include_deleted or not m.deleted)
            and (include_ephemeral or not m.ephemeral)
        ]

    def message(self, message_id: int) -> StoredMessage:
        """A message by id, deleted ones included (``.deleted``)."""
        try:
            return self._messages[int(message_id)]
        except KeyError:
            raise KeyError(f"no message {message_id} was ever created") from None

    @property
    def all_messages(self) -> list[StoredMessage]:
        return list(self._messages.values())

    @property
    def threads(self) -> list[Channel]:
        return [c for c in self.channels.values() if c.is_thread]

    def commands(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        """Commands synced globally (``None``) or to a guild."""
        return self.synced_commands.get(guild_id, [])

    def interaction(self, interaction_id: int) -> InteractionRecord:
        return self._interactions_by_id[interaction_id]

    @property
    def intents(self) -> int | None:
        """The intents of the last IDENTIFY."""
        return self.identify_payloads[-1].get("intents") if self.identify_payloads else None

    @property
    def connected(self) -> bool:
        return self._session is not None and self._session.conn is not None

    def count(self, method: str, path_regex: str, status: int | None = None) -> int:
        pattern = re.compile(path_regex)
        return sum(
            1
            for r in self.requests
            if (method == "*" or r.method == method.upper())
            and pattern.search(r.path)
            and (status is None or r.status == status)
        )

    def events(self, name: str | None = None) -> list[GatewayEvent]:
        return [e for e in self.gateway_events if name is None or e.name == name]

    # ---------------------------------------------------------------- waiting

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_for(
        self,
        predicate: Callable[[], Any],
        timeout: float = 10.0,  # noqa: ASYNC109
        *,
        description: str | None = None,
    ) -> Any:
        """Return ``predicate()``'s first truthy value, re-checked after every state change."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._changed
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(self._report(description or getattr(predicate, "__name__", repr(predicate))))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    async def wait_for_message(
        self,
        channel_id: int,
        predicate: Callable[[StoredMessage], Any] | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> StoredMessage:
        def find() -> StoredMessage | None:
            return next((m for m in self.messages(channel_id) if predicate is None or predicate(m)), None)

        return await self.wait_for(find, timeout, description=f"a message in channel {channel_id}")

    async def settle(self) -> None:
        """Wait until gateway events announced by synchronous world changes have been sent."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _report(self, waiting_for: str) -> str:
        lines = [f"timed out waiting for {waiting_for}", "last requests:"]
        for r in self.requests[-15:]:
            lines.append(f"  {r.method} {r.path} -> {r.status}{f' code {r.code}' if r.code else ''}")
        if self.unknown_routes:
            lines.append(f"unknown routes: {self.unknown_routes}")
        if self.server_errors:
            lines.append("emulator errors:\n" + "\n".join(self.server_errors))
        lines.append(
            f"gateway: connected={self.connected} identifies={self.identify_count} resumes={self.resume_count}"
        )
        return "\n".join(lines)

    # ---------------------------------------------------------------- faults and time

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int = 429,
        retry_after: float = 1.0,
        times: int = 1,
        global_: bool = False,
        *,
        code: int | None = None,
        message: str | None = None,
    ) -> Fault:
        """Fail the next ``times`` requests matching ``method`` (or ``"*"``) and ``path_regex``."""
        fault = Fault(method.upper(), re.compile(path_regex), status, retry_after, times, global_, code, message)
        self.faults.append(fault)
        return fault

    def set_rate_limit(self, method: str, path_regex: str, limit: int, per: float, *, enforce: bool = True) -> None:
        """Give matching routes a bucket of ``limit`` requests per ``per`` seconds (per channel,
        guild or webhook, like Discord). Going over it answers 429 when ``enforce``."""
        self._rate_rules.append(_RateLimitRule(method.upper(), re.compile(path_regex), limit, per, enforce))

    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self._notify()

    # ---------------------------------------------------------------- gateway control

    async def drop_gateway(self, code: int = 4000, *, resumable: bool = True) -> None:
        """Close the bot's gateway connection. discord.py reconnects and RESUMEs; when
        ``resumable`` is False the RESUME gets INVALID_SESSION and it IDENTIFYs again."""
        session = self._session
        if session is None or session.conn is None:
            raise RuntimeError("no live gateway connection to drop")
        async with session.lock:
            conn, session.conn = session.conn, None
            session.resumable = resumable
        await conn.ws.close(code=code, message=b"emulator dropped the connection")
        self._notify()

    @contextlib.asynccontextmanager
    async def gateway_outage(self, code: int = 4000, *, resumable: bool = True) -> AsyncIterator[None]:
        """Drop the gateway and hold reconnects until the block ends. Events dispatched inside
        the block are buffered and replayed when discord.py RESUMEs."""
        self._gateway_open.clear()
        try:
            await self.drop_gateway(code, resumable=resumable)
            yield
        finally:
            self._gateway_open.set()

    async def send_reconnect(self) -> None:
        """Send op 7 RECONNECT: discord.py closes and RESUMEs."""
        session = self._session
        if session is None or session.conn is None:
            raise RuntimeError("no live gateway connection")
        await session.conn.send(_dumps({"op": 7, "d": None, "s": None, "t": None}))

    async def delete_message(self, channel_id: int, message_id: int) -> None:
        """Someone (a moderator) deleted the message; sends MESSAGE_DELETE."""
        msg = self._messages.get(message_id)
        if msg is None or msg.channel_id != channel_id:
            raise KeyError(f"no message {message_id} in channel {channel_id}")
        await self._delete_message(msg)

    async def delete_channel(self, channel_id: int) -> None:
        """Someone deleted the channel (or thread); sends CHANNEL_DELETE / THREAD_DELETE."""
        channel = self._channel(channel_id)
        channel.deleted = True
        if channel.guild_id is not None:
            guild = self._guild(channel.guild_id)
            if channel_id in guild.channel_ids:
                guild.channel_ids.remove(channel_id)
        if channel.is_thread:
            await self._dispatch(
                "THREAD_DELETE",
                {
                    "id": str(channel.id),
                    "guild_id": str(channel.guild_id),
                    "parent_id": str(channel.parent_id),
                    "type": channel.type,
                },
                INTENT_GUILDS,
            )
        else:
            await self._dispatch("CHANNEL_DELETE", self._channel_json(channel), INTENT_GUILDS)
        self._notify()

    # ---------------------------------------------------------------- users act

    async def slash_command(
        self,
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        locale: str = "en-US",
    ) -> InteractionRecord:
        """A user runs ``/name`` (``"group sub"`` for subcommands) with ``options``."""
        data = self._command_data(guild_id, channel_id, user_id, name, dict(options or {}), focused=None)
        payload = self._envelope(2, guild_id, channel_id, user_id, data, locale=locale)
        return await self._inject(payload)

    async def autocomplete(
        self,
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        name: str,
        options: Mapping[str, Any],
        focused: str,
    ) -> InteractionRecord:
        """A user types into option ``focused``; the bot answers with ``rec.choices``."""
        data = self._command_data(guild_id, channel_id, user_id, name, dict(options), focused=focused)
        return await self._inject(self._envelope(4, guild_id, channel_id, user_id, data))

    async def click_button(self, message_id: int, custom_id: str, user_id: int | None = None) -> InteractionRecord:
        msg, component = self._clickable(message_id, custom_id, (2,))
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": 2}
        if "id" in component:
            data["id"] = component["id"]
        return await self._component_interaction(msg, data, user_id)

    async def select(
        self, message_id: int, custom_id: str, values: Sequence[str | int], user_id: int | None = None
    ) -> InteractionRecord:
        msg, component = self._clickable(message_id, custom_id, _SELECT_TYPES)
        kind = component["type"]
        values = [str(v) for v in values]
        low, high = component.get("min_values", 1), component.get("max_values", 1)
        if not low <= len(values) <= high:
            raise ValueError(f"select {custom_id!r} takes {low}..{high} values, got {values}")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": kind, "values": values}
        if kind == 3:
            allowed = {o["value"] for o in component.get("options", [])}
            if not set(values) <= allowed:
                raise ValueError(f"{sorted(set(values) - allowed)} are not options of {custom_id!r}: {sorted(allowed)}")
        else:
            who = user_id or (self.user.id if self.user else 0)
            resolved = self._resolve_ids(msg.guild_id, msg.channel_id, who, [int(v) for v in values])
            if resolved:
                data["resolved"] = resolved
        return await self._component_interaction(msg, data, user_id)

    async def submit_modal(
        self,
        custom_id: str,
        values: Mapping[str, Any],
        user_id: int | None = None,
        channel_id: int | None = None,
    ) -> InteractionRecord:
        """Submit the modal the bot opened with ``custom_id``. ``values`` maps each input's
        custom_id to a str (text input, radio), a list (selects, checkbox group) or a bool."""
        opener = next(
            (
                r
                for r in reversed(self.interactions)
                if r.modal and r.modal.get("custom_id") == custom_id and (user_id is None or r.user_id == user_id)
            ),
            None,
        )
        if opener is None:
            opened = [r.modal.get("custom_id") for r in self.interactions if r.modal]
            raise LookupError(f"the bot never opened a modal {custom_id!r} (opened: {opened})")
        assert opener.modal is not None
        remaining = dict(values)
        components = []
        for index, c in enumerate(opener.modal.get("components", []), start=1):
            kind = c.get("type")
            if kind == 1:
                inner = self._modal_value(c["components"][0], remaining, index * 10)
                components.append({"type": 1, "id": c.get("id", index), "components": [inner]})
            elif kind == 18:
                inner = self._modal_value(c["component"], remaining, index * 10)
                components.append({"type": 18, "id": c.get("id", index), "component": inner})
            elif kind == 10:
                components.append({"type": 10, "id": c.get("id", index), "content": c.get("content", "")})
        if remaining:
            raise ValueError(f"modal {custom_id!r} has no inputs {sorted(remaining)}")
        data = {"custom_id": custom_id, "components": components}
        message = None
        if opener.message_id is not None and opener.message_id in self._messages:
            message = self._messages[opener.message_id]
        payload = self._envelope(
            5,
            opener.guild_id,
            channel_id or opener.channel_id,
            user_id or opener.user_id,
            data,
            message=message,
        )
        return await self._inject(payload)

    async def user_message(self, channel_id: int, user_id: int, content: str) -> StoredMessage:
        """A user posts ``content``; the bot receives MESSAGE_CREATE (content needs the intent)."""
        channel = self._channel(channel_id)
        version = MessageVersion(self.clock.now(), content, [], [], [], 0, None, "create")
        msg = self._store_message(channel, version, author_id=user_id)
        await self._dispatch_message("MESSAGE_CREATE", msg)
        self._notify()
        return msg

    async def inject_interaction(self, payload: dict[str, Any]) -> InteractionRecord:
        """Send a raw INTERACTION_CREATE payload (needs id, token, type, channel_id, member/user,
        attachment_size_limit)."""
        return await self._inject(payload)

    def _modal_value(self, component: Mapping[str, Any], remaining: dict[str, Any], fallback_id: int) -> dict:
        kind = component.get("type")
        custom_id = component.get("custom_id")
        value = remaining.pop(custom_id, None)
        out: dict[str, Any] = {"type": kind, "id": component.get("id", fallback_id), "custom_id": custom_id}
        if kind == 4:
            text = (component.get("value") or "") if value is None else value
            if not isinstance(text, str):
                raise TypeError(f"text input {custom_id!r} takes a str")
            low, high = component.get("min_length", 0), component.get("max_length", 4000)
            if component.get("required", True) and not text:
                raise ValueError(f"text input {custom_id!r} is required")
            if text and not low <= len(text) <= high:
                raise ValueError(f"text input {custom_id!r} takes {low}..{high} characters")
            out["value"] = text
        elif kind in (*_SELECT_TYPES, 22):
            out["values"] = [str(v) for v in (value or [])]
        elif kind == 21:
            out["value"] = value
        elif kind == 23:
            out["value"] = bool(value)
        else:
            raise NotImplementedError(f"modal component type {kind} is not emulated")
        return out

    def _clickable(
        self, message_id: int, custom_id: str, kinds: tuple[int, ...]
    ) -> tuple[StoredMessage, Mapping[str, Any]]:
        msg = self._messages.get(message_id)
        if msg is None or msg.deleted:
            raise LookupError(f"message {message_id} does not exist (deleted={msg is not None})")
        component = msg.component(custom_id)
        if component is None:
            raise LookupError(f"message {message_id} has no component {custom_id!r}; it has {msg.custom_ids}")
        if component.get("type") not in kinds:
            raise ValueError(f"component {custom_id!r} has type {component.get('type')}, expected one of {kinds}")
        if component.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled; a user cannot use it")
        return msg, component

    async def _component_interaction(
        self, msg: StoredMessage, data: dict[str, Any], user_id: int | None
    ) -> InteractionRecord:
        user_id = user_id or (self.user.id if self.user else None)
        if user_id is None:
            raise ValueError("pass user_id (there is no default user)")
        payload = self._envelope(3, msg.guild_id, msg.channel_id, user_id, data, message=msg)
        return await self._inject(payload)

    async def _inject(self, payload: dict[str, Any]) -> InteractionRecord:
        if self._session is None:
            raise RuntimeError("no discord.py client has identified yet; start it with `async with emu.run(bot)`")
        record = InteractionRecord(self, payload, created_at=self.clock.now())
        self.interactions.append(record)
        self._interactions_by_id[record.id] = record
        self._interactions_by_token[record.token] = record
        await self._dispatch("INTERACTION_CREATE", payload)
        self._notify()
        return record

    def _envelope(
        self,
        kind: int,
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        data: dict[str, Any],
        *,
        message: StoredMessage | None = None,
        locale: str = "en-US",
    ) -> dict[str, Any]:
        channel = self._channel(channel_id)
        user = self.users[user_id]
        interaction_id = self._snowflake()
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": kind,
            "token": f"fake-interaction-token-{interaction_id}",
            "version": 1,
            "channel_id": str(channel_id),
            "channel": self._channel_json(channel),
            "locale": locale,
            "entitlements": [],
            "data": data,
        }
        if guild_id is not None:
            guild = self._guild(guild_id)
            member = guild.members.get(user_id)
            if member is None:
                raise ValueError(f"user {user.username} is not a member of guild {guild.name}")
            payload.update(
                guild_id=str(guild_id),
                guild={"id": str(guild_id), "locale": guild.preferred_locale, "features": []},
                guild_locale=guild.preferred_locale,
                member=member.to_dict(permissions=self.permissions_for(guild_id, user_id, channel_id)),
                app_permissions=str(self.permissions_for(guild_id, self.bot_user.id, channel_id)),
                authorizing_integration_owners={"0": str(guild_id)},
                context=0,
                attachment_size_limit=guild.filesize_limit,
            )
        else:
            payload.update(
                user=user.to_dict(),
                app_permissions=str(permission_bits("VIEW_CHANNEL", "SEND_MESSAGES", "EMBED_LINKS", "ATTACH_FILES")),
                authorizing_integration_owners={"0": str(user_id)},
                context=1,
                attachment_size_limit=10 * MiB,
            )
        if message is not None:
            payload["message"] = self._message_json(message)
        return payload

    def _find_command(self, guild_id: int | None, name: str) -> tuple[dict[str, Any], int | None]:
        scopes: tuple[int | None, ...] = (guild_id, None) if guild_id is not None else (None,)
        for scope in scopes:
            for cmd in self.synced_commands.get(scope, []):
                if cmd["name"] == name and cmd.get("type", 1) == 1:
                    return cmd, scope
        synced = {str(k): [c["name"] for c in v] for k, v in self.synced_commands.items()}
        raise LookupError(f"/{name} was never synced (synced: {synced}); call `await bot.tree.sync()` first")

    def _command_data(
        self,
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        name: str,
        options: dict[str, Any],
        *,
        focused: str | None,
    ) -> dict[str, Any]:
        parts = name.split()
        cmd, scope = self._find_command(guild_id, parts[0])
        if guild_id is not None and cmd.get("default_member_permissions") is not None:
            needed = int(cmd["default_member_permissions"])
            if self.permissions_for(guild_id, user_id, channel_id) & needed != needed:
                raise PermissionError(f"{self.users[user_id].username} cannot see /{name}: lacks {needed:#x}")
        definitions = cmd.get("options") or []
        top: list[dict[str, Any]] = []
        container = top
        for sub in parts[1:]:
            found = next((o for o in definitions if o["name"] == sub and o["type"] in (1, 2)), None)
            if found is None:
                raise LookupError(f"/{parts[0]} has no subcommand {sub!r}")
            node: dict[str, Any] = {"type": found["type"], "name": sub, "options": []}
            container.append(node)
            container = node["options"]
            definitions = found.get("options") or []
        resolved: dict[str, dict[str, Any]] = {}
        by_name = {o["name"]: o for o in definitions if o["type"] not in (1, 2)}
        for key, value in options.items():
            if key not in by_name:
                raise ValueError(f"/{name} has no option {key!r}; it has {sorted(by_name)}")
            option = self._option_value(by_name[key], value, resolved, guild_id, channel_id, user_id, key == focused)
            container.append(option)
        if focused is None:
            missing = [o["name"] for o in by_name.values() if o.get("required") and o["name"] not in options]
            if missing:
                raise ValueError(f"/{name} is missing required options {missing}")
        data: dict[str, Any] = {"id": cmd["id"], "name": parts[0], "type": 1, "options": top}
        if scope is not None:
            data["guild_id"] = str(scope)
        if resolved:
            data["resolved"] = resolved
        return data

    def _option_value(
        self,
        definition: Mapping[str, Any],
        value: Any,
        resolved: dict[str, dict[str, Any]],
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        focused: bool,
    ) -> dict[str, Any]:
        kind = definition["type"]
        name = definition["name"]
        out: dict[str, Any] = {"type": kind, "name": name}
        if focused:
            out.update(value=str(value), focused=True)
            return out
        if kind == 3:
            if not isinstance(value, str):
                raise TypeError(f"option {name!r} takes a str")
            low, high = definition.get("min_length", 0), definition.get("max_length", 6000)
            if not low <= len(value) <= high:
                raise ValueError(f"option {name!r} takes {low}..{high} characters")
        elif kind in (4, 10):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or (kind == 4 and isinstance(value, float))
            ):
                raise TypeError(f"option {name!r} takes {'an int' if kind == 4 else 'a number'}")
            low, high = definition.get("min_value"), definition.get("max_value")
            if (low is not None and value < low) or (high is not None and value > high):
                raise ValueError(f"option {name!r} must be within {low}..{high}")
        elif kind == 5:
            if not isinstance(value, bool):
                raise TypeError(f"option {name!r} takes a bool")
        elif kind in (6, 7, 8, 9):
            target = int(getattr(value, "id", value))
            partial = self._resolve_ids(guild_id, channel_id, user_id, [target])
            if not partial:
                raise LookupError(f"option {name!r}: {target} is not a known user/channel/role")
            for section, items in partial.items():
                resolved.setdefault(section, {}).update(items)
            value = str(target)
        elif kind == 11:
            attachment = self._cdn_store_ephemeral(*value)
            resolved.setdefault("attachments", {})[str(attachment.id)] = attachment.to_dict()
            value = str(attachment.id)
        choices = definition.get("choices")
        if choices and value not in [c["value"] for c in choices]:
            raise ValueError(f"option {name!r}: {value!r} is not one of {[c['value'] for c in choices]}")
        out["value"] = value
        return out

    def _resolve_ids(
        self, guild_id: int | None, channel_id: int, user_id: int, ids: Iterable[int]
    ) -> dict[str, dict[str, Any]]:
        resolved: dict[str, dict[str, Any]] = {}
        guild = self.guilds.get(guild_id) if guild_id else None
        for target in ids:
            if target in self.users:
                resolved.setdefault("users", {})[str(target)] = self.users[target].to_dict()
                if guild and target in guild.members:
                    perms = self.permissions_for(guild.id, target, channel_id)
                    member = guild.members[target].to_dict(with_user=False, permissions=perms)
                    resolved.setdefault("members", {})[str(target)] = member
            elif guild and target in guild.roles:
                resolved.setdefault("roles", {})[str(target)] = guild.roles[target].to_dict()
            elif target in self.channels:
                channel = self.channels[target]
                data = self._channel_json(channel)
                if guild:
                    data["permissions"] = str(self.permissions_for(guild.id, user_id, target))
                resolved.setdefault("channels", {})[str(target)] = data
        return resolved

    # ---------------------------------------------------------------- pings

    def would_ping(self, message: StoredMessage | int, version: int | None = None) -> bool:
        """Would this message notify anyone? Pings happen when a message is delivered: its first
        non-"thinking" version (or ``versions[version]``). Mentions in later edits never ping."""
        msg = message if isinstance(message, StoredMessage) else self.message(message)
        if version is not None:
            v = msg.versions[version]
        else:
            v = next((x for x in msg.versions if not x.flags & FLAG_LOADING), None)
            if v is None:
                return False
        targets = self._mentions(v.content, v.allowed_mentions)
        replied = False
        if msg.message_reference:
            replied = v.allowed_mentions.get("replied_user", False) if v.allowed_mentions is not None else True
        return bool(targets["users"] or targets["roles"] or targets["everyone"] or replied)

    @staticmethod
    def _mentions(content: str, allowed: Mapping[str, Any] | None) -> dict[str, Any]:
        parse = ["users", "roles", "everyone"] if allowed is None else (allowed.get("parse") or [])
        allowed_users = {int(u) for u in (allowed or {}).get("users") or []}
        allowed_roles = {int(r) for r in (allowed or {}).get("roles") or []}
        users = {int(u) for u in _USER_MENTION.findall(content or "")}
        roles = {int(r) for r in _ROLE_MENTION.findall(content or "")}
        return {
            "users": sorted(u for u in users if "users" in parse or u in allowed_users),
            "roles": sorted(r for r in roles if "roles" in parse or r in allowed_roles),
            "everyone": bool(_EVERYONE_MENTION.search(content or "")) and "everyone" in parse,
        }

    # ---------------------------------------------------------------- JSON views of the world

    def _channel_json(self, channel: Channel) -> dict[str, Any]:
        return channel.to_dict(self.users)

    def _guild_json(self, guild: Guild, *, full: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [r.to_dict() for r in guild.roles.values()],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "vanity_url_code": None,
            "premium_tier": guild.premium_tier,
            "premium_subscription_count": _PREMIUM_BOOSTS.get(guild.premium_tier, 0),
            "preferred_locale": guild.preferred_locale,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "max_members": 500000,
        }
        if full:
            channels = [self.channels[c] for c in guild.channel_ids if not self.channels[c].deleted]
            threads = [t for t in self.threads if t.guild_id == guild.id and not t.deleted and not t.archived]
            data.update(
                joined_at=guild.joined_at,
                large=False,
                unavailable=False,
                member_count=len(guild.members),
                members=[m.to_dict() for m in guild.members.values()],
                channels=[self._channel_json(c) for c in channels if not c.is_thread],
                threads=[self._channel_json(t) for t in threads],
                presences=[],
                voice_states=[],
                stage_instances=[],
                guild_scheduled_events=[],
                soundboard_sounds=[],
            )
        return data

    def _message_json(self, msg: StoredMessage) -> dict[str, Any]:
        v = msg.latest
        mentions = self._mentions(v.content, v.allowed_mentions)
        data: dict[str, Any] = {
            "id": str(msg.id),
            "type": msg.type,
            "channel_id": str(msg.channel_id),
            "author": self.users[msg.author_id].to_dict(),
            "content": v.content,
            "timestamp": msg.timestamp,
            "edited_timestamp": v.edited_timestamp,
            "tts": False,
            "mention_everyone": mentions["everyone"],
            "mentions": [self.users[u].to_dict() for u in mentions["users"] if u in self.users],
            "mention_roles": [str(r) for r in mentions["roles"]],
            "attachments": [a.to_dict() for a in v.attachments],
            "embeds": [dict(e) for e in v.embeds],
            "components": list(v.components),
            "pinned": False,
            "flags": v.flags,
        }
        if msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
        if msg.webhook_id is not None:
            data["webhook_id"] = str(msg.webhook_id)
        if msg.application_id is not None:
            data["application_id"] = str(msg.application_id)
        if msg.interaction_metadata is not None:
            data["interaction_metadata"] = msg.interaction_metadata
        if msg.message_reference is not None:
            data["message_reference"] = msg.message_reference
        if msg.thread_id is not None and msg.thread_id in self.channels:
            data["thread"] = self._channel_json(self.channels[msg.thread_id])
        if msg.reactions:
            counts: dict[str, int] = {}
            for emoji in msg.reactions:
                counts[emoji] = counts.get(emoji, 0) + 1
            data["reactions"] = [{"count": n, "me": True, "emoji": {"id": None, "name": e}} for e, n in counts.items()]
        return data

    # ---------------------------------------------------------------- gateway

    def _announce(self, event: str, data: Callable[[], Any], intent: int | None) -> None:
        """Send an event for a synchronous world change, if a bot is connected."""
        if self._session is None:
            return
        task = asyncio.get_running_loop().create_task(self._dispatch(event, data(), intent))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _announce_channel_update(self, channel: Channel) -> None:
        if channel.is_thread:
            self._announce("THREAD_UPDATE", lambda: self._channel_json(channel), INTENT_GUILDS)
        else:
            self._announce("CHANNEL_UPDATE", lambda: self._channel_json(channel), INTENT_GUILDS)

    async def _dispatch(self, event: str, data: Any, intent: int | None = None) -> bool:
        session = self._session
        if session is None:
            return False
        if intent is not None and not session.intents & intent:
            return False
        async with session.lock:
            await self._dispatch_locked(session, event, data)
        return True

    async def _dispatch_locked(self, session: _GatewaySession, event: str, data: Any) -> None:
        session.seq += 1
        frame = _dumps({"op": 0, "t": event, "s": session.seq, "d": data})
        session.events.append((session.seq, frame))
        self.gateway_events.append(GatewayEvent(event, session.seq, data, self.clock.now()))
        if session.conn is not None:
            await session.conn.send(frame)
        self._notify()

    async def _dispatch_message(self, event: str, msg: StoredMessage) -> None:
        if msg.ephemeral:
            return
        data = self._message_json(msg)
        intent = INTENT_GUILD_MESSAGES if msg.guild_id is not None else INTENT_DIRECT_MESSAGES
        session = self._session
        if (
            session is not None
            and not session.intents & INTENT_MESSAGE_CONTENT
            and msg.author_id != self.bot_user.id
            and str(self.bot_user.id) not in {m["id"] for m in data["mentions"]}
        ):
            data.update(content="", embeds=[], attachments=[], components=[])
        if msg.guild_id is not None:
            member = self.guilds[msg.guild_id].members.get(msg.author_id)
            if member is not None:
                data["member"] = member.to_dict(with_user=False)
        await self._dispatch(event, data, intent)

    async def _handle_gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = _GatewayConnection(ws, request.path, dict(request.query), self.clock.now())
        self.gateway_connections.append(conn)
        self._notify()
        try:
            await self._gateway_open.wait()
            hello = {
                "op": 10,
                "d": {"heartbeat_interval": int(self.heartbeat_interval * 1000)},
                "s": None,
                "t": None,
            }
            await conn.send(_dumps(hello))
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    try:
                        frame = json.loads(msg.data)
                    except ValueError:
                        await ws.close(code=4002, message=b"Error while decoding payload.")
                        break
                    await self._on_gateway_frame(conn, frame)
                    self._notify()
                elif msg.type is WSMsgType.BINARY:
                    await ws.close(code=4002, message=b"Error while decoding payload.")
                    break
        except Exception:
            self._record_server_error("gateway")
        finally:
            conn.closed_at = self.clock.now()
            conn.close_code = ws.close_code
            session = self._session
            if session is not None and session.conn is conn:
                async with session.lock:
                    session.conn = None
            self._notify()
        return ws

    async def _on_gateway_frame(self, conn: _GatewayConnection, frame: Mapping[str, Any]) -> None:
        op, d = frame.get("op"), frame.get("d")
        if op == 1:
            conn.heartbeats += 1
            await conn.send(_dumps({"op": 11, "d": None, "s": None, "t": None}))
        elif op == 2:
            await self._identify(conn, d or {})
        elif op == 6:
            await self._resume(conn, d or {})
        elif op == 3:
            self.presence_updates.append(d or {})
        elif op == 8:
            await self._request_members(d or {})
        elif op == 4:
            pass
        else:
            await conn.ws.close(code=4001, message=b"Unknown opcode.")

    async def _identify(self, conn: _GatewayConnection, d: Mapping[str, Any]) -> None:
        if d.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        intents = d.get("intents")
        if not isinstance(intents, int):
            await conn.ws.close(code=4013, message=b"Invalid intent(s).")
            return
        if intents & PRIVILEGED_INTENTS & ~self.privileged_intents:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        session = _GatewaySession(
            session_id=f"fake-session-{next(self._session_counter)}",
            intents=intents,
            identify={k: v for k, v in d.items() if k != "token"},
        )
        self._session = session
        self.identify_payloads.append(session.identify)
        self.identify_count += 1
        ready: dict[str, Any] = {
            "v": 10,
            "user": {**self.bot_user.to_dict(), "verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": str(g), "unavailable": True} for g in self.guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "_trace": ["discord-emulator"],
        }
        if "shard" in d:
            ready["shard"] = d["shard"]
        async with session.lock:
            session.conn = conn
            await self._dispatch_locked(session, "READY", ready)
            for guild in self.guilds.values():
                await self._dispatch_locked(session, "GUILD_CREATE", self._guild_json(guild, full=True))

    async def _resume(self, conn: _GatewayConnection, d: Mapping[str, Any]) -> None:
        session = self._session
        if (
            session is None
            or not session.resumable
            or d.get("session_id") != session.session_id
            or d.get("token") != self.token
        ):
            await conn.send(_dumps({"op": 9, "d": False, "s": None, "t": None}))
            return
        async with session.lock:
            missed = [frame for seq, frame in session.events if seq > (d.get("seq") or 0)]
            for frame in missed:
                await conn.send(frame)
            session.conn = conn
            self.resume_count += 1
            self.replayed_events += len(missed)
            await self._dispatch_locked(session, "RESUMED", {"_trace": ["discord-emulator"]})

    async def _request_members(self, d: Mapping[str, Any]) -> None:
        guild = self.guilds.get(int(d.get("guild_id", 0)))
        if guild is None:
            return
        chunk = {
            "guild_id": str(guild.id),
            "members": [m.to_dict() for m in guild.members.values()],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if d.get("nonce") is not None:
            chunk["nonce"] = d["nonce"]
        await self._dispatch("GUILD_MEMBERS_CHUNK", chunk)

    # ---------------------------------------------------------------- HTTP plumbing

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], str, _Handler, bool]]:
        table: list[tuple[str, str, _Handler, bool]] = [
            ("GET", "/users/@me", self._get_me, True),
            ("POST", "/users/@me/channels", self._create_dm, True),
            ("GET", "/users/{user_id}", self._get_user, True),
            ("GET", "/oauth2/applications/@me", self._get_application, True),
            ("GET", "/applications/@me", self._get_application, True),
            ("GET", "/gateway", self._get_gateway, False),
            ("GET", "/gateway/bot", self._get_gateway_bot, True),
            ("GET", "/applications/{application_id}/commands", self._get_commands, True),
            ("PUT", "/applications/{application_id}/commands", self._put_commands, True),
            ("POST", "/applications/{application_id}/commands", self._post_command, True),
            ("GET", "/applications/{application_id}/guilds/{guild_id}/commands", self._get_commands, True),
            ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", self._put_commands, True),
            ("POST", "/applications/{application_id}/guilds/{guild_id}/commands", self._post_command, True),
            ("POST", "/interactions/{interaction_id}/{token}/callback", self._interaction_callback, False),
            ("POST", "/webhooks/{webhook_id}/{token}", self._execute_webhook, False),
            ("GET", "/webhooks/{webhook_id}/{token}/messages/{message_id}", self._get_webhook_message, False),
            (
                "PATCH",
                "/webhooks/{webhook_id}/{token}/messages/{message_id}",
                self._edit_webhook_message,
                False,
            ),
            (
                "DELETE",
                "/webhooks/{webhook_id}/{token}/messages/{message_id}",
                self._delete_webhook_message,
                False,
            ),
            ("GET", "/channels/{channel_id}", self._get_channel, True),
            ("PATCH", "/channels/{channel_id}", self._edit_channel, True),
            ("DELETE", "/channels/{channel_id}", self._delete_channel_route, True),
            ("GET", "/channels/{channel_id}/messages", self._get_messages, True),
            ("POST", "/channels/{channel_id}/messages", self._create_message, True),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message, True),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self._edit_message, True),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self._delete_message_route, True),
            ("POST", "/channels/{channel_id}/threads", self._create_thread, True),
            (
                "POST",
                "/channels/{channel_id}/messages/{message_id}/threads",
                self._create_thread_from_message,
                True,
            ),
            ("PUT", "/channels/{channel_id}/thread-members/{user_id}", self._thread_member, True),
            ("DELETE", "/channels/{channel_id}/thread-members/{user_id}", self._thread_member, True),
            ("POST", "/channels/{channel_id}/typing", self._typing, True),
            ("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", self._react, True),
            (
                "DELETE",
                "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
                self._react,
                True,
            ),
            ("GET", "/guilds/{guild_id}", self._get_guild, True),
            ("GET", "/guilds/{guild_id}/channels", self._get_guild_channels, True),
            ("GET", "/guilds/{guild_id}/roles", self._get_roles, True),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member, True),
            ("GET", "/guilds/{guild_id}/threads/active", self._get_active_threads, True),
        ]
        routes = []
        for method, template, handler, auth in table:
            regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
            routes.append((method, re.compile(f"^{regex}$"), template, handler, auth))
        return routes

    @staticmethod
    def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
        # Exactly "application/json": discord.py only parses JSON when the header is exactly that.
        return web.Response(
            status=status,
            body=_dumps(body).encode(),
            headers={**(headers or {}), "Content-Type": "application/json"},
        )

    def _record_server_error(self, where: str) -> None:
        text = f"{where}: {traceback.format_exc()}"
        self.server_errors.append(text)
        log.error("emulator error in %s", text)

    async def _handle_outside_api(self, request: web.Request) -> web.Response:
        self.unknown_routes.append((request.method, request.path))
        log.warning("discord emulator: unknown route %s %s (outside %s)", request.method, request.path, API_PREFIX)
        return self._json(404, {"message": "404: Not Found", "code": 0})

    def _cdn_lookup(self, request: web.Request) -> tuple[Attachment | None, int, str]:
        """The attachment a CDN path names, or the status and text Discord's CDN answers instead."""
        tail = request.match_info["tail"]
        m = re.match(r"(ephemeral-)?attachments/\d+/(\d+)/", tail)
        attachment = self._cdn.get(int(m.group(2))) if m else None
        if attachment is None:
            return None, 404, "Not Found"
        if m and m.group(1):
            # Option uploads have signed URLs (ex/is/hm); without a valid signature the CDN answers
            # as it does for an expired link.
            q = request.query
            if q.get("hm") != self._cdn_signature(request.path.split("/", 2)[2], q.get("ex", ""), q.get("is", "")):
                return None, 404, "This content is no longer available."
        return attachment, 200, ""

    async def _handle_cdn(self, request: web.Request) -> web.Response:
        attachment, status, text = self._cdn_lookup(request)
        self.cdn_requests.append((request.path, status))
        if attachment is None:
            return web.Response(status=status, text=text)
        return web.Response(body=attachment.data, content_type=attachment.content_type or "application/octet-stream")

    async def _handle_media_proxy(self, request: web.Request) -> web.Response:
        attachment, status, text = self._cdn_lookup(request)
        if attachment is not None and attachment.width is None:
            # media.discordapp.net proxies only files with dimensions (images, videos).
            attachment, status, text = None, 415, "Unsupported Media Type"
        self.cdn_requests.append((request.path, status))
        if attachment is None:
            return web.Response(status=status, text=text)
        return web.Response(body=attachment.data, content_type=attachment.content_type or "application/octet-stream")

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        record = RequestRecord(request.method, path, self.clock.now(), dict(request.query))
        self.requests.append(record)
        try:
            body = await request.read()  # read everything first so an early error never resets the upload
            response = await self._route(request, record, body)
        except DiscordAPIError as e:
            response = self._json(e.status, e.body(), e.headers)
            record.code = e.code
        except Exception:
            self._record_server_error(f"{request.method} {path}")
            response = self._json(500, {"message": "500: Internal Server Error", "code": 0})
        record.status = response.status
        self._notify()
        return response

    async def _route(self, request: web.Request, record: RequestRecord, body: bytes) -> web.Response:
        method, path = record.method, record.path
        fault = next(
            (f for f in self.faults if f.remaining > 0 and f.method in ("*", method) and f.pattern.search(path)),
            None,
        )
        match = None
        path_known = False
        for route_method, pattern, template, handler, auth in self._routes:
            m = pattern.match(path)
            if m:
                path_known = True
                if route_method == method:
                    match = (template, handler, auth, m.groupdict())
                    break
        bucket_route = f"{method} {match[0]}" if match else f"{method} {path}"
        major = self._major_parameters(match[3] if match else {})
        if fault is not None:
            fault.hits += 1
            return self._fault_response(fault, bucket_route, major)
        if match is None:
            self.unknown_routes.append((method, path))
            log.warning("discord emulator: unknown route %s %s", method, path)
            if path_known:
                return self._json(405, {"message": "405: Method Not Allowed", "code": 0})
            return self._json(404, {"message": "404: Not Found", "code": 0})
        template, handler, auth, params = match
        record.route = f"{method} {template}"
        if auth and request.headers.get("Authorization") != f"Bot {self.token}":
            raise DiscordAPIError(401, 0, "401: Unauthorized")
        limited, headers = self._take_rate_limit(bucket_route, major, method, path)
        if limited is not None:
            return limited
        payload, uploads = self._parse_body(request, body)
        record.json = payload
        record.files = [(u.filename, len(u.data)) for u in uploads]
        req = _Req(method, path, params, dict(request.query), payload, uploads, record)
        try:
            result = await handler(req)
        except DiscordAPIError as e:
            e.headers = {**headers, **e.headers}
            raise
        if isinstance(result, _Reply):
            if result.status == 204:
                return web.Response(status=204, headers=headers)
            return self._json(result.status, result.body, headers)
        return self._json(200, result, headers)

    @staticmethod
    def _major_parameters(params: Mapping[str, str]) -> str:
        return "+".join(params[k] for k in ("channel_id", "guild_id", "webhook_id", "token") if k in params)

    def _bucket_hash(self, route: str) -> str:
        return hashlib.sha1(route.encode()).hexdigest()[:16]

    def _take_rate_limit(
        self, route: str, major: str, method: str, path: str
    ) -> tuple[web.Response | None, dict[str, str]]:
        rule = next(
            (r for r in self._rate_rules if r.method in ("*", method) and r.pattern.search(path)),
            _RateLimitRule("*", re.compile(""), 50, 1.0, False),
        )
        now = time.monotonic()
        window = self._buckets.setdefault((route, major), deque())
        while window and window[0] <= now - rule.per:
            window.popleft()
        reset_after = (window[0] + rule.per - now) if window else rule.per
        if rule.enforce and len(window) >= rule.limit:
            body = {
                "message": "You are being rate limited.",
                "retry_after": round(reset_after, 3),
                "global": False,
            }
            headers = self._ratelimit_headers(route, rule.limit, 0, reset_after)
            headers.update(
                {"Via": "1.1 google", "Retry-After": str(math.ceil(reset_after)), "X-RateLimit-Scope": "user"}
            )
            return self._json(429, body, headers), {}
        window.append(now)
        remaining = max(0, rule.limit - len(window))
        return None, self._ratelimit_headers(route, rule.limit, remaining, reset_after)

    def _ratelimit_headers(self, route: str, limit: int, remaining: int, reset_after: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{math.ceil((time.time() + reset_after) * 1000) / 1000:.3f}",
            # Rounded up: a client that waits exactly this long must find the bucket refilled.
            "X-RateLimit-Reset-After": f"{math.ceil(reset_after * 1000) / 1000:.3f}",
            "X-RateLimit-Bucket": self._bucket_hash(route),
        }

    def _fault_response(self, fault: Fault, route: str, major: str) -> web.Response:
        if fault.status == 429:
            body = {
                "message": fault.message or "You are being rate limited.",
                "retry_after": fault.retry_after,
                "global": fault.global_,
            }
            headers = {"Via": "1.1 google", "Retry-After": str(max(1, math.ceil(fault.retry_after)))}
            if fault.global_:
                headers.update({"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"})
            else:
                headers.update(self._ratelimit_headers(route, 5, 0, fault.retry_after))
                headers["X-RateLimit-Scope"] = "user"
            return self._json(429, body, headers)
        default_message = {
            500: "500: Internal Server Error",
            502: "502: Bad Gateway",
            503: "503: Service Unavailable",
        }
        body = {
            "message": fault.message or default_message.get(fault.status, f"{fault.status}"),
            "code": fault.code or 0,
        }
        return self._json(fault.status, body, {"Via": "1.1 google"})

    @staticmethod
    def _parse_body(request: web.Request, body: bytes) -> tuple[Any, list[_Upload]]:
        content_type = request.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            payload: Any = {}
            uploads = []
            for name, filename, part_type, data in _parse_multipart(body, content_type):
                if name == "payload_json":
                    payload = json.loads(data)
                    continue
                m = re.fullmatch(r"files\[(\d+)\]|file(\d*)", name)
                if m and filename is not None:
                    index = int(m.group(1) or m.group(2) or 0)
                    uploads.append(_Upload(index, filename, data, part_type))
            uploads.sort(key=lambda u: u.index)
            return payload, uploads
        if not body:
            return None, []
        try:
            return json.loads(body), []
        except ValueError:
            raise DiscordAPIError(400, 50109, "The request body contains invalid JSON.") from None

    # ---------------------------------------------------------------- message storage

    def _cdn_store(self, channel_id: int, filename: str, data: bytes, description: str | None = None) -> Attachment:
        attachment_id = self._snowflake()
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        width, height = _image_size(data) if content_type.startswith("image/") else (None, None)
        attachment = Attachment(
            filename,
            data,
            id=attachment_id,
            url=f"{self.cdn_base}/attachments/{channel_id}/{attachment_id}/{quote(filename)}",
            content_type=content_type,
            description=description,
            width=width,
            height=height,
        )
        self._cdn[attachment_id] = attachment
        return attachment

    def _cdn_signature(self, path: str, ex: str, issued: str) -> str:
        return hashlib.sha256(f"{self._cdn_secret}:{path}:{ex}:{issued}".encode()).hexdigest()

    def _cdn_store_ephemeral(self, filename: str, data: bytes, content_type: str | None = None) -> Attachment:
        """A file a user attached to a command option: Discord keeps it as an *ephemeral* attachment
        under ``ephemeral-attachments/{application_id}/{id}/`` with a signed, expiring URL on the CDN
        and the same path on the media proxy, and reports an image's width and height."""
        attachment_id = self._snowflake()
        path = f"ephemeral-attachments/{self.application_id}/{attachment_id}/{quote(filename)}"
        issued = int(time.time())
        ex, is_ = f"{issued + 24 * 3600:x}", f"{issued:x}"
        query = f"?ex={ex}&is={is_}&hm={self._cdn_signature(path, ex, is_)}&"
        width, height = _image_size(data)
        attachment = Attachment(
            filename,
            data,
            id=attachment_id,
            url=f"{self.cdn_base}/{path}{query}",
            proxy_url=f"{self.media_base}/{path}{query}",
            content_type=content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream",
            width=width,
            height=height,
            ephemeral=True,
        )
        self._cdn[attachment_id] = attachment
        return attachment

    def _new_attachments(
        self,
        channel_id: int,
        payload: Mapping[str, Any],
        uploads: Sequence[_Upload],
        existing: Sequence[Attachment],
    ) -> list[Attachment]:
        """Resolve ``attachments`` (kept ids and file indexes) and the uploaded ``files[n]``."""
        entries = payload.get("attachments")
        by_index = {u.index: u for u in uploads}
        if entries is None:
            kept = list(existing)
            return kept + [self._cdn_store(channel_id, u.filename, u.data) for u in uploads]
        errors = _Errors()
        result: list[Attachment] = []
        used: set[int] = set()
        existing_by_id = {a.id: a for a in existing}
        for i, entry in enumerate(entries):
            ident = int(entry.get("id", -1))
            if ident in by_index:
                upload = by_index[ident]
                used.add(ident)
                result.append(
                    self._cdn_store(
                        channel_id,
                        entry.get("filename") or upload.filename,
                        upload.data,
                        entry.get("description"),
                    )
                )
            elif ident in existing_by_id:
                result.append(existing_by_id[ident])
            else:
                errors.add(("attachments", i, "id"), "ATTACHMENT_NOT_FOUND", "Unknown attachment")
        errors.raise_if_any()
        for upload in uploads:
            if upload.index not in used:
                result.append(self._cdn_store(channel_id, upload.filename, upload.data))
        return result

    def _store_message(
        self,
        channel: Channel,
        version: MessageVersion,
        *,
        author_id: int,
        message_type: int = 0,
        webhook_id: int | None = None,
        interaction: InteractionRecord | None = None,
        message_reference: dict[str, Any] | None = None,
    ) -> StoredMessage:
        msg = StoredMessage(
            id=self._snowflake(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author_id=author_id,
            type=message_type,
            created_at=version.at,
            timestamp=_iso(),
            versions=[version],
            webhook_id=webhook_id,
            application_id=self.application_id if interaction is not None else None,
            message_reference=message_reference,
        )
        if interaction is not None:
            msg.interaction_id = interaction.id
            metadata: dict[str, Any] = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": self.users[interaction.user_id].to_dict(),
                "authorizing_integration_owners": interaction.payload.get("authorizing_integration_owners", {}),
            }
            if interaction.type == 2:
                metadata.update(name=interaction.name, command_type=1)
            if interaction.message_id is not None:
                metadata["interacted_message_id"] = str(interaction.message_id)
            msg.interaction_metadata = metadata
        self._messages[msg.id] = msg
        if not msg.ephemeral:
            channel.last_message_id = msg.id
            channel.message_count += 1
        return msg

    @staticmethod
    def _check_not_empty(version: MessageVersion) -> None:
        if not (version.content or version.embeds or version.attachments or version.components):
            raise DiscordAPIError(400, 50006, "Cannot send an empty message")

    def _create_version(
        self,
        channel: Channel,
        payload: Mapping[str, Any],
        uploads: Sequence[_Upload],
        *,
        limit: int,
        path: tuple = (),
        allowed_flags: int,
        source: str,
    ) -> MessageVersion:
        _check_upload_sizes(uploads, limit)
        flags = int(payload.get("flags") or 0)
        errors = _Errors()
        _validate_message_fields(payload, uploads, errors, path, flags=flags)
        if flags & ~allowed_flags:
            errors.add((*path, "flags"), "MESSAGE_FLAGS_INVALID", "Invalid message flags")
        errors.raise_if_any()
        version = MessageVersion(
            at=self.clock.now(),
            content=payload.get("content") or "",
            embeds=list(payload.get("embeds") or []),
            components=list(payload.get("components") or []),
            attachments=self._new_attachments(channel.id, payload, uploads, []),
            flags=flags,
            allowed_mentions=payload.get("allowed_mentions"),
            source=source,
        )
        self._check_not_empty(version)
        return version

    def _edit_version(
        self,
        msg: StoredMessage,
        payload: Mapping[str, Any],
        uploads: Sequence[_Upload],
        *,
        limit: int,
        path: tuple = (),
        source: str,
        clear_loading: bool = True,
    ) -> MessageVersion:
        payload = payload or {}
        _check_upload_sizes(uploads, limit)
        prev = msg.latest
        flags = prev.flags
        if payload.get("flags") is not None:
            requested = int(payload["flags"])
            flags = (flags & ~FLAG_SUPPRESS_EMBEDS) | (requested & (FLAG_SUPPRESS_EMBEDS | FLAG_COMPONENTS_V2))
        if clear_loading:
            flags &= ~FLAG_LOADING
        errors = _Errors()
        _validate_message_fields(payload, uploads, errors, path, flags=flags)
        errors.raise_if_any()
        version = MessageVersion(
            at=self.clock.now(),
            content=(payload["content"] or "") if "content" in payload else prev.content,
            embeds=list(payload["embeds"] or []) if "embeds" in payload else prev.embeds,
            components=list(payload["components"] or []) if "components" in payload else prev.components,
            attachments=self._new_attachments(msg.channel_id, payload, uploads, prev.attachments),
            flags=flags,
            allowed_mentions=payload.get("allowed_mentions"),
            source=source,
            edited_timestamp=_iso(),
        )
        self._check_not_empty(version)
        return version

    async def _apply_edit(self, msg: StoredMessage, version: MessageVersion) -> None:
        msg.versions.append(version)
        await self._dispatch_message("MESSAGE_UPDATE", msg)
        self._notify()

    async def _delete_message(self, msg: StoredMessage) -> None:
        msg.deleted = True
        msg.deleted_at = self.clock.now()
        if not msg.ephemeral:
            data = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
            if msg.guild_id is not None:
                data["guild_id"] = str(msg.guild_id)
            intent = INTENT_GUILD_MESSAGES if msg.guild_id is not None else INTENT_DIRECT_MESSAGES
            await self._dispatch("MESSAGE_DELETE", data, intent)
        self._notify()

    # ---------------------------------------------------------------- REST: users, app, commands

    async def _get_me(self, req: _Req) -> Any:
        return {
            **self.bot_user.to_dict(),
            "verified": True,
            "mfa_enabled": False,
            "flags": 0,
            "locale": "en-US",
        }

    async def _get_user(self, req: _Req) -> Any:
        user = self.users.get(int(req.params["user_id"]))
        if user is None:
            raise _unknown(10013, "User")
        return user.to_dict()

    async def _create_dm(self, req: _Req) -> Any:
        recipient = int((req.payload or {}).get("recipient_id", 0))
        if recipient not in self.users:
            raise _unknown(10013, "User")
        for channel in self.channels.values():
            if channel.type == 1 and channel.recipient_ids == [recipient]:
                return self._channel_json(channel)
        channel = Channel(id=self._snowflake(), type=1, name="", guild_id=None, recipient_ids=[recipient])
        self.channels[channel.id] = channel
        return self._channel_json(channel)

    async def _get_application(self, req: _Req) -> Any:
        return {
            "id": str(self.application_id),
            "name": self.bot_user.username,
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": self.owner_user.to_dict(),
            "team": None,
            "verify_key": "fake-verify-key",
            "flags": 0,
            "summary": "",
            "interactions_endpoint_url": None,
            "bot": self.bot_user.to_dict(),
            "rpc_origins": [],
            "redirect_uris": [],
            "tags": [],
            "approximate_guild_count": len(self.guilds),
        }

    async def _get_gateway(self, req: _Req) -> Any:
        return {"url": self.gateway_url}

    async def _get_gateway_bot(self, req: _Req) -> Any:
        return {
            "url": self.gateway_url,
            "shards": 1,
            "session_start_limit": {
                "total": 1000,
                "remaining": 999,
                "reset_after": 86_400_000,
                "max_concurrency": 1,
            },
        }

    def _command_scope(self, req: _Req) -> int | None:
        if int(req.params["application_id"]) != self.application_id:
            raise _unknown(10002, "Application")
        if "guild_id" not in req.params:
            return None
        guild_id = int(req.params["guild_id"])
        if guild_id not in self.guilds:
            raise DiscordAPIError(403, 50001, "Missing Access")
        return guild_id

    async def _get_commands(self, req: _Req) -> Any:
        return self.synced_commands.get(self._command_scope(req), [])

    def _stored_command(self, cmd: dict[str, Any], scope: int | None, previous: Sequence[dict[str, Any]]) -> dict:
        same = next((p for p in previous if p["name"] == cmd["name"] and p.get("type", 1) == cmd.get("type", 1)), None)
        stored = {
            "type": 1,
            "description": "",
            "options": [],
            "default_member_permissions": None,
            "dm_permission": True,
            "nsfw": False,
            **cmd,
            "id": same["id"] if same else str(self._snowflake()),
            "application_id": str(self.application_id),
            "version": str(self._snowflake()),
        }
        if scope is not None:
            stored["guild_id"] = str(scope)
        return stored

    async def _put_commands(self, req: _Req) -> Any:
        scope = self._command_scope(req)
        commands = req.payload
        errors = _Errors()
        if not isinstance(commands, list):
            errors.add((), "BASE_TYPE_ARRAY", "Must be an array.")
            errors.raise_if_any()
        if len(commands) > 100:
            errors.add((), "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
        names: set[tuple[int, str]] = set()
        for i, cmd in enumerate(commands):
            _validate_command(cmd, errors, (i,))
            key = (cmd.get("type", 1), cmd.get("name"))
            if key in names:
                errors.add(
                    (i, "name"),
                    "APPLICATION_COMMANDS_DUPLICATE_NAME",
                    "Application command names must be unique",
                )
            names.add(key)
        errors.raise_if_any()
        previous = self.synced_commands.get(scope, [])
        self.synced_commands[scope] = [self._stored_command(c, scope, previous) for c in commands]
        self.sync_count += 1
        return self.synced_commands[scope]

    async def _post_command(self, req: _Req) -> Any:
        scope = self._command_scope(req)
        errors = _Errors()
        _validate_command(req.payload, errors, ())
        errors.raise_if_any()
        previous = self.synced_commands.get(scope, [])
        stored = self._stored_command(req.payload, scope, previous)
        self.synced_commands[scope] = [
            p for p in previous if not (p["name"] == stored["name"] and p["type"] == stored["type"])
        ] + [stored]
        return _Reply(201, stored)

    # ---------------------------------------------------------------- REST: interactions

    async def _interaction_callback(self, req: _Req) -> Any:
        record = self._interactions_by_id.get(int(req.params["interaction_id"]))
        if record is None or record.token != req.params["token"]:
            raise _unknown(10062, "interaction")
        now = self.clock.now()
        body = req.payload if isinstance(req.payload, dict) else {}
        kind = body.get("type")
        try:
            if record.response_type is not None:
                raise DiscordAPIError(400, 40060, "Interaction has already been acknowledged.")
            if now - record.created_at > self.ack_deadline:
                raise _unknown(10062, "interaction")
            result = await self._respond(record, kind, body.get("data") or {}, req.files)
        except DiscordAPIError as e:
            record.callbacks.append(CallbackAttempt(now, kind, e.status, e.code, body))
            raise
        record.callbacks.append(CallbackAttempt(now, kind, 200, None, body))
        return result

    async def _respond(
        self, record: InteractionRecord, kind: Any, data: dict[str, Any], uploads: Sequence[_Upload]
    ) -> Any:
        valid = {2: (4, 5, 9), 3: (4, 5, 6, 7, 9), 4: (8,), 5: (4, 5, 6, 7) if record.message_id else (4, 5)}
        if kind not in valid.get(record.type, ()):
            errors = _Errors()
            errors.add(("type",), "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid interaction response type")
            errors.raise_if_any()
        channel = self.channels[record.channel_id]
        message: StoredMessage | None = None
        if kind == 4:
            version = self._create_version(
                channel,
                data,
                uploads,
                limit=record.attachment_size_limit,
                path=("data",),
                allowed_flags=FLAG_EPHEMERAL | FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_COMPONENTS_V2,
                source="interaction-response",
            )
            self._accept(record, kind, data)
            message = self._store_message(
                channel,
                version,
                author_id=self.bot_user.id,
                message_type=20 if record.type == 2 else 19,
                webhook_id=self.application_id,
                interaction=record,
            )
            record.original_message_id = message.id
            await self._dispatch_message("MESSAGE_CREATE", message)
        elif kind == 5:
            self._accept(record, kind, data)
            flags = FLAG_LOADING | (int(data.get("flags") or 0) & FLAG_EPHEMERAL)
            version = MessageVersion(self.clock.now(), "", [], [], [], flags, None, "deferred")
            message = self._store_message(
                channel,
                version,
                author_id=self.bot_user.id,
                message_type=20 if record.type == 2 else 19,
                webhook_id=self.application_id,
                interaction=record,
            )
            record.original_message_id = message.id
            await self._dispatch_message("MESSAGE_CREATE", message)
        elif kind == 6:
            self._accept(record, kind, data)
            record.original_message_id = record.message_id
        elif kind == 7:
            target = self._messages.get(record.message_id or 0)
            if target is None or target.deleted:
                raise _unknown(10008, "Message")
            version = self._edit_version(
                target,
                data,
                uploads,
                limit=record.attachment_size_limit,
                path=("data",),
                source="component-update",
            )
            self._accept(record, kind, data)
            record.original_message_id = target.id
            await self._apply_edit(target, version)
            message = target
        elif kind == 8:
            errors = _Errors()
            choices = data.get("choices") or []
            if len(choices) > 25:
                errors.add(("data", "choices"), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
            for i, c in enumerate(choices):
                errors.length(("data", "choices", i, "name"), c.get("name"), min_len=1, max_len=100, required=True)
            errors.raise_if_any()
            self._accept(record, kind, data)
            record.choices = choices
        elif kind == 9:
            errors = _Errors()
            _validate_modal(data, errors, ("data",))
            errors.raise_if_any()
            self._accept(record, kind, data)
            record.modal = data
        self._notify()
        interaction: dict[str, Any] = {"id": str(record.id), "type": record.type}
        if record.original_message_id is not None and kind in (4, 5, 7):
            original = self._messages[record.original_message_id]
            interaction.update(
                response_message_id=str(original.id),
                response_message_loading=original.loading,
                response_message_ephemeral=original.ephemeral,
            )
        resource: dict[str, Any] = {"type": kind}
        if message is not None:
            resource["message"] = self._message_json(message)
        return {"interaction": interaction, "resource": resource}

    def _accept(self, record: InteractionRecord, kind: int, data: dict[str, Any]) -> None:
        record.response_type = kind
        record.response_data = data
        record.responded_at = self.clock.now()

    def _webhook_interaction(self, req: _Req, *, need_ack: bool = True) -> InteractionRecord:
        if int(req.params["webhook_id"]) != self.application_id:
            raise _unknown(10015, "Webhook")
        record = self._interactions_by_token.get(req.params["token"])
        if record is None or self.clock.now() - record.created_at > self.token_lifetime:
            raise DiscordAPIError(401, 50027, "Invalid Webhook Token")
        if need_ack and record.response_type is None:
            raise _unknown(10015, "Webhook")
        return record

    def _webhook_message(self, record: InteractionRecord, message_id: str) -> StoredMessage:
        if message_id == "@original":
            msg = record.original
        elif int(message_id) == record.original_message_id or int(message_id) in record.followup_ids:
            msg = self._messages.get(int(message_id))
        else:
            msg = None
        if msg is None or msg.deleted:
            raise _unknown(10008, "Message")
        return msg

    async def _execute_webhook(self, req: _Req) -> Any:
        record = self._webhook_interaction(req)
        payload = req.payload or {}
        channel = self.channels[record.channel_id]
        thread_id = req.query.get("thread_id")
        if thread_id:
            channel = self._live_channel(int(thread_id))
        original = record.original
        if (
            record.response_type == 5
            and original is not None
            and original.loading
            and not original.deleted
            and not record._deferred_filled
        ):
            # The first followup after a "thinking" defer fills that message (same id); once the bot
            # deleted the placeholder, a followup is a new message of its own.
            version = self._edit_version(
                original, payload, req.files, limit=record.attachment_size_limit, source="followup"
            )
            record._deferred_filled = True
            record.followup_ids.append(original.id)
            await self._apply_edit(original, version)
            msg = original
        else:
            version = self._create_version(
                channel,
                payload,
                req.files,
                limit=record.attachment_size_limit,
                allowed_flags=FLAG_EPHEMERAL | FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_COMPONENTS_V2,
                source="followup",
            )
            msg = self._store_message(
                channel,
                version,
                author_id=self.bot_user.id,
                webhook_id=self.application_id,
                interaction=record,
            )
            record.followup_ids.append(msg.id)
            await self._dispatch_message("MESSAGE_CREATE", msg)
        self._notify()
        if req.query.get("wait", "").lower() not in ("1", "true"):
            return _NO_CONTENT
        return self._message_json(msg)

    async def _get_webhook_message(self, req: _Req) -> Any:
        record = self._webhook_interaction(req)
        return self._message_json(self._webhook_message(record, req.params["message_id"]))

    async def _edit_webhook_message(self, req: _Req) -> Any:
        record = self._webhook_interaction(req)
        msg = self._webhook_message(record, req.params["message_id"])
        version = self._edit_version(
            msg, req.payload or {}, req.files, limit=record.attachment_size_limit, source="original-edit"
        )
        await self._apply_edit(msg, version)
        return self._message_json(msg)

    async def _delete_webhook_message(self, req: _Req) -> Any:
        record = self._webhook_interaction(req)
        await self._delete_message(self._webhook_message(record, req.params["message_id"]))
        return _NO_CONTENT

    # ---------------------------------------------------------------- REST: channels and messages

    def _live_channel(self, channel_id: int) -> Channel:
        channel = self.channels.get(channel_id)
        if channel is None or channel.deleted:
            raise _unknown(10003, "Channel")
        if channel.guild_id is not None and not self._bot_can(channel, "VIEW_CHANNEL"):
            raise DiscordAPIError(403, 50001, "Missing Access")
        return channel

    def _live_message(self, channel: Channel, message_id: str) -> StoredMessage:
        msg = self._messages.get(int(message_id))
        if msg is None or msg.deleted or msg.channel_id != channel.id or msg.ephemeral:
            raise _unknown(10008, "Message")
        return msg

    def _channel_limit(self, channel: Channel) -> int:
        return self.guilds[channel.guild_id].filesize_limit if channel.guild_id else 10 * MiB

    async def _get_channel(self, req: _Req) -> Any:
        return self._channel_json(self._live_channel(int(req.params["channel_id"])))

    async def _edit_channel(self, req: _Req) -> Any:
        channel = self._live_channel(int(req.params["channel_id"]))
        payload = req.payload or {}
        if channel.is_thread:
            if channel.owner_id != self.bot_user.id and not self._bot_can(channel, "MANAGE_THREADS"):
                raise _missing_permissions()
            for key in ("archived", "locked", "invitable", "auto_archive_duration"):
                if key in payload:
                    setattr(channel, key, payload[key])
        elif not self._bot_can(channel, "MANAGE_CHANNELS"):
            raise _missing_permissions()
        if "name" in payload:
            errors = _Errors()
            errors.length(("name",), payload["name"], min_len=1, max_len=100, required=True)
            errors.raise_if_any()
            channel.name = payload["name"]
        if "topic" in payload and not channel.is_thread:
            channel.topic = payload["topic"]
        event = "THREAD_UPDATE" if channel.is_thread else "CHANNEL_UPDATE"
        await self._dispatch(event, self._channel_json(channel), INTENT_GUILDS)
        return self._channel_json(channel)

    async def _delete_channel_route(self, req: _Req) -> Any:
        channel = self._live_channel(int(req.params["channel_id"]))
        permission = "MANAGE_THREADS" if channel.is_thread else "MANAGE_CHANNELS"
        if channel.guild_id is not None and not self._bot_can(channel, permission):
            raise _missing_permissions()
        data = self._channel_json(channel)
        await self.delete_channel(channel.id)
        return data

    async def _get_messages(self, req: _Req) -> Any:
        channel = self._live_channel(int(req.params["channel_id"]))
        if not self._bot_can(channel, "READ_MESSAGE_HISTORY"):
            return []
        limit = max(1, min(100, int(req.query.get("limit", 50))))
        messages = sorted(self.messages(channel.id, include_ephemeral=False), key=lambda m: m.id, reverse=True)
        if "before" in req.query:
            messages = [m for m in messages if m.id < int(req.query["before"])]
        if "after" in req.query:
            messages = [m for m in messages if m.id > int(req.query["after"])]
        return [self._message_json(m) for m in messages[:limit]]

    async def _get_message(self, req: _Req) -> Any:
        channel = self._live_channel(int(req.params["channel_id"]))
        if not self._bot_can(channel, "READ_MESSAGE_HISTORY"):
            raise _missing_permissions()
        return self._message_json(self._live_message(channel, req.params["message_id"]))

    async def _create_message(self, req: _Req) -> Any:
        channel = self._live_channel(int(req.params["channel_id"]))
        payload = req.payload or {}
        if channel.guild_id is not None:
            send = "SEND_MESSAGES_IN_THREADS" if channel.is_thread else "SEND_MESSAGES"
            if not self._bot_can(channel, send):
                raise _missing_permissions()
            if req.files and not self._bot_can(channel, "ATTACH_FILES"):
                raise _missing_permissions()
        if channel.is_thread and channel.locked:
            raise DiscordAPIError(400, 50083, "Thread is archived")
        reference = payload.get("message_reference")
        if reference:
            referenced = self._messages.get(int(reference.get("message_id", 0)))
            if (referenced is None or referenced.deleted) and reference.get("fail_if_not_exists", True):
                errors = _Errors()
                errors.add(("message_reference",), "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
                errors.raise_if_any()
            reference = {"message_id": str(reference["message_id"]), "channel_id": str(channel.id), "type": 0}
            if channel.guild_id:
                reference["guild_id"] = str(channel.guild_id)
        version = self._create_version(
            channel,
            payload,
            req.files,
            limit=self._channel_limit(channel),
            allowed_flags=FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_COMPONENTS_V2,
            source="create",
        )
        if channel.is_thread and channel.archived:
            channel.archived = False  # sending un-archives, as on Discord
        msg = self._store_message(
            channel,
            version,
            author_id=self.bot_user.id,
            message_type=19 if reference else 0,
            message_reference=reference or None,
        )
        await self._dispatch_message("MESSAGE_CREATE", msg)
        return self._message_json(msg)

    async def _edit_message(self, req: _Req) -> Any:
        channel = self._live_channel(int(req.params["channel_id"]))
        msg = self._live_message(channel, req.params["message_id"])
        payload = req.payload or {}
        if msg.author_id != self.bot_user.id:
            if set(payload) - {"flags"}:
                raise DiscordAPIError(403, 50005, "Cannot edit a message authored by another user")
            if not self._bot_can(channel, "MANAGE_MESSAGES"):
                raise _missing_permissions()
        if req.files and not self._bot_can(channel, "ATTACH_FILES"):
            raise _missing_permissions()
        version = self._edit_version(msg, payload, req.files, limit=self._channel_limit(channel), source="edit")
        await self._apply_edit(msg, version)
        return self._message_json(msg)

    async def _delete_message_route(self, req: _Req) -> Any:
        channel = self._live_channel(int(req.params["channel_id"]))
        msg = self._live_message(channel, req.params["message_id"])
        if msg.author_id != self.bot_user.id and not self._bot_can(channel, "MANAGE_MESSAGES"):
            raise _missing_permissions()
        await self._delete_message(msg)
        return _NO_CONTENT

    async def _create_thread(self, req: _Req) -> Any:
        parent = self._live_channel(int(req.params["channel_id"]))
        payload = req.payload or {}
        if parent.type not in (0, 5):
            raise DiscordAPIError(400, 50024, "Cannot execute action on this channel type")
        kind = int(payload.get("type") or 12)
        if kind not in (11, 12):
            errors = _Errors()
            errors.add(("type",), "BASE_TYPE_CHOICES", "Value must be one of {10, 11, 12}.")
            errors.raise_if_any()
        if not self._bot_can(parent, "CREATE_PUBLIC_THREADS" if kind == 11 else "CREATE_PRIVATE_THREADS"):
            raise _missing_permissions()
        thread = self._new_thread(parent, payload, kind=kind, thread_id=self._snowflake())
        await self._dispatch_thread_create(thread)
        return _Reply(201, self._channel_json(thread))

    async def _create_thread_from_message(self, req: _Req) -> Any:
        parent = self._live_channel(int(req.params["channel_id"]))
        msg = self._live_message(parent, req.params["message_id"])
        if parent.type not in (0, 5):
            raise DiscordAPIError(400, 50024, "Cannot execute action on this channel type")
        if not self._bot_can(parent, "CREATE_PUBLIC_THREADS"):
            raise _missing_permissions()
        if msg.thread_id is not None:
            raise DiscordAPIError(400, 160004, "A thread has already been created for this message")
        # A thread started from a message shares the message's id.
        thread = self._new_thread(parent, req.payload or {}, kind=11, thread_id=msg.id)
        thread.starter_message_id = msg.id
        msg.thread_id = thread.id
        await self._dispatch_thread_create(thread)
        return _Reply(201, self._channel_json(thread))

    def _new_thread(self, parent: Channel, payload: Mapping[str, Any], *, kind: int, thread_id: int) -> Channel:
        errors = _Errors()
        errors.length(("name",), payload.get("name"), min_len=1, max_len=100, required=True)
        duration = payload.get("auto_archive_duration", 1440) or 1440
        if duration not in (60, 1440, 4320, 10080):
            errors.add(
                ("auto_archive_duration",),
                "BASE_TYPE_CHOICES",
                "Value must be one of {60, 1440, 4320, 10080}.",
            )
        errors.raise_if_any()
        thread = Channel(
            id=thread_id,
            type=kind,
            name=payload["name"],
            guild_id=parent.guild_id,
            parent_id=parent.id,
            owner_id=self.bot_user.id,
            auto_archive_duration=duration,
            invitable=payload.get("invitable", True),
            member_ids={self.bot_user.id},
        )
        self.channels[thread.id] = thread
        return thread

    async def _dispatch_thread_create(self, thread: Channel) -> None:
        data = self._channel_json(thread)
        data["newly_created"] = True
        data["member"] = {
            "id": str(thread.id),
            "user_id": str(self.bot_user.id),
            "join_timestamp": thread.created_at,
            "flags": 0,
        }
        await self._dispatch("THREAD_CREATE", data, INTENT_GUILDS)
        self._notify()

    async def _thread_member(self, req: _Req) -> Any:
        thread = self._live_channel(int(req.params["channel_id"]))
        if not thread.is_thread:
            raise DiscordAPIError(400, 50024, "Cannot execute action on this channel type")
        raw = req.params["user_id"]
        user_id = self.bot_user.id if raw == "@me" else int(raw)
        if user_id not in self.users:
            raise _unknown(10013, "User")
        if req.method == "PUT":
            thread.member_ids.add(user_id)
        else:
            thread.member_ids.discard(user_id)
        return _NO_CONTENT

    async def _typing(self, req: _Req) -> Any:
        self._live_channel(int(req.params["channel_id"]))
        return _NO_CONTENT

    async def _react(self, req: _Req) -> Any:
        channel = self._live_channel(int(req.params["channel_id"]))
        msg = self._live_message(channel, req.params["message_id"])
        emoji = unquote(req.params["emoji"])
        if req.method == "PUT":
            if not self._bot_can(channel, "ADD_REACTIONS", "READ_MESSAGE_HISTORY"):
                raise _missing_permissions()
            if emoji not in msg.reactions:
                msg.reactions.append(emoji)
        elif emoji in msg.reactions:
            msg.reactions.remove(emoji)
        return _NO_CONTENT

    # ---------------------------------------------------------------- REST: guilds

    def _guild_for(self, req: _Req) -> Guild:
        guild = self.guilds.get(int(req.params["guild_id"]))
        if guild is None:
            raise _unknown(10004, "Guild")
        return guild

    async def _get_guild(self, req: _Req) -> Any:
        guild = self._guild_for(req)
        data = self._guild_json(guild)
        if req.query.get("with_counts") in ("1", "true"):
            data.update(approximate_member_count=len(guild.members), approximate_presence_count=0)
        return data

    async def _get_guild_channels(self, req: _Req) -> Any:
        guild = self._guild_for(req)
        return [self._channel_json(self.channels[c]) for c in guild.channel_ids if not self.channels[c].deleted]

    async def _get_roles(self, req: _Req) -> Any:
        return [r.to_dict() for r in self._guild_for(req).roles.values()]

    async def _get_member(self, req: _Req) -> Any:
        member = self._guild_for(req).members.get(int(req.params["user_id"]))
        if member is None:
            raise _unknown(10007, "Member")
        return member.to_dict()

    async def _get_active_threads(self, req: _Req) -> Any:
        guild = self._guild_for(req)
        threads = [t for t in self.threads if t.guild_id == guild.id and not t.deleted and not t.archived]
        return {"threads": [self._channel_json(t) for t in threads], "members": []}

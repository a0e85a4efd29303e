"""Fetch a prediction's output file to disk: allowed hosts only, streamed, capped, checked, atomic.

Replicate deletes outputs about an hour after a prediction ends, so a generator downloads as soon as
the prediction succeeds. Downloads are free, so transient trouble (network, 5xx, a truncated or
non-media body) is retried here, inside the attempt, instead of paying for a new prediction. A
404/410 means the output is gone: only a new prediction can make it again (see `OutputExpired`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Literal
from urllib.parse import urljoin, urlsplit

import httpx

from pipeline.atomic_files import replace_durably, temp_beside
from pipeline.errors import ProviderError
from pipeline.retry import classify

log = logging.getLogger(__name__)

MediaKind = Literal["png", "mp4", "audio"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_CHUNK = 256 * 1024
_MAX_REDIRECTS = 3


class OutputExpired(ProviderError):
    """The output URL answers 404/410: Replicate deleted it (about an hour after the run).

    Retryable on purpose: the file cannot be fetched again, so the only way to finish the scene is
    a new prediction, and the next attempt creates one. That costs one more prediction; the
    attempt limit bounds it, and it only happens when a resume comes back more than an hour late.
    """

    def __init__(self, url: str, status: int) -> None:
        super().__init__(
            f"The output file is gone ({status} from {urlsplit(url).hostname}): Replicate deletes outputs "
            "after about an hour, so the prediction must be re-run.",
            retryable=True,
        )


class BadMedia(ProviderError):
    """The body is not the file we expected (an error page, a truncated transfer).

    Re-downloaded here; if it stays wrong the model made something odd, and paying for another
    prediction blindly is not the answer: the stage fails and says so.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def looks_like(kind: MediaKind, head: bytes) -> bool:
    """Magic bytes: the PNG signature, an ISO-BMFF `ftyp` box at offset 4 for MP4, or an audio header."""
    if kind == "png":
        return head.startswith(PNG_SIGNATURE)
    if kind == "audio":
        return looks_like_audio(head)
    return len(head) >= 12 and head[4:8] == b"ftyp"


def looks_like_audio(head: bytes) -> bool:
    """WAV (RIFF/WAVE), FLAC, Ogg, or MP3 (an ID3 tag or an MPEG audio frame sync)."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return True
    if head[:4] in (b"fLaC", b"OggS") or head[:3] == b"ID3":
        return True
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0


def host_allowed(url: str, allowed_hosts: frozenset[str]) -> bool:
    """Exact host names, or `.example.com` / `*.example.com` for its subdomains. https, except on loopback."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host or parts.scheme not in ("https", "http"):
        return False
    if parts.scheme == "http" and host not in _LOOPBACK:
        return False
    for entry in allowed_hosts:
        suffix = entry.removeprefix("*")
        if host == entry or (suffix.startswith(".") and host.endswith(suffix)):
            return True
    return False


class MediaDownloader:
    def __init__(
        self,
        allowed_hosts: frozenset[str],
        max_bytes: int,
        *,
        tries: int = 3,
        backoff_s: float = 1.0,
        timeout: httpx.Timeout | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.allowed_hosts = allowed_hosts
        self.max_bytes = max_bytes
        self.tries = tries
        self.backoff_s = backoff_s
        # No auth header: output URLs are public, and the Replicate token must not travel to them.
        self._timeout = timeout or httpx.Timeout(10.0, read=60.0)
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def fetch(self, url: str, dest: Path, kind: MediaKind) -> int:
        """Download `url` to `dest` (atomically) and return its size in bytes."""
        self._check_host(url)
        for attempt in range(1, self.tries + 1):
            try:
                return await self._fetch_once(url, dest, kind)
            except (OutputExpired, asyncio.CancelledError):
                raise
            except Exception as exc:
                decision = classify(exc)
                if not (decision.retry or isinstance(exc, BadMedia)) or attempt == self.tries:
                    raise
                wait = max(self.backoff_s * 2 ** (attempt - 1), min(decision.retry_after or 0.0, 10.0))
                log.warning("download of %s failed (%s); try %d/%d in %.1f s", url, decision.reason,
                            attempt + 1, self.tries, wait)  # fmt: skip
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    def _check_host(self, url: str) -> None:
        if not host_allowed(url, self.allowed_hosts):
            host = urlsplit(url).hostname or url[:60]
            log.warning("refused to download %s: host %r is not in JANT_ALLOWED_MEDIA_HOSTS", url, host)
            raise ProviderError(
                f"Refused to download the output from {host}: it is not an allowed media host.",
                retryable=False,
                hint="Add the host to JANT_ALLOWED_MEDIA_HOSTS if you trust it.",
            )

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False, transport=self._transport)
        return self._http

    async def _fetch_once(self, url: str, dest: Path, kind: MediaKind) -> int:
        for _ in range(_MAX_REDIRECTS + 1):
            async with self._client().stream("GET", url) as resp:
                if resp.is_redirect:  # every hop must land on an allowed host too
                    url = urljoin(url, resp.headers.get("location", ""))
                    self._check_host(url)
                    continue
                if resp.status_code in (404, 410):
                    raise OutputExpired(url, resp.status_code)
                resp.raise_for_status()
                declared = resp.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                    raise self._too_big(url, int(declared))
                return await self._write(resp, url, dest, kind)
        raise ProviderError(f"Too many redirects fetching {urlsplit(url).hostname}.", retryable=False)

    def _too_big(self, url: str, size: int) -> ProviderError:
        return ProviderError(
            f"The output from {urlsplit(url).hostname} is {size / 1_048_576:.1f} MiB or more, over the "
            f"{self.max_bytes / 1_048_576:.1f} MiB download limit.",
            retryable=False,
            hint="Raise JANT_MAX_DOWNLOAD_BYTES if this size is expected.",
        )

    async def _write(self, resp: httpx.Response, url: str, dest: Path, kind: MediaKind) -> int:
        await asyncio.to_thread(dest.parent.mkdir, parents=True, exist_ok=True)
        tmp = temp_beside(dest, ".part")
        size, head = 0, b""
        try:
            with await asyncio.to_thread(open, tmp, "xb") as out:
                async for chunk in resp.aiter_bytes(_CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise self._too_big(url, size)
                    if len(head) < 16:
                        head += chunk[: 16 - len(head)]
                    await asyncio.to_thread(out.write, chunk)
            if not looks_like(kind, head):
                host = urlsplit(url).hostname
                raise BadMedia(f"The output from {host} is not a {kind.upper()} file ({size} bytes).")
            await asyncio.to_thread(replace_durably, tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(tmp.unlink)
        return size

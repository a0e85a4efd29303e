"""How `jant bot` meets Discord at start-up: each failure in one line that says what to do, bounded
retries with back-off when Discord cannot be reached, and no noise about voice it never uses."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import discord

EXIT_USAGE, EXIT_FAILED = 2, 1
MAX_RETRY_DELAY_S = 60.0
# Gateway close codes that mean the configuration is wrong, not the network (Discord's opcode docs).
_AUTH_FAILED, _INVALID_INTENTS, _DISALLOWED_INTENTS = 4004, 4013, 4014


class CannotReachDiscord(Exception):
    """Every attempt to reach Discord's API failed with a network error."""

    def __init__(self, where: str, attempts: int, last: BaseException) -> None:
        super().__init__(f"{where}: {attempts} attempts")
        self.where = where
        self.attempts = attempts
        self.last = last


def silence_voice_warnings() -> None:
    """discord.py warns once per process that PyNaCl and davey are missing: they serve voice only,
    and this bot never joins a voice channel."""
    discord.VoiceClient.warn_nacl = False
    discord.VoiceClient.warn_dave = False


def is_unreachable(exc: BaseException) -> bool:
    """A network failure worth retrying (DNS, refused connection, timeout, Discord's own 5xx)."""
    if isinstance(exc, discord.DiscordServerError):
        return True
    if isinstance(exc, discord.DiscordException):
        return False
    return isinstance(exc, OSError | aiohttp.ClientConnectionError | asyncio.TimeoutError)


def retry_delays(attempts: int, first_s: float) -> list[float]:
    """Waits between `attempts` tries: first_s, doubled each time, at most MAX_RETRY_DELAY_S."""
    return [min(MAX_RETRY_DELAY_S, first_s * 2**n) for n in range(max(0, attempts - 1))]


def reason(exc: BaseException) -> str:
    """One line, no traceback: aiohttp's connector errors already name the host and the cause."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def retry_line(where: str, exc: BaseException, attempt: int, attempts: int, delay: float) -> str:
    return (
        f"warning: cannot reach Discord at {where} ({reason(exc)}); "
        f"attempt {attempt} of {attempts}, trying again in {delay:g} s"
    )


def failure_line(exc: BaseException) -> tuple[str, int] | None:
    """The one line and the exit code for a start-up failure; None for one we do not know."""
    if isinstance(exc, discord.LoginFailure) or (
        isinstance(exc, discord.ConnectionClosed) and exc.code == _AUTH_FAILED
    ):
        return (
            "error: Discord refused DISCORD_TOKEN (401 Unauthorized). Copy the bot token again "
            "(Developer Portal → your application → Bot → Reset Token) into DISCORD_TOKEN.",
            EXIT_USAGE,
        )
    if isinstance(exc, discord.PrivilegedIntentsRequired) or (
        isinstance(exc, discord.ConnectionClosed) and exc.code in (_INVALID_INTENTS, _DISALLOWED_INTENTS)
    ):
        return (
            "error: Discord's gateway refused the bot's intents. Jant asks only for the guilds intent: "
            "check DISCORD_GATEWAY_URL if you set it, or the application's settings in the Developer Portal.",
            EXIT_USAGE,
        )
    if isinstance(exc, discord.ConnectionClosed):
        return (
            f"error: Discord's gateway closed the connection (code {exc.code}: {exc.reason or 'no reason'}). "
            "Try again in a minute; if it keeps happening, check https://discordstatus.com.",
            EXIT_FAILED,
        )
    if isinstance(exc, CannotReachDiscord):
        return (
            f"error: cannot reach Discord at {exc.where} after {exc.attempts} attempts ({reason(exc.last)}). "
            "Check the network connection, or DISCORD_API_BASE if you set it.",
            EXIT_USAGE,
        )
    return None


class OneLineReconnects(logging.Filter):
    """discord.py logs each gateway reconnect with a full traceback; one line with the cause says it all."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Attempting a reconnect"):
            exc = record.exc_info[1]
            if exc is not None:  # the message is a %-format string: the cause must not add specifiers
                record.msg = f"{record.msg} ({reason(exc).replace('%', '%%')})"
            record.exc_info = None
            record.exc_text = None
        return True

"""`jant bot` that cannot start says why in one line and exits 2: a refused token, a Discord it cannot
reach (after a few announced retries), a gateway that refuses it. No traceback, no voice warnings."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

import discord

from bot.discord_connect import CannotReachDiscord, OneLineReconnects, failure_line, retry_delays
from tests.emulators.discord_server import DiscordEmulator

pytest_plugins = ["tests.conftest_discord"]  # the discord_emulator and discord_errors fixtures

JANT = Path(sys.executable).with_name("jant")
NOISE = ("Traceback", "PyNaCl", "davey", "voice will NOT be supported")


async def run_bot_process(tmp_path: Path, **env: str) -> tuple[int, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        str(JANT), "bot", env={**os.environ, "JANT_DATA_DIR": str(tmp_path / "data"), **env}, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode() + err.decode()
    assert proc.returncode is not None
    return proc.returncode, [line for line in text.splitlines() if line.strip()]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: nothing listens there


async def test_a_refused_token_is_one_line_and_exit_2(discord_emulator: DiscordEmulator, tmp_path: Path) -> None:
    env = {**discord_emulator.env(), "DISCORD_TOKEN": "fake-wrong-token.not.real"}
    code, lines = await run_bot_process(tmp_path, **env)
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert "Discord refused DISCORD_TOKEN (401 Unauthorized)" in lines[0] and "Reset Token" in lines[0]
    assert not any(word in lines[0] for word in NOISE)
    assert "fake-wrong-token" not in lines[0]  # never echo a secret, even a wrong one
    assert discord_emulator.identify_count == 0


async def test_an_unreachable_discord_is_retried_with_back_off_then_exit_2(tmp_path: Path) -> None:
    port = closed_port()
    env = {"DISCORD_TOKEN": "fake-token-for-tests", "DISCORD_API_BASE": f"http://127.0.0.1:{port}",
           "JANT_DISCORD_CONNECT_ATTEMPTS": "3", "JANT_DISCORD_CONNECT_BACKOFF_S": "0.1"}  # fmt: skip
    code, lines = await run_bot_process(tmp_path, **env)
    assert code == 2, lines
    assert len(lines) == 3, lines
    retries, final = lines[:2], lines[2]
    where = f"http://127.0.0.1:{port}/api/v10"
    assert retries[0].startswith(f"warning: cannot reach Discord at {where} (")
    assert retries[0].endswith("attempt 1 of 3, trying again in 0.1 s")
    assert retries[1].endswith("attempt 2 of 3, trying again in 0.2 s")  # doubled
    assert final.startswith(f"error: cannot reach Discord at {where} after 3 attempts")
    assert "DISCORD_API_BASE" in final
    assert not any(word in line for line in lines for word in NOISE)


def test_back_off_doubles_up_to_a_cap() -> None:
    assert retry_delays(6, 2.0) == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert retry_delays(10, 2.0)[-1] == 60.0 and retry_delays(1, 2.0) == []


def test_a_refused_gateway_is_one_line() -> None:
    def closed(code: int) -> discord.ConnectionClosed:
        return discord.ConnectionClosed(SimpleNamespace(close_code=code), shard_id=None, code=code)  # type: ignore[arg-type]

    line, code = failure_line(discord.PrivilegedIntentsRequired(None))  # type: ignore[misc]
    assert code == 2 and "gateway refused the bot's intents" in line
    assert failure_line(closed(4014)) == (line, 2)
    assert "refused DISCORD_TOKEN" in failure_line(closed(4004))[0]
    other, code = failure_line(closed(4000))
    assert code == 1 and "closed the connection (code 4000" in other and "\n" not in other
    assert failure_line(ValueError("x")) is None  # unknown failures are not dressed up
    gave_up, code = failure_line(CannotReachDiscord("http://x/api/v10", 3, OSError("boom")))
    assert code == 2 and "after 3 attempts (OSError: boom)" in gave_up


def test_gateway_reconnects_are_logged_in_one_line() -> None:
    try:
        raise OSError("Connect call failed ('127.0.0.1', 9)")
    except OSError:
        record = logging.LogRecord("discord.client", logging.ERROR, __file__, 1, "Attempting a reconnect in %.2fs",
                                   (1.5,), sys.exc_info())  # fmt: skip
    assert OneLineReconnects().filter(record)
    text = logging.Formatter("%(message)s").format(record)
    assert text == "Attempting a reconnect in 1.50s (OSError: Connect call failed ('127.0.0.1', 9))"

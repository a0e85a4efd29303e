"""`jant bot` as a real process: configured only by the environment, it reaches the emulator, syncs its
commands to the configured guild, answers /makead, and stops cleanly on SIGTERM. Without a token it
says how to get one and exits 2."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import discord

from bot.app import intents, rest_base, run_bot
from pipeline.config import Settings
from tests.bot_harness import embed_text
from tests.emulators.discord_server import DiscordEmulator

pytest_plugins = ["tests.conftest_discord"]  # the discord_emulator and discord_errors fixtures

JANT = Path(sys.executable).with_name("jant")


def test_without_a_token_the_bot_explains_and_exits_2(capsys) -> None:
    assert run_bot(Settings()) == 2
    err = capsys.readouterr().err
    assert "DISCORD_TOKEN is not set" in err and "applications.commands" in err


def test_the_api_base_may_be_given_with_or_without_the_version() -> None:
    assert rest_base("http://127.0.0.1:5000") == "http://127.0.0.1:5000/api/v10"
    assert rest_base("http://127.0.0.1:5000/api/v10/") == "http://127.0.0.1:5000/api/v10"
    assert rest_base("https://discord.com/api/v9") == "https://discord.com/api/v9"
    assert intents().value == discord.Intents(guilds=True).value  # no privileged intents


async def test_jant_bot_runs_from_the_environment_and_stops_on_sigterm(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    assert emu.guild is not None and emu.channel is not None and emu.user is not None
    env = {
        **os.environ,
        **emu.env(),  # DISCORD_TOKEN, DISCORD_API_BASE (no /api/v10), DISCORD_GATEWAY_URL
        "JANT_DATA_DIR": str(tmp_path / "data"),
        "JANT_DISCORD_GUILD_IDS": str(emu.guild.id),
        "JANT_STATUS_EDIT_INTERVAL_S": "0.2",
    }
    proc = await asyncio.create_subprocess_exec(
        str(JANT), "bot", env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        await emu.wait_for(lambda: emu.identify_count >= 1 and emu.commands(emu.guild.id), timeout=20)
        assert emu.commands() == []  # synced to the guild (instant), not globally
        assert {c["name"] for c in emu.commands(emu.guild.id)} == {
            "makead",
            "jobs",
            "job",
            "cancel",
            "reroll",
            "brand",
            "spend",
            "rerender",
        }
        assert emu.intents == 1
        rec = await emu.slash_command(
            emu.guild.id,
            emu.channel.id,
            emu.user.id,
            "makead",
            {"product": "Lumen — a desk lamp that charges your phone", "mood": "minimal"},
        )
        [board] = await rec.wait_followups(1, timeout=10)
        assert "Storyboard" in embed_text(board) and board.button_labels[0] == "Approve"
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 10)
        _, stderr = await proc.communicate()
        assert code == 0, stderr.decode()
        assert emu.token not in stderr.decode()  # no secret in the logs
        assert "offline" in stderr.decode()  # no keys: said once, loudly
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

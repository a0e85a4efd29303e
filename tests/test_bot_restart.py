"""`jant bot` as a real process, killed and stopped while it makes an ad with the real clients.

The process talks to the Discord emulator, the fake OpenAI and the fake Replicate, all served by this
test's event loop, so they outlive the bot: predictions keep running on "Replicate" while the bot is
down, exactly as they would for real.

Stories: a kill -9 while the clips are generating, then a restart — the job completes on the same
predictions (zero duplicate creates), the original status message reaches its final state, the ad is
uploaded, and the buttons of old messages still answer. A SIGTERM while a job generates and a
storyboard is being written — new commands are told to try again in a minute, the storyboard in
progress is still posted, the predictions keep running (none cancelled), and the process exits within
10 s with the job ready to resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.error_replies import RESTARTING
from pipeline.providers.replicate_intents import fingerprint
from tests.bot_harness import embed_text, eventually, job_id_of
from tests.emulators import media
from tests.emulators.discord_server import DiscordEmulator, InteractionRecord, StoredMessage, User
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import FakeReplicate
from tests.service_fakes import SDXL, SVD, draft, service_env

pytest_plugins = ["tests.conftest_discord"]  # the discord_emulator and discord_errors fixtures

JANT = Path(sys.executable).with_name("jant")
PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm, dims at night and charges your phone"
SCENES = 5  # the fake GPT-4o's storyboard
CLIP_S = 3.0  # each SVD clip runs this long on the fake Replicate: the window to kill the bot in


class BotProcess:
    """One `jant bot` process; its stderr (the bot's log) is collected line by line."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd = env, cwd
        self.lines: list[str] = []
        self._new_line = asyncio.Event()
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self, emu: DiscordEmulator) -> BotProcess:
        identified = emu.identify_count
        self.proc = await asyncio.create_subprocess_exec(
            str(JANT), "bot", env=self.env, cwd=self.cwd,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())
        await emu.wait_for(lambda: (emu.identify_count > identified and emu.connected) or self.exited, timeout=30,
                           description="the bot to log in")  # fmt: skip
        assert not self.exited, self.log
        return self

    @property
    def exited(self) -> bool:
        return self.proc is not None and self.proc.returncode is not None

    @property
    def log(self) -> str:
        return "".join(self.lines)

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.lines.append(line.decode(errors="replace"))
            self._new_line.set()

    async def wait_log(self, text: str, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not any(text in line for line in self.lines):
                self._new_line.clear()
                await self._new_line.wait()

    async def wait(self, timeout: float) -> int:  # noqa: ASYNC109
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        return code

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeOpenAI, FakeReplicate]]:
    await media.mp4_bytes(576, 1024, 14, 7)  # warm the emulator's encode cache
    async with FakeOpenAI() as oai, FakeReplicate(time_factor=0.1) as rep:
        oai.responder = lambda body: draft()
        rep.set_latency(SVD, processing=CLIP_S / 0.1)
        yield oai, rep


@pytest.fixture
def bot_env(discord_emulator: DiscordEmulator, fakes: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path) -> dict:
    emu = discord_emulator
    assert emu.guild is not None
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REPLICATE_", "JANT_", "DISCORD_"))}
    return {
        **base, **emu.env(), **service_env(*fakes, tmp_path / "data"),
        "JANT_DISCORD_GUILD_IDS": str(emu.guild.id), "JANT_ENV": "dev",
        "JANT_SVD_VIDEO_LENGTH": "14_frames_with_svd", "JANT_CLIP_DEADLINE_S": "60",
        "JANT_STATUS_EDIT_INTERVAL_S": "0.2", "JANT_STATUS_HEARTBEAT_S": "0",
    }  # fmt: skip


@pytest.fixture(params=["local", "dbos"])
def engine(request: pytest.FixtureRequest) -> str:
    if request.param == "dbos":
        pytest.importorskip("dbos", reason="the durable extra (`pip install 'jant[durable]'`) is not installed")
    return str(request.param)


def db_rows(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the bot's database from outside, as another process would (WAL: readers never block it)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def clips_in_flight(db: Path, rep: FakeReplicate, job_id: str) -> bool:
    """Every clip's prediction is created, its id stored, and it is generating on Replicate."""
    rows = await asyncio.to_thread(
        db_rows, db, "SELECT prediction_id FROM stages WHERE job_id = ? AND stage = 'clip' AND status = 'running'"
        " AND prediction_id IS NOT NULL", job_id,
    )  # fmt: skip
    ids = {r[0] for r in rows}
    return len(ids) == SCENES and all(rep.predictions[i].status == "processing" for i in ids if i in rep.predictions)


async def makead_and_approve(emu: DiscordEmulator) -> tuple[StoredMessage, str, InteractionRecord]:
    assert emu.guild is not None and emu.channel is not None and emu.user is not None
    rec = await emu.slash_command(emu.guild.id, emu.channel.id, emu.user.id, "makead",
                                  {"product": PRODUCT, "mood": "cinematic"})  # fmt: skip
    [board] = await rec.wait_followups(1, timeout=15)
    job_id = job_id_of(board)
    approve = await (await emu.click_button(board.id, f"jant:approve:{job_id}", emu.user.id)).wait_response()
    assert approve.response_type == 7
    return board, job_id, approve


async def stale_click(emu: DiscordEmulator, message: StoredMessage, custom_id: str, user: User) -> InteractionRecord:
    """A click from a client that still shows the message as it was, enabled buttons and all."""
    data = {"custom_id": custom_id, "component_type": 2}
    payload = emu._envelope(3, message.guild_id, message.channel_id, user.id, data, message=message)
    return await (await emu.inject_interaction(payload)).wait_response(timeout=10)


async def test_a_kill_9_while_clips_generate_loses_nothing_and_pays_nothing_twice(
    discord_emulator: DiscordEmulator, fakes: tuple[FakeOpenAI, FakeReplicate], bot_env: dict, tmp_path: Path
) -> None:
    emu, (_, rep) = discord_emulator, fakes
    assert emu.guild is not None and emu.user is not None
    bob = emu.add_user("bob")
    emu.add_member(emu.guild.id, bob.id)
    db = tmp_path / "data" / "jant.db"

    first = await BotProcess(bot_env, tmp_path).start(emu)
    try:
        board, job_id, _ = await makead_and_approve(emu)
        await eventually(lambda: clips_in_flight(db, rep, job_id), what="every clip generating, its id stored")
        [(ui,)] = await asyncio.to_thread(db_rows, db, "SELECT ui_json FROM jobs WHERE id = ?", job_id)
        first.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        assert await first.wait(10) == -signal.SIGKILL
    finally:
        await first.stop()
    status_id = json.loads(ui)["status_message_id"]
    status = emu.message(status_id)
    assert "✅" not in embed_text(status)  # it was mid-job
    creates_before = rep.counts.total_creates
    assert rep.counts.creates[SVD] == SCENES and rep.counts.cancels == 0

    second = await BotProcess(bot_env, tmp_path).start(emu)
    try:
        # The old messages' buttons answer in the new process: a stale Approve is told the job moved on,
        # and a teammate's Cancel on the status message is refused without stopping anything.
        again = await stale_click(emu, board, f"jant:approve:{job_id}", emu.user)
        assert again.ephemeral and again.content.startswith(f"Nothing to approve: job `{job_id}` ")
        refused = await stale_click(emu, status, f"jant:cancel:{job_id}", bob)
        assert refused.ephemeral and refused.content == (
            f"Only <@{emu.user.id}> (who asked for it) or members with Manage Server can cancel this ad."
        )

        await emu.wait_for(lambda: "✅ **Done.**" in embed_text(emu.message(status_id)), timeout=60,
                           description="the original status message to reach its final state")  # fmt: skip
        result = await emu.wait_for_message(status.channel_id, lambda m: bool(m.attachments), timeout=30)
        mp4 = result.attachments[0]
        assert mp4.filename == f"jant-ad-{job_id}.mp4" and mp4.data[4:8] == b"ftyp" and 0 < mp4.size <= 10 * 2**20

        stale = await stale_click(emu, board, f"jant:cancel:{job_id}", emu.user)
        assert stale.ephemeral and stale.content == f"Nothing to cancel: job `{job_id}` has already finished."

        # Zero duplicate creates: every prediction Replicate made is stored once, one per scene per stage
        # (seed, clip, voice) and one music bed for the job.
        paid = 3 * SCENES + 1
        assert rep.counts.total_creates == creates_before == paid
        assert rep.counts.creates[SDXL] == rep.counts.creates[SVD] == SCENES
        stored = await asyncio.to_thread(
            db_rows, db, "SELECT scene_index, stage, prediction_id, status FROM predictions WHERE job_id = ?", job_id
        )
        assert {r[2] for r in stored} == set(rep.predictions) and len(stored) == paid
        per_scene = {(i, s) for i in range(1, SCENES + 1) for s in ("seed", "clip", "voice")}
        assert {(r[0], r[1]) for r in stored} == per_scene | {(0, "music")}
        assert {r[3] for r in stored} == {"succeeded"}
        [(status_now, events)] = await asyncio.to_thread(
            db_rows, db, "SELECT status, (SELECT COUNT(*) FROM events WHERE job_id = ? AND kind = 'resumed')"
            " FROM jobs WHERE id = ?", job_id, job_id,
        )  # fmt: skip
        assert (status_now, events) == ("completed", 1)
        assert emu.message(status_id).custom_ids == []  # nothing left to press

        started = time.monotonic()
        second.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        assert await second.wait(10) == 0, second.log
        assert time.monotonic() - started < 10
    finally:
        await second.stop()


async def test_a_kill_9_while_replicate_holds_a_clips_create_answer_resumes_on_that_prediction(
    discord_emulator: DiscordEmulator, fakes: tuple[FakeOpenAI, FakeReplicate], bot_env: dict, tmp_path: Path
) -> None:
    """The local engine's restart after a kill between Replicate accepting a clip's create and the id being
    stored: the create's intent leads the resumed attempt to that prediction, not to a second create."""
    emu, (_, rep) = discord_emulator, fakes
    db = tmp_path / "data" / "jant.db"
    env = {**bot_env, "JANT_VOICE": "none", "JANT_MUSIC": "none"}
    rep.set_latency(SVD, processing=1.0 / 0.1)
    rep.script(SVD, "held:120")  # the first clip's create: accepted and counted, its answer held back
    first = await BotProcess(env, tmp_path).start(emu)
    try:
        _, job_id, _ = await makead_and_approve(emu)

        async def held() -> str | None:
            return next(iter(rep.holding), None)

        prediction = await eventually(held, timeout=60, what="a clip's create held by Replicate")
        first.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        assert await first.wait(10) == -signal.SIGKILL
    finally:
        await first.stop()
    rep.release_held()
    sql = "SELECT scene_index FROM prediction_intents WHERE job_id = ? AND stage = 'clip' AND fingerprint = ?"
    [(scene,)] = await asyncio.to_thread(db_rows, db, sql, job_id, fingerprint(rep.predictions[prediction].input))

    second = await BotProcess(env, tmp_path).start(emu)
    try:
        status = "SELECT status FROM jobs WHERE id = ?"
        await eventually(
            lambda: asyncio.to_thread(lambda: db_rows(db, status, job_id) == [("completed",)]), timeout=60,
            what="the job completed after the restart",
        )  # fmt: skip
    finally:
        await second.stop()
    assert rep.counts.creates[SVD] == SCENES, second.log  # the held create was not sent again
    sql = "SELECT prediction_id, attempt, status FROM stages WHERE job_id = ? AND scene_index = ? AND stage = 'clip'"
    assert await asyncio.to_thread(db_rows, db, sql, job_id, scene) == [(prediction, 1, "done")]
    assert rep.predictions[prediction].status == "succeeded"
    assert await asyncio.to_thread(db_rows, db, "SELECT * FROM prediction_intents") == []


async def test_sigterm_stops_taking_work_leaves_predictions_running_and_exits_within_10_s(
    discord_emulator: DiscordEmulator,
    fakes: tuple[FakeOpenAI, FakeReplicate],
    bot_env: dict,
    tmp_path: Path,
    engine: str,
) -> None:
    emu, (oai, rep) = discord_emulator, fakes
    bot_env = {**bot_env, "JANT_ENGINE": engine}
    assert emu.guild is not None and emu.channel is not None and emu.user is not None
    db = tmp_path / "data" / "jant.db"
    # The clips outlast the whole stop (a storyboard finished, two refusals, the exit): with the
    # kill-9 test's 3 s they could finish first, and the test then saw done stages, not running ones.
    rep.set_latency(SVD, processing=60 / 0.1)
    bot = await BotProcess(bot_env, tmp_path).start(emu)
    try:
        _, job_id, _ = await makead_and_approve(emu)
        await eventually(lambda: clips_in_flight(db, rep, job_id), what="every clip generating, its id stored")
        [(ui,)] = await asyncio.to_thread(db_rows, db, "SELECT ui_json FROM jobs WHERE id = ?", job_id)

        oai.delay(2.0)  # a teammate's storyboard is being written when the stop comes
        brew = {"product": "Brew — a kettle that knows your tea", "mood": "minimal"}
        writing = await emu.slash_command(emu.guild.id, emu.channel.id, emu.user.id, "makead", brew)
        await writing.wait_response()
        assert writing.response_type == 5

        started = time.monotonic()
        bot.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        await bot.wait_log("stopping")
        told = await emu.slash_command(emu.guild.id, emu.channel.id, emu.user.id, "jobs")
        await told.wait_response()
        assert told.ephemeral and told.content == RESTARTING == (
            "🔁 I'm restarting; try again in a minute. Ads already being made carry on."
        )
        status = emu.message(json.loads(ui)["status_message_id"])
        click = await (await emu.click_button(status.id, f"jant:cancel:{job_id}", emu.user.id)).wait_response()
        assert click.ephemeral and click.content == RESTARTING  # not cancelled half-way through a stop

        assert await bot.wait(10) == 0, bot.log
        elapsed = time.monotonic() - started
        assert elapsed < 10, elapsed
    finally:
        await bot.stop()

    # The storyboard in progress was finished and posted before the process went away.
    [storyboard] = writing.followups
    assert storyboard.button_labels == ["Approve", "New storyboard", "Edit scene", "Cancel"]
    # The predictions keep running on Replicate; nothing was cancelled; the job waits to be resumed.
    assert rep.counts.cancels == 0
    clips = [p for p in rep.predictions.values() if p.model.ref == SVD]
    assert len(clips) == SCENES and {p.status for p in clips} <= {"processing", "succeeded"}
    stages = await asyncio.to_thread(
        db_rows, db, "SELECT status, prediction_id FROM stages WHERE job_id = ? AND stage = 'clip'", job_id
    )
    assert {s for s, _ in stages} == {"running"} and {p for _, p in stages} == {p.id for p in clips}
    [(job_status,)] = await asyncio.to_thread(db_rows, db, "SELECT status FROM jobs WHERE id = ?", job_id)
    assert job_status == "running"
    if engine == "dbos":  # DBOS (launched on the bot's loop) keeps the run pending for the next start to recover
        sql = "SELECT status FROM workflow_status WHERE workflow_uuid = ?"
        assert await asyncio.to_thread(db_rows, tmp_path / "data" / "dbos.sqlite", sql, job_id) == [("PENDING",)]
    assert "Traceback" not in bot.log, bot.log

"""`jant bot --no-worker` beside a worker (JANT_ENGINE=dbos): the bot makes no ad, a worker does.

Story: Alice approves a storyboard in Discord. The bot queues the job for the workers and runs none
of it; the worker (what `jant worker` opens: DBOS launched, taking the jobs queue, its own
providers) makes it. The bot follows the job through the database, so its status message moves
through the job's progress to the finished ad, which the bot posts. The bot is restarted mid-job:
the new process finds the job still being made and its status message keeps moving.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.job_actions import BUSY
from pipeline.config import Settings
from pipeline.models import JobStatus
from pipeline.runtime import Runtime
from tests.bot_harness import embed_text, running_team, scripted_providers
from tests.emulators.discord_server import DiscordEmulator
from tests.scripted_providers import CopyComposer, ScriptedImages, ScriptedVideo

pytest.importorskip("dbos", reason="the durable extra (`pip install 'jant[durable]'`) is not installed")
pytest_plugins = ["tests.conftest_discord"]  # the discord_emulator and discord_errors fixtures

OVERALL = re.compile(r"\*\*Overall\*\* `[^`]*` (\d+)%")


@pytest.fixture
async def worker(tmp_path: Path) -> AsyncIterator[Runtime]:
    """A worker on the bot's data directory, with its own id and its own (scripted) providers."""
    settings = Settings(JANT_DATA_DIR=tmp_path / "data", JANT_ENGINE="dbos", JANT_WORKER_ID="w1")
    runtime = await Runtime.open(settings, scripted_providers(), runs_jobs=True, takes_queued=True)
    runtime.orchestrator.composer = CopyComposer()  # type: ignore[assignment]
    try:
        yield runtime
    finally:
        await runtime.close()


def _overall(text: str) -> int | None:
    m = OVERALL.search(text)
    return int(m.group(1)) if m else None


async def test_the_status_message_follows_a_job_a_worker_makes_to_the_posted_ad_across_a_bot_restart(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path, worker: Runtime
) -> None:
    emu = discord_emulator
    video: ScriptedVideo = worker.providers.video  # type: ignore[assignment]
    video.latency = {i: 0.6 for i in range(1, 8)}  # long enough for the bot to see the clips generate
    video.gates[3] = asyncio.Event()  # scene 3's clip waits until the bot has been restarted
    async with running_team(emu, tmp_path, discord_errors, runs_jobs=False, JANT_ENGINE="dbos") as team:
        _, board, job_id = await team.makead()
        await team.click(board, "approve", job_id, team.alice)
        status = await team.status_message(job_id)
        await asyncio.wait_for(video.started[3].wait(), 20)  # taken from the queue and made by the worker
        await team.wait_until(
            lambda: 0 < (_overall(embed_text(status)) or 0) < 100, timeout=10, what="progress on the status message"
        )
        bot_images, bot_video = team.images, team.video
    async with running_team(emu, tmp_path, discord_errors, runs_jobs=False, JANT_ENGINE="dbos") as team:
        before = len(status.versions)
        video.gates[3].set()
        await team.wait_until(lambda: "✅ **Done.**" in embed_text(status), timeout=20,
                              what="the status message to reach the finished ad")  # fmt: skip
        result = await emu.wait_for_message(status.channel_id, lambda m: bool(m.attachments), timeout=20)
        assert result.attachments[0].filename == f"jant-ad-{job_id}.mp4"
        job = await team.settled(job_id)
        assert job.ui.delivered == "posted" and job.ui.status_message_id == status.id
        assert len(status.versions) > before + 1  # edited by the restarted bot on the way, not only at the end
        assert not team.images.calls and not team.video.calls
    # The bots made nothing; the worker made every scene, once; its run came from the jobs queue.
    assert not bot_images.calls and not bot_video.calls
    assert dict(video.creates) == {i: 1 for i in range(1, len(job.scenes) + 1)}
    dbos = sqlite3.connect(f"file:{tmp_path / 'data' / 'dbos.sqlite'}?mode=ro", uri=True)
    try:
        [row] = dbos.execute(
            "SELECT status, executor_id, queue_name FROM workflow_status WHERE workflow_uuid = ?", (job_id,)
        ).fetchall()
    finally:
        dbos.close()
    assert row == ("SUCCESS", "w1", "jant-jobs")
    shown = [_overall(embed_text(status, n)) for n in range(len(status.versions))]
    assert any(p is not None and 0 < p < 100 for p in shown), shown  # the way there, not just the start and end


async def test_retry_failed_from_a_bot_that_makes_no_ad_is_made_by_the_worker_as_the_jobs_second_run(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path, worker: Runtime
) -> None:
    emu = discord_emulator
    images: ScriptedImages = worker.providers.images  # type: ignore[assignment]
    images.outcomes[3] = ["nsfw"]
    async with running_team(emu, tmp_path, discord_errors, runs_jobs=False, JANT_ENGINE="dbos") as team:
        _, board, job_id = await team.makead()
        await team.click(board, "approve", job_id, team.alice)
        status = await team.status_message(job_id)
        await team.wait_until(lambda: "Finished without scene 3" in embed_text(status), timeout=20,
                              what="the partial state")  # fmt: skip
        await emu.wait_for_message(status.channel_id, lambda m: bool(m.attachments), timeout=20)
        retry = await team.click(status, "retry", job_id, team.alice)
        assert retry.ephemeral and retry.content.startswith(f"🔁 Re-making scene 3 of job `{job_id}`")
        await team.wait_until(lambda: "✅ **Done.**" in embed_text(status), timeout=20, what="the completed state")
        await team.wait_until(lambda: len([m for m in emu.messages(status.channel_id) if m.attachments]) == 2)
        assert not team.images.calls
    assert images.creates[3] == 2 and all(images.creates[i] == 1 for i in (1, 2, 4))
    dbos = sqlite3.connect(f"file:{tmp_path / 'data' / 'dbos.sqlite'}?mode=ro", uri=True)
    try:
        runs = dbos.execute(
            "SELECT workflow_uuid, status, executor_id FROM workflow_status WHERE name = 'jant.job' ORDER BY created_at"
        ).fetchall()
    finally:
        dbos.close()
    assert runs == [(job_id, "SUCCESS", "w1"), (f"{job_id}~2", "SUCCESS", "w1")]


async def cancel(team: Any, status: Any, job_id: str) -> str | None:
    """Alice presses Cancel and reads the answer. While the bot is still handling her previous click on
    the job (the approval: a loaded host can take a while), it answers BUSY and asks her to try again in
    a moment: she does, until it answers something else."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 30.0
    while True:
        pressed = await team.click(status, "cancel", job_id, team.alice)
        said = pressed.content or (await pressed.wait_followups(1))[0].content
        if said != BUSY or loop.time() >= give_up:
            return said
        await asyncio.sleep(0.2)


async def test_a_bot_that_makes_no_ad_cancels_a_job_waiting_for_a_worker_and_one_a_worker_is_making(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    """The Cancel button of a `--no-worker` bot: a job still in the queue is cancelled there; one a worker
    is making is cancelled by that worker, as its own Cancel would (tests/test_durable_cancel.py has the
    same with real processes and Replicate's emulator)."""
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors, runs_jobs=False, JANT_ENGINE="dbos") as team:
        _, board, waiting = await team.makead()
        await team.click(board, "approve", waiting, team.alice)  # no worker is up: it waits in the queue
        status = await team.status_message(waiting)
        said = await cancel(team, status, waiting)
        assert f"Stopped job `{waiting}`" in (said or ""), said
        assert (await team.job(waiting)).status is JobStatus.CANCELLED

        settings = Settings(JANT_DATA_DIR=tmp_path / "data", JANT_ENGINE="dbos", JANT_WORKER_ID="w1")
        worker = await Runtime.open(settings, scripted_providers(), runs_jobs=True, takes_queued=True)
        try:
            worker.orchestrator.composer = CopyComposer()  # type: ignore[assignment]
            video: ScriptedVideo = worker.providers.video  # type: ignore[assignment]
            video.gates[1] = asyncio.Event()  # scene 1's clip stays in flight until the end of the test
            _, board, made = await team.makead()
            await team.click(board, "approve", made, team.alice)
            await asyncio.wait_for(video.started[1].wait(), 20)  # a worker is making it
            made_status = await team.status_message(made)
            said = await cancel(team, made_status, made)
            assert f"Stopped job `{made}`" in (said or ""), said
            job = await team.job(made)
            assert job.status is JobStatus.CANCELLED and job.scene(1).clip.status.value == "cancelled"
            # The worker cancelled the clip in flight on its provider; the status message says it ended.
            assert video.cancelled == [job.scene(1).clip.prediction_id]
            await team.wait_until(lambda: "⏹️ **Cancelled.**" in embed_text(made_status), timeout=10,
                                  what="the status message to say the job was cancelled")  # fmt: skip
        finally:
            video.gates[1].set()
            await worker.close()
    statuses = await _workflow_statuses(tmp_path)
    assert statuses == {waiting: "CANCELLED", made: "CANCELLED"}
    assert video.creates[1] == 1 and not team.video.calls  # the bot made nothing; nothing made twice


async def _workflow_statuses(tmp_path: Path) -> dict[str, str]:
    def read() -> dict[str, str]:
        dbos = sqlite3.connect(f"file:{tmp_path / 'data' / 'dbos.sqlite'}?mode=ro", uri=True)
        try:
            return dict(dbos.execute("SELECT workflow_uuid, status FROM workflow_status WHERE name = 'jant.job'"))
        finally:
            dbos.close()

    return await asyncio.to_thread(read)

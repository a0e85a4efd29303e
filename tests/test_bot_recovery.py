"""What a restarted or long-running bot does on its own: it posts a finished ad that never reached
Discord, keeps a waiting job's status message alive with a heartbeat, and sweeps old media at start
and then daily."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline import retention
from pipeline.models import AdRequest, Job, JobStatus, utcnow
from pipeline.store import JobStore
from tests.bot_harness import embed_text, eventually, running_team
from tests.emulators.discord_server import DiscordEmulator

pytest_plugins = ["tests.conftest_discord"]  # the discord_emulator and discord_errors fixtures


@pytest.fixture(params=["local", "dbos"])
def engine(request: pytest.FixtureRequest) -> dict[str, str]:
    """The restart stories hold on both engines: the bot's own resume (local) and DBOS's recovery of
    the workflows left pending, launched on the bot's loop (dbos)."""
    if request.param == "dbos":
        pytest.importorskip("dbos", reason="the durable extra (`pip install 'jant[durable]'`) is not installed")
    return {"JANT_ENGINE": request.param}


async def test_an_ad_that_finished_but_was_not_posted_before_a_crash_is_posted_on_start(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path, engine: dict[str, str]
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors, **engine) as team:
        _, board, job_id = await team.makead()

        async def crash_before_discord(job: Job) -> None:  # the process dies right after the job ended
            return None

        team.bot.status_tracker._finish = crash_before_discord  # type: ignore[method-assign]
        await team.click(board, "approve", job_id, team.alice)
        status = await team.status_message(job_id)
        job = await eventually(lambda: ended(team, job_id), what="the job to end")
        assert job.status is JobStatus.COMPLETED and job.ui.settled is None and job.ui.delivered is None
    assert not [m for m in emu.messages(status.channel_id) if m.attachments]  # the ad never reached Discord

    async with running_team(emu, tmp_path, discord_errors, **engine) as team:
        result = await emu.wait_for_message(status.channel_id, lambda m: bool(m.attachments))
        assert result.attachments[0].filename == f"jant-ad-{job_id}.mp4"
        assert "✅ **Done.**" in embed_text(status)  # the final state, on the original message
        job = await team.settled(job_id, what="the job to be settled")
        assert job.ui.delivered == "posted" and job.ui.result_message_id == result.id

    async with running_team(emu, tmp_path, discord_errors, **engine) as team:  # and only once
        await team.emu.settle()
        assert len([m for m in emu.messages(status.channel_id) if m.attachments]) == 1
        assert await team.bot.status_tracker.settle_unfinished() == 0


async def test_a_status_message_deleted_while_the_bot_was_down_is_posted_again_after_the_restart(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path, engine: dict[str, str]
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors, **engine) as team:
        team.video.gates[2] = asyncio.Event()  # never opened in this process
        _, job_id, first = await team.start_generating(until_clip=2)
    await emu.delete_message(first.channel_id, first.id)  # a moderator tidies up while the bot is down
    async with running_team(emu, tmp_path, discord_errors, **engine) as team:
        again = await team.status_message(job_id)
        assert again.id != first.id and again.channel_id == first.channel_id  # in the job's thread
        await team.wait_until(lambda: "✅ **Done.**" in embed_text(again), what="the resumed job to finish")
        await emu.wait_for_message(again.channel_id, lambda m: bool(m.attachments))
        assert team.video.creates[2] == 0  # resumed by its stored prediction id
        assert (await team.job(job_id)).ui.status_message_id == again.id
        # Resumed once, by the engine's own means: the bot's `resume_all` (local) or DBOS's recovery.
        resumed = [e["detail"] for e in await team.bot.runtime.store.events(job_id) if e["kind"] == "resumed"]
        assert resumed == (["dbos"] if engine["JANT_ENGINE"] == "dbos" else [None])


async def test_a_heartbeat_moves_elapsed_time_while_nothing_else_happens(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors, JANT_STATUS_HEARTBEAT_S=0.25) as team:
        team.video.gates[1] = asyncio.Event()  # scene 1's clip waits: no progress event for a while
        _, _, status = await team.start_generating(until_clip=1)
        await team.wait_until(lambda: "Elapsed 2 s" in embed_text(status), timeout=5, what="elapsed time to move")
        assert "Elapsed 1 s" in "".join(embed_text(status, i) for i in range(len(status.versions)))
        team.video.gates[1].set()
        await team.wait_until(lambda: "✅ **Done.**" in embed_text(status), what="the final state")


async def test_media_older_than_the_retention_are_swept_when_the_bot_starts(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    store = await JobStore.open(data / "jant.db")
    old = await store.create(Job(request=AdRequest(product="An old lamp")))
    await store.update(old, status=JobStatus.COMPLETED, finished_at=utcnow() - timedelta(days=30),
                       final_path=str(old.directory(data) / "final.mp4"))  # fmt: skip
    old.directory(data).mkdir(parents=True)
    (old.directory(data) / "final.mp4").write_bytes(b"mp4")
    await store.close()

    async with running_team(discord_emulator, tmp_path, discord_errors, JANT_RETENTION_DAYS=14) as team:
        await eventually(lambda: purged(team.bot.runtime.store, old.id), what="the old media to be swept")
        assert not old.directory(data).exists()
        kept = await team.bot.runtime.store.get(old.id)
        assert kept is not None and kept.status is JobStatus.COMPLETED  # the row stays


async def test_the_sweep_runs_now_then_daily_and_survives_a_failed_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    sweeps: list[int] = []
    waits: list[float] = []

    async def sweep(store: object, data_dir: Path, days: int) -> list[str]:
        sweeps.append(days)
        if len(sweeps) == 1:
            raise OSError("disk hiccup")
        return []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            raise asyncio.CancelledError

    monkeypatch.setattr(retention, "purge_old_media", sweep)
    with pytest.raises(asyncio.CancelledError):
        await retention.purge_periodically(None, Path("."), 14, sleep=sleep)  # type: ignore[arg-type]
    assert sweeps == [14, 14, 14] and waits == [86400.0] * 3
    await retention.purge_periodically(None, Path("."), 0, sleep=sleep)  # type: ignore[arg-type]
    assert len(sweeps) == 3  # 0 days keeps media forever: no sweep at all


async def ended(team, job_id: str) -> Job | None:  # type: ignore[no-untyped-def]
    job = await team.job(job_id)
    return job if job.status.is_terminal else None


async def purged(store: JobStore, job_id: str) -> bool:
    return any(e["kind"] == "media_purged" for e in await store.events(job_id))

"""An unexpected error while posting a finished ad: the ad stays made (it is on disk and `/job id:`
posts it), the failure is recorded with a reason a user can read, logged once under an id, and said
on the status message and in the channel — nobody is left waiting for an upload that never comes."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest

from pipeline.models import Job, JobStatus
from tests.bot_harness import embed_text, running_team
from tests.emulators.discord_server import DiscordEmulator

pytest_plugins = ["tests.conftest_discord"]

INCIDENT = re.compile(r"an unexpected error \(logged as (ERR-[0-9A-F]{6})\)")


@pytest.mark.parametrize("error", [RuntimeError, KeyError, ZeroDivisionError], ids=lambda e: e.__name__)
async def test_an_upload_that_crashes_keeps_the_ad_and_says_so(
    discord_emulator: DiscordEmulator,
    discord_errors,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    error: type[Exception],
) -> None:
    caplog.set_level(logging.WARNING)
    discord_errors.expect(r"posting the finished ad: unexpected error ERR-")  # the one error this test causes
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:

        async def crash(job: Job, channel_id: int) -> None:
            raise error("injected")

        team.bot.status_tracker.delivery.deliver = crash  # type: ignore[method-assign]
        _, board, job_id = await team.makead()
        await team.click(board, "approve", job_id, team.alice)
        status = await team.status_message(job_id)

        job = await team.settled(job_id, what="the job's Discord side to finish")
        assert job.status is JobStatus.COMPLETED and job.final_path
        assert await asyncio.to_thread(Path(job.final_path).is_file)  # the ad is kept
        assert job.ui.delivered == "failed"
        [incident] = INCIDENT.findall(job.ui.delivery_error)
        logged = [r for r in caplog.records if incident in r.getMessage()]
        assert len(logged) == 1 and logged[0].exc_info is not None and logged[0].exc_info[0] is error
        notice = await emu.wait_for_message(status.channel_id, lambda m: incident in (m.content or ""))
        assert f"/job id:{job_id}" in notice.content and not notice.attachments
        await team.wait_until(lambda: incident in embed_text(status), what="the status message to say so")
        assert "posted below" not in embed_text(status)
        events = await team.bot.runtime.store.events(job_id)
        assert [e["detail"] for e in events if e["kind"] == "delivery_failed"] == [job.ui.delivery_error]

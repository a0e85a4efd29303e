"""The Formats button on a finished ad, through the Discord emulator with the real providers driven
against the OpenAI and Replicate emulators: a teammate who has seen the 9:16 ad picks its other shapes
and gets them posted in the ad's thread at their real sizes, without a single new prediction; the
button refuses clearly (who may press, already cutting, a re-render running, every shape made, media
deleted) and still works after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path

import pytest

from pipeline import final_versions
from pipeline.action_rules import (
    FORMATS_ALL_MADE,
    FORMATS_BUSY,
    FORMATS_LOCKED,
    FORMATS_MEDIA_GONE,
    RERENDER_WHILE_FORMATS,
)
from pipeline.composer import Composer
from pipeline.events import EventKind, ProgressEvent
from pipeline.ffmpeg import probe
from pipeline.models import JobStatus
from tests.bot_harness import Team, running_team
from tests.emulators.discord_server import DiscordEmulator, StoredMessage
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import FakeReplicate
from tests.service_fakes import service_env

pytest_plugins = ["tests.conftest_discord"]

REFUSED = (
    "Only <@{alice}> (who asked for it), members with the **Ad approver** role or members with Manage Server "
    "can reformat this ad."
)
PICK = (
    "Which shapes of job `{job_id}` do you want? They are cut from the same footage and soundtrack: nothing "
    "new is generated or charged."
)
STARTED = (
    "🎞️ Cutting job `{job_id}` into {keys} from the same footage and soundtrack: nothing new is generated or "
    "charged. They are posted here when they are done."
)
WAIT_S = 120.0
# The master's size: a small 9:16 keeps the test quick (the shapes' sizes follow the master's width, as
# at 720 or 1080: tests/test_cli.py checks the dev profile's 16:9 at 1280x720); 16:9 is 640x360 here.
W, H = 360, 640


def with_files(team: Team, channel_id: int, suffix: str) -> list[StoredMessage]:
    return [m for m in team.emu.messages(channel_id) if any(a.filename.endswith(suffix) for a in m.attachments)]


async def posted_size(team: Team, message: StoredMessage, suffix: str, dest: Path) -> tuple[int, int, float]:
    """Width, height and length of the attachment of `message` whose name ends with `suffix`."""
    [attachment] = [a for a in message.attachments if a.filename.endswith(suffix)]
    await asyncio.to_thread(dest.write_bytes, attachment.data)
    info = await probe(dest)
    return info.width or 0, info.height or 0, info.duration_s or 0.0


@pytest.mark.timeout(400)  # a whole ad through the emulators, then three shapes with real ffmpeg
async def test_formats_button_posts_the_picked_shapes_free_refuses_clearly_and_survives_a_restart(
    discord_emulator: DiscordEmulator,
    discord_errors,  # type: ignore[no-untyped-def]
    fakes: tuple[FakeOpenAI, FakeReplicate],
    tmp_path: Path,
) -> None:
    emu, (oai, rep) = discord_emulator, fakes
    env = service_env(oai, rep, tmp_path / "data")
    directory: Path
    async with running_team(emu, tmp_path, discord_errors, real_providers=True, composer=Composer(W, H),
                            **env) as team:  # fmt: skip
        _, board, job_id = await team.makead(product="Lumen desk lamp")
        await team.click(board, "approve", job_id, team.alice)
        status = await team.status_message(job_id)
        job = await team.settled(job_id, timeout=WAIT_S, what="the ad to be posted")
        assert job.status is JobStatus.COMPLETED and job.ui.delivered == "posted"
        thread = status.channel_id
        [result] = with_files(team, thread, f"jant-ad-{job_id}.mp4")
        assert f"jant:formats:{job_id}" in result.custom_ids
        directory = Path(job.final_path or "").parent
        _, _, master_s = await posted_size(team, result, f"{job_id}.mp4", tmp_path / "master.mp4")
        paid = rep.counts.total_creates
        assert paid > 0

        refused = await team.click(result, "formats", job_id, team.bob)
        assert refused.ephemeral and refused.content == REFUSED.format(alice=team.alice.id)

        opened = await team.click(result, "formats", job_id, team.alice)
        assert opened.ephemeral and opened.content == PICK.format(job_id=job_id)
        assert opened.original is not None
        [menu] = [c for c in opened.original.iter_components() if c.get("type") == 3]
        assert [o["value"] for o in menu["options"]] == ["4:5", "1:1", "16:9"]
        assert (menu["min_values"], menu["max_values"]) == (1, 3)
        assert f"jant:formatsall:{job_id}" in opened.original.custom_ids

        # The render is held at its first step, so the refusals below meet it running.
        orch = team.bot.runtime.orchestrator
        reached, release = asyncio.Event(), asyncio.Event()

        def hold(event: ProgressEvent) -> Awaitable[None] | None:
            if event.job_id != job_id or event.kind is not EventKind.FORMATTING or release.is_set():
                return None
            if not (event.detail or "").startswith("cutting"):
                return None  # the first step (the sound) goes by: the presser's note shows it
            reached.set()
            return release.wait()  # type: ignore[return-value]

        unsubscribe = orch.bus.subscribe(hold)
        picked = await emu.select(opened.original.id, f"jant:formatspick:{job_id}", ["16:9", "4:5"], team.alice.id)
        await picked.wait_response()
        assert picked.ephemeral and picked.content == STARTED.format(job_id=job_id, keys="4:5 and 16:9")
        await asyncio.wait_for(reached.wait(), 30)
        progress = STARTED.format(job_id=job_id, keys="4:5 and 16:9") + "\n⏳ Now mixing the sound…"
        await team.wait_until(lambda: picked.original is not None and picked.original.content == progress,
                              what="the presser's note to show the step")  # fmt: skip
        busy = await team.click(result, "formats", job_id, team.carol)
        assert busy.ephemeral and busy.content == FORMATS_BUSY.format(job_id=job_id)
        rerender = await team.click(result, "rerender", job_id, team.alice)
        assert rerender.content == RERENDER_WHILE_FORMATS.format(job_id=job_id)
        release.set()
        unsubscribe()

        [shapes] = await team.wait_until(lambda: with_files(team, thread, "-16x9.mp4"), timeout=WAIT_S,
                                         what="the 4:5 and 16:9 versions")  # fmt: skip
        assert sorted(a.filename for a in shapes.attachments) == [f"jant-ad-{job_id}-16x9.mp4",
                                                                   f"jant-ad-{job_id}-4x5.mp4"]  # fmt: skip
        assert (shapes.content or "").startswith(
            f"🎞️ **Lumen: light that knows the time** · job `{job_id}` · 4:5 and 16:9"
        )
        for suffix, size in (("-4x5.mp4", (360, 450)), ("-16x9.mp4", (640, 360))):
            width, height, seconds = await posted_size(team, shapes, suffix, tmp_path / f"shape{suffix}")
            assert (width, height) == size, suffix
            assert abs(seconds - master_s) <= 0.15, suffix  # the whole ad, not a part of it
        done = f"✅ Job `{job_id}` in 4:5 and 16:9: posted below."
        await team.wait_until(lambda: picked.original is not None and picked.original.content == done,
                              timeout=WAIT_S, what="the note to say where they are")  # fmt: skip
        assert rep.counts.total_creates == paid  # not one new prediction: same clips, same soundtrack
        assert (await team.job(job_id)).request.formats == ("9:16", "4:5", "16:9")

        # Another jant process (a `jant rerender` on the host) holds the job's files: refused, nothing runs.
        fd = final_versions.take_render_lock(directory)
        assert fd is not None
        try:
            locked = await team.click(result, "formats", job_id, team.alice)
        finally:
            final_versions.release_render_lock(fd)
        assert locked.ephemeral and locked.content == "⚠️ " + FORMATS_LOCKED.format(job_id=job_id)

    # A new process: nothing in memory knows the message; its Formats button carries the job id. One
    # shape is left, so the press makes it straight away.
    async with running_team(emu, tmp_path, discord_errors, real_providers=True, composer=Composer(W, H),
                            **env) as team:  # fmt: skip
        pressed = await team.click(result, "formats", job_id, team.carol)
        assert pressed.ephemeral and pressed.content == STARTED.format(job_id=job_id, keys="1:1")
        [square] = await team.wait_until(lambda: with_files(team, thread, "-1x1.mp4"), timeout=WAIT_S,
                                         what="the 1:1 version")  # fmt: skip
        assert (await posted_size(team, square, "-1x1.mp4", tmp_path / "square.mp4"))[:2] == (360, 360)
        assert rep.counts.total_creates == paid

        every = await team.click(result, "formats", job_id, team.alice)
        assert every.content == FORMATS_ALL_MADE.format(job_id=job_id, made="4:5, 1:1, 16:9")

        # Retention deleted the footage (and so the shapes): said, and nothing is posted.
        for path in [*directory.glob("clip-*.mp4"), directory / "final-1x1.mp4"]:
            path.unlink()
        before = len([m for m in emu.messages(thread) if m.attachments])
        gone = await team.click(result, "formats", job_id, team.alice)
        assert gone.ephemeral and gone.content == FORMATS_MEDIA_GONE.format(job_id=job_id)
        assert len([m for m in emu.messages(thread) if m.attachments]) == before

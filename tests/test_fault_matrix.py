"""The fault matrix: each fault a team meets in real life, injected into the emulators while the real
bot (discord.py) runs a real-provider job (the `openai` and `replicate` clients) end to end.

Every row asserts the same three promises, then its own story:
- the job ends completed, or with a specific stored reason;
- no job is lost: its row exists and its status is terminal;
- no duplicate paid prediction: every prediction Replicate created is stored once, and no stage has
  more stored predictions than attempts it recorded.

`pytest tests/test_fault_matrix.py` prints the matrix (row → outcome) at the end of the run.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pipeline.models import Job, JobStatus
from tests.bot_harness import Team, embed_text, eventually, job_id_of, running_team
from tests.emulators.discord_server import DiscordEmulator, StoredMessage
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import SVD_VERSION, FakeReplicate
from tests.scripted_providers import CopyComposer
from tests.service_fakes import SVD, service_env

pytest_plugins = ["tests.conftest_discord"]  # the discord_emulator and discord_errors fixtures

PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm, dims at night and charges your phone"
STATUS_EDIT = r"^/channels/\d+/messages/\d+$"


@dataclass
class World:
    team: Team
    oai: FakeOpenAI
    rep: FakeReplicate
    job_id: str = ""
    status: StoredMessage | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def emu(self) -> DiscordEmulator:
        return self.team.emu


Step = Callable[[World], Awaitable[None] | None]


@dataclass(frozen=True)
class Row:
    service: str
    fault: str
    expect: JobStatus
    reason: str | None = None  # found in the stored reason: the job's error or a scene's
    before: Step | None = None  # armed before /makead
    during: Step | None = None  # injected while the clips are generating
    check: Step | None = None  # the row's own story, once the job has settled
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.service}: {self.fault}"


# -- the rows' own stories ---------------------------------------------------------------------------


def _creates(rep: FakeReplicate) -> list[Any]:
    """Every create: by version (seeds, clips) and by official model's name (voice, music)."""
    by_name = re.compile(r"/v1/models/[^/]+/[^/]+/predictions")
    return [
        r for r in rep.requests
        if r.method == "POST" and (r.path == "/v1/predictions" or by_name.fullmatch(r.path))
    ]  # fmt: skip


async def _throttled_create_retried(w: World) -> None:
    statuses = [r.status for r in _creates(w.rep)]
    assert statuses[0] in (429, 500) and statuses.count(statuses[0]) == 1, statuses
    job = await w.team.job(w.job_id)
    attempts = sorted(st.attempt for st in job.all_stages())  # seeds, clips, voices and the music bed
    assert attempts == [1] * (len(attempts) - 1) + [2]  # the refused create cost an attempt, no prediction
    w.notes.append(f"create answered {statuses[0]} once; that stage succeeded at attempt 2")


async def _poll_errors_absorbed(w: World) -> None:
    errors = [r for r in w.rep.requests if r.method == "GET" and r.status == 500]
    assert len(errors) == 3
    job = await w.team.job(w.job_id)
    assert all(st.attempt == 1 for s in job.scenes for st in (s.seed, s.clip))  # no attempt spent on a poll
    w.notes.append("3 polls answered 500; absorbed by the poll loop, no attempt spent")


async def _stuck_clip_cancelled(w: World) -> None:
    cancels = [r.path.split("/")[3] for r in w.rep.requests if r.path.endswith("/cancel")]
    assert len(cancels) == 1 and w.rep.prediction(cancels[0])["status"] == "canceled"
    stored = {p["prediction_id"]: p["status"] for p in await w.team.bot.runtime.store.predictions(w.job_id)}
    assert stored[cancels[0]] == "failed"
    job = await w.team.job(w.job_id)
    assert sorted(s.clip.attempt for s in job.scenes) == [1, 1, 1, 1, 2]
    w.notes.append("the stuck clip was cancelled at its 2 s deadline and made again (attempt 2)")


async def _unsafe_scene_not_retried(w: World) -> None:
    job = await w.team.job(w.job_id)
    assert job.scene(2).seed.attempt == 1 and job.scene(2).clip.status.value == "failed"
    assert "Finished without scene 2" in embed_text(w.status) and w.status.button_labels == ["Retry failed"]
    posted = await w.emu.wait_for_message(w.status.channel_id, lambda m: bool(m.attachments))
    assert "Scene 2 is missing" in posted.content
    w.notes.append("scene 2 only, no retry; amber status with Retry failed; the 4-scene ad posted")


async def _rerun_after(outcome: str, w: World) -> None:
    job = await w.team.job(w.job_id)
    assert sorted(s.clip.attempt for s in job.scenes) == [1, 1, 1, 1, 2]
    stored = await w.team.bot.runtime.store.predictions(w.job_id)
    assert sorted(p["status"] for p in stored if p["stage"] == "clip").count("failed") == 1
    w.notes.append(f"{outcome}: that clip made again once (attempt 2)")


async def _planning_failed_publicly(w: World) -> None:
    [reply] = w.team.bot_messages()
    assert reply.content.startswith(f"⚠️ I couldn't write a storyboard (job `{w.job_id}`): ")
    assert not reply.custom_ids and w.rep.counts.total_creates == 0
    w.notes.append(f"{len(w.oai.chat_requests)} chat request(s); the channel is told why, nothing was paid")


async def _chat_requests(n: int, w: World) -> None:
    assert len(w.oai.chat_requests) == n
    w.notes.append(f"{n} chat requests")


async def _edits_rate_limited(w: World) -> None:
    assert w.emu.count("PATCH", STATUS_EDIT, status=429) == 3
    w.notes.append("3 edits answered 429; waited out, the final state written")


async def _delete_status(w: World) -> None:
    assert w.status is not None
    await w.emu.delete_message(w.status.channel_id, w.status.id)


async def _status_reposted(w: World) -> None:
    job = await w.team.job(w.job_id)
    again = w.emu.message(job.ui.status_message_id)
    assert again.id != w.status.id and again.channel_id == w.status.channel_id
    assert "✅ **Done.**" in embed_text(again)
    w.notes.append("posted again in the same thread, new id remembered")


async def _delete_thread(w: World) -> None:
    assert w.status is not None
    await w.emu.delete_channel(w.status.channel_id)


async def _moved_to_channel(w: World) -> None:
    job = await w.team.job(w.job_id)
    moved = w.emu.message(job.ui.status_message_id)
    assert moved.channel_id == w.team.channel_id and "✅ **Done.**" in embed_text(moved)
    result = w.emu.message(job.ui.result_message_id)
    assert result.channel_id == w.team.channel_id and result.attachments
    w.notes.append("status and result moved to the channel")


async def _delete_thread_and_channel(w: World) -> None:
    assert w.status is not None
    await w.emu.delete_channel(w.status.channel_id)
    await w.emu.delete_channel(w.team.channel_id)


async def _kept_for_job(w: World) -> None:
    job = await w.team.job(w.job_id)
    assert job.ui.delivered == "nowhere" and job.ui.status_unavailable is not None
    emu, team = w.emu, w.team
    elsewhere = emu.add_text_channel(team.guild_id, "ads")
    await emu.settle()
    rec = await emu.slash_command(team.guild_id, elsewhere.id, team.alice.id, "job", {"id": w.job_id})
    [posted] = await rec.wait_followups(1, timeout=10)
    assert posted.attachments[0].filename == f"jant-ad-{w.job_id}.mp4" and "✅ **Done.**" in embed_text(posted)
    w.notes.append("nowhere to post: kept, and /job posted it in another channel")


def _deny_attach(w: World) -> None:
    w.emu.deny_bot(w.team.channel_id, "ATTACH_FILES")


async def _told_to_grant_attach(w: World) -> None:
    job = await w.team.job(w.job_id)
    assert job.ui.delivered == "not_permitted"
    note = await w.emu.wait_for_message(w.status.channel_id, lambda m: "may not attach files" in m.content)
    assert note.content == (
        f"⚠️ The ad for job `{w.job_id}` is ready, but I may not attach files here. Give me **Attach Files**, "
        f"then re-post it with `/job id:{w.job_id}`."
    )
    w.notes.append("told in the thread to grant Attach Files and use /job")


def _deny_threads(w: World) -> None:
    w.emu.deny_bot(w.team.channel_id, "CREATE_PUBLIC_THREADS")


async def _told_no_thread(w: World) -> None:
    assert w.status.channel_id == w.team.channel_id and w.emu.threads == []
    [approve] = [i for i in w.emu.interactions if i.custom_id == f"jant:approve:{w.job_id}"]
    [note] = approve.followups
    assert note.ephemeral and note.content == (
        "ℹ️ Progress is posted in this channel, not in a thread (I may not create public threads or talk in "
        "them here). Give me **Create Public Threads** for a thread per ad."
    )
    w.notes.append("no thread: progress in the channel, the requester told why")


async def _drop_gateway(w: World) -> None:
    await w.emu.drop_gateway()


async def _still_answers(w: World) -> None:
    emu, team = w.emu, w.team
    assert emu.resume_count >= 1
    rec = await emu.slash_command(team.guild_id, team.channel_id, team.alice.id, "jobs")
    await rec.wait_response()
    assert rec.ephemeral and f"`{w.job_id}` ✅ done" in embed_text(rec.original)
    w.notes.append(f"resumed the session ({emu.resume_count}x); /jobs answered afterwards")


def _rate_limit_edits(w: World) -> None:
    w.emu.fail_next("PATCH", STATUS_EDIT, status=429, retry_after=0.3, times=3)


def _nsfw_scene_2(w: World) -> None:
    w.rep.script_by(lambda model, version, inp: "fail_nsfw" if "SCENE-2 " in inp.get("prompt", "") else None)


ROWS = [
    Row("Replicate", "429 on create", JobStatus.COMPLETED, before=lambda w: w.rep.fail_create(429, retry_after=0.1),
        check=_throttled_create_retried),
    Row("Replicate", "500 on create", JobStatus.COMPLETED, before=lambda w: w.rep.fail_create(500),
        check=_throttled_create_retried),
    Row("Replicate", "500 on poll", JobStatus.COMPLETED, before=lambda w: w.rep.fail_get(500, times=3),
        check=_poll_errors_absorbed),
    Row("Replicate", "timeout (clip past its deadline)", JobStatus.COMPLETED,
        before=lambda w: w.rep.script(SVD_VERSION, "never"), check=_stuck_clip_cancelled,
        settings={"JANT_CLIP_DEADLINE_S": 2}),
    Row("Replicate", "NSFW seed", JobStatus.PARTIAL, reason="safety checker rejected this scene",
        before=_nsfw_scene_2, check=_unsafe_scene_not_retried),
    Row("Replicate", "aborted prediction", JobStatus.COMPLETED, before=lambda w: w.rep.script(SVD_VERSION, "aborted"),
        check=lambda w: _rerun_after("aborted", w)),
    Row("Replicate", "expired output URL", JobStatus.COMPLETED,
        before=lambda w: w.rep.script(SVD_VERSION, "expired_output"), check=lambda w: _rerun_after("404 output", w)),
    Row("OpenAI", "429 once", JobStatus.COMPLETED, before=lambda w: w.oai.fail(429, retry_after=0.05),
        check=lambda w: _chat_requests(2, w)),
    Row("OpenAI", "429 past the client's retries", JobStatus.FAILED, reason="OpenAI is rate limiting this key",
        before=lambda w: w.oai.fail(429, retry_after=0.05, times=3), check=_planning_failed_publicly),
    Row("OpenAI", "refusal", JobStatus.FAILED, reason="declined to write this ad: I'm sorry",
        before=lambda w: w.oai.reply_refusal(), check=_planning_failed_publicly),
    Row("OpenAI", "invalid JSON", JobStatus.COMPLETED, before=lambda w: w.oai.reply_invalid_json(),
        check=lambda w: _chat_requests(2, w)),
    Row("OpenAI", "invalid JSON twice", JobStatus.FAILED, reason="broke a rule twice: the answer was not valid JSON",
        before=lambda w: w.oai.reply_invalid_json().reply_invalid_json(), check=_planning_failed_publicly),
    Row("Discord", "429 on status edits", JobStatus.COMPLETED, during=_rate_limit_edits, check=_edits_rate_limited),
    Row("Discord", "status message deleted", JobStatus.COMPLETED, during=_delete_status, check=_status_reposted),
    Row("Discord", "thread deleted", JobStatus.COMPLETED, during=_delete_thread, check=_moved_to_channel),
    Row("Discord", "thread and channel deleted", JobStatus.COMPLETED, during=_delete_thread_and_channel,
        check=_kept_for_job),
    Row("Discord", "missing permission: Attach Files", JobStatus.COMPLETED, before=_deny_attach,
        check=_told_to_grant_attach),
    Row("Discord", "missing permission: Create Public Threads", JobStatus.COMPLETED, before=_deny_threads,
        check=_told_no_thread),
    Row("Discord", "gateway drop", JobStatus.COMPLETED, during=_drop_gateway, check=_still_answers),
]  # fmt: skip


# -- the harness ----------------------------------------------------------------------------------------


async def settled(team: Team, job_id: str) -> Job:
    """The job once it has ended and its Discord side is done (final edit, result posted or kept)."""

    async def done() -> Job | None:
        job = await team.bot.runtime.store.get(job_id)
        if job is None or not job.status.is_terminal:
            return None
        return job if job.ui.settled or not job.ui.status_message_id else None

    return await eventually(done, what=f"job {job_id} to settle")


def clips_generating(rep: FakeReplicate) -> bool:
    return any(p.model.ref == SVD and p.status == "processing" for p in rep.predictions.values())


def stored_reasons(job: Job) -> str:
    return " | ".join(r for r in [job.error, *(s.error for s in job.scenes)] if r)


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
async def test_a_fault_ends_the_job_cleanly_with_nothing_lost_or_paid_twice(
    row: Row,
    fakes: tuple[FakeOpenAI, FakeReplicate],
    discord_emulator: DiscordEmulator,
    discord_errors,
    tmp_path: Path,
    record_property,
) -> None:
    oai, rep = fakes
    emu = discord_emulator
    env = {**service_env(oai, rep, tmp_path / "data"), "JANT_STATUS_HEARTBEAT_S": 0, **row.settings}
    async with running_team(emu, tmp_path, discord_errors, real_providers=True, composer=CopyComposer(), **env) as team:
        w = World(team, oai, rep)
        if row.before:
            await _call(row.before, w)
        if row.during:
            rep.set_latency(SVD, processing=10.0)  # ≈1 s per clip (time_factor 0.1): room to strike mid-job
        rec = await emu.slash_command(team.guild_id, team.channel_id, team.alice.id, "makead",
                                      {"product": PRODUCT, "mood": "tech"})  # fmt: skip
        [first] = await rec.wait_followups(1, timeout=15)
        [job] = await team.bot.runtime.store.list(limit=1)
        w.job_id = job.id
        if first.custom_ids:
            assert job_id_of(first) == job.id
            await team.click(first, "approve", job.id, team.alice)
            w.status = await team.status_message(job.id)
            if row.during:
                await emu.wait_for(lambda: clips_generating(rep), description="clips generating")
                await _call(row.during, w)
        job = await settled(team, job.id)

        # No job lost: its row is there and it ended; completed, or with the specific reason stored.
        assert job.status.is_terminal
        assert job.status is row.expect, f"{job.status}: {stored_reasons(job)}"
        if row.reason:
            assert row.reason in stored_reasons(job), stored_reasons(job)
        if job.status is JobStatus.COMPLETED and w.status is not None and job.ui.status_unavailable is None:
            final = w.emu.message(job.ui.status_message_id)
            assert "✅ **Done.**" in embed_text(final)
        # No duplicate paid prediction.
        stored = await team.bot.runtime.store.predictions(job.id)
        made = [r for r in _creates(rep) if r.status == 201]
        assert {p["prediction_id"] for p in stored} == set(rep.predictions)
        assert len(stored) == len(rep.predictions) == len(made) == rep.counts.total_creates
        for scene in job.scenes:
            for stage in (scene.seed, scene.clip):
                paid = [p for p in stored if (p["scene_index"], p["stage"]) == (scene.index, stage.stage.value)]
                assert len(paid) <= stage.attempt, (scene.index, stage.stage, len(paid), stage.attempt)
        if row.check:
            await _call(row.check, w)

    # Shortened at a word boundary: the summary table is read by people, a cut word reads as a typo.
    reason = (
        f" — {textwrap.shorten(stored_reasons(job), 110, placeholder=' …')}"
        if job.status is not JobStatus.COMPLETED
        else ""
    )
    # A report property, so tests/conftest.py prints the matrix whichever process ran the row.
    outcome = f"{job.status.value}{reason} · creates {len(made)} = stored {len(stored)} · " + "; ".join(w.notes)
    record_property("fault_matrix", (row.name, outcome))


async def _call(step: Step, w: World) -> None:
    result = step(w)
    if asyncio.iscoroutine(result):
        await result

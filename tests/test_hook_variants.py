"""Hook A/B: `hooks: 2|3` asks the storyboard writer for alternative openings; each costs exactly one
more seed and one more clip (and a line), the rest of the ad is shared, and the result is one ad per
hook: final.mp4 (hook A, also final-hook-A.mp4), final-hook-B.mp4, final-hook-C.mp4.

Through the real `openai` and `replicate` clients against the emulators: the schema the writer is
given, the creates Replicate counts, and what the files show and sound like.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageStat
from pydantic import ValidationError

from bot.status_view import render_status
from pipeline.brand import BrandKit
from pipeline.config import Settings
from pipeline.cost_estimate import estimate_job_cost, stages_cost_usd
from pipeline.ffmpeg import probe, run_ffmpeg
from pipeline.hook_variants import variant_timing
from pipeline.models import AdRequest, Job, JobStatus, SceneTiming, StageStatus, Storyboard, fresh_scene_states
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.runtime import Runtime
from pipeline.scene_timing import MAX_SPEED
from tests.bot_harness import running_team
from tests.emulators.discord_server import DiscordEmulator
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import SDXL_VERSION, FakeReplicate
from tests.service_fakes import SDXL, SVD, draft, open_small_runtime, service_env
from tests.test_captions import frame_at

pytest_plugins = ["tests.conftest_discord"]
PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm and charges your phone"


def _hook(letter: str, line: str) -> dict[str, Any]:
    return {"beat": "hook", "duration_seconds": 4, "description": f"Hook {letter}",
            "visual_prompt": f"HOOK-{letter} Lumen glowing in a dark room", "on_screen_text": f"Hook {letter}!",
            "voiceover": line, "shows_product": False}  # fmt: skip


def answer(body: dict[str, Any], alternatives: int | None = None) -> dict[str, Any]:
    """The fake GPT-4o's storyboard: with alternative hooks when (and only when) the schema asks."""
    schema = body["response_format"]["json_schema"]["schema"]
    reply = draft()
    if "alternative_hooks" in schema["properties"]:
        lines = ["Your desk is lying to you.", "What if light knew the time?"]
        reply["alternative_hooks"] = [_hook(L, lines[i]) for i, L in enumerate("BC")][:alternatives]
    return reply


@pytest.fixture
async def runtime(fakes: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path) -> AsyncIterator[Runtime]:
    oai, _ = fakes
    oai.responder = answer
    # The hooks' frames and sound are compared with each other: a small 9:16 shows it as well.
    rt = await open_small_runtime(Settings(**service_env(*fakes, tmp_path / "data"), JANT_ENV="dev"))
    yield rt
    await rt.close()


# -- the request, the storyboard, the timing and the price: pure rules --------------------------------


def test_hooks_must_be_one_two_or_three() -> None:
    assert AdRequest(product="A lamp").hooks == 1 and AdRequest(product="A lamp", hooks="3").hooks == 3
    for bad in (0, 4, "two"):
        with pytest.raises(ValidationError) as exc:
            AdRequest(product="A lamp", hooks=bad)
        assert "hooks must be" in str(exc.value)


def test_an_alternative_hook_always_lasts_as_long_as_scene_one() -> None:
    data = {"title": "t", "scenes": [
        {"index": i, "beat": b, "duration": d, "description": "d", "visual_prompt": "p"}
        for i, (b, d) in enumerate(zip(["hook", "intro", "feature", "feature", "cta"], [4, 6, 7, 7, 6], strict=True), 1)
    ]}  # fmt: skip
    alt = {"index": 1, "beat": "hook", "duration": 6, "description": "d", "visual_prompt": "p"}
    board = Storyboard.model_validate({**data, "alt_hooks": [alt]})
    assert board.alt_hooks[0].duration == 4.0  # its slot is scene 1's
    with pytest.raises(ValidationError, match="alternative hook B must be a hook scene"):
        Storyboard.model_validate({**data, "alt_hooks": [{**alt, "beat": "feature"}]})
    with pytest.raises(ValidationError, match="at most 2 alternative hooks"):
        Storyboard.model_validate({**data, "alt_hooks": [alt, alt, alt]})


def test_a_longer_hook_line_is_sped_up_into_the_slot_and_an_impossible_one_is_said() -> None:
    master = SceneTiming(durations=[4.0, 26.0], speeds=[1.0, 1.0], voice=[3.0, 20.0], problems=[None, None])
    fits = variant_timing(master, 3.2, "B")
    assert fits.durations == master.durations and fits.speeds == [1.0, 1.0] and fits.voice[0] == 3.2
    room = 4.0 - 0.3 - 0.15
    faster = variant_timing(master, room * 1.1, "B")
    assert 1.09 < faster.speeds[0] <= 1.101 and faster.problems[0] is None
    too_long = variant_timing(master, 6.0, "C")
    assert too_long.speeds[0] == MAX_SPEED
    assert too_long.problems[0] is not None and too_long.problems[0].startswith("Hook C's line lasts 6.0 s")


# -- one job with three hooks, through the emulators ------------------------------------------------


async def _pcm(video: Path, start: float, length: float) -> bytes:
    """The sound of `video` from `start` for `length` s, as 8 kHz mono 16-bit samples."""
    out = video.with_suffix(f".{start:g}.raw")
    await run_ffmpeg(["-ss", f"{start}", "-t", f"{length}", "-i", str(video), "-vn", "-ac", "1", "-ar", "8000",
                      "-f", "s16le", str(out)])  # fmt: skip
    return await asyncio.to_thread(out.read_bytes)


def _distance(a: bytes, b: bytes) -> float:
    """Mean absolute difference of two 16-bit sample runs."""
    n = min(len(a), len(b)) // 2
    xs, ys = memoryview(a)[: n * 2].cast("h"), memoryview(b)[: n * 2].cast("h")
    return sum(abs(x - y) for x, y in zip(xs, ys, strict=True)) / max(1, n)


def _diff(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


@pytest.mark.timeout(300)
async def test_three_hooks_cost_two_more_seeds_and_clips_and_make_three_ads(
    fakes: tuple[FakeOpenAI, FakeReplicate], runtime: Runtime, tmp_path: Path
) -> None:
    oai, rep = fakes
    orch = runtime.orchestrator
    job = await orch.create_job(AdRequest(product=PRODUCT, hooks=3))
    await orch.plan(job)
    assert job.storyboard is not None
    # The writer was asked for the alternatives in a schema strict mode accepts (the emulator checks).
    [ask] = oai.chat_requests
    schema = ask.json["response_format"]["json_schema"]["schema"]
    assert "alternative_hooks" in schema["required"]
    assert "exactly 2 other hook scene(s)" in ask.json["messages"][0]["content"]
    assert [h.on_screen_text for h in job.storyboard.hook_scenes()] == [None, "Hook B!", "Hook C!"]

    # The estimate counts them: two more painted seeds and two more clips than a one-hook ad.
    n = len(job.storyboard.scenes)
    est = estimate_job_cost(job, runtime.settings)
    plain = estimate_job_cost(job.model_copy(update={"request": job.request.model_copy(update={"hooks": 1})}),
                              runtime.settings)  # fmt: skip
    assert est.extra_hooks == 2 and "(incl. 2 extra hooks)" in est.clips.detail
    assert est.seeds.usd == pytest.approx(plain.seeds.usd * (n + 2) / n, abs=1e-4)
    assert est.clips.usd == pytest.approx(plain.clips.usd * (n + 2) / n, abs=1e-4)
    hook_b = [st for st in job.scene(1).stages.values() if st.stage in ("seed_b", "clip_b")]
    assert stages_cost_usd(job, hook_b, runtime.settings) == pytest.approx(
        (est.seeds.usd + est.clips.usd) / (n + 2), abs=1e-4
    )

    job = await asyncio.wait_for(await orch.approve(job), 240)
    assert job.status is JobStatus.COMPLETED, job.error
    assert job.notes == [] or all("Hook" not in note for note in job.notes), job.notes

    # Exactly N−1 = 2 extra seeds and clips, as Replicate counted them; hook B's seed painted hook B.
    assert rep.counts.creates[SDXL] == n + 2 and rep.counts.creates[SVD] == n + 2
    prompts = [r.json["input"]["prompt"] for r in rep.requests
               if r.method == "POST" and r.status == 201 and r.json.get("version") == SDXL_VERSION]  # fmt: skip
    assert sum("HOOK-B" in p for p in prompts) == 1 and sum("HOOK-C" in p for p in prompts) == 1

    directory = Path(job.final_path or "").parent
    final, a, b, c = (directory / f for f in ("final.mp4", "final-hook-A.mp4", "final-hook-B.mp4", "final-hook-C.mp4"))
    assert (await asyncio.to_thread(a.stat)).st_ino == (await asyncio.to_thread(final.stat)).st_ino
    for path in (b, c):
        length = (await probe(path)).duration_s or 0.0
        assert abs(length - job.storyboard.total_duration) < 0.2, (path.name, length)

    # What they show: another opening, then the same ad frame for frame.
    fa, fb = [await frame_at(p, 1.0, tmp_path / f"{p.stem}-1s.png") for p in (a, b)]
    assert _diff(fa, fb) > 2.0, "hook B opens on its own picture and caption"
    later = 4.0 + 6.0 + 3.0  # inside scene 3
    la, lb = [await frame_at(p, later, tmp_path / f"{p.stem}-13s.png") for p in (a, b)]
    assert _diff(la, lb) < 0.5, "after the hook, hook B's ad is the master's"

    # What they say: another line in the hook's slot, the same sound after it.
    early_a, early_b = await _pcm(a, 0.0, 3.5), await _pcm(b, 0.0, 3.5)
    late_a, late_b = await _pcm(a, 8.0, 15.0), await _pcm(b, 8.0, 15.0)
    assert _distance(early_a, early_b) > 10 * max(1.0, _distance(late_a, late_b)), "only the hook's line differs"

    # A re-render (a new brand kit) makes the hooks again: hook B's end card takes the new colour.
    before = (await asyncio.to_thread(b.stat)).st_mtime_ns
    job = await orch.rerender(job, brand=BrandKit(primary="#c81e1e", cta="Order Lumen today"))
    assert (await asyncio.to_thread(b.stat)).st_mtime_ns != before
    end = await frame_at(b, job.storyboard.total_duration - 0.2, tmp_path / "b-end.png")
    red = sum(1 for r, g, bl in end.get_flattened_data() if r > 170 and g < 60 and bl < 60)
    assert red > 0.5 * end.width * end.height, "hook B's version ends on the new kit's card"
    assert (await asyncio.to_thread(a.stat)).st_ino == (await asyncio.to_thread(final.stat)).st_ino


async def test_one_hook_asks_for_no_alternatives_and_makes_no_hook_files(
    fakes: tuple[FakeOpenAI, FakeReplicate], runtime: Runtime
) -> None:
    oai, rep = fakes
    orch = runtime.orchestrator
    job = await orch.create_job(AdRequest(product=PRODUCT))
    await orch.plan(job)
    assert "alternative_hooks" not in oai.chat_requests[0].json["response_format"]["json_schema"]["schema"]
    assert job.storyboard is not None and job.storyboard.alt_hooks == []
    assert {st.stage for st in job.all_stages()} <= {"seed", "clip", "voice", "music"}
    job = await asyncio.wait_for(await orch.approve(job), 240)
    n = len(job.scenes)
    assert rep.counts.creates[SDXL] == n and rep.counts.creates[SVD] == n
    assert not list(Path(job.final_path or "").parent.glob("final-hook-*"))


async def test_a_writer_that_forgets_an_alternative_is_asked_again(
    fakes: tuple[FakeOpenAI, FakeReplicate], runtime: Runtime
) -> None:
    oai, _ = fakes
    answers = iter([1, 2])
    oai.responder = lambda body: answer(body, next(answers))
    orch = runtime.orchestrator
    job = await orch.create_job(AdRequest(product=PRODUCT, hooks=3))
    await orch.plan(job)
    _first, second = oai.chat_requests
    correction = second.json["messages"][-1]["content"]
    assert "alternative_hooks: write exactly 2 alternative hook scenes (got 1)" in correction
    assert job.storyboard is not None and len(job.storyboard.alt_hooks) == 2


# -- on Discord ---------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_makead_hooks_shows_the_openings_side_by_side_and_posts_each_version(
    discord_emulator: DiscordEmulator,
    discord_errors,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    emu = discord_emulator
    async with running_team(emu, tmp_path, discord_errors) as team:
        with pytest.raises(ValueError, match=r"'hooks' must be within 1\.\.3"):  # Discord refuses it client-side
            await emu.slash_command(team.guild_id, team.channel_id, team.alice.id, "makead",
                                    {"product": "Lumen desk lamp", "mood": "tech", "hooks": 4})  # fmt: skip

        _, board, job_id = await team.makead(product="Lumen desk lamp", hooks=3)  # type: ignore[arg-type]
        [card] = board.embeds
        hooks = [f for f in card["fields"] if f["name"].startswith("Hook ")]
        assert [f["name"] for f in hooks] == ["Hook A (scene #1)", "Hook B", "Hook C"]
        assert all(f["inline"] for f in hooks), "the openings sit side by side"
        job = await team.job(job_id)
        assert job.storyboard is not None
        for field, scene in zip(hooks, job.storyboard.hook_scenes(), strict=True):
            assert scene.voiceover is not None and scene.voiceover in field["value"]
        assert "3 hooks to test" in next(f["value"] for f in card["fields"] if f["name"] == "Total")

        await team.click(board, "approve", job_id, team.alice)
        status = await team.status_message(job_id)

        job = await team.settled(job_id, timeout=60, what="the ad and its hooks to be posted")
        assert job.status is JobStatus.COMPLETED and job.ui.delivered == "posted"
        test = await emu.wait_for_message(status.channel_id, lambda m: m.content.startswith("🧪 **Hook test**"))
        assert sorted(a.filename for a in test.attachments) == [f"jant-ad-{job_id}-hook-B.mp4",
                                                                 f"jant-ad-{job_id}-hook-C.mp4"]  # fmt: skip
        lines = test.content.splitlines()[1:]
        assert [line[:5] for line in lines] == ["**A**", "**B**", "**C**"] and "the ad above" in lines[0]
        directory = Path(job.final_path or "").parent
        for attachment in test.attachments:
            letter = attachment.filename[-5]
            assert attachment.data == await asyncio.to_thread((directory / f"final-hook-{letter}.mp4").read_bytes)


async def test_the_status_message_shows_each_other_hooks_state(tmp_path: Path) -> None:
    request = AdRequest(product=PRODUCT, hooks=3)
    board = await OfflineStoryboardPlanner().plan(request)
    job = Job(request=request, storyboard=board, status=JobStatus.RUNNING)
    kinds = ["seed", "clip", "seed_b", "clip_b", "seed_c", "clip_c"]
    job.scenes = fresh_scene_states(job.id, board, kinds=kinds)
    first = job.scene(1).stages
    first["seed_b"].status, first["clip_b"].status, first["clip_b"].progress = (
        StageStatus.DONE, StageStatus.RUNNING, 40.0
    )  # fmt: skip
    first["seed_c"].status, first["seed_c"].error = StageStatus.FAILED, "the safety checker flagged it"
    text = render_status(job, datetime.now(UTC)).embed.description or ""
    assert "🧪 other hooks · B animating 40% · C ❌ the safety checker flagged it" in text
    plain = Job(request=AdRequest(product=PRODUCT), storyboard=board, status=JobStatus.RUNNING)
    plain.scenes = fresh_scene_states(plain.id, board)
    assert "other hooks" not in (render_status(plain, datetime.now(UTC)).embed.description or "")


async def test_a_hook_whose_seed_is_refused_is_named_and_the_others_still_arrive(
    fakes: tuple[FakeOpenAI, FakeReplicate], runtime: Runtime
) -> None:
    _, rep = fakes
    rep.script_by(lambda model, version, inp: "fail_nsfw" if "HOOK-B " in inp.get("prompt", "") else None)
    orch = runtime.orchestrator
    job = await orch.create_job(AdRequest(product=PRODUCT, hooks=3))
    await orch.plan(job)
    job = await asyncio.wait_for(await orch.approve(job), 240)
    # The master is whole: a failed alternative costs only its own version.
    assert job.status is JobStatus.COMPLETED, job.error
    [note] = [n for n in job.notes if n.startswith("Hook B")]
    assert note.startswith("Hook B's version was not made: ") and "safety checker" in note, note
    directory = Path(job.final_path or "").parent
    assert sorted(p.name for p in directory.glob("final-hook-*.mp4")) == ["final-hook-A.mp4", "final-hook-C.mp4"]
    n = len(job.scenes)
    assert rep.counts.creates[SDXL] == n + 2 and rep.counts.creates[SVD] == n + 1  # no clip for hook B

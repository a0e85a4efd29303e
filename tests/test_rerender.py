"""Re-rendering a finished ad, with the real `openai` and `replicate` clients against the emulators and
the real composer (at a small size, to spare the CPU).

Stories: a team's ad is made once; re-rendered with captions off it pays for nothing (the Replicate
emulator counts no create), draws no captions and keeps the previous file as final-1.mp4; done again
with nothing changed it is the same ad frame for frame; with karaoke captions back the spoken word is
lit again; with music turned off the bed is gone from the gaps between lines. A re-render is refused,
in so many words, while the job runs, once it was cancelled, while another re-render of it runs (in
this process or another), and once retention deleted its media; one stopped half-way leaves the old
final as it was. `jant rerender` does the same from a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops

from bot.cli import main as cli_main
from pipeline import final_versions
from pipeline.action_rules import RERENDER_BUSY, RERENDER_MEDIA_GONE
from pipeline.brand import BrandKit
from pipeline.captions import CaptionMode
from pipeline.composer import Composer
from pipeline.config import Settings
from pipeline.errors import InvalidRequest
from pipeline.events import EventKind, ProgressEvent
from pipeline.ffmpeg import probe, run_ffmpeg
from pipeline.models import AdRequest, Job, JobStatus, utcnow
from pipeline.orchestrator import Orchestrator
from pipeline.retention import purge_old_media
from pipeline.runtime import build_providers
from pipeline.soundtrack import caption_words
from pipeline.store import JobStore
from tests.emulators.fake_openai import FakeOpenAI
from tests.emulators.fake_replicate import FakeReplicate
from tests.service_fakes import service_env

PRODUCT = "Lumen — a smart desk lamp that follows your circadian rhythm, dims at night and charges your phone"
REPO = Path(__file__).resolve().parents[1]
W, H, FPS = 360, 640, 24
TOP_HALF = (0, 0, W, H // 2)
NOISE = 60  # stray pixels an encode of different captions may move elsewhere (0.05 % of the half)
OFF, KARAOKE = BrandKit(captions=CaptionMode.OFF), BrandKit(captions=CaptionMode.KARAOKE)


@dataclass
class Made:
    orch: Orchestrator
    store: JobStore
    rep: FakeReplicate
    job: Job
    settings: Settings

    @property
    def directory(self) -> Path:
        return self.orch.job_dir(self.job)

    @property
    def final(self) -> Path:
        return self.directory / "final.mp4"


@contextlib.asynccontextmanager
async def making(fakes: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path, **request: Any) -> AsyncIterator[Made]:
    """One finished ad, made through the emulators, its voice and music bed included."""
    oai, rep = fakes
    settings = Settings(**service_env(oai, rep, tmp_path / "data"))
    store = await JobStore.open(settings.storage.db_path)
    providers = build_providers(settings)
    orch = Orchestrator(settings, store, providers, composer=Composer(W, H))
    try:
        job = await orch.create_job(AdRequest(product=PRODUCT, mood="cinematic", **request))
        await orch.plan(job)
        job = await asyncio.wait_for(await orch.approve(job), 120)
        assert job.status is JobStatus.COMPLETED, job.error
        assert rep.counts.creates["stability-ai/stable-audio-2.5"] == 1  # a real music bed to drop later
        yield Made(orch, store, rep, job, settings)
    finally:
        await orch.shutdown()
        for provider in (providers.planner, *providers.stages.values()):
            if hasattr(provider, "aclose"):
                await provider.aclose()
        await store.close()


@pytest.fixture
async def made(fakes: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path) -> AsyncIterator[Made]:
    async with making(fakes, tmp_path) as m:
        yield m


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def frame(video: Path, seconds: float, dst: Path) -> Image.Image:
    await run_ffmpeg(["-i", str(video), "-vf", f"select='eq(n,{round(seconds * FPS)})'", "-frames:v", "1", str(dst)])
    with Image.open(dst) as im:
        return im.convert("RGB")


def changed(a: Image.Image, b: Image.Image) -> Image.Image:
    """A mask of the pixels that differ by more than encoding noise."""
    return ImageChops.difference(a, b).convert("L").point(lambda v: 255 if v > 40 else 0, mode="1")


def count(mask: Image.Image) -> int:
    return mask.convert("L").histogram()[255]


def lit(img: Image.Image) -> Image.Image:
    """A mask of the karaoke highlight's warm yellow (the spoken word), allowing for 4:2:0 chroma."""
    r, g, b = (img.getchannel(c) for c in "RGB")
    return ImageChops.logical_and(
        ImageChops.logical_and(r.point(lambda v: 255 if v > 200 else 0, mode="1"),
                               g.point(lambda v: 255 if 140 < v < 240 else 0, mode="1")),
        b.point(lambda v: 255 if v < 90 else 0, mode="1"),
    )  # fmt: skip


def spoken_moments(job: Job) -> list[float]:
    """A moment inside the first word of each scene's line, on the ad's timeline (the last scene, where
    the end card goes, aside)."""
    assert job.storyboard is not None and job.timing is not None
    moments, start = [], 0.0
    for scene, length in zip(job.storyboard.scenes[:-1], job.timing.durations, strict=False):
        words = caption_words(job, scene, job.timing)
        if words:
            moments.append(start + (words[0].start + words[0].end) / 2)
        start += length
    return moments


async def loudness_between_lines(video: Path, job: Job) -> float:
    """Mean volume (dB) of the last 0.3 s of each scene, where no line is spoken: the bed alone."""
    assert job.timing is not None
    ends, t = [], 0.0
    for length in job.timing.durations:
        t += length
        ends.append(t)
    chain = "+".join(f"between(t,{e - 0.4:.3f},{e - 0.1:.3f})" for e in ends[:-1])
    proc = await asyncio.create_subprocess_exec(
        *_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(video), "-af",
        f"aselect='{chain}',asetpts=N/SR/TB,volumedetect", "-f", "null", "-",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    m = re.search(r"mean_volume: (-?[\d.]+|-inf) dB", err.decode())
    assert m, err.decode()[-500:]
    return float(m.group(1))


def _ffmpeg() -> list[str]:
    from pipeline.ffmpeg import ffmpeg_exe

    return [ffmpeg_exe()]


def creates(rep: FakeReplicate) -> int:
    return sum(1 for r in rep.requests if r.method == "POST" and r.path.endswith("/predictions"))


async def test_a_rerender_pays_for_nothing_keeps_the_previous_final_and_draws_the_new_kit(
    made: Made, tmp_path: Path
) -> None:
    orch, job, rep = made.orch, made.job, made.rep
    paid, posted = rep.counts.total_creates, creates(rep)
    first = digest(made.final)
    moments = spoken_moments(job)
    assert len(moments) >= 3
    before = [await frame(made.final, t, tmp_path / f"before-{i}.png") for i, t in enumerate(moments)]

    steps: list[str] = []

    def on_event(event: ProgressEvent) -> None:
        if event.kind is EventKind.RERENDERING and event.detail:
            steps.append(event.detail)

    orch.bus.subscribe(on_event)
    job = await orch.rerender(job, brand=OFF)
    assert rep.counts.total_creates == paid and creates(rep) == posted  # not one prediction
    assert digest(made.directory / "final-1.mp4") == first  # the previous ad, kept as it was
    off = [await frame(made.final, t, tmp_path / f"off-{i}.png") for i, t in enumerate(moments)]
    for was, now in zip(before, off, strict=True):
        gone = changed(was, now)
        assert count(gone) > 300  # the captions are gone…
        assert count(ImageChops.logical_and(gone, lit(was))) > 30  # …the lit spoken word with them
        assert count(gone.crop(TOP_HALF)) < NOISE  # and the picture above them is as it was
    stored = await made.store.get(job.id)
    assert stored is not None and stored.brand == OFF and stored.final_path == str(made.final)
    assert stored.final_bytes == made.final.stat().st_size and stored.status is JobStatus.COMPLETED
    n = len(job.scenes)
    assert steps[:n] == [f"re-cutting scene {i} ({i} of {n})" for i in range(1, n + 1)]
    assert steps[n:] == ["mixing the sound", "joining the scenes"]
    assert not (made.directory / final_versions.SCRATCH_NAME).exists()

    # Nothing changed: the same ad, frame for frame; the one it replaces is kept as final-2.mp4.
    second = digest(made.final)
    job = await orch.rerender(job, brand=OFF)
    assert digest(made.directory / "final-2.mp4") == second
    for i, t in enumerate(moments):
        again = await frame(made.final, t, tmp_path / f"again-{i}.png")
        assert ImageChops.difference(again, off[i]).getbbox() is None, f"frame at {t:.2f} s changed"

    # The kit asks for karaoke again: the captions and the lit word are back, below the picture's top.
    job = await orch.rerender(job, brand=KARAOKE)
    back = [await frame(made.final, t, tmp_path / f"back-{i}.png") for i, t in enumerate(moments)]
    for was, now in zip(off, back, strict=True):
        drawn = changed(was, now)
        assert count(drawn) > 300 and count(ImageChops.logical_and(drawn, lit(now))) > 30
        assert count(drawn.crop(TOP_HALF)) < NOISE
    assert sorted(p.name for p in made.directory.glob("final*.mp4")) == [
        "final-1.mp4",
        "final-2.mp4",
        "final-3.mp4",
        "final.mp4",
    ]

    # Music turned off (by the kit): the stored bed is left out, so the gaps between lines go quiet.
    with_bed = await loudness_between_lines(made.final, job)
    job = await orch.rerender(job, brand=KARAOKE.model_copy(update={"music": "none"}))
    without = await loudness_between_lines(made.final, job)
    assert with_bed > -45 and without < with_bed - 20, (with_bed, without)
    assert rep.counts.total_creates == paid and creates(rep) == posted


async def test_refusals_say_why_and_a_stopped_rerender_leaves_the_old_final(made: Made) -> None:
    orch, store, job = made.orch, made.store, made.job
    old = digest(made.final)

    running = job.model_copy(update={"status": JobStatus.RUNNING})
    with pytest.raises(InvalidRequest) as refused:
        await orch.start_rerender(running)
    assert str(refused.value) == (
        f"Nothing to re-render: job `{job.id}` was already approved and is being generated; only a finished ad "
        "(done or partial) can be rendered again."
    )

    other = await orch.create_job(AdRequest(product=PRODUCT, mood="cinematic"))
    await orch.plan(other)
    await orch.cancel(other, by="test")
    assert await orch.rerender_problem(other) == (
        f"Nothing to re-render: job `{other.id}` was cancelled; only a finished ad (done or partial) can be "
        "rendered again."
    )

    # A second press while one runs, here or in another process (the lock file of the job's folder).
    busy = RERENDER_BUSY.format(job_id=job.id)
    assert busy == f"Job `{job.id}` is already being re-rendered; its new ad is posted when that one is done."
    task = await orch.start_rerender(job, brand=OFF)
    assert await orch.rerender_problem(job) == busy
    with pytest.raises(InvalidRequest, match="is being re-rendered"):
        orch.check_reroll(job, 1, "clip")

    # Stopped half-way (a shutdown): the old final is untouched, nothing numbered appears, no scratch left.
    joined = asyncio.Event()
    orch.bus.subscribe(lambda e: joined.set() if e.detail == "joining the scenes" else None)
    await asyncio.wait_for(joined.wait(), 60)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert digest(made.final) == old and not list(made.directory.glob("final-*.mp4"))
    assert not (made.directory / final_versions.SCRATCH_NAME).exists()
    stored = await store.get(job.id)
    assert stored is not None and stored.brand == BrandKit() and stored.final_path == str(made.final)  # kit unchanged

    fd = await asyncio.to_thread(final_versions.take_render_lock, made.directory)  # "another process"
    assert fd is not None
    try:
        with pytest.raises(InvalidRequest) as refused:
            await orch.rerender(job, brand=OFF)
        assert str(refused.value) == busy
    finally:
        final_versions.release_render_lock(fd)

    # What a killed re-render left behind is cleared by the next one, which then works.
    (made.directory / final_versions.SCRATCH_NAME).mkdir()
    (made.directory / final_versions.SCRATCH_NAME / "scene-1.mp4").write_bytes(b"half")
    await orch.rerender(job, brand=OFF)
    assert digest(made.directory / "final-1.mp4") == old

    # Retention deleted the media: said, not attempted.
    await store.update(job, finished_at=utcnow() - timedelta(days=30))
    assert await purge_old_media(store, made.settings.storage.data_dir, 14) == [job.id]
    purged = await store.get(job.id)
    assert purged is not None
    assert await orch.rerender_problem(purged) == RERENDER_MEDIA_GONE.format(job_id=job.id)
    assert RERENDER_MEDIA_GONE.format(job_id=job.id) == (
        f"Nothing to re-render: the scenes of job `{job.id}` are no longer on disk (old ads' media are deleted "
        "after a while); make a new ad instead."
    )


def jant(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "REPLICATE", "JANT_"))}
    env |= {"COLUMNS": "120", "JANT_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
    )  # fmt: skip


async def jant_refusal(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """A refusal of the command line, run in this process (its own entry point, what `jant` runs; in a
    thread, as it runs its own event loop): exit code and stderr, without an interpreter start. The test's
    JANT_DATA_DIR (conftest) is the ad's data dir, `making`'s `tmp_path / "data"`."""
    capsys.readouterr()
    code = await asyncio.to_thread(cli_main, list(args))
    return code, capsys.readouterr().err


async def test_jant_rerender_from_a_terminal(made: Made, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = made.settings.storage.data_dir
    job_id = made.job.id
    paid = made.rep.counts.total_creates
    old = digest(made.final)
    brand = tmp_path / "brand.toml"
    brand.write_text('name = "Lumen"\ncaptions = "off"\n', encoding="utf-8")

    done = await asyncio.to_thread(jant, "rerender", job_id, "--brand", str(brand), data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    assert f"final: {made.final}" in done.stdout
    assert f"previous: {made.directory / 'final-1.mp4'}" in done.stdout
    assert digest(made.directory / "final-1.mp4") == old and made.rep.counts.total_creates == paid
    stored = await made.store.get(job_id)
    assert stored is not None and stored.brand == BrandKit(name="Lumen", captions=CaptionMode.OFF)

    assert os.environ["JANT_DATA_DIR"] == str(data_dir)  # the refusals below run in this process
    code, err = await jant_refusal(capsys, "rerender", "0badf00d")
    assert code == 2
    assert err.strip() == "error: no job '0badf00d'; `jant jobs` lists them"

    bad = tmp_path / "bad.toml"
    bad.write_text('primary = "red"\n', encoding="utf-8")
    code, err = await jant_refusal(capsys, "rerender", job_id, "--brand", str(bad))
    assert code == 2
    assert err.strip() == (
        "error: --brand: bad.toml: primary must be a hex colour like #1a2b3c or 1a2b3c (got 'red'). "
        "Fix the file and run `jant brand check` on it."
    )

    await made.store.update(made.job, finished_at=utcnow() - timedelta(days=30))
    await purge_old_media(made.store, data_dir, 14)
    code, err = await jant_refusal(capsys, "rerender", job_id)
    assert code == 2
    assert err.strip() == "error: " + RERENDER_MEDIA_GONE.format(job_id=job_id).replace("`", "")


async def test_a_rerender_makes_the_other_formats_again_in_the_new_look(
    fakes: tuple[FakeOpenAI, FakeReplicate], tmp_path: Path
) -> None:
    red = BrandKit(primary="#c81e1e")
    async with making(fakes, tmp_path, formats=("9:16", "4:5"), cta="Order today") as made:
        orch, job, rep = made.orch, made.job, made.rep
        paid = rep.counts.total_creates
        four = made.directory / "final-4x5.mp4"
        old = digest(four)

        async def card_colour() -> tuple[int, int, int]:
            """The 4:5 end card's colour: its last frame, left of the centred text, mid-height."""
            info = await probe(four, count_frames=True)
            assert (info.width, info.height) == (W, round(W * 5 / 4)) and info.frames
            last = await frame(four, (info.frames - 2) / FPS, tmp_path / f"card-{digest(four)[:8]}.png")
            r, g, b = last.crop((4, last.height // 2 - 4, 14, last.height // 2 + 4)).resize((1, 1)).getpixel((0, 0))
            return r, g, b

        assert _near(await card_colour(), (0x11, 0x18, 0x27))  # the default kit's primary

        # Stopped while the formats are made: the old 4:5 stays, whole, beside the old final.
        task = await orch.start_rerender(job, brand=red)
        formats_started = asyncio.Event()
        orch.bus.subscribe(lambda e: formats_started.set() if e.detail == "making the other formats" else None)
        await asyncio.wait_for(formats_started.wait(), 60)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert digest(four) == old
        assert sorted(p.name for p in made.directory.glob("final*.mp4")) == ["final-4x5.mp4", "final.mp4"]

        job = await orch.rerender(job, brand=red)
        assert _near(await card_colour(), (0xC8, 0x1E, 0x1E))  # the new kit's primary, in the 4:5 too
        assert rep.counts.total_creates == paid  # made again from the clips: not one prediction
        assert sorted(p.name for p in made.directory.glob("final*.mp4")) == [
            "final-1.mp4", "final-4x5.mp4", "final.mp4",
        ]  # fmt: skip
        assert not (made.directory / final_versions.SCRATCH_NAME).exists()


def _near(rgb: tuple[int, int, int], want: tuple[int, int, int], tolerance: int = 14) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(rgb, want, strict=True))

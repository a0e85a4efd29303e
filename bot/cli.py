"""The `jant` command line: make an ad headless, list jobs, check the setup, run the bot."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pydantic import ValidationError
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from bot.sound_progress import PartProgress, PartState, missing_parts, music_progress, voice_progress
from bot.voice_label import voice_id_for
from pipeline.brand import BrandKit
from pipeline.brand_file import load_brand_file
from pipeline.budgets import BudgetExceeded
from pipeline.byte_limit import byte_limit_problem, byte_limit_warning
from pipeline.config import Settings
from pipeline.cost_estimate import estimate_job_cost
from pipeline.durable.queued_orchestrator import QueuedOrchestrator
from pipeline.errors import ConfigError, DatabaseSchemaError, InvalidRequest, JantError
from pipeline.events import EventKind, ProgressEvent
from pipeline.format_choice import parse_format_list
from pipeline.formats import FORMATS, MASTER_FORMAT, MadeFormat, made_formats
from pipeline.hook_variants import alt_hook_stages, made_hooks
from pipeline.job_choices import job_choices
from pipeline.language import language_name, lines_language_note
from pipeline.logo_file import usable_logo
from pipeline.models import AdRequest, Job, JobStatus, SceneState, StageState, StageStatus, hook_letter
from pipeline.moods import Mood
from pipeline.orchestrator import Orchestrator
from pipeline.product_photo import check_photo_file, store_photo
from pipeline.providers.base import StageProvider, StoryboardPlanner
from pipeline.runtime import Runtime
from pipeline.stage_kinds import STAGE_KINDS, StageLevel, StageName
from pipeline.uploaded_images import CheckedImage, UploadedImageError
from pipeline.video_models import VIDEO_MODEL_KEYS, video_model
from pipeline.voice_choice import check_brand_voice

if TYPE_CHECKING:
    from pipeline.orchestrator import Orchestrator

T = TypeVar("T")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# soft_wrap: a line is one line (a terminal wraps it itself; a log or a pipe must not get it cut in two).
# Tables and progress bars still fit the width.
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class UsageError(Exception):
    """Bad input: one clear line and exit code 2."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jant", description="Turn a product description into a 30-second 9:16 video ad.")
    sub = p.add_subparsers(dest="command", required=True)
    make = sub.add_parser("makead", help="make an ad in the terminal (offline when no API keys are set)")
    make.add_argument("product", help="what you are advertising (1–2000 characters)")
    make.add_argument("--mood", default=Mood.TECH.value, help=f"one of: {', '.join(m.value for m in Mood)}")
    make.add_argument("--audience", help="who the ad speaks to")
    make.add_argument("--cta", help="the call to action, e.g. 'Order at example.com'")
    make.add_argument("--language", help="the language the ad speaks, e.g. fr (default: detected from the product)")
    voice = make.add_mutually_exclusive_group()
    voice.add_argument("--voice", metavar="ID", help="the voice that speaks the lines (default: JANT_VOICE_ID)")
    voice.add_argument("--no-voice", action="store_true", help="no voiceover: captions and music only")
    make.add_argument(
        "--model", metavar="KEY",
        help=f"the video model: one of {', '.join(VIDEO_MODEL_KEYS)} that JANT_ALLOWED_VIDEO_MODELS allows "
        "(default: JANT_VIDEO_MODEL)",
    )  # fmt: skip
    make.add_argument(
        "--photo", metavar="PATH", type=Path,
        help="your product photo (PNG, JPEG or WebP, at most 10 MiB, short side 512 px or more): "
        "the scenes that show the product use it instead of a generated image",
    )  # fmt: skip
    make.add_argument("--yes", "-y", action="store_true", help="approve the storyboard without asking")
    make.add_argument(
        "--no-worker", action="store_true",
        help="queue the approved job for `jant worker` processes and follow its progress here, instead of "
        "making it in this process (JANT_ENGINE=dbos)",
    )  # fmt: skip
    make.add_argument("--byte-limit", type=int, help="fit final.mp4 under this many bytes")
    make.add_argument(
        "--brand",
        metavar="FILE",
        type=Path,
        help="a brand kit (brand.toml: colours, font, cta, url, logo, captions, voice, music)",
    )
    make.add_argument(
        "--formats", default=MASTER_FORMAT, metavar="LIST",
        help=f"the shapes to make, comma-separated, from {','.join(FORMATS)} (default {MASTER_FORMAT}); "
        "the others are cut from the same footage at no extra cost",
    )  # fmt: skip
    make.add_argument(
        "--hooks", type=int, default=1, metavar="N",
        help="test N opening hooks (2 or 3): the ad is also made with each alternative hook as "
        "final-hook-B.mp4 …, one more seed and clip per extra hook (final.mp4 is hook A)",
    )  # fmt: skip
    jobs = sub.add_parser("jobs", help="list recent jobs")
    jobs.add_argument("--limit", type=int, default=20, help="how many of the newest jobs to list (1 or more)")
    show = sub.add_parser("show", help="show one job")
    show.add_argument("job_id")
    stop = sub.add_parser(
        "cancel", help="cancel a job a worker is making or will make (JANT_ENGINE=dbos): finished scenes are kept"
    )
    stop.add_argument("job_id")
    spend = sub.add_parser("spend", help="this month's spend by day and by model, and the budget left")
    spend.add_argument("--guild", metavar="ID", help="one Discord server's spend (default: every server and the CLI)")
    again = sub.add_parser("rerender", help="compose a finished ad again from its scenes on disk (no new footage)")
    again.add_argument("job_id")
    again.add_argument("--brand", type=Path, metavar="FILE", help="the brand kit to draw it with (brand.toml)")
    shapes = sub.add_parser("formats", help="cut a finished ad into other shapes from its footage (no new footage)")
    shapes.add_argument("job_id")
    shapes.add_argument(
        "formats", nargs="?", metavar="LIST",
        help=f"the shapes to add, comma-separated, from {','.join(k for k in FORMATS if k != MASTER_FORMAT)} "
        "(default: every one the ad does not have yet)",
    )  # fmt: skip
    sub.add_parser("doctor", help="report which providers are live or offline, ffmpeg, data dir and database")
    bot = sub.add_parser("bot", help="run the Discord bot (needs DISCORD_TOKEN)")
    bot.add_argument(
        "--no-worker", action="store_true",
        help="make no ad in this process: queue them for `jant worker` processes and follow them (JANT_ENGINE=dbos)",
    )  # fmt: skip
    worker = sub.add_parser(
        "worker", help="run jobs: this worker's interrupted ones, and those of dead workers (JANT_ENGINE=dbos)"
    )
    worker.add_argument("--until-idle", action="store_true", help="exit once none of its jobs is left to run")
    worker.add_argument(
        "--id", dest="worker_id", metavar="NAME",
        help="this worker's id (default: JANT_WORKER_ID, else this host's name and a suffix kept in the data"
        " directory); a restart with the same id recovers its jobs, and two live workers cannot share one",
    )  # fmt: skip
    brand = sub.add_parser("brand", help="work with a brand.toml")
    brand_sub = brand.add_subparsers(dest="brand_command", required=True)
    check = brand_sub.add_parser("check", help="validate a brand.toml and render its preview (end card and captions)")
    check.add_argument("file", type=Path, help="the brand.toml")
    check.add_argument("--out", type=Path, help="where to write the preview PNG (default: beside the file)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings()
    except ValidationError as exc:
        err_console.print(f"[red]Configuration error:[/] {_first_error(exc)}")
        return EXIT_USAGE
    try:
        if args.command == "makead":
            return asyncio.run(makead(settings, args))
        if args.command == "jobs":
            return asyncio.run(list_jobs(settings, args.limit))
        if args.command == "show":
            return asyncio.run(show_job(settings, args.job_id))
        if args.command == "cancel":
            return asyncio.run(cancel_job(settings, args.job_id))
        if args.command == "spend":
            return asyncio.run(show_spend(settings, args.guild))
        if args.command == "rerender":
            return asyncio.run(rerender(settings, args.job_id, args.brand))
        if args.command == "formats":
            return asyncio.run(add_formats(settings, args.job_id, args.formats))
        if args.command == "doctor":
            return asyncio.run(doctor(settings))
        if args.command == "brand":
            return asyncio.run(brand_check(settings, args.file, args.out))
        if args.command == "worker":
            from bot.worker import run_worker

            return asyncio.run(run_worker(settings, until_idle=args.until_idle, worker_id=args.worker_id))
        if args.command == "bot":
            _check_no_worker(settings, args.no_worker)
            from bot.app import run_bot

            return run_bot(settings, runs_jobs=not args.no_worker)
    except UsageError as exc:
        # escape(): the message can quote what the user typed ("[b]" in a brand file is text, not markup)
        err_console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)  # one line, however long
        return EXIT_USAGE
    except JantError as exc:
        err_console.print(f"[red]error:[/] {escape(exc.user_message)}", soft_wrap=True)
        return EXIT_USAGE if isinstance(exc, ConfigError | InvalidRequest | DatabaseSchemaError) else EXIT_FAILED
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        return 130
    return EXIT_USAGE


def _check_no_worker(settings: Settings, no_worker: bool) -> None:
    if no_worker and settings.storage.engine != "dbos":
        raise ConfigError(
            "--no-worker queues jobs for `jant worker` processes, which run them as DBOS workflows, "
            "and JANT_ENGINE is not `dbos`.",
            hint="Set JANT_ENGINE=dbos (and install `jant[durable]`), or leave out --no-worker.",
        )


async def brand_check(settings: Settings, file: Path, out: Path | None) -> int:
    """Validate a brand.toml as `makead --brand` would, then draw its preview: what the end card
    and the captions will look like, rendered by the composer itself. No prediction, no cost."""
    from pipeline.brand_file import load_brand_file
    from pipeline.brand_preview import render_brand_preview

    try:
        kit = await load_brand_file(file, settings.data_dir)
    except JantError as exc:
        raise UsageError(exc.user_message) from None
    dest = out or file.with_name(f"{file.stem}-preview.png")
    path = await asyncio.to_thread(render_brand_preview, kit, dest)
    console.print(
        f"{escape(file.name)} is valid: font {kit.font}, primary {kit.primary}, accent {kit.accent}, "
        f"logo {'yes' if kit.logo_path else 'none'} ({kit.logo_corner}), end card {kit.end_card}."
    )
    console.print(f"Preview: {escape(str(path.resolve()))}")
    return EXIT_OK


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ()))
    return f"{field}: {str(err.get('msg', '')).removeprefix('Value error, ')}"


def _request(args: argparse.Namespace) -> AdRequest:
    try:
        return AdRequest(
            product=args.product,
            mood=args.mood,
            audience=args.audience,
            cta=args.cta,
            language=args.language,
            voice=args.voice,
            speak=not args.no_voice,
            model=args.model,
            formats=args.formats,
            hooks=args.hooks,
        )
    except ValidationError as exc:
        raise UsageError(_first_error(exc)) from None


async def _checked_photo(path: Path | None) -> CheckedImage | None:
    """`--photo`, checked with the photo limits before anything is written or paid."""
    if path is None:
        return None
    try:
        return await check_photo_file(path)
    except UploadedImageError as exc:
        raise UsageError(str(exc)) from None


async def makead(settings: Settings, args: argparse.Namespace) -> int:
    request = _request(args)  # validated before anything is written
    photo = await _checked_photo(args.photo)
    if args.byte_limit is not None and (problem := byte_limit_problem(args.byte_limit)):
        raise UsageError(f"--byte-limit: {problem}")  # JANT_BYTE_LIMIT is checked by Settings
    limit = args.byte_limit if args.byte_limit is not None else settings.media.byte_limit
    if limit is not None and (warning := byte_limit_warning(limit)):
        err_console.print(f"[bold yellow]warning:[/] {warning}")
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if not args.yes and not interactive:
        raise UsageError("no terminal to ask for approval: pass --yes to approve the storyboard automatically")
    brand = await _brand(settings, args.brand) if args.brand is not None else None
    _check_no_worker(settings, args.no_worker)
    runtime = await Runtime.open(settings, runs_jobs=not args.no_worker, queues_jobs=args.no_worker)
    try:
        for notice in runtime.providers.notices:
            err_console.print(f"[bold yellow]offline:[/] {notice}")
        if photo is not None:  # the clean PNG under the data directory, never the user's own file
            stored = await store_photo(photo, settings.storage.data_dir)
            request = request.model_copy(update={"photo": str(stored)})
        orch = runtime.orchestrator
        try:
            orch.check_request(request)  # a voice this Jant does not have: said before anything is written
        except InvalidRequest as exc:
            raise UsageError(f"--voice: {exc.user_message}") from None
        try:  # a model this Jant does not allow or have: said before anything is written or paid
            request = await orch.with_video_model(request)
        except InvalidRequest as exc:
            raise UsageError(f"--model: {exc}") from None
        if brand is not None:
            try:
                check_brand_voice(runtime.providers, brand.voice, request_voice=request.voice, speak=request.speak)
            except InvalidRequest as exc:
                raise UsageError(f"--brand {args.brand.name}: {exc.user_message}") from None
        job = await orch.create_job(request, byte_limit=args.byte_limit)
        console.print(f"Job [bold]{job.id}[/] — planning the storyboard…")
        await orch.plan(job)
        while True:
            _print_storyboard(job)
            await _print_estimate(runtime, job)
            if args.yes:
                break
            answer = (await asyncio.to_thread(input, "[a]pprove, [r]egenerate or [c]ancel? ")).strip().lower()
            if answer in ("a", "approve", "y", "yes"):
                break
            if answer in ("r", "regenerate"):
                await orch.plan(job, feedback="a different take")
                continue
            if answer in ("c", "cancel", "q"):
                await orch.cancel(job, by="cli")
                console.print(f"Cancelled job {job.id}.")
                return EXIT_OK
        try:
            return await _run_with_progress(runtime, job, brand)
        except BudgetExceeded as exc:
            # Refused before anything was made: the job is closed with the reason, not left waiting.
            await orch.cancel(job, by=f"cli: {exc}")
            raise
    finally:
        await runtime.close()


async def _print_estimate(runtime: Runtime, job: Job) -> None:
    """What the ad will cost, part by part, and what the budget has left (command-line jobs share one)."""
    est = estimate_job_cost(job, runtime.settings)
    if est.free:
        console.print("Estimate: free (made locally, no API cost).")
        return
    left = await runtime.orchestrator.spend_caps.left(job.guild_id)
    console.print(f"Estimate: ≈ ${est.total_usd:.2f} ({est.parts_text()}) · budget: {left.text()}.", markup=False)


async def _brand(settings: Settings, path: Path) -> BrandKit:
    """The kit in `--brand FILE`, checked before any job exists or anything is paid; a bad file is
    the loader's one line and exit 2."""
    try:
        return await load_brand_file(path, settings.storage.data_dir)
    except JantError as exc:
        raise UsageError(exc.user_message) from None
    except OSError as exc:  # the logo is fine but the data directory cannot take it
        where = settings.storage.data_dir / "brand"
        raise UsageError(f"--brand: the logo cannot be stored in {where} ({exc.strerror or exc}).") from None


def _print_storyboard(job: Job) -> None:
    assert job.storyboard is not None
    table = Table(title=job.storyboard.title, show_lines=False)
    for col in ("#", "beat", "sec", "scene", "says", "on screen"):
        table.add_column(col)
    for s in job.storyboard.scenes:
        said = s.voiceover if s.voiceover is not None else "(silent: planned before voiceovers)"
        # Text(): user and model words are printed as they are, never read as rich markup.
        cells = (s.description, said, s.on_screen_text or "")
        table.add_row(str(s.index), s.beat.value, f"{s.duration:g}", *(Text(c) for c in cells))
    console.print(table)
    if job.storyboard.alt_hooks:
        hooks = Table(title="Hooks to test (each opens the same ad)", show_lines=False)
        for col in ("hook", "says", "on screen", "picture"):
            hooks.add_column(col)
        for n, s in enumerate(job.storyboard.hook_scenes()):
            cells = (s.voiceover or "", s.on_screen_text or "", s.visual_prompt)
            hooks.add_row(hook_letter(n), *(Text(c) for c in cells))
        console.print(hooks)
    spoken = job.storyboard.language or job.request.language
    model = video_model(job.request.model)
    console.print(
        f"Total {job.storyboard.total_duration:g} s, mood {job.request.mood.value}, video model {model.label}"
        + (f", lines in {language_name(spoken)}" if spoken else "")
        + "."
    )
    if note := lines_language_note(job.request.language, job.storyboard.language):
        console.print(note, markup=False)
    if job.storyboard.model_note:
        console.print(f"[yellow]{job.storyboard.model_note}[/]")
    if photo := job.photo_scenes():
        which = ("scene " if len(photo) == 1 else "scenes ") + ", ".join(map(str, photo))
        console.print(f"Your product photo is the picture of {which}: no image is generated for them.")


async def _run_with_progress(runtime: Runtime, job: Job, brand: BrandKit | None = None) -> int:
    orch = runtime.orchestrator
    progress = Progress(
        TextColumn("{task.description}", justify="left"),
        BarColumn(bar_width=30),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=console,
    )
    assert job.storyboard is not None
    rows: dict[int, TaskID] = {
        s.index: progress.add_task(f"scene {s.index} {s.beat.value:<7}", total=100, note="queued")
        for s in job.storyboard.scenes
    }
    # The voice (all scenes' lines in one row) and the music bed, when this run has providers for them.
    sound = {
        kind: progress.add_task(f"{label:<15}", total=100, note="queued")
        for kind, label in ((StageName.VOICE, "voice"), (StageName.MUSIC, "music bed"))
        if kind in orch.kinds
    }
    # The other hooks of an A/B test: a seed and a clip each, beside scene 1 (hook A).
    hooks = {
        hook: progress.add_task(f"hook {hook_letter(hook)}         ", total=100, note="queued")
        for hook in range(1, job.request.hooks)
    }
    overall = progress.add_task("[bold]ad[/]            ", total=100, note="")

    def on_event(event: ProgressEvent) -> None:
        snap = event.job
        for scene in snap.scenes:
            progress.update(rows[scene.index], completed=scene.progress, note=_scene_note(scene))
        for hook, row in hooks.items():
            stages = alt_hook_stages(snap, hook)
            if StageName.SEED in stages and StageName.CLIP in stages:
                made = SceneState(index=1, stages=stages)
                ready = stages[StageName.CLIP].status is StageStatus.DONE  # cut into its ad after the master
                progress.update(row, completed=made.progress, note="ready" if ready else _scene_note(made))
        if StageName.VOICE in sound:
            voice = voice_progress(snap)
            progress.update(sound[StageName.VOICE], completed=voice.percent, note=_part_note(voice, "lines"))
        if StageName.MUSIC in sound:
            music = music_progress(snap)
            progress.update(sound[StageName.MUSIC], completed=music.percent, note=_part_note(music, None))
        progress.update(overall, completed=snap.progress, note=snap.status.value)

    unsubscribe = orch.bus.subscribe(on_event)
    started = time.monotonic()
    try:
        task = await orch.approve(
            job, approved_by="cli", brand=brand
        )  # a refusal (over a budget) before any bar is drawn
        queued = isinstance(orch, QueuedOrchestrator)
        if queued:
            console.print(f"Job [bold]{job.id}[/] is queued for the workers (`jant worker`); following it here.")
        with Live(progress, console=console, refresh_per_second=8, transient=False):
            try:
                job = await asyncio.shield(task)
            except asyncio.CancelledError:
                if queued:  # this process only follows the job: the worker making it goes on
                    task.cancel()
                    err_console.print(_left_to_workers(job.id))
                else:
                    await orch.cancel(job, by="cli interrupt")
                raise
    finally:
        unsubscribe()
    console.print()
    elapsed = time.monotonic() - started
    return await _report(runtime, job, elapsed, await _formats_made(job))


def _left_to_workers(job_id: str) -> str:
    return (
        f"Stopped following job {job_id}. It goes on: a worker is making it (or will take it from the queue), "
        f"and `jant show {job_id}` says where it is; `jant cancel {job_id}` stops it."
    )


def _scene_note(scene: SceneState) -> str:
    if scene.done:
        return "done"
    for name, stage in (("clip", scene.clip), ("seed", scene.seed)):
        if stage.status is StageStatus.FAILED:
            return f"[red]{name} failed[/]"
        if stage.status is StageStatus.RETRYING:
            return f"[yellow]{name} retry {stage.attempt}/{stage.max_attempts}[/]"
        if stage.status is StageStatus.RUNNING:
            verb = "painting seed" if name == "seed" else "animating"
            return f"{verb}" + (f" (attempt {stage.attempt}/{stage.max_attempts})" if stage.attempt > 1 else "")
    if scene.clip.status is StageStatus.DONE:
        return "normalising"
    return "queued"


def _part_note(part: PartProgress, unit: str | None) -> str:
    """The voice row's note ('speaking 2/6 lines') or the music row's ('composing'); a provider's
    reason is printed as written, never read as markup."""
    count = f" {part.done}/{part.total} {unit}" if unit else ""
    why = escape(part.failures[0][1]) if part.failures else ""
    if part.state is PartState.OFF:
        return "[dim]off[/]"
    if part.state is PartState.FAILED:
        if unit is None:
            return f"[red]failed: {why}[/]"
        return f"[yellow]{count.strip()}, {len(part.failures)} failed: {why}[/]"
    if part.state is PartState.RETRYING and part.attempt_note:
        return f"[yellow]{escape(part.attempt_note)}[/]"
    verb = {PartState.READY: "ready", PartState.QUEUED: "queued", PartState.CANCELLED: "cancelled"}
    note = verb.get(part.state, "speaking" if unit else "composing") + count
    return note + (f" [yellow]({len(part.failures)} failed: {why})[/]" if part.failures else "")


async def _formats_made(job: Job) -> list[MadeFormat]:
    return await made_formats(Path(job.final_path), job.request.formats) if job.final_path else []


async def _report(runtime: Runtime, job: Job, elapsed: float, formats: Sequence[MadeFormat] = ()) -> int:
    directory = job.directory(runtime.settings.storage.data_dir)
    if job.status in (JobStatus.COMPLETED, JobStatus.PARTIAL):
        colour = "green" if job.status is JobStatus.COMPLETED else "yellow"
        console.print(f"[{colour}]Job {job.id} {job.status.value}[/] in {elapsed:.1f} s.")
        if job.error:
            console.print(f"[yellow]{job.error}[/]")
        console.print(f"final: {job.final_path}  ({(job.final_bytes or 0) / 1_048_576:.1f} MiB, {MASTER_FORMAT})")
        for made in formats:
            console.print(f"{made.format.key:>5}: {made.path}  ({made.bytes / 1_048_576:.1f} MiB, "
                          f"{made.width}x{made.height}, {made.format.key})")  # fmt: skip
        for hook in await asyncio.to_thread(made_hooks, job, directory):
            console.print(f"hook {hook.letter}: {hook.path}  ({hook.bytes / 1_048_576:.1f} MiB) ·", Text(hook.line))
        console.print(f"contact sheet: {directory / 'contact-sheet.png'}")
        if job.offline:
            console.print("[bold yellow]This is an offline preview[/]: set OPENAI_API_KEY and REPLICATE_API_TOKEN "
                          "for GPT-4o storyboards and SDXL/SVD footage.")  # fmt: skip
        for note in job.notes:
            console.print(Text(f"note: {note}", style="yellow"))
        if job.gpu_seconds or job.cost_usd:
            console.print(f"GPU time {job.gpu_seconds:.1f} s, estimated cost ${job.cost_usd:.2f}")
        return EXIT_OK
    err_console.print(f"[red]Job {job.id} {job.status.value}:[/] {job.error or 'no reason recorded'}")
    err_console.print(f"Files so far are in {directory}.")
    return EXIT_FAILED


async def list_jobs(settings: Settings, limit: int) -> int:
    if limit < 1:
        raise UsageError(f"--limit must be 1 or more (got {limit})")
    runtime = await Runtime.open(settings)
    try:
        jobs = await runtime.store.list(limit=limit)
    finally:
        await runtime.close()
    if not jobs:
        console.print('No jobs yet. Make one: jant makead "your product" --yes')
        return EXIT_OK
    table = Table()
    for col in ("id", "status", "created", "mood", "product"):
        table.add_column(col)
    table.add_column("final, or why not", min_width=24)
    for j in jobs:
        table.add_row(j.id, j.status.value, j.created_at.strftime("%Y-%m-%d %H:%M"), j.request.mood.value,
                      j.request.product[:40], _outcome(j))  # fmt: skip
    console.print(table)
    return EXIT_OK


def _outcome(job: Job) -> str:
    """The final file, or why there is none; and an upload that failed (the ad itself is fine)."""
    text = job.final_path or job.error or ""
    if job.ui.delivered == "failed":
        text += f" (not posted to Discord: {job.ui.delivery_error or 'no reason recorded'})"
    return text


async def show_spend(settings: Settings, guild: str | None) -> int:
    """`jant spend`: what `/spend` shows, for one server (`--guild`) or for every server and the CLI."""
    guild_id = guild.strip() if guild is not None else None
    if guild_id is not None and not guild_id.isdigit():
        raise UsageError(f"--guild takes a Discord server id, digits only (got {guild!r})")
    runtime = await Runtime.open(settings)
    try:
        report = await runtime.orchestrator.spend_caps.report(guild_id, every_guild=guild_id is None)
    finally:
        await runtime.close()
    where = f"server {guild_id}" if guild_id else "every server and the command line"
    console.print(f"Spend in {report.month_name} (UTC), {where}: ${report.total_usd:.2f}", markup=False)
    if report.by_day:
        days = Table(title="by day")
        days.add_column("day")
        days.add_column("cost", justify="right")
        for day, usd in report.by_day:
            days.add_row(day, f"${usd:.2f}")
        console.print(days)
        models = Table(title="by model")
        for col in ("model", "predictions", "cost"):
            models.add_column(col, justify="left" if col == "model" else "right")
        for model, usd, count in report.by_model:
            models.add_row(model, str(count), f"${usd:.2f}")
        console.print(models)
    else:
        console.print("Nothing spent this month yet.")
    if report.held_jobs:
        ads = "ad" if report.held_jobs == 1 else "ads"
        console.print(f"Held for {report.held_jobs} {ads} still being made: ${report.held_usd:.2f}", markup=False)
    if report.budget is not None:
        console.print(f"Budget: {report.budget.text()}.", markup=False)
    return EXIT_OK


async def show_job(settings: Settings, job_id: str) -> int:
    runtime = await Runtime.open(settings)
    try:
        job = await runtime.store.get(job_id.strip())
    finally:
        await runtime.close()
    if job is None:
        raise UsageError(f"no job {job_id!r}; `jant jobs` lists them")
    console.print(f"Job [bold]{job.id}[/]: {job.status.value}" + (f" — {job.error}" if job.error else ""))
    logo = await asyncio.to_thread(usable_logo, job.brand)
    for line in brand_lines(job.brand, logo_on_disk=logo is not None):
        console.print(line, markup=False)
    if job.storyboard:
        _print_storyboard(job)
        for s in job.scenes:
            stages = ", ".join(_stage_text(st) for st in s.stages.values())
            console.print(f"  scene {s.index}: {stages}", markup=False)
        if job.scenes:  # approved: the job-level stages (the music bed) were decided then
            for kind in STAGE_KINDS.values():
                if kind.level is StageLevel.JOB:
                    stage = job.job_stages.get(kind.name)
                    off = f"{kind.name} off ({_off_why(job, settings, kind.name)})"
                    text = _stage_text(stage) if stage is not None else off
                    console.print(f"  {kind.noun}: {text}", markup=False)
    if job.cost_usd or job.gpu_seconds:
        console.print(f"cost ${job.cost_usd:.2f}" + (f" (GPU time {job.gpu_seconds:.1f} s)" if job.gpu_seconds else ""))
    if notes := missing_parts(job):
        console.print("notes:")
        for note in notes:
            console.print(f"  {note}", markup=False)
    directory = job.directory(settings.storage.data_dir)
    files = await asyncio.to_thread(job_files, directory)
    if files:
        console.print(f"files in {directory}:")
        for path, size in files:
            console.print(f"  {path.name:<20} {_size(size)}")
    else:
        console.print(f"no files yet in {directory}")
    if job.ui.delivered == "failed":
        console.print(f"Not posted to Discord: {job.ui.delivery_error}. `/job id:{job.id}` posts it.", markup=False)
    return EXIT_OK


async def cancel_job(settings: Settings, job_id: str) -> int:
    """Cancel a job from a process that does not run it: the worker making it cancels it as its own
    Cancel would (docs/durable-jobs.md, "Cancel from another process")."""
    if settings.storage.engine != "dbos":
        raise ConfigError(
            "`jant cancel` stops a job that `jant worker` processes make (JANT_ENGINE=dbos).",
            hint="With the local engine a job runs in the process that started it: press Ctrl-C in that "
            "terminal, or the Cancel button of the bot's status message.",
        )
    runtime = await Runtime.open(settings, queues_jobs=True)
    try:
        job = await runtime.store.get(job_id.strip())
        if job is None:
            raise UsageError(f"no job {job_id!r}; `jant jobs` lists them")
        job = await runtime.orchestrator.cancel(job, by="cli")
    finally:
        await runtime.close()
    console.print(f"Job [bold]{job.id}[/] cancelled. Finished scenes are kept; nothing more will be generated.")
    return EXIT_OK


async def rerender(settings: Settings, job_id: str, brand_file: Path | None) -> int:
    """Compose a finished ad again: the scenes on disk, the brand kit of `brand_file` (else the job's
    server's kit; the defaults for a terminal-made ad), the captions and music settings as they are now."""
    runtime = await Runtime.open(settings)
    try:
        job = await runtime.store.get(job_id.strip().lower())
        if job is None:
            raise UsageError(f"no job {job_id!r}; `jant jobs` lists them")
        brand: BrandKit | None = None
        if brand_file is not None:
            try:
                brand = await load_brand_file(brand_file, settings.storage.data_dir)
            except JantError as exc:
                raise UsageError(f"--brand: {exc.user_message}") from None
        orch = runtime.orchestrator
        if why := await orch.rerender_problem(job):
            raise UsageError(why.replace("`", ""))
        title = f"Re-rendering job {job.id}"
        job = await _following(orch, job.id, EventKind.RERENDERING, title, orch.rerender(job, brand=brand))
        events = await runtime.store.events(job.id)
        kept = next((e["detail"] for e in reversed(events) if e["kind"] == "rerendered"), None)
        console.print(f"final: {job.final_path}  ({(job.final_bytes or 0) / 1_048_576:.1f} MiB)")
        if kept:
            console.print(f"previous: {job.directory(settings.storage.data_dir) / kept}")
        return EXIT_OK
    finally:
        await runtime.close()


async def _following(orch: Orchestrator, job_id: str, kind: EventKind, title: str, work: Awaitable[T]) -> T:
    """Await `work` (a re-render, new formats) under one spinner row whose note is each `kind`
    event's detail for `job_id`, as the orchestrator publishes its steps."""
    progress = Progress(TextColumn("{task.description}"), TextColumn("{task.fields[note]}"),
                        TimeElapsedColumn(), console=console)  # fmt: skip
    row = progress.add_task(title, total=None, note="starting")

    def on_event(event: ProgressEvent) -> None:
        if event.job_id == job_id and event.kind is kind and event.detail:
            progress.update(row, note=event.detail)

    unsubscribe = orch.bus.subscribe(on_event)
    try:
        with Live(progress, console=console, refresh_per_second=8, transient=True):
            return await work
    finally:
        unsubscribe()


async def add_formats(settings: Settings, job_id: str, wanted: str | None) -> int:
    """`jant formats JOB_ID [LIST]`: what the Formats button does, in the terminal. Exit 1 when none of
    the shapes could be made (each says why)."""
    keys: tuple[str, ...] | None = None
    if wanted is not None:
        try:
            keys = parse_format_list(wanted)
        except ValueError as exc:
            raise UsageError(f"formats: {exc}") from None
    runtime = await Runtime.open(settings)
    try:
        job = await runtime.store.get(job_id.strip().lower())
        if job is None:
            raise UsageError(f"no job {job_id!r}; `jant jobs` lists them")
        orch = runtime.orchestrator
        if why := await orch.formats_problem(job, keys):
            raise UsageError(why.replace("`", ""))
        title = f"Cutting job {job.id} into other formats"
        results = await _following(orch, job.id, EventKind.FORMATTING, title, orch.make_formats(job, keys))
        made = await made_formats(Path(job.final_path or ""), [r.format.key for r in results if r.path])
        for m in made:
            console.print(f"{m.format.key:>5}: {m.path}  ({m.bytes / 1_048_576:.1f} MiB, {m.width}x{m.height})")
        for r in results:
            if r.error:
                err_console.print(Text(f"{r.format.key:>5}: not made: {r.error}", style="yellow"))
        return EXIT_OK if made else EXIT_FAILED
    finally:
        await runtime.close()


def _off_why(job: Job, settings: Settings, kind: str) -> str:
    if kind == StageName.MUSIC and job_choices(job, settings).music_off_by_brand:
        return "the brand kit says music = none"
    return "no provider for it"


def brand_lines(kit: BrandKit | None, *, logo_on_disk: bool) -> list[str]:
    """The kit a job was made with, for `jant show` (plain text: printed without markup). A value
    the kit leaves unset says where it came from instead."""
    if kit is None:
        return ["brand: none recorded (a job's kit is recorded when it is approved)"]
    if kit.is_default:
        return ["brand: the defaults (no brand kit)"]
    if kit.logo_path is None:
        logo = "none"
    elif logo_on_disk:
        logo = f"{kit.logo_path} ({kit.logo_corner.value})"
    else:
        logo = f"gone from disk ({kit.logo_path}): upload it again"
    parts = [
        ("name", kit.name or "(none)"),
        ("colours", f"primary {kit.primary}, accent {kit.accent}"),
        ("font", kit.font),
        ("cta", kit.cta or "(none)"),
        ("url", kit.url or "(none)"),
        ("captions", kit.captions.value if kit.captions else "(JANT_CAPTIONS)"),
        ("voice", kit.voice or "(JANT_VOICE_ID or the provider's default)"),
        ("music", kit.music or "(the ad's mood)"),
        ("logo", logo),
        ("end card", kit.end_card.value),
    ]
    return ["brand:", *(f"  {key:<9} {value}" for key, value in parts)]


def _stage_text(stage: StageState) -> str:
    """'voice failed: why', 'clip retrying (attempt 2/3): why', 'seed done'."""
    text = f"{stage.stage} {stage.status.value}"
    if stage.status in (StageStatus.RUNNING, StageStatus.RETRYING) and stage.attempt > 1:
        text += f" (attempt {stage.attempt}/{stage.max_attempts})"
    if stage.error and stage.status in (StageStatus.FAILED, StageStatus.RETRYING):
        text += f": {stage.error}"
    return text


# The order a reader follows a job in: plan, stills, raw clips, lines, music, retimed scenes, the
# soundtrack, ads, overview.
_FILE_ORDER = (("storyboard", ".json"), ("seed-", ".png"), ("clip-", ".mp4"), ("voice-", ".wav"),
               ("music", ".wav"), ("scene-", ".mp4"), ("soundtrack", ".m4a"), ("final", ".mp4"),
               ("contact-sheet", ".png"))  # fmt: skip


def job_files(directory: Path) -> list[tuple[Path, int]]:
    """The job's files that exist (storyboard, seeds, clips, scene files, finals, contact sheet) with
    their sizes, in pipeline order; temporary and hidden files are left out."""
    if not directory.is_dir():
        return []
    found: list[tuple[tuple[int, int, str], Path, int]] = []
    for path in directory.iterdir():
        if path.name.startswith(".") or not path.is_file():
            continue
        for rank, (prefix, suffix) in enumerate(_FILE_ORDER):
            if path.name.startswith(prefix) and path.name.endswith(suffix):
                digits = "".join(ch for ch in path.stem if ch.isdigit())
                try:
                    size = path.stat().st_size
                except FileNotFoundError:  # removed by retention or a re-render while we looked
                    break
                found.append(((rank, int(digits) if digits else 0, path.name), path, size))
                break
    return [(path, size) for _, path, size in sorted(found)]


def _size(n: int) -> str:
    return f"{n / 1_048_576:.1f} MiB" if n >= 1_048_576 else f"{max(1, round(n / 1024))} KiB"


# What each secret unlocks, for `jant doctor`: (secret, what runs live with it, what happens without).
SECRET_USES = (
    ("OPENAI_API_KEY", "storyboards by GPT-4o", "storyboards come from the offline planner"),
    ("REPLICATE_API_TOKEN", "seed images (SDXL) and clips (SVD)", "seed images and clips are drawn locally"),
    ("DISCORD_TOKEN", "`jant bot`", "`jant bot` cannot start (`jant makead` works without it)"),
)


def _provider_cells(provider: StoryboardPlanner | StageProvider) -> tuple[str, str]:
    return ("[yellow]offline[/]" if provider.offline else "[green]live[/]", provider.name)


Selection = Callable[[Settings], tuple[StageProvider | None, str | None]]


def _kind_selections() -> dict[str, Selection]:
    """How the optional kinds' providers are chosen (`JANT_VOICE`, `JANT_MUSIC`): the functions
    `build_providers` calls too. Doctor asks them again for the one thing `Providers` does not keep
    per kind: the notice that says why a kind is offline or off."""
    from pipeline.providers.offline_music import build_music_provider
    from pipeline.providers.voice_selection import build_voice_provider

    return {StageName.VOICE: build_voice_provider, StageName.MUSIC: build_music_provider}


def _kind_detail(kind: str, provider: StageProvider, settings: Settings) -> str:
    if kind == StageName.VOICE:
        return f"{provider.name}, voice {voice_id_for(provider.name, settings)}"
    return provider.name


def _voice_problems(settings: Settings) -> list[str]:
    """What is wrong with the voice settings: a voice id the model does not have (with the ones it
    has), a speech endpoint that shuts down, a missing extra."""
    from pipeline.providers.voice_selection import voice_doctor_problems

    return voice_doctor_problems(settings)


async def doctor(settings: Settings) -> int:
    from pipeline.ffmpeg import ffmpeg_exe, ffmpeg_version
    from pipeline.model_lifetimes import check_model_lifetimes
    from pipeline.runtime import build_providers, check_data_dir

    ok = True
    providers = build_providers(settings)
    table = Table(title="jant doctor")
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail")
    for name, live_use, offline_use in SECRET_USES:
        state = settings.secret_state(name)
        if state == "set":
            table.add_row(name, "[green]set[/]", live_use)
        elif state == "empty":
            table.add_row(name, "[yellow]empty[/]", f"present but empty, so not set: {offline_use}")
        else:
            table.add_row(name, "[yellow]not set[/]", offline_use)
    table.add_row("storyboards", *_provider_cells(providers.planner))
    selections, spare = _kind_selections(), []
    shown_notices: list[str] = []
    selected_notices: list[str | None] = []
    problems = _voice_problems(settings)
    for kind in STAGE_KINDS.values():
        stage_provider, notice = providers.get(kind.name), None
        if (select := selections.get(kind.name)) is not None:
            chosen, notice = select(settings)
            selected_notices.append(notice)  # `build_providers` puts the same notice in `providers.notices`
            spare.append(chosen)
            stage_provider = stage_provider or chosen
            if notice in problems:  # a warning about a live provider gets a warning row of its own
                notice = None
        detail = f" — {escape(notice)}" if notice else ""  # "jant[voice]" is not rich markup
        shown_notices += [notice] if notice else []
        if stage_provider is not None:
            status = _provider_cells(stage_provider)[0]
            table.add_row(f"{kind.noun}s", status, _kind_detail(kind.name, stage_provider, settings) + detail)
        elif kind.optional:
            table.add_row(f"{kind.noun}s", "[dim]off[/]", escape(notice or "no provider set up: ads are made without"))
    for notice in providers.notices:
        if notice not in selected_notices:
            table.add_row("", "", escape(notice))
    for problem in (p for p in problems if not any(p.rstrip(".") in n for n in shown_notices)):
        table.add_row("voice settings", "[yellow]warning[/]", escape(problem))
    for chosen in spare:  # asked only for their notices: the run's own providers are closed with the runtime
        if (aclose := getattr(chosen, "aclose", None)) is not None:
            await aclose()
    report = await check_model_lifetimes(settings)  # OpenAI's from the API (with a key), the rest from the registry
    for model in report.models:
        warning = model.warning()
        status = "[yellow]warning[/]" if warning else "[green]ok[/]"
        quiet = f"shuts down on {model.shutdown_date}" if model.shutdown_date else "no shutdown date announced"
        table.add_row(model.setting, status, escape(warning or f"{model.model}: {quiet}"))
    if report.unavailable:
        table.add_row("model dates", "[yellow]unknown[/]", report.unavailable)
    video = video_model(settings.replicate.video_model)
    allowed = ", ".join(settings.replicate.allowed_video_models) or "none"
    table.add_row("video model", "[green]ok[/]", escape(f"{video.label} ({video.key}, {video.price_text}); "
                                                        f"allowed: {allowed}"))  # fmt: skip
    try:
        exe = ffmpeg_exe()
        table.add_row("ffmpeg", "[green]ok[/]", f"{exe} ({await ffmpeg_version()})")
    except Exception as exc:
        ok = False
        table.add_row("ffmpeg", "[red]missing[/]", str(exc))
    checking = "data dir"
    try:
        await asyncio.to_thread(check_data_dir, settings)
        table.add_row("data dir", "[green]ok[/]", str(settings.storage.data_dir))
        checking = "database"
        runtime = await Runtime.open(settings, providers)
        count = await runtime.store.count()
        await runtime.close()
        table.add_row("database", "[green]ok[/]", f"{runtime.store.description} ({count} jobs)")
    except JantError as exc:
        ok = False
        table.add_row(checking, "[red]error[/]", exc.user_message)
    if settings.media.byte_limit is not None:
        warning = byte_limit_warning(settings.media.byte_limit)
        table.add_row("JANT_BYTE_LIMIT", "[yellow]warning[/]" if warning else "[green]ok[/]",
                      warning or f"final.mp4 fits in {settings.media.byte_limit} bytes")  # fmt: skip
    profile = settings.media.profile
    table.add_row("environment", settings.media.env, f"seeds {profile.seed_width}x{profile.seed_height}, "
                  f"output {profile.output_width}x{profile.output_height}")  # fmt: skip
    console.print(table)
    return EXIT_OK if ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

"""Wires settings, storage, providers and the orchestrator together for any front end."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.orchestrator import Orchestrator
from pipeline.providers.base import (
    ImageGenerator,
    Providers,
    StageProvider,
    StoryboardPlanner,
    VideoGenerator,
)
from pipeline.providers.offline_images import OfflineImageGenerator
from pipeline.providers.offline_music import build_music_provider
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from pipeline.providers.offline_video import OfflineVideoGenerator
from pipeline.providers.replicate_media import AccountLimits, share_account_limits
from pipeline.providers.voice_selection import build_voice_provider
from pipeline.shared_limits import SharedWindows
from pipeline.stage_kinds import StageName
from pipeline.store import JobStore

if TYPE_CHECKING:
    from pipeline.durable.workers import WorkerWatch

log = logging.getLogger(__name__)


def build_providers(settings: Settings) -> Providers:
    """Real providers where keys are set, offline ones elsewhere — with one notice per offline stage."""
    notices: list[str] = []
    planner: StoryboardPlanner
    images: ImageGenerator
    video: VideoGenerator
    if settings.planner_live:
        from pipeline.providers.openai_planner import OpenAIStoryboardPlanner

        planner = OpenAIStoryboardPlanner(settings)
    else:
        planner = OfflineStoryboardPlanner()
        why = "JANT_OFFLINE is set" if settings.media.offline else settings.unset_reason("OPENAI_API_KEY")
        notices.append(f"{why}: storyboards come from the offline planner (a local preview, not GPT-4o).")
    limits: AccountLimits | None = None
    if settings.replicate.api_token is not None:
        # One poll budget and one create budget per Replicate account: seeds, clips, voices and
        # music share them, so their creates are paced together.
        limits = AccountLimits.from_settings(settings)
    if settings.media_live:
        from pipeline.providers.replicate_media import ReplicateImageGenerator, ReplicateVideoGenerator

        images = ReplicateImageGenerator(settings, limits=limits)
        video = ReplicateVideoGenerator(settings, limits=limits)
    else:
        images, video = OfflineImageGenerator(), OfflineVideoGenerator()
        why = "JANT_OFFLINE is set" if settings.media.offline else settings.unset_reason("REPLICATE_API_TOKEN")
        notices.append(f"{why}: seed images and clips are drawn locally (an offline preview, not SDXL/SVD).")
    # Every kind is one entry here, under its name in `STAGE_KINDS`; an optional kind left out (no
    # voice, no music) simply has no stages, and its notice says why.
    stages: dict[str, StageProvider] = {StageName.SEED: images, StageName.CLIP: video}
    voice, voice_notice = build_voice_provider(settings, limits=limits)
    music, music_notice = build_music_provider(settings, limits=limits)
    reasons: dict[str, str] = {}
    for kind, provider, notice in ((StageName.VOICE, voice, voice_notice), (StageName.MUSIC, music, music_notice)):
        if provider is not None:
            stages[kind] = provider
        elif notice:
            reasons[kind] = notice
    notices += [n for n in (voice_notice, music_notice) if n]
    return Providers(planner, stages=stages, notices=notices, reasons=reasons)


def check_data_dir(settings: Settings) -> None:
    """Fail early, with the path, when the data directory cannot be written."""
    path = settings.storage.data_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
        # A name of its own: processes starting together must not delete each other's probe.
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=path)
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
            os.unlink(probe)
        settings.storage.db_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"The data directory {path} cannot be written ({exc.strerror or exc}).",
            hint="Set JANT_DATA_DIR to a folder you can write to.",
        ) from exc


@dataclass
class Runtime:
    settings: Settings
    store: JobStore
    providers: Providers
    orchestrator: Orchestrator
    durable: bool = False  # jobs run as DBOS workflows (JANT_ENGINE=dbos): DBOS is launched in this process
    # With the durable engine: this process's worker id lease, heartbeat and takeovers.
    watch: WorkerWatch | None = None
    # Budgets counted in the database, spent with every other process on it (JANT_SHARED_LIMITS).
    shared: SharedWindows | None = None

    @classmethod
    async def open(
        cls,
        settings: Settings,
        providers: Providers | None = None,
        *,
        runs_jobs: bool = False,
        worker_id: str | None = None,
        takes_over: bool = False,
        serves_takeovers: bool = False,
        notify: Callable[[str], None] | None = None,
        takes_queued: bool = False,
        queues_jobs: bool = False,
    ) -> Runtime:
        """`runs_jobs`: this process runs jobs (`jant makead`, `jant worker`). With JANT_ENGINE=dbos only
        such a process launches DBOS, which recovers this worker's unfinished jobs at once: a `jant jobs`
        must not start them only to stop them a moment later. There `worker_id` (`--id`) overrides
        JANT_WORKER_ID, `takes_over` makes it take silent workers' jobs over (`jant worker`),
        `serves_takeovers` makes it run the jobs taken over (implied by `takes_over`), `notify` hears
        of each takeover, and `takes_queued` makes it also run the jobs front ends queue (`jant worker`,
        `jant bot`). `queues_jobs` (JANT_ENGINE=dbos only): it runs none and queues the jobs it starts
        for the workers instead (`--no-worker`)."""
        await asyncio.to_thread(check_data_dir, settings)
        providers = providers or build_providers(settings)
        store = await JobStore.open(settings.storage.database)
        shared: SharedWindows | None = None
        if settings.storage.limits_shared:
            shared = SharedWindows(store.rate_slots)
            share_account_limits(settings, providers, shared)
        runtime: Runtime
        if queues_jobs and settings.storage.engine == "dbos":
            runtime = await cls._open_queueing(settings, store, providers)
        elif runs_jobs and settings.storage.engine == "dbos":
            serves = takes_over or serves_takeovers
            runtime = await cls._open_durable(
                settings, store, providers, worker_id, takes_over, serves, notify, takes_queued=takes_queued
            )
        else:
            runtime = cls(settings, store, providers, Orchestrator(settings, store, providers))
        runtime.shared = shared
        return runtime

    @classmethod
    async def _open_queueing(cls, settings: Settings, store: JobStore, providers: Providers) -> Runtime:
        from pipeline.durable.job_queue import JobQueue
        from pipeline.durable.queued_orchestrator import QueuedOrchestrator

        try:
            queue = await JobQueue.open(settings)
        except BaseException:
            await store.close()
            raise
        return cls(settings, store, providers, QueuedOrchestrator(settings, store, providers, queue))

    @classmethod
    async def _open_durable(
        cls,
        settings: Settings,
        store: JobStore,
        providers: Providers,
        worker_id: str | None,
        takes_over: bool,
        serves_takeovers: bool,
        notify: Callable[[str], None] | None,
        *,
        takes_queued: bool = False,
    ) -> Runtime:
        from pipeline.durable import engine, workers

        try:
            engine.require_dbos()
            # The id is held before DBOS launches: a launch recovers the id's pending jobs, which a live
            # holder of the same id is running.
            worker_id = await workers.worker_id_for(settings, worker_id)
            lease = await workers.WorkerLease.acquire(store.repo.leases, worker_id, settings.storage.worker_heartbeat_s)
        except BaseException:
            await store.close()
            raise
        settings = workers.with_worker_id(settings, worker_id)
        from pipeline.durable.orchestrator import DurableOrchestrator

        orchestrator = DurableOrchestrator(settings, store, providers)
        orchestrator.attach()  # before the launch: DBOS starts recovering this worker's jobs in it
        try:
            # Only workers dequeue the runs a takeover resumes or a front end queues: a `jant makead` would
            # drop them when it ends.
            queues = [
                *([workers.TAKEOVER_QUEUE] if serves_takeovers else []),
                *([engine.JOBS_QUEUE] if takes_queued else []),
            ]
            await engine.launch(settings, listen_queues=queues)
            if serves_takeovers:
                await workers.serve_takeovers()
        except BaseException:
            orchestrator.detach()
            await lease.release()
            await store.close()
            raise
        watch = workers.WorkerWatch(
            lease, store, takeover_s=settings.storage.worker_takeover_s, takes_over=takes_over, notify=notify
        )
        watch.start()
        return cls(settings, store, providers, orchestrator, durable=True, watch=watch)

    async def close(self, grace_s: float = 8.0) -> None:
        await self.orchestrator.shutdown(grace_s)
        if self.durable:
            from pipeline.durable import engine
            from pipeline.durable.orchestrator import DurableOrchestrator

            assert isinstance(self.orchestrator, DurableOrchestrator)
            self.orchestrator.detach()
            if self.watch is not None:
                await self.watch.stop()
            try:
                await engine.destroy()
            finally:
                if self.watch is not None:  # after DBOS stopped: a restart with this id may launch from here on
                    await self.watch.lease.release()
        for provider in self.providers.every():
            aclose = getattr(provider, "aclose", None)
            if aclose is not None:
                await aclose()
        if self.shared is not None:
            await self.shared.drain()
        await self.store.close()

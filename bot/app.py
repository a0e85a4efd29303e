"""The Discord bot: `jant bot` → `run_bot(settings)`.

`JantBot` wires the pipeline's runtime (SQLite, providers, orchestrator) to Discord: slash commands,
persistent job buttons, the status-message tracker with its edit throttle, and result delivery.
It asks only for the `guilds` intent: slash commands and buttons arrive as interactions, so it
never needs to read message content.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import sys
from collections.abc import Callable
from typing import Any

import discord
import yarl
from discord.ext import commands

from bot.brand_commands import BrandCommands
from bot.commands import AdCommands, JantCommandTree
from bot.discord_connect import (
    CannotReachDiscord,
    OneLineReconnects,
    failure_line,
    is_unreachable,
    retry_delays,
    retry_line,
    silence_voice_warnings,
)
from bot.edit_throttle import EditThrottle
from bot.heartbeat import FILE_NAME, GatewayHeartbeat
from bot.in_flight import InFlightWork
from bot.job_actions import JobActions
from bot.job_buttons import JobButton
from bot.job_records import JobRecords
from bot.result_delivery import ResultDelivery
from bot.spend_command import SpendCommands
from bot.status_edit_gate import StatusEditGate
from bot.status_tracker import StatusTracker
from pipeline.composer import Composer
from pipeline.config import Settings
from pipeline.durable.queued_orchestrator import QueuedOrchestrator
from pipeline.model_lifetimes import check_model_lifetimes
from pipeline.models import Job
from pipeline.providers.base import Providers
from pipeline.retention import purge_periodically
from pipeline.runtime import Runtime

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# SIGTERM → exit well inside the 10 s that `docker stop` and systemd give before SIGKILL. Phases share it:
SHUTDOWN_BUDGET_S = 8.0
SHUTDOWN_GRACE_S = 4.0  # interactions being handled when the bot is asked to stop
JOBS_GRACE_S = 2.0  # job tasks stopping (their state is on disk; predictions keep running on Replicate)
EDITS_GRACE_S = 2.0  # last status edits and result uploads in flight
API_VERSION_SUFFIX = re.compile(r"/api/v\d+/?$")


def rest_base(api_base: str) -> str:
    """`DISCORD_API_BASE` may be given with or without `/api/v10`; discord.py's Route.BASE needs it."""
    base = api_base.rstrip("/")
    return base if API_VERSION_SUFFIX.search(base) else base + "/api/v10"


def apply_endpoint_overrides(settings: Settings) -> None:
    """Point discord.py elsewhere (tests: the local emulator). Route.BASE is read on every request."""
    if settings.discord.api_base:
        discord.http.Route.BASE = rest_base(settings.discord.api_base)
    if settings.discord.gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord.gateway_url)


def intents() -> discord.Intents:
    wanted = discord.Intents.none()
    wanted.guilds = True  # guilds, channels, roles: enough to resolve who clicked and where
    return wanted


class JantBot(commands.Bot):
    def __init__(
        self,
        settings: Settings,
        *,
        providers: Providers | None = None,
        composer: Composer | None = None,
        runs_jobs: bool = True,
        **client_options: Any,
    ) -> None:
        """`runs_jobs=False` (`jant bot --no-worker`, JANT_ENGINE=dbos): the bot makes no ad itself; it
        queues each for the `jant worker` processes and follows them through the database."""
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            tree_cls=JantCommandTree,
            **client_options,
        )
        self.settings = settings
        self.runs_jobs = runs_jobs
        self._providers = providers
        self._composer = composer
        self.runtime: Runtime
        self.records: JobRecords
        self.status_tracker: StatusTracker
        self.job_actions: JobActions
        self._unsubscribe: Callable[[], None] | None = None
        self.in_flight = InFlightWork()
        self._closing = False
        self._retention: asyncio.Task[None] | None = None
        self._lifetimes: asyncio.Task[None] | None = None
        self._gateway_up = False
        self.heartbeat = GatewayHeartbeat(
            settings.storage.data_dir / FILE_NAME,
            settings.discord.heartbeat_interval_s,
            lambda: self._gateway_up and not self.is_closed(),
        )
        apply_endpoint_overrides(settings)

    @property
    def closing(self) -> bool:
        """Shutting down: new commands and clicks are answered 'try again in a minute'."""
        return self._closing

    async def setup_hook(self) -> None:
        # With JANT_ENGINE=dbos, DBOS is launched here, on the bot's loop: the jobs it recovers and the
        # ones it takes from the queue run beside the bot's objects. Its recovery replaces `resume_all`. A
        # bot that runs jobs is a worker like `jant worker`: it holds its worker id's lease and takes over
        # the jobs of workers that died.
        self.runtime = await Runtime.open(
            self.settings, self._providers, runs_jobs=self.runs_jobs, takes_queued=True, queues_jobs=not self.runs_jobs,
            takes_over=self.runs_jobs,
        )  # fmt: skip
        if self._composer is not None:
            self.runtime.orchestrator.composer = self._composer
        for notice in self.runtime.providers.notices:
            log.warning("offline: %s", notice)
        if self.settings.planner_live:  # in the background: a slow OpenAI must not hold up start-up
            self._lifetimes = asyncio.create_task(self._warn_about_model_lifetimes(), name="model-lifetimes")
        self.records = JobRecords(self.runtime)
        throttle: EditThrottle[Job] = EditThrottle(self.settings.discord.status_edit_interval_s)
        self.status_tracker = StatusTracker(
            self, throttle, ResultDelivery(self), heartbeat_s=self.settings.discord.status_heartbeat_s
        )
        if self.runtime.shared is not None:  # other bots on this database edit the same messages
            gate = StatusEditGate(self.runtime.shared, self.settings.discord, self.status_tracker.where)
            await gate.prune()
            throttle.gate = gate
        self.job_actions = JobActions(self)

        self.add_dynamic_items(JobButton)
        await self.add_cog(AdCommands(self))
        await self.add_cog(BrandCommands(self))
        await self.add_cog(SpendCommands(self))
        await self._sync_commands()

        # Restart: jobs that were running go on (their predictions are polled by the stored ids, never
        # created again) and keep editing their status messages; results that finished while the bot
        # was down, or just before it stopped, are posted now.
        tracker = self.status_tracker
        self._unsubscribe = self.runtime.orchestrator.bus.subscribe(tracker.on_event)
        reattached = await tracker.reattach_unfinished()
        settled = await tracker.settle_unfinished()
        resumed = await self.runtime.orchestrator.resume_all()
        if isinstance(self.runtime.orchestrator, QueuedOrchestrator):  # the workers make them: follow them
            self.runtime.orchestrator.follow_active_jobs()
        if resumed or settled:
            log.info("resumed %d job(s), %d status message(s) re-attached, %d finished result(s) to post",
                     len(resumed), reattached, settled)  # fmt: skip
        tracker.start()
        self.heartbeat.start()
        self._retention = asyncio.create_task(
            purge_periodically(
                self.runtime.store, self.settings.storage.data_dir, self.settings.storage.retention_days
            ),
            name="media-retention",
        )

    async def _warn_about_model_lifetimes(self) -> None:
        report = await check_model_lifetimes(self.settings)
        for warning in report.warnings():
            log.warning("%s", warning)

    async def _sync_commands(self) -> None:
        guild_ids = self.settings.discord.guild_ids
        if guild_ids:  # guild commands appear at once; global ones can take a while to propagate
            for guild_id in guild_ids:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
                log.info("synced %d commands to guild %s", len(synced), guild_id)
        else:
            synced = await self.tree.sync()
            log.info("synced %d global commands", len(synced))

    # The health check's view of the gateway: up from a (re)connect or resume until a disconnect.
    async def on_connect(self) -> None:
        self._gateway_up = True

    async def on_resumed(self) -> None:
        self._gateway_up = True

    async def on_disconnect(self) -> None:
        self._gateway_up = False

    async def on_ready(self) -> None:
        log.info("logged in as %s (%s) in %d guild(s)", self.user, self.user.id if self.user else "?", len(self.guilds))

    async def close(self) -> None:
        """Stop taking work (commands and clicks are answered 'try again in a minute'), let interactions
        in progress finish, stop jobs where they are — their state is on disk and their predictions keep
        running on Replicate, to be polled again after the restart — write the last status edits we can,
        close the database, then disconnect. All within `SHUTDOWN_BUDGET_S`."""
        if self._closing:
            return await super().close()
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_BUDGET_S

        def left(cap: float) -> float:
            return max(0.1, min(cap, deadline - loop.time()))

        runtime: Runtime | None = getattr(self, "runtime", None)
        tracker: StatusTracker | None = getattr(self, "status_tracker", None)
        try:
            if not await self.in_flight.wait_idle(left(SHUTDOWN_GRACE_S)):
                log.warning("closing with %d interaction(s) still being handled", self.in_flight.count)
            for task in (self._retention, self._lifetimes):
                if task is not None:
                    task.cancel()
            await self.heartbeat.stop()
            if self._unsubscribe is not None:
                self._unsubscribe()
            if runtime is not None:
                await runtime.orchestrator.shutdown(left(JOBS_GRACE_S))
            if tracker is not None:
                await tracker.close(left(EDITS_GRACE_S))
            if runtime is not None:
                await runtime.close(left(0.5))
        except Exception:
            log.exception("error while shutting down")
        finally:
            await super().close()


async def _serve(settings: Settings, token: str, *, runs_jobs: bool = True) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not on this platform / not the main thread
            pass
    attempts = settings.discord.connect_attempts
    delays = retry_delays(attempts, settings.discord.connect_backoff_s)
    for attempt in range(1, attempts + 1):
        try:
            return await _serve_once(JantBot(settings, runs_jobs=runs_jobs), token, stop)
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            where = discord.http.Route.BASE
            if attempt == attempts:
                raise CannotReachDiscord(where, attempts, exc) from exc
            print(retry_line(where, exc, attempt, attempts, delays[attempt - 1]), file=sys.stderr, flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delays[attempt - 1])
            if stop.is_set():
                return EXIT_OK
    return EXIT_OK


async def _serve_once(bot: JantBot, token: str, stop: asyncio.Event) -> int:
    async with bot:
        runner = asyncio.create_task(bot.start(token), name="discord-bot")
        stopper = asyncio.create_task(stop.wait(), name="stop-signal")
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            log.info("stopping: finishing edits and closing the database")
            await bot.close()
            await asyncio.gather(runner, return_exceptions=True)
            return EXIT_OK
        stopper.cancel()
        runner.result()
    return EXIT_OK


def run_bot(settings: Settings, *, runs_jobs: bool = True) -> int:
    if settings.discord.token is None or not settings.discord.token.get_secret_value().strip():
        print(
            "error: DISCORD_TOKEN is not set. Create a bot at https://discord.com/developers/applications, "
            "copy its token into DISCORD_TOKEN (environment or .env), and invite it with the "
            "applications.commands and bot scopes.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    for name in ("bot", "pipeline"):
        logging.getLogger(name).setLevel(logging.INFO)
    silence_voice_warnings()
    logging.getLogger("discord.client").addFilter(OneLineReconnects())
    try:
        return asyncio.run(_serve(settings, settings.discord.token.get_secret_value().strip(), runs_jobs=runs_jobs))
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:
        known = failure_line(exc)
        if known is None:
            raise
        line, code = known
        print(line, file=sys.stderr)
        return code

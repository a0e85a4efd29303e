"""A team on a local Discord: the emulator, the real JantBot logged into it, and three teammates.

Test modules using it declare ``pytest_plugins = ["tests.conftest_discord"]`` and pass the
``discord_errors`` fixture in, so ERROR records of the bot's own loggers fail the test too.

Alice asks for ads, Bob is a plain member, Carol has the approver role. Providers are the scripted
ones from `tests.scripted_providers` unless a test brings its own, so the bot's Discord side is
exercised without waiting on media generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.app import JantBot
from pipeline.config import Settings
from pipeline.models import Job
from pipeline.providers.base import Providers
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from tests.emulators.discord_server import DiscordEmulator, InteractionRecord, StoredMessage, User
from tests.scripted_providers import CopyComposer, ScriptedImages, ScriptedVideo

if TYPE_CHECKING:
    from tests.conftest_discord import DiscordErrorLog

PRODUCT = "Lumen — a smart desk lamp that follows your rhythm, dims at night and charges your phone"
APPROVER_ROLE = "Ad approver"
JOB_IN_CUSTOM_ID = re.compile(r"^jant:\w+:([0-9a-f]{8})$")


@contextlib.contextmanager
def bot_errors_collected(errors: DiscordErrorLog) -> Iterator[DiscordErrorLog]:
    """Our own loggers' ERROR records fail the test too (the emulator fixture watches only 'discord')."""
    loggers = [logging.getLogger(name) for name in ("bot", "pipeline", "storage", "asyncio")]
    for logger in loggers:
        logger.addHandler(errors)
    try:
        yield errors
    finally:
        for logger in loggers:
            logger.removeHandler(errors)


def bot_settings(tmp_path: Path, emu: DiscordEmulator, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "JANT_DATA_DIR": tmp_path / "data",
        "JANT_RETRY_BACKOFF_S": 0.01,
        "JANT_APPROVER_ROLE": APPROVER_ROLE,
        "JANT_STATUS_EDIT_INTERVAL_S": 0.2,
        "DISCORD_API_BASE": emu.base_url,
        "DISCORD_GATEWAY_URL": emu.gateway_url,
    }
    values.update(overrides)
    return Settings(**values)


def scripted_providers() -> Providers:
    return Providers(OfflineStoryboardPlanner(), ScriptedImages("seed"), ScriptedVideo("clip"))  # type: ignore[arg-type]


@dataclass
class Team:
    emu: DiscordEmulator
    bot: JantBot
    alice: User
    bob: User
    carol: User

    @property
    def guild_id(self) -> int:
        assert self.emu.guild is not None
        return self.emu.guild.id

    @property
    def channel_id(self) -> int:
        assert self.emu.channel is not None
        return self.emu.channel.id

    @property
    def images(self) -> ScriptedImages:
        return self.bot.runtime.providers.images  # type: ignore[return-value]

    @property
    def video(self) -> ScriptedVideo:
        return self.bot.runtime.providers.video  # type: ignore[return-value]

    async def makead(
        self, product: str = PRODUCT, mood: str = "tech", user: User | None = None, **options: str
    ) -> tuple[InteractionRecord, StoredMessage, str]:
        """Run /makead; returns the interaction, the storyboard message and the job id."""
        who = user or self.alice
        rec = await self.emu.slash_command(
            self.guild_id, self.channel_id, who.id, "makead", {"product": product, "mood": mood, **options}
        )
        await rec.wait_response()
        [board] = await rec.wait_followups(1, timeout=10)
        return rec, board, job_id_of(board)

    async def start_generating(self, *, until_clip: int) -> tuple[StoredMessage, str, StoredMessage]:
        """Alice runs /makead and approves it; returns once scene `until_clip`'s clip is generating.

        Returns the storyboard message, the job id and the status message.
        """
        _, board, job_id = await self.makead()
        await self.click(board, "approve", job_id, self.alice)
        status = await self.status_message(job_id)
        await asyncio.wait_for(self.video.started[until_clip].wait(), 5)
        return board, job_id, status

    async def click(self, message: StoredMessage | int, action: str, job_id: str, user: User) -> InteractionRecord:
        message_id = message if isinstance(message, int) else message.id
        rec = await self.emu.click_button(message_id, f"jant:{action}:{job_id}", user.id)
        return await rec.wait_response()

    async def job(self, job_id: str) -> Job:
        job = await self.bot.runtime.store.get(job_id)
        assert job is not None
        return job

    async def settled(self, job_id: str, *, timeout: float = 20.0, what: str = "the job to settle") -> Job:  # noqa: ASYNC109
        """The job once its end has reached Discord (`job.ui.settled`); fails after `timeout`."""

        async def done() -> Job | None:
            job = await self.job(job_id)
            return job if job.ui.settled else None

        result: Job = await eventually(done, timeout=timeout, what=what)
        return result

    async def status_message(self, job_id: str, timeout: float = 10.0) -> StoredMessage:  # noqa: ASYNC109
        """The job's (latest, undeleted) status message: a plain bot message titled "Ad job <id>"."""

        def find() -> StoredMessage | None:
            for m in reversed(self.bot_messages()):
                first = m.versions[0]
                titles = [e.get("title", "") for e in first.embeds]
                if not m.deleted and first.source == "create" and any(t.startswith(f"Ad job {job_id}") for t in titles):
                    return m
            return None

        return await self.emu.wait_for(find, timeout=timeout, description=f"the status message of job {job_id}")

    async def wait_until(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str | None = None) -> Any:  # noqa: ASYNC109
        return await self.emu.wait_for(predicate, timeout=timeout, description=what)

    def bot_messages(self) -> list[StoredMessage]:
        return [m for m in self.emu.all_messages if m.author_id == self.emu.bot_user.id]


async def eventually(predicate: Callable[[], Awaitable[Any]], timeout: float = 20.0, what: str = "") -> Any:  # noqa: ASYNC109
    """Re-check an async condition (a database read) until it holds; fail after `timeout`."""
    async with asyncio.timeout(timeout):
        for delay in itertools.chain((0.01, 0.02, 0.05), itertools.repeat(0.1)):
            if result := await predicate():
                return result
            await asyncio.sleep(delay)
    raise AssertionError(f"never happened: {what}")


def job_id_of(message: StoredMessage) -> str:
    for custom_id in message.custom_ids:
        if m := JOB_IN_CUSTOM_ID.match(custom_id):
            return m.group(1)
    raise AssertionError(f"message {message.id} carries no job button: {message.custom_ids}")


def embed_text(message: StoredMessage, version: int = -1) -> str:
    """Everything a reader sees in a message version: content, titles, descriptions, fields."""
    v = message.versions[version]
    parts = [v.content or ""]
    for e in v.embeds:
        parts += [e.get("title", ""), e.get("description", "")]
        parts += [f"{f.get('name', '')}\n{f.get('value', '')}" for f in e.get("fields", [])]
        parts.append((e.get("footer") or {}).get("text", ""))
    return "\n".join(parts)


@contextlib.asynccontextmanager
async def running_team(
    emu: DiscordEmulator,
    tmp_path: Path,
    errors: DiscordErrorLog,
    *,
    providers: Providers | None = None,
    composer: Any = None,
    real_providers: bool = False,
    runs_jobs: bool = True,
    **settings: Any,
) -> AsyncIterator[Team]:
    """`real_providers`: build them from the settings (GPT-4o / Replicate clients, pointed at emulators
    by the settings' keys and base URLs) instead of the scripted in-process ones. `runs_jobs=False`:
    `jant bot --no-worker` (with JANT_ENGINE=dbos)."""
    assert emu.guild is not None and emu.user is not None
    if not hasattr(emu, "_jant_team"):
        bob = emu.add_user("bob")
        emu.add_member(emu.guild.id, bob.id)
        carol = emu.add_user("carol")
        role = emu.add_role(emu.guild.id, APPROVER_ROLE)
        emu.add_member(emu.guild.id, carol.id, roles=[role.id])
        emu._jant_team = (bob, carol)  # type: ignore[attr-defined]  # a restarted bot meets the same team
    bob, carol = emu._jant_team  # type: ignore[attr-defined]
    bot = JantBot(
        bot_settings(tmp_path, emu, **settings),
        providers=None if real_providers else providers or scripted_providers(),
        composer=composer if composer is not None else CopyComposer(),
        runs_jobs=runs_jobs,
        guild_ready_timeout=0.05,
    )
    with bot_errors_collected(errors):
        async with emu.run(bot):
            yield Team(emu, bot, emu.user, bob, carol)

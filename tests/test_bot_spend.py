"""Spend caps on Discord, through the emulator: the storyboard card shows the estimate and the budget
left, Approve over the server's budget is refused privately (saying what it costs, what is left, when
it resets and who can raise it) and nothing is made, and `/spend` shows the month by day and by model.

Seeds and clips bill like Replicate's (scripted, 2 GPU-seconds each); at $0.01 per GPU-second a scene
is estimated at (6 + 90) × $0.01 = $0.96 and actually costs 2 × $0.02.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from pipeline.brand import GuildPolicy
from pipeline.models import Job, JobStatus
from pipeline.providers.base import Providers
from pipeline.providers.offline_planner import OfflineStoryboardPlanner
from tests.bot_harness import Team, embed_text, eventually, running_team
from tests.emulators.discord_server import DiscordEmulator
from tests.scripted_providers import ScriptedImages, ScriptedVideo

pytest_plugins = ["tests.conftest_discord"]  # the discord_emulator and discord_errors fixtures

NOW = datetime(2026, 12, 4, 20, 30, tzinfo=UTC)


async def settled(team: Team, job_id: str) -> Job | None:
    job = await team.job(job_id)
    return job if job.ui.settled else None


def paid_providers() -> Providers:
    images = ScriptedImages("replicate-sdxl", offline=False)
    return Providers(OfflineStoryboardPlanner(), images, ScriptedVideo("replicate-svd", offline=False))  # type: ignore[arg-type]


async def test_approve_over_the_daily_budget_is_refused_and_spend_shows_the_month(
    discord_emulator: DiscordEmulator, discord_errors, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with running_team(
        emu, tmp_path, discord_errors, providers=paid_providers(), JANT_PRICE_PER_GPU_SECOND=0.01
    ) as team:
        orch = team.bot.runtime.orchestrator
        orch.spend_caps.clock = lambda: NOW
        await team.bot.runtime.store.save_guild_policy(str(team.guild_id), GuildPolicy(budget_daily_usd=10))

        _, board, job_id = await team.makead()
        n = len((await team.job(job_id)).scenes)
        estimate = n * 0.96
        assert f"≈ ${estimate:.2f} for ~{n * 96} GPU-seconds" in embed_text(board)
        assert "**Budget:** $10.00 of $10.00 left today" in embed_text(board)
        for scene in range(1, n + 1):
            team.video.gates[scene] = asyncio.Event()  # the first ad is still being made
        await team.click(board, "approve", job_id, team.alice)
        await team.status_message(job_id)

        _, second, second_id = await team.makead()
        left = 10 - estimate
        assert f"**Budget:** ${left:.2f} of $10.00 left today" in embed_text(second)
        edits = emu.message(second.id).edit_count
        refused = await team.click(second, "approve", second_id, team.alice)
        assert refused.ephemeral and refused.content == (
            f"⚠️ This ad is estimated at ${estimate:.2f}, but this server has ${left:.2f} left of its $10.00 daily "
            f"budget (${estimate:.2f} spent or held today). Nothing was made or charged. The daily budget resets "
            "at 00:00 UTC, in 3 h 30 min. Members with Manage Server or the approver role can raise it with "
            "`/brand set budget_daily:`."
        )
        assert emu.message(second.id).edit_count == edits  # the storyboard is as it was: Approve can be pressed
        assert (await team.job(second_id)).status is JobStatus.AWAITING_APPROVAL
        assert await team.bot.runtime.store.predictions(second_id) == []

        for gate in team.video.gates.values():
            gate.set()
        status = await team.status_message(job_id)
        await team.wait_until(lambda: "Done." in embed_text(status), what="the first ad to finish")
        await team.wait_until(lambda: orch.live_job(job_id) is None, what="the first job to end")

        rec = await emu.slash_command(team.guild_id, team.channel_id, team.bob.id, "spend", {})
        await rec.wait_response()
        assert rec.ephemeral
        [embed] = rec.embeds
        spent = n * 2 * 0.02
        assert embed["title"] == "Spend in December 2026"
        assert embed["description"] == (
            f"**${spent:.2f}** spent on predictions this month (UTC).\n"
            f"**Budget:** ${10 - spent:.2f} of $10.00 left today\n"
            "Members with Manage Server or the approver role change it with `/brand set budget_daily:`."
        )
        today = datetime.now(UTC)
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert fields == {
            "By day": f"{today:%a %d %b} · ${spent:.2f}",
            "By model": f"Stable Video Diffusion (svd) · {n} predictions · ${n * 0.02:.2f}\n"
            f"stability-ai/sdxl (seed images) · {n} predictions · ${n * 0.02:.2f}",
        }

        # A re-roll spends money too: with the budget lowered below its price it is refused, and the
        # finished ad, its status message and its posted result stay as they were.
        await team.bot.runtime.store.save_guild_policy(str(team.guild_id), GuildPolicy(budget_daily_usd=spent + 0.5))
        job = await eventually(lambda: settled(team, job_id), what="the ad to be posted")
        assert job.ui.delivered == "posted"
        edits = status.edit_count
        rec = await emu.slash_command(
            team.guild_id, team.channel_id, team.alice.id, "reroll", {"id": job_id, "scene": 2, "part": "seed"}
        )
        await rec.wait_response()
        assert rec.ephemeral and rec.content == (
            "⚠️ Re-rolling scene 2 is estimated at $0.96, but this server has $0.50 left of its "
            f"${spent + 0.5:.2f} daily budget (${spent:.2f} spent or held today). Nothing was made or charged. "
            "The daily budget resets at 00:00 UTC, in 3 h 30 min. Members with Manage Server or the approver "
            "role can raise it with `/brand set budget_daily:`."
        )
        after = await team.job(job_id)
        assert after.status is JobStatus.COMPLETED and after.ui == job.ui and status.edit_count == edits
        assert team.images.creates[2] == 1

"""`/spend`: what this server's ads cost this month, by day and by model, and the budget left.

Answered privately: a teammate checking the budget should not post the team's spend in the channel.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.display_text import cap
from pipeline.spend_caps import SpendReport

if TYPE_CHECKING:
    from bot.app import JantBot

FIELD_MAX = 1024


def render_spend(report: SpendReport) -> discord.Embed:
    """Pure: the month's total, one line per day with spend, one per model, the holds and the budget."""
    lines = [f"**${report.total_usd:.2f}** spent on predictions this month (UTC)."]
    if report.held_jobs:
        ads = "ad" if report.held_jobs == 1 else "ads"
        lines.append(f"${report.held_usd:.2f} more is held for {report.held_jobs} {ads} still being made.")
    if report.budget is not None:
        lines.append(f"**Budget:** {report.budget.text()}")
        lines.append("Members with Manage Server or the approver role change it with `/brand set budget_daily:`.")
    embed = discord.Embed(title=f"Spend in {report.month_name}", description="\n".join(lines))
    if report.by_day:
        days = [f"{datetime.fromisoformat(day):%a %d %b} · ${usd:.2f}" for day, usd in report.by_day]
        embed.add_field(name="By day", value=cap("\n".join(days), FIELD_MAX), inline=True)
        models = [
            f"{model} · {count} prediction{'s' if count != 1 else ''} · ${usd:.2f}"
            for model, usd, count in report.by_model
        ]
        embed.add_field(name="By model", value=cap("\n".join(models), FIELD_MAX), inline=True)
    else:
        embed.add_field(name="By day", value="Nothing spent this month yet.", inline=False)
    return embed


class SpendCommands(commands.Cog):
    def __init__(self, bot: JantBot) -> None:
        self.bot = bot

    @app_commands.command(name="spend", description="What this server's ads cost this month, and the budget left")
    @app_commands.guild_only()
    async def spend(self, interaction: discord.Interaction[Any]) -> None:
        with self.bot.in_flight.track():
            guild_id = str(interaction.guild_id) if interaction.guild_id else None
            report = await self.bot.runtime.orchestrator.spend_caps.report(guild_id)
            await interaction.response.send_message(embed=render_spend(report), ephemeral=True)

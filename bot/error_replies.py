"""Answers when something goes wrong: specific for what a user can fix, generic (and logged) otherwise."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import discord
from discord import app_commands

from bot.display_text import shown
from pipeline.errors import JantError

log = logging.getLogger(__name__)

GENERIC = "Something went wrong on my side{where}. It has been logged; please try again in a minute."
RESTARTING = "🔁 I'm restarting; try again in a minute. Ads already being made carry on."


async def reply_ephemeral(interaction: discord.Interaction[Any], text: str, **kwargs: Any) -> None:
    """Answer privately, whether or not the interaction was already acknowledged."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True, **kwargs)
        else:
            await interaction.response.send_message(text, ephemeral=True, **kwargs)
    except discord.HTTPException as exc:  # the token may have expired; nothing more we can say
        log.warning("could not answer interaction %s: %s", interaction.id, exc)


def user_error_text(exc: BaseException) -> str | None:
    """The message for an error the user caused (or can act on); None for our own bugs."""
    if isinstance(exc, app_commands.CommandInvokeError):
        exc = exc.original
    if isinstance(exc, JantError):
        return f"⚠️ {exc.user_message}"
    if isinstance(exc, app_commands.NoPrivateMessage):
        return "⚠️ Ads are made in a server channel, not in direct messages."
    if isinstance(exc, app_commands.CommandOnCooldown):
        return f"⚠️ Slow down: try again in {exc.retry_after:.0f} s."
    if isinstance(exc, app_commands.MissingPermissions | app_commands.BotMissingPermissions):
        return f"⚠️ {exc}"
    if isinstance(exc, app_commands.TransformerError):
        value = shown(str(exc.value), 40)
        if getattr(exc.transformer, "__discord_app_commands_is_choice__", False):
            return f"⚠️ `{value}` is not one of the choices; pick one from the list Discord shows."
        return f"⚠️ I could not read `{value}` as {exc.type.name.lower()}."
    return None


async def reply_error(interaction: discord.Interaction[Any], exc: BaseException, *, job_id: str | None = None) -> None:
    text = user_error_text(exc)
    if text is None:
        job_id = job_id or interaction.extras.get("job_id")
        original = exc.original if isinstance(exc, app_commands.CommandInvokeError) else exc
        log.error("unexpected error in %s (job %s)", _what(interaction), job_id or "-", exc_info=original)
        text = GENERIC.format(where=f" with job `{job_id}`" if job_id else "")
    await reply_ephemeral(interaction, text)


def _what(interaction: discord.Interaction[Any]) -> str:
    if interaction.command is not None:
        return f"/{interaction.command.qualified_name}"
    data: Mapping[str, Any] = interaction.data or {}
    return f"component {data.get('custom_id', '?')}"

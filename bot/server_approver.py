"""The approver role of the server an interaction comes from: its own (GuildPolicy.approver_role_id)
or the `JANT_APPROVER_ROLE` default."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord

from bot.access_policy import Actor, ApproverRole, approver_role

if TYPE_CHECKING:
    from bot.app import JantBot


async def server_approver(bot: JantBot, interaction: discord.Interaction[Any]) -> ApproverRole | None:
    guild_id = interaction.guild_id
    policy = await bot.runtime.store.guild_policy(str(guild_id) if guild_id else None)
    if policy.approver_role_id is None:
        return approver_role(None, None, bot.settings.discord.approver_role)
    guild = interaction.guild
    if guild is None:  # not in the cache (yet): the id still decides, the name is generic
        return ApproverRole("approver", policy.approver_role_id)
    role = guild.get_role(policy.approver_role_id)
    # A deleted role approves nobody: the server falls back to the default until it picks another.
    return approver_role(policy.approver_role_id, role.name if role else None, bot.settings.discord.approver_role)


def actor_of(interaction: discord.Interaction[Any]) -> Actor:
    user = interaction.user
    roles = [r for r in getattr(user, "roles", ()) if not r.is_default()]
    perms = interaction.permissions
    return Actor(
        user.id, tuple(r.name for r in roles), perms.manage_guild or perms.administrator, tuple(r.id for r in roles)
    )

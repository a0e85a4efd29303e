"""The Discord emulator is faithful enough for the REAL discord.py client.

A small bot defined here (the product bot lives in bot/) logs in, syncs its commands, answers a
teammate's slash command, buttons, selects and modals, uploads files, and survives what Discord
does to bots: rate limits, server errors, late acknowledgements, expired tokens, limits on
content and uploads, missing permissions, deleted messages and dropped gateway connections.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.emulators.discord_server import FAKE_TOKEN, FLAG_EPHEMERAL, FLAG_LOADING, DiscordEmulator

pytest_plugins = ["tests.conftest_discord"]  # discord_emulator, discord_errors

MiB = 1024 * 1024


class ApproveView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Approve", style=discord.ButtonStyle.success, custom_id="job:1:approve")
    async def approve(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.edit_message(content=f"Approved by {interaction.user.display_name}", view=None)

    @discord.ui.button(label="New storyboard", custom_id="job:1:again")
    async def again(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.defer()
        await interaction.edit_original_response(content="Writing a new storyboard…", view=None)
        await interaction.followup.send("Only you can see this", ephemeral=True)

    @discord.ui.select(
        custom_id="job:1:mood",
        options=[
            discord.SelectOption(label="Tech", value="tech"),
            discord.SelectOption(label="Calm", value="calm"),
        ],
    )
    async def mood(self, interaction: discord.Interaction, select: discord.ui.Select) -> None:
        await interaction.response.send_message(f"Mood set to {select.values[0]}", ephemeral=True)


class EditSceneModal(discord.ui.Modal, title="Edit scene 2"):
    def __init__(self) -> None:
        super().__init__(custom_id="job:1:edit-scene")
        self.text = discord.ui.TextInput(custom_id="scene-text", style=discord.TextStyle.long, max_length=200)
        self.add_item(discord.ui.Label(text="New narration", component=self.text))

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"Scene 2 is now: {self.text.value}")


class ScenarioBot(commands.Bot):
    """Just enough bot to exercise the emulator through discord.py's public API."""

    def __init__(self) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            guild_ready_timeout=0.05,
        )
        self.outcomes: asyncio.Queue[Any] = asyncio.Queue()
        self.gate = asyncio.Event()
        self.last_interaction: discord.Interaction | None = None
        self._register_commands()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py sleeps 5 s before every re-IDENTIFY (Discord limits identifies); not needed locally.
        return None

    def _register_commands(self) -> None:
        tree = self.tree

        @tree.command(description="Turn a product description into a video ad")
        @app_commands.choices(
            mood=[
                app_commands.Choice(name="Tech", value="tech"),
                app_commands.Choice(name="Calm", value="calm"),
            ]
        )
        async def makead(interaction: discord.Interaction, product: str, mood: str) -> None:
            self.last_interaction = interaction
            await interaction.response.defer(thinking=True)
            await interaction.followup.send(
                f"Storyboard for {product} ({mood})",
                view=ApproveView(),
                allowed_mentions=discord.AllowedMentions.none(),
            )

        @tree.command(description="Upload a rendered ad of the given size")
        async def render(interaction: discord.Interaction, size: int) -> None:
            await interaction.response.defer(thinking=True)
            try:
                await interaction.followup.send("Your ad", file=discord.File(io.BytesIO(bytes(size)), "ad.mp4"))
            except discord.HTTPException as e:
                await self.outcomes.put(e)
                await interaction.followup.send(f"Too big: the limit here is {interaction.filesize_limit} bytes")

        @tree.command(description="Waits for the test before acknowledging")
        async def slow(interaction: discord.Interaction) -> None:
            await self.gate.wait()
            try:
                await interaction.response.defer()
            except discord.NotFound as e:
                await self.outcomes.put(e)

        @tree.command(description="Answers at once")
        async def ping(interaction: discord.Interaction) -> None:
            self.last_interaction = interaction
            await interaction.response.send_message("pong", ephemeral=True)

        @tree.command(description="Answers with a preview file")
        async def preview(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("Preview", file=discord.File(io.BytesIO(b"seed"), "seed-1.png"))

        @tree.command(description="Suggests products while typing")
        async def pick(interaction: discord.Interaction, product: str) -> None:
            await interaction.response.send_message(f"Picked {product}")

        @pick.autocomplete("product")
        async def pick_product(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            names = ["Lumen lamp", "Lumen mini", "Aero bottle"]
            return [app_commands.Choice(name=n, value=n) for n in names if n.lower().startswith(current.lower())]

        @tree.command(description="Opens the scene editor")
        async def edit(interaction: discord.Interaction) -> None:
            await interaction.response.send_modal(EditSceneModal())

        @tree.command(description="Opens a modal whose title is too long")
        async def badmodal(interaction: discord.Interaction) -> None:
            modal = EditSceneModal()
            modal.title = "x" * 46
            try:
                await interaction.response.send_modal(modal)
            except discord.HTTPException as e:
                await self.outcomes.put(e)
                await interaction.response.send_message("could not open the editor", ephemeral=True)


async def next_outcome(bot: ScenarioBot) -> Any:
    return await asyncio.wait_for(bot.outcomes.get(), 5)


def text_channel(bot: ScenarioBot, emu: DiscordEmulator) -> discord.TextChannel:
    channel = bot.get_channel(emu.channel.id)
    assert isinstance(channel, discord.TextChannel)
    return channel


async def test_teammate_runs_makead_bot_defers_then_follows_up_and_approval_edits_the_message(
    discord_emulator: DiscordEmulator,
) -> None:
    emu = discord_emulator
    bot = ScenarioBot()
    async with emu.run(bot):
        assert bot.user.id == emu.bot_user.id
        assert emu.intents == discord.Intents.default().value
        synced = await bot.tree.sync()
        assert {c.name for c in synced} == {c["name"] for c in emu.commands()}
        assert {o["name"] for o in next(c for c in emu.commands() if c["name"] == "makead")["options"]} == {
            "product",
            "mood",
        }

        rec = await emu.slash_command(
            emu.guild.id,
            emu.channel.id,
            emu.user.id,
            "makead",
            {"product": "Lumen @everyone", "mood": "tech"},
        )
        await rec.wait_response()
        assert rec.response_type == 5 and not rec.ephemeral
        assert rec.latency is not None and rec.latency < emu.ack_deadline

        [storyboard] = await rec.wait_followups(1)
        assert storyboard.id == rec.original.id, "the first followup fills the thinking message"
        assert [v.source for v in storyboard.versions] == ["deferred", "followup"]
        assert storyboard.versions[0].flags & FLAG_LOADING and not storyboard.flags & FLAG_LOADING
        assert storyboard.content == "Storyboard for Lumen @everyone (tech)"
        assert storyboard.allowed_mentions == {"parse": []}
        assert not emu.would_ping(storyboard), "user text must never ping"
        assert storyboard.custom_ids == ["job:1:approve", "job:1:again", "job:1:mood"]

        click = await emu.click_button(storyboard.id, "job:1:approve", emu.user.id)
        await click.wait_response()
        assert click.response_type == 7
        assert storyboard.content == "Approved by Alice" and storyboard.components == []
        assert [v.source for v in storyboard.versions][-1] == "component-update"
        times = [v.at for v in storyboard.versions]
        assert times == sorted(times)


async def test_select_reply_and_modal_submit_reach_the_bot(discord_emulator: DiscordEmulator) -> None:
    emu = discord_emulator
    bot = ScenarioBot()
    async with emu.run(bot):
        await bot.tree.sync()
        rec = await emu.slash_command(
            emu.guild.id, emu.channel.id, emu.user.id, "makead", {"product": "Lamp", "mood": "calm"}
        )
        [storyboard] = await rec.wait_followups(1)

        choice = await emu.select(storyboard.id, "job:1:mood", ["calm"], emu.user.id)
        await choice.wait_response()
        assert choice.response_type == 4 and choice.ephemeral
        assert choice.content == "Mood set to calm"
        assert choice.original.flags & FLAG_EPHEMERAL

        opener = await emu.slash_command(emu.guild.id, emu.channel.id, emu.user.id, "edit")
        await opener.wait_response()
        assert opener.response_type == 9
        assert opener.modal["title"] == "Edit scene 2"
        assert opener.modal["components"][0]["type"] == 18, "discord.py 2.7 wraps inputs in labels"

        submit = await emu.submit_modal("job:1:edit-scene", {"scene-text": "The lamp glows at dusk"}, emu.user.id)
        await submit.wait_response()
        assert submit.content == "Scene 2 is now: The lamp glows at dusk"

        again = await emu.click_button(storyboard.id, "job:1:again", emu.user.id)
        [private_note] = await again.wait_followups(1)
        assert again.response_type == 6, "a deferred update: no new message"
        assert storyboard.content == "Writing a new storyboard…" and storyboard.components == []
        assert private_note.id != storyboard.id and private_note.ephemeral

        typing = await emu.autocomplete(
            emu.guild.id, emu.channel.id, emu.user.id, "pick", {"product": "lum"}, focused="product"
        )
        await typing.wait_response()
        assert typing.response_type == 8
        assert [c["value"] for c in typing.choices] == ["Lumen lamp", "Lumen mini"]

        bad = await emu.slash_command(emu.guild.id, emu.channel.id, emu.user.id, "badmodal")
        error = await next_outcome(bot)
        assert error.status == 400 and error.code == 50035
        await bad.wait(lambda r: r.acknowledged)
        assert [c.status for c in bad.callbacks] == [400, 200]


async def test_uploads_are_stored_and_the_guild_limit_is_enforced(discord_emulator: DiscordEmulator) -> None:
    emu = discord_emulator
    bot = ScenarioBot()
    async with emu.run(bot):
        await bot.tree.sync()
        channel = text_channel(bot, emu)
        assert channel.guild.filesize_limit == 10 * MiB

        sent = await channel.send("contact sheet", file=discord.File(io.BytesIO(b"\x89PNG data"), "sheet.png"))
        stored = emu.message(sent.id)
        assert stored.attachments == [("sheet.png", b"\x89PNG data", 9)]
        assert stored.attachments[0].content_type == "image/png"
        assert await sent.attachments[0].read() == b"\x89PNG data", "the CDN serves the bytes"

        await sent.edit(attachments=[discord.File(io.BytesIO(b"v2"), "sheet-v2.png")])
        assert [v.attachments for v in stored.versions] == [
            [("sheet.png", b"\x89PNG data", 9)],
            [("sheet-v2.png", b"v2", 2)],
        ]

        preview = await emu.slash_command(emu.guild.id, emu.channel.id, emu.user.id, "preview")
        await preview.wait_response()
        assert preview.response_type == 4
        assert preview.original.attachments == [("seed-1.png", b"seed", 4)]

        with pytest.raises(discord.HTTPException) as too_big:
            await channel.send(file=discord.File(io.BytesIO(bytes(10 * MiB + 1)), "ad.mp4"))
        assert (too_big.value.status, too_big.value.code) == (413, 40005)

        rec = await emu.slash_command(emu.guild.id, emu.channel.id, emu.user.id, "render", {"size": 10 * MiB + 1})
        error = await next_outcome(bot)
        assert error.code == 40005
        [notice] = await rec.wait_followups(1)
        assert notice.content == f"Too big: the limit here is {10 * MiB} bytes"

        small = await emu.slash_command(emu.guild.id, emu.channel.id, emu.user.id, "render", {"size": 1000})
        [ad] = await small.wait_followups(1)
        assert ad.attachments == [("ad.mp4", bytes(1000), 1000)]

        updated = asyncio.ensure_future(bot.wait_for("guild_update", timeout=5))
        emu.set_premium_tier(emu.guild.id, 2)
        await updated
        assert channel.guild.filesize_limit == 50 * MiB
        big = await channel.send(file=discord.File(io.BytesIO(bytes(10 * MiB + 1)), "ad.mp4"))
        assert emu.message(big.id).attachments[0].size == 10 * MiB + 1


async def test_rate_limited_and_failing_requests_are_retried_by_discord_py(
    discord_emulator: DiscordEmulator,
) -> None:
    emu = discord_emulator
    bot = ScenarioBot()
    async with emu.run(bot):
        channel = text_channel(bot, emu)
        status = await channel.send("Rendering 0/6")
        edit_route = rf"/channels/{channel.id}/messages/{status.id}$"

        limited = emu.fail_next("PATCH", edit_route, status=429, retry_after=0.05)
        await status.edit(content="Rendering 1/6")
        assert limited.hits == 1
        assert emu.count("PATCH", edit_route, status=429) == 1
        assert emu.count("PATCH", edit_route, status=200) == 1
        assert [v.content for v in emu.message(status.id).versions] == ["Rendering 0/6", "Rendering 1/6"]

        emu.fail_next("GET", edit_route, status=500)
        fetched = await channel.fetch_message(status.id)
        assert fetched.content == "Rendering 1/6"
        assert emu.count("GET", edit_route, status=500) == 1


async def test_channel_views_fetches_and_rate_limit_headers_pace_discord_py(
    discord_emulator: DiscordEmulator,
) -> None:
    emu = discord_emulator
    bot = ScenarioBot()
    async with emu.run(bot):
        channel = text_channel(bot, emu)
        status = await channel.send("Storyboard", view=ApproveView())
        click = await emu.click_button(status.id, "job:1:approve", emu.user.id)
        await click.wait_response()
        assert emu.message(status.id).content == "Approved by Alice"

        assert (await bot.fetch_channel(channel.id)).name == "general"
        guild = await bot.fetch_guild(emu.guild.id)
        assert guild.filesize_limit == 10 * MiB
        assert (await guild.fetch_member(emu.user.id)).display_name == "Alice"
        assert [m.content async for m in channel.history(limit=10)] == ["Approved by Alice"]

        edit_route = r"/channels/\d+/messages/\d+$"
        emu.set_rate_limit("PATCH", edit_route, limit=2, per=0.3)
        for i in range(4):
            await status.edit(content=f"Rendering {i}/6")
        assert emu.count("PATCH", edit_route, status=429) == 0, "discord.py paced itself from X-RateLimit-*"
        edits = [v.at for v in emu.message(status.id).versions[-4:]]
        assert edits[2] - edits[0] >= 0.25


async def test_discord_limits_are_enforced_through_discord_py(discord_emulator: DiscordEmulator) -> None:
    emu = discord_emulator
    bot = ScenarioBot()
    async with emu.run(bot):
        channel = text_channel(bot, emu)
        with pytest.raises(discord.HTTPException) as too_long:
            await channel.send("x" * 2001)
        assert (too_long.value.status, too_long.value.code) == (400, 50035)
        assert "content" in str(too_long.value)

        embed = discord.Embed(title="Storyboard")
        for i in range(26):
            embed.add_field(name=f"Scene {i}", value="…")
        with pytest.raises(discord.HTTPException) as too_many_fields:
            await channel.send(embed=embed)
        assert too_many_fields.value.code == 50035
        assert emu.messages(emu.channel.id) == []

        with pytest.raises(discord.HTTPException) as empty:
            await channel.send(content="")
        assert empty.value.code == 50006


async def test_late_ack_second_ack_and_expired_token_fail_like_discord(
    discord_emulator: DiscordEmulator,
) -> None:
    emu = discord_emulator
    bot = ScenarioBot()
    async with emu.run(bot):
        await bot.tree.sync()
        late = await emu.slash_command(emu.guild.id, emu.channel.id, emu.user.id, "slow")
        emu.advance_clock(3.5)
        bot.gate.set()
        error = await next_outcome(bot)
        assert isinstance(error, discord.NotFound) and error.code == 10062
        assert not late.acknowledged and late.callbacks[0].code == 10062

        rec = await emu.slash_command(emu.guild.id, emu.channel.id, emu.user.id, "ping")
        await rec.wait_response()
        assert rec.content == "pong" and rec.ephemeral
        async with aiohttp.ClientSession() as http:
            url = f"{emu.api_base}/interactions/{rec.id}/{rec.token}/callback?with_response=1"
            async with http.post(url, json={"type": 4, "data": {"content": "again"}}) as response:
                assert response.status == 400
                assert (await response.json())["code"] == 40060

        interaction = bot.last_interaction
        assert interaction is not None
        await interaction.followup.send("still within 15 minutes")
        emu.advance_clock(15 * 60 + 1)
        with pytest.raises(discord.HTTPException) as expired:
            await interaction.followup.send("too late")
        assert (expired.value.status, expired.value.code) == (401, 50027)
        with pytest.raises(discord.HTTPException):
            await interaction.edit_original_response(content="too late")


async def test_dropped_gateway_resumes_and_interactions_keep_arriving(
    discord_emulator: DiscordEmulator,
) -> None:
    emu = discord_emulator
    bot = ScenarioBot()
    async with emu.run(bot):
        await bot.tree.sync()
        async with emu.gateway_outage():
            assert not emu.connected
            during = await emu.slash_command(emu.guild.id, emu.channel.id, emu.user.id, "ping")
        await during.wait_response()
        assert during.content == "pong"
        assert (emu.identify_count, emu.resume_count) == (1, 1)
        assert emu.replayed_events >= 1, "the interaction sent during the outage was replayed on RESUME"
        assert emu.gateway_connections[-1].path == "/gateway-resume"

        await emu.drop_gateway(resumable=False)
        await emu.wait_for(lambda: emu.identify_count == 2 and emu.connected)
        after = await emu.slash_command(emu.guild.id, emu.channel.id, emu.user.id, "ping")
        await after.wait_response()
        assert after.content == "pong"
        assert bot.is_ready() and not bot.is_closed()


async def test_permissions_threads_and_deletions(discord_emulator: DiscordEmulator) -> None:
    emu = discord_emulator
    bot = ScenarioBot()
    async with emu.run(bot):
        channel = text_channel(bot, emu)
        starter = await channel.send("Job 1 started")
        thread = await starter.create_thread(name="Job 1")
        assert thread.id == starter.id
        await thread.send("Scene 1 ready")
        assert [t.name for t in emu.threads] == ["Job 1"]
        assert [m.content for m in emu.messages(thread.id)] == ["Scene 1 ready"]
        assert emu.events("THREAD_CREATE")[-1].data["id"] == str(thread.id)

        updated = asyncio.ensure_future(bot.wait_for("guild_channel_update", timeout=5))
        emu.deny_bot(channel.id, "ATTACH_FILES", "CREATE_PUBLIC_THREADS")
        await updated
        assert not channel.permissions_for(channel.guild.me).attach_files
        with pytest.raises(discord.Forbidden) as no_files:
            await channel.send(file=discord.File(io.BytesIO(b"x"), "x.bin"))
        assert no_files.value.code == 50013
        with pytest.raises(discord.Forbidden):
            await channel.create_thread(name="Job 2", type=discord.ChannelType.public_thread)
        await channel.send("text still works")

        status = await channel.send("Rendering…")
        deleted = asyncio.ensure_future(bot.wait_for("raw_message_delete", timeout=5))
        await emu.delete_message(channel.id, status.id)
        assert (await deleted).message_id == status.id
        with pytest.raises(discord.NotFound) as gone:
            await status.edit(content="Done")
        assert gone.value.code == 10008

        await emu.delete_channel(channel.id)
        with pytest.raises(discord.NotFound) as no_channel:
            await channel.send("anyone?")
        assert no_channel.value.code == 10003


async def test_allowed_mentions_decide_who_gets_pinged(discord_emulator: DiscordEmulator) -> None:
    emu = discord_emulator
    bot = ScenarioBot()
    async with emu.run(bot):
        channel = text_channel(bot, emu)
        loud = await channel.send("@everyone the ad is ready")
        quiet = await channel.send("@everyone the ad is ready", allowed_mentions=discord.AllowedMentions.none())
        only_alice = await channel.send(
            f"<@{emu.user.id}> <@&{emu.guild.id}>",
            allowed_mentions=discord.AllowedMentions(everyone=False, roles=False),
        )
        assert emu.message(loud.id).allowed_mentions is None and emu.would_ping(loud.id)
        assert emu.message(quiet.id).allowed_mentions == {"parse": []} and not emu.would_ping(quiet.id)
        assert emu.would_ping(only_alice.id)
        await quiet.edit(content=f"<@{emu.user.id}>", allowed_mentions=discord.AllowedMentions.all())
        assert not emu.would_ping(quiet.id), "mentions added by an edit never ping"


def _button(custom_id: str, label: str = "Go") -> dict[str, Any]:
    return {"type": 2, "style": 1, "custom_id": custom_id, "label": label}


def _row(*components: dict[str, Any]) -> dict[str, Any]:
    return {"type": 1, "components": list(components)}


LIMIT_CASES = {
    "content": ({"content": "x" * 2001}, ["content"]),
    "11 embeds": ({"embeds": [{"title": "t"}] * 11}, ["embeds"]),
    "title": ({"embeds": [{"title": "t" * 257}]}, ["embeds", "0", "title"]),
    "description": ({"embeds": [{"description": "d" * 4097}]}, ["embeds", "0", "description"]),
    "26 fields": ({"embeds": [{"fields": [{"name": "n", "value": "v"}] * 26}]}, ["embeds", "0", "fields"]),
    "field name": (
        {"embeds": [{"fields": [{"name": "n" * 257, "value": "v"}]}]},
        ["embeds", "0", "fields", "0", "name"],
    ),
    "field value": (
        {"embeds": [{"fields": [{"name": "n", "value": "v" * 1025}]}]},
        ["embeds", "0", "fields", "0", "value"],
    ),
    "footer": ({"embeds": [{"footer": {"text": "f" * 2049}}]}, ["embeds", "0", "footer", "text"]),
    "author": ({"embeds": [{"author": {"name": "a" * 257}}]}, ["embeds", "0", "author", "name"]),
    "6000 total": ({"embeds": [{"description": "d" * 3001}, {"description": "d" * 3001}]}, ["embeds"]),
    "6 rows": ({"components": [_row(_button(f"b{i}")) for i in range(6)]}, ["components"]),
    "6 buttons": (
        {"components": [_row(*[_button(f"b{i}") for i in range(6)])]},
        ["components", "0", "components"],
    ),
    "long custom_id": (
        {"components": [_row(_button("c" * 101))]},
        ["components", "0", "components", "0", "custom_id"],
    ),
    "empty custom_id": (
        {"components": [_row(_button(""))]},
        ["components", "0", "components", "0", "custom_id"],
    ),
    "duplicate custom_id": (
        {"components": [_row(_button("same")), _row(_button("same"))]},
        ["components", "1", "components", "0", "custom_id"],
    ),
    "label": (
        {"components": [_row(_button("b", "l" * 81))]},
        ["components", "0", "components", "0", "label"],
    ),
    "11 attachments": (
        {"content": "files", "attachments": [{"id": i, "filename": f"{i}.png"} for i in range(11)]},
        ["attachments"],
    ),
}


@pytest.mark.parametrize("payload, error_path", LIMIT_CASES.values(), ids=LIMIT_CASES.keys())
async def test_message_limits_answer_invalid_form_body(
    discord_emulator: DiscordEmulator, payload: dict[str, Any], error_path: list[str]
) -> None:
    emu = discord_emulator
    headers = {"Authorization": f"Bot {FAKE_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(f"{emu.api_base}/channels/{emu.channel.id}/messages", json=payload) as response:
            body = await response.json()
    assert response.status == 400
    assert (body["code"], body["message"]) == (50035, "Invalid Form Body")
    node = body["errors"]
    for key in error_path:
        node = node[key]
    assert node["_errors"], body
    assert emu.messages(emu.channel.id) == []


async def test_raw_http_contract_headers_unknown_routes_and_auth(discord_emulator: DiscordEmulator) -> None:
    emu = discord_emulator
    async with aiohttp.ClientSession() as http:
        authed = {"Authorization": f"Bot {FAKE_TOKEN}"}
        async with http.get(f"{emu.api_base}/users/@me", headers=authed) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/json"
            for name in ("Limit", "Remaining", "Reset", "Reset-After", "Bucket"):
                assert f"X-RateLimit-{name}" in response.headers
        async with http.get(f"{emu.api_base}/users/@me") as response:
            assert response.status == 401
        async with http.get(f"{emu.api_base}/stickers/packs", headers=authed) as response:
            assert response.status == 404
            assert await response.json() == {"message": "404: Not Found", "code": 0}
        assert emu.unknown_routes == [("GET", "/stickers/packs")]

        emu.fail_next("*", r"^/users/@me$", status=429, retry_after=0.25, global_=True)
        async with http.get(f"{emu.api_base}/users/@me", headers=authed) as response:
            assert response.status == 429
            assert response.headers["Via"] == "1.1 google"
            assert await response.json() == {
                "message": "You are being rate limited.",
                "retry_after": 0.25,
                "global": True,
            }

"""Discord adapter (discord.py): DMs and mentions in, safe replies out, reactions as feedback.

Everything sent uses `AllowedMentions.none()` (set on the client and on every call), so no
reply can ping anyone whatever its text. All model work happens in the worker; handlers only
await it, so the gateway heartbeat is never blocked. Reconnects and HTTP 429s are left to
discord.py.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

import discord
from discord import app_commands

from adapters.common import (ATTACHMENT_ONLY, FORGET_ASK, FORGET_DONE, TEACH_DONE, TEACH_NONE, TEACH_USAGE,
                             ForgetConfirmations, allowed, split_text)
from bot.messages import Incoming
from bot.pipeline import Pipeline
from core_model.text import neutralize_mentions

log = logging.getLogger(__name__)
PLATFORM = "discord"
LIMIT = 2000
FEEDBACK = {"👍": "good", "👎": "bad"}
NO_PINGS = discord.AllowedMentions.none()


class DiscordAdapter:
    name = PLATFORM

    def __init__(self, pipeline: Pipeline, token: str = "", *, allow_guilds: tuple[str, ...] = (),
                 allow_channels: tuple[str, ...] = (), admin_users: tuple[str, ...] = (),
                 on_reload: Callable[[], Awaitable[str]] | None = None) -> None:
        self.pipeline = pipeline
        self._token = token
        self.allow_guilds, self.allow_channels, self.admin_users = allow_guilds, allow_channels, admin_users
        self.on_reload = on_reload
        self.state = "created"
        self.intake = True
        self.forget = ForgetConfirmations()
        intents = discord.Intents.default()
        intents.message_content = True  # privileged: enable it in the developer portal too
        intents.dm_messages = intents.guild_messages = intents.reactions = True
        self.client = discord.Client(intents=intents, allowed_mentions=NO_PINGS)
        self.tree = app_commands.CommandTree(self.client)
        self._register()

    # -- lifecycle ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect and serve until closed; raises RuntimeError with a clear reason on fatal errors."""
        self.state = "connecting"
        try:
            await self.client.start(self._token)
        except discord.LoginFailure:
            self.state = "failed: Discord refused the token"
            raise RuntimeError("Discord refused the token (DISCORD_TOKEN is invalid or revoked)") from None
        except discord.PrivilegedIntentsRequired:
            self.state = "failed: message content intent not enabled"
            raise RuntimeError("Discord refused the message content intent: enable 'Message Content Intent' "
                               "for this bot in the developer portal (Bot tab)") from None
        finally:
            if not self.state.startswith("failed"):
                self.state = "stopped"

    async def stop_intake(self) -> None:
        """Ignore new messages; replies already being made still go out."""
        self.intake = False

    async def close(self) -> None:
        if not self.client.is_closed():
            await self.client.close()

    # -- events ---------------------------------------------------------------------------------
    def _register(self) -> None:
        client = self.client

        @client.event
        async def on_ready() -> None:
            self.state = "running"
            log.info("discord: connected as %s (%s) in %d guilds", client.user, client.user.id, len(client.guilds))
            try:
                await self.tree.sync()
            except discord.HTTPException as exc:
                log.warning("discord: could not register slash commands: %s", exc)

        @client.event
        async def on_message(message: discord.Message) -> None:
            await self.handle_message(message)

        @client.event
        async def on_raw_reaction_add(payload: discord.RawReactionActionEvent) -> None:
            kind = FEEDBACK.get(str(payload.emoji))
            if kind and self.pipeline.store and client.user and payload.user_id != client.user.id:
                await self.pipeline.store.mark_reply(PLATFORM, str(payload.message_id), str(payload.user_id), kind)

        @self.tree.command(name="teach", description="내 마지막 질문에 원했던 답을 알려 주기")
        async def teach(interaction: discord.Interaction, answer: str) -> None:
            text = await self._teach(str(interaction.user.id), str(interaction.channel_id), answer)
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)

        @self.tree.command(name="forget", description="내 대화 기록을 모두 지우기")
        async def forget(interaction: discord.Interaction, confirm: bool = False) -> None:
            user = str(interaction.user.id)
            text = await self._forget(user) if confirm else "지우려면 `/forget confirm:True` 로 다시 실행해 주세요."
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)

    def _addressed(self, message: discord.Message) -> bool:
        if message.guild is None:
            return True
        me = self.client.user
        if me is None:
            return False
        if any(u.id == me.id for u in message.mentions):
            return True
        ref = message.reference.resolved if message.reference else None
        return isinstance(ref, discord.Message) and ref.author.id == me.id

    def _strip_mention(self, content: str) -> str:
        me = self.client.user
        return re.sub(rf"<@!?{me.id}>", " ", content).strip() if me else content.strip()

    async def handle_message(self, message: discord.Message) -> None:
        author = message.author
        if not self.intake or author.bot or message.webhook_id is not None:
            return
        if self.client.user and author.id == self.client.user.id:
            return
        if not self._addressed(message):
            return
        guild_id = str(message.guild.id) if message.guild else None
        channel_id = str(message.channel.id)
        if message.guild is not None and not (allowed(self.allow_guilds, guild_id)
                                              and allowed(self.allow_channels, channel_id)):
            return
        text = self._strip_mention(message.content)
        user = str(author.id)
        command, _, arg = text.partition(" ")
        if command == "!teach":
            await self._send(message, await self._teach(user, channel_id, arg) if arg.strip()
                             else TEACH_USAGE.format(command="!teach"))
            return
        if command == "!forget":
            if arg.strip() in ("확인", "confirm") and self.forget.confirm(user):
                await self._send(message, await self._forget(user))
            else:
                self.forget.ask(user)
                await self._send(message, FORGET_ASK.format(command="!forget"))
            return
        if command == "!reload" and user in self.admin_users and self.on_reload:
            await self._send(message, await self.on_reload())
            return
        if not text and message.attachments:
            await self._send(message, ATTACHMENT_ONLY)
            return
        incoming = Incoming(PLATFORM, user, text, raw_text=message.content, workspace=guild_id,
                            channel=channel_id, message_id=str(message.id))
        async with self.pipeline.handling():
            async with message.channel.typing():
                result = await self.pipeline.ask(incoming)
            sent = await self._send(message, result.text)
            await self.pipeline.record(incoming, result, str(sent.id) if sent else None)

    async def _send(self, message: discord.Message, text: str) -> discord.Message | None:
        """Reply to `message` (split at 2,000 characters); never pings; never raises into discord.py."""
        first = None
        try:
            for piece in split_text(neutralize_mentions(text), LIMIT):
                sent = await message.reply(piece, mention_author=False, allowed_mentions=NO_PINGS)
                first = first or sent
        except discord.HTTPException as exc:
            log.warning("discord: could not send a reply in channel %s: %s", message.channel.id, exc)
        return first

    async def _teach(self, user: str, channel: str, answer: str) -> str:
        store = self.pipeline.store
        ok = store is not None and await store.mark_last(PLATFORM, user, channel, "teach", answer.strip())
        return TEACH_DONE if ok else TEACH_NONE

    async def _forget(self, user: str) -> str:
        store = self.pipeline.store
        n = await store.forget_user(PLATFORM, user) if store else 0
        return FORGET_DONE.format(n=n)

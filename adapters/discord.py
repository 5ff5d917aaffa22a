"""Discord adapter (discord.py): DMs and mentions in, safe replies out, reactions as feedback.

It only translates: a discord.py message becomes an `Incoming` (who, where, whether it is
addressed to the bot or written by one, `!teach`/`!forget`/`!reload`), and the pipeline decides.
Everything sent uses `AllowedMentions.none()` (set on the client and on every call), so no
reply can ping anyone whatever its text. All model work happens in the worker; handlers only
await it, so the gateway heartbeat is never blocked. Reconnects and HTTP 429s are left to
discord.py. Replies go out through the pipeline's outbox (bot/outbox.py): written to the store before
they are sent, one in flight per channel; a send that still fails (a 5xx after discord.py's own
retries, a timeout, a dropped connection) is tried again instead of being lost, and what a killed
daemon owed is sent after the restart.

Sharding (`shard_count`, `shard_ids`): this process runs its shards with discord.py's AutoShardedClient;
Discord sends each guild's events to one shard only (DMs to shard 0), so processes running disjoint shard
ids of one shard_count answer every message once. Without sharding it is a plain Client, one connection.
"""
from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Sequence

import discord
from discord import app_commands

from adapters.common import split_text
from bot.adapter import AdapterState
from bot.commands import FORGET_DONE
from bot.messages import Incoming
from bot.outbox import Delivery, DeliveryError
from bot.pipeline import Pipeline
from core_model.text import neutralize_mentions

log = logging.getLogger(__name__)
PLATFORM = "discord"
LIMIT = 2000
FEEDBACK = {"👍": "good", "👎": "bad"}
NO_PINGS = discord.AllowedMentions.none()
COMMANDS = ("!teach", "!forget", "!reload", "!approve", "!reject")
CLOSED_BECAUSE = {  # gateway close codes that no reconnect can fix: the operator has to change the settings
    4010: "Discord refused the shard (close code 4010, invalid shard): check shard_count and shard_ids",
    4011: "Discord requires sharding (close code 4011): the bot is in too many guilds for one connection "
          "(2,500 or more); set shard_count (CHATBOT_SHARD_COUNT), about one shard per 1,000 guilds",
}


class DiscordAdapter:
    name = PLATFORM

    def __init__(self, pipeline: Pipeline, token: str = "", shard_count: int = 0,
                 shard_ids: Sequence[int] = ()) -> None:
        """`shard_count` 0: no sharding; else this process runs `shard_ids` (all shards when empty)."""
        self.pipeline = pipeline
        self._token = token
        self.state = AdapterState.CREATED
        self.intake = True
        self.client = make_client(shard_count, shard_ids)
        self._shard_states: dict[int, str] = {}  # shard id -> connected / ready / disconnected (sharded only)
        self.tree = app_commands.CommandTree(self.client)
        self._live: dict[str, discord.Message] = {}  # messages being answered now, by id
        self._pieces_sent: dict[int, tuple[int, str]] = {}  # outbox id -> pieces already sent, first id
        self._register()
        pipeline.outbox.register(PLATFORM, self.deliver)

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect and serve until closed; raises RuntimeError with a clear reason on fatal errors."""
        self.state = AdapterState.CONNECTING
        try:
            await self.client.start(self._token)
        except discord.LoginFailure:
            self.state = AdapterState.FAILED
            raise RuntimeError("Discord refused the token (DISCORD_TOKEN is invalid or revoked)") from None
        except discord.PrivilegedIntentsRequired:
            self.state = AdapterState.FAILED
            raise RuntimeError("Discord refused the message content intent: enable 'Message Content Intent' "
                               "for this bot in the developer portal (Bot tab)") from None
        except discord.ConnectionClosed as exc:
            if exc.code not in CLOSED_BECAUSE:
                raise
            self.state = AdapterState.FAILED
            raise RuntimeError(CLOSED_BECAUSE[exc.code]) from None
        finally:
            if self.state is not AdapterState.FAILED:
                self.state = AdapterState.STOPPED

    async def stop_intake(self) -> None:
        """Ignore new messages; replies already being made still go out."""
        self.intake = False

    async def stop(self) -> None:
        if self.state is AdapterState.CREATED:
            return  # never started: nothing to close (an AutoShardedClient that never logged in raises in close())
        if not self.client.is_closed():
            await self.client.close()

    # -- health ---------------------------------------------------------------------------------
    @property
    def sharded(self) -> bool:
        return isinstance(self.client, discord.AutoShardedClient)

    def my_shards(self) -> list[int]:
        """The shard ids this process runs (sharded clients only)."""
        client = self.client
        return list(client.shard_ids or range(client.shard_count or 0)) if self.sharded else []

    def details(self) -> dict | None:
        """What /healthz shows beside the state: each shard's state, latency and guilds; None unsharded."""
        if not self.sharded:
            return None
        guilds = Counter(g.shard_id for g in self.client.guilds)  # one pass over the cache, no request

        def shard(sid: int) -> dict:
            info = self.client.get_shard(sid)
            latency = info.latency if info is not None else math.inf  # inf until the first heartbeat ACK
            return {"id": sid, "state": self._shard_states.get(sid, "connecting"),
                    "latency_ms": round(latency * 1000, 1) if math.isfinite(latency) else None,
                    "guilds": guilds.get(sid, 0)}
        return {"shard_count": self.client.shard_count, "shards": [shard(sid) for sid in self.my_shards()]}

    # -- events ---------------------------------------------------------------------------------
    def _register(self) -> None:
        client = self.client

        @client.event
        async def on_ready() -> None:  # a sharded client: once every shard of this process is ready
            self.state = AdapterState.RUNNING
            shards = f"; shards {','.join(map(str, self.my_shards()))} of {client.shard_count}" if self.sharded else ""
            log.info("discord: connected as %s (%s) in %d guilds%s", client.user, client.user.id, len(client.guilds),
                     shards)
            if self.sharded and 0 not in self.my_shards():
                return  # commands are the application's, not a shard's: the process running shard 0 registers them
            try:
                await self.tree.sync()
            except discord.HTTPException as exc:
                log.warning("discord: could not register slash commands: %s", exc)

        def track(state: str):
            async def on_shard_event(shard_id: int) -> None:
                self._shard_states[shard_id] = state
            return on_shard_event

        for event, state in (("connect", "connected"), ("ready", "ready"), ("resumed", "ready"),
                             ("disconnect", "disconnected")):
            setattr(client, f"on_shard_{event}", track(state))  # dispatched by AutoShardedClient only

        @client.event
        async def on_message(message: discord.Message) -> None:
            await self.handle_message(message)

        @client.event
        async def on_raw_reaction_add(payload: discord.RawReactionActionEvent) -> None:
            kind = FEEDBACK.get(str(payload.emoji))
            if kind and client.user and payload.user_id != client.user.id:
                await self.pipeline.feedback(PLATFORM, str(payload.user_id), kind, reply_id=str(payload.message_id))

        @self.tree.command(name="teach", description="내 마지막 질문에 원했던 답을 알려 주기")
        async def teach(interaction: discord.Interaction, answer: str) -> None:
            text = await self.pipeline.command(Incoming(
                PLATFORM, str(interaction.user.id), f"/teach {answer}", channel=str(interaction.channel_id),
                command="teach"))
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)

        @self.tree.command(name="forget", description="내 대화 기록을 모두 지우기")
        async def forget(interaction: discord.Interaction, confirm: bool = False) -> None:
            user = str(interaction.user.id)
            text = (FORGET_DONE.format(n=await self.pipeline.forget(PLATFORM, user)) if confirm
                    else "지우려면 `/forget confirm:True` 로 다시 실행해 주세요.")
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

    def incoming(self, message: discord.Message) -> Incoming:
        """The message as the pipeline sees it: who, where, and what the bot was told."""
        me, author = self.client.user, message.author
        text = self._strip_mention(message.content)
        name = text.partition(" ")[0]
        return Incoming(
            PLATFORM, str(author.id), text, raw_text=message.content,
            workspace=str(message.guild.id) if message.guild else None, channel=str(message.channel.id),
            message_id=str(message.id),
            from_bot=author.bot or message.webhook_id is not None or (me is not None and author.id == me.id),
            addressed=self._addressed(message), private=message.guild is None,
            command=name[1:] if name in COMMANDS else None, attachments=len(message.attachments))

    async def handle_message(self, message: discord.Message) -> None:
        if not self.intake:
            return
        self._live[str(message.id)] = message
        try:
            await self.pipeline.handle(self.incoming(message), lambda text: self._send(message, text),
                                       typing=message.channel.typing)
        finally:
            self._live.pop(str(message.id), None)

    async def _send(self, message: discord.Message, text: str) -> str | None:
        """A command's answer to `message`; never raises into discord.py (replies go through `deliver`)."""
        try:
            return await self._pieces(message.reply, text)
        except discord.HTTPException as exc:
            log.warning("discord: could not send a reply in channel %s: %s", message.channel.id,
                        delivery_error(exc))
        return None

    async def deliver(self, d: Delivery) -> str | None:
        """Reply to the message `d.reply_to` (split at 2,000 characters; never pings); the first piece's id.

        The outbox's delivery for Discord: raises DeliveryError naming what failed after discord.py's own
        retries. Pieces already sent are not sent again when a later one failed."""
        try:
            message = self._live.get(d.reply_to or "")
            if message is not None:
                send = message.reply
            else:  # after a restart: the channel by id, the user's message as the reference
                if self.client.user is None:  # not logged in yet: the outbox tries again shortly
                    raise DeliveryError("not_connected")
                channel = self.client.get_channel(int(d.channel or 0)) or await self.client.fetch_channel(
                    int(d.channel or 0))
                reference = (discord.MessageReference(message_id=int(d.reply_to), channel_id=int(d.channel or 0),
                                                      fail_if_not_exists=False) if d.reply_to else None)

                async def send(piece: str, **kw) -> discord.Message:
                    return await channel.send(piece, reference=reference, **kw)
            return await self._pieces(send, d.text, d.outbox_id)
        except DeliveryError:
            raise
        except Exception as exc:
            raise delivery_error(exc) from None

    async def _pieces(self, send, text: str, key: int | None = None) -> str | None:
        done, first = self._pieces_sent.pop(key, (0, None)) if key is not None else (0, None)
        for i, piece in enumerate(split_text(neutralize_mentions(text), LIMIT)):
            if i < done:
                continue
            try:
                sent = await send(piece, mention_author=False, allowed_mentions=NO_PINGS)
            except BaseException:
                if key is not None and i:
                    self._pieces_sent[key] = (i, first)
                raise
            first = first or str(sent.id)
        return first


def make_client(shard_count: int = 0, shard_ids: Sequence[int] = ()) -> discord.Client:
    """A plain Client (one gateway connection), or with `shard_count` an AutoShardedClient running `shard_ids`."""
    intents = discord.Intents.default()
    intents.message_content = True  # privileged: enable it in the developer portal too
    intents.dm_messages = intents.guild_messages = intents.reactions = True
    if not shard_count:
        return discord.Client(intents=intents, allowed_mentions=NO_PINGS)
    return discord.AutoShardedClient(intents=intents, allowed_mentions=NO_PINGS, shard_count=shard_count,
                                     shard_ids=list(shard_ids) or None)  # None: shards 0..shard_count-1


def delivery_error(exc: BaseException) -> DeliveryError:
    """A failed send as the outbox sees it: named; 5xx, timeouts and connection errors are worth retrying."""
    if isinstance(exc, discord.RateLimited):
        return DeliveryError("ratelimited", retry_after=exc.retry_after)
    if isinstance(exc, discord.HTTPException):
        reason = {403: "forbidden", 404: "not_found"}.get(exc.status, f"http_{exc.status}")
        return DeliveryError(reason, permanent=exc.status < 500 and exc.status != 429, detail=exc.text or "")
    return DeliveryError(type(exc).__name__, detail=str(exc))  # timeouts, dropped connections: try again

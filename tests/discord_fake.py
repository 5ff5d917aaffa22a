"""Discord on localhost: the REST API and the gateway, as far as the bot uses them (aiohttp).

dpytest 0.7 refuses sharded clients (`configure` raises "Sharded clients not yet supported"), so the
sharding tests run discord.py's real AutoShardedClient against this instead: every shard connects to
the gateway here, gets HELLO, sends a real IDENTIFY (with its `[shard_id, shard_count]`), gets READY and
one GUILD_CREATE per guild Discord would route to that shard ((guild_id >> 22) % shard_count), and
heartbeats are ACKed. `message()` pushes a real MESSAGE_CREATE payload down the owning shard's socket;
replies arrive as real `POST /channels/{id}/messages` requests. Point discord.py here with `use()`.
"""
from __future__ import annotations

import asyncio
import itertools
import json

import discord
import yarl
from aiohttp import WSMsgType, web
from discord.gateway import DiscordWebSocket

BOT = {"id": "900000000000000001", "username": "chatbot", "discriminator": "0", "global_name": None,
       "avatar": None, "bot": True}
APP = {"id": "900000000000000002", "name": "chatbot", "description": "", "icon": None, "bot_public": True,
       "bot_require_code_grant": False, "verify_key": "0" * 64, "flags": 0,
       "owner": {"id": "900000000000000003", "username": "owner", "discriminator": "0", "avatar": None}}
JOINED = "2024-01-01T00:00:00+00:00"
MEMBER = {"roles": [], "joined_at": JOINED, "deaf": False, "mute": False, "flags": 0}


def reply(data) -> web.Response:
    """JSON as Discord sends it: discord.py parses a body only when Content-Type is exactly application/json."""
    return web.Response(body=json.dumps(data).encode(), headers={"Content-Type": "application/json"})


def user(uid: int, name: str = "alice") -> dict:
    return {"id": str(uid), "username": name, "discriminator": "0", "global_name": name, "avatar": None}


class FakeDiscord:
    def __init__(self, guild_ids: list[int]) -> None:
        self.guild_ids = guild_ids
        self.identified: list[list[int] | None] = []  # each IDENTIFY's "shard" field, in order
        self.sent: list[dict] = []  # message payloads the bot posted (with "channel_id")
        self.command_syncs = 0  # PUT /applications/{id}/commands
        self.sockets: dict[int, web.WebSocketResponse] = {}  # shard id -> its gateway connection
        self._ids = itertools.count(1_100_000_000_000_000_000)
        self._seq = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.close_on_identify: int | None = None  # a close code to answer IDENTIFY with (4011: sharding required)

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> FakeDiscord:
        app = web.Application()
        app.router.add_get("/gateway", self.gateway)
        app.router.add_get("/api/v10/users/@me", lambda _: reply(BOT))
        app.router.add_get("/api/v10/oauth2/applications/@me", lambda _: reply(APP))
        app.router.add_put("/api/v10/applications/{app}/commands", self.sync_commands)
        app.router.add_post("/api/v10/channels/{channel}/typing", lambda _: web.Response(status=204))
        app.router.add_post("/api/v10/channels/{channel}/messages", self.post_message)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    def use(self, monkeypatch) -> None:
        """discord.py's REST base and default gateway (used when shard_count is given) point here."""
        monkeypatch.setattr(discord.http.Route, "BASE", f"{self.url}/api/v10")
        monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(f"{self.url.replace('http', 'ws')}/gateway"))

    async def stop(self) -> None:
        for ws in list(self.sockets.values()):
            await ws.close()
        if self._runner:
            await self._runner.cleanup()

    # -- what a test drives -----------------------------------------------------------------------
    @staticmethod
    def channel_of(guild_id: int) -> int:
        return guild_id + 1

    def shard_of(self, guild_id: int, shard_count: int) -> int:
        return (guild_id >> 22) % shard_count

    async def message(self, guild_id: int, author: dict, content: str, mention_bot: bool = True) -> int:
        """A member's message as Discord sends it: MESSAGE_CREATE on the shard that owns the guild."""
        count = next(s for s in self.identified if s)[1]
        msg_id = next(self._ids)
        data = {"id": str(msg_id), "type": 0, "channel_id": str(self.channel_of(guild_id)), "guild_id": str(guild_id),
                "author": author, "member": MEMBER,
                "content": content, "timestamp": JOINED, "edited_timestamp": None, "tts": False,
                "mention_everyone": False, "mentions": [BOT] if mention_bot else [], "mention_roles": [],
                "attachments": [], "embeds": [], "pinned": False, "flags": 0}
        await self._dispatch(self.sockets[self.shard_of(guild_id, count)], "MESSAGE_CREATE", data)
        return msg_id

    async def replies(self, n: int, timeout: float = 10.0) -> list[dict]:
        for _ in range(int(timeout / 0.02)):
            if len(self.sent) >= n:
                break
            await asyncio.sleep(0.02)
        return self.sent

    # -- REST -------------------------------------------------------------------------------------
    async def sync_commands(self, request: web.Request) -> web.Response:
        self.command_syncs += 1
        return reply([])

    async def post_message(self, request: web.Request) -> web.Response:
        payload = {**await request.json(), "channel_id": request.match_info["channel"]}
        self.sent.append(payload)
        return reply({
            "id": str(next(self._ids)), "type": 19 if payload.get("message_reference") else 0,
            "channel_id": payload["channel_id"], "author": BOT, "content": payload.get("content", ""),
            "timestamp": JOINED, "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
            "mention_roles": [], "attachments": [], "embeds": [], "pinned": False, "flags": 0})

    # -- gateway ----------------------------------------------------------------------------------
    async def _dispatch(self, ws: web.WebSocketResponse, event: str, data: dict) -> None:
        await ws.send_str(json.dumps({"op": 0, "t": event, "s": next(self._seq), "d": data}))

    def guild(self, guild_id: int) -> dict:
        channel = {"id": str(self.channel_of(guild_id)), "type": 0, "name": "general", "position": 0,
                   "permission_overwrites": [], "guild_id": str(guild_id)}
        everyone = {"id": str(guild_id), "name": "@everyone", "permissions": "68608", "position": 0, "color": 0,
                    "hoist": False, "managed": False, "mentionable": False, "flags": 0}
        return {"id": str(guild_id), "name": f"guild {guild_id}", "unavailable": False, "owner_id": APP["owner"]["id"],
                "member_count": 2, "large": False, "roles": [everyone], "channels": [channel], "threads": [],
                "members": [{"user": BOT, **MEMBER}],
                "emojis": [], "stickers": [], "features": [], "voice_states": [], "presences": [],
                "joined_at": JOINED}

    async def gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 45000}}))
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                break
            msg = json.loads(frame.data)
            if msg["op"] == 1:  # heartbeat
                await ws.send_str(json.dumps({"op": 11}))
            elif msg["op"] == 2:  # identify
                shard = msg["d"].get("shard")
                self.identified.append(shard)
                if self.close_on_identify:
                    await ws.close(code=self.close_on_identify)
                    break
                sid, count = shard or (0, 1)
                self.sockets[sid] = ws
                mine = [g for g in self.guild_ids if self.shard_of(g, count) == sid]
                await self._dispatch(ws, "READY", {
                    "v": 10, "user": BOT, "session_id": f"session-{sid}", "shard": [sid, count],
                    "resume_gateway_url": str(DiscordWebSocket.DEFAULT_GATEWAY), "application": APP,
                    "guilds": [{"id": str(g), "unavailable": True} for g in mine]})
                for g in mine:
                    await self._dispatch(ws, "GUILD_CREATE", self.guild(g))
        return ws

"""Fakes shared by tests: outside services served on 127.0.0.1 (real HTTP, no mocks) and a model-less engine."""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sqlite3
import threading
import time
from urllib.parse import parse_qsl

from aiohttp import web


class FakeSlackAPI:
    """The few Slack Web API methods the bot calls; records every chat.postMessage.

    It can also misbehave as Slack does: `rate` posts per second per channel with bursts of `burst`
    (beyond that HTTP 429 `ratelimited` with `Retry-After`), HTTP 503 `service_unavailable` on every
    `fail_every`-th post request, and the connection closed without an answer on every `drop_every`-th
    (those posts are not made). `latency` delays every answer. Counts of each are kept. Posts to a channel
    in `missing` are refused for good (`channel_not_found`).

    OAuth: `workspaces` maps a bot token to its workspace (`team_id`, `bot_user_id`, `bot_id`, `team_name`);
    auth.test then answers for the token it is given (and `invalid_auth` for others), and oauth.v2.access
    exchanges a code in `codes` (code -> bot token) for that workspace's install, once, when the request
    carries `client` (client id, client secret) as HTTP Basic auth. A workspace with `expires_in` has token
    rotation on: its install carries a refresh token, and `refresh` (refresh token -> next bot token)
    answers oauth.v2.access with grant_type=refresh_token. `apps.connections.open` (Socket Mode) answers
    `socket_url` (a `FakeSocketMode`'s).
    """

    def __init__(self, *, rate: float = 0.0, burst: int = 3, fail_every: int = 0, drop_every: int = 0,
                 latency: float = 0.0, retry_after: int = 1, missing: tuple[str, ...] = ()) -> None:
        self.posts: list[dict] = []
        self.calls: list[str] = []
        self.rate, self.burst, self.fail_every, self.drop_every = rate, burst, fail_every, drop_every
        self.latency, self.retry_after, self.missing = latency, retry_after, missing
        self.requests = 0  # chat.postMessage requests received
        self.limited = self.failed = self.dropped = 0
        self._buckets: dict[str, tuple[float, float]] = {}  # channel -> (tokens, last refill)
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.posted = asyncio.Event()
        self.workspaces: dict[str, dict] = {}
        self.codes: dict[str, str] = {}
        self.refresh: dict[str, str] = {}
        self.client: tuple[str, str] = ("", "")
        self.auth_headers: dict[str, list[str]] = {}  # method -> Authorization header of each call
        self.socket_url = ""

    async def start(self, port: int = 0) -> FakeSlackAPI:
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/api/"
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    def _take(self, channel: str) -> bool:
        """Slack's per-channel limit as a token bucket: `rate`/s, up to `burst` at once."""
        if not self.rate:
            return True
        now = time.monotonic()
        tokens, last = self._buckets.get(channel, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[channel] = (tokens, now)
            return False
        self._buckets[channel] = (tokens - 1, now)
        return True

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        self.calls.append(method)
        raw = await request.text()
        try:
            args = json.loads(raw) if request.content_type == "application/json" else dict(parse_qsl(raw))
        except ValueError:
            args = {}
        if self.latency:
            await asyncio.sleep(self.latency)
        auth = request.headers.get("Authorization", "")
        self.auth_headers.setdefault(method, []).append(auth)
        if method == "oauth.v2.access":
            return self._oauth_access(auth, args)
        if method == "auth.test" and self.workspaces:
            ws = self.workspaces.get(auth.removeprefix("Bearer "))
            if ws is None:
                return web.json_response({"ok": False, "error": "invalid_auth"})
            return web.json_response({"ok": True, "url": "https://test.slack.com/", "team": ws["team_name"],
                                      "user": "bot", "team_id": ws["team_id"], "user_id": ws["bot_user_id"],
                                      "bot_id": ws["bot_id"]})
        if method == "auth.test":
            return web.json_response({"ok": True, "url": "https://test.slack.com/", "team": "Test", "user": "bot",
                                      "team_id": "T1", "user_id": "UBOT", "bot_id": "BBOT"})
        if method == "apps.connections.open" and self.socket_url:
            return web.json_response({"ok": True, "url": self.socket_url})
        if method == "chat.postMessage":
            self.requests += 1
            if self.drop_every and self.requests % self.drop_every == 0:
                self.dropped += 1
                request.transport.close()  # no answer at all: the client sees the server disconnect
                raise asyncio.CancelledError
            if self.fail_every and self.requests % self.fail_every == 0:
                self.failed += 1
                return web.json_response({"ok": False, "error": "service_unavailable"}, status=503)
            if args.get("channel") in self.missing:
                return web.json_response({"ok": False, "error": "channel_not_found"})
            if not self._take(str(args.get("channel"))):
                self.limited += 1
                return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                         headers={"Retry-After": str(self.retry_after)})
            ts = f"1700000000.{next(self._ts):06d}"
            self.posts.append({**args, "ts": ts, "auth": request.headers.get("Authorization", ""),
                               "at": time.time()})
            self.posted.set()
            return web.json_response({"ok": True, "channel": args.get("channel"), "ts": ts})
        return web.json_response({"ok": False, "error": "unknown_method"})

    def _oauth_access(self, auth: str, args: dict) -> web.Response:
        import base64

        expected = "Basic " + base64.b64encode(":".join(self.client).encode()).decode()
        if not self.client[0] or auth != expected:
            return web.json_response({"ok": False, "error": "invalid_client_id"})
        if args.get("grant_type") == "refresh_token":
            token = self.refresh.pop(str(args.get("refresh_token")), None)  # a refresh token is good once
            if token is None:
                return web.json_response({"ok": False, "error": "invalid_refresh_token"})
            return web.json_response({"ok": True, "token_type": "bot", "access_token": token,
                                      "refresh_token": f"xoxe-1-after-{token}", "expires_in": 43200})
        token = self.codes.pop(str(args.get("code")), None)  # a code is good once
        if token is None:
            return web.json_response({"ok": False, "error": "invalid_code"})
        ws = self.workspaces[token]
        rotation = {"refresh_token": ws["refresh_token"], "expires_in": ws["expires_in"]} if "expires_in" in ws else {}
        return web.json_response({**rotation,
            "ok": True, "app_id": "A1", "access_token": token, "token_type": "bot",
            "scope": "app_mentions:read,chat:write",
            "bot_user_id": ws["bot_user_id"], "team": {"id": ws["team_id"], "name": ws["team_name"]},
            "enterprise": None, "is_enterprise_install": False, "authed_user": {"id": "UINSTALLER"}})

    async def wait_posts(self, n: int, timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.posts) < n and time.monotonic() < deadline:
            self.posted.clear()
            try:
                await asyncio.wait_for(self.posted.wait(), max(0.01, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                break
        return self.posts


class FakeSocketMode:
    """Slack's side of Socket Mode on 127.0.0.1: each WebSocket an app opens (at the URL its
    `apps.connections.open` gave, `FakeSlackAPI.socket_url`) is one of its connections; `send` pushes an
    envelope down one of them, and every acknowledgement ({"envelope_id": ...}) is recorded with the
    connection it came back on."""

    def __init__(self) -> None:
        self.connections: list[web.WebSocketResponse] = []
        self.acks: list[tuple[int, str]] = []  # (connection index, envelope id)
        self.changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> FakeSocketMode:
        app = web.Application()
        app.router.add_get("/link", self._connection)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"ws://127.0.0.1:{self._runner.addresses[0][1]}/link"
        return self

    async def _connection(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        index = len(self.connections)
        self.connections.append(ws)
        self.changed.set()
        await ws.send_json({"type": "hello", "num_connections": index + 1})
        async for message in ws:
            if message.type == web.WSMsgType.TEXT:
                data = json.loads(message.data)
                if "envelope_id" in data:
                    self.acks.append((index, data["envelope_id"]))
                    self.changed.set()
        return ws

    async def send(self, connection: int, envelope: dict) -> None:
        await self.connections[connection].send_json(envelope)

    async def wait(self, condition, timeout: float = 10) -> None:
        """Until `condition()` holds (connections made, acknowledgements back); AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("FakeSocketMode: timed out")
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.1)

    async def stop(self) -> None:
        for ws in self.connections:
            await ws.close()
        if self._runner:
            await self._runner.cleanup()


class FakeEngine:
    """A worker engine without a model: implements bot.worker.Engine with a plain function.

    `reply(text)` makes each reply (change it between messages to change what the bot says);
    `batches` records each decoded batch's size; an optional `gate` holds decoding until set,
    so a test decides when the worker may proceed.
    """

    def __init__(self, reply=lambda text: text, version: str = "fake-1", device: str = "CPU",
                 source: str = "model", gate: threading.Event | None = None) -> None:
        self.reply, self.version, self.device, self.source, self.gate = reply, version, device, source, gate
        self.batches: list[int] = []
        self.extra_pairs: list[tuple[str, str]] = []

    def prepare(self, text: str) -> str:
        return text

    def set_extra_pairs(self, pairs: list[tuple[str, str]]) -> None:
        self.extra_pairs = list(pairs)

    def reply_prepared(self, batch: list[object]) -> list[tuple[str, str]]:
        if self.gate is not None:
            self.gate.wait(30)
        self.batches.append(len(batch))
        return [(self.reply(str(text)), self.source) for text in batch]


class EngineSwitch:
    """An `engine_factory` whose next engine the test chooses; `await worker.reload()` swaps it in.

    Tests change what the bot says through the worker's own seam instead of replacing its internals.
    """

    def __init__(self, engine) -> None:
        self.engine = engine

    def __call__(self, _model_dir):
        return self.engine


def read_exchanges(db_path, where: str = "1", params: tuple = ()) -> list[dict]:
    """Committed exchanges in a store's SQLite file, as dicts with `raw` decoded (what an operator would query).

    `where` is a fixed SQL fragment; values go in `params`.
    """
    from bot.store import decode_raw

    with sqlite3.connect(db_path) as db:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute(f"SELECT * FROM exchanges WHERE {where} ORDER BY id", params)]
    for row in rows:
        row["raw"] = decode_raw(row["raw"])
    return rows


async def stop_slack(adapter, worker, store, api: FakeSlackAPI) -> None:
    """Tear down what a Slack test started, outermost first: the adapter, its outbox, the worker, the store
    and the fake Web API."""
    await adapter.stop()
    await adapter.pipeline.outbox.close()
    await worker.stop()
    await store.close()
    await api.stop()

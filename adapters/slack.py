"""Slack adapter (slack-bolt AsyncApp): app mentions and DMs, Socket Mode or HTTP mode.

Bolt acknowledges each event at once and runs our listener afterwards (process_before_response
is off), so Slack never retries because the model was slow. Slack may still deliver an event
twice (`X-Slack-Retry-Num`, or the same `event_id` again): the event id is recorded in the store
before any work (INSERT OR IGNORE), so a user gets exactly one reply, across restarts too.
HTTP mode keeps bolt's signature verification (401 for missing, wrong or stale signatures).
"""
from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.common import (FORGET_ASK, FORGET_DONE, TEACH_DONE, TEACH_NONE, TEACH_USAGE, ForgetConfirmations,
                             allowed)
from bot.messages import Incoming
from bot.pipeline import Pipeline
from core_model.text import neutralize_mentions

log = logging.getLogger(__name__)
PLATFORM = "slack"
FEEDBACK = {"+1": "good", "thumbsup": "good", "-1": "bad", "thumbsdown": "bad"}


def slack_escape(text: str) -> str:
    """Text that Slack shows literally: no <!channel>, <!here>, <@U…> or <!subteam^…> can form."""
    text = neutralize_mentions(text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def strip_mentions(text: str) -> str:
    return re.sub(r"<@[A-Z0-9]+(\|[^>]*)?>", " ", text or "").strip()


class SlackAdapter:
    name = PLATFORM

    def __init__(self, pipeline: Pipeline, *, bot_token: str, signing_secret: str = "", app_token: str = "",
                 http_host: str = "0.0.0.0", http_port: int = 3000, api_url: str = "",
                 allow_channels: tuple[str, ...] = (), admin_users: tuple[str, ...] = (),
                 on_reload: Callable[[], Awaitable[str]] | None = None) -> None:
        self.pipeline = pipeline
        self.allow_channels, self.admin_users = allow_channels, admin_users
        self.on_reload = on_reload
        self.http_host, self.http_port = http_host, http_port
        self._app_token = app_token
        self.state = "created"
        self.forget = ForgetConfirmations()
        self._seen: set[str] = set()  # dedupe when there is no store; bounded below
        client = AsyncWebClient(token=bot_token, base_url=api_url or AsyncWebClient.BASE_URL)
        self.app = AsyncApp(client=client, signing_secret=signing_secret or None,
                            request_verification_enabled=not app_token, logger=logging.getLogger("slack_bolt"))
        self._runner: web.AppRunner | None = None
        self._socket = None
        self._register()

    @property
    def mode(self) -> str:
        return "socket" if self._app_token else "http"

    # -- lifecycle ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Start listening (returns once listening; `close()` stops)."""
        self.state = "connecting"
        try:
            if self._app_token:
                from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
                self._socket = AsyncSocketModeHandler(self.app, self._app_token)
                await self._socket.connect_async()
            else:
                self._runner = web.AppRunner(self.app.web_app(path="/slack/events", port=self.http_port),
                                             access_log=None)
                await self._runner.setup()
                await web.TCPSite(self._runner, self.http_host, self.http_port).start()
                if self.http_port == 0:
                    self.http_port = self._runner.addresses[0][1]
        except Exception as exc:
            self.state = f"failed: {type(exc).__name__}"
            raise RuntimeError(f"Slack {self.mode} mode could not start: {type(exc).__name__}: {exc}") from None
        self.state = "running"
        log.info("slack: listening in %s mode%s", self.mode,
                 f" on {self.http_host}:{self.http_port}/slack/events" if self.mode == "http" else "")

    async def stop_intake(self) -> None:
        """Stop receiving events; replies already being made still go out (the Web API client stays)."""
        await self.close()

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.state = "stopped"

    # -- listeners ------------------------------------------------------------------------------
    def _register(self) -> None:
        app = self.app

        @app.event("app_mention")
        async def on_mention(event: dict, body: dict, client: AsyncWebClient) -> None:
            await self.handle_event(event, body, client, thread=True)

        @app.event("message")
        async def on_message(event: dict, body: dict, client: AsyncWebClient) -> None:
            if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id"):
                return  # bot messages, edits, joins and other subtypes
            await self.handle_event(event, body, client, thread=bool(event.get("thread_ts")))

        @app.event("reaction_added")
        async def on_reaction(event: dict) -> None:
            kind = FEEDBACK.get(event.get("reaction", "").split("::")[0])
            item = event.get("item") or {}
            if kind and item.get("type") == "message" and self.pipeline.store:
                await self.pipeline.store.mark_reply(PLATFORM, item.get("ts", ""), event.get("user", ""), kind)

        @app.command("/teach")
        async def teach(ack, command: dict) -> None:
            answer = (command.get("text") or "").strip()
            if not answer:
                await ack(TEACH_USAGE.format(command="/teach"))
                return
            store = self.pipeline.store
            ok = store is not None and await store.mark_last(PLATFORM, command["user_id"], command.get("channel_id"),
                                                             "teach", answer)
            await ack(TEACH_DONE if ok else TEACH_NONE)

        @app.command("/forget")
        async def forget(ack, command: dict) -> None:
            user = command["user_id"]
            if (command.get("text") or "").strip() in ("확인", "confirm") and self.forget.confirm(user):
                store = self.pipeline.store
                n = await store.forget_user(PLATFORM, user) if store else 0
                await ack(FORGET_DONE.format(n=n))
            else:
                self.forget.ask(user)
                await ack(FORGET_ASK.format(command="/forget"))

    async def _first_delivery(self, body: dict, event: dict) -> bool:
        key = "slack:" + (body.get("event_id") or f"{event.get('channel')}:{event.get('ts')}")
        if self.pipeline.store:  # INSERT OR IGNORE through the single writer: atomic, survives restarts
            return await self.pipeline.store.first_delivery(key)
        if key in self._seen:
            return False
        if len(self._seen) > 50_000:
            self._seen.clear()
        self._seen.add(key)
        return True

    async def handle_event(self, event: dict, body: dict, client: AsyncWebClient, thread: bool) -> None:
        if event.get("bot_id") or event.get("subtype"):
            return
        channel, user = event.get("channel", ""), event.get("user", "")
        if not user or (event.get("channel_type") != "im" and not allowed(self.allow_channels, channel)):
            return
        if not await self._first_delivery(body, event):
            log.info("slack: duplicate delivery of %s ignored", body.get("event_id"))
            return
        text = strip_mentions(event.get("text", ""))
        thread_ts = event.get("thread_ts") or (event.get("ts") if thread else None)
        if text == "!reload" and user in self.admin_users and self.on_reload:
            await self._post(client, channel, thread_ts, await self.on_reload())
            return
        incoming = Incoming(PLATFORM, user, text, raw_text=event.get("text", ""), workspace=body.get("team_id"),
                            channel=channel, thread=thread_ts, message_id=event.get("ts"))
        async with self.pipeline.handling():
            result = await self.pipeline.ask(incoming)
            ts = await self._post(client, channel, thread_ts, result.text)
            await self.pipeline.record(incoming, result, ts)

    async def _post(self, client: AsyncWebClient, channel: str, thread_ts: str | None, text: str) -> str | None:
        try:
            resp = await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=slack_escape(text),
                                                 link_names=False, unfurl_links=False, unfurl_media=False)
            return resp.get("ts")
        except Exception as exc:  # SlackApiError, network: log without the token (the SDK never prints it)
            log.warning("slack: could not post in %s: %s", channel, exc)
            return None

"""Slack adapter (slack-bolt AsyncApp): app mentions and DMs, Socket Mode or HTTP mode.

Bolt acknowledges each event at once and runs our listener afterwards (process_before_response
is off), so Slack never retries because the model was slow. Slack may still deliver an event
twice (`X-Slack-Retry-Num`, or the same `event_id` again): the adapter passes the event id on as
the delivery id, and the pipeline's dedupe step records it before any work (INSERT OR IGNORE in the
store), so a user gets exactly one reply, across restarts too. Like every adapter it only
translates events to `Incoming` and replies back; the pipeline decides what to answer.
HTTP mode keeps bolt's signature verification (401 for missing, wrong or stale signatures).
"""
from __future__ import annotations

import logging
import re

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapter import AdapterState
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
                 http_host: str = "0.0.0.0", http_port: int = 3000, api_url: str = "") -> None:
        self.pipeline = pipeline
        self.http_host, self.http_port = http_host, http_port
        self._app_token = app_token
        self.state = AdapterState.CREATED
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
    async def start(self) -> None:
        """Start listening (returns once listening; `stop()` stops)."""
        self.state = AdapterState.CONNECTING
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
            self.state = AdapterState.FAILED
            raise RuntimeError(f"Slack {self.mode} mode could not start: {type(exc).__name__}: {exc}") from None
        self.state = AdapterState.RUNNING
        log.info("slack: listening in %s mode%s", self.mode,
                 f" on {self.http_host}:{self.http_port}/slack/events" if self.mode == "http" else "")

    async def stop_intake(self) -> None:
        """Stop receiving events; replies already being made still go out (the Web API client stays)."""
        await self.stop()

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.state = AdapterState.STOPPED

    # -- listeners ------------------------------------------------------------------------------
    def _register(self) -> None:
        app = self.app

        @app.event("app_mention")
        async def on_mention(event: dict, body: dict, client: AsyncWebClient) -> None:
            await self.handle_event(event, body, client, thread=True)

        @app.event("message")
        async def on_message(event: dict, body: dict, client: AsyncWebClient) -> None:
            await self.handle_event(event, body, client, thread=bool(event.get("thread_ts")))

        @app.event("reaction_added")
        async def on_reaction(event: dict) -> None:
            kind = FEEDBACK.get(event.get("reaction", "").split("::")[0])
            item = event.get("item") or {}
            if kind and item.get("type") == "message":
                await self.pipeline.feedback(PLATFORM, event.get("user", ""), kind, reply_id=item.get("ts", ""))

        @app.command("/teach")
        async def teach(ack, command: dict) -> None:
            await ack(await self.pipeline.command(self.command(command, "teach")))

        @app.command("/forget")
        async def forget(ack, command: dict) -> None:
            await ack(await self.pipeline.command(self.command(command, "forget")))

    @staticmethod
    def command(command: dict, name: str) -> Incoming:
        """A slash command as the pipeline sees it (`/teach 답`, from this user in this channel)."""
        return Incoming(PLATFORM, command["user_id"], f"/{name} {command.get('text') or ''}",
                        workspace=command.get("team_id"), channel=command.get("channel_id"), command=name)

    @staticmethod
    def incoming(event: dict, body: dict, thread: bool) -> Incoming:
        """An `app_mention` or `message` event as the pipeline sees it."""
        text = strip_mentions(event.get("text", ""))
        direct = event.get("channel_type") == "im"
        channel = event.get("channel", "")
        return Incoming(
            PLATFORM, event.get("user", ""), text, raw_text=event.get("text", ""), workspace=body.get("team_id"),
            channel=channel, thread=event.get("thread_ts") or (event.get("ts") if thread else None),
            message_id=event.get("ts"), from_bot=bool(event.get("bot_id")), subtype=event.get("subtype"),
            addressed=event.get("type") == "app_mention" or direct, private=direct,
            delivery_id=body.get("event_id") or f"{channel}:{event.get('ts')}",
            command="reload" if text == "!reload" else None)

    async def handle_event(self, event: dict, body: dict, client: AsyncWebClient, thread: bool) -> None:
        msg = self.incoming(event, body, thread)
        await self.pipeline.handle(msg, lambda text: self._post(client, msg.channel or "", msg.thread, text))

    async def _post(self, client: AsyncWebClient, channel: str, thread_ts: str | None, text: str) -> str | None:
        try:
            resp = await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=slack_escape(text),
                                                 link_names=False, unfurl_links=False, unfurl_media=False)
            return resp.get("ts")
        except Exception as exc:  # SlackApiError, network: log without the token (the SDK never prints it)
            log.warning("slack: could not post in %s: %s", channel, exc)
            return None

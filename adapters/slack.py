"""Slack adapter (slack-bolt AsyncApp): app mentions and DMs, Socket Mode or HTTP mode.

Bolt acknowledges each event at once and runs our listener afterwards (process_before_response
is off), so Slack never retries because the model was slow. Slack may still deliver an event
twice (`X-Slack-Retry-Num`, or the same `event_id` again): the adapter passes the event id on as
the delivery id, and the pipeline's dedupe step records it before any work (INSERT OR IGNORE in the
store), so a user gets exactly one reply, across restarts too. Like every adapter it only
translates events to `Incoming` and replies back; the pipeline decides what to answer.
HTTP mode keeps bolt's signature verification (401 for missing, wrong or stale signatures).
One workspace (SLACK_BOT_TOKEN), or many installed through OAuth (adapters/slack_oauth.py): then each
event is authorized, and each reply posted, with its own workspace's bot token from the store.

Delivery: replies go out through the pipeline's outbox (bot/outbox.py), written to the store before
they are posted and marked sent after, one post in flight per channel. A message is admitted (and
its answer owed in the store) in a bolt middleware, before bolt acknowledges the event, so nothing
Slack saw acknowledged is lost to a crash. The Web API client carries slack_sdk's own retry
handlers: HTTP 429 waits for `Retry-After`, 500/503 and dropped connections back off and retry; each
retry is counted and logged by name. A post that still fails is tried again by the outbox.
"""
from __future__ import annotations

import logging
import re

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_bolt.middleware.authorization.async_single_team_authorization import AsyncSingleTeamAuthorization
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_oauth import SlackOAuth, WorkspaceTokens, app_arguments
from bot.adapter import AdapterState
from bot.messages import Incoming
from bot.outbox import Delivery, DeliveryError
from bot.pipeline import Pipeline
from core_model.text import neutralize_mentions

log = logging.getLogger(__name__)
PLATFORM = "slack"
FEEDBACK = {"+1": "good", "thumbsup": "good", "-1": "bad", "thumbsdown": "bad"}
POST_TIMEOUT_S = 10  # one Web API call; a stalled connection is then retried by the outbox


def slack_escape(text: str) -> str:
    """Text that Slack shows literally: no <!channel>, <!here>, <@U…> or <!subteam^…> can form."""
    text = neutralize_mentions(text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def strip_mentions(text: str) -> str:
    return re.sub(r"<@[A-Z0-9]+(\|[^>]*)?>", " ", text or "").strip()


# Errors Slack answers when trying again later can succeed; any other API error is permanent.
RETRIABLE = {"ratelimited", "service_unavailable", "internal_error", "fatal_error", "request_timeout"}


def response_reason(status: int, body: object) -> str:
    """A failed Web API answer by name: Slack's `error` (`ratelimited`, ...), else `http_<status>`."""
    error = body.get("error") if isinstance(body, dict) else None
    return str(error) if error else ("ratelimited" if status == 429 else f"http_{status}")


def delivery_error(exc: Exception) -> DeliveryError:
    """What a failed chat.postMessage becomes for the outbox: named, permanent or not, when to retry."""
    if isinstance(exc, SlackApiError):
        resp = exc.response
        status = getattr(resp, "status_code", 0) or 0
        reason = response_reason(status, getattr(resp, "data", None))
        retry_after = None
        if status == 429:
            try:
                retry_after = float(resp.headers.get("Retry-After", 1))
            except (TypeError, ValueError, AttributeError):
                retry_after = 1.0
        permanent = status != 429 and status < 500 and reason not in RETRIABLE
        return DeliveryError(reason, permanent=permanent, retry_after=retry_after)
    return DeliveryError(type(exc).__name__, detail=str(exc))  # network errors, timeouts: try again


class Reported(AsyncRetryHandler):
    """One of slack_sdk's retry handlers, unchanged, that reports each retry it makes (log line, metric).

    The SDK asks each handler in turn (`can_retry_async`) and lets the first that agrees wait
    (`prepare_for_next_attempt_async`); the attempt count is shared by all handlers of one call.
    """

    def __init__(self, inner: AsyncRetryHandler, on_retry) -> None:
        super().__init__(inner.max_retry_count, inner.interval_calculator)
        self.inner, self.on_retry = inner, on_retry

    async def can_retry_async(self, **kw) -> bool:
        return await self.inner.can_retry_async(**kw)

    async def prepare_for_next_attempt_async(self, *, state, request, response=None, error=None) -> None:
        reason = (response_reason(response.status_code, response.body) if response is not None
                  else type(error).__name__)
        self.on_retry(reason, f"attempt {state.current_attempt + 2}")
        await self.inner.prepare_for_next_attempt_async(state=state, request=request, response=response, error=error)


def retry_handlers(on_retry) -> list[AsyncRetryHandler]:
    """slack_sdk's handlers: 429 honours Retry-After; 500/503 and dropped connections back off (0.5 s x 2^n
    + jitter). They share one attempt count per call (at most 10 retries, 3 of them for errors); what is
    still failing after that goes back to the outbox."""
    return [Reported(AsyncRateLimitErrorRetryHandler(max_retry_count=10), on_retry),
            Reported(AsyncServerErrorRetryHandler(max_retry_count=3), on_retry),
            Reported(AsyncConnectionErrorRetryHandler(max_retry_count=3), on_retry)]


class SlackAdapter:
    name = PLATFORM

    def __init__(self, pipeline: Pipeline, *, bot_token: str = "", signing_secret: str = "", app_token: str = "",
                 http_host: str = "0.0.0.0", http_port: int = 3000, api_url: str = "",
                 oauth: SlackOAuth | None = None) -> None:
        """`bot_token`: one workspace. `oauth` instead: many, installed at /slack/install (HTTP mode), their
        tokens kept in the pipeline's store."""
        self.pipeline = pipeline
        self.http_host, self.http_port = http_host, http_port
        self._app_token = app_token
        self.state = AdapterState.CREATED
        self.client = AsyncWebClient(
            token=None if oauth else bot_token, base_url=api_url or AsyncWebClient.BASE_URL, timeout=POST_TIMEOUT_S,
            retry_handlers=retry_handlers(lambda reason, what: pipeline.outbox.retried(PLATFORM, reason, what)))
        self.tokens: WorkspaceTokens | None = None
        oauth_args = {}
        if oauth is not None:
            if pipeline.installations is None or app_token:
                raise ValueError("Slack OAuth installs need HTTP mode and a store to keep them in")
            oauth_args = app_arguments(oauth, pipeline.installations, self.client)
            self.tokens = WorkspaceTokens(oauth_args["oauth_settings"].installation_store, oauth_args["authorize"])
        self.app = AsyncApp(client=self.client, signing_secret=signing_secret or None,
                            request_verification_enabled=not app_token, logger=logging.getLogger("slack_bolt"),
                            **oauth_args)
        if oauth is not None:
            self.app.enable_token_revocation_listeners()  # app_uninstalled, tokens_revoked: the row goes
        self._runner: web.AppRunner | None = None
        self._socket = None
        self._register()
        pipeline.outbox.register(PLATFORM, self.deliver)

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
        await self._warm_authorization()
        self.state = AdapterState.RUNNING
        log.info("slack: listening in %s mode%s%s", self.mode,
                 f" on {self.http_host}:{self.http_port}/slack/events" if self.mode == "http" else "",
                 "; installs at /slack/install (OAuth, many workspaces)" if self.tokens else "")

    async def _warm_authorization(self) -> None:
        """Bolt's single-workspace authorization calls auth.test for the first event and caches the answer,
        but a burst of first events calls it once each (129 times for 300 mentions at once, measured), which
        slows their acknowledgements. Ask once at start instead; if that fails, bolt asks on the first event."""
        for middleware in getattr(self.app, "_async_middleware_list", []):
            if isinstance(middleware, AsyncSingleTeamAuthorization) and middleware.auth_test_result is None:
                try:
                    middleware.auth_test_result = await self.client.auth_test()
                except Exception as exc:
                    log.warning("slack: auth.test failed at start (%s); it is tried again on the first event",
                                delivery_error(exc))

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

        @app.middleware
        async def admit_before_ack(body: dict, context, next) -> None:  # noqa: A002 - bolt passes it by this name
            """Admit a message (dedupe, and its answer owed in the store) before bolt acknowledges it."""
            event = body.get("event") if isinstance(body, dict) and body.get("type") == "event_callback" else None
            if isinstance(event, dict) and event.get("type") in ("app_mention", "message"):
                context["admission"] = await self.pipeline.admit(self.incoming(event, body, self._threaded(event)))
            return await next()

        @app.event("app_mention")
        async def on_mention(event: dict, body: dict, client: AsyncWebClient, context) -> None:
            await self.handle_event(event, body, client, thread=True, context=context)

        @app.event("message")
        async def on_message(event: dict, body: dict, client: AsyncWebClient, context) -> None:
            await self.handle_event(event, body, client, thread=self._threaded(event), context=context)

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

        @app.command("/approve")
        async def approve(ack, command: dict) -> None:
            await ack(await self.pipeline.command(self.command(command, "approve")))

        @app.command("/reject")
        async def reject(ack, command: dict) -> None:
            await ack(await self.pipeline.command(self.command(command, "reject")))

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

    @staticmethod
    def _threaded(event: dict) -> bool:
        """Mentions are answered in their thread; other messages (DMs) only when they were in one."""
        return event.get("type") == "app_mention" or bool(event.get("thread_ts"))

    async def handle_event(self, event: dict, body: dict, client: AsyncWebClient, thread: bool,
                           context: dict | None = None) -> None:
        msg = self.incoming(event, body, thread)

        async def send(text: str) -> str | None:  # command answers; replies go through the outbox
            return await self._post(client, msg.channel or "", msg.thread, text)

        if context is not None and "admission" in context:  # admitted before the acknowledgement
            if context["admission"] is not None:
                await self.pipeline.answer(context["admission"], send)
            return
        await self.pipeline.handle(msg, send)

    async def deliver(self, d: Delivery) -> str | None:
        """Post one reply in its thread (the outbox's delivery for Slack); the message's ts.

        Raises DeliveryError naming what failed after slack_sdk's own retries. With OAuth installs the
        reply is posted with its workspace's token; a workspace that uninstalled the app is refused for good."""
        token = {}
        if self.tokens is not None:
            try:
                found = await self.tokens.bot_token(d.workspace)
            except Exception as exc:  # the store or a token rotation failed: try again later
                raise delivery_error(exc) from None
            if found is None:
                raise DeliveryError("not_installed", permanent=True, detail=f"workspace {d.workspace}")
            token = {"token": found}
        try:
            resp = await self.client.chat_postMessage(channel=d.channel or "", thread_ts=d.thread,
                                                      text=slack_escape(d.text), link_names=False,
                                                      unfurl_links=False, unfurl_media=False, **token)
        except Exception as exc:  # SlackApiError, network; the SDK never prints the token
            raise delivery_error(exc) from None
        return resp.get("ts")

    async def _post(self, client: AsyncWebClient, channel: str, thread_ts: str | None, text: str) -> str | None:
        try:
            resp = await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=slack_escape(text),
                                                 link_names=False, unfurl_links=False, unfurl_media=False)
            return resp.get("ts")
        except Exception as exc:
            log.warning("slack: could not post in %s: %s", channel, delivery_error(exc))
            return None

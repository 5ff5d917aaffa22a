"""The adapters' only door into the bot: one entry per user action.

`handle(msg, send)` is a message: admission steps (bots, addressing, allow-list, dedupe; see
bot/steps.py) -> a command (bot/commands.py) or: normalize once -> rate limit -> worker -> `send`
-> store. `feedback`, `teach` and `forget` are the other actions; adapters never touch the store.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from bot.commands import ATTACHMENT_ONLY, Commands
from bot.messages import USER_TEXT, Incoming, Outcome, WorkerResult
from bot.metrics import Metrics
from bot.ratelimit import RateLimiter
from bot.steps import AllowList, Dedupe, IgnoreBots, OnlyAddressed, Step
from bot.store import Exchange, Store
from bot.worker import InferenceWorker
from core_model.text import normalize

log = logging.getLogger(__name__)

# Sends one reply on the platform; returns the platform's id of the message sent (None if unknown/failed).
Send = Callable[[str], Awaitable[str | None]]


class Pipeline:
    def __init__(self, worker: InferenceWorker, store: Store | None, limiter: RateLimiter | None = None,
                 metrics: Metrics | None = None, *, allow: AllowList | None = None,
                 commands: Commands | None = None) -> None:
        self.worker = worker
        self._store = store
        self.limiter = limiter or RateLimiter(per_minute=0)
        self.metrics = metrics
        self.allow = allow or AllowList()
        self.commands = commands or Commands()
        # In order; `allow` stays the same object, so reconfiguring it takes effect at once.
        self.steps: list[Step] = [IgnoreBots(), OnlyAddressed(), self.allow, Dedupe(store)]
        self.accepting = True
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def remembers(self) -> bool:
        """Whether conversations are stored (feedback, teach and forget need it)."""
        return self._store is not None

    @property
    def model_version(self) -> str | None:
        return self.worker.version

    # -- a message ------------------------------------------------------------------------------
    async def handle(self, msg: Incoming, send: Send, *,
                     typing: Callable[[], AbstractAsyncContextManager] | None = None) -> WorkerResult | None:
        """Everything the bot does with one message; the reply goes out through `send`.

        Returns the worker's result for a chat message, None when dropped or answered as a command.
        `typing`, if given, is shown while the model thinks.
        """
        for step in self.steps:
            if not await step.admit(msg):
                return None
        if msg.command:
            answer = await self.command(msg)
            if answer is not None:
                await send(answer)
                return None
        if not msg.text.strip() and msg.attachments:
            await send(ATTACHMENT_ONLY)
            return None
        msg = dataclasses.replace(msg, text=normalize(msg.text),
                                  raw_text=msg.text if msg.raw_text is None else msg.raw_text)
        async with self._handling():
            async with typing() if typing else contextlib.nullcontext():
                result = await self._ask(msg)
            reply_id = await send(result.text)
            await self._record(msg, result, reply_id)
        return result

    async def command(self, msg: Incoming) -> str | None:
        """The answer to a command (`msg.command` set by the adapter); None: not one after all."""
        return await self.commands.run(self, msg)

    @contextlib.asynccontextmanager
    async def _handling(self) -> AsyncIterator[None]:
        """Wrap the whole handling of one message (ask, send, record) so shutdown can wait for it."""
        self._inflight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no message is being handled; False if `timeout` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def _ask(self, msg: Incoming) -> WorkerResult:
        """The reply for normalized `msg`, or a polite outcome (rate limited, busy, empty, error); never raises."""
        if self.metrics:
            self.metrics.received(msg.platform)
        if not self.accepting:
            result = WorkerResult(Outcome.OVERLOADED, USER_TEXT[Outcome.OVERLOADED], self.worker.version,
                                  error="shutting down")
        elif not self.limiter.allow(f"{msg.platform}:{msg.user_id}"):
            result = WorkerResult(Outcome.RATE_LIMITED, USER_TEXT[Outcome.RATE_LIMITED], self.worker.version)
        else:
            try:
                result = await self.worker.reply(msg.text)
            except Exception as exc:  # the worker promises not to raise; belt and braces for users
                log.exception("worker failed")
                result = WorkerResult(Outcome.ERROR, USER_TEXT[Outcome.ERROR], self.worker.version, error=str(exc))
        if self.metrics:
            self.metrics.outcome(msg.platform, result.outcome.value)
        return result

    async def _record(self, msg: Incoming, result: WorkerResult, reply_message_id: str | None = None) -> None:
        """Queue the exchange for the store (after the reply went out, so it never delays it)."""
        if self._store is None:
            return
        await self._store.log_exchange(Exchange(
            platform=msg.platform, workspace=msg.workspace, channel=msg.channel, thread=msg.thread,
            user_id=msg.user_id, text=msg.text, raw=msg.raw_text if msg.raw_text is not None else msg.text,
            reply=result.text, outcome=result.outcome.value, model_version=result.model_version,
            latency_ms=round(result.latency_ms, 2), reply_message_id=reply_message_id))

    # -- the other user actions -------------------------------------------------------------------
    async def feedback(self, platform: str, user_id: str, kind: str, *, reply_id: str | None = None,
                       channel: str | None = None) -> bool:
        """A good/bad mark: on the bot reply `reply_id` (a reaction), else on the user's last reply in
        `channel`. False if there is no such reply of theirs (or no store)."""
        if self._store is None:
            return False
        if reply_id is not None:
            return await self._store.mark_reply(platform, reply_id, user_id, kind)
        return await self._store.mark_last(platform, user_id, channel, kind)

    async def teach(self, platform: str, user_id: str, channel: str | None, answer: str) -> bool:
        """The answer the user wanted for their last message (in `channel`); False if there is none."""
        return self._store is not None and await self._store.mark_last(platform, user_id, channel, "teach", answer)

    async def forget(self, platform: str, user_id: str) -> int:
        """Delete everything stored about the user; the number of exchanges removed."""
        return await self._store.forget_user(platform, user_id) if self._store else 0

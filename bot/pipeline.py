"""What every adapter does with a message: rate limit -> worker -> (adapter sends) -> store."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from bot.messages import USER_TEXT, Incoming, Outcome, WorkerResult
from bot.ratelimit import RateLimiter
from bot.store import Exchange, Store
from bot.worker import InferenceWorker
from core_model.text import normalize

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(self, worker: InferenceWorker, store: Store | None, limiter: RateLimiter | None = None,
                 metrics=None) -> None:
        self.worker = worker
        self.store = store
        self.limiter = limiter or RateLimiter(per_minute=0)
        self.metrics = metrics
        self.accepting = True
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.asynccontextmanager
    async def handling(self) -> AsyncIterator[None]:
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

    async def ask(self, msg: Incoming) -> WorkerResult:
        """The reply for `msg`, or a polite outcome (rate limited, busy, empty, error); never raises."""
        if self.metrics:
            self.metrics.received(msg.platform)
        if not self.accepting:
            result = WorkerResult(Outcome.OVERLOADED, USER_TEXT[Outcome.OVERLOADED], self.worker.version,
                                  error="shutting down")
        elif not self.limiter.allow(f"{msg.platform}:{msg.user_id}"):
            result = WorkerResult(Outcome.RATE_LIMITED, USER_TEXT[Outcome.RATE_LIMITED], self.worker.version)
        else:
            try:
                result = await self.worker.reply(normalize(msg.text))
            except Exception as exc:  # the worker promises not to raise; belt and braces for users
                log.exception("worker failed")
                result = WorkerResult(Outcome.ERROR, USER_TEXT[Outcome.ERROR], self.worker.version, error=str(exc))
        if self.metrics:
            self.metrics.outcome(msg.platform, result.outcome.value)
        return result

    async def record(self, msg: Incoming, result: WorkerResult, reply_message_id: str | None = None) -> None:
        """Queue the exchange for the store (after the reply went out, so it never delays it)."""
        if self.store is None:
            return
        await self.store.log_exchange(Exchange(
            platform=msg.platform, workspace=msg.workspace, channel=msg.channel, thread=msg.thread,
            user_id=msg.user_id, text=normalize(msg.text), raw=msg.raw_text if msg.raw_text is not None else msg.text,
            reply=result.text, outcome=result.outcome.value, model_version=result.model_version,
            latency_ms=round(result.latency_ms, 2), reply_message_id=reply_message_id))

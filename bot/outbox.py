"""The outbox: every reply the bot owes is delivered at least once, one post at a time per channel.

A message the pipeline accepts is written to the store as `pending` before the model runs, its reply
before it is sent, and the row is marked `sent` (with the platform's message id) once the platform
took it. An attempt that fails after the platform library's own retries (Slack's retry handlers,
discord.py's) is tried again with backoff in the same channel lane, until it is sent, refused for
good (a permanent error: `failed`), or older than `max_age_s` (`expired`: a late answer into a
conversation that moved on is worse than none). What a killed daemon still owed is pending in the
store, and the next start answers it. A post in flight at the moment of a kill may be sent twice;
nothing acknowledged is lost.

Adapters register how to deliver on their platform (`register`); a delivery raises `DeliveryError`
naming the error (`ratelimited`, `service_unavailable`, the exception's type) when it fails.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from bot.metrics import Metrics
from bot.store import Store

log = logging.getLogger(__name__)
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # between failed attempts (after the library's own retries)


@dataclass(frozen=True)
class Delivery:
    """One reply to post: where, in answer to which message, and what."""
    platform: str
    channel: str | None
    thread: str | None
    reply_to: str | None  # the platform's id of the user's message
    text: str
    outbox_id: int | None = None
    workspace: str | None = None  # the platform's workspace (Slack team): whose bot token posts it


class DeliveryError(Exception):
    """A failed delivery. `reason` is a short name for logs and metrics; `permanent`: retrying cannot help
    (the channel is gone, the bot was removed); `retry_after`: the platform said when to come back."""

    def __init__(self, reason: str, *, permanent: bool = False, retry_after: float | None = None,
                 detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason or "unknown"
        self.permanent = permanent
        self.retry_after = retry_after


Deliver = Callable[[Delivery], Awaitable[str | None]]


class Outbox:
    def __init__(self, store: Store | None, metrics: Metrics | None = None, *, max_age_s: float = 600.0,
                 backoff_s: tuple[float, ...] = BACKOFF_S, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.metrics = metrics
        self.max_age_s = max_age_s
        self.backoff_s = backoff_s
        self.clock = clock
        self._deliver: dict[str, Deliver] = {}
        self._lanes: dict[tuple[str, str], list] = {}  # (platform, channel) -> [lock, users]
        self._tasks: set[asyncio.Task] = set()
        self.depth = 0  # rows pending (accepted, not yet sent or given up)
        self.closed = False

    # -- adapters ---------------------------------------------------------------------------------
    def register(self, platform: str, deliver: Deliver) -> None:
        """How replies go out on `platform`; its replies become durable (written before they are sent)."""
        self._deliver[platform] = deliver

    def durable(self, platform: str) -> bool:
        return self.store is not None and platform in self._deliver

    @property
    def platforms(self) -> list[str]:
        """The platforms whose replies this outbox delivers (durable ones)."""
        return sorted(self._deliver) if self.store is not None else []

    def retried(self, platform: str, reason: str, what: str = "") -> None:
        """A platform library retried a post on its own (a 429 honoured, a 503 or a dropped connection)."""
        log.info("%s: delivery retried: %s%s", platform, reason, f" ({what})" if what else "")
        if self.metrics:
            self.metrics.delivery_retries.labels(platform, reason).inc()

    # -- rows -------------------------------------------------------------------------------------
    def accepted(self) -> None:
        self.depth += 1

    def _done(self) -> None:
        self.depth = max(0, self.depth - 1)

    async def expire_old(self) -> int:
        """At start-up: pending rows older than the age limit are marked expired and never sent."""
        if self.store is None:
            return 0
        counts = await self.store.outbox_expire(self.max_age_s)
        for platform, n in counts.items():
            log.warning("%s: %d replies older than %gs expired unsent", platform, n, self.max_age_s)
            if self.metrics:
                self.metrics.delivery_failures.labels(platform, "expired").inc(n)
        return sum(counts.values())

    # -- delivering -------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _lane(self, platform: str, channel: str | None) -> AsyncIterator[None]:
        """One post in flight per channel: a burst in one channel queues (FIFO) instead of hammering."""
        key = (platform, channel or "")
        lane = self._lanes.setdefault(key, [asyncio.Lock(), 0])
        lane[1] += 1
        try:
            async with lane[0]:
                yield
        finally:
            lane[1] -= 1
            if lane[1] == 0:
                self._lanes.pop(key, None)

    async def send(self, d: Delivery, created_at: float | None = None) -> str | None:
        """Deliver `d` (at least once, unless refused for good or too old); the platform's message id.

        With a store row (`d.outbox_id`) the outcome is written back to it; the row stays pending if the
        outbox is closed (shutdown) before it is sent, for the next start to send.
        """
        if self.closed:  # shutting down: the row stays pending for the next start
            return None
        deliver = self._deliver[d.platform]
        created_at = self.clock() if created_at is None else created_at
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            async with self._lane(d.platform, d.channel):
                return await self._attempts(deliver, d, created_at)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _attempts(self, deliver: Deliver, d: Delivery, created_at: float) -> str | None:
        if d.outbox_id is not None and self.store is not None and self.clock() - created_at > self.max_age_s:
            # Too old before the first attempt (a row taken over from a replica that died long ago).
            log.warning("%s: reply in %s older than %gs expired unsent", d.platform, d.channel, self.max_age_s)
            if self.metrics:
                self.metrics.delivery_failures.labels(d.platform, "expired").inc()
            await self.store.outbox_attempt_failed(d.outbox_id, "too old", "expired")
            self._done()
            return None
        failures = 0
        while True:
            try:
                message_id = await deliver(d)
            except DeliveryError as exc:
                err = exc
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an adapter bug or an error it did not name: retried all the same
                err = DeliveryError(type(exc).__name__, detail=str(exc))
            else:
                if d.outbox_id is not None and self.store is not None:
                    await self.store.outbox_sent(d.outbox_id, message_id)
                    self._done()
                return message_id
            if self.metrics:
                self.metrics.delivery_failures.labels(d.platform, err.reason).inc()
            wait = err.retry_after if err.retry_after is not None else self.backoff_s[
                min(failures, len(self.backoff_s) - 1)]
            failures += 1
            final = "failed" if err.permanent else (
                "expired" if self.clock() + wait - created_at > self.max_age_s else None)
            log.warning("%s: could not post in %s: %s%s", d.platform, d.channel, err,
                        f"; gave up ({final})" if final else f"; trying again in {wait:g}s")
            if d.outbox_id is not None and self.store is not None:
                await self.store.outbox_attempt_failed(d.outbox_id, str(err)[:500], final)
                if final:
                    self._done()
            if final:
                return None
            if self.metrics:
                self.metrics.delivery_retries.labels(d.platform, err.reason).inc()
            await asyncio.sleep(wait)

    async def close(self, timeout: float = 2.0) -> None:
        """Stop delivering: posts waiting for their lane or a retry stay pending in the store."""
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

"""The adapters' only door into the bot: one entry per user action.

`handle(msg, send)` is a message: admission steps (bots, addressing, allow-list, dedupe; see
bot/steps.py) -> a command (bot/commands.py) or: normalize once -> [outbox: owed] -> rate limit ->
worker -> store -> the reply out, through the outbox (bot/outbox.py: at least once, one post at a time
per channel) when the platform registered a delivery, else through `send`. `admit` + `answer` are
`handle` in two halves, for platforms that acknowledge an event before it is answered.
`feedback`, `teach` and `forget` are the other actions; adapters never touch the store (beyond
`installations`: the credentials of a platform installed in many workspaces).
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from bot.commands import ATTACHMENT_ONLY, Commands
from bot.installations import Installations
from bot.messages import USER_TEXT, Incoming, Outcome, WorkerResult
from bot.metrics import Metrics
from bot.outbox import Delivery, Outbox
from bot.ratelimit import RateLimiter
from bot.steps import AllowList, Dedupe, IgnoreBots, OnlyAddressed, Step
from bot.store import Exchange, OutboxRow, Store
from bot.teaching import TaughtAnswers, TaughtPair
from bot.worker import InferenceWorker
from core_model.acknowledgements import is_distress
from core_model.text import normalize

log = logging.getLogger(__name__)

# Sends one reply on the platform; returns the platform's id of the message sent (None if unknown/failed).
Send = Callable[[str], Awaitable[str | None]]


@dataclass(frozen=True)
class Admission:
    """A message past the admission steps; `outbox_id` set when its answer is owed through the outbox."""
    msg: Incoming
    outbox_id: int | None = None
    accepted_at: float | None = None


class Pipeline:
    def __init__(self, worker: InferenceWorker, store: Store | None, limiter: RateLimiter | None = None,
                 metrics: Metrics | None = None, *, allow: AllowList | None = None,
                 commands: Commands | None = None, outbox: Outbox | None = None, teach_quorum: int = 0) -> None:
        """`teach_quorum` > 0: a taught answer reaches everyone once that many users taught it (0: only
        an admin's approval does)."""
        self.worker = worker
        self.taught = TaughtAnswers()
        self.teach_quorum = teach_quorum
        self._store = store
        self.outbox = outbox or Outbox(store, metrics)
        self._resuming: set[asyncio.Task] = set()
        self._in_hand: set[int] = set()  # outbox rows of messages admitted here and being answered
        self.limiter = limiter or RateLimiter(per_minute=0)
        self.metrics = metrics
        self.allow = allow or AllowList()
        self.commands = commands or Commands()
        # In order; `allow` stays the same object, so reconfiguring it takes effect at once.
        self.dedupe = Dedupe(store)
        self.steps: list[Step] = [IgnoreBots(), OnlyAddressed(), self.allow, self.dedupe]
        self.accepting = True
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def remembers(self) -> bool:
        """Whether conversations are stored (feedback, teach and forget need it)."""
        return self._store is not None

    @property
    def installations(self) -> Installations | None:
        """Where platforms installed in many workspaces keep each one's credentials (the store); None without one."""
        return self._store

    @property
    def model_version(self) -> str | None:
        return self.worker.version

    # -- a message ------------------------------------------------------------------------------
    async def handle(self, msg: Incoming, send: Send, *,
                     typing: Callable[[], AbstractAsyncContextManager] | None = None) -> WorkerResult | None:
        """Everything the bot does with one message; the reply goes out through `send`, or through the
        outbox when the platform registered a durable delivery (then `send` only answers commands).

        Returns the worker's result for a chat message, None when dropped or answered as a command.
        `typing`, if given, is shown while the model thinks.
        """
        admission = await self.admit(msg)
        return None if admission is None else await self.answer(admission, send, typing=typing)

    async def admit(self, msg: Incoming) -> Admission | None:
        """The admission steps, then (for a chat message on a durable platform) the promise of an answer
        written to the outbox. None: dropped. An adapter whose platform acknowledges events (Slack) calls
        this before acknowledging, and `answer` after, so an acknowledged message is never lost."""
        owed = not (msg.command or (not msg.text.strip() and msg.attachments)) and self.outbox.durable(msg.platform)
        for step in self.steps:
            # An owed answer's delivery is recorded as processed with its outbox row, in one transaction.
            if not (owed and step is self.dedupe) and not await step.admit(msg):
                return None
        if msg.command or (not msg.text.strip() and msg.attachments):
            return Admission(msg)
        msg = dataclasses.replace(msg, text=normalize(msg.text),
                                  raw_text=msg.text if msg.raw_text is None else msg.raw_text)
        if not owed:
            return Admission(msg)
        outbox_id = await self._store.outbox_accept(
            platform=msg.platform, user_id=msg.user_id, text=msg.text, raw=msg.raw_text, workspace=msg.workspace,
            channel=msg.channel, thread=msg.thread, reply_to=msg.message_id,
            event_key=self.dedupe.key(msg) if self.dedupe in self.steps else None)
        if outbox_id is None:
            self.dedupe.dropped(msg)
            return None
        self.outbox.accepted()
        self._in_hand.add(outbox_id)
        return Admission(msg, outbox_id, time.time())

    async def answer(self, admission: Admission, send: Send, *,
                     typing: Callable[[], AbstractAsyncContextManager] | None = None) -> WorkerResult | None:
        """Answer an admitted message: a command's text, or the model's reply (recorded)."""
        msg = admission.msg
        if msg.command:
            answer = await self.command(msg)
            if answer is not None:
                await send(answer)
                return None
            msg = dataclasses.replace(msg, text=normalize(msg.text),
                                      raw_text=msg.text if msg.raw_text is None else msg.raw_text)
        elif not msg.text.strip() and msg.attachments:
            await send(ATTACHMENT_ONLY)
            return None
        try:
            async with self._handling():
                if admission.outbox_id is not None and not self.accepting:
                    # Shutting down: no "busy" excuse is owed, the answer is; the next start makes and sends it.
                    return None
                async with typing() if typing else contextlib.nullcontext():
                    result = await self._ask(msg)
                if admission.outbox_id is None:
                    reply_id = await send(result.text)
                    await self._record(msg, result, reply_id)
                else:
                    await self._deliver(msg, result, admission.outbox_id, admission.accepted_at)
        finally:
            self._in_hand.discard(admission.outbox_id)
        return result

    async def _deliver(self, msg: Incoming, result: WorkerResult, outbox_id: int, accepted_at: float) -> None:
        """Through the outbox: the reply and its exchange are written before the post, marked sent after."""
        await self._store.outbox_reply(outbox_id, self._exchange(msg, result))
        await self.outbox.send(Delivery(msg.platform, msg.channel, msg.thread, msg.message_id, result.text,
                                        outbox_id, msg.workspace), accepted_at)

    async def resume(self) -> int:
        """At start-up: answer what this replica still owes from before (its own pending rows), and what dead
        replicas owed (pending, younger than the age limit); the number."""
        if self._store is None:
            return 0
        await self.outbox.expire_old()
        rows = await self._store.outbox_claim(self.outbox.platforms, own=True)
        # Not the messages adapters started since admitting (their answers are being made here already).
        return self._send_owed([r for r in rows if r.id not in self._in_hand], "from before")

    async def take_over(self) -> int:
        """Periodically: answer what replicas whose lease ran out (dead) still owed; the number taken over."""
        if self._store is None or not self.accepting or self.outbox.closed:  # stopping: leave them to the others
            return 0
        return self._send_owed(await self._store.outbox_claim(self.outbox.platforms, own=False),
                               "owed by a replica that stopped")

    def _send_owed(self, rows: list[OutboxRow], why: str) -> int:
        # Owed messages without a reply wait for the model in turns of half its queue: all at once they
        # would overflow it and get "busy" excuses, and live messages keep room beside them.
        slots = asyncio.Semaphore(max(1, self.worker.config.queue_size // 2))
        for row in rows:
            self.outbox.accepted()
            task = asyncio.create_task(self._resume_one(row, slots), name=f"resume-{row.id}")
            self._resuming.add(task)
            task.add_done_callback(self._resuming.discard)
        if rows:
            log.info("outbox: %d replies %s are being sent", len(rows), why)
        return len(rows)

    async def _resume_one(self, row: OutboxRow, slots: asyncio.Semaphore) -> None:
        msg = Incoming(row.platform, row.user_id, row.text, raw_text=row.raw, workspace=row.workspace,
                       channel=row.channel, thread=row.thread, message_id=row.reply_to)
        async with self._handling():
            if row.reply is None:  # accepted, but the model had not answered before the stop
                async with slots:
                    if not self.accepting:  # shutting down: the answer stays owed (no "busy" excuse)
                        return
                    result = await self._ask(msg, limit=False)
                await self._store.outbox_reply(row.id, self._exchange(msg, result))
                text = result.text
            else:
                text = row.reply
            await self.outbox.send(Delivery(row.platform, row.channel, row.thread, row.reply_to, text, row.id,
                                            row.workspace), row.created_at)

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

    async def _ask(self, msg: Incoming, *, limit: bool = True) -> WorkerResult:
        """The reply for normalized `msg`, or a polite outcome (rate limited, busy, empty, error); never raises.

        `limit=False`: the user's rate limit was applied when the message was first accepted."""
        if self.metrics:
            self.metrics.received(msg.platform)
        if not self.accepting:
            result = WorkerResult(Outcome.OVERLOADED, USER_TEXT[Outcome.OVERLOADED], self.worker.version,
                                  error="shutting down")
        elif limit and not self.limiter.allow(f"{msg.platform}:{msg.user_id}"):
            result = WorkerResult(Outcome.RATE_LIMITED, USER_TEXT[Outcome.RATE_LIMITED], self.worker.version)
        elif not is_distress(msg.text) and (taught := self.taught.lookup(msg.platform, msg.user_id,
                                                                         msg.text)) is not None:
            result = WorkerResult(Outcome.REPLIED, taught, self.worker.version)
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
        await self._store.log_exchange(self._exchange(msg, result, reply_message_id))

    @staticmethod
    def _exchange(msg: Incoming, result: WorkerResult, reply_message_id: str | None = None) -> Exchange:
        return Exchange(
            platform=msg.platform, workspace=msg.workspace, channel=msg.channel, thread=msg.thread,
            user_id=msg.user_id, text=msg.text, raw=msg.raw_text if msg.raw_text is not None else msg.text,
            reply=result.text, outcome=result.outcome.value, model_version=result.model_version,
            latency_ms=round(result.latency_ms, 2), reply_message_id=reply_message_id)

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

    async def load_taught(self) -> None:
        """At start-up: the taught pairs from the store, live again (approved ones in the model's bank)."""
        if self._store is not None:
            self.taught = TaughtAnswers(await self._store.taught_pairs())
            await self._publish_approved()

    async def refresh_taught(self) -> None:
        """Re-read the taught pairs; the live bank changes only when the approved ones did."""
        if self._store is None:
            return
        before = self.taught.approved()
        self.taught = TaughtAnswers(await self._store.taught_pairs())
        if self.taught.approved() != before:
            await self._publish_approved()

    async def teach(self, platform: str, user_id: str, channel: str | None, answer: str) -> TaughtPair | None:
        """The answer the user wanted for their last message (in `channel`): theirs at once, everyone's once
        approved (or once `teach_quorum` users taught it). None if they have no message to correct."""
        if self._store is None:
            return None
        pair = await self._store.teach(platform, user_id, channel, normalize(answer))
        if pair is None:
            return None
        self.taught.add(pair)
        agreed = self.taught.reached_quorum(pair, self.teach_quorum) if self.teach_quorum else []
        if agreed:
            await self.review([p.id for p in agreed], "approved", f"quorum of {self.teach_quorum}")
            pair = self.taught.get(pair.id) or pair
        return pair

    async def review(self, ids: list[int], status: str, reviewer: str) -> int:
        """Approve or reject taught pairs (an admin, or the quorum); the number changed. Approved pairs
        join the model's answer bank at once."""
        if self._store is None:
            return 0
        ids = [i for i in ids if self.taught.get(i) is not None]
        changed = await self._store.review_taught(ids, status, reviewer)
        for i in ids:
            self.taught.add(dataclasses.replace(self.taught.get(i), status=status))
        await self._publish_approved()
        return changed

    async def _publish_approved(self) -> None:
        await self.worker.set_extra_pairs([(p.question, p.answer) for p in self.taught.approved()])

    async def forget(self, platform: str, user_id: str) -> int:
        """Delete everything stored about the user (their taught answers too, from the live bank as well);
        the number of exchanges removed."""
        if self._store is None:
            return 0
        removed = await self._store.forget_user(platform, user_id)
        if self.taught.remove_user(platform, user_id):
            await self._publish_approved()
        return removed

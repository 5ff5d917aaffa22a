"""An adapter with no platform behind it: tests push messages in and pop the bot's replies.

errbot's test backend, for this bot: `push_message("안녕")` goes through the pipeline exactly as a
Discord or Slack message would (admission steps, commands, rate limit, worker, store), and
`pop_message()` returns what the bot said. Text commands use Discord's syntax (`!teach`, `!forget`,
`!reload`); `react` marks a reply good or bad. Platform-independent tests read like a conversation.
"""
from __future__ import annotations

import asyncio
import itertools

from bot.adapter import AdapterState
from bot.messages import Incoming
from bot.pipeline import Pipeline

COMMANDS = ("!teach", "!forget", "!reload", "!approve", "!reject")


class InProcessAdapter:
    name = "inprocess"

    def __init__(self, pipeline: Pipeline, user_id: str = "alice", channel: str = "room") -> None:
        self.pipeline = pipeline
        self.user_id, self.channel = user_id, channel
        self.state = AdapterState.CREATED
        self.sent: asyncio.Queue[tuple[str, str]] = asyncio.Queue()  # (message id, text) in order
        self._ids = itertools.count(1)
        self.last_id: str | None = None

    async def start(self) -> None:
        self.state = AdapterState.RUNNING

    async def stop_intake(self) -> None:
        self.state = AdapterState.STOPPED

    async def stop(self) -> None:
        self.state = AdapterState.STOPPED

    async def push_message(self, text: str, *, user_id: str | None = None, channel: str | None = None,
                           **flags) -> None:
        """Hand the bot one message and wait until it has been handled (replied, recorded, or dropped).

        `flags` are `Incoming` fields as a platform would set them (from_bot, addressed, private,
        delivery_id, workspace, attachments, ...).
        """
        name = text.strip().partition(" ")[0]
        msg = Incoming(self.name, self.user_id if user_id is None else user_id, text,
                       channel=self.channel if channel is None else channel,
                       command=name[1:] if name in COMMANDS else None, **flags)
        await self.pipeline.handle(msg, self._send)

    async def pop_message(self, timeout: float = 5.0) -> str:
        """The oldest reply not yet popped (waits up to `timeout` seconds for one)."""
        return (await asyncio.wait_for(self.sent.get(), timeout))[1]

    def pop_all(self) -> list[str]:
        """Every reply not yet popped; [] when the bot said nothing."""
        out = []
        while not self.sent.empty():
            out.append(self.sent.get_nowait()[1])
        return out

    async def react(self, kind: str, *, user_id: str | None = None, reply_id: str | None = None) -> bool:
        """A good/bad reaction on the reply `reply_id` (default: the last one the bot sent)."""
        return await self.pipeline.feedback(self.name, user_id or self.user_id, kind,
                                            reply_id=reply_id or self.last_id)

    async def _send(self, text: str) -> str:
        self.last_id = f"m{next(self._ids)}"
        self.sent.put_nowait((self.last_id, text))
        return self.last_id

"""The pipeline's admission steps: one concern each, in the order a message meets them.

Each step answers one question about an `Incoming` message; the first `False` drops it silently
(slack-bolt's middleware, reduced to what a chat bot needs). Adapters only say what they saw
(a bot wrote it, it mentions the bot, it is a DM, the platform's delivery id); the policy is here.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from cachetools import TTLCache

from bot.messages import Incoming
from bot.store import EVENT_TTL_S, Store

log = logging.getLogger(__name__)


class Step(Protocol):
    async def admit(self, msg: Incoming) -> bool:
        """True lets `msg` on to the next step; False drops it without a reply."""


class IgnoreBots:
    """Never answer a bot (this one included), a webhook, a non-chat subtype (edits, joins) or nobody."""

    async def admit(self, msg: Incoming) -> bool:
        return bool(msg.user_id) and not msg.from_bot and not msg.subtype


class OnlyAddressed:
    """In shared channels only messages that speak to the bot (a mention, a reply to it) are answered."""

    async def admit(self, msg: Incoming) -> bool:
        return msg.addressed


def allowed(allow_list: tuple[str, ...], *ids: str | int | None) -> bool:
    """An empty allow-list allows everything; otherwise one of `ids` must be on it."""
    return not allow_list or any(i is not None and str(i) in allow_list for i in ids)


@dataclass
class AllowList:
    """Outside direct messages, stay silent except in the allowed guilds and channels (empty: all).

    Guild ids are Discord's; other platforms' workspaces are not checked against them.
    """
    guilds: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    guild_platforms: tuple[str, ...] = ("discord",)

    async def admit(self, msg: Incoming) -> bool:
        if msg.private:
            return True
        if msg.platform in self.guild_platforms and not allowed(self.guilds, msg.workspace):
            return False
        return allowed(self.channels, msg.channel)


class Dedupe:
    """A redelivered event (Slack retries, concurrent deliveries) is answered once.

    The delivery id is marked as seen when received, before any model work: in the store
    (INSERT OR IGNORE, kept across restarts), or without a store in memory for `ttl_s`.
    """

    def __init__(self, store: Store | None, ttl_s: float = EVENT_TTL_S, maxsize: int = 50_000) -> None:
        self.store = store
        self._seen: TTLCache = TTLCache(maxsize=maxsize, ttl=ttl_s)

    @staticmethod
    def key(msg: Incoming) -> str | None:
        """The processed-events key of this delivery (None: the platform gives no delivery id)."""
        return None if msg.delivery_id is None else f"{msg.platform}:{msg.delivery_id}"

    @staticmethod
    def dropped(msg: Incoming) -> None:
        log.info("%s: duplicate delivery of %s ignored", msg.platform, msg.delivery_id)

    async def admit(self, msg: Incoming) -> bool:
        key = self.key(msg)
        if key is None:
            return True
        first = await self.store.first_delivery(key) if self.store else self._first_in_memory(key)
        if not first:
            self.dropped(msg)
        return first

    def _first_in_memory(self, key: str) -> bool:
        if key in self._seen:
            return False
        self._seen[key] = True
        return True

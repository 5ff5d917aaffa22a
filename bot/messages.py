"""Plain data shared by adapters, the pipeline and the worker; no platform types cross this line."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Outcome(str, Enum):
    REPLIED = "replied"
    EMPTY = "empty"
    OVERLOADED = "overloaded"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    ERROR = "error"


# What the user sees when the model did not produce the reply.
USER_TEXT = {
    Outcome.EMPTY: "메시지가 비어 있어요. 하고 싶은 말을 글로 적어 주세요.",
    Outcome.OVERLOADED: "지금 대화가 많아서 바빠요. 잠시 후에 다시 말 걸어 주세요.",
    Outcome.TIMEOUT: "답을 생각하는 데 너무 오래 걸렸어요. 잠시 후에 다시 시도해 주세요.",
    Outcome.RATE_LIMITED: "메시지가 너무 빨라요. 잠깐 쉬었다가 다시 보내 주세요.",
    Outcome.ERROR: "죄송해요, 답을 만드는 중에 문제가 생겼어요. 잠시 후에 다시 시도해 주세요.",
}


@dataclass(frozen=True)
class WorkerResult:
    """Exactly one of these per request."""
    outcome: Outcome
    text: str
    model_version: str | None = None
    latency_ms: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.REPLIED


@dataclass(frozen=True)
class Incoming:
    """A user's message as every adapter hands it to the pipeline: what the platform said, no policy.

    The flags record what the adapter saw; the pipeline's steps (bot/steps.py) decide what to do.
    """
    platform: str
    user_id: str
    text: str
    raw_text: str | None = None
    workspace: str | None = None
    channel: str | None = None
    thread: str | None = None
    message_id: str | None = None
    from_bot: bool = False  # written by a bot, a webhook or this bot itself
    subtype: str | None = None  # a platform's non-chat kind of message (an edit, a join)
    addressed: bool = True  # spoken to the bot: a DM, a mention, a reply to it
    private: bool = False  # a direct message: channel allow-lists do not apply
    delivery_id: str | None = None  # the platform's id of this delivery: a redelivery is answered once
    command: str | None = None  # "teach", "forget", "reload": the adapter recognized its platform's syntax
    attachments: int = 0  # files attached (the bot reads only text)

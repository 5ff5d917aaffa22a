"""Plain data shared by adapters, the pipeline and the worker; no platform types cross this line."""
from __future__ import annotations

from dataclasses import dataclass, field
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
    """A user's message as every adapter hands it to the pipeline."""
    platform: str
    user_id: str
    text: str
    raw_text: str | None = None
    workspace: str | None = None
    channel: str | None = None
    thread: str | None = None
    message_id: str | None = None
    extra: dict = field(default_factory=dict)

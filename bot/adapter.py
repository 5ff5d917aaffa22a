"""What the daemon needs of a chat platform adapter: start, stop, and a state it can report."""
from __future__ import annotations

from enum import Enum
from typing import Protocol


class AdapterState(str, Enum):
    """Where an adapter is in its life; /healthz shows the value (with the reason when failed)."""
    CREATED = "created"
    CONNECTING = "connecting"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"


class Adapter(Protocol):
    """A platform's translator: events in -> `Incoming` -> the pipeline; replies back out.

    Adapters hold no policy of their own (filters, allow-lists, dedupe, rate limits, storage all
    live in the pipeline), so the daemon can treat every platform alike.
    """
    name: str
    state: AdapterState

    async def start(self) -> None:
        """Connect and serve. May return once listening (or when closed); raises on a fatal error."""

    async def stop_intake(self) -> None:
        """Take no new messages; replies already being made still go out."""

    async def stop(self) -> None:
        """Disconnect and release everything."""


def describe(adapter: Adapter, failure: str | None = None) -> str:
    """The state as /healthz shows it: `running`, or `failed: <why>`."""
    state = adapter.state.value
    return f"{state}: {failure}" if adapter.state is AdapterState.FAILED and failure else state


def details(adapter: Adapter) -> dict | None:
    """What an adapter tells /healthz beside its state (Discord's shards), if it has a `details()`; else None."""
    get = getattr(adapter, "details", None)
    return get() if callable(get) else None

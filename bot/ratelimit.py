"""Per-user token buckets, shared by every adapter."""
from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    """`burst` messages at once, refilled at `per_minute` a minute; idle buckets are forgotten."""

    def __init__(self, per_minute: float = 20, burst: int = 5, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        if self.rate <= 0:
            return True  # rate limiting switched off
        now = self._clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1
        self._buckets[key] = (tokens - 1 if allowed else tokens, now)
        if len(self._buckets) > 10_000:
            self._forget_full(now)
        return allowed

    def _forget_full(self, now: float) -> None:
        full_after = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}

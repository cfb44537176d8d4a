"""Per-caller rate limiting: a token bucket per API key or end user."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Allows ``rate`` requests per second per caller, with bursts up to ``burst``.

    ``check`` answers None when the request may go ahead, else the whole seconds
    to wait (the ``Retry-After`` value). Limits are per process: behind several
    replicas each caller gets the rate from each.
    """

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        # A bucket idle this long is full again and need not be kept.
        self._idle_after = self._burst / rate
        self._checks = 0

    def check(self, caller: str) -> int | None:
        now = self._clock()
        with self._lock:
            self._checks += 1
            if self._checks % 10_000 == 0:
                self._forget_idle(now)
            tokens, at = self._buckets.get(caller, (self._burst, now))
            tokens = min(self._burst, tokens + (now - at) * self._rate)
            if tokens >= 1.0:
                self._buckets[caller] = (tokens - 1.0, now)
                return None
            self._buckets[caller] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / self._rate))

    def _forget_idle(self, now: float) -> None:
        self._buckets = {
            caller: (tokens, at)
            for caller, (tokens, at) in self._buckets.items()
            if now - at < self._idle_after
        }

"""Rate limiting: a token bucket per API key or end user, and one of failed
authentications per client address."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["FailedAuthentications", "RateLimiter"]


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
        """Take a token for ``caller``: None if there was one, else the seconds to wait."""
        return self._take(caller, take=True)

    def wait(self, caller: str) -> int | None:
        """The seconds until ``caller`` has a token again (None: it has one); takes none."""
        return self._take(caller, take=False)

    def _take(self, caller: str, *, take: bool) -> int | None:
        now = self._clock()
        with self._lock:
            self._checks += 1
            if self._checks % 10_000 == 0:
                self._forget_idle(now)
            tokens, at = self._buckets.get(caller, (self._burst, now))
            tokens = min(self._burst, tokens + (now - at) * self._rate)
            if tokens >= 1.0:
                if take:
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


class FailedAuthentications:
    """Failed authentications per client address, limited and tallied.

    Each failure takes a token from the address's bucket (``per_minute``
    sustained, ``burst`` at once); while the bucket is empty, :meth:`refused_for`
    says how long the address must wait, and its requests are refused without
    their credentials being looked at, so guessing keys gets ``per_minute``
    tries a minute. Failures and refusals are tallied per address until
    :meth:`drain` hands them over for the audit log, a line per address and not
    one per request.
    """

    def __init__(
        self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limiter = RateLimiter(per_minute / 60, burst, clock)
        self._tally: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def refused_for(self, address: str) -> int | None:
        """Seconds ``address`` must wait before authenticating again; None if it may now."""
        wait = self._limiter.wait(address)
        if wait is not None:
            self._count(address, failed=0, refused=1)
        return wait

    def failed(self, address: str) -> None:
        self._limiter.check(address)
        self._count(address, failed=1, refused=0)

    def _count(self, address: str, *, failed: int, refused: int) -> None:
        with self._lock:
            before = self._tally.get(address, (0, 0))
            self._tally[address] = (before[0] + failed, before[1] + refused)

    def drain(self) -> dict[str, tuple[int, int]]:
        """(failures, refusals) per address since the last drain."""
        with self._lock:
            tally, self._tally = self._tally, {}
        return tally

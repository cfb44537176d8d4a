"""Admission of expensive requests (metric queries, dashboards): a few run, a few wait.

Each admitted request holds a slot while it runs; when every slot is taken, up
to ``queue`` more wait for one, each for at most ``wait_seconds``; a request
beyond that, or whose wait runs out, is shed at once with 429 and
``Retry-After``: the client is asked to come back, as for a rate limit, and a
5xx keeps meaning that the server failed. A flood of queries therefore costs the server at most
``concurrency`` queries' memory and threads, and waiting requests cost only a
coroutine each (they wait on the event loop, not in a worker thread).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from banking_analytics.api._problems import ProblemError

__all__ = ["AdmissionGate"]

#: What a shed request is told to wait before trying again, in seconds.
RETRY_AFTER_SECONDS = 1


class AdmissionGate:
    """At most ``concurrency`` requests inside at once, ``queue`` more waiting at most
    ``wait_seconds`` each; the others are refused (429). Used from one event loop."""

    def __init__(self, concurrency: int, queue: int, wait_seconds: float) -> None:
        if concurrency < 1 or queue < 0 or wait_seconds < 0:
            raise ValueError("concurrency must be ≥ 1, queue and wait_seconds ≥ 0")
        self.concurrency = concurrency
        self.queue = queue
        self.wait_seconds = wait_seconds
        self._slots = asyncio.Semaphore(concurrency)
        self._waiting = 0

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Hold a slot for the block, waiting for one if the queue has room."""
        # locked(): no free slot, or others already waiting for one (first come, first in).
        if self._slots.locked():
            if self._waiting >= self.queue:
                raise self._shed(f"{self.concurrency} are running and {self._waiting} waiting")
            self._waiting += 1
            try:
                await asyncio.wait_for(self._slots.acquire(), self.wait_seconds)
            except TimeoutError:
                raise self._shed(
                    f"none of the {self.concurrency} running finished in time"
                ) from None
            finally:
                self._waiting -= 1
        else:
            await self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()

    @staticmethod
    def _shed(why: str) -> ProblemError:
        return ProblemError(
            429,
            f"the server is answering as many queries as it allows ({why}); try again shortly",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

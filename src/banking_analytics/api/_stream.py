"""What the event stream (``GET .../stream``) is fed by: one reader of the store per server,
handing each open stream what is new, through a queue of bounded length.

The :class:`StreamHub` reads the alert history for transitions numbered after the
last it handed on (``history_id``: every replica's evaluations are in it, in
commit order), and the data versions of the event tables, every
``stream_poll_seconds`` while a stream is open, or at once when this process
commits events (the commit listener) or its evaluator ends a cycle. One read per
interval whatever the number of streams (the data versions only while a stream
follows metric queries); the raw events are never read for it.

Each stream is a :class:`Subscriber`: at most ``stream_queue_events`` items wait
for it; one more, and it is marked overflowed and handed nothing further (its
stream ends with a final ``overflow`` event): a client that does not keep up
costs a bounded amount of memory, and never slows the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from banking_analytics._facade import BankingPerformanceAnalytics
from banking_analytics.api._json import dumps
from banking_analytics.api._problems import ProblemError
from banking_analytics.api._settings import ApiSettings
from banking_analytics.monitor import HistoryView
from banking_analytics.monitor._store import HistoryRow

__all__ = ["StreamHub", "Subscriber", "Transition", "Versions", "sse"]

_log = logging.getLogger(__name__)

#: Transitions read from the store at a time by the hub.
_PAGE = 500


def sse(data: Any, *, event: str | None = None, event_id: int | None = None) -> bytes:
    """One Server-Sent Event: optional ``id`` and ``event`` lines, then the data as JSON."""
    head = ""
    if event_id is not None:
        head += f"id: {event_id}\n"
    if event is not None:
        head += f"event: {event}\n"
    # orjson writes no raw newline, so the data is one ``data:`` line.
    return head.encode() + b"data: " + dumps(data) + b"\n\n"


def transition_event(row: HistoryRow) -> bytes:
    """A stored transition as an ``alert`` event, its ``history_id`` the event's id."""
    assert row.history_id is not None
    return sse(
        {"id": row.history_id, **HistoryView.of(row)}, event="alert", event_id=row.history_id
    )


@dataclass(frozen=True, slots=True)
class Transition:
    row: HistoryRow


@dataclass(frozen=True, slots=True)
class Versions:
    """The event tables' data versions changed (metric answers may have)."""

    versions: Mapping[str, int]


Item = Transition | Versions


class Subscriber:
    """One open stream's queue (see the module); used on the event loop only."""

    def __init__(self, key: str, capacity: int, *, follows_metrics: bool) -> None:
        self.key = key
        self.follows_metrics = follows_metrics
        self.overflowed = False
        self._capacity = capacity
        self._items: deque[Item] = deque()
        self._ready = asyncio.Event()

    def offer(self, item: Item) -> None:
        if self.overflowed:
            return
        if len(self._items) >= self._capacity:
            self.overflowed = True
            self._items.clear()  # nothing more will be sent: free it now
        else:
            self._items.append(item)
        self._ready.set()

    async def take(self, timeout: float, stopping: asyncio.Event | None) -> list[Item] | None:
        """What has come (possibly nothing, if it overflowed or ``stopping`` was set); None
        if nothing came within ``timeout`` seconds."""
        waits = [asyncio.ensure_future(self._ready.wait())]
        if stopping is not None:
            waits.append(asyncio.ensure_future(stopping.wait()))
        try:
            done, _ = await asyncio.wait(waits, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            for wait in waits:
                wait.cancel()
        if not done:
            return None
        self._ready.clear()
        items = list(self._items)
        self._items.clear()
        return items


class StreamHub:
    """The server's one reader of new transitions and data versions (see the module)."""

    def __init__(self, analytics: BankingPerformanceAnalytics, settings: ApiSettings) -> None:
        self._analytics = analytics
        self._settings = settings
        self._subscribers: set[Subscriber] = set()
        self._per_key: Counter[str] = Counter()
        self._cursor = 0
        self._versions: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None
        self._unlisten: Callable[[], None] | None = None

    @property
    def versions(self) -> Mapping[str, int]:
        """The event tables' data versions as last read."""
        return self._versions

    async def start(self) -> None:
        """Begin after what is stored now, and listen for this process's commits."""
        self._cursor = await anyio.to_thread.run_sync(self._analytics.monitor.store.last_history_id)
        self._versions = await anyio.to_thread.run_sync(self._analytics.metrics.versions)
        self._unlisten = self._analytics.on_commit(lambda _tables: self.wake_threadsafe())
        self._task = asyncio.create_task(self._run(), name="stream-hub")

    async def close(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake_threadsafe(self, *_: object) -> None:
        """Read the store now rather than at the next interval (from any thread)."""
        self._loop.call_soon_threadsafe(self._wake.set)

    def subscribe(self, key: str, *, follows_metrics: bool) -> Subscriber:
        """A new stream's queue; 429 if the server or ``key`` holds the most allowed."""
        settings = self._settings
        if len(self._subscribers) >= settings.stream_max_connections:
            raise _busy(f"the server holds {settings.stream_max_connections} open streams")
        if self._per_key[key] >= settings.stream_max_connections_per_key:
            raise _busy(
                f"{key} holds {settings.stream_max_connections_per_key} open streams, the most "
                "allowed; close one (or follow several queries in one stream)"
            )
        subscriber = Subscriber(key, settings.stream_queue_events, follows_metrics=follows_metrics)
        self._subscribers.add(subscriber)
        self._per_key[key] += 1
        self._wake.set()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)
            self._per_key[subscriber.key] -= 1
            if self._per_key[subscriber.key] <= 0:
                del self._per_key[subscriber.key]

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.stream_poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
            # Read even with no stream open: a stream opened later starts from now, not
            # from whatever was recorded while nobody listened.
            try:
                await self._read()
            # The store unreachable for a moment: the streams wait for the next read.
            except Exception:
                _log.exception("reading the store for the event stream failed")

    async def _read(self) -> None:
        store = self._analytics.monitor.store
        while True:
            rows = await anyio.to_thread.run_sync(store.transitions_after, self._cursor, _PAGE)
            for row in rows:
                assert row.history_id is not None
                self._cursor = row.history_id
                self._publish(Transition(row), metrics_only=False)
            if len(rows) < _PAGE:
                break
        if any(s.follows_metrics for s in self._subscribers):
            versions = await anyio.to_thread.run_sync(self._analytics.metrics.versions)
            if versions != self._versions:
                self._versions = versions
                self._publish(Versions(versions), metrics_only=True)

    def _publish(self, item: Item, *, metrics_only: bool) -> None:
        for subscriber in self._subscribers:
            if subscriber.follows_metrics or not metrics_only:
                subscriber.offer(item)


def _busy(detail: str) -> ProblemError:
    return ProblemError(429, f"{detail}; retry later", headers={"Retry-After": "5"})

"""A statement timeout for engines without one: a thread that interrupts overdue queries.

One thread per engine keeps the deadlines of running queries in a heap and sleeps
until the earliest; a query that is still running then is interrupted. Watching
a query costs a lock and a heap push (a timer thread per query cost ~0.3 ms,
as much as a small query); finished queries leave the heap lazily, when their
deadline comes to the top.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Watch", "Watchdog"]


@dataclass(slots=True)
class Watch:
    """One query under watch: ``fired`` once it was interrupted for its deadline."""

    seconds: float
    deadline: float
    interrupt: Callable[[], None]
    fired: bool = False
    done: bool = field(default=False, repr=False)


class Watchdog:
    """Calls a running query's ``interrupt`` once it outlives its deadline."""

    def __init__(self, name: str) -> None:
        self._name = name
        # Held while interrupting and while finishing: an interrupt never reaches a
        # query that has ended (its cursor would be idle, or running the next query).
        self._changed = threading.Condition()
        self._heap: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, seconds: float, interrupt: Callable[[], None]) -> Watch:
        """Start watching a query that ``interrupt`` stops; call :meth:`finish` after it."""
        watch = Watch(seconds, time.monotonic() + seconds, interrupt)
        with self._changed:
            heapq.heappush(self._heap, (watch.deadline, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif self._heap[0][2] is watch:  # sooner than what the thread sleeps until
                self._changed.notify()
        return watch

    def finish(self, watch: Watch) -> None:
        with self._changed:
            watch.done = True

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()

    def _run(self) -> None:
        with self._changed:
            while not self._closed:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._changed.wait()
                    continue
                deadline, _, watch = self._heap[0]
                left = deadline - time.monotonic()
                if left > 0:
                    self._changed.wait(left)
                    continue
                heapq.heappop(self._heap)
                watch.fired = True
                watch.interrupt()

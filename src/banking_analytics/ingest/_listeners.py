"""Commit listeners: callbacks told which tables each durable commit added rows to.

Listeners run on a thread of their own, never on the writer's: a commit only
puts the names of the tables it changed on a queue, so a slow or failing
listener (one that reads the new data, evaluates alerts, pushes updates) never
delays or fails ingestion.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable

__all__ = ["CommitListener", "CommitListeners"]

#: Called with the names of the tables that durable commits added rows to.
CommitListener = Callable[[frozenset[str]], None]

_log = logging.getLogger(__name__)

#: Put on the queue by ``close()``: the thread stops when it takes it.
_STOP = None


class CommitListeners:
    """The listeners of one pipeline, and the thread that calls them.

    Listeners are called one after another, in the order they were added, with
    the tables changed since their previous call: commits that happen while the
    listeners are busy reach them together, as the union of their tables. A
    listener's exception is logged and goes no further. The thread starts when
    the first listener is added.
    """

    def __init__(self) -> None:
        self._listeners: dict[int, CommitListener] = {}
        self._tokens = itertools.count()
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[frozenset[str] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, listener: CommitListener) -> Callable[[], None]:
        """Call ``listener(tables)`` after every durable commit that added rows.

        Returns a function that removes it; once that has returned, no new call
        of the listener starts (one under way finishes).
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the pipeline is closed")
            token = next(self._tokens)
            self._listeners[token] = listener
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="commit-listeners", daemon=True
                )
                self._thread.start()

        def remove() -> None:
            with self._lock:
                self._listeners.pop(token, None)

        return remove

    def notify(self, changed: frozenset[str]) -> None:
        """Tell the listeners (later, from their thread) that a commit changed these tables."""
        # Taken without the lock: the writer's only cost is this check and, when
        # someone listens, a put on a C queue.
        if changed and self._listeners and not self._closed:
            self._queue.put(changed)

    def close(self) -> None:
        """Call the listeners for every commit notified so far, then stop the thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            changed = self._queue.get()
            if changed is None:
                return
            while True:  # whatever else is queued joins this call
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                changed |= more
            self._call(changed)

    def _call(self, changed: frozenset[str]) -> None:
        with self._lock:
            tokens = list(self._listeners)
        for token in tokens:
            with self._lock:
                listener = self._listeners.get(token)
            if listener is None:  # removed meanwhile
                continue
            try:
                listener(changed)
            except Exception:
                _log.exception("commit listener %r failed on tables %s", listener, sorted(changed))

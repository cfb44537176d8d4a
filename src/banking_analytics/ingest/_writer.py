"""Group commit: many callers share one transaction, each answered after it commits.

Callers hand in decoded batches and get a :class:`Ticket`. Submissions join
the open *group*; one writer thread takes the oldest group, writes it through
the pipeline in a single transaction, and only after the commit wakes every
caller of that group at once. While a commit is in flight new submissions
gather in the next group, so groups grow with the load: few callers get low
latency, many callers get high throughput. One event per group (rather than a
future per caller) keeps the cost per recorded event small.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from banking_analytics.ingest._decode import Decoded
from banking_analytics.ingest._pipeline import IngestPipeline
from banking_analytics.ingest._results import BatchOutcome, BatchPart

__all__ = ["GroupCommitWriter", "Ticket", "WriterClosedError"]


class WriterClosedError(RuntimeError):
    """Raised when submitting to a writer that has been closed."""


class _Group:
    __slots__ = (
        "callbacks",
        "committed",
        "error",
        "lock",
        "outcome",
        "part_outcomes",
        "parts",
        "size",
    )

    def __init__(self) -> None:
        self.parts: list[Decoded] = []
        self.size = 0
        self.committed = threading.Event()
        self.outcome: BatchOutcome | None = None
        self.error: BaseException | None = None
        #: Set when the group failed as a whole and each part was written on its own.
        self.part_outcomes: list[BatchOutcome | BaseException] | None = None
        self.callbacks: list[Callable[[], None]] = []
        self.lock = threading.Lock()

    def finish(self) -> None:
        """Mark the group committed (or failed) and run the callbacks waiting for it."""
        with self.lock:
            self.committed.set()
            callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback()


class Ticket:
    """A caller's claim on the outcome of the group commit its batch joined."""

    __slots__ = ("_first_position", "_group", "_index", "_size", "_start")

    def __init__(self, group: _Group, start: int, decoded: Decoded) -> None:
        self._group, self._start, self._index = group, start, len(group.parts)
        self._size, self._first_position = decoded.size, decoded.first_position

    def done(self) -> bool:
        return self._group.committed.is_set()

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the commit finished (at once if it has), from the
        writer's thread: it must be quick, e.g. hand over to an event loop."""
        group = self._group
        with group.lock:
            if not group.committed.is_set():
                group.callbacks.append(callback)
                return
        callback()

    def result(self, timeout: float | None = None) -> BatchPart:
        """Wait for the commit; re-raises the writer's error if the commit failed."""
        if not self._group.committed.wait(timeout):
            raise TimeoutError("the group commit did not finish in time")
        if self._group.part_outcomes is not None:
            own = self._group.part_outcomes[self._index]
            if isinstance(own, BaseException):
                raise own
            return BatchPart(own, 0, self._size, self._first_position)
        if self._group.error is not None:
            raise self._group.error
        assert self._group.outcome is not None
        return BatchPart(self._group.outcome, self._start, self._size, self._first_position)


class GroupCommitWriter:
    """A single writer thread in front of an :class:`IngestPipeline`."""

    def __init__(self, pipeline: IngestPipeline, max_group_events: int = 20_000) -> None:
        self._pipeline = pipeline
        self._max_group_events = max_group_events
        self._full: deque[_Group] = deque()
        self._open = _Group()
        self._wakeup = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def submit(self, decoded: Decoded) -> Ticket:
        """Add a batch to the open group; the ticket answers after that group commits."""
        with self._wakeup:
            if self._closing:
                raise WriterClosedError("the writer is closed")
            group = self._open
            if group.size and group.size + decoded.size > self._max_group_events:
                self._full.append(group)
                group = self._open = _Group()
            ticket = Ticket(group, group.size, decoded)
            group.parts.append(decoded)
            group.size += decoded.size
            self._wakeup.notify()
        return ticket

    def close(self) -> None:
        """Write everything submitted, then stop the thread."""
        with self._wakeup:
            self._closing = True
            self._wakeup.notify()
        self._thread.join()

    def _take_group(self) -> _Group | None:
        with self._wakeup:
            while not self._full and not self._open.parts and not self._closing:
                self._wakeup.wait()
            if self._full:
                return self._full.popleft()
            if self._open.parts:
                group, self._open = self._open, _Group()
                return group
            return None

    def _run(self) -> None:
        while (group := self._take_group()) is not None:
            try:
                group.outcome = self._pipeline.write(Decoded.concat(group.parts))
            except BaseException as exc:  # every caller of the group must hear about it
                if len(group.parts) == 1:
                    group.error = exc
                else:
                    # Whatever failed, it must not fail the callers who merely shared
                    # the commit: each part is written (or fails) on its own.
                    group.part_outcomes = [self._write_alone(part) for part in group.parts]
            group.parts = []
            group.finish()

    def _write_alone(self, part: Decoded) -> BatchOutcome | BaseException:
        try:
            return self._pipeline.write(part)
        except BaseException as exc:
            return exc

"""Group commit: many callers share one transaction, each answered after it commits.

Callers hand in decoded batches and get a future. One writer thread takes
everything queued (up to ``max_group_events``), writes it through the pipeline
in a single transaction, and only after the commit resolves each caller's
future with that caller's part of the outcome. While a commit is in flight new
submissions queue up, so the group grows with the load: few callers get low
latency, many callers get high throughput.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

from banking_analytics.ingest._decode import Decoded
from banking_analytics.ingest._pipeline import IngestPipeline
from banking_analytics.ingest._results import BatchPart

__all__ = ["GroupCommitWriter", "WriterClosedError"]


class WriterClosedError(RuntimeError):
    """Raised when submitting to a writer that has been closed."""


@dataclass(slots=True)
class _Submission:
    decoded: Decoded
    future: Future[BatchPart]


class GroupCommitWriter:
    """A single writer thread in front of an :class:`IngestPipeline`."""

    def __init__(self, pipeline: IngestPipeline, max_group_events: int = 20_000) -> None:
        self._pipeline = pipeline
        self._max_group_events = max_group_events
        self._queue: deque[_Submission] = deque()
        self._wakeup = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def submit(self, decoded: Decoded) -> Future[BatchPart]:
        """Queue a batch; the future resolves after its transaction commits (or fails)."""
        future: Future[BatchPart] = Future()
        with self._wakeup:
            if self._closing:
                raise WriterClosedError("the writer is closed")
            self._queue.append(_Submission(decoded, future))
            self._wakeup.notify()
        return future

    def close(self) -> None:
        """Write everything queued, then stop the thread."""
        with self._wakeup:
            self._closing = True
            self._wakeup.notify()
        self._thread.join()

    def _take_group(self) -> list[_Submission] | None:
        with self._wakeup:
            while not self._queue and not self._closing:
                self._wakeup.wait()
            if not self._queue:
                return None
            group = [self._queue.popleft()]
            size = group[0].decoded.size
            while self._queue and size + self._queue[0].decoded.size <= self._max_group_events:
                size += self._queue[0].decoded.size
                group.append(self._queue.popleft())
            return group

    def _run(self) -> None:
        while (group := self._take_group()) is not None:
            try:
                outcome = self._pipeline.write(Decoded.concat([s.decoded for s in group]))
            except BaseException as exc:  # every caller must hear about the failure
                for s in group:
                    s.future.set_exception(exc)
                continue
            offset = 0
            for s in group:
                size = s.decoded.size
                s.future.set_result(BatchPart(outcome, offset, size, s.decoded.first_position))
                offset += size

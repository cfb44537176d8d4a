"""How the facade records events: one event, batches, columnar tables and files.

Every path goes through the same validation, quarantine and deduplication of the
ingestion layer; single events and batches share the group-commit writer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import pyarrow as pa

from banking_analytics.ingest import (
    BatchOutcome,
    CommitListener,
    Decoded,
    EventResult,
    EventStatus,
    ExchangeRate,
    GroupCommitWriter,
    IngestLimits,
    IngestPipeline,
    Ticket,
    decode_arrow,
    decode_records,
)
from banking_analytics.ingest._files import FileChunk, FileFormat, detect_format, read_file
from banking_analytics.store import Engine
from banking_analytics.vocabulary import EventType

__all__ = [
    "BatchTooLargeError",
    "EventRejectedError",
    "FileReport",
    "PendingBatch",
    "PendingEvent",
    "Recorder",
]


class EventRejectedError(ValueError):
    """A recorded event was rejected; it is in quarantine and ``result.errors`` says why."""

    def __init__(self, result: EventResult) -> None:
        super().__init__(f"event rejected: {result.reason}")
        self.result = result


class BatchTooLargeError(ValueError):
    """More events in one ``ingest`` call than ``IngestLimits.max_batch_events``."""


@dataclass(slots=True)
class FileReport:
    """What happened to a file's events; ``rejected`` lists (position, reason)."""

    path: Path
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    rejections: list[tuple[int, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.accepted + self.duplicate + self.rejected

    def add(self, outcome: BatchOutcome) -> None:
        self.accepted += outcome.count(EventStatus.ACCEPTED)
        self.duplicate += outcome.count(EventStatus.DUPLICATE)
        self.rejected += outcome.count(EventStatus.REJECTED)
        self.rejections.extend((r.position, r.reason or "") for r in outcome.rejected())


class PendingBatch:
    """Events on their way to the store, written together in one group commit."""

    __slots__ = ("_ticket",)

    def __init__(self, ticket: Ticket) -> None:
        self._ticket = ticket

    def done(self) -> bool:
        return self._ticket.done()

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` from the writer's thread once the commit finished (or at
        once); for event loops, which hand it over with ``call_soon_threadsafe``."""
        self._ticket.add_done_callback(callback)

    def results(self, timeout: float | None = None) -> list[EventResult]:
        """Wait for the commit; raises if the store failed to write the events."""
        return self._ticket.result(timeout).results()


class PendingEvent(PendingBatch):
    """One event on its way to the store."""

    __slots__ = ()

    def result(self, timeout: float | None = None) -> EventResult:
        """Wait for the commit; raises if the store failed to write the event."""
        return self._ticket.result(timeout).result(0)


def _plain(value: object) -> object:
    return value.value if isinstance(value, Enum) else value


class Recorder:
    """Writes events into one store: the ingestion pipeline and its group-commit writer."""

    def __init__(self, engine: Engine, limits: IngestLimits) -> None:
        self.limits = limits
        self._pipeline = IngestPipeline(engine, limits)
        self._writer = GroupCommitWriter(self._pipeline)

    def load_rates(self, rates: list[ExchangeRate]) -> int:
        """Store exchange rates; events in their currencies are accepted from now on."""
        return self._pipeline.load_rates(rates)

    def submit(self, event: Mapping[str, object], source: str) -> PendingEvent:
        decoded = decode_records([event], 0, self.limits.max_event_bytes, source)
        return PendingEvent(self._writer.submit(decoded))

    def record(self, event_type: EventType, fields: Mapping[str, object]) -> str:
        """Store one event from keyword fields (those given as None are left out); its id."""
        event: dict[str, object] = {"event_type": event_type.value}
        event.update({k: _plain(v) for k, v in fields.items() if v is not None})
        result = self.submit(event, "library").result()
        if result.status is EventStatus.REJECTED or result.event_id is None:
            raise EventRejectedError(result)
        return result.event_id

    def submit_batch(self, events: Iterable[Mapping[str, object]], source: str) -> PendingBatch:
        batch = list(events)
        if len(batch) > self.limits.max_batch_events:
            raise BatchTooLargeError(
                f"{len(batch)} events in one batch; the limit is {self.limits.max_batch_events}"
            )
        decoded = decode_records(batch, 0, self.limits.max_event_bytes, source)
        return PendingBatch(self._writer.submit(decoded))

    def ingest_arrow(
        self, table: pa.Table, event_type: EventType | None, source: str, first_position: int
    ) -> BatchOutcome:
        decoded = decode_arrow(
            table, first_position, self.limits.max_event_bytes, source, event_type=event_type
        )
        return self._pipeline.write(decoded)

    def ingest_file(
        self,
        path: Path,
        file_format: FileFormat | None,
        chunk_events: int,
        transaction_events: int | None,
        decode_workers: int,
        on_progress: Callable[[int, int], None] | None,
    ) -> FileReport:
        """See :meth:`BankingPerformanceAnalytics.ingest_file`."""
        fmt = file_format or detect_format(path)
        per_transaction = transaction_events or chunk_events
        report = FileReport(path)
        chunks = read_file(
            path, fmt, chunk_events, self.limits.max_event_bytes, decode_workers=decode_workers
        )
        done_bytes = done_events = 0

        def transaction(first: FileChunk) -> Iterator[Decoded]:
            """Chunks from ``first`` on, until the transaction is full or the file ends."""
            nonlocal done_bytes, done_events
            events = 0
            chunk: FileChunk | None = first
            while chunk is not None:
                yield chunk.decoded
                events += chunk.decoded.size
                done_bytes += chunk.nbytes
                done_events += chunk.decoded.size
                if on_progress is not None:
                    on_progress(done_bytes, done_events)
                chunk = next(chunks, None) if events < per_transaction else None

        while (first := next(chunks, None)) is not None:
            report.add(self._pipeline.write_many(transaction(first)))
        return report

    def on_commit(self, listener: CommitListener) -> Callable[[], None]:
        """Call ``listener(changed tables)`` after each durable commit; returns a function
        that unregisters it."""
        return self._pipeline.on_commit(listener)

    def close(self) -> None:
        """Finish queued writes, then deliver the commit listeners' pending calls."""
        self._writer.close()
        self._pipeline.close()

"""``BankingPerformanceAnalytics``: the library's front door, wiring store and ingestion."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Self

import pyarrow as pa
from sqlglot import exp

from banking_analytics.analytics import (
    HealthThresholds,
    InstitutionHealth,
    PerformanceAnalytics,
    SyncFreshness,
)
from banking_analytics.events import SCHEMAS
from banking_analytics.ingest import (
    BatchOutcome,
    CommitListener,
    Decoded,
    EventResult,
    EventStatus,
    GroupCommitWriter,
    IngestLimits,
    IngestPipeline,
    Ticket,
    decode_arrow,
    decode_records,
)
from banking_analytics.ingest._files import FileChunk, FileFormat, detect_format, read_file
from banking_analytics.metrics import (
    Bucket,
    MetricQuery,
    MetricService,
    QueryBudget,
    QueryError,
    QueryResult,
    TimeWindow,
    parse_time_period,
)
from banking_analytics.store import QUARANTINE, Engine, open_engine
from banking_analytics.store.statements import column, select_all
from banking_analytics.vocabulary import BankingFeature, EventType, PerformanceMetric

__all__ = [
    "BankingPerformanceAnalytics",
    "BatchTooLargeError",
    "EventRejectedError",
    "FileReport",
    "PendingBatch",
    "PendingEvent",
    "StoreInfo",
    "TableInfo",
]


class EventRejectedError(ValueError):
    """A recorded event was rejected; it is in quarantine and ``result.errors`` says why."""

    def __init__(self, result: EventResult) -> None:
        super().__init__(f"event rejected: {result.reason}")
        self.result = result


class BatchTooLargeError(ValueError):
    """More events in one ``ingest`` call than ``IngestLimits.max_batch_events``."""


@dataclass(frozen=True, slots=True)
class TableInfo:
    event_type: str
    table: str
    events: int
    first_occurred_at: datetime | None
    last_occurred_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoreInfo:
    url: str
    tables: tuple[TableInfo, ...]
    quarantined: int

    @property
    def total_events(self) -> int:
        return sum(t.events for t in self.tables)


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


def _event(event_type: EventType, fields: Mapping[str, object]) -> dict[str, object]:
    """An event mapping from keyword fields, leaving out the ones not given."""
    event: dict[str, object] = {"event_type": event_type.value}
    event.update({k: _plain(v) for k, v in fields.items() if v is not None})
    return event


class BankingPerformanceAnalytics:
    """Records banking events and (in later layers) analyses them.

    Thread-safe: any number of threads may record at once; their events share
    group commits, and each ``record_*`` call returns only once its event is
    durably stored (or raises :class:`EventRejectedError`).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        limits: IngestLimits | None = None,
        health_thresholds: HealthThresholds | None = None,
    ) -> None:
        self.engine = engine
        self.limits = limits or IngestLimits()
        self._pipeline = IngestPipeline(engine, self.limits)
        self._writer = GroupCommitWriter(self._pipeline)
        self.metrics = MetricService(engine)
        self._performance = PerformanceAnalytics(self.metrics)
        self._health = InstitutionHealth(self.metrics, health_thresholds)
        self._freshness = SyncFreshness(self.metrics)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        limits: IngestLimits | None = None,
        health_thresholds: HealthThresholds | None = None,
    ) -> Self:
        """Open (creating if needed) the store at ``url``, e.g. ``duckdb:///analytics.duckdb``."""
        return cls(open_engine(url), limits=limits, health_thresholds=health_thresholds)

    # -- recording ---------------------------------------------------------------------------

    def submit(self, event: Mapping[str, object], source: str = "library") -> PendingEvent:
        """Queue one event; ``.result()`` answers once it is durably stored or rejected.

        For producers that keep many events in flight: each thread can submit a
        window of events and then wait for them, so commits carry many events.
        """
        decoded = decode_records([event], 0, self.limits.max_event_bytes, source)
        return PendingEvent(self._writer.submit(decoded))

    def _record(self, event_type: EventType, fields: Mapping[str, object]) -> str:
        result = self.submit(_event(event_type, fields)).result()
        if result.status is EventStatus.REJECTED or result.event_id is None:
            raise EventRejectedError(result)
        return result.event_id

    def record_performance_metric(
        self,
        metric_type: PerformanceMetric | str,
        feature: BankingFeature | str,
        value: float,
        user_id: str | None = None,
        **fields: object,
    ) -> str:
        """Record one performance measurement; returns its id (the metric id).

        Other fields of the ``performance_metric`` event (``unit``,
        ``institution_id``, ``occurred_at``, ``event_id``, ...) go as keywords.
        """
        return self._record(
            EventType.PERFORMANCE_METRIC,
            {
                "metric_type": metric_type,
                "feature": feature,
                "value": value,
                "user_id": user_id,
                **fields,
            },
        )

    def record_user_behavior(
        self,
        user_id: str,
        feature: BankingFeature | str,
        action: str,
        duration_s: float | None = None,
        success: bool | None = None,
        **fields: object,
    ) -> str:
        """Record a user's interaction with a feature (``device``, ``platform``... as keywords)."""
        return self._record(
            EventType.BEHAVIOR,
            {
                "user_id": user_id,
                "feature": feature,
                "action": action,
                "duration_s": duration_s,
                "success": success,
                **fields,
            },
        )

    def record_connection_attempt(self, **fields: object) -> str:
        """Record a link or reauth attempt; fields as in the ``connection_attempt`` schema."""
        return self._record(EventType.CONNECTION_ATTEMPT, fields)

    def record_sync_run(self, **fields: object) -> str:
        """Record a data sync run; fields as in the ``sync_run`` schema."""
        return self._record(EventType.SYNC_RUN, fields)

    def record_subscription_event(self, **fields: object) -> str:
        """Record a subscription lifecycle or payment event; fields as in its schema."""
        return self._record(EventType.SUBSCRIPTION, fields)

    def submit_batch(
        self, events: Iterable[Mapping[str, object]], source: str = "library"
    ) -> PendingBatch:
        """Queue a batch of events of any types; ``.results()`` answers once they are stored."""
        batch = list(events)
        if len(batch) > self.limits.max_batch_events:
            raise BatchTooLargeError(
                f"{len(batch)} events in one batch; the limit is {self.limits.max_batch_events}"
            )
        decoded = decode_records(batch, 0, self.limits.max_event_bytes, source)
        return PendingBatch(self._writer.submit(decoded))

    def ingest(
        self, events: Iterable[Mapping[str, object]], source: str = "library"
    ) -> list[EventResult]:
        """Store a batch of events of any types; one result per event, in order.

        A bad event is rejected (and quarantined) without affecting the others.
        """
        return self.submit_batch(events, source).results()

    def ingest_arrow(
        self,
        table: pa.Table,
        *,
        event_type: EventType | None = None,
        source: str = "arrow",
        first_position: int = 0,
    ) -> BatchOutcome:
        """Store a columnar batch in one transaction (bulk path, same validation and dedup).

        A ``received_at`` column, if present, is taken as the receipt time.
        """
        decoded = decode_arrow(
            table, first_position, self.limits.max_event_bytes, source, event_type=event_type
        )
        return self._pipeline.write(decoded)

    def ingest_file(
        self,
        path: str | Path,
        *,
        file_format: FileFormat | None = None,
        chunk_events: int = 100_000,
        transaction_events: int | None = None,
        decode_workers: int = 0,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> FileReport:
        """Store every event of a JSON Lines, CSV or Parquet file.

        The file is decoded in chunks of ``chunk_events``, each validated as it
        comes; every ``transaction_events`` (default: every chunk) are then
        written in one transaction. ``decode_workers`` > 0 decodes JSON Lines in
        that many worker processes (see :func:`read_file`).
        ``on_progress(bytes_done, events_done)`` is called after each chunk is
        validated.
        """
        path = Path(path)
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

    # -- analysis ----------------------------------------------------------------------------

    def query_metrics(
        self,
        metrics: Iterable[str],
        time_period: str | TimeWindow = "24h",
        *,
        dimensions: Sequence[str] = (),
        bucket: Bucket | str | None = None,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        timezone: str = "UTC",
        compare: bool = False,
        now: datetime | None = None,
        limit: int | None = None,
        budget: QueryBudget | None = None,
    ) -> QueryResult:
        """Any catalogue metrics, cut by dimensions and optionally bucketed in time.

        ``time_period`` is ``"1h"``, ``"24h"``, ``"7d"``, ... ending now (or
        ``now``), or a :class:`TimeWindow`. Raises :class:`QueryError` naming
        the part of the query that cannot be answered. ``limit`` answers the
        top N dimension-value combinations and an "other" row; a ``budget``
        refuses a query whose answer could be larger (:class:`QueryTooLargeError`).
        """
        query = MetricQuery.build(
            metrics,
            parse_time_period(time_period, now),
            dimensions=dimensions,
            bucket=bucket,
            filters=filters,
            timezone=timezone,
        )
        return self.metrics.run(query, compare=compare, limit=limit, budget=budget)

    def analyze_connection_performance(
        self,
        time_period: str | TimeWindow = "24h",
        *,
        now: datetime | None = None,
        timezone: str = "UTC",
    ) -> dict[str, Any]:
        """Connection health: success rate and breakdown, latency, conversion, cuts, series."""
        return self._performance.analyze_connection_performance(
            time_period, now=now, timezone=timezone
        )

    def analyze_feature_usage(
        self,
        time_period: str | TimeWindow = "7d",
        feature: BankingFeature | str | None = None,
        *,
        now: datetime | None = None,
        timezone: str = "UTC",
    ) -> dict[str, Any]:
        """Per feature: usage count, unique users, sessions, success rate, mean duration."""
        return self._performance.analyze_feature_usage(
            time_period, feature, now=now, timezone=timezone
        )

    def analyze_error_rates(
        self,
        time_period: str | TimeWindow = "24h",
        *,
        now: datetime | None = None,
        timezone: str = "UTC",
    ) -> dict[str, Any]:
        """Failures per error category, as counts and as shares of all attempts and sync runs."""
        return self._performance.analyze_error_rates(time_period, now=now, timezone=timezone)

    def performance_dashboard(
        self,
        time_period: str | TimeWindow = "24h",
        *,
        now: datetime | None = None,
        timezone: str = "UTC",
        health_lookback: str | TimeWindow = "7d",
        parts: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Everything the performance dashboard shows: ``connection`` performance (success
        rate and breakdown, latency percentiles, cuts by aggregator, institution and
        feature, time series), an ``hourly`` series, ``errors`` by category,
        ``institution_health`` and ``sync_freshness`` (or only the ``parts`` named).
        The parts are computed concurrently (the engines run queries in parallel and
        release the GIL while they do).
        """
        window = parse_time_period(time_period, now)
        end = window.end
        # One reading of the data versions serves every part, so they describe one state.
        versions = self.metrics.versions()
        hourly = MetricQuery.build(
            ["connection_success_rate", "connection_attempts", "connection_latency_p95_ms"],
            window,
            bucket=Bucket.HOUR,
            timezone=timezone,
        )
        panels: dict[str, Callable[[], dict[str, Any]]] = {
            "connection": lambda: self._performance.analyze_connection_performance(
                window, timezone=timezone, versions=versions
            ),
            "hourly": lambda: self.metrics.run(hourly, versions=versions).as_dict(),
            "errors": lambda: self._performance.analyze_error_rates(
                window, timezone=timezone, versions=versions
            ),
            "institution_health": lambda: self._health.institution_health(
                health_lookback, now=end, versions=versions
            ),
            "sync_freshness": lambda: self._freshness.sync_freshness(
                health_lookback, now=end, versions=versions
            ),
        }
        chosen = list(panels) if parts is None else list(dict.fromkeys(parts))
        unknown = [name for name in chosen if name not in panels]
        if unknown or not chosen:
            raise QueryError(f"parts: {unknown or 'none'}; choose from {', '.join(panels)}")
        with ThreadPoolExecutor(max_workers=len(chosen), thread_name_prefix="dashboard") as pool:
            futures = {name: pool.submit(panels[name]) for name in chosen}
            return {name: future.result() for name, future in futures.items()}

    def institution_health(
        self,
        lookback: str | TimeWindow = "7d",
        *,
        now: datetime | None = None,
        include_history: bool = False,
    ) -> dict[str, Any]:
        """HEALTHY / DEGRADED / DOWN / UNKNOWN per institution, aggregator and product."""
        return self._health.institution_health(lookback, now=now, include_history=include_history)

    def sync_freshness(
        self, lookback: str | TimeWindow = "7d", *, now: datetime | None = None
    ) -> dict[str, Any]:
        """NORMAL / DELAYED / STOPPED refresh state of every connection synced recently."""
        return self._freshness.sync_freshness(lookback, now=now)

    # -- inspection --------------------------------------------------------------------------

    def info(self) -> StoreInfo:
        """Counts per event type, their time range, and the quarantine size."""
        tables = []
        for schema in SCHEMAS.values():
            row = self.engine.query(
                f"SELECT count(*) AS n, min(occurred_at) AS lo, max(occurred_at) AS hi "
                f"FROM {schema.table}"
            ).to_pylist()[0]
            tables.append(
                TableInfo(
                    schema.event_type.value, schema.table, int(row["n"]), row["lo"], row["hi"]
                )
            )
        quarantined = self.engine.query(f"SELECT count(*) AS n FROM {QUARANTINE.name}")
        return StoreInfo(self.engine.url, tuple(tables), int(quarantined["n"][0].as_py()))

    def quarantine(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recent quarantined events with their reasons and raw payloads."""
        newest_first = (
            select_all(QUARANTINE)
            .order_by(exp.Ordered(this=column("received_at"), desc=True), column("position"))
            .limit(exp.Placeholder())
        )
        rows: list[dict[str, Any]] = self.engine.query(
            newest_first.sql(self.engine.dialect), [limit]
        ).to_pylist()
        return rows

    # -- lifecycle ---------------------------------------------------------------------------

    def on_commit(self, listener: CommitListener) -> Callable[[], None]:
        """Call ``listener(tables)`` after each commit of events, whatever wrote them (records,
        batches, files): see :meth:`IngestPipeline.on_commit`. Returns the way to remove it."""
        return self._pipeline.on_commit(listener)

    def close(self) -> None:
        """Finish queued writes, tell the commit listeners, and close the store."""
        self._writer.close()
        self._pipeline.close()
        self.engine.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""``BankingPerformanceAnalytics``: the library's front door, wiring store, ingestion and analyses.

The analyses are grouped in domain namespaces, each an attribute built on first
use (:func:`namespace`): ``analytics.performance`` today (connection
performance, feature usage, error rates, institution health, sync freshness,
the dashboard). Opening the facade loads no analysis module; the first use of a
namespace imports its modules and builds its analyses over the store's one
:class:`MetricService` and one bounded :class:`QueryExecutor`.

The revenue, behaviour, monitoring and prediction domains follow the same
pattern: a namespace class in the analytics layer (``analytics/_<domain>_namespace.py``,
its analyses in their own modules, its result shapes beside them), a
``@namespace`` method here that imports and builds it, and the spec's flat
methods (``analyze_revenue_impact``, ``predict_user_churn``, ...) as one-line
delegations to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import pyarrow as pa
from sqlglot import exp

from banking_analytics._lazy import namespace
from banking_analytics._recording import (
    BatchTooLargeError,
    EventRejectedError,
    FileReport,
    PendingBatch,
    PendingEvent,
    Recorder,
)
from banking_analytics.events import SCHEMAS
from banking_analytics.ingest import (
    BatchOutcome,
    CommitListener,
    EventResult,
    IngestLimits,
    parse_rates,
    read_rates_csv,
)
from banking_analytics.ingest._files import FileFormat
from banking_analytics.metrics import (
    DEFAULT_QUERY_WORKERS,
    LEDGER,
    Bucket,
    MetricQuery,
    MetricService,
    QueryBudget,
    QueryExecutor,
    QueryResult,
    TimeWindow,
    parse_time_period,
)
from banking_analytics.store import QUARANTINE, Engine, open_engine
from banking_analytics.store.statements import column, select_all
from banking_analytics.vocabulary import BankingFeature, EventType, PerformanceMetric

if TYPE_CHECKING:
    from banking_analytics.analytics import (
        ConnectionPerformance,
        ErrorRates,
        FeatureUsage,
        HealthThresholds,
        PerformanceNamespace,
    )
    from banking_analytics.analytics.behavior import (
        BehaviorNamespace,
        Engagement,
        FunnelQuery,
        FunnelResult,
        Lifecycle,
        LifecycleQuery,
        PathsQuery,
        PathsResult,
        RetentionQuery,
        RetentionResult,
        SessionAnalysis,
        Stickiness,
        StickinessQuery,
        UserBehavior,
    )
    from banking_analytics.analytics.revenue import (
        Recommendations,
        RevenueImpact,
        RevenueNamespace,
        RoiProjection,
    )
    from banking_analytics.monitor import MonitorNamespace

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


class BankingPerformanceAnalytics:
    """Records banking events and analyses them.

    Thread-safe: any number of threads may record at once; their events share
    group commits, and each ``record_*`` call returns only once its event is
    durably stored (or raises :class:`EventRejectedError`). Queries that run side
    by side (a dashboard's parts) share one pool of ``query_workers`` threads, which
    also bounds a PostgreSQL store's read connections (see :meth:`open`).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        limits: IngestLimits | None = None,
        health_thresholds: HealthThresholds | None = None,
        query_workers: int = DEFAULT_QUERY_WORKERS,
    ) -> None:
        """Over an engine opened elsewhere (its PostgreSQL read connections bounded as it
        was opened; :meth:`open` bounds them by ``query_workers``)."""
        self.engine = engine
        self.limits = limits or IngestLimits()
        self._recorder = Recorder(engine, self.limits)
        self.metrics = MetricService(engine)
        self.queries = QueryExecutor(query_workers)
        self._health_thresholds = health_thresholds
        # The catalogue's revenue metrics come from the ledger, built when first asked.
        self.metrics.provide(LEDGER, lambda query: self.revenue.answer(query))

    @classmethod
    def open(
        cls,
        url: str,
        *,
        limits: IngestLimits | None = None,
        health_thresholds: HealthThresholds | None = None,
        query_workers: int = DEFAULT_QUERY_WORKERS,
    ) -> Self:
        """Open (creating if needed) the store at ``url``, e.g. ``duckdb:///analytics.duckdb``.

        ``query_workers`` threads run the queries a dashboard runs side by side; on
        PostgreSQL the store then holds at most that many read connections (and one
        for writing), whatever the number of threads asking.
        """
        engine = open_engine(url, max_readers=max(query_workers, 1))
        try:
            return cls(
                engine,
                limits=limits,
                health_thresholds=health_thresholds,
                query_workers=query_workers,
            )
        except BaseException:  # e.g. a negative query_workers: the store is not left open
            engine.close()
            raise

    # -- domain namespaces (built on first use) -----------------------------------------------

    @namespace
    def performance(self) -> PerformanceNamespace:
        """Bank-integration performance: connections, feature usage, errors, institution
        health, sync freshness and the dashboard of them."""
        from banking_analytics.analytics import PerformanceNamespace

        return PerformanceNamespace(self.metrics, self.queries, self._health_thresholds)

    @namespace
    def revenue(self) -> RevenueNamespace:
        """Subscription revenue: the ledger (MRR and its movements), revenue metrics,
        cohorts and the revenue dashboard."""
        from banking_analytics.analytics.revenue import RevenueNamespace, RevenuePolicy

        # Money is reported in the currency ingestion checks rates against.
        currency = self.limits.reporting_currency or "USD"
        return RevenueNamespace(
            self.metrics, self.queries, RevenuePolicy(reporting_currency=currency)
        )

    @namespace
    def behavior(self) -> BehaviorNamespace:
        """How people use the banking features: sessions, devices, engagement, stickiness,
        lifecycle, funnels, retention and paths."""
        from banking_analytics.analytics.behavior import BehaviorNamespace

        return BehaviorNamespace(self.metrics, self.queries)

    @namespace
    def monitor(self) -> MonitorNamespace:
        """Alert rules (versioned in the store), their evaluation, alerts and their history."""
        from banking_analytics.monitor import MonitorNamespace

        return MonitorNamespace(self.metrics, self.engine)

    # -- recording ---------------------------------------------------------------------------

    def submit(self, event: Mapping[str, object], source: str = "library") -> PendingEvent:
        """Queue one event; ``.result()`` answers once it is durably stored or rejected.

        For producers that keep many events in flight: each thread can submit a
        window of events and then wait for them, so commits carry many events.
        """
        return self._recorder.submit(event, source)

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
        return self._recorder.record(
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
        return self._recorder.record(
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
        return self._recorder.record(EventType.CONNECTION_ATTEMPT, fields)

    def record_sync_run(self, **fields: object) -> str:
        """Record a data sync run; fields as in the ``sync_run`` schema."""
        return self._recorder.record(EventType.SYNC_RUN, fields)

    def record_subscription_event(self, **fields: object) -> str:
        """Record a subscription lifecycle or payment event; fields as in its schema."""
        return self._recorder.record(EventType.SUBSCRIPTION, fields)

    def submit_batch(
        self, events: Iterable[Mapping[str, object]], source: str = "library"
    ) -> PendingBatch:
        """Queue a batch of events of any types; ``.results()`` answers once they are stored."""
        return self._recorder.submit_batch(events, source)

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
        return self._recorder.ingest_arrow(table, event_type, source, first_position)

    def load_exchange_rates(
        self, rates: str | Path | Iterable[Mapping[str, object]], *, quote: str | None = None
    ) -> int:
        """Load exchange rates to the reporting currency (``quote``, by default the one in
        ``limits``): a CSV file (header ``currency,valid_from,rate``) or rows with those
        keys. Rates are exact decimals; one already loaded cannot change. Returns how many
        were new; events in those currencies are accepted from now on."""
        to = quote or self.limits.reporting_currency or "USD"
        if isinstance(rates, str | Path):
            parsed = read_rates_csv(Path(rates), to)
        else:
            parsed = parse_rates(rates, to)
        return self._recorder.load_rates(parsed)

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
        return self._recorder.ingest_file(
            Path(path), file_format, chunk_events, transaction_events, decode_workers, on_progress
        )

    # -- analysis: the spec's methods, delegated to the namespaces -----------------------------

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
    ) -> ConnectionPerformance:
        """Connection health: success rate and breakdown, latency, conversion, cuts, series."""
        return self.performance.analyze_connection_performance(
            time_period, now=now, timezone=timezone
        )

    def analyze_feature_usage(
        self,
        time_period: str | TimeWindow = "7d",
        feature: BankingFeature | str | None = None,
        *,
        now: datetime | None = None,
        timezone: str = "UTC",
    ) -> FeatureUsage:
        """Per feature: usage count, unique users, sessions, success rate, mean duration."""
        return self.performance.analyze_feature_usage(
            time_period, feature, now=now, timezone=timezone
        )

    def analyze_error_rates(
        self,
        time_period: str | TimeWindow = "24h",
        *,
        now: datetime | None = None,
        timezone: str = "UTC",
    ) -> ErrorRates:
        """Failures per error category, as counts and as shares of all attempts and sync runs."""
        return self.performance.analyze_error_rates(time_period, now=now, timezone=timezone)

    def performance_dashboard(
        self,
        time_period: str | TimeWindow = "24h",
        *,
        now: datetime | None = None,
        timezone: str = "UTC",
        health_lookback: str | TimeWindow = "7d",
        parts: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """The performance dashboard's parts, computed concurrently (see
        :meth:`PerformanceNamespace.dashboard`)."""
        return self.performance.dashboard(
            time_period, now=now, timezone=timezone, health_lookback=health_lookback, parts=parts
        )

    def institution_health(
        self,
        lookback: str | TimeWindow = "7d",
        *,
        now: datetime | None = None,
        include_history: bool = False,
    ) -> dict[str, Any]:
        """HEALTHY / DEGRADED / DOWN / UNKNOWN per institution, aggregator and product."""
        return self.performance.institution_health(
            lookback, now=now, include_history=include_history
        )

    def sync_freshness(
        self, lookback: str | TimeWindow = "7d", *, now: datetime | None = None
    ) -> dict[str, Any]:
        """NORMAL / DELAYED / STOPPED refresh state of every connection synced recently."""
        return self.performance.sync_freshness(lookback, now=now)

    def analyze_revenue_impact(
        self,
        time_period: str | TimeWindow = "90d",
        feature: BankingFeature | str | None = None,
        *,
        now: datetime | None = None,
    ) -> RevenueImpact:
        """Revenue, adoption, attributed feature revenue, conversion sources and each
        feature's causal effect on upgrading (see :class:`RevenueImpactAnalysis`)."""
        return self.revenue.impact.analyze(time_period, feature, now=now)

    def get_revenue_optimization_recommendations(
        self, time_period: str | TimeWindow = "90d", *, now: datetime | None = None
    ) -> Recommendations:
        """Ranked feature actions with their expected MRR gain and the evidence behind them."""
        return self.revenue.optimization.recommendations(time_period, now=now)

    def project_feature_roi(
        self, feature: BankingFeature | str, *, cost: int, **improvement: Any
    ) -> RoiProjection:
        """MRR uplift, payback, ROI and NPV of improving a feature (see
        :meth:`RevenueOptimization.roi` for the improvement's keywords)."""
        return self.revenue.optimization.roi(feature, cost=cost, **improvement)

    def analyze_user_behavior(
        self,
        time_period: str | TimeWindow = "30d",
        feature: BankingFeature | str | None = None,
        *,
        now: datetime | None = None,
        timezone: str = "UTC",
    ) -> UserBehavior:
        """Sessions, devices, engagement, stickiness and lifecycle over ``time_period``."""
        return self.behavior.analyze_user_behavior(time_period, feature, now=now, timezone=timezone)

    def analyze_sessions(
        self,
        time_period: str | TimeWindow = "30d",
        feature: BankingFeature | str | None = None,
        *,
        now: datetime | None = None,
        timezone: str = "UTC",
    ) -> SessionAnalysis:
        """Session count, length, depth and bounce per device and platform; multi-device use."""
        return self.behavior.analyze_sessions(time_period, feature, now=now, timezone=timezone)

    def analyze_engagement(
        self,
        time_period: str | TimeWindow = "30d",
        feature: BankingFeature | str | None = None,
        *,
        now: datetime | None = None,
        timezone: str = "UTC",
    ) -> Engagement:
        """DAU/WAU/MAU, stickiness, power users, co-usage, heat map and first-use order."""
        return self.behavior.analyze_engagement(time_period, feature, now=now, timezone=timezone)

    def stickiness(self, query: StickinessQuery) -> Stickiness:
        """Users by how many intervals of the range they were active in (PostHog's)."""
        return self.behavior.stickiness(query)

    def lifecycle(self, query: LifecycleQuery) -> Lifecycle:
        """New, returning, resurrecting and dormant users per interval (PostHog's)."""
        return self.behavior.lifecycle(query)

    def funnel(self, query: FunnelQuery) -> FunnelResult:
        """Users through a funnel's steps, conversion and time to convert (PostHog's)."""
        return self.behavior.funnel(query)

    def retention(self, query: RetentionQuery) -> RetentionResult:
        """The retention grid of cohorts by start event and return event (PostHog's)."""
        return self.behavior.retention(query)

    def paths(self, query: PathsQuery) -> PathsResult:
        """The top transitions between features or actions within sessions (PostHog's)."""
        return self.behavior.paths(query)

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

    def quarantine(
        self,
        limit: int = 100,
        *,
        reason: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        quarantine_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """The most recent quarantined events with their reasons and raw payloads.

        Filtered, if asked, to reasons containing ``reason`` (case-insensitive), to
        those received in ``[since, until)``, or to one ``quarantine_id``.
        """
        newest_first = select_all(QUARANTINE)
        params: list[Any] = []
        received = column("received_at")
        for condition, value in (
            (
                exp.StrPosition(
                    this=exp.Lower(this=column("reason")),
                    substr=exp.Lower(this=exp.Placeholder()),
                )
                > 0,
                reason,
            ),
            (received >= exp.Placeholder(), since),
            (received < exp.Placeholder(), until),
            (exp.cast(column("quarantine_id"), "text").eq(exp.Placeholder()), quarantine_id),
        ):
            if value is not None:
                newest_first = newest_first.where(condition)
                params.append(value)
        newest_first = newest_first.order_by(
            exp.Ordered(this=received, desc=True), column("position")
        ).limit(exp.Placeholder())
        rows: list[dict[str, Any]] = self.engine.query(
            newest_first.sql(self.engine.dialect), [*params, limit]
        ).to_pylist()
        return rows

    # -- lifecycle ---------------------------------------------------------------------------

    def on_commit(self, listener: CommitListener) -> Callable[[], None]:
        """Call ``listener(tables)`` after each commit of events, whatever wrote them (records,
        batches, files): see :meth:`IngestPipeline.on_commit`. Returns the way to remove it."""
        return self._recorder.on_commit(listener)

    def close(self) -> None:
        """Finish queued writes, tell the commit listeners, stop the query workers and close
        the store."""
        self._recorder.close()
        self.queries.close()
        self.engine.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

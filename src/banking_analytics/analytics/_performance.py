"""Bank-integration performance: connection health, latency, errors and feature usage.

Every figure comes from the metric catalogue through :class:`MetricService`;
this module only chooses the queries and fills the result shapes defined here
(which read like the spec's dictionaries: ``perf["success_rate"]["average"]``,
``usage["feature_usage"]``). A figure resting on too few events is ``None``
with status ``insufficient_data``. Statements that can run side by side go
through the store's :class:`QueryExecutor`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from banking_analytics.analytics._institutions import InstitutionCatalogue
from banking_analytics.analytics._shape import Period, Shape
from banking_analytics.events import SCHEMAS
from banking_analytics.metrics import (
    LATENCY_PERCENTILES,
    Bucket,
    DataVersions,
    MetricQuery,
    MetricService,
    MetricValue,
    QueryExecutor,
    QueryResult,
    ResultRow,
    TimeWindow,
    parse_time_period,
)
from banking_analytics.vocabulary import (
    BankingFeature,
    ErrorCategory,
    EventType,
    Outcome,
    SyncOutcome,
)

__all__ = [
    "AggregatorCut",
    "CategoryErrors",
    "ConnectionCut",
    "ConnectionPerformance",
    "ErrorRates",
    "ExcludedAttempts",
    "FeatureCut",
    "FeatureFigures",
    "FeatureUsage",
    "InstitutionCut",
    "Latency",
    "LatencyFigures",
    "LinkConversion",
    "PerformanceAnalytics",
    "Series",
    "SeriesPoint",
    "SourceErrors",
    "SuccessBreakdown",
    "SuccessRate",
    "series_bucket",
]

_SUCCESS = "connection_success_rate"
_LATENCY = ("mean", *(f"p{p}" for p in LATENCY_PERCENTILES))
_EXCLUDED = {
    "user_errors": "connection_user_errors",
    "abandoned": "connection_abandoned",
    "pending": "connection_pending",
    "client_errors": "connection_client_errors",
    "unattributed_failures": "connection_unattributed_failures",
}
_BREAKDOWN_METRICS = (
    _SUCCESS,
    "connection_attempts",
    "connection_health_attempts",
    "connection_latency_p95_ms",
    "connection_institution_error_share",
    "connection_aggregator_error_share",
)
_SUCCESS_DEFINITION = (
    "successes / (successes + institution failures + aggregator failures); user errors, "
    "abandons, pending attempts and our own client errors are excluded and counted apart"
)


# -- result shapes -----------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class SuccessBreakdown(Shape):
    """The bank-health denominator split by outcome; the three shares sum to 1."""

    success: float | None
    error_institution: float | None
    error_aggregator: float | None


@dataclass(slots=True, eq=False)
class ExcludedAttempts(Shape):
    """Attempts left out of the success rate, counted apart."""

    user_errors: int | None
    abandoned: int | None
    pending: int | None
    client_errors: int | None
    unattributed_failures: int | None


@dataclass(slots=True, eq=False)
class SuccessRate(Shape):
    """The bank-health success rate, its breakdown and what it leaves out."""

    average: float | None
    """Plaid bank-health success rate"""
    status: str
    sample_size: int | None
    breakdown: SuccessBreakdown
    excluded: ExcludedAttempts
    previous_period: float | None
    change: float | None
    definition: str


@dataclass(slots=True, eq=False)
class LatencyFigures(Shape):
    """Credential-submit-to-outcome time: mean and nearest-rank percentiles."""

    average_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    sample_size: int | None
    status: str


@dataclass(slots=True, eq=False)
class Latency(LatencyFigures):
    """Over completed attempts, and ``success_only`` over successful ones."""

    success_only: LatencyFigures


@dataclass(slots=True, eq=False)
class LinkConversion(Shape):
    """Successful link sessions ÷ distinct link sessions opened."""

    rate: float | None
    status: str
    sessions: int | None
    abandonment_rate: float | None


@dataclass(slots=True, eq=False)
class ConnectionCut(Shape):
    """The connection figures of one value of a dimension (the subclasses name it)."""

    success_rate: float | None
    status: str
    attempts: int | None
    sample_size: int | None
    error_institution: float | None
    error_aggregator: float | None
    latency_p95_ms: float | None


@dataclass(slots=True, eq=False)
class AggregatorCut(ConnectionCut):
    """The connection figures of one aggregator."""

    aggregator: str | None


@dataclass(slots=True, eq=False)
class InstitutionCut(ConnectionCut):
    """The connection figures of one institution (its id, and its name from the
    institution catalogue: None if it has none)."""

    institution: str | None
    institution_name: str | None


@dataclass(slots=True, eq=False)
class FeatureCut(ConnectionCut):
    """The connection figures of one banking feature."""

    feature: str | None


_CUTS: dict[str, type[AggregatorCut | InstitutionCut | FeatureCut]] = {
    "aggregator": AggregatorCut,
    "institution": InstitutionCut,
    "feature": FeatureCut,
}


@dataclass(slots=True, eq=False)
class SeriesPoint(Shape):
    """One bucket of the connection time series."""

    start: str | None
    """The bucket's start, in the query's timezone"""
    connection_success_rate: float | None
    connection_attempts: int | None
    connection_latency_p95_ms: float | None


@dataclass(slots=True, eq=False)
class Series(Shape):
    """Connection figures per bucket: hours up to two days, days up to 120, then weeks."""

    bucket: str
    points: list[SeriesPoint]


@dataclass(slots=True, eq=False)
class ConnectionPerformance(Shape):
    """Connection health over a period: success rate, latency, link conversion, the same
    cut by aggregator, institution and feature, and a time series."""

    time_period: Period
    attempts: int | None
    success_rate: SuccessRate
    latency: Latency
    link_conversion: LinkConversion
    by_aggregator: list[AggregatorCut]
    by_institution: list[InstitutionCut]
    by_feature: list[FeatureCut]
    time_series: Series


@dataclass(slots=True, eq=False)
class FeatureFigures(Shape):
    """One feature's usage; ``success_rate`` = successful ÷ interactions reporting success."""

    usage_count: int | None
    unique_users: int | None
    sessions: int | None
    success_rate: float | None
    success_rate_status: str
    mean_duration_s: float | None
    previous_usage_count: int | None


@dataclass(slots=True, eq=False)
class FeatureUsage(Shape):
    """Per banking feature: interactions, users, sessions, success rate, mean duration."""

    time_period: Period
    feature_usage: dict[str, FeatureFigures]


@dataclass(slots=True, eq=False)
class CategoryErrors(Shape):
    """Failures in one error category; ``rate`` = its failures ÷ all attempts (or runs)."""

    count: int
    rate: float | None
    responsible_party: str


@dataclass(slots=True, eq=False)
class SourceErrors(Shape):
    """The error mix of connection attempts or of sync runs."""

    total: int
    failures: int
    error_rate: float | None
    by_category: dict[str, CategoryErrors]
    uncategorised: int


@dataclass(slots=True, eq=False)
class ErrorRates(Shape):
    """Failures of connection attempts and sync runs, per error category."""

    time_period: Period
    connection: SourceErrors
    sync: SourceErrors


# -- the analyses ------------------------------------------------------------------------


def series_bucket(window: TimeWindow) -> Bucket:
    """The bucket a time series over ``window`` is cut by: hours up to two days, then days."""
    if window.length <= timedelta(days=2):
        return Bucket.HOUR
    if window.length <= timedelta(days=120):
        return Bucket.DAY
    return Bucket.WEEK


def _latency_metric(stat: str, success_only: bool) -> str:
    return f"connection_latency_{stat}_ms{'_success' if success_only else ''}"


def _latency_figures(row: ResultRow, success_only: bool) -> LatencyFigures:
    mean = row.values[_latency_metric("mean", success_only)]
    return LatencyFigures(
        average_ms=row.number(_latency_metric("mean", success_only)),
        p50_ms=row.number(_latency_metric("p50", success_only)),
        p95_ms=row.number(_latency_metric("p95", success_only)),
        p99_ms=row.number(_latency_metric("p99", success_only)),
        sample_size=mean.sample_size,
        status=mean.status.value,
    )


def _whole(row: ResultRow, metric: str) -> int | None:
    """A count that may be missing (None stays None)."""
    value = row.number(metric)
    return None if value is None else int(value)


def _change(now: MetricValue, before: MetricValue | None) -> float | None:
    if before is None or now.value is None or before.value is None:
        return None
    if isinstance(now.value, datetime) or isinstance(before.value, datetime):
        raise TypeError("a change is only defined between numbers")
    return float(now.value) - float(before.value)


def _number(value: MetricValue | None) -> float | None:
    if value is None or value.value is None:
        return None
    if isinstance(value.value, datetime):
        raise TypeError("a time, not a number")
    return float(value.value)


class PerformanceAnalytics:
    """The performance questions of the spec, answered from the metric layer.

    Statements that can run at once go through ``queries`` (by default, one after
    another in the calling thread).
    """

    def __init__(self, metrics: MetricService, queries: QueryExecutor | None = None) -> None:
        self._metrics = metrics
        self._queries = queries or QueryExecutor(0)
        self.institutions = InstitutionCatalogue(metrics)

    def analyze_connection_performance(
        self,
        time_period: str | TimeWindow = "24h",
        *,
        now: datetime | None = None,
        timezone: str = "UTC",
        versions: DataVersions | None = None,
    ) -> ConnectionPerformance:
        """Connection health over a period: success rate with its breakdown, latency,
        link conversion, the same cut by aggregator, institution and feature, and a
        time series (hourly up to two days, daily beyond).

        ``success_rate.average`` = successes ÷ (successes + institution failures +
        aggregator failures); ``breakdown`` splits that denominator into success,
        error_institution and error_aggregator (they sum to 1). ``latency`` is the
        mean and nearest-rank p50/p95/p99 of credential-submit-to-outcome time over
        completed attempts, and ``latency.success_only`` over successful ones.
        """
        window = parse_time_period(time_period, now)
        if versions is None:
            versions = self._metrics.versions([SCHEMAS[EventType.CONNECTION_ATTEMPT].table])
        # The cuts and the series are separate statements; they run while the headline
        # figures compute (engines release the GIL, and a small table is one thread's work).
        answers: list[Any] = self._queries.gather(
            [
                partial(self._headline, window, timezone, versions),
                *(
                    partial(self._breakdown, window, dimension, timezone, versions)
                    for dimension in _CUTS
                ),
                partial(self._series, window, timezone, versions),
            ]
        )
        (attempts, success_rate, latency, conversion), by_aggregator, by_institution = answers[:3]
        by_feature, series = answers[3:]
        return ConnectionPerformance(
            time_period=Period.of(window),
            attempts=attempts,
            success_rate=success_rate,
            latency=latency,
            link_conversion=conversion,
            by_aggregator=by_aggregator,
            by_institution=by_institution,
            by_feature=by_feature,
            time_series=series,
        )

    def _headline(
        self, window: TimeWindow, timezone: str, versions: DataVersions
    ) -> tuple[int | None, SuccessRate, Latency, LinkConversion]:
        latency_metrics = [
            _latency_metric(stat, success_only)
            for success_only in (False, True)
            for stat in _LATENCY
        ]
        overall = self._metrics.run(
            MetricQuery.build(
                [
                    _SUCCESS,
                    "connection_institution_error_share",
                    "connection_aggregator_error_share",
                    "connection_attempts",
                    "connection_health_attempts",
                    *_EXCLUDED.values(),
                    *latency_metrics,
                    "link_conversion_rate",
                    "link_abandonment_rate",
                    "link_sessions",
                ],
                window,
                timezone=timezone,
            ),
            compare=True,
            versions=versions,
        ).single()
        success = overall.values[_SUCCESS]
        before = overall.previous[_SUCCESS] if overall.previous else None
        conversion = overall.values["link_conversion_rate"]
        success_rate = SuccessRate(
            average=_number(success),
            status=success.status.value,
            sample_size=success.sample_size,
            breakdown=SuccessBreakdown(
                success=_number(success),
                error_institution=overall.number("connection_institution_error_share"),
                error_aggregator=overall.number("connection_aggregator_error_share"),
            ),
            excluded=ExcludedAttempts(
                **{key: _whole(overall, name) for key, name in _EXCLUDED.items()}
            ),
            previous_period=_number(before),
            change=_change(success, before),
            definition=_SUCCESS_DEFINITION,
        )
        overall_latency = _latency_figures(overall, success_only=False)
        latency = Latency(
            average_ms=overall_latency.average_ms,
            p50_ms=overall_latency.p50_ms,
            p95_ms=overall_latency.p95_ms,
            p99_ms=overall_latency.p99_ms,
            sample_size=overall_latency.sample_size,
            status=overall_latency.status,
            success_only=_latency_figures(overall, success_only=True),
        )
        link_conversion = LinkConversion(
            rate=_number(conversion),
            status=conversion.status.value,
            sessions=_whole(overall, "link_sessions"),
            abandonment_rate=overall.number("link_abandonment_rate"),
        )
        return _whole(overall, "connection_attempts"), success_rate, latency, link_conversion

    def _breakdown(
        self,
        window: TimeWindow,
        dimension: str,
        timezone: str,
        versions: DataVersions,
    ) -> list[ConnectionCut]:
        result = self._metrics.run(
            MetricQuery.build(
                _BREAKDOWN_METRICS, window, dimensions=[dimension], timezone=timezone
            ),
            versions=versions,
        )
        rows = sorted(result.rows, key=lambda r: -r.count("connection_attempts"))
        cut = _CUTS[dimension]
        names = self.institutions.names(versions) if cut is InstitutionCut else None
        return [
            cut(
                **{dimension: row.dimensions[dimension]},
                **(
                    {"institution_name": names.get(str(row.dimensions[dimension]))}
                    if names is not None
                    else {}
                ),
                success_rate=row.number(_SUCCESS),
                status=row.values[_SUCCESS].status.value,
                attempts=_whole(row, "connection_attempts"),
                sample_size=_whole(row, "connection_health_attempts"),
                error_institution=row.number("connection_institution_error_share"),
                error_aggregator=row.number("connection_aggregator_error_share"),
                latency_p95_ms=row.number("connection_latency_p95_ms"),
            )
            for row in rows
        ]

    def _series(self, window: TimeWindow, timezone: str, versions: DataVersions) -> Series:
        bucket = series_bucket(window)
        result = self._metrics.run(
            MetricQuery.build(
                [_SUCCESS, "connection_attempts", "connection_latency_p95_ms"],
                window,
                bucket=bucket,
                timezone=timezone,
            ),
            versions=versions,
        )
        return Series(bucket=bucket.value, points=_points(result))

    def analyze_feature_usage(
        self,
        time_period: str | TimeWindow = "7d",
        feature: BankingFeature | str | None = None,
        *,
        now: datetime | None = None,
        timezone: str = "UTC",
        versions: DataVersions | None = None,
    ) -> FeatureUsage:
        """Per feature: interactions (``usage_count``), distinct users and sessions,
        ``success_rate`` (successful ÷ interactions that report success) and mean
        duration; every feature is listed, unused ones with zeros.
        """
        window = parse_time_period(time_period, now)
        chosen = [BankingFeature(feature)] if feature is not None else list(BankingFeature)
        result = self._metrics.run(
            MetricQuery.build(
                [
                    "feature_interactions",
                    "unique_users",
                    "sessions",
                    "feature_success_rate",
                    "feature_mean_duration_s",
                ],
                window,
                dimensions=["feature"],
                filters={"feature": [f.value for f in chosen]},
                timezone=timezone,
            ),
            compare=True,
            versions=versions,
        )
        by_feature = {row.dimensions["feature"]: row for row in result.rows}
        return FeatureUsage(
            time_period=Period.of(window),
            feature_usage={f.value: _usage(by_feature.get(f.value)) for f in chosen},
        )

    def analyze_error_rates(
        self,
        time_period: str | TimeWindow = "24h",
        *,
        now: datetime | None = None,
        timezone: str = "UTC",
        versions: DataVersions | None = None,
    ) -> ErrorRates:
        """Error mix of connection attempts and sync runs: per category, the count of
        failures and their rate = failures in the category ÷ all attempts (or runs),
        with the party that must act.
        """
        window = parse_time_period(time_period, now)
        # Sync runs, the larger count, first (see ``InstitutionHealth._step_counts``).
        sync = self._errors(window, "sync", timezone, versions)
        return ErrorRates(
            time_period=Period.of(window),
            connection=self._errors(window, "connection", timezone, versions),
            sync=sync,
        )

    def _errors(
        self, window: TimeWindow, source: str, timezone: str, versions: DataVersions | None
    ) -> SourceErrors:
        connection = source == "connection"
        total_metric = "connection_attempts" if connection else "sync_runs"
        failed_outcome = Outcome.FAILURE if connection else SyncOutcome.FAILURE
        failures = f"{source}_failures"
        # Failures per category are counted among failures alone (the engine filters them
        # while scanning, rather than grouping every event); the total is its own count.
        by_category = self._metrics.run(
            MetricQuery.build(
                [failures],
                window,
                dimensions=["error_category"],
                filters={"outcome": [failed_outcome.value]},
                timezone=timezone,
            ),
            versions=versions,
        )
        total = self._metrics.run(
            MetricQuery.build([total_metric], window, timezone=timezone), versions=versions
        )
        counts = {row.dimensions["error_category"]: row.count(failures) for row in by_category.rows}
        attempts = total.single().count(total_metric)
        failed = sum(counts.values())
        return SourceErrors(
            total=attempts,
            failures=failed,
            error_rate=_share(failed, attempts),
            by_category={
                category.value: CategoryErrors(
                    count=counts.get(category.value, 0),
                    rate=_share(counts.get(category.value, 0), attempts),
                    responsible_party=category.responsible_party.value,
                )
                for category in ErrorCategory
            },
            uncategorised=counts.get(None, 0),
        )


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _usage(row: ResultRow | None) -> FeatureFigures:
    if row is None:
        return FeatureFigures(
            usage_count=0,
            unique_users=0,
            sessions=0,
            success_rate=None,
            success_rate_status="insufficient_data",
            mean_duration_s=None,
            previous_usage_count=0,
        )
    previous = row.previous or {}
    before = previous.get("feature_interactions")
    return FeatureFigures(
        usage_count=_whole(row, "feature_interactions"),
        unique_users=_whole(row, "unique_users"),
        sessions=_whole(row, "sessions"),
        success_rate=row.number("feature_success_rate"),
        success_rate_status=row.values["feature_success_rate"].status.value,
        mean_duration_s=row.number("feature_mean_duration_s"),
        previous_usage_count=int(_number(before) or 0),
    )


def _points(result: QueryResult) -> list[SeriesPoint]:
    """A time series: each bucket's start (in the query's timezone) and its figures."""
    zone = ZoneInfo(result.query.timezone)
    return [
        SeriesPoint(
            start=row.bucket.astimezone(zone).isoformat() if row.bucket else None,
            connection_success_rate=row.number(_SUCCESS),
            connection_attempts=_whole(row, "connection_attempts"),
            connection_latency_p95_ms=row.number("connection_latency_p95_ms"),
        )
        for row in result.rows
    ]

"""Bank-integration performance: connection health, latency, errors and feature usage.

Every figure comes from the metric catalogue through :class:`MetricService`;
this module only chooses the queries and shapes the answers (the dictionaries
of the spec: ``perf["success_rate"]["average"]``, ``usage["feature_usage"]``).
A figure resting on too few events is ``None`` with status
``insufficient_data``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from banking_analytics.events import SCHEMAS
from banking_analytics.metrics import (
    LATENCY_PERCENTILES,
    Bucket,
    DataVersions,
    MetricQuery,
    MetricService,
    MetricValue,
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

__all__ = ["PerformanceAnalytics", "series_bucket"]

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


def series_bucket(window: TimeWindow) -> Bucket:
    """The bucket a time series over ``window`` is cut by: hours up to two days, then days."""
    if window.length <= timedelta(days=2):
        return Bucket.HOUR
    if window.length <= timedelta(days=120):
        return Bucket.DAY
    return Bucket.WEEK


def _latency_metric(stat: str, success_only: bool) -> str:
    return f"connection_latency_{stat}_ms{'_success' if success_only else ''}"


def _latency(row: ResultRow, success_only: bool) -> dict[str, Any]:
    values = {stat: row.values[_latency_metric(stat, success_only)] for stat in _LATENCY}
    mean = values["mean"]
    return {
        "average_ms": mean.value,
        **{f"{stat}_ms": values[stat].value for stat in _LATENCY[1:]},
        "sample_size": mean.sample_size,
        "status": mean.status.value,
    }


def _change(now: MetricValue, before: MetricValue | None) -> float | None:
    if before is None or now.value is None or before.value is None:
        return None
    if isinstance(now.value, datetime) or isinstance(before.value, datetime):
        raise TypeError("a change is only defined between numbers")
    return float(now.value) - float(before.value)


class PerformanceAnalytics:
    """The performance questions of the spec, answered from the metric layer."""

    def __init__(self, metrics: MetricService) -> None:
        self._metrics = metrics

    def analyze_connection_performance(
        self,
        time_period: str | TimeWindow = "24h",
        *,
        now: datetime | None = None,
        timezone: str = "UTC",
        versions: DataVersions | None = None,
    ) -> dict[str, Any]:
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
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="performance") as pool:
            cuts = {
                dimension: pool.submit(self._breakdown, window, dimension, timezone, versions)
                for dimension in ("aggregator", "institution", "feature")
            }
            series = pool.submit(self._series, window, timezone, versions)
            headline = self._headline(window, timezone, versions)
            return {
                **headline,
                **{f"by_{dimension}": cut.result() for dimension, cut in cuts.items()},
                "time_series": series.result(),
            }

    def _headline(
        self, window: TimeWindow, timezone: str, versions: DataVersions
    ) -> dict[str, Any]:
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
        return {
            "time_period": window.as_dict(),
            "attempts": overall["connection_attempts"],
            "success_rate": {
                "average": success.value,
                "status": success.status.value,
                "sample_size": success.sample_size,
                "breakdown": {
                    "success": success.value,
                    "error_institution": overall["connection_institution_error_share"],
                    "error_aggregator": overall["connection_aggregator_error_share"],
                },
                "excluded": {key: overall[name] for key, name in _EXCLUDED.items()},
                "previous_period": before.value if before else None,
                "change": _change(success, before),
                "definition": _SUCCESS_DEFINITION,
            },
            "latency": {
                **_latency(overall, success_only=False),
                "success_only": _latency(overall, success_only=True),
            },
            "link_conversion": {
                "rate": conversion.value,
                "status": conversion.status.value,
                "sessions": overall["link_sessions"],
                "abandonment_rate": overall["link_abandonment_rate"],
            },
        }

    def _breakdown(
        self,
        window: TimeWindow,
        dimension: str,
        timezone: str,
        versions: DataVersions,
    ) -> list[dict[str, Any]]:
        result = self._metrics.run(
            MetricQuery.build(
                _BREAKDOWN_METRICS, window, dimensions=[dimension], timezone=timezone
            ),
            versions=versions,
        )
        rows = sorted(result.rows, key=lambda r: -r.count("connection_attempts"))
        return [
            {
                dimension: row.dimensions[dimension],
                "success_rate": row[_SUCCESS],
                "status": row.values[_SUCCESS].status.value,
                "attempts": row["connection_attempts"],
                "sample_size": row["connection_health_attempts"],
                "error_institution": row["connection_institution_error_share"],
                "error_aggregator": row["connection_aggregator_error_share"],
                "latency_p95_ms": row["connection_latency_p95_ms"],
            }
            for row in rows
        ]

    def _series(self, window: TimeWindow, timezone: str, versions: DataVersions) -> dict[str, Any]:
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
        return {"bucket": bucket.value, "points": _points(result)}

    def analyze_feature_usage(
        self,
        time_period: str | TimeWindow = "7d",
        feature: BankingFeature | str | None = None,
        *,
        now: datetime | None = None,
        timezone: str = "UTC",
        versions: DataVersions | None = None,
    ) -> dict[str, Any]:
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
        return {
            "time_period": window.as_dict(),
            "feature_usage": {f.value: _usage(by_feature.get(f.value)) for f in chosen},
        }

    def analyze_error_rates(
        self,
        time_period: str | TimeWindow = "24h",
        *,
        now: datetime | None = None,
        timezone: str = "UTC",
        versions: DataVersions | None = None,
    ) -> dict[str, Any]:
        """Error mix of connection attempts and sync runs: per category, the count of
        failures and their rate = failures in the category ÷ all attempts (or runs),
        with the party that must act.
        """
        window = parse_time_period(time_period, now)
        # Sync runs, the larger count, first (see ``InstitutionHealth._step_counts``).
        sync = self._errors(window, "sync", timezone, versions)
        return {
            "time_period": window.as_dict(),
            "connection": self._errors(window, "connection", timezone, versions),
            "sync": sync,
        }

    def _errors(
        self, window: TimeWindow, source: str, timezone: str, versions: DataVersions | None
    ) -> dict[str, Any]:
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
        return {
            "total": attempts,
            "failures": failed,
            "error_rate": _share(failed, attempts),
            "by_category": {
                category.value: {
                    "count": counts.get(category.value, 0),
                    "rate": _share(counts.get(category.value, 0), attempts),
                    "responsible_party": category.responsible_party.value,
                }
                for category in ErrorCategory
            },
            "uncategorised": counts.get(None, 0),
        }


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _usage(row: ResultRow | None) -> dict[str, Any]:
    if row is None:
        return {
            "usage_count": 0,
            "unique_users": 0,
            "sessions": 0,
            "success_rate": None,
            "success_rate_status": "insufficient_data",
            "mean_duration_s": None,
            "previous_usage_count": 0,
        }
    previous = row.previous or {}
    before = previous.get("feature_interactions")
    return {
        "usage_count": row["feature_interactions"],
        "unique_users": row["unique_users"],
        "sessions": row["sessions"],
        "success_rate": row["feature_success_rate"],
        "success_rate_status": row.values["feature_success_rate"].status.value,
        "mean_duration_s": row["feature_mean_duration_s"],
        "previous_usage_count": before.value if before else 0,
    }


def _points(result: QueryResult) -> list[dict[str, Any]]:
    """A time series: each bucket's start (in the query's timezone) and its figures."""
    zone = ZoneInfo(result.query.timezone)
    return [
        {
            "start": row.bucket.astimezone(zone).isoformat() if row.bucket else None,
            **{m.name: row[m.name] for m in result.metrics},
        }
        for row in result.rows
    ]

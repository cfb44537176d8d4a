"""``analytics.performance``: the bank-integration performance domain behind one object.

The facade builds it on first use; it holds the domain's analyses (connection
performance, feature usage and error rates; institution health; sync
freshness) over the store's metric service and query executor, and composes
them into the performance dashboard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from banking_analytics.analytics._freshness import SyncFreshness
from banking_analytics.analytics._health import HealthThresholds, InstitutionHealth
from banking_analytics.analytics._performance import PerformanceAnalytics
from banking_analytics.metrics import (
    Bucket,
    MetricQuery,
    MetricService,
    QueryError,
    QueryExecutor,
    TimeWindow,
    parse_time_period,
)

__all__ = ["PerformanceNamespace"]


class PerformanceNamespace(PerformanceAnalytics):
    """Connection performance, feature usage and error rates (inherited), institution
    health, sync freshness, and the dashboard that shows them together."""

    def __init__(
        self,
        metrics: MetricService,
        queries: QueryExecutor,
        health_thresholds: HealthThresholds | None = None,
    ) -> None:
        super().__init__(metrics, queries)
        self.health = InstitutionHealth(metrics, health_thresholds)
        self.freshness = SyncFreshness(metrics)

    def institution_health(
        self,
        lookback: str | TimeWindow = "7d",
        *,
        now: datetime | None = None,
        include_history: bool = False,
    ) -> dict[str, Any]:
        """HEALTHY / DEGRADED / DOWN / UNKNOWN per institution, aggregator and product."""
        return self.health.institution_health(lookback, now=now, include_history=include_history)

    def sync_freshness(
        self, lookback: str | TimeWindow = "7d", *, now: datetime | None = None
    ) -> dict[str, Any]:
        """NORMAL / DELAYED / STOPPED refresh state of every connection synced recently."""
        return self.freshness.sync_freshness(lookback, now=now)

    def dashboard(
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
        The parts run concurrently on the store's query executor (the engines run
        queries in parallel and release the GIL while they do).
        """
        window = parse_time_period(time_period, now)
        end = window.end
        # One reading of the data versions serves every part, so they describe one state.
        versions = self._metrics.versions()
        hourly = MetricQuery.build(
            ["connection_success_rate", "connection_attempts", "connection_latency_p95_ms"],
            window,
            bucket=Bucket.HOUR,
            timezone=timezone,
        )
        panels: dict[str, Callable[[], Any]] = {
            "connection": lambda: self.analyze_connection_performance(
                window, timezone=timezone, versions=versions
            ),
            "hourly": lambda: self._metrics.run(hourly, versions=versions).as_dict(),
            "errors": lambda: self.analyze_error_rates(
                window, timezone=timezone, versions=versions
            ),
            "institution_health": lambda: self.health.institution_health(
                health_lookback, now=end, versions=versions
            ),
            "sync_freshness": lambda: self.freshness.sync_freshness(
                health_lookback, now=end, versions=versions
            ),
        }
        chosen = list(panels) if parts is None else list(dict.fromkeys(parts))
        unknown = [name for name in chosen if name not in panels]
        if unknown or not chosen:
            raise QueryError(f"parts: {unknown or 'none'}; choose from {', '.join(panels)}")
        answers = self._queries.gather([panels[name] for name in chosen])
        return dict(zip(chosen, answers, strict=True))

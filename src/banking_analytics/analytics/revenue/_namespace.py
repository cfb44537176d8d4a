"""``analytics.revenue``: subscription revenue behind one object.

The facade builds it on first use; it holds the ledger (MRR and its movements),
the revenue metrics and cohorts computed from it, and the dashboard of them.
"""

from __future__ import annotations

from datetime import datetime

from banking_analytics.analytics.revenue._impact import RevenueImpactAnalysis
from banking_analytics.analytics.revenue._mrr import Movement, MrrSeries, RevenueLedger
from banking_analytics.analytics.revenue._policy import RevenuePolicy
from banking_analytics.analytics.revenue._recommend import RevenueOptimization
from banking_analytics.metrics import (
    Bucket,
    DataVersions,
    MetricService,
    QueryError,
    QueryExecutor,
    TimeWindow,
    parse_time_period,
)

__all__ = ["RevenueNamespace"]

#: The buckets a revenue series can be cut by.
REVENUE_BUCKETS = (Bucket.DAY, Bucket.WEEK, Bucket.MONTH)


class RevenueNamespace:
    """MRR and its movements, revenue metrics, cohorts and the revenue dashboard."""

    def __init__(
        self,
        metrics: MetricService,
        queries: QueryExecutor,
        policy: RevenuePolicy | None = None,
    ) -> None:
        self._metrics = metrics
        self._queries = queries
        self.policy = policy or RevenuePolicy()
        self.ledger = RevenueLedger(metrics)
        #: Revenue impact of the banking features: adoption, attribution, the upgrade model.
        self.impact = RevenueImpactAnalysis(metrics)
        #: Recommendations and ROI projections built on the impact.
        self.optimization = RevenueOptimization(metrics, self.impact)

    def mrr(
        self,
        time_period: str | TimeWindow = "365d",
        *,
        bucket: Bucket | str = Bucket.MONTH,
        timezone: str = "UTC",
        now: datetime | None = None,
        policy: RevenuePolicy | None = None,
        versions: DataVersions | None = None,
    ) -> MrrSeries:
        """MRR at the start and end of every bucket of the period, with its movements
        (new, expansion, contraction, churn, reactivation) and customer counts."""
        window = parse_time_period(time_period, now)
        return self.ledger.series(
            window, _revenue_bucket(bucket), timezone, policy or self.policy, versions
        )

    def movements(
        self,
        time_period: str | TimeWindow = "30d",
        *,
        now: datetime | None = None,
        policy: RevenuePolicy | None = None,
        versions: DataVersions | None = None,
    ) -> list[Movement]:
        """Every change of a customer's MRR in the period, classified."""
        window = parse_time_period(time_period, now)
        return self.ledger.movements(window, policy or self.policy, versions)


def _revenue_bucket(bucket: Bucket | str) -> Bucket:
    try:
        chosen = Bucket(bucket)
    except ValueError:
        chosen = None
    if chosen not in REVENUE_BUCKETS:
        choices = ", ".join(b.value for b in REVENUE_BUCKETS)
        raise QueryError(f"bucket {bucket!r}: a revenue series is cut by {choices}")
    return chosen

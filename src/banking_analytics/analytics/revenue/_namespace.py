"""``analytics.revenue``: subscription revenue behind one object.

The facade builds it on first use; it holds the ledger (MRR and its movements),
the revenue metrics and cohorts computed from it, and the dashboard of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from banking_analytics.analytics.revenue._cohorts import CohortTable, cohort_table
from banking_analytics.analytics.revenue._impact import RevenueImpactAnalysis
from banking_analytics.analytics.revenue._metrics import RevenueMetrics, RevenueMetricsResult
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
        self.figures = RevenueMetrics(metrics, self.ledger)
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

    def metrics(
        self,
        names: Iterable[str],
        time_period: str | TimeWindow = "90d",
        *,
        bucket: Bucket | str = Bucket.MONTH,
        timezone: str = "UTC",
        by_feature: bool = False,
        trial_days: int | None = None,
        now: datetime | None = None,
        policy: RevenuePolicy | None = None,
        versions: DataVersions | None = None,
    ) -> RevenueMetricsResult:
        """Revenue metrics by name (ours or the spec's ``RevenueMetric`` values) per bucket,
        and per banking feature with ``by_feature`` where the metric allows it."""
        window = parse_time_period(time_period, now)
        return self.figures.query(
            names,
            window,
            _revenue_bucket(bucket),
            timezone,
            policy or self.policy,
            by_feature=by_feature,
            trial_days=trial_days,
            versions=versions,
        )

    def cohorts(
        self,
        time_period: str | TimeWindow = "365d",
        *,
        timezone: str = "UTC",
        now: datetime | None = None,
        policy: RevenuePolicy | None = None,
        versions: DataVersions | None = None,
    ) -> CohortTable:
        """Customer, net MRR and gross MRR retention of the cohorts by first-paid month."""
        window = parse_time_period(time_period, now)
        return cohort_table(self.ledger, window, timezone, policy or self.policy, versions)

    def dashboard(
        self,
        time_period: str | TimeWindow = "365d",
        *,
        timezone: str = "UTC",
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """What the revenue dashboard shows, from one reading of the data versions: the
        monthly MRR series with movements, the headline metrics per month, the metrics
        per feature, and the cohorts. The parts run concurrently."""
        window = parse_time_period(time_period, now)
        versions = self._metrics.versions()
        headline = [
            "mrr",
            "arr",
            "net_new_mrr",
            "paying_customers",
            "arpa",
            "arpu",
            "customer_churn_rate",
            "gross_mrr_churn_rate",
            "net_mrr_churn_rate",
            "nrr",
            "grr",
            "quick_ratio",
            "ltv",
            "trial_to_paid",
        ]
        per_feature = [
            "subscription_upgrades",
            "feature_adoption",
            "feature_revenue",
            "free_to_paid_conversion",
        ]
        parts = {
            "mrr": lambda: self.mrr(window, timezone=timezone, versions=versions),
            "metrics": lambda: self.metrics(headline, window, timezone=timezone, versions=versions),
            "features": lambda: self.metrics(
                per_feature, window, timezone=timezone, by_feature=True, versions=versions
            ),
            "cohorts": lambda: self.cohorts(window, timezone=timezone, versions=versions),
        }
        answers = self._queries.gather(list(parts.values()))
        return dict(zip(parts, answers, strict=True))


def _revenue_bucket(bucket: Bucket | str) -> Bucket:
    try:
        chosen = Bucket(bucket)
    except ValueError:
        chosen = None
    if chosen not in REVENUE_BUCKETS:
        choices = ", ".join(b.value for b in REVENUE_BUCKETS)
        raise QueryError(f"bucket {bucket!r}: a revenue series is cut by {choices}")
    return chosen

"""``analytics.revenue``: subscription revenue behind one object.

The facade builds it on first use; it holds the ledger (MRR and its movements),
the revenue metrics and cohorts computed from it, and the dashboard of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from banking_analytics.analytics._shape import Shape
from banking_analytics.analytics.revenue._cohorts import CohortTable, cohort_request, cohort_table
from banking_analytics.analytics.revenue._impact import RevenueImpactAnalysis
from banking_analytics.analytics.revenue._metrics import (
    MetricsPlan,
    RevenueMetrics,
    RevenueMetricsResult,
)
from banking_analytics.analytics.revenue._mrr import Movement, MrrSeries, RevenueLedger
from banking_analytics.analytics.revenue._policy import RevenuePolicy
from banking_analytics.analytics.revenue._recommend import RevenueOptimization
from banking_analytics.metrics import (
    Bucket,
    DataVersions,
    MetricQuery,
    MetricService,
    MetricValue,
    QueryError,
    QueryExecutor,
    ResultRow,
    Status,
    TimeWindow,
    check_timezone,
    parse_time_period,
)

__all__ = ["RevenueDashboard", "RevenueNamespace"]

#: The dashboard's headline metrics, per month.
DASHBOARD_METRICS = (
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
)
#: The dashboard's metrics per banking feature, per month.
DASHBOARD_FEATURE_METRICS = (
    "subscription_upgrades",
    "feature_adoption",
    "feature_revenue",
    "free_to_paid_conversion",
)


@dataclass(slots=True, eq=False)
class RevenueDashboard(Shape):
    """Everything the revenue dashboard shows, over one reading of the data."""

    mrr: MrrSeries
    metrics: RevenueMetricsResult
    features: RevenueMetricsResult
    cohorts: CohortTable


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
            window,
            _revenue_bucket(bucket),
            check_timezone(timezone),
            policy or self.policy,
            versions,
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
        plan = MetricsPlan.of(
            names,
            parse_time_period(time_period, now),
            _revenue_bucket(bucket),
            check_timezone(timezone),
            by_feature=by_feature,
            trial_days=trial_days,
        )
        return self.figures.query(plan, policy or self.policy, versions)

    def answer(self, query: MetricQuery) -> list[ResultRow]:
        """Revenue metrics asked through the metric layer (``POST /metrics/query``, alert
        rules): the provider of the catalogue's ledger metrics. Per calendar bucket, by
        feature when cut by it, in the reporting currency (a query may cut by currency or
        filter on it: it names that one)."""
        if query.bucket is None:
            choices = ", ".join(b.value for b in REVENUE_BUCKETS)
            raise QueryError(
                f"{', '.join(m.name for m in query.metrics)}: revenue metrics are per calendar "
                f"period; choose a bucket ({choices})"
            )
        currency = self.policy.reporting_currency
        filters = dict(query.filters)
        other = [c for c in filters.get("currency", (currency,)) if c != currency]
        if other:
            raise QueryError(f"filters: revenue is reported in {currency}, not {', '.join(other)}")
        by_feature = "feature" in query.dimensions
        result = self.figures.query(
            MetricsPlan.of(
                [m.name for m in query.metrics],
                query.window,
                _revenue_bucket(query.bucket),
                query.timezone,
                by_feature=by_feature,
            ),
            self.policy,
        )
        features = filters.get("feature")
        return [
            ResultRow(
                row.start,
                {"currency": currency, "feature": row.feature},
                {name: MetricValue(value, None, Status.OK) for name, value in row.figures.items()},
            )
            for row in result.rows
            if features is None or row.feature in features
        ]

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
        timezone = check_timezone(timezone)
        chosen = policy or self.policy
        [table] = self.ledger.run([cohort_request(window, timezone)], chosen, versions)
        return cohort_table(table, window, timezone, chosen)

    def dashboard(
        self,
        time_period: str | TimeWindow = "365d",
        *,
        timezone: str = "UTC",
        now: datetime | None = None,
        policy: RevenuePolicy | None = None,
    ) -> RevenueDashboard:
        """What the revenue dashboard shows, from one reading of the data versions: the
        monthly MRR series with movements, the headline metrics per month, the metrics
        per feature, and the cohorts. Every statement over the ledger runs as one (the
        ledger is computed once); the metric layer's own queries run beside it."""
        window = parse_time_period(time_period, now)
        timezone = check_timezone(timezone)
        versions = self._metrics.versions()
        chosen = policy or self.policy
        headline = MetricsPlan.of(DASHBOARD_METRICS, window, Bucket.MONTH, timezone)
        per_feature = MetricsPlan.of(
            DASHBOARD_FEATURE_METRICS, window, Bucket.MONTH, timezone, by_feature=True
        )
        # The same months: read from the headline's statement, not a second pass.
        per_feature = replace(per_feature, series=headline.series)
        cohorts = cohort_request(window, timezone)
        requests = list(dict.fromkeys([*headline.requests(), *per_feature.requests(), cohorts]))
        answers = dict(zip(requests, self.ledger.run(requests, chosen, versions), strict=True))
        parts: list[Callable[[], Any]] = [
            lambda: self.figures.compute(headline, answers, chosen, versions),
            lambda: self.figures.compute(per_feature, answers, chosen, versions),
        ]
        metrics, features = self._queries.gather(parts)
        return RevenueDashboard(
            mrr=headline.series.series(answers[headline.series.ledger], chosen),
            metrics=metrics,
            features=features,
            cohorts=cohort_table(answers[cohorts], window, timezone, chosen),
        )


def _revenue_bucket(bucket: Bucket | str) -> Bucket:
    try:
        chosen = Bucket(bucket)
    except ValueError:
        chosen = None
    if chosen not in REVENUE_BUCKETS:
        choices = ", ".join(b.value for b in REVENUE_BUCKETS)
        raise QueryError(f"bucket {bucket!r}: a revenue series is cut by {choices}")
    return chosen

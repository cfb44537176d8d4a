"""Revenue metrics by name, per period and (where it makes sense) per banking feature.

Every figure is computed from the ledger (:mod:`._mrr`) or a statement beside it
(:mod:`._queries`); ``docs/revenue.md`` gives each formula with its source.
Money is in integer minor units of the reporting currency (averages rounded half
up to a minor unit); rates are ratios; a figure whose denominator is 0 is None
("undefined"), never 0 or infinite.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pyarrow as pa

from banking_analytics.analytics._shape import Period, Shape
from banking_analytics.analytics.revenue._ledger import EVENTS_TABLE
from banking_analytics.analytics.revenue._mrr import (
    LedgerRequest,
    MrrPoint,
    MrrSeries,
    RevenueLedger,
    SeriesRequest,
)
from banking_analytics.analytics.revenue._policy import RevenuePolicy
from banking_analytics.analytics.revenue._queries import (
    ACTIVITY_TABLE,
    conversion_query,
    feature_revenue_query,
    trial_query,
)
from banking_analytics.metrics import (
    REVENUE_METRICS,
    SPEC_REVENUE_METRICS,
    Bucket,
    DataVersions,
    MetricQuery,
    MetricService,
    QueryError,
    Statement,
    TimeWindow,
    Unit,
    bucket_starts,
    to_records,
)
from banking_analytics.vocabulary import RevenueMetric

__all__ = [
    "REVENUE_METRICS",
    "SPEC_REVENUE_METRICS",
    "MetricsPlan",
    "RevenueMetrics",
    "RevenueMetricsResult",
    "RevenueRow",
]

Figure = int | float | None


@dataclass(slots=True, eq=False)
class RevenueRow(Shape):
    """The figures of one period (and feature, when cut by feature)."""

    start: datetime
    end: datetime
    feature: str | None
    figures: dict[str, Figure]


@dataclass(slots=True, eq=False)
class RevenueMetricsResult(Shape):
    """Revenue metrics per period; money in minor units of ``currency``."""

    period: Period
    bucket: str
    timezone: str
    currency: str
    metrics: list[str]
    by_feature: bool
    rows: list[RevenueRow]


def resolve(name: str) -> str:
    """A metric's name: ours, or the spec's ``RevenueMetric`` value it maps to."""
    if name in REVENUE_METRICS:
        return name
    try:
        return SPEC_REVENUE_METRICS[RevenueMetric(name)]
    except ValueError:
        known = ", ".join([*REVENUE_METRICS, *(m.value for m in RevenueMetric)])
        raise QueryError(f"unknown revenue metric {name!r}; choose from {known}") from None


def _ratio(numerator: float, denominator: float) -> float | None:
    """``numerator ÷ denominator`` as a float (engines may answer sums as decimals)."""
    return float(numerator) / float(denominator) if denominator else None


def _money(numerator: int, denominator: int) -> int | None:
    """``numerator ÷ denominator`` in whole minor units, rounded half up (non-negative)."""
    return (2 * numerator + denominator) // (2 * denominator) if denominator > 0 else None


def customer_churn_rate(point: MrrPoint) -> float | None:
    return _ratio(point.churned_customers, point.customers_start)


# Figures of one period read from its MRR point.
_FROM_POINT: dict[str, Callable[[MrrPoint], Figure]] = {
    "mrr": lambda p: p.mrr_end,
    "arr": lambda p: 12 * p.mrr_end,
    "net_new_mrr": lambda p: p.net_new,
    "new_mrr": lambda p: p.new,
    "expansion_mrr": lambda p: p.expansion,
    "contraction_mrr": lambda p: p.contraction,
    "churned_mrr": lambda p: p.churn,
    "reactivation_mrr": lambda p: p.reactivation,
    "paying_customers": lambda p: p.customers_end,
    "arpa": lambda p: _money(p.mrr_end, p.customers_end),
    "customer_churn_rate": customer_churn_rate,
    "customer_retention": lambda p: None if (r := customer_churn_rate(p)) is None else 1 - r,
    "gross_mrr_churn_rate": lambda p: _ratio(-(p.churn + p.contraction), p.mrr_start),
    "net_mrr_churn_rate": lambda p: _ratio(
        -(p.churn + p.contraction + p.expansion + p.reactivation), p.mrr_start
    ),
    "nrr": lambda p: _ratio(p.mrr_start - p.cohort_net_loss, p.mrr_start),
    "grr": lambda p: _ratio(p.mrr_start - p.cohort_gross_loss, p.mrr_start),
    "quick_ratio": lambda p: _ratio(
        p.new + p.expansion + p.reactivation, -(p.contraction + p.churn)
    ),
}

#: How many calendar months the LTV's churn rate is averaged over.
LTV_MONTHS = 6


@dataclass(frozen=True, slots=True)
class MetricsPlan:
    """What a revenue metrics query asks: its metrics and cut, and the ledger statements
    it needs (:meth:`requests`), which a caller may run together with others'."""

    names: tuple[str, ...]
    window: TimeWindow
    bucket: Bucket
    timezone: str
    by_feature: bool
    trial_days: int | None
    #: The MRR series the figures come from; for LTV, in months, from six months earlier.
    series: SeriesRequest
    #: The months whose churn rates LTV averages (the series itself when cut by month).
    monthly: SeriesRequest | None

    @classmethod
    def of(
        cls,
        names: Iterable[str],
        window: TimeWindow,
        bucket: Bucket,
        timezone: str,
        *,
        by_feature: bool = False,
        trial_days: int | None = None,
    ) -> MetricsPlan:
        chosen = tuple(dict.fromkeys(resolve(n) for n in names))
        if not chosen:
            raise QueryError("metrics: name at least one revenue metric")
        if by_feature:
            whole = [n for n in chosen if not REVENUE_METRICS[n].by_feature]
            if whole:
                raise QueryError(
                    f"{', '.join(whole)} cannot be cut by feature; these can: "
                    + ", ".join(n for n, d in REVENUE_METRICS.items() if d.by_feature)
                )
        elif "feature_adoption" in chosen:
            raise QueryError("feature_adoption is per feature: ask it by feature")
        series = SeriesRequest.of(window, bucket, timezone)
        monthly = None
        if "ltv" in chosen:
            earliest = _months_before(series.starts[0], LTV_MONTHS, timezone)
            monthly = SeriesRequest.of(
                TimeWindow(earliest, series.last_end), Bucket.MONTH, timezone
            )
            if bucket == Bucket.MONTH:
                # The months LTV reads hold the series' own: one statement answers both.
                series = series.within(monthly)
        return cls(chosen, window, bucket, timezone, by_feature, trial_days, series, monthly)

    @property
    def span(self) -> TimeWindow:
        """The whole buckets the figures cover."""
        return TimeWindow(self.series.starts[0], self.series.last_end, self.window.label)

    def _cut(self) -> tuple[datetime, datetime]:
        return (self.span.start, self.span.end)

    @property
    def conversion(self) -> LedgerRequest:
        return LedgerRequest(
            conversion_query,
            self._cut(),
            (self.bucket.value, self.timezone, self.by_feature),
            (ACTIVITY_TABLE,),
        )

    @property
    def feature_revenue(self) -> LedgerRequest:
        return LedgerRequest(
            feature_revenue_query,
            self._cut(),
            (self.bucket.value, self.timezone),
            (EVENTS_TABLE,),
        )

    def requests(self) -> list[LedgerRequest]:
        """The ledger statements these figures need."""
        wanted = [self.series.ledger]
        if self.monthly is not None:
            wanted.append(self.monthly.ledger)
        if "free_to_paid_conversion" in self.names:
            wanted.append(self.conversion)
        if "feature_revenue" in self.names:
            wanted.append(self.feature_revenue)
        return wanted


class RevenueMetrics:
    """Answers revenue metrics by name (see :data:`REVENUE_METRICS`)."""

    def __init__(self, metrics: MetricService, ledger: RevenueLedger) -> None:
        self._metrics = metrics
        self._ledger = ledger

    def query(
        self, plan: MetricsPlan, policy: RevenuePolicy, versions: DataVersions | None = None
    ) -> RevenueMetricsResult:
        """The plan's figures, its ledger statements run as one."""
        requests = list(dict.fromkeys(plan.requests()))
        tables = self._ledger.run(requests, policy, versions)
        return self.compute(plan, dict(zip(requests, tables, strict=True)), policy, versions)

    def compute(
        self,
        plan: MetricsPlan,
        answers: dict[LedgerRequest, pa.Table],
        policy: RevenuePolicy,
        versions: DataVersions | None = None,
    ) -> RevenueMetricsResult:
        """The plan's figures from the answers to its ledger statements (and the metric
        layer's own queries, for the figures over behaviour and subscription events)."""
        series = plan.series.series(answers[plan.series.ledger], policy)
        values: dict[tuple[datetime, str | None], dict[str, Figure]] = {}

        def put(start: datetime, feature: str | None, name: str, value: Figure) -> None:
            values.setdefault((start, feature), {})[name] = value

        if not plan.by_feature:
            for point in series.points:
                for name in plan.names:
                    if name in _FROM_POINT:
                        put(point.start, None, name, _FROM_POINT[name](point))
        extra: dict[str, Callable[[], None]] = {
            "ltv": lambda: self._ltv(plan, series, answers, policy, put),
            "arpu": lambda: self._arpu(plan, series, versions, put),
            "trial_to_paid": lambda: self._trials(plan, versions, put),
            "free_to_paid_conversion": lambda: self._conversion(answers[plan.conversion], put),
            "subscription_upgrades": lambda: self._upgrades(plan, versions, put),
            "feature_adoption": lambda: self._adoption(plan, versions, put),
            "feature_revenue": lambda: self._feature_revenue(
                plan, answers[plan.feature_revenue], put
            ),
        }
        for name in plan.names:
            if name in extra:
                extra[name]()
        features = sorted({f for (_, f) in values if f is not None}) if plan.by_feature else [None]
        rows = [
            RevenueRow(
                start=point.start,
                end=point.end,
                feature=feature,
                figures={
                    n: values.get((point.start, feature), {}).get(n, _empty(n)) for n in plan.names
                },
            )
            for point in series.points
            for feature in features
        ]
        return RevenueMetricsResult(
            period=Period.of(plan.window),
            bucket=plan.bucket.value,
            timezone=plan.timezone,
            currency=policy.reporting_currency,
            metrics=list(plan.names),
            by_feature=plan.by_feature,
            rows=rows,
        )

    # -- figures beyond the MRR points ------------------------------------------------------

    @staticmethod
    def _ltv(
        plan: MetricsPlan,
        series: MrrSeries,
        answers: dict[LedgerRequest, pa.Table],
        policy: RevenuePolicy,
        put: _Put,
    ) -> None:
        assert plan.monthly is not None
        monthly = plan.monthly.series(answers[plan.monthly.ledger], policy)
        # Exact fractions, rounded once: ARPA ÷ mean churn, half up to a minor unit.
        rates = [
            (
                p.start,
                Fraction(p.churned_customers, p.customers_start) if p.customers_start else None,
            )
            for p in monthly.points
        ]
        for point in series.points:
            month = _months_before(point.start, 0, plan.timezone)
            before = [r for s, r in rates if s < month][-LTV_MONTHS:]
            defined = [r for r in before if r is not None]
            churn = sum(defined, Fraction(0)) / len(defined) if defined else Fraction(0)
            ltv = None
            if churn and point.customers_end:
                ltv = math.floor(
                    Fraction(point.mrr_end, point.customers_end) / churn + Fraction(1, 2)
                )
            put(point.start, None, "ltv", ltv)

    def _by_bucket(
        self,
        plan: MetricsPlan,
        name: str,
        dimensions: Sequence[str],
        versions: DataVersions | None,
    ) -> list[tuple[datetime, str | None, Figure]]:
        """A catalogue metric per bucket (and dimension value) over the plan's buckets."""
        result = self._metrics.run(
            MetricQuery.build(
                [name],
                plan.span,
                bucket=plan.bucket,
                timezone=plan.timezone,
                dimensions=dimensions,
            ),
            versions=versions,
            fill_gaps=False,
        )
        rows: list[tuple[datetime, str | None, Figure]] = []
        for row in result.rows:
            assert row.bucket is not None
            feature = next(iter(row.dimensions.values()), None) if dimensions else None
            value = row.values[name].value
            assert not isinstance(value, datetime)
            rows.append((row.bucket, feature, value))
        return rows

    def _arpu(
        self,
        plan: MetricsPlan,
        series: MrrSeries,
        versions: DataVersions | None,
        put: _Put,
    ) -> None:
        users = {s: v for s, _, v in self._by_bucket(plan, "unique_users", (), versions)}
        for point in series.points:
            put(point.start, None, "arpu", _money(point.mrr_end, int(users.get(point.start) or 0)))

    def _upgrades(self, plan: MetricsPlan, versions: DataVersions | None, put: _Put) -> None:
        dims = ["attributed_feature"] if plan.by_feature else []
        for start, feature, value in self._by_bucket(plan, "subscription_upgrades", dims, versions):
            if plan.by_feature and feature is None:
                continue
            put(start, feature, "subscription_upgrades", value)

    def _adoption(self, plan: MetricsPlan, versions: DataVersions | None, put: _Put) -> None:
        active = {s: v for s, _, v in self._by_bucket(plan, "unique_users", (), versions)}
        for start, feature, users in self._by_bucket(plan, "unique_users", ["feature"], versions):
            put(
                start,
                feature,
                "feature_adoption",
                _ratio(float(users or 0), float(active.get(start) or 0)),
            )

    def _trials(self, plan: MetricsPlan, versions: DataVersions | None, put: _Put) -> None:
        table = self._metrics.run_statement(
            Statement(
                trial_query,
                plan._cut(),
                (EVENTS_TABLE,),
                (plan.bucket.value, plan.timezone, plan.trial_days),
            ),
            versions,
        )
        for row in to_records(table):
            put(
                row["bucket_start"],
                None,
                "trial_to_paid",
                _ratio(row["converted_trials"], row["trials"]),
            )

    @staticmethod
    def _conversion(table: pa.Table, put: _Put) -> None:
        for row in to_records(table):
            put(
                row["bucket_start"],
                row.get("feature"),
                "free_to_paid_conversion",
                _ratio(row["converted_users"], row["free_users"]),
            )

    @staticmethod
    def _feature_revenue(plan: MetricsPlan, table: pa.Table, put: _Put) -> None:
        totals: dict[tuple[datetime, str | None], int] = {}
        for row in to_records(table):
            key = (row["bucket_start"], row["feature"] if plan.by_feature else None)
            totals[key] = totals.get(key, 0) + int(row["feature_revenue"])
        for (start, feature), total in totals.items():
            put(start, feature, "feature_revenue", total)


_Put = Callable[[datetime, "str | None", str, Figure], None]


def _empty(name: str) -> Figure:
    """A period without events: counts and money sums are 0; ratios are undefined."""
    unit = REVENUE_METRICS[name].unit
    if name in ("arpu", "ltv", "arpa"):
        return None
    return 0 if unit in (Unit.COUNT, Unit.MINOR_UNITS) else None


def _months_before(at: datetime, months: int, timezone: str) -> datetime:
    """The start (UTC) of the calendar month, in ``timezone``, ``months`` before the one
    holding ``at``."""
    zone = ZoneInfo(timezone)
    local = at.astimezone(zone)
    index = local.year * 12 + local.month - 1 - months
    # Mid-month noon is never skipped by a clock change: the month's start is found from it.
    inside = datetime(index // 12, index % 12 + 1, 15, 12, tzinfo=zone)
    return bucket_starts(TimeWindow(inside, inside + timedelta(days=1)), Bucket.MONTH, timezone)[0]

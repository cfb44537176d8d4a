"""Revenue metrics by name, per period and (where it makes sense) per banking feature.

Every figure is computed from the ledger (:mod:`._mrr`) or a statement beside it
(:mod:`._queries`); ``docs/revenue.md`` gives each formula with its source.
Money is in integer minor units of the reporting currency (averages rounded half
up to a minor unit); rates are ratios; a figure whose denominator is 0 is None
("undefined"), never 0 or infinite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from banking_analytics.analytics._shape import Period, Shape
from banking_analytics.analytics.revenue._ledger import EVENTS_TABLE
from banking_analytics.analytics.revenue._mrr import MrrPoint, MrrSeries, RevenueLedger
from banking_analytics.analytics.revenue._policy import RevenuePolicy
from banking_analytics.analytics.revenue._queries import (
    ACTIVITY_TABLE,
    conversion_query,
    feature_revenue_query,
    trial_query,
)
from banking_analytics.metrics import (
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
    "RevenueMetricDefinition",
    "RevenueMetrics",
    "RevenueMetricsResult",
    "RevenueRow",
]

Figure = int | float | None


@dataclass(frozen=True, slots=True)
class RevenueMetricDefinition:
    """A revenue metric: its unit, formula and the source of its definition."""

    name: str
    unit: Unit
    formula: str
    source: str
    by_feature: bool = False
    higher_is_better: bool | None = None


_CM = "ChartMogul"
REVENUE_METRICS: dict[str, RevenueMetricDefinition] = {
    d.name: d
    for d in (
        RevenueMetricDefinition(
            "mrr", Unit.MINOR_UNITS, "MRR at the period's end", _CM, False, True
        ),
        RevenueMetricDefinition(
            "arr", Unit.MINOR_UNITS, "12 x MRR at the period's end", _CM, False, True
        ),
        RevenueMetricDefinition(
            "net_new_mrr",
            Unit.MINOR_UNITS,
            "new + expansion + reactivation + contraction + churn (the last two negative)",
            _CM,
            False,
            True,
        ),
        RevenueMetricDefinition("new_mrr", Unit.MINOR_UNITS, "Σ new movements", _CM, False, True),
        RevenueMetricDefinition(
            "expansion_mrr", Unit.MINOR_UNITS, "Σ expansion movements", _CM, False, True
        ),
        RevenueMetricDefinition(
            "contraction_mrr", Unit.MINOR_UNITS, "Σ contraction movements (≤ 0)", _CM, False, True
        ),
        RevenueMetricDefinition(
            "churned_mrr", Unit.MINOR_UNITS, "Σ churn movements (≤ 0)", _CM, False, True
        ),
        RevenueMetricDefinition(
            "reactivation_mrr", Unit.MINOR_UNITS, "Σ reactivation movements", _CM, False, True
        ),
        RevenueMetricDefinition(
            "paying_customers",
            Unit.COUNT,
            "customers with MRR > 0 at the period's end",
            _CM,
            False,
            True,
        ),
        RevenueMetricDefinition(
            "arpa",
            Unit.MINOR_UNITS,
            "MRR ÷ paying customers, at the period's end",
            _CM,
            False,
            True,
        ),
        RevenueMetricDefinition(
            "arpu",
            Unit.MINOR_UNITS,
            "MRR at the period's end ÷ active users in the period (a behaviour event): the "
            "freemium view",
            "Baremetrics / ProfitWell (ARPU over all users)",
            False,
            True,
        ),
        RevenueMetricDefinition(
            "customer_churn_rate",
            Unit.RATIO,
            "customers paying at the start who churned in the period ÷ customers at the start "
            "(policy: count_joined_and_churned adds those who joined in it)",
            "ChartMogul (B2B formula, the default since 2022)",
            False,
            False,
        ),
        RevenueMetricDefinition(
            "gross_mrr_churn_rate",
            Unit.RATIO,
            "-(churn + contraction) ÷ MRR at the start",
            _CM,
            False,
            False,
        ),
        RevenueMetricDefinition(
            "net_mrr_churn_rate",
            Unit.RATIO,
            "-(churn + contraction + expansion + reactivation) ÷ MRR at the start (may be < 0)",
            _CM,
            False,
            False,
        ),
        RevenueMetricDefinition(
            "nrr",
            Unit.RATIO,
            "Σ MRR at the end of the customers paying at the start ÷ MRR at the start",
            "ChartMogul net MRR retention; Baremetrics NRR",
            False,
            True,
        ),
        RevenueMetricDefinition(
            "grr",
            Unit.RATIO,
            "Σ min(MRR at the end, MRR at the start) of the customers paying at the start ÷ "
            "MRR at the start (≤ 1)",
            "ChartMogul gross MRR retention",
            False,
            True,
        ),
        RevenueMetricDefinition(
            "quick_ratio",
            Unit.RATIO,
            "(new + expansion + reactivation) ÷ -(contraction + churn); reactivation counts",
            "Baremetrics (which leaves reactivation out)",
            False,
            True,
        ),
        RevenueMetricDefinition(
            "ltv",
            Unit.MINOR_UNITS,
            "ARPA ÷ the mean monthly customer churn rate of the six calendar months before the "
            "period's month (undefined when that mean is 0 or no month has customers)",
            "ChartMogul (ARPA ÷ six-month trailing churn)",
            False,
            True,
        ),
        RevenueMetricDefinition(
            "customer_retention",
            Unit.RATIO,
            "1 - customer_churn_rate: the share of customers paying at the start still "
            "counted at the end",
            _CM,
            False,
            True,
        ),
        RevenueMetricDefinition(
            "trial_to_paid",
            Unit.RATIO,
            "trials started in the period that later paid a first invoice (a payment > 0 on "
            "the same subscription) ÷ trials started in it; with trial_days, paid within them",
            "ChartMogul trial-to-paid cohorts",
            False,
            True,
        ),
        RevenueMetricDefinition(
            "free_to_paid_conversion",
            Unit.RATIO,
            "users active in the period (of the feature, by feature) who were not paying at "
            "its start and started paying in it ÷ those users",
            "Amplitude / PostHog conversion over active users",
            True,
            True,
        ),
        RevenueMetricDefinition(
            "subscription_upgrades",
            Unit.COUNT,
            "subscription events of kind subscribed, upgraded or reactivated in the period "
            "(by the feature the host app credited)",
            "our definition: the billing system's upgrade events",
            True,
            True,
        ),
        RevenueMetricDefinition(
            "feature_adoption",
            Unit.RATIO,
            "users of the feature in the period ÷ active users in the period",
            "PostHog / Amplitude feature adoption",
            True,
            True,
        ),
        RevenueMetricDefinition(
            "feature_revenue",
            Unit.MINOR_UNITS,
            "MRR gained (new, expansion, reactivation movements) at subscription events the "
            "host app credited to the feature (attributed_feature)",
            "our definition (host-sent attribution)",
            True,
            True,
        ),
    )
}

#: The spec's eight revenue metrics, each answered by one of ours.
SPEC_REVENUE_METRICS: dict[RevenueMetric, str] = {
    RevenueMetric.SUBSCRIPTION_UPGRADES: "subscription_upgrades",
    RevenueMetric.FEATURE_ADOPTION: "feature_adoption",
    RevenueMetric.USER_RETENTION: "customer_retention",
    RevenueMetric.CUSTOMER_LIFETIME_VALUE: "ltv",
    RevenueMetric.CHURN_RATE: "customer_churn_rate",
    RevenueMetric.REVENUE_PER_USER: "arpu",
    RevenueMetric.UPGRADE_CONVERSION: "free_to_paid_conversion",
    RevenueMetric.FEATURE_REVENUE: "feature_revenue",
}


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
    return numerator / denominator if denominator else None


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


class RevenueMetrics:
    """Answers revenue metrics by name (see :data:`REVENUE_METRICS`)."""

    def __init__(self, metrics: MetricService, ledger: RevenueLedger) -> None:
        self._metrics = metrics
        self._ledger = ledger

    def query(
        self,
        names: Iterable[str],
        window: TimeWindow,
        bucket: Bucket,
        timezone: str,
        policy: RevenuePolicy,
        *,
        by_feature: bool = False,
        trial_days: int | None = None,
        versions: DataVersions | None = None,
    ) -> RevenueMetricsResult:
        chosen = list(dict.fromkeys(resolve(n) for n in names))
        if not chosen:
            raise QueryError("metrics: name at least one revenue metric")
        if by_feature:
            whole = [n for n in chosen if not REVENUE_METRICS[n].by_feature]
            if whole:
                raise QueryError(
                    f"{', '.join(whole)} cannot be cut by feature; these can: "
                    + ", ".join(n for n, d in REVENUE_METRICS.items() if d.by_feature)
                )
        series = self._ledger.series(window, bucket, timezone, policy, versions)
        starts = [p.start for p in series.points]
        ends = {p.start: p.end for p in series.points}
        span = TimeWindow(starts[0], series.points[-1].end, window.label)
        values: dict[tuple[datetime, str | None], dict[str, Figure]] = {}

        def put(start: datetime, feature: str | None, name: str, value: Figure) -> None:
            values.setdefault((start, feature), {})[name] = value

        if not by_feature:
            for point in series.points:
                for name in chosen:
                    if name in _FROM_POINT:
                        put(point.start, None, name, _FROM_POINT[name](point))
        extra: dict[str, Callable[[], None]] = {
            "ltv": lambda: self._ltv(series, timezone, policy, versions, put),
            "arpu": lambda: self._arpu(series, span, bucket, timezone, versions, put),
            "trial_to_paid": lambda: self._trials(
                span, bucket, timezone, trial_days, versions, put
            ),
            "free_to_paid_conversion": lambda: self._conversion(
                span, bucket, timezone, by_feature, policy, versions, put
            ),
            "subscription_upgrades": lambda: self._upgrades(
                span, bucket, timezone, by_feature, versions, put
            ),
            "feature_adoption": lambda: self._adoption(
                span, bucket, timezone, by_feature, versions, put
            ),
            "feature_revenue": lambda: self._feature_revenue(
                span, bucket, timezone, by_feature, policy, versions, put
            ),
        }
        for name in chosen:
            if name in extra:
                extra[name]()
        features = sorted({f for (_, f) in values if f is not None}) if by_feature else [None]
        rows = [
            RevenueRow(
                start=start,
                end=ends[start],
                feature=feature,
                figures={n: values.get((start, feature), {}).get(n, _empty(n)) for n in chosen},
            )
            for start in starts
            for feature in features
        ]
        return RevenueMetricsResult(
            period=Period.of(window),
            bucket=bucket.value,
            timezone=timezone,
            currency=policy.reporting_currency,
            metrics=chosen,
            by_feature=by_feature,
            rows=rows,
        )

    # -- figures beyond the MRR points ------------------------------------------------------

    def _ltv(
        self,
        series: MrrSeries,
        timezone: str,
        policy: RevenuePolicy,
        versions: DataVersions | None,
        put: _Put,
    ) -> None:
        first = series.points[0].start
        month_starts = bucket_starts(
            TimeWindow(first, series.points[-1].end), Bucket.MONTH, timezone
        )
        earliest = _months_before(month_starts[0], LTV_MONTHS, timezone)
        monthly = self._ledger.series(
            TimeWindow(earliest, series.points[-1].end), Bucket.MONTH, timezone, policy, versions
        )
        rates = [(p.start, customer_churn_rate(p)) for p in monthly.points]
        for point in series.points:
            month = _months_before(point.start, 0, timezone)
            before = [r for s, r in rates if s < month][-LTV_MONTHS:]
            defined = [r for r in before if r is not None]
            churn = sum(defined) / len(defined) if defined else 0.0
            arpa = _money(point.mrr_end, point.customers_end)
            put(
                point.start,
                None,
                "ltv",
                round(arpa / churn) if arpa is not None and churn else None,
            )

    def _by_bucket(
        self,
        names: Sequence[str],
        span: TimeWindow,
        bucket: Bucket,
        timezone: str,
        dimensions: Sequence[str],
        versions: DataVersions | None,
    ) -> list[tuple[datetime, str | None, dict[str, Figure]]]:
        result = self._metrics.run(
            MetricQuery.build(names, span, bucket=bucket, timezone=timezone, dimensions=dimensions),
            versions=versions,
            fill_gaps=False,
        )
        rows: list[tuple[datetime, str | None, dict[str, Figure]]] = []
        for row in result.rows:
            assert row.bucket is not None
            feature = next(iter(row.dimensions.values()), None) if dimensions else None
            figures: dict[str, Figure] = {}
            for name in names:
                value = row.values[name].value
                assert not isinstance(value, datetime)
                figures[name] = value
            rows.append((row.bucket, feature, figures))
        return rows

    def _arpu(
        self,
        series: MrrSeries,
        span: TimeWindow,
        bucket: Bucket,
        timezone: str,
        versions: DataVersions | None,
        put: _Put,
    ) -> None:
        users = {
            s: v["unique_users"]
            for s, _, v in self._by_bucket(["unique_users"], span, bucket, timezone, (), versions)
        }
        for point in series.points:
            active = int(users.get(point.start) or 0)
            put(point.start, None, "arpu", _money(point.mrr_end, active))

    def _upgrades(
        self,
        span: TimeWindow,
        bucket: Bucket,
        timezone: str,
        by_feature: bool,
        versions: DataVersions | None,
        put: _Put,
    ) -> None:
        dims = ["attributed_feature"] if by_feature else []
        for start, feature, v in self._by_bucket(
            ["subscription_upgrades"], span, bucket, timezone, dims, versions
        ):
            if by_feature and feature is None:
                continue
            put(start, feature, "subscription_upgrades", v["subscription_upgrades"])

    def _adoption(
        self,
        span: TimeWindow,
        bucket: Bucket,
        timezone: str,
        by_feature: bool,
        versions: DataVersions | None,
        put: _Put,
    ) -> None:
        if not by_feature:
            raise QueryError("feature_adoption is per feature: ask it by feature")
        active = {
            s: v["unique_users"]
            for s, _, v in self._by_bucket(["unique_users"], span, bucket, timezone, (), versions)
        }
        for start, feature, v in self._by_bucket(
            ["unique_users"], span, bucket, timezone, ["feature"], versions
        ):
            put(
                start,
                feature,
                "feature_adoption",
                _ratio(float(v["unique_users"] or 0), float(active.get(start) or 0)),
            )

    def _trials(
        self,
        span: TimeWindow,
        bucket: Bucket,
        timezone: str,
        trial_days: int | None,
        versions: DataVersions | None,
        put: _Put,
    ) -> None:
        table = self._metrics.run_statement(
            Statement(
                trial_query,
                (span.start, span.end),
                (EVENTS_TABLE,),
                (bucket.value, timezone, trial_days),
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

    def _conversion(
        self,
        span: TimeWindow,
        bucket: Bucket,
        timezone: str,
        by_feature: bool,
        policy: RevenuePolicy,
        versions: DataVersions | None,
        put: _Put,
    ) -> None:
        table = self._ledger.run(
            conversion_query,
            (span.start, span.end),
            (bucket.value, timezone, by_feature),
            policy,
            versions,
            also_reads=(ACTIVITY_TABLE,),
        )
        for row in to_records(table):
            put(
                row["bucket_start"],
                row.get("feature"),
                "free_to_paid_conversion",
                _ratio(row["converted_users"], row["free_users"]),
            )

    def _feature_revenue(
        self,
        span: TimeWindow,
        bucket: Bucket,
        timezone: str,
        by_feature: bool,
        policy: RevenuePolicy,
        versions: DataVersions | None,
        put: _Put,
    ) -> None:
        table = self._ledger.run(
            feature_revenue_query,
            (span.start, span.end),
            (bucket.value, timezone),
            policy,
            versions,
        )
        totals: dict[tuple[datetime, str | None], int] = {}
        for row in to_records(table):
            key = (row["bucket_start"], row["feature"] if by_feature else None)
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

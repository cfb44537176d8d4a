"""Revenue optimisation: which feature to push, what it is worth, and the ROI of doing it.

A feature is recommended when the upgrade model finds that adopting it raises
conversion (the 95% interval of its hazard ratio lies above 1). Its expected MRR
gain over the horizon is the projection of :mod:`._roi` for
:data:`RECOMMENDED_ADOPTION_POINTS` more points of adoption among active users
(capped by its reach, the active users who have not used it), at the point
estimate, and at the interval's bounds for the gain's interval; ARPA is the mean
MRR of a new paid conversion in the main currency (the one with most conversions).
Where the feature's connection success rate (link and add-product attempts,
Plaid's bank-health definition) is below :data:`POOR_SUCCESS_RATE`, poor
integrations hold it back, and the recommendation says to fix them first.
Recommendations are ranked by expected gain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from banking_analytics.analytics._shape import Period, Shape
from banking_analytics.analytics.revenue._impact import (
    FeatureImpact,
    RevenueImpact,
    RevenueImpactAnalysis,
)
from banking_analytics.analytics.revenue._impact_sql import connection_users
from banking_analytics.analytics.revenue._roi import (
    DEFAULT_DISCOUNT_RATE,
    DEFAULT_HORIZON_MONTHS,
    RoiAssumptions,
    RoiProjection,
    appraise,
    uplift_path,
)
from banking_analytics.events import SCHEMAS
from banking_analytics.metrics import (
    MetricQuery,
    MetricService,
    QueryError,
    Statement,
    TimeWindow,
    parse_time_period,
    to_records,
)
from banking_analytics.vocabulary import BankingFeature, EventType

__all__ = [
    "POOR_SUCCESS_RATE",
    "RECOMMENDED_ADOPTION_POINTS",
    "Evidence",
    "Recommendation",
    "Recommendations",
    "RevenueOptimization",
]

RECOMMENDED_ADOPTION_POINTS = 10.0
#: Below this connection success rate a feature's integrations hold it back.
POOR_SUCCESS_RATE = 0.90
_ATTEMPTS = SCHEMAS[EventType.CONNECTION_ATTEMPT].table


@dataclass(slots=True, eq=False)
class Evidence(Shape):
    """What a recommendation rests on."""

    hazard_ratio: float
    ci_low: float
    ci_high: float
    naive_lift: float | None
    reach: int
    """Active users who have not used the feature"""
    adoption_rate: float | None
    connection_success_rate: float | None
    """None where the feature has too few connection attempts (or none)"""


@dataclass(slots=True, eq=False)
class Recommendation(Shape):
    """One ranked action."""

    rank: int
    feature: str
    recommendation: str
    currency: str
    horizon_months: int
    expected_mrr_gain: int
    """Minor units, at the horizon"""
    expected_mrr_gain_low: int
    expected_mrr_gain_high: int
    evidence: Evidence


@dataclass(slots=True, eq=False)
class Recommendations(Shape):
    period: Period
    adoption_points: float
    recommendations: list[Recommendation]


@dataclass(frozen=True, slots=True)
class _Economics:
    impact: RevenueImpact
    success_rates: dict[str, float | None]
    attempting_users: dict[str, int]

    @property
    def currency_arpa(self) -> tuple[str, int] | None:
        if not self.impact.new_customer_mrr:
            return None
        main = max(self.impact.new_customer_mrr, key=lambda m: m.amount)
        return main.currency, main.amount


def _adoption_gap(feature: FeatureImpact, active: int, points: float) -> Decimal:
    reach = active - feature.adopters
    return min(Decimal(repr(points)) / 100 * active, Decimal(max(reach, 0)))


class RevenueOptimization:
    """Recommendations and ROI projections over :class:`RevenueImpactAnalysis`."""

    def __init__(self, metrics: MetricService, impact: RevenueImpactAnalysis) -> None:
        self._metrics = metrics
        self._impact = impact

    def _economics(self, window: TimeWindow) -> _Economics:
        impact = self._impact.analyze(window)
        rates = self._metrics.run(
            MetricQuery.build(["connection_success_rate"], window, dimensions=["feature"])
        )
        success = {
            row.dimensions["feature"] or "": row.number("connection_success_rate")
            for row in rates.rows
        }
        users = to_records(
            self._metrics.run_statement(
                Statement(connection_users, (window.start, window.end), (_ATTEMPTS,))
            )
        )
        return _Economics(
            impact,
            {k: (float(v) if v is not None else None) for k, v in success.items()},
            {row["feature"]: int(row["users"]) for row in users},
        )

    def recommendations(
        self,
        time_period: str | TimeWindow = "90d",
        *,
        now: datetime | None = None,
        horizon_months: int = DEFAULT_HORIZON_MONTHS,
        adoption_points: float = RECOMMENDED_ADOPTION_POINTS,
    ) -> Recommendations:
        """Ranked actions (see the module)."""
        window = parse_time_period(time_period, now)
        econ = self._economics(window)
        money = econ.currency_arpa
        found = []
        for feature in econ.impact.features:
            effect = feature.effect
            if (
                money is None
                or effect.hazard_ratio is None
                or effect.ci_low is None
                or effect.ci_high is None
                or effect.ci_low <= 1
            ):
                continue
            hazard = _baseline(feature)
            gap = _adoption_gap(feature, econ.impact.active_users, adoption_points)
            gains = [
                uplift_path(gap, hazard, Decimal(repr(ratio)), Decimal(money[1]), horizon_months)[
                    -1
                ]
                for ratio in (effect.hazard_ratio, effect.ci_low, effect.ci_high)
            ]
            evidence = Evidence(
                hazard_ratio=effect.hazard_ratio,
                ci_low=effect.ci_low,
                ci_high=effect.ci_high,
                naive_lift=effect.naive_lift,
                reach=max(econ.impact.active_users - feature.adopters, 0),
                adoption_rate=feature.adoption_rate,
                connection_success_rate=econ.success_rates.get(feature.feature),
            )
            # Past the peak of extra conversions a larger ratio can mean a smaller gain.
            found.append(([gains[0], min(gains), max(gains)], feature.feature, evidence))
        found.sort(key=lambda item: item[0][0], reverse=True)
        return Recommendations(
            period=Period.of(window),
            adoption_points=adoption_points,
            recommendations=[
                Recommendation(
                    rank=rank,
                    feature=name,
                    recommendation=_sentence(
                        name, evidence, gains[0], money[0], horizon_months, adoption_points
                    ),
                    currency=money[0],
                    horizon_months=horizon_months,
                    expected_mrr_gain=int(gains[0].quantize(Decimal(1))),
                    expected_mrr_gain_low=int(gains[1].quantize(Decimal(1))),
                    expected_mrr_gain_high=int(gains[2].quantize(Decimal(1))),
                    evidence=evidence,
                )
                for rank, (gains, name, evidence) in enumerate(found, start=1)
                if money is not None
            ],
        )

    def roi(
        self,
        feature: BankingFeature | str,
        *,
        cost: int,
        adoption_points: float | None = None,
        success_rate_to: float | None = None,
        horizon_months: int = DEFAULT_HORIZON_MONTHS,
        discount_rate: Decimal = DEFAULT_DISCOUNT_RATE,
        time_period: str | TimeWindow = "90d",
        now: datetime | None = None,
    ) -> RoiProjection:
        """The projected MRR uplift, payback, ROI and NPV of one improvement (see ``_roi``).

        Raises :class:`QueryError` naming what cannot be projected (no effect estimate, a
        success rate below the current one, no connection attempts for the feature)."""
        name = BankingFeature(feature).value
        if (adoption_points is None) == (success_rate_to is None):
            raise QueryError("give one improvement: adoption_points or success_rate_to")
        window = parse_time_period(time_period, now)
        econ = self._economics(window)
        [impact] = [f for f in econ.impact.features if f.feature == name]
        effect = impact.effect
        money = econ.currency_arpa
        if effect.hazard_ratio is None or effect.ci_low is None or effect.ci_high is None:
            raise QueryError(f"feature: no effect estimate for {name} (insufficient data)")
        if money is None:
            raise QueryError("time_period: no paid conversions to take ARPA from")
        current = econ.success_rates.get(name)
        if adoption_points is not None:
            gap = _adoption_gap(impact, econ.impact.active_users, adoption_points)
        else:
            assert success_rate_to is not None
            if current is None or name not in econ.attempting_users:
                raise QueryError(f"success_rate_to: {name} has too few connection attempts")
            if success_rate_to <= current:
                raise QueryError(
                    f"success_rate_to: {success_rate_to} is not above the current {current:.4f}"
                )
            gap = Decimal(econ.attempting_users[name]) * (
                Decimal(repr(success_rate_to)) - Decimal(repr(current))
            )
        hazard = _baseline(impact)
        arpa = Decimal(money[1])
        paths = [
            uplift_path(gap, hazard, Decimal(repr(r)), arpa, horizon_months)
            for r in (effect.hazard_ratio, effect.ci_low, effect.ci_high)
        ]
        appraisal = appraise(cost, paths[0], discount_rate)
        horizon = sorted(path[-1] for path in paths)
        return RoiProjection(
            assumptions=RoiAssumptions(
                feature=name,
                adoption_points=adoption_points,
                success_rate_to=success_rate_to,
                current_success_rate=current,
                new_adopters=float(gap),
                baseline_daily_hazard=float(hazard),
                hazard_ratio=effect.hazard_ratio,
                hazard_ratio_ci=[effect.ci_low, effect.ci_high],
                arpa=money[1],
                currency=money[0],
                cost=cost,
                horizon_months=horizon_months,
                discount_rate=float(discount_rate),
                churn_modelled=False,
            ),
            currency=money[0],
            monthly_mrr_uplift=[int(v.quantize(Decimal(1))) for v in paths[0]],
            mrr_uplift=int(paths[0][-1].quantize(Decimal(1))),
            mrr_uplift_low=int(horizon[0].quantize(Decimal(1))),
            mrr_uplift_high=int(horizon[-1].quantize(Decimal(1))),
            total_uplift=appraisal.total_uplift,
            payback_months=appraisal.payback_months,
            roi=appraisal.roi,
            npv=appraisal.npv,
        )


def _baseline(feature: FeatureImpact) -> Decimal:
    """Non-adopters' daily conversion hazard (0 when they never converted)."""
    hazard = feature.effect.baseline_daily_hazard
    return Decimal(repr(hazard)) if hazard is not None else Decimal(0)


#: Minor-unit exponents other than 2 (ISO 4217), for the sentences' amounts.
_EXPONENTS = {"JPY": 0, "KRW": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3}


def _major(amount: Decimal, currency: str) -> str:
    exponent = _EXPONENTS.get(currency, 2)
    return f"{amount / 10**exponent:,.0f} {currency}"


def _sentence(
    feature: str, evidence: Evidence, gain: Decimal, currency: str, months: int, points: float
) -> str:
    name = feature.replace("_", " ")
    worth = _major(gain, currency)
    effect = (
        f"users who adopt it convert {evidence.hazard_ratio:.1f}x as often "
        f"(95% CI {evidence.ci_low:.1f}-{evidence.ci_high:.1f})"
    )
    then = f"{points:g} more points of adoption would add about {worth} MRR within {months} months."
    rate = evidence.connection_success_rate
    if rate is not None and rate < POOR_SUCCESS_RATE:
        return (
            f"Fix the {name} bank connections first: only {rate:.0%} succeed, and {effect}; {then}"
        )
    return (
        f"Promote {name} to the {evidence.reach:,} active users who have not used it: {effect}; "
        f"{then}"
    )

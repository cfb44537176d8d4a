"""Revenue impact of the banking features: money, adoption, attribution and causal effect.

For a window ``[start, end)``:

- ``total_revenue`` (per currency, integer minor units) = Σ ``amount`` of
  ``payment_succeeded`` events - Σ ``amount`` of ``refunded`` events: the net cash
  collected (refunds are subtracted in the window they happen).
  ``average_revenue_per_transaction`` = Σ successful payment amounts ÷ their number,
  rounded half up to a minor unit (a transaction is a successful payment; refunds
  are not netted per transaction).
- Adoption of a feature: ``adopters`` = distinct users with a behaviour event of it in
  the window; ``adoption_rate`` = adopters ÷ active users (distinct users with any
  behaviour event in the window).
- Feature revenue: the MRR of the upgrades (``subscribed`` or ``upgraded`` events in the
  window) credited to the feature, three ways: ``attributed`` by the host app
  (``attributed_feature``); ``first_touch`` / ``last_touch``, the feature of the user's
  first / last behaviour event within the attribution window (default 30 days)
  before the upgrade, ``[t - window, t)``. An upgrade's MRR is its snapshot's price
  normalised to a month, per the ledger's rules (:func:`monthly_mrr`: after
  discounts; for a plan upgrade, the new plan's whole MRR, not the increase).
- Conversion sources: upgrades per (``attribution_source``, ``attributed_feature``), and
  their ``conversion_rate`` = those upgrades ÷ the feature's adopters (÷ active users
  for upgrades credited to no feature).
- The causal effect of adopting each feature on converting to a paid plan: see
  :mod:`~banking_analytics.analytics.revenue._effect_model` (the model) and
  :mod:`~banking_analytics.analytics.revenue._impact_sql` (the risk set, adoption,
  tenure and engagement).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from banking_analytics.analytics._shape import Period, Shape
from banking_analytics.analytics.revenue._effect_model import (
    MIN_ADOPTER_CONVERSIONS,
    Cells,
    Effect,
    fit_effects,
)
from banking_analytics.analytics.revenue._impact_sql import (
    BEHAVIOR,
    MAX_MODEL_DAYS,
    SUBSCRIPTIONS,
    adoption_counts,
    attributed_upgrades,
    model_cells,
    model_users,
    payments,
)
from banking_analytics.events import SCHEMAS
from banking_analytics.metrics import (
    MetricService,
    QueryError,
    Statement,
    TimeWindow,
    parse_time_period,
    to_records,
)
from banking_analytics.vocabulary import BankingFeature, EventType

__all__ = [
    "DEFAULT_ATTRIBUTION_WINDOW",
    "ConversionSource",
    "FeatureEffect",
    "FeatureImpact",
    "FeatureRevenue",
    "Money",
    "RevenueImpact",
    "RevenueImpactAnalysis",
    "UpgradeModel",
    "monthly_mrr",
]

DEFAULT_ATTRIBUTION_WINDOW = timedelta(days=30)
FEATURES: tuple[str, ...] = tuple(f.value for f in BankingFeature)
_MODEL_TABLES = (
    SCHEMAS[EventType.CONNECTION_ATTEMPT].table,
    BEHAVIOR,
    SCHEMAS[EventType.SYNC_RUN].table,
    SUBSCRIPTIONS,
)
#: Months per interval as a fraction N / D (of one interval_count): see :func:`monthly_mrr`.
_PER_MONTH = {"month": (1, 1), "year": (1, 12), "week": (52, 12), "day": (365, 12)}


def monthly_mrr(
    unit_amount: int,
    quantity: int | None,
    interval: str,
    interval_count: int | None,
    discount_percent: float | None,
    discount_amount: int | None,
) -> int:
    """A snapshot's price normalised to a month, in minor units (the ledger's rule 2 and 4).

    ``gross = unit_amount·quantity``; ``percent_off = floor(gross·discount_percent/100 + ½)``;
    ``net = max(gross - percent_off - discount_amount, 0)``;
    ``mrr = floor((2·net·N + D) / (2·D))`` with month N=1, D=ic; year N=1, D=12·ic;
    week N=52, D=12·ic; day N=365, D=12·ic (ic = interval_count): round half up.
    E.g. 4 seats x 50000 a year -> 16667; 12000 a year with 10% off -> 900.
    """
    gross = unit_amount * (quantity or 1)
    percent = Decimal(repr(discount_percent)) if discount_percent else Decimal(0)
    percent_off = int((gross * percent / 100 + Decimal("0.5")).to_integral_value("ROUND_FLOOR"))
    net = max(gross - percent_off - (discount_amount or 0), 0)
    n, d = _PER_MONTH[interval]
    d *= interval_count or 1
    return (2 * net * n + d) // (2 * d)


@dataclass(slots=True, eq=False)
class Money(Shape):
    """An amount of one currency, in its minor units (cents for USD)."""

    currency: str
    amount: int


@dataclass(slots=True, eq=False)
class FeatureRevenue(Shape):
    """Upgrades credited to a feature one way, and their MRR per currency."""

    upgrades: int
    mrr: list[Money]


@dataclass(slots=True, eq=False)
class FeatureEffect(Shape):
    """The effect of adopting a feature on converting to a paid plan (see the model)."""

    status: str
    """``ok``, or ``insufficient_data`` (fewer than the minimum conversions)"""
    hazard_ratio: float | None
    """Adjusted for the other features, tenure and engagement"""
    ci_low: float | None
    ci_high: float | None
    naive_lift: float | None
    """Adopters' daily conversion rate ÷ non-adopters' (unadjusted)"""
    adopters: int
    """Users at risk who had adopted the feature on one of their at-risk days"""
    non_adopters: int
    adopter_conversions: int
    non_adopter_conversions: int
    baseline_daily_hazard: float | None
    """Non-adopters' daily conversion hazard: -ln(1 - conversions ÷ at-risk days)"""
    minimum_conversions: int


@dataclass(slots=True, eq=False)
class FeatureImpact(Shape):
    """One banking feature's adoption, credited revenue and effect on upgrading."""

    feature: str
    adopters: int
    adoption_rate: float | None
    attributed: FeatureRevenue
    first_touch: FeatureRevenue
    last_touch: FeatureRevenue
    effect: FeatureEffect


@dataclass(slots=True, eq=False)
class ConversionSource(Shape):
    """Upgrades from one source credited to one feature (None: to none)."""

    source: str | None
    feature: str | None
    conversions: int
    conversion_rate: float | None
    mrr: list[Money]


@dataclass(slots=True, eq=False)
class RevenueImpact(Shape):
    """How the banking features drive subscription revenue in a period."""

    period: Period
    total_revenue: list[Money]
    """Successful payments minus refunds, per currency"""
    average_revenue_per_transaction: list[Money]
    """Successful payment amounts ÷ successful payments, per currency"""
    transactions: int
    new_customer_mrr: list[Money]
    """Mean MRR of a paid conversion (``subscribed``) in the period, per currency (ARPA of
    new customers)"""
    active_users: int
    attribution_window_days: float
    model_users: int
    """Users in the upgrade model's risk set"""
    features: list[FeatureImpact]
    conversion_sources: list[ConversionSource]


@dataclass(frozen=True, slots=True)
class UpgradeModel:
    """The fitted effects with the risk set's size and the per-feature adopters."""

    window: TimeWindow
    users: int
    adopters: dict[str, int]
    effects: dict[str, Effect]
    cells: int


def _effect(effect: Effect, adopters: int, users: int) -> FeatureEffect:
    ok = effect.sufficient and effect.hazard_ratio is not None
    return FeatureEffect(
        status="ok" if ok else "insufficient_data",
        hazard_ratio=effect.hazard_ratio if ok else None,
        ci_low=effect.ci_low if ok else None,
        ci_high=effect.ci_high if ok else None,
        naive_lift=effect.naive_lift,
        adopters=adopters,
        non_adopters=users - adopters,
        adopter_conversions=effect.adopter_conversions,
        non_adopter_conversions=effect.non_adopter_conversions,
        baseline_daily_hazard=effect.baseline_daily_hazard,
        minimum_conversions=MIN_ADOPTER_CONVERSIONS,
    )


def _money(totals: dict[str, int]) -> list[Money]:
    return [Money(currency, amount) for currency, amount in sorted(totals.items())]


def _rounded_ratio(numerator: int, denominator: int) -> int:
    return int((Decimal(numerator) / denominator).quantize(Decimal(1), rounding=ROUND_HALF_UP))


class RevenueImpactAnalysis:
    """Computes :class:`RevenueImpact` with statements of the metric layer."""

    def __init__(self, metrics: MetricService) -> None:
        self._metrics = metrics

    def upgrade_model(
        self, period: str | TimeWindow = "90d", *, now: datetime | None = None
    ) -> UpgradeModel:
        """Fit the upgrade model over the users who linked in ``period``."""
        window = parse_time_period(period, now)
        if window.end - window.start > timedelta(days=MAX_MODEL_DAYS):
            raise QueryError(f"time_period: the upgrade model covers at most {MAX_MODEL_DAYS} days")
        s, e = window.start, window.end
        risk = (s, e, s, s, e, s, e, s, e, e, s, e)
        cells = to_records(
            self._metrics.run_statement(
                Statement(model_cells, (*risk, s, e), _MODEL_TABLES, (FEATURES,))
            )
        )
        [users] = to_records(
            self._metrics.run_statement(Statement(model_users, risk, _MODEL_TABLES, (FEATURES,)))
        )
        effects = fit_effects(Cells.from_rows(cells, len(FEATURES)))
        return UpgradeModel(
            window=window,
            users=int(users["users"]),
            adopters={f: int(users[f"adopters{i}"] or 0) for i, f in enumerate(FEATURES)},
            effects=dict(zip(FEATURES, effects, strict=True)),
            cells=len(cells),
        )

    def analyze(
        self,
        time_period: str | TimeWindow = "90d",
        feature: BankingFeature | str | None = None,
        *,
        now: datetime | None = None,
        attribution_window: timedelta = DEFAULT_ATTRIBUTION_WINDOW,
    ) -> RevenueImpact:
        """The revenue impact of the banking features in ``time_period`` (see the module);
        ``feature`` keeps that feature's figures only."""
        window = parse_time_period(time_period, now)
        chosen = FEATURES if feature is None else (BankingFeature(feature).value,)
        if attribution_window <= timedelta(0):
            raise QueryError("attribution_window: must be positive")
        s, e = window.start, window.end
        money = to_records(
            self._metrics.run_statement(Statement(payments, (s, e), (SUBSCRIPTIONS,)))
        )
        users = {
            row["feature"]: int(row["users"])
            for row in to_records(
                self._metrics.run_statement(Statement(adoption_counts, (s, e, s, e), (BEHAVIOR,)))
            )
        }
        active = users.get(None, 0)
        lookback = attribution_window.total_seconds()
        upgrades = to_records(
            self._metrics.run_statement(
                Statement(
                    attributed_upgrades,
                    (s, e, lookback, s - attribution_window, e),
                    (SUBSCRIPTIONS, BEHAVIOR),
                )
            )
        )
        model = self.upgrade_model(window)
        credit: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        sources: dict[tuple[str | None, str | None], dict[str, list[int]]] = defaultdict(
            lambda: defaultdict(list)
        )
        subscribed: dict[str, list[int]] = defaultdict(list)
        for row in upgrades:
            mrr = monthly_mrr(
                row["unit_amount"],
                row["quantity"],
                row["interval"],
                row["interval_count"],
                row["discount_percent"],
                row["discount_amount"],
            )
            for how in ("attributed_feature", "first_touch", "last_touch"):
                if row[how] is not None:
                    credit[(how, row[how])][row["currency"]].append(mrr)
            sources[(row["attribution_source"], row["attributed_feature"])][row["currency"]].append(
                mrr
            )
            if row["kind"] == "subscribed":
                subscribed[row["currency"]].append(mrr)

        def revenue(how: str, name: str) -> FeatureRevenue:
            by_currency = credit.get((how, name), {})
            return FeatureRevenue(
                upgrades=sum(len(v) for v in by_currency.values()),
                mrr=_money({c: sum(v) for c, v in by_currency.items()}),
            )

        features = [
            FeatureImpact(
                feature=name,
                adopters=users.get(name, 0),
                adoption_rate=users.get(name, 0) / active if active else None,
                attributed=revenue("attributed_feature", name),
                first_touch=revenue("first_touch", name),
                last_touch=revenue("last_touch", name),
                effect=_effect(model.effects[name], model.adopters[name], model.users),
            )
            for name in chosen
        ]
        conversion_sources = []
        for (source, credited), by_currency in sorted(
            sources.items(), key=lambda item: (item[0][0] or "", item[0][1] or "")
        ):
            if credited is not None and credited not in chosen:
                continue
            count = sum(len(v) for v in by_currency.values())
            base = users.get(credited, 0) if credited is not None else active
            conversion_sources.append(
                ConversionSource(
                    source=source,
                    feature=credited,
                    conversions=count,
                    conversion_rate=count / base if base else None,
                    mrr=_money({c: sum(v) for c, v in by_currency.items()}),
                )
            )
        transactions = sum(int(r["payments"]) for r in money)
        return RevenueImpact(
            period=Period.of(window),
            total_revenue=_money(
                {r["currency"]: int(r["paid"]) - int(r["refunded"]) for r in money}
            ),
            average_revenue_per_transaction=_money(
                {
                    r["currency"]: _rounded_ratio(int(r["paid"]), int(r["payments"]))
                    for r in money
                    if int(r["payments"])
                }
            ),
            transactions=transactions,
            new_customer_mrr=_money(
                {c: _rounded_ratio(sum(v), len(v)) for c, v in subscribed.items()}
            ),
            active_users=active,
            attribution_window_days=attribution_window / timedelta(days=1),
            model_users=model.users,
            features=features,
            conversion_sources=conversion_sources,
        )

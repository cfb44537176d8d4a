"""The revenue metrics' definitions: name, unit, formula and the source of each.

They are data of the metric layer, listed in its catalogue as metrics provided by
the subscription ledger (:data:`LEDGER`): the ledger and the figures over it are
computed above this layer (``analytics/revenue``), which registers itself as
their provider with the :class:`~banking_analytics.metrics.MetricService`. So
``POST /metrics/query``, and anything built on metric queries (alert rules),
answer MRR or churn by name like any other metric.
"""

from __future__ import annotations

from dataclasses import dataclass

from banking_analytics.metrics._model import Unit
from banking_analytics.vocabulary import RevenueMetric

__all__ = ["LEDGER", "REVENUE_METRICS", "SPEC_REVENUE_METRICS", "RevenueMetricDefinition"]

#: The provider of the revenue metrics: the subscription ledger.
LEDGER = "subscription_ledger"


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

"""Subscription revenue: MRR and its movements, revenue metrics, cohorts, exchange rates.

Revenue is sensitive: analysts and admins only, and every read is audited.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from banking_analytics.analytics.revenue import (
    CohortTable,
    Movement,
    MrrSeries,
    RevenueMetricsResult,
)
from banking_analytics.api._audit import audit_revenue_read, record_audit
from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api._problems import ProblemError
from banking_analytics.api._types import QueryBool
from banking_analytics.api.deps import Admin, Admitted, Analytics, ReadAnalytics
from banking_analytics.api.routes._params import (
    Period90d,
    Period365d,
    RevenuePolicyOf,
    Timezone,
    offset_query,
)
from banking_analytics.ingest import RatesError
from banking_analytics.metrics import Bucket

__all__ = ["router"]

#: The most movements one answer holds (a large store has millions in a quarter).
MAX_MOVEMENTS = 10_000

router = APIRouter(prefix="/revenue", tags=["revenue"], route_class=PolicedRoute)

RevenueBucket = Annotated[
    Bucket,
    Query(description="day, week or month (calendar months in the timezone)"),
]


@router.get("/mrr", response_model=MrrSeries)
def mrr(
    request: Request,
    analytics: Analytics,
    principal: ReadAnalytics,
    _admitted: Admitted,
    period: Period365d,
    policy: RevenuePolicyOf,
    bucket: RevenueBucket = Bucket.MONTH,
    timezone: Timezone = "UTC",
) -> MrrSeries:
    """MRR at the start and end of each period, with its movements (new, expansion,
    contraction, churn, reactivation) and customer counts; money in minor units of
    ``currency``. ``mrr_start`` + the movements = ``mrr_end`` in every period."""
    series = analytics.revenue.mrr(period, bucket=bucket, timezone=timezone, policy=policy)
    audit_revenue_read(
        request, principal, "read_mrr", bucket=bucket.value, periods=len(series.points)
    )
    return series


@router.get("/movements", response_model=list[Movement])
def movements(
    request: Request,
    analytics: Analytics,
    principal: ReadAnalytics,
    _admitted: Admitted,
    period: Period90d,
    policy: RevenuePolicyOf,
    limit: Annotated[
        int, Query(ge=1, le=MAX_MOVEMENTS, description="At most this many movements")
    ] = 1_000,
    offset: Annotated[int, offset_query("Movements to skip first")] = 0,
) -> list[Movement]:
    """A page of the changes of customers' MRR in the period, classified, by customer and
    time (customer-level data: audited with the number of customers it names)."""
    found = analytics.revenue.movements(period, policy=policy)[offset : offset + limit]
    audit_revenue_read(
        request,
        principal,
        "read_mrr_movements",
        movements=len(found),
        users=len({m.customer for m in found}),
    )
    return found


@router.get("/metrics", response_model=RevenueMetricsResult)
def revenue_metrics(
    request: Request,
    analytics: Analytics,
    principal: ReadAnalytics,
    _admitted: Admitted,
    metric: Annotated[
        list[str],
        Query(
            min_length=1,
            max_length=30,
            description="Revenue metric names (ours or the spec's RevenueMetric values); repeat",
        ),
    ],
    period: Period90d,
    policy: RevenuePolicyOf,
    bucket: RevenueBucket = Bucket.MONTH,
    timezone: Timezone = "UTC",
    by_feature: Annotated[QueryBool, Query(description="Cut by banking feature")] = False,
    trial_days: Annotated[
        int | None, Query(ge=1, le=365, description="trial_to_paid: paid within N days")
    ] = None,
) -> RevenueMetricsResult:
    """Any revenue metric by name, per period, and per banking feature where it can be."""
    result = analytics.revenue.metrics(
        metric,
        period,
        bucket=bucket,
        timezone=timezone,
        by_feature=by_feature,
        trial_days=trial_days,
        policy=policy,
    )
    audit_revenue_read(request, principal, "read_revenue_metrics", metrics=result.metrics)
    return result


@router.get("/cohorts", response_model=CohortTable)
def cohorts(
    request: Request,
    analytics: Analytics,
    principal: ReadAnalytics,
    _admitted: Admitted,
    period: Period365d,
    policy: RevenuePolicyOf,
    timezone: Timezone = "UTC",
) -> CohortTable:
    """Customer, net MRR and gross MRR retention by first-paid month."""
    table = analytics.revenue.cohorts(period, timezone=timezone, policy=policy)
    audit_revenue_read(request, principal, "read_revenue_cohorts", cohorts=len(table.cohorts))
    return table


class RateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")
    valid_from: date
    rate: Decimal = Field(gt=0, description="One unit of currency in the reporting currency")


class RatesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rates: list[RateIn] = Field(min_length=1, max_length=10_000)


class RatesOut(BaseModel):
    added: int
    quote: str


@router.post("/exchange-rates", response_model=RatesOut)
def load_exchange_rates(
    body: RatesIn, request: Request, analytics: Analytics, principal: Admin
) -> RatesOut:
    """Load exchange rates to the reporting currency (admins): exact decimals, at most 9
    places; a rate already loaded for a currency and date cannot change."""
    quote = analytics.limits.reporting_currency or "USD"
    rows = [
        {"currency": r.currency, "valid_from": r.valid_from.isoformat(), "rate": str(r.rate)}
        for r in body.rates
    ]
    try:
        added = analytics.load_exchange_rates(rows, quote=quote)
    except RatesError as exc:
        raise ProblemError(422, str(exc)) from None
    record_audit(
        request,
        principal,
        "load_exchange_rates",
        "ok",
        object_type="exchange_rates",
        details={"added": added, "sent": len(rows)},
    )
    return RatesOut(added=added, quote=quote)

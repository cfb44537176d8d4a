"""Bank-integration performance: connections, feature usage, errors, health, freshness."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from banking_analytics.analytics import ConnectionPerformance, ErrorRates, FeatureUsage
from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api._event_models import event_model
from banking_analytics.api._models import InstitutionHealthPage, SyncFreshnessOut
from banking_analytics.api._problems import ProblemError
from banking_analytics.api._types import QueryBool
from banking_analytics.api._writes import RECORDING, record_one
from banking_analytics.api.deps import Analytics, Idempotency, ReadAnalytics, WriteEvents
from banking_analytics.api.routes._params import (
    IdempotencyKey,
    Lookback,
    LookbackEnd,
    Period7d,
    Period24h,
    Timezone,
    offset_query,
)
from banking_analytics.vocabulary import BankingFeature, EventType

__all__ = ["router"]

router = APIRouter(prefix="/performance", tags=["performance"], route_class=PolicedRoute)

if TYPE_CHECKING:
    PerformanceMetricIn = BaseModel
else:
    PerformanceMetricIn = event_model(EventType.PERFORMANCE_METRIC, "PerformanceMetricIn")


@router.get("/connection", response_model=ConnectionPerformance)
def connection_performance(
    analytics: Analytics,
    _: ReadAnalytics,
    period: Period24h,
    timezone: Timezone = "UTC",
) -> ConnectionPerformance:
    """Success rate (Plaid's bank-health definition) with its breakdown, latency
    percentiles, link conversion, cuts by aggregator, institution and feature, and a
    time series."""
    return analytics.analyze_connection_performance(period, timezone=timezone)


@router.get("/feature-usage", response_model=FeatureUsage)
def feature_usage(
    analytics: Analytics,
    _: ReadAnalytics,
    period: Period7d,
    feature: BankingFeature | None = None,
    timezone: Timezone = "UTC",
) -> FeatureUsage:
    """Per feature: usage count, unique users, sessions, success rate, mean duration."""
    return analytics.analyze_feature_usage(period, feature, timezone=timezone)


@router.get("/errors", response_model=ErrorRates)
def error_rates(
    analytics: Analytics,
    _: ReadAnalytics,
    period: Period24h,
    timezone: Timezone = "UTC",
) -> ErrorRates:
    """Failures of connection attempts and sync runs by error category."""
    return analytics.analyze_error_rates(period, timezone=timezone)


#: Products per page of institution health: without history, and with it (each product
#: then carries a state per 15 minutes: 672 a week, ~40 KB of JSON).
MAX_PRODUCTS = 1_000
MAX_PRODUCTS_WITH_HISTORY = 50
DEFAULT_PRODUCTS_WITH_HISTORY = 20


@router.get("/institution-health", response_model=InstitutionHealthPage)
def institution_health(
    analytics: Analytics,
    _: ReadAnalytics,
    end: LookbackEnd,
    lookback: Lookback = "7d",
    include_history: Annotated[
        QueryBool, Query(description="Add each 15-minute state and the changes")
    ] = False,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_PRODUCTS,
            description=f"Products per page (worst first): default and most {MAX_PRODUCTS:,}; "
            f"with include_history default {DEFAULT_PRODUCTS_WITH_HISTORY}, "
            f"most {MAX_PRODUCTS_WITH_HISTORY}",
        ),
    ] = None,
    offset: Annotated[int, offset_query("Products to skip: the previous page's next_offset")] = 0,
) -> dict[str, Any]:
    """HEALTHY / DEGRADED / DOWN / UNKNOWN per institution, aggregator and product, as judged
    at ``end`` (default: now), a page of products at a time (pass the first page's
    ``time_period.end`` as ``end`` so the pages are judged at the same instant)."""
    if include_history and limit is not None and limit > MAX_PRODUCTS_WITH_HISTORY:
        raise ProblemError(
            422,
            f"limit (query): at most {MAX_PRODUCTS_WITH_HISTORY} products per page with "
            "include_history=true; page through the rest with offset",
        )
    if limit is None:
        limit = DEFAULT_PRODUCTS_WITH_HISTORY if include_history else MAX_PRODUCTS
    health = analytics.institution_health(lookback, now=end, include_history=include_history)
    products = health["products"]
    following = offset + limit
    return {
        **health,
        "products": products[offset:following],
        "total_products": len(products),
        "next_offset": following if following < len(products) else None,
    }


@router.get("/sync-freshness", response_model=SyncFreshnessOut)
def sync_freshness(
    analytics: Analytics, _: ReadAnalytics, end: LookbackEnd, lookback: Lookback = "7d"
) -> dict[str, Any]:
    """NORMAL / DELAYED / STOPPED refresh state, at ``end`` (default: now), of the connections
    synced in the lookback before it."""
    return analytics.sync_freshness(lookback, now=end)


@router.post("/metric", **RECORDING)
async def record_performance_metric(
    request: Request,
    body: PerformanceMetricIn,
    principal: WriteEvents,
    analytics: Analytics,
    idempotency: Idempotency,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Record one performance measurement; answers once it is durably stored."""
    event = {
        "event_type": EventType.PERFORMANCE_METRIC.value,
        **body.model_dump(mode="json", exclude_none=True),
    }
    return await record_one(request, principal, analytics, idempotency, idempotency_key, event)

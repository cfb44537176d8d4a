"""Dashboards: everything a screen shows, in one answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from banking_analytics.analytics.behavior import BehaviorDashboard
from banking_analytics.analytics.revenue import RevenueDashboard
from banking_analytics.api._audit import record_audit
from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api._models import PerformanceDashboard
from banking_analytics.api.deps import Admitted, Analytics, ReadAnalytics
from banking_analytics.api.routes._params import (
    Lookback,
    Period24h,
    Period30d,
    Period365d,
    RevenuePolicyOf,
    Timezone,
)
from banking_analytics.api.routes.insights import InsightsOf
from banking_analytics.monitor import OptimizationReport

__all__ = ["router"]

router = APIRouter(prefix="/dashboard", tags=["dashboards"], route_class=PolicedRoute)


@router.get("/performance", response_model=PerformanceDashboard)
def performance_dashboard(
    analytics: Analytics,
    _: ReadAnalytics,
    _admitted: Admitted,
    period: Period24h,
    timezone: Timezone = "UTC",
    health_lookback: Lookback = "7d",
) -> dict[str, Any]:
    """Connection performance, an hourly series, errors by category, institution health
    and sync freshness, computed concurrently over one reading of the data."""
    return analytics.performance_dashboard(
        period, timezone=timezone, health_lookback=health_lookback
    )


@router.get("/revenue", response_model=RevenueDashboard)
def revenue_dashboard(
    request: Request,
    analytics: Analytics,
    principal: ReadAnalytics,
    _admitted: Admitted,
    period: Period365d,
    policy: RevenuePolicyOf,
    timezone: Timezone = "UTC",
) -> RevenueDashboard:
    """The monthly MRR series with movements, the headline revenue metrics per month, the
    metrics per banking feature, and the cohorts, computed concurrently."""
    answer = analytics.revenue.dashboard(period, timezone=timezone, policy=policy)
    record_audit(request, principal, "read_revenue_dashboard", "ok", object_type="revenue")
    return answer


@router.get("/behavior", response_model=BehaviorDashboard)
def behavior_dashboard(
    analytics: Analytics,
    _: ReadAnalytics,
    _admitted: Admitted,
    period: Period30d,
    timezone: Timezone = "UTC",
) -> BehaviorDashboard:
    """Active users, sessions per platform, power users, stickiness, lifecycle and the
    features that fail more on some device or platform, computed concurrently."""
    return analytics.behavior.dashboard(period, timezone=timezone)


@router.get("/optimization", response_model=OptimizationReport)
def optimization_dashboard(
    _: ReadAnalytics, _admitted: Admitted, report: InsightsOf
) -> OptimizationReport:
    """Insights and the recommendations they lead to (routing links, incidents, clients,
    latency, sync pipelines), each with its expected effect and evidence, in one answer."""
    return report

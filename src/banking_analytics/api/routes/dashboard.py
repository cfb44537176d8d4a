"""Dashboards: everything a screen shows, in one answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api._models import PerformanceDashboard
from banking_analytics.api.deps import Admitted, Analytics, ReadAnalytics
from banking_analytics.api.routes._params import Lookback, Period24h, Timezone

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

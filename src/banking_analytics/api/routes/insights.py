"""Automated insights: what changed in the current window against the baseline, and why."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api.deps import Admitted, Analytics, ReadAnalytics
from banking_analytics.api.routes._params import LookbackEnd
from banking_analytics.monitor import MAX_INSIGHTS, InsightList, OptimizationReport

__all__ = ["InsightsOf", "router"]

router = APIRouter(prefix="/insights", tags=["monitoring"], route_class=PolicedRoute)


def read_insights(
    analytics: Analytics,
    end: LookbackEnd,
    window: Annotated[
        str,
        Query(max_length=32, description="The current window, <n>h or <n>d, ending at end"),
    ] = "6h",
    baseline: Annotated[
        str,
        Query(max_length=32, description="The baseline just before the current window"),
    ] = "7d",
    limit: Annotated[
        int, Query(ge=1, le=MAX_INSIGHTS, description="At most this many of each")
    ] = 20,
) -> OptimizationReport:
    """The report both routes answer from (``end`` defaults to now)."""
    now: datetime | None = end
    return analytics.monitor.insights(now=now, window=window, baseline=baseline, limit=limit)


InsightsOf = Annotated[OptimizationReport, Depends(read_insights)]


@router.get("", response_model=InsightList)
def insights(_: ReadAnalytics, _admitted: Admitted, report: InsightsOf) -> InsightList:
    """Ranked plain-English insights, each with its evidence, score and the queries that
    reproduce it (docs/insights.md)."""
    return report.listing()

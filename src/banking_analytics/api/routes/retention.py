"""Retention: POST a retention definition, get its cohort grid (analysts and admins)."""

from __future__ import annotations

from fastapi import APIRouter

from banking_analytics.analytics.behavior import RetentionQuery, RetentionResult
from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api.deps import Admitted, Analytics, ReadAnalytics

__all__ = ["router"]

router = APIRouter(prefix="/behavior/retention", tags=["behavior"], route_class=PolicedRoute)


@router.post("", response_model=RetentionResult)
def retention(
    query: RetentionQuery, analytics: Analytics, _principal: ReadAnalytics, _admitted: Admitted
) -> RetentionResult:
    """Cohorts by period of the start event (first-time or recurring), the users returning
    in each later period ("on" or "on or after"), the weighted mean row, periods still in
    progress marked."""
    return analytics.behavior.retention(query)

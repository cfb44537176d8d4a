"""Paths: POST a paths query, get the top transitions within sessions (analysts, admins)."""

from __future__ import annotations

from fastapi import APIRouter

from banking_analytics.analytics.behavior import PathsQuery, PathsResult
from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api.deps import Admitted, Analytics, ReadAnalytics

__all__ = ["router"]

router = APIRouter(prefix="/behavior/paths", tags=["behavior"], route_class=PolicedRoute)


@router.post("", response_model=PathsResult)
def paths(
    query: PathsQuery, analytics: Analytics, _principal: ReadAnalytics, _admitted: Admitted
) -> PathsResult:
    """The most frequent transitions between features (or actions) within sessions, from
    a start point or to an end point, counted as transitions (not users)."""
    return analytics.behavior.paths(query)

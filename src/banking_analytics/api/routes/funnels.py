"""Funnels: POST a funnel's definition, get its steps, conversion and time to convert.

Analysts and admins only. The drop-off list names users: each page read is audited
with how many users it named.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from banking_analytics.analytics.behavior import FunnelQuery, FunnelResult, FunnelUsers
from banking_analytics.analytics.behavior._funnel import MAX_USERS_PAGE
from banking_analytics.api._audit import record_audit
from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api.deps import Admitted, Analytics, ReadAnalytics
from banking_analytics.api.routes._params import PageOffset

__all__ = ["router"]

router = APIRouter(prefix="/behavior/funnels", tags=["behavior"], route_class=PolicedRoute)


@router.post("", response_model=FunnelResult)
def funnel(
    query: FunnelQuery, analytics: Analytics, _principal: ReadAnalytics, _admitted: Admitted
) -> FunnelResult:
    """Users reaching each step (ordered, strict or unordered), conversion from the first
    and the previous step, time to convert, by breakdown value (first touch)."""
    return analytics.behavior.funnel(query)


@router.post("/users", response_model=FunnelUsers)
def funnel_users(
    query: FunnelQuery,
    request: Request,
    analytics: Analytics,
    principal: ReadAnalytics,
    _admitted: Admitted,
    step: Annotated[int, Query(ge=1, le=10, description="The step their path ends at")],
    limit: Annotated[int, Query(ge=1, le=MAX_USERS_PAGE)] = 100,
    offset: PageOffset = 0,
) -> FunnelUsers:
    """A page of the users who reached ``step`` and went no further (at the last step:
    the users who converted), by user id."""
    page = analytics.behavior.funnel_users(query, step, limit=limit, offset=offset)
    record_audit(
        request,
        principal,
        "read_funnel_users",
        "ok",
        object_type="user",
        details={"step": step, "users": len(page.users), "offset": offset},
    )
    return page

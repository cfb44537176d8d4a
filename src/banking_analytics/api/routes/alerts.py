"""Alerts: the current state of every rule's instances, and their history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api._problems import ProblemError
from banking_analytics.api._types import QueryBool, QueryDateTime
from banking_analytics.api.deps import Analytics, ReadAnalytics
from banking_analytics.api.routes._params import PageLimit, page_limit
from banking_analytics.monitor import AlertState, AlertView, HistoryView

__all__ = ["router"]

router = APIRouter(prefix="/alerts", tags=["monitoring"], route_class=PolicedRoute)

RuleFilter = Annotated[
    str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="Only this rule's")
]
#: Every instance at once by default (as many as a page may hold, unless the server says less).
AlertsLimit = Annotated[int, Depends(page_limit(1000))]


@router.get("", response_model=list[AlertView])
def current_alerts(
    analytics: Analytics,
    _: ReadAnalytics,
    limit: AlertsLimit,
    rule: RuleFilter = None,
    state: Annotated[
        list[AlertState] | None,
        Query(description="Only instances in these states (default: all but inactive)"),
    ] = None,
) -> list[AlertView]:
    """Alert instances as last evaluated (pending, firing, recovering, nodata, error), by
    rule and labels: the first ``limit``."""
    return analytics.monitor.alerts(rule=rule, states=state)[:limit]


@router.get("/history", response_model=list[HistoryView])
def alert_history(
    analytics: Analytics,
    _: ReadAnalytics,
    limit: PageLimit,
    rule: RuleFilter = None,
    since: Annotated[
        QueryDateTime | None, Query(description="From this moment (inclusive)")
    ] = None,
    until: Annotated[QueryDateTime | None, Query(description="Before this moment")] = None,
    transitions_only: Annotated[
        QueryBool, Query(description="Only evaluations that changed a state or severity")
    ] = True,
) -> list[HistoryView]:
    """Evaluations of alert instances, newest first: what each observed, and the state before
    and after (by default only those that changed it)."""
    if since is not None and until is not None and since >= until:
        raise ProblemError(422, "since (query): must be before until")
    return analytics.monitor.history(
        rule=rule, since=since, until=until, transitions_only=transitions_only, limit=limit
    )

"""Alerts: the current state of every rule's instances, and their history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api._problems import ProblemError
from banking_analytics.api._settings import ApiSettings
from banking_analytics.api._types import QueryBool, QueryDateTime
from banking_analytics.api.deps import Analytics, ReadAnalytics, Settings
from banking_analytics.monitor import AlertState, AlertView, HistoryView

__all__ = ["router"]

router = APIRouter(prefix="/alerts", tags=["monitoring"], route_class=PolicedRoute)

RuleFilter = Annotated[
    str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="Only this rule's")
]


Limit = Annotated[int, Query(ge=1, description="At most this many")]


def _checked(limit: int, settings: ApiSettings) -> int:
    if limit > settings.max_page_size:
        raise ProblemError(422, f"limit (query): at most {settings.max_page_size}")
    return limit


@router.get("", response_model=list[AlertView])
def current_alerts(
    analytics: Analytics,
    _: ReadAnalytics,
    settings: Settings,
    rule: RuleFilter = None,
    state: Annotated[
        list[AlertState] | None,
        Query(description="Only instances in these states (default: all but inactive)"),
    ] = None,
    limit: Limit = 1000,
) -> list[AlertView]:
    """Alert instances as last evaluated (pending, firing, recovering, nodata, error), by
    rule and labels: the first ``limit``."""
    return analytics.monitor.alerts(rule=rule, states=state)[: _checked(limit, settings)]


@router.get("/history", response_model=list[HistoryView])
def alert_history(
    analytics: Analytics,
    _: ReadAnalytics,
    settings: Settings,
    rule: RuleFilter = None,
    since: Annotated[
        QueryDateTime | None, Query(description="From this moment (inclusive)")
    ] = None,
    until: Annotated[QueryDateTime | None, Query(description="Before this moment")] = None,
    transitions_only: Annotated[
        QueryBool, Query(description="Only evaluations that changed a state or severity")
    ] = True,
    limit: Limit = 100,
) -> list[HistoryView]:
    """Evaluations of alert instances, newest first: what each observed, and the state before
    and after (by default only those that changed it)."""
    _checked(limit, settings)
    if since is not None and until is not None and since >= until:
        raise ProblemError(422, "since (query): must be before until")
    return analytics.monitor.history(
        rule=rule, since=since, until=until, transitions_only=transitions_only, limit=limit
    )

"""Service level objectives: admins write them (each change a new version, audited), analysts
read them with their burn rates and the error budget left. Their burn-rate alerts are alerts
like any rule's (``GET .../alerts?rule=NAME``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api._types import QueryDateTime
from banking_analytics.api.deps import Admin, Analytics, ReadAnalytics
from banking_analytics.api.routes._params import PageLimit, PageOffset, page_limit
from banking_analytics.api.routes._versioned import (
    delete_version,
    not_found,
    put_version,
    versions_of,
)
from banking_analytics.monitor import (
    RuleNotFoundError,
    RuleView,
    Slo,
    SloStatus,
)

__all__ = ["router"]

router = APIRouter(prefix="/slos", tags=["monitoring"], route_class=PolicedRoute)

SloName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="The SLO's name")]
LabelSetsLimit = Annotated[int, Depends(page_limit(100, "At most this many label sets"))]
_EXAMPLE = {
    "sli": "connection_success_rate",
    "objective": 0.995,
    "period": "30d",
    "by": ["institution"],
    "min_events": 50,
    "annotations": {"summary": "{{ $labels.institution }} burns its budget {{ $value }}x"},
}


@router.get("", response_model=list[RuleView])
def list_slos(
    analytics: Analytics, _: ReadAnalytics, limit: PageLimit, offset: PageOffset = 0
) -> list[RuleView]:
    """Current SLOs as written, by name (``GET .../slos/{name}`` for its standing): from
    ``offset``, the first ``limit``."""
    return [RuleView.of(stored) for stored in analytics.monitor.slos(limit=limit, offset=offset)]


@router.get("/{name}", response_model=SloStatus)
def get_slo(
    name: SloName,
    analytics: Analytics,
    _: ReadAnalytics,
    limit: LabelSetsLimit,
    at: Annotated[
        QueryDateTime | None, Query(description="The moment to stand at (default: now)")
    ] = None,
) -> SloStatus:
    """An SLO's current version and its standing at ``at``: per label set, the burn rate
    over each window, which window pairs burn, the error budget consumed and remaining over
    the period, and its burn-rate alert's state."""
    try:
        return analytics.monitor.slo(name, at or datetime.now(UTC), limit=limit)
    except RuleNotFoundError:
        raise not_found(name, Slo) from None


@router.get("/{name}/versions", response_model=list[RuleView])
def slo_versions(name: SloName, analytics: Analytics, _: ReadAnalytics) -> list[RuleView]:
    """Every version of an SLO, newest first (a deletion is a version too)."""
    return versions_of(Slo, name, analytics)


@router.put("/{name}", response_model=RuleView)
def put_slo(
    name: SloName,
    request: Request,
    analytics: Analytics,
    principal: Admin,
    body: Annotated[dict[str, Any], Body(examples=[_EXAMPLE])],
) -> RuleView:
    """Create or change an SLO (as written in a rule file's ``slos:``; ``name`` may be left
    out). Each change is a new version; one other than to annotations resets its alerts.
    Applying an SLO as it already is changes nothing."""
    return put_version(Slo, name, body, request, analytics, principal)


@router.delete("/{name}", response_model=RuleView)
def delete_slo(name: SloName, request: Request, analytics: Analytics, principal: Admin) -> RuleView:
    """Delete an SLO: a last version saying so; its alert instances are forgotten."""
    return delete_version(Slo, name, request, analytics, principal)

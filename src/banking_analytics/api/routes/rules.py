"""Alert rules: admins write them (each change a new version, audited), analysts read them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request

from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api.deps import Admin, Analytics, ReadAnalytics
from banking_analytics.api.routes._params import PageLimit, PageOffset
from banking_analytics.api.routes._versioned import (
    delete_version,
    not_found,
    put_version,
    versions_of,
)
from banking_analytics.monitor import (
    Rule,
    RuleNotFoundError,
    RuleView,
)

__all__ = ["router"]

router = APIRouter(prefix="/rules", tags=["monitoring"], route_class=PolicedRoute)

RuleName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="The rule's name")]
_EXAMPLE = {
    "metric": "connection_success_rate",
    "window": "30m",
    "by": ["institution"],
    "condition": "below",
    "warning": 0.9,
    "critical": 0.5,
    "for": "5m",
    "keep_firing_for": "10m",
    "annotations": {"summary": "{{ $labels.institution }}: {{ $value | percent }}"},
}


@router.get("", response_model=list[RuleView])
def list_rules(
    analytics: Analytics, _: ReadAnalytics, limit: PageLimit, offset: PageOffset = 0
) -> list[RuleView]:
    """Current rules by name: from ``offset``, the first ``limit``."""
    return [RuleView.of(stored) for stored in analytics.monitor.rules(limit=limit, offset=offset)]


@router.get("/{name}", response_model=RuleView)
def get_rule(name: RuleName, analytics: Analytics, _: ReadAnalytics) -> RuleView:
    """A rule's current version."""
    try:
        return RuleView.of(analytics.monitor.current(name, Rule))
    except RuleNotFoundError:
        raise not_found(name, Rule) from None


@router.get("/{name}/versions", response_model=list[RuleView])
def rule_versions(name: RuleName, analytics: Analytics, _: ReadAnalytics) -> list[RuleView]:
    """Every version of a rule, newest first (a deletion is a version too)."""
    return versions_of(Rule, name, analytics)


@router.put("/{name}", response_model=RuleView)
def put_rule(
    name: RuleName,
    request: Request,
    analytics: Analytics,
    principal: Admin,
    body: Annotated[dict[str, Any], Body(examples=[_EXAMPLE])],
) -> RuleView:
    """Create or change a rule (as written in a rule file; ``name`` may be left out).

    Each change is a new version; one other than to annotations resets the
    rule's alert instances. Applying a rule as it already is changes nothing.
    """
    return put_version(Rule, name, body, request, analytics, principal)


@router.delete("/{name}", response_model=RuleView)
def delete_rule(
    name: RuleName, request: Request, analytics: Analytics, principal: Admin
) -> RuleView:
    """Delete a rule: a last version saying so; its alert instances are forgotten."""
    return delete_version(Rule, name, request, analytics, principal)

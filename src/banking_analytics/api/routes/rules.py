"""Alert rules: admins write them (each change a new version, audited), analysts read them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request

from banking_analytics.api._audit import record_audit
from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api._problems import FieldProblem, ProblemError
from banking_analytics.api.deps import Admin, Analytics, ReadAnalytics
from banking_analytics.monitor import (
    NameTakenError,
    Rule,
    RuleError,
    RuleNotFoundError,
    RuleView,
)
from banking_analytics.monitor._rules import _path_text

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


def _not_found(name: str) -> ProblemError:
    return ProblemError(404, f"name (path): no alert rule named {name!r}")


@router.get("", response_model=list[RuleView])
def list_rules(analytics: Analytics, _: ReadAnalytics) -> list[RuleView]:
    """Every current rule, by name."""
    return [RuleView.of(stored) for stored in analytics.monitor.rules()]


@router.get("/{name}", response_model=RuleView)
def get_rule(name: RuleName, analytics: Analytics, _: ReadAnalytics) -> RuleView:
    """A rule's current version."""
    try:
        return RuleView.of(analytics.monitor.current(name, Rule))
    except RuleNotFoundError:
        raise _not_found(name) from None


@router.get("/{name}/versions", response_model=list[RuleView])
def rule_versions(name: RuleName, analytics: Analytics, _: ReadAnalytics) -> list[RuleView]:
    """Every version of a rule, newest first (a deletion is a version too)."""
    versions = analytics.monitor.versions(name, Rule)
    if not versions:
        raise _not_found(name)
    return [RuleView.of(stored) for stored in versions]


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
    if body.get("name", name) != name:
        raise ProblemError(422, f"name (body): {body['name']!r} differs from the path's {name!r}")
    try:
        rule = Rule.from_dict({**body, "name": name})
    except RuleError as exc:
        problems = [FieldProblem(field=_path_text(p), message=m) for p, m in exc.problems]
        raise ProblemError(422, f"the rule is not valid: {exc}", errors=problems) from None
    try:
        stored = analytics.monitor.store.put(rule, principal.actor)
    except NameTakenError as exc:
        raise ProblemError(409, f"name (path): {exc}") from None
    record_audit(
        request,
        principal,
        "put_alert_rule",
        "ok",
        object_type="alert_rule",
        object_id=name,
        details={"version": stored.version, "change": stored.change.value},
    )
    return RuleView.of(stored)


@router.delete("/{name}", response_model=RuleView)
def delete_rule(
    name: RuleName, request: Request, analytics: Analytics, principal: Admin
) -> RuleView:
    """Delete a rule: a last version saying so; its alert instances are forgotten."""
    try:
        stored = analytics.monitor.delete(name, Rule, principal.actor)
    except RuleNotFoundError:
        record_audit(
            request,
            principal,
            "delete_alert_rule",
            "not_found",
            object_type="alert_rule",
            object_id=name,
        )
        raise _not_found(name) from None
    record_audit(
        request,
        principal,
        "delete_alert_rule",
        "ok",
        object_type="alert_rule",
        object_id=name,
        details={"version": stored.version},
    )
    return RuleView.of(stored)

"""Writing alert rules and SLOs: the two kinds share one versioned namespace, so their
routes check, save, delete and audit alike."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request

from banking_analytics._facade import BankingPerformanceAnalytics
from banking_analytics.api._audit import record_audit
from banking_analytics.api._auth import Principal
from banking_analytics.api._problems import FieldProblem, ProblemError
from banking_analytics.monitor import (
    NameTakenError,
    Rule,
    RuleError,
    RuleNotFoundError,
    RuleView,
    Slo,
)
from banking_analytics.monitor._rules import _path_text

__all__ = ["checked_definition", "delete_version", "not_found", "put_version", "versions_of"]

#: What each kind is called in problems, and in the audit log (put_<it>, delete_<it>).
_NAMES: dict[type[Rule | Slo], tuple[str, str]] = {
    Rule: ("alert rule", "alert_rule"),
    Slo: ("SLO", "slo"),
}


_Kind = TypeVar("_Kind", Rule, Slo)


def not_found(name: str, kind: type[Rule | Slo]) -> ProblemError:
    return ProblemError(404, f"name (path): no {_NAMES[kind][0]} named {name!r}")


def versions_of(
    kind: type[Rule | Slo], name: str, analytics: BankingPerformanceAnalytics
) -> list[RuleView]:
    """Every version of a rule (or SLO) of this kind, newest first; 404 when there is none."""
    versions = analytics.monitor.versions(name, kind)
    if not versions:
        raise not_found(name, kind)
    return [RuleView.of(stored) for stored in versions]


def checked_definition(kind: type[_Kind], body: dict[str, Any], where: str = "") -> _Kind:
    """A rule (or SLO) from a request body; 422 naming every field at fault (``where``
    prefixes them: ``rule.`` for one inside a larger body)."""
    try:
        return kind.from_dict(body)
    except RuleError as exc:
        problems = [FieldProblem(field=where + _path_text(p), message=m) for p, m in exc.problems]
        what = _NAMES[kind][0]
        raise ProblemError(422, f"the {what} is not valid: {exc}", errors=problems) from None


def put_version(
    kind: type[_Kind],
    name: str,
    body: dict[str, Any],
    request: Request,
    analytics: BankingPerformanceAnalytics,
    principal: Principal,
) -> RuleView:
    """Check ``body`` as a rule (or SLO) named ``name`` and save it as its next version:
    422 naming each bad field, 409 when the other kind has the name; audited."""
    audited = _NAMES[kind][1]
    if body.get("name", name) != name:
        raise ProblemError(422, f"name (body): {body['name']!r} differs from the path's {name!r}")
    made = checked_definition(kind, {**body, "name": name})
    try:
        stored = analytics.monitor.store.put(made, principal.actor)
    except NameTakenError as exc:
        raise ProblemError(409, f"name (path): {exc}") from None
    record_audit(
        request,
        principal,
        f"put_{audited}",
        "ok",
        object_type=audited,
        object_id=name,
        details={"version": stored.version, "change": stored.change.value},
    )
    return RuleView.of(stored)


def delete_version(
    kind: type[Rule | Slo],
    name: str,
    request: Request,
    analytics: BankingPerformanceAnalytics,
    principal: Principal,
) -> RuleView:
    """Delete a rule (or SLO) of this kind: a last version; audited, found or not."""
    audited = _NAMES[kind][1]
    try:
        stored = analytics.monitor.delete(name, kind, principal.actor)
    except RuleNotFoundError:
        record_audit(
            request,
            principal,
            f"delete_{audited}",
            "not_found",
            object_type=audited,
            object_id=name,
        )
        raise not_found(name, kind) from None
    record_audit(
        request,
        principal,
        f"delete_{audited}",
        "ok",
        object_type=audited,
        object_id=name,
        details={"version": stored.version},
    )
    return RuleView.of(stored)

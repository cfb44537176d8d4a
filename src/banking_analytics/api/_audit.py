"""Writing to the audit log from a request: who, from where, did what to which object."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request

from banking_analytics.access import AuditLog
from banking_analytics.metrics import QueryResult

if TYPE_CHECKING:
    from banking_analytics.api._auth import Principal

__all__ = ["audit_per_user_answer", "audit_revenue_read", "record_audit"]

#: Dimensions whose values single people out: a connection (Plaid item, MX member)
#: belongs to one user, so its figures are that user's data too.
_PER_USER_DIMENSIONS = ("user", "connection")


def record_audit(
    request: Request,
    principal: Principal,
    action: str,
    outcome: str,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append who did what to which object, from where, and how it ended, to the audit log."""
    audit: AuditLog = request.app.state.audit
    audit.record(
        actor=principal.actor,
        actor_role=principal.actor_role,
        action=action,
        outcome=outcome,
        object_type=object_type,
        object_id=object_id,
        client_ip=request.client.host if request.client else None,
        details=details,
    )


def audit_revenue_read(
    request: Request, principal: Principal, action: str, **details: object
) -> None:
    """Revenue reads are audited like admin reads: who read which figures, from where."""
    record_audit(request, principal, action, "ok", object_type="revenue", details=details)


def audit_per_user_answer(
    request: Request, principal: Principal, action: str, result: QueryResult
) -> None:
    """Audit an answer by what it returns: if it is cut by user or connection, or
    filtered to some, record who asked, for which metrics, and how many users and
    connections it covered (``details.users`` / ``details.connections``: the distinct
    values in its rows when cut by them, else the values filtered on; null when the
    answer does not single them out). ``object_id`` names the one user (or
    connection) when there is exactly one. Other answers are not audited."""
    filters = dict(result.query.filters)
    covered: dict[str, set[str]] = {}
    for dimension in _PER_USER_DIMENSIONS:
        if dimension in result.query.dimensions:
            values = {row.dimensions.get(dimension) for row in result.rows}
            covered[dimension] = {v for v in values if v is not None}
        elif dimension in filters:
            covered[dimension] = set(filters[dimension])
    if not covered:
        return
    finest = "user" if "user" in covered else "connection"
    subjects = covered[finest]
    record_audit(
        request,
        principal,
        action,
        "ok",
        object_type=finest,
        object_id=next(iter(subjects)) if len(subjects) == 1 else None,
        details={
            "metrics": [m.name for m in result.metrics],
            "dimensions": list(result.query.dimensions),
            "filters": {d: sorted(filters[d]) for d in _PER_USER_DIMENSIONS if d in filters},
            "window": result.query.window.as_dict(),
            "users": len(covered["user"]) if "user" in covered else None,
            "connections": len(covered["connection"]) if "connection" in covered else None,
        },
    )

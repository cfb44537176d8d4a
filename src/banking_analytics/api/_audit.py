"""Writing to the audit log from a request: who, from where, did what to which object."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request

from banking_analytics.access import AuditLog

if TYPE_CHECKING:
    from banking_analytics.api._auth import Principal

__all__ = ["record_audit"]


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

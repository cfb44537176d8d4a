"""Administration: API keys and the audit log. Every action here is itself audited."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from banking_analytics.access import ApiKey, ChainReport, KeyNotFoundError
from banking_analytics.api._audit import record_audit
from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api._models import AuditPage, IssuedKeyOut, KeyIn, KeyOut
from banking_analytics.api._problems import ProblemError
from banking_analytics.api._types import QueryBool
from banking_analytics.api.deps import Admin, Audit, Keys
from banking_analytics.api.routes._params import page_limit

__all__ = ["router"]

router = APIRouter(prefix="/admin", tags=["administration"], route_class=PolicedRoute)

# No control characters: PostgreSQL refuses NUL in text, and no actor or action has any.
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
KeyId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9]+$")]
AuditLimit = Annotated[int, Depends(page_limit(100, "Entries per page (newest first)"))]


def _key(key: ApiKey) -> dict[str, Any]:
    return {**asdict(key), "role": key.role.value}


@router.post("/keys", status_code=201, response_model=IssuedKeyOut)
def create_key(body: KeyIn, request: Request, principal: Admin, keys: Keys) -> dict[str, Any]:
    """Issue an API key. The answer holds the key itself, shown this once only."""
    try:
        issued = keys.create(
            body.name, body.role, expires_at=body.expires_at, created_by=principal.actor
        )
    except ValueError as exc:
        raise ProblemError(422, str(exc)) from None
    record_audit(
        request,
        principal,
        "create_key",
        "ok",
        object_type="api_key",
        object_id=issued.key.key_id,
        details={"role": body.role.value, "name": body.name},
    )
    return {**_key(issued.key), "secret": issued.secret}


@router.get("/keys", response_model=list[KeyOut])
def list_keys(
    request: Request,
    principal: Admin,
    keys: Keys,
    include_revoked: Annotated[QueryBool, Query(description="List revoked keys too")] = True,
) -> list[dict[str, Any]]:
    """Every API key (never their secrets)."""
    listed = keys.list(include_revoked=include_revoked)
    record_audit(request, principal, "list_keys", "ok", details={"count": len(listed)})
    return [_key(k) for k in listed]


@router.delete("/keys/{key_id}", response_model=KeyOut)
def revoke_key(key_id: KeyId, request: Request, principal: Admin, keys: Keys) -> dict[str, Any]:
    """Revoke a key at once (other replicas stop accepting it within their key cache time)."""
    try:
        revoked = keys.revoke(key_id)
    except KeyNotFoundError:
        record_audit(
            request, principal, "revoke_key", "not_found", object_type="api_key", object_id=key_id
        )
        raise ProblemError(404, f"key_id (path): no API key {key_id!r}") from None
    record_audit(request, principal, "revoke_key", "ok", object_type="api_key", object_id=key_id)
    return _key(revoked)


@router.get("/audit", response_model=AuditPage)
def audit_entries(
    request: Request,
    principal: Admin,
    audit: Audit,
    limit: AuditLimit,
    before_seq: int | None = Query(None, ge=1, description="Entries before this one"),
    actor: str | None = Query(None, max_length=200, pattern=_PRINTABLE),
    action: str | None = Query(None, max_length=300, pattern=_PRINTABLE),
) -> dict[str, Any]:
    """The audit log, newest first, a page at a time."""
    entries = audit.entries(limit=limit, before_seq=before_seq, actor=actor, action=action)
    record_audit(request, principal, "read_audit_log", "ok", details={"count": len(entries)})
    return {
        "entries": [asdict(e) for e in entries],
        "next_before_seq": entries[-1].seq if len(entries) == limit else None,
    }


@router.get("/audit/verify", response_model=ChainReport)
def verify_audit(
    request: Request,
    principal: Admin,
    audit: Audit,
    expected_head: str | None = Query(
        None, pattern=r"^[0-9a-f]{64}$", description="A head hash exported earlier"
    ),
) -> dict[str, Any]:
    """Check the hash chain; reports the first broken link."""
    report = audit.verify(expected_head=expected_head)
    record_audit(
        request,
        principal,
        "verify_audit_log",
        "ok" if report.ok else "broken",
        details={"checked": report.checked},
    )
    return asdict(report)

"""Notification receivers: admins write them, analysts read them. A webhook receiver's
signing secret is answered once, when made (or rotated), and never again."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request

from banking_analytics.api._audit import record_audit
from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api._notify_models import ReceiverIn, ReceiverOut
from banking_analytics.api._problems import ProblemError
from banking_analytics.api.deps import Admin, Analytics, ReadAnalytics, Settings
from banking_analytics.api.routes._params import PageLimit, PageOffset
from banking_analytics.monitor import Receiver, UnsafeURLError, check_url

__all__ = ["router"]

router = APIRouter(prefix="/receivers", tags=["notifications"], route_class=PolicedRoute)

ReceiverName = Annotated[
    str, Path(pattern=r"^[a-z][a-z0-9_-]{0,63}$", description="The receiver's name")
]


@router.get("", response_model=list[ReceiverOut])
def list_receivers(
    analytics: Analytics, _: ReadAnalytics, limit: PageLimit, offset: PageOffset = 0
) -> list[ReceiverOut]:
    """Receivers by name (never a secret): from ``offset``, the first ``limit``."""
    found = analytics.monitor.notifications.receivers(limit=limit, offset=offset)
    return [ReceiverOut.of(r) for r in found]


@router.get("/{name}", response_model=ReceiverOut)
def get_receiver(name: ReceiverName, analytics: Analytics, _: ReadAnalytics) -> ReceiverOut:
    found = analytics.monitor.notifications.receiver(name)
    if found is None:
        raise ProblemError(404, f"name (path): no receiver named {name!r}")
    return ReceiverOut.of(found)


@router.put("/{name}", response_model=ReceiverOut)
def put_receiver(
    name: ReceiverName,
    body: ReceiverIn,
    request: Request,
    analytics: Analytics,
    settings: Settings,
    principal: Admin,
) -> ReceiverOut:
    """Create or change a receiver. Its URL must pass the SSRF rule (a public address, or
    one in the operator's allow-list); a new webhook receiver gets a signing secret, in
    this answer only."""
    try:
        check_url(body.url, settings.notify_networks())
    except UnsafeURLError as exc:
        raise ProblemError(422, f"url (body): {exc}") from None
    store = analytics.monitor.notifications
    before = store.receiver(name)
    issued = None  # answered only when made
    kept = None
    if body.kind == "webhook":
        kept = before.secret if before is not None and before.kind == "webhook" else None
        if kept is None or body.rotate_secret:
            issued = "bawh_" + secrets.token_urlsafe(32)
    elif body.rotate_secret:
        raise ProblemError(422, "rotate_secret (body): a slack receiver has no secret")
    receiver = Receiver(
        name,
        body.kind,
        body.url,
        issued or kept,
        body.send_resolved,
        datetime.now(UTC),
        principal.actor,
    )
    store.put_receiver(receiver)
    record_audit(
        request,
        principal,
        "put_receiver",
        "ok",
        object_type="receiver",
        object_id=name,
        details={
            "kind": body.kind,
            "change": "created" if before is None else "updated",
            "secret_issued": issued is not None,
        },
    )
    return ReceiverOut.of(receiver, secret=issued)


@router.delete("/{name}", status_code=204)
def delete_receiver(
    name: ReceiverName, request: Request, analytics: Analytics, principal: Admin
) -> None:
    """Delete a receiver the notification policy no longer names."""
    store = analytics.monitor.notifications
    current = store.policy()
    if current is not None and name in current.policy.receivers:
        raise ProblemError(
            409, f"name (path): the notification policy routes to {name!r}; change it first"
        )
    found = store.delete_receiver(name)
    outcome = "ok" if found else "not_found"
    record_audit(
        request, principal, "delete_receiver", outcome, object_type="receiver", object_id=name
    )
    if not found:
        raise ProblemError(404, f"name (path): no receiver named {name!r}")

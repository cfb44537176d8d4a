"""Stripe's webhooks: ``POST /webhooks/stripe``, authenticated by Stripe's signature.

Stripe cannot send an API key, so the route is public to the authentication gate
(``public_paths``) and the signature is the authentication: it is checked on the raw
body before anything is parsed (:func:`verify_stripe_signature`). A bad signature
or a stale timestamp answers 400, is audited with its reason, and counts as a failed
authentication of the address (too many answer 429, as for bad API keys). A signed
event is mapped (:func:`map_stripe_event`) and its snapshots are stored through the
same ingestion path as every event, durably, before the 200; an event type that is
not mapped answers 200 too (Stripe would otherwise retry it for three days), saying
why it was ignored, and is audited. With no endpoint secret configured the route
answers 404: the endpoint does not exist on this server (a 503 would say "try again
later" to Stripe and to monitors, for what is a setting, not an outage).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from banking_analytics.access import AuditLog
from banking_analytics.api._auth import PolicedRoute, public
from banking_analytics.api._models import EventResultOut
from banking_analytics.api._problems import ProblemError
from banking_analytics.api._ratelimit import FailedAuthentications
from banking_analytics.api._writes import _result, _stored
from banking_analytics.api.deps import Analytics, Settings
from banking_analytics.ingest import (
    EventStatus,
    StripeEventError,
    StripeMapping,
    StripeSignatureError,
    map_stripe_event,
    verify_stripe_signature,
)

__all__ = ["STRIPE_PATH", "router"]

#: The path of the endpoint under the API prefix (the gate lets it through unauthenticated).
STRIPE_PATH = "/webhooks/stripe"
_ACTOR = "stripe"

router = APIRouter(prefix="/webhooks", tags=["webhooks"], route_class=PolicedRoute)


class StripeWebhookOut(BaseModel):
    """What became of one Stripe event: the snapshots stored, or why it was ignored."""

    stripe_event_id: str
    stripe_type: str
    stored: int
    duplicate: int
    rejected: int
    ignored: str | None = Field(description="Why nothing was mapped; null when something was")
    warnings: list[str]
    results: list[EventResultOut]


def _audit(
    request: Request,
    outcome: str,
    details: dict[str, Any],
    object_id: str | None = None,
) -> None:
    audit: AuditLog = request.app.state.audit
    address = request.client.host if request.client else None
    audit.record(
        actor=_ACTOR if outcome != "denied" else f"address:{address or 'unknown'}",
        actor_role="webhook" if outcome != "denied" else "anonymous",
        action="stripe_webhook",
        outcome=outcome,
        object_type="stripe_event" if object_id else None,
        object_id=object_id,
        client_ip=address,
        details=details,
    )


async def _verified_body(
    request: Request, header: str | None, secrets: list[str], tolerance: int
) -> bytes:
    """The raw body, once its signature is proven; else 400 (or 429), audited."""
    failures: FailedAuthentications = request.app.state.auth_failures
    address = request.client.host if request.client else "unknown"
    wait = failures.refused_for(address)
    if wait is not None:
        raise ProblemError(
            429,
            f"too many failed signatures from {address}; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    body = await request.body()
    try:
        verify_stripe_signature(body, header, secrets, tolerance=tolerance)
    except StripeSignatureError as exc:
        failures.failed(address)
        await run_in_threadpool(
            _audit, request, "denied", {"reason": str(exc), "body_bytes": len(body)}
        )
        raise ProblemError(400, f"Stripe-Signature (header): {exc}") from None
    return body


def _mapped(body: bytes) -> StripeMapping:
    try:
        return map_stripe_event(orjson.loads(body))
    except orjson.JSONDecodeError as exc:
        raise StripeEventError(f"the body is not JSON: {exc}") from None


@router.post("/stripe", dependencies=[public], response_model=StripeWebhookOut)
async def stripe_webhook(request: Request, analytics: Analytics, settings: Settings) -> Any:
    """Receive one Stripe event (sent by Stripe, signed with the endpoint's secret in
    ``Stripe-Signature: t=<unix time>,v1=<HMAC-SHA256 hex>[,v1=...]``).

    Subscriptions' snapshots are stored (a redelivered event is a duplicate); an
    event type that is not mapped is ignored with the reason; see docs/stripe.md.
    """
    secrets = [s.get_secret_value() for s in settings.stripe_webhook_secrets]
    if not secrets:
        raise ProblemError(
            404, "Stripe webhooks are not enabled on this server (set BA_STRIPE_WEBHOOK_SECRETS)"
        )
    tolerance = settings.stripe_webhook_tolerance_seconds
    # Read from the request, not declared as a parameter: an optional free-text header
    # has no invalid values for the API's fuzz tests to send.
    header = request.headers.get("stripe-signature")
    body = await _verified_body(request, header, secrets, tolerance)
    try:
        mapping = _mapped(body)
    except StripeEventError as exc:
        # Signed by Stripe, yet unreadable: say so (Stripe shows the answer in its
        # dashboard) and keep a trace; nothing is stored.
        await run_in_threadpool(_audit, request, "rejected", {"reason": str(exc)})
        raise ProblemError(400, f"body: {exc}") from None
    answer: dict[str, Any] = {
        "stripe_event_id": mapping.stripe_event_id,
        "stripe_type": mapping.stripe_type,
        "ignored": mapping.ignored,
        "warnings": list(mapping.warnings),
    }
    if mapping.ignored is not None:
        await run_in_threadpool(
            _audit,
            request,
            "ignored",
            {"type": mapping.stripe_type, "reason": mapping.ignored},
            mapping.stripe_event_id,
        )
        return {**answer, "stored": 0, "duplicate": 0, "rejected": 0, "results": []}
    results = await _stored(analytics.submit_batch(mapping.events, source="stripe"))
    counts = {status: sum(r.status is status for r in results) for status in EventStatus}
    if counts[EventStatus.REJECTED]:
        await run_in_threadpool(
            _audit,
            request,
            "rejected",
            {
                "type": mapping.stripe_type,
                "reasons": [r.reason for r in results if r.reason],
            },
            mapping.stripe_event_id,
        )
    return {
        **answer,
        "stored": counts[EventStatus.ACCEPTED],
        "duplicate": counts[EventStatus.DUPLICATE],
        "rejected": counts[EventStatus.REJECTED],
        "results": [_result(r) for r in results],
    }

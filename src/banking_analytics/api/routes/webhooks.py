"""Stripe's and Plaid's webhooks: ``POST /webhooks/stripe`` and ``POST /webhooks/plaid``,
each authenticated by its sender's signature.

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

Plaid's route works the same way (docs/plaid.md): the ``Plaid-Verification`` JWT is
checked against the configured verification keys (:func:`verify_plaid_webhook`) before
the body is parsed; a bad one answers 400, audited, and counts as a failed
authentication. A verified webhook is named by its first delivery (a retry is the same
delivery), mapped (:func:`map_plaid_webhook`), its events stored, then its Item's state
updated; an unmapped webhook answers 200 with the reason, audited. Without verification
keys configured it answers 404.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
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
    EventResult,
    EventStatus,
    InstitutionName,
    ItemOrigin,
    PlaidItem,
    PlaidItems,
    PlaidMapping,
    PlaidSignatureError,
    PlaidVerification,
    PlaidVerificationKey,
    PlaidWebhook,
    PlaidWebhookError,
    StripeEventError,
    StripeMapping,
    StripeSignatureError,
    map_plaid_webhook,
    map_stripe_event,
    read_plaid_webhook,
    record_institutions,
    verify_plaid_webhook,
    verify_stripe_signature,
)
from banking_analytics.store import Engine
from banking_analytics.vocabulary import Aggregator

__all__ = ["PLAID_PATH", "STRIPE_PATH", "router"]

#: The paths of the endpoints under the API prefix (the gate lets them through unauthenticated).
STRIPE_PATH = "/webhooks/stripe"
PLAID_PATH = "/webhooks/plaid"
_ACTOR = "stripe"
_PLAID = "plaid"

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
    sender: str = _ACTOR,
    object_type: str = "stripe_event",
) -> None:
    """One audit entry of ``sender``'s webhook (``stripe_webhook``, ``plaid_webhook``)."""
    audit: AuditLog = request.app.state.audit
    address = request.client.host if request.client else None
    audit.record(
        actor=sender if outcome != "denied" else f"address:{address or 'unknown'}",
        actor_role="webhook" if outcome != "denied" else "anonymous",
        action=f"{sender}_webhook",
        outcome=outcome,
        object_type=object_type if object_id else None,
        object_id=object_id,
        client_ip=address,
        details=details,
    )


async def _signed_body(request: Request) -> tuple[bytes, FailedAuthentications, str]:
    """The raw body, unless the address has failed too many signatures (429)."""
    failures: FailedAuthentications = request.app.state.auth_failures
    address = request.client.host if request.client else "unknown"
    wait = failures.refused_for(address)
    if wait is not None:
        raise ProblemError(
            429,
            f"too many failed signatures from {address}; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    return await request.body(), failures, address


async def _verified_body(
    request: Request, header: str | None, secrets: list[str], tolerance: int
) -> bytes:
    """The raw body, once its signature is proven; else 400 (or 429), audited."""
    body, failures, address = await _signed_body(request)
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


class PlaidWebhookOut(BaseModel):
    """What became of one Plaid webhook: its events stored, its Item's state, or why it
    was ignored."""

    webhook_type: str
    webhook_code: str
    delivery_id: str = Field(
        description="The body's SHA-256 and the unix time of its first delivery "
        "(a retry's is the same)"
    )
    redelivery: bool = Field(description="The same body came within Plaid's 24 h of retries")
    stored: int
    duplicate: int
    rejected: int
    ignored: str | None = Field(description="Why nothing was mapped; null when something was")
    warnings: list[str]
    item: PlaidItem | None = Field(
        description="The Item's connection state after the webhook, as "
        "GET .../connections/items shows it; null for Link webhooks"
    )
    institutions: list[tuple[str, str]] = Field(
        description="(institution_id, name) pairs the webhook named (Link events name them)"
    )
    results: list[EventResultOut]


async def _verified_plaid_body(
    request: Request, keys: dict[str, PlaidVerificationKey], tolerance: int
) -> tuple[bytes, PlaidVerification]:
    """The raw body and what its JWT proves; else 400 (or 429), audited."""
    body, failures, address = await _signed_body(request)
    # Read from the request, as Stripe's header: free text has no invalid values to fuzz.
    header = request.headers.get("plaid-verification")
    try:
        proof = verify_plaid_webhook(body, header, keys, tolerance=tolerance)
    except PlaidSignatureError as exc:
        failures.failed(address)
        details = {"reason": str(exc), "body_bytes": len(body)}
        await run_in_threadpool(_audit, request, "denied", details, None, _PLAID)
        raise ProblemError(400, f"Plaid-Verification (header): {exc}") from None
    return body, proof


def _plaid_webhook_of(body: bytes) -> PlaidWebhook:
    try:
        return read_plaid_webhook(orjson.loads(body))
    except orjson.JSONDecodeError as exc:
        raise PlaidWebhookError(f"the body is not JSON: {exc}") from None


@dataclass(frozen=True, slots=True)
class _PlaidDelivery:
    """A verified webhook's delivery: its id, whether it is a retry, the signing time of
    its first try (when its events happen), what is known of its Item, and its mapping."""

    delivery_id: str
    redelivery: bool
    first_signed_at: datetime
    origin: ItemOrigin | None
    mapping: PlaidMapping


def _plaid_delivery(
    items: PlaidItems, webhook: PlaidWebhook, proof: PlaidVerification
) -> _PlaidDelivery:
    signed_at = datetime.fromtimestamp(proof.issued_at, UTC)
    first, redelivery = items.first_delivery(proof.body_sha256, signed_at)
    delivery_id = f"{proof.body_sha256}:{int(first.timestamp())}"
    origin = items.origin(webhook.item_id) if webhook.item_id else None
    mapping = map_plaid_webhook(webhook, delivery_id=delivery_id, at=first, origin=origin)
    return _PlaidDelivery(delivery_id, redelivery, first, origin, mapping)


@router.post("/plaid", dependencies=[public], response_model=PlaidWebhookOut)
async def plaid_webhook(request: Request, analytics: Analytics, settings: Settings) -> Any:
    """Receive one Plaid webhook (sent by Plaid, signed by an ES256 JWT in
    ``Plaid-Verification`` whose claims carry ``iat`` and the body's
    ``request_body_sha256``).

    ITEM and TRANSACTIONS webhooks become ``sync_run`` events and the Item's connection
    state; Link ``EVENTS`` a ``connection_attempt``; a retried delivery is a duplicate;
    other webhooks are acknowledged and ignored with the reason; see docs/plaid.md.
    """
    keys: dict[str, PlaidVerificationKey] = request.app.state.plaid_keys
    if not keys:
        raise ProblemError(
            404,
            "Plaid webhooks are not enabled on this server "
            "(set BA_PLAID_WEBHOOK_KEYS or BA_PLAID_WEBHOOK_KEYS_FILE)",
        )
    tolerance = settings.plaid_webhook_tolerance_seconds
    body, proof = await _verified_plaid_body(request, keys, tolerance)
    try:
        webhook = _plaid_webhook_of(body)
    except PlaidWebhookError as exc:
        await run_in_threadpool(_audit, request, "rejected", {"reason": str(exc)}, None, _PLAID)
        raise ProblemError(400, f"body: {exc}") from None
    items: PlaidItems = request.app.state.plaid_items
    delivery = await run_in_threadpool(_plaid_delivery, items, webhook, proof)
    mapping, delivery_id = delivery.mapping, delivery.delivery_id
    kind = f"{webhook.webhook_type}:{webhook.webhook_code}"
    answer: dict[str, Any] = {
        "webhook_type": webhook.webhook_type,
        "webhook_code": webhook.webhook_code,
        "delivery_id": delivery_id,
        "redelivery": delivery.redelivery,
        "ignored": mapping.ignored,
        "warnings": list(mapping.warnings),
        "institutions": list(mapping.institutions),
        "item": None,
    }
    if mapping.institutions:
        await run_in_threadpool(_catalogue, analytics.engine, mapping.institutions)
    if mapping.ignored is not None:
        details = {"webhook": kind, "reason": mapping.ignored}
        await run_in_threadpool(
            _audit, request, "ignored", details, delivery_id, _PLAID, "plaid_delivery"
        )
        return {**answer, "stored": 0, "duplicate": 0, "rejected": 0, "results": []}
    results: list[EventResult] = []
    if mapping.events:
        results = await _stored(analytics.submit_batch(mapping.events, source=_PLAID))
    if mapping.change is not None:
        item = await run_in_threadpool(
            items.apply,
            mapping.change,
            webhook=kind,
            at=delivery.first_signed_at,
            origin=delivery.origin,
            environment=webhook.environment,
        )
        answer["item"] = replace(item, state=item.current_state(datetime.now(UTC)))
    counts = {status: sum(r.status is status for r in results) for status in EventStatus}
    if counts[EventStatus.REJECTED]:
        rejected: dict[str, Any] = {
            "webhook": kind,
            "reasons": [r.reason for r in results if r.reason],
        }
        await run_in_threadpool(
            _audit, request, "rejected", rejected, delivery_id, _PLAID, "plaid_delivery"
        )
    return {
        **answer,
        "stored": counts[EventStatus.ACCEPTED],
        "duplicate": counts[EventStatus.DUPLICATE],
        "rejected": counts[EventStatus.REJECTED],
        "results": [_result(r) for r in results],
    }


def _catalogue(engine: Engine, named: Iterable[tuple[str, str]]) -> None:
    """Record the institution names a Link webhook carries in the institution catalogue
    (a name that is no valid catalogue entry is left out: the webhook still counts)."""
    valid: list[InstitutionName] = []
    for institution_id, name in named:
        try:
            valid.append(InstitutionName(institution_id, name, Aggregator.PLAID))
        except ValueError:
            continue
    record_institutions(engine, valid, source=_PLAID)

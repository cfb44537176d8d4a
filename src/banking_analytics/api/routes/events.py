"""Bulk event ingestion: any event types in one request, a result per event."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api._models import BatchIn, BatchOut
from banking_analytics.api._writes import ingest_batch, run_idempotently
from banking_analytics.api.deps import Analytics, Idempotency, WriteEvents
from banking_analytics.api.routes._params import IdempotencyKey

__all__ = ["router"]

router = APIRouter(prefix="/events", tags=["events"], route_class=PolicedRoute)


@router.post("/batch", response_model=BatchOut)
async def ingest_events(
    request: Request,
    body: BatchIn,
    principal: WriteEvents,
    analytics: Analytics,
    idempotency: Idempotency,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Store events of any types; answers once they are durably committed, with one
    result per event (accepted, duplicate, or rejected with the field and reason).
    One bad event never rejects its neighbours; rejected ones are quarantined.
    """
    return await run_idempotently(
        request,
        principal,
        idempotency,
        idempotency_key,
        lambda key: ingest_batch(analytics, principal, body.events, key),
    )

"""Writes over HTTP: single events and batches, acknowledged after a durable commit,
optionally under an ``Idempotency-Key`` (see :mod:`._idempotency`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from banking_analytics._facade import BankingPerformanceAnalytics, BatchTooLargeError, PendingBatch
from banking_analytics.api._auth import Principal
from banking_analytics.api._idempotency import (
    IdempotencyConflictError,
    IdempotencyStore,
    Replay,
    derived_event_id,
    fingerprint,
)
from banking_analytics.api._json import JSONBody
from banking_analytics.api._models import RecordedOut
from banking_analytics.api._problems import FieldProblem, ProblemError, problem_response
from banking_analytics.ingest import EventResult, EventStatus

__all__ = ["RECORDING", "ingest_batch", "record_one", "run_idempotently"]

_MAX_KEY_LENGTH = 255

#: How a route recording one event documents its answers (``@router.post(path, **RECORDING)``).
RECORDING: dict[str, Any] = {
    "status_code": 201,
    "response_model": RecordedOut,
    "responses": {200: {"model": RecordedOut, "description": "Already stored (same event_id)"}},
}


def _result(r: EventResult) -> dict[str, Any]:
    return {
        "position": r.position,
        "status": r.status.value,
        "event_id": r.event_id,
        "event_type": r.event_type,
        "errors": [{"field": e.field, "code": e.code, "message": e.message} for e in r.errors],
        "flags": list(r.flags),
    }


def _with_ids(events: list[dict[str, Any]], scope: str, key: str | None) -> list[dict[str, Any]]:
    """Events without an id get one derived from the idempotency key and their position."""
    if key is None:
        return events
    return [
        e if e.get("event_id") is not None else {**e, "event_id": derived_event_id(scope, key, i)}
        for i, e in enumerate(events)
    ]


async def _stored(pending: PendingBatch) -> list[EventResult]:
    """Wait for the group commit without holding a thread: the writer's thread wakes
    the event loop when it is done."""
    loop = asyncio.get_running_loop()
    committed = loop.create_future()

    def settle() -> None:
        if not committed.done():
            committed.set_result(None)

    def wake() -> None:
        loop.call_soon_threadsafe(settle)

    pending.add_done_callback(wake)
    await committed
    return pending.results(0)


async def ingest_batch(
    analytics: BankingPerformanceAnalytics,
    principal: Principal,
    events: list[dict[str, Any]],
    key: str | None,
) -> Response:
    """Store a batch; per-event results, in order. A bad event never rejects the others."""
    try:
        pending = analytics.submit_batch(_with_ids(events, principal.actor, key), source="api")
    except BatchTooLargeError as exc:
        raise ProblemError(413, f"events: {exc}") from None
    results = await _stored(pending)
    counts = dict.fromkeys(EventStatus, 0)
    for r in results:
        counts[r.status] += 1
    return JSONBody(
        {
            "accepted": counts[EventStatus.ACCEPTED],
            "duplicate": counts[EventStatus.DUPLICATE],
            "rejected": counts[EventStatus.REJECTED],
            "results": [_result(r) for r in results],
        }
    )


async def record_event(
    analytics: BankingPerformanceAnalytics,
    principal: Principal,
    event: Mapping[str, Any],
    key: str | None,
) -> Response:
    """Store one event: 201 when new, 200 when a duplicate, 422 naming the field when rejected."""
    pending = analytics.submit_batch(_with_ids([dict(event)], principal.actor, key), source="api")
    (result,) = await _stored(pending)
    if result.status is EventStatus.REJECTED or result.event_id is None:
        problems = [FieldProblem(field=e.field or "body", message=e.message) for e in result.errors]
        raise ProblemError(422, result.reason or "the event was rejected", errors=problems)
    return JSONBody(
        {
            "metric_id": result.event_id,
            "event_id": result.event_id,
            "status": result.status.value,
            "flags": list(result.flags),
        },
        status_code=201 if result.status is EventStatus.ACCEPTED else 200,
    )


async def run_idempotently(
    request: Request,
    principal: Principal,
    store: IdempotencyStore,
    key: str | None,
    write: Callable[[str | None], Awaitable[Response]],
) -> Response:
    """Run ``write(key)``, at most once per (caller, key) when a key is given."""
    if key is None:
        return await write(None)
    if not 1 <= len(key) <= _MAX_KEY_LENGTH or not key.isprintable():
        raise ProblemError(
            422, f"Idempotency-Key (header): must be 1 to {_MAX_KEY_LENGTH} printable characters"
        )
    body = await request.body()
    request_fingerprint = fingerprint(request.method, request.url.path, body)
    try:
        claim = await run_in_threadpool(store.claim, principal.actor, key, request_fingerprint)
    except IdempotencyConflictError as exc:
        raise ProblemError(exc.status, f"Idempotency-Key (header): {exc}") from None
    if isinstance(claim, Replay):
        return Response(
            claim.body,
            status_code=claim.status,
            media_type=claim.media_type,
            headers={"Idempotent-Replayed": "true"},
        )
    try:
        response = await write(key)
    except ProblemError as exc:
        response = problem_response(
            request.url.path, exc.status, exc.detail, headers=exc.headers, errors=exc.errors
        )
    except BaseException:
        store.release(claim)
        raise
    await run_in_threadpool(
        store.complete,
        claim,
        response.status_code,
        bytes(response.body),
        response.media_type or "application/json",
    )
    return response


async def record_one(
    request: Request,
    principal: Principal,
    analytics: BankingPerformanceAnalytics,
    idempotency: IdempotencyStore,
    key: str | None,
    event: Mapping[str, Any],
) -> Response:
    """Record one event, at most once per ``Idempotency-Key``."""
    return await run_idempotently(
        request,
        principal,
        idempotency,
        key,
        lambda k: record_event(analytics, principal, event, k),
    )

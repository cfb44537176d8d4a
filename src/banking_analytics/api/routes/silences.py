"""Silences: admins make and expire them (audited, never deleted), analysts read them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from banking_analytics.api._audit import record_audit
from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api._notify_models import SilenceIn, SilenceOut
from banking_analytics.api._problems import FieldProblem, ProblemError
from banking_analytics.api._types import QueryBool
from banking_analytics.api.deps import Admin, Analytics, ReadAnalytics
from banking_analytics.api.routes._params import PageLimit
from banking_analytics.monitor import MatcherError, Silence, parse_matchers

__all__ = ["router"]

router = APIRouter(prefix="/silences", tags=["notifications"], route_class=PolicedRoute)

SilenceId = Annotated[str, Path(max_length=64, description="The silence's id")]
#: Far enough back for every silence ever made.
_EVER = datetime(1970, 1, 1, tzinfo=UTC)


@router.get("", response_model=list[SilenceOut])
def list_silences(
    analytics: Analytics,
    _: ReadAnalytics,
    limit: PageLimit,
    expired: Annotated[QueryBool, Query(description="Also those that have ended")] = False,
) -> list[SilenceOut]:
    """Silences active or to come (and ended ones with ``expired``), by start."""
    now = datetime.now(UTC)
    found = analytics.monitor.notifications.silences(since=_EVER if expired else now, limit=limit)
    return [SilenceOut.of(s, now) for s in found]


@router.get("/{silence_id}", response_model=SilenceOut)
def get_silence(silence_id: SilenceId, analytics: Analytics, _: ReadAnalytics) -> SilenceOut:
    found = analytics.monitor.notifications.silence(silence_id)
    if found is None:
        raise ProblemError(404, f"silence_id (path): no silence {silence_id!r}")
    return SilenceOut.of(found, datetime.now(UTC))


@router.post("", response_model=SilenceOut, status_code=201)
def create_silence(
    body: SilenceIn, request: Request, analytics: Analytics, principal: Admin
) -> SilenceOut:
    """Mute the alerts matching every matcher from ``starts_at`` (default now) to ``ends_at``."""
    now = datetime.now(UTC)
    problems = []
    try:
        matchers = parse_matchers(body.matchers)
    except MatcherError as exc:
        problems.append(FieldProblem(field="matchers", message=str(exc)))
    starts_at = body.starts_at or now
    if starts_at.tzinfo is None or body.ends_at.tzinfo is None:
        problems.append(FieldProblem(field="ends_at", message="a time with its UTC offset"))
    elif body.ends_at <= max(starts_at, now):
        problems.append(FieldProblem(field="ends_at", message="must be after starts_at and now"))
    if problems:
        detail = "; ".join(f"{p.field}: {p.message}" for p in problems)
        raise ProblemError(422, f"the silence is not valid: {detail}", errors=problems)
    silence = Silence(
        str(uuid.uuid4()), matchers, starts_at, body.ends_at, now, principal.actor, body.comment
    )
    analytics.monitor.notifications.add_silence(silence)
    record_audit(
        request,
        principal,
        "create_silence",
        "ok",
        object_type="silence",
        object_id=silence.silence_id,
        details={"matchers": body.matchers, "ends_at": body.ends_at.isoformat()},
    )
    return SilenceOut.of(silence, now)


@router.delete("/{silence_id}", response_model=SilenceOut)
def expire_silence(
    silence_id: SilenceId, request: Request, analytics: Analytics, principal: Admin
) -> SilenceOut:
    """End a silence now (it is kept, saying who ended it and when)."""
    now = datetime.now(UTC)
    found = analytics.monitor.notifications.expire_silence(silence_id, principal.actor, now)
    record_audit(
        request,
        principal,
        "expire_silence",
        "ok" if found is not None else "not_found",
        object_type="silence",
        object_id=silence_id,
    )
    if found is None:
        raise ProblemError(404, f"silence_id (path): no silence {silence_id!r}")
    return SilenceOut.of(found, now)

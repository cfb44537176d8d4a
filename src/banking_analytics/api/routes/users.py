"""A user's own analytics and behaviour events.

End users (a JWT from the host app) reach only their own user id here; any
other id answers 404, exactly as an id with no data would for them, so the
answer never tells whether another user exists. Every read of one user's
data is written to the audit log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from banking_analytics.analytics.behavior import (
    MAX_SESSION_PAGE,
    EngagementQuery,
    SessionsQuery,
    UserEngagement,
    UserSessions,
)
from banking_analytics.api._audit import record_audit
from banking_analytics.api._auth import PolicedRoute, Principal
from banking_analytics.api._event_models import event_model
from banking_analytics.api._models import MetricQueryOut
from banking_analytics.api._problems import ProblemError
from banking_analytics.api._writes import RECORDING, record_one
from banking_analytics.api.deps import Analytics, Idempotency, ReadUserData, RecordUserEvents
from banking_analytics.api.routes._params import (
    IdempotencyKey,
    PageOffset,
    Period30d,
    Timezone,
)
from banking_analytics.events import IDENTIFIER_PATTERN
from banking_analytics.vocabulary import EventType

__all__ = ["router"]

router = APIRouter(tags=["users"], route_class=PolicedRoute)

if TYPE_CHECKING:
    BehaviorIn = BaseModel
else:
    BehaviorIn = event_model(EventType.BEHAVIOR, "BehaviorIn", aliases={"duration_s": "duration"})

UserId = Annotated[
    str, Path(max_length=128, pattern=IDENTIFIER_PATTERN, description="The host app's user id")
]


def _not_found(user_id: str) -> ProblemError:
    return ProblemError(404, f"user_id (path): no user {user_id!r} is visible to you")


def _user_read(
    request: Request,
    principal: Principal,
    user_id: str,
    action: str,
    read: Any,
) -> dict[str, Any]:
    if not principal.sees_user(user_id):
        record_audit(request, principal, action, "not_found", object_type="user", object_id=user_id)
        raise _not_found(user_id)
    answer: dict[str, Any] = read()
    record_audit(request, principal, action, "ok", object_type="user", object_id=user_id)
    return answer


@router.post("/user/behavior", **RECORDING)
async def record_user_behavior(
    request: Request,
    body: BehaviorIn,
    principal: RecordUserEvents,
    analytics: Analytics,
    idempotency: Idempotency,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Record a user's interaction with a feature (``duration`` in seconds).

    An end user records their own behaviour (``user_id`` may be left out); an
    ingest key must name the ``user_id``.
    """
    fields = body.model_dump(mode="json", exclude_none=True)
    user_id = fields.get("user_id", principal.user_id)
    if user_id is None:
        raise ProblemError(422, "user_id (body): required when recording with an API key")
    if not principal.sees_user(user_id):
        raise _not_found(user_id)
    event = {"event_type": EventType.BEHAVIOR.value, **fields, "user_id": user_id}
    return await record_one(request, principal, analytics, idempotency, idempotency_key, event)


@router.get("/users/{user_id}/feature-usage", response_model=MetricQueryOut)
def user_feature_usage(
    request: Request,
    principal: ReadUserData,
    analytics: Analytics,
    user_id: UserId,
    period: Period30d,
    timezone: Timezone = "UTC",
) -> dict[str, Any]:
    """One user's use of each feature: interactions, sessions, success rate, mean duration."""
    return _user_read(
        request,
        principal,
        user_id,
        "read_user_feature_usage",
        lambda: analytics.query_metrics(
            ["feature_interactions", "sessions", "feature_success_rate", "feature_mean_duration_s"],
            period,
            dimensions=["feature"],
            filters={"user": user_id},
            timezone=timezone,
        ).as_dict(),
    )


@router.get("/users/{user_id}/connections", response_model=MetricQueryOut)
def user_connections(
    request: Request,
    principal: ReadUserData,
    analytics: Analytics,
    user_id: UserId,
    period: Period30d,
) -> dict[str, Any]:
    """One user's bank connections: sync runs, success rate, last run and last success."""
    return _user_read(
        request,
        principal,
        user_id,
        "read_user_connections",
        lambda: analytics.query_metrics(
            ["sync_runs", "sync_success_rate", "sync_last_run_at", "sync_last_success_at"],
            period,
            dimensions=["institution", "aggregator", "connection"],
            filters={"user": user_id},
        ).as_dict(),
    )


@router.get("/users/{user_id}/sessions", response_model=UserSessions)
def user_sessions(
    request: Request,
    principal: ReadUserData,
    analytics: Analytics,
    user_id: UserId,
    period: Period30d,
    limit: Annotated[int, Query(ge=1, le=MAX_SESSION_PAGE)] = 100,
    offset: PageOffset = 0,
) -> Any:
    """One page of a user's sessions, the latest first: length, depth, device, bounce."""
    query = SessionsQuery.over(period)
    return _user_read(
        request,
        principal,
        user_id,
        "read_user_sessions",
        lambda: analytics.behavior.user_sessions(user_id, query, limit=limit, offset=offset),
    )


@router.get("/users/{user_id}/engagement", response_model=UserEngagement)
def user_engagement(
    request: Request,
    principal: ReadUserData,
    analytics: Analytics,
    user_id: UserId,
    period: Period30d,
    timezone: Timezone = "UTC",
) -> Any:
    """A user's active days out of the period's days, events, and use of each feature."""
    query = EngagementQuery.over(period, timezone=timezone)
    return _user_read(
        request,
        principal,
        user_id,
        "read_user_engagement",
        lambda: analytics.behavior.user_engagement(user_id, query),
    )

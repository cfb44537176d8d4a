"""The notification policy (routes, grouping, timers, inhibition): admins write it, analysts
read it; every change is a new version, audited."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request

from banking_analytics.api._audit import record_audit
from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api._notify_models import PolicyOut
from banking_analytics.api._problems import FieldProblem, ProblemError
from banking_analytics.api.deps import Admin, Analytics, ReadAnalytics
from banking_analytics.monitor import NotificationPolicy, PolicyError

__all__ = ["router"]

router = APIRouter(prefix="/notification-policy", tags=["notifications"], route_class=PolicedRoute)

_EXAMPLE = {
    "receiver": "ops-webhook",
    "group_by": ["alertname", "institution"],
    "group_wait": "30s",
    "group_interval": "5m",
    "repeat_interval": "4h",
    "routes": [{"matchers": ['severity="critical"'], "receiver": "pager", "continue": True}],
}


@router.get("", response_model=PolicyOut)
def get_policy(analytics: Analytics, _: ReadAnalytics) -> PolicyOut:
    """The current policy (with every default written out)."""
    stored = analytics.monitor.notifications.policy()
    if stored is None:
        raise ProblemError(404, "no notification policy yet: nothing is notified")
    return PolicyOut(
        version=stored.version,
        changed_at=stored.changed_at,
        changed_by=stored.changed_by,
        policy=stored.policy.as_dict(),
    )


@router.put("", response_model=PolicyOut)
def put_policy(
    request: Request,
    analytics: Analytics,
    principal: Admin,
    body: Annotated[dict[str, Any], Body(examples=[_EXAMPLE])],
) -> PolicyOut:
    """Replace the policy; every receiver it names must exist."""
    try:
        policy = NotificationPolicy.from_dict(body)
    except PolicyError as exc:
        problems = [FieldProblem(field=f, message=m) for f, m in exc.problems]
        raise ProblemError(422, f"the policy is not valid: {exc}", errors=problems) from None
    store = analytics.monitor.notifications
    known = {r.name for r in store.receivers()}
    missing = sorted(policy.receivers - known)
    if missing:
        raise ProblemError(422, f"receiver (body): no receiver named {', '.join(missing)}")
    stored = store.put_policy(policy, principal.actor, datetime.now(UTC))
    record_audit(
        request,
        principal,
        "put_notification_policy",
        "ok",
        object_type="notification_policy",
        details={"version": stored.version},
    )
    return PolicyOut(
        version=stored.version,
        changed_at=stored.changed_at,
        changed_by=stored.changed_by,
        policy=policy.as_dict(),
    )

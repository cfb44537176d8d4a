"""Deliveries of notifications: each one's state and every try (analysts read them)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api._notify_models import DeliveryDetailOut, DeliveryOut
from banking_analytics.api._problems import ProblemError
from banking_analytics.api.deps import Analytics, ReadAnalytics
from banking_analytics.api.routes._params import PageLimit

__all__ = ["router"]

router = APIRouter(prefix="/deliveries", tags=["notifications"], route_class=PolicedRoute)


@router.get("", response_model=list[DeliveryOut])
def list_deliveries(
    analytics: Analytics,
    _: ReadAnalytics,
    limit: PageLimit,
    receiver: Annotated[
        str | None, Query(max_length=64, description="Only this receiver's")
    ] = None,
    state: Annotated[
        Literal["pending", "delivered", "dead"] | None,
        Query(description="Only in this state (dead: the dead letters)"),
    ] = None,
) -> list[DeliveryOut]:
    """Notifications, newest first."""
    found = analytics.monitor.notifications.deliveries(receiver=receiver, state=state, limit=limit)
    return [DeliveryOut.model_validate(d) for d in found]


@router.get("/{delivery_id}", response_model=DeliveryDetailOut)
def get_delivery(
    delivery_id: Annotated[str, Path(max_length=64)], analytics: Analytics, _: ReadAnalytics
) -> DeliveryDetailOut:
    """One notification: its body, and each try (status code, error, next try)."""
    store = analytics.monitor.notifications
    found = store.delivery(delivery_id)
    if found is None:
        raise ProblemError(404, f"delivery_id (path): no delivery {delivery_id!r}")
    return DeliveryDetailOut.detailed(found, store.attempts(delivery_id))

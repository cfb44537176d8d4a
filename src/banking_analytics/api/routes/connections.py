"""Bank connections as their aggregator's webhooks tell them: ``GET /connections/items``
and ``GET /connections/summary``."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api.deps import ReadAnalytics
from banking_analytics.api.routes._params import offset_query
from banking_analytics.ingest import PlaidItem, PlaidItems

__all__ = ["router"]

router = APIRouter(prefix="/connections", tags=["connections"], route_class=PolicedRoute)


class ConnectionItemsPage(BaseModel):
    """A page of Items, by institution then Item id, from ``offset`` (``updated_at``: when
    the row last changed)."""

    items: list[PlaidItem]
    next_offset: int | None


@router.get("/items", response_model=ConnectionItemsPage)
async def connection_items(
    request: Request,
    _: ReadAnalytics,
    institution_id: Annotated[
        str | None, Query(max_length=128, description="Only this institution's Items")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page")] = 100,
    offset: Annotated[int, offset_query("Items to skip first")] = 0,
) -> Any:
    """Each Plaid Item's connection state (healthy, login_required, pending_expiration,
    pending_disconnect, disconnected, error), as Plaid's webhooks left it (docs/plaid.md).
    A pending expiry or disconnection whose time has passed reads as disconnected."""
    items: PlaidItems = request.app.state.plaid_items
    found = await run_in_threadpool(
        items.items, institution_id=institution_id, limit=limit + 1, offset=offset
    )
    now = datetime.now(UTC)
    page = [replace(item, state=item.current_state(now)) for item in found[:limit]]
    return {"items": page, "next_offset": offset + limit if len(found) > limit else None}


class InstitutionItems(BaseModel):
    """One institution's Items: how many, and how many in each state."""

    institution_id: str | None
    items: int
    states: dict[str, int]


class ConnectionSummary(BaseModel):
    """Items per institution and state (institution null: not known yet)."""

    institutions: list[InstitutionItems]


@router.get("/summary", response_model=ConnectionSummary)
async def connection_summary(request: Request, _: ReadAnalytics) -> Any:
    """How many Items each institution has in each connection state, as of now: e.g. the
    share of a bank's Items that need their user to log in again."""
    items: PlaidItems = request.app.state.plaid_items
    counts = await run_in_threadpool(items.state_counts, datetime.now(UTC))
    institutions: dict[str | None, dict[str, int]] = {}
    for row in counts:
        institutions.setdefault(row["institution_id"], {})[row["state"] or "unknown"] = int(
            row["items"]
        )
    return {
        "institutions": [
            {"institution_id": name, "items": sum(states.values()), "states": states}
            for name, states in institutions.items()
        ]
    }

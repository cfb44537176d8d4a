"""Liveness and readiness, for load balancers and orchestrators (no credentials)."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter
from pydantic import BaseModel

from banking_analytics.api._auth import PolicedRoute, public
from banking_analytics.api._problems import ProblemError
from banking_analytics.api.deps import Analytics, Settings

__all__ = ["router"]

router = APIRouter(tags=["health"], dependencies=[public], route_class=PolicedRoute)


class Status(BaseModel):
    status: str


@router.get("/healthz", response_model=Status)
async def liveness() -> dict[str, Any]:
    """The process is up and its event loop turns. Answered on the loop itself: no
    thread, no store, so a busy thread pool or store cannot make it look dead."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Status, responses={503: {"description": "Store unreachable"}})
async def readiness(analytics: Analytics, settings: Settings) -> dict[str, Any]:
    """The store answers a query within ``readiness_timeout_seconds``."""
    seconds = settings.readiness_timeout_seconds
    try:
        with anyio.fail_after(seconds):
            # abandon_on_cancel: a hung store must not hang the probe with it.
            await anyio.to_thread.run_sync(
                analytics.engine.query, "SELECT 1 AS ok", abandon_on_cancel=True
            )
    except TimeoutError:
        raise ProblemError(
            503, f"the store did not answer within {seconds:g} s", headers={"Retry-After": "5"}
        ) from None
    except Exception as exc:
        raise ProblemError(503, f"the store does not answer: {type(exc).__name__}") from None
    return {"status": "ok"}

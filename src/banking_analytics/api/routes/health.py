"""Liveness and readiness, for load balancers and orchestrators (no credentials)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from banking_analytics.api._auth import PolicedRoute, public
from banking_analytics.api._problems import ProblemError
from banking_analytics.api.deps import Analytics

__all__ = ["router"]

router = APIRouter(tags=["health"], dependencies=[public], route_class=PolicedRoute)


class Status(BaseModel):
    status: str


@router.get("/healthz", response_model=Status)
def liveness() -> dict[str, Any]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Status, responses={503: {"description": "Store unreachable"}})
def readiness(analytics: Analytics) -> dict[str, Any]:
    """The store answers queries."""
    try:
        analytics.engine.query("SELECT 1 AS ok")
    except Exception as exc:
        raise ProblemError(503, f"the store does not answer: {type(exc).__name__}") from None
    return {"status": "ok"}

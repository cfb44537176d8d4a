"""Dependencies of the routes, as ``Annotated`` aliases (one place to see what a route needs).

They are ``async``: FastAPI runs a plain function in a worker thread, and a hop
through the thread pool per dependency costs more than these take.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from banking_analytics._facade import BankingPerformanceAnalytics
from banking_analytics.access import AuditLog, KeyStore, Role
from banking_analytics.api._auth import Principal, allow
from banking_analytics.api._idempotency import IdempotencyStore
from banking_analytics.api._settings import ApiSettings
from banking_analytics.metrics import QueryBudget

__all__ = [
    "Admin",
    "Admitted",
    "Analytics",
    "Audit",
    "Idempotency",
    "Keys",
    "QueryBudgetOf",
    "ReadAnalytics",
    "ReadUserData",
    "RecordUserEvents",
    "Settings",
    "WriteEvents",
]


def _from_state(attribute: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency answering one of the services the app keeps in ``app.state``."""

    async def service(request: Request) -> Any:
        return getattr(request.app.state, attribute)

    return service


Analytics = Annotated[BankingPerformanceAnalytics, Depends(_from_state("analytics"))]
Keys = Annotated[KeyStore, Depends(_from_state("keys"))]
Audit = Annotated[AuditLog, Depends(_from_state("audit"))]
Idempotency = Annotated[IdempotencyStore, Depends(_from_state("idempotency"))]
Settings = Annotated[ApiSettings, Depends(_from_state("settings"))]
QueryBudgetOf = Annotated[QueryBudget, Depends(_from_state("query_budget"))]


async def _admitted(request: Request) -> AsyncIterator[None]:
    async with request.app.state.admission.admitted():
        yield


#: Held while an expensive request runs: admitted through the app's bounded gate, or 503.
Admitted = Annotated[None, Depends(_admitted)]

#: Admins only.
Admin = Annotated[Principal, Depends(allow())]
#: Analysts (and admins): analytics over everyone.
ReadAnalytics = Annotated[Principal, Depends(allow(Role.ANALYST))]
#: Ingest keys (and admins): events of anyone.
WriteEvents = Annotated[Principal, Depends(allow(Role.INGEST))]
#: Analysts, and end users for their own data.
ReadUserData = Annotated[Principal, Depends(allow(Role.ANALYST, end_user=True))]
#: Ingest keys, and end users for their own events.
RecordUserEvents = Annotated[Principal, Depends(allow(Role.INGEST, end_user=True))]

"""Dependencies of the routes, as ``Annotated`` aliases (one place to see what a route needs).

They are ``async``: FastAPI runs a plain function in a worker thread, and a hop
through the thread pool per dependency costs more than these take.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from banking_analytics._facade import BankingPerformanceAnalytics
from banking_analytics.access import AuditLog, KeyStore, Role
from banking_analytics.api._auth import Principal, allow
from banking_analytics.api._idempotency import IdempotencyStore
from banking_analytics.api._settings import ApiSettings

__all__ = [
    "Admin",
    "Analytics",
    "Audit",
    "Idempotency",
    "Keys",
    "ReadAnalytics",
    "ReadUserData",
    "RecordUserEvents",
    "Settings",
    "WriteEvents",
]


async def _analytics(request: Request) -> BankingPerformanceAnalytics:
    analytics: BankingPerformanceAnalytics = request.app.state.analytics
    return analytics


async def _keys(request: Request) -> KeyStore:
    keys: KeyStore = request.app.state.keys
    return keys


async def _audit(request: Request) -> AuditLog:
    audit: AuditLog = request.app.state.audit
    return audit


async def _idempotency(request: Request) -> IdempotencyStore:
    store: IdempotencyStore = request.app.state.idempotency
    return store


async def _settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


Analytics = Annotated[BankingPerformanceAnalytics, Depends(_analytics)]
Keys = Annotated[KeyStore, Depends(_keys)]
Audit = Annotated[AuditLog, Depends(_audit)]
Idempotency = Annotated[IdempotencyStore, Depends(_idempotency)]
Settings = Annotated[ApiSettings, Depends(_settings)]

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

"""The FastAPI application: routers, auth, problem responses and the services they share."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from banking_analytics import __version__
from banking_analytics._facade import BankingPerformanceAnalytics
from banking_analytics.access import AuditLog, KeyStore, UserTokenVerifier
from banking_analytics.api._access_log import AccessLog
from banking_analytics.api._admission import AdmissionGate
from banking_analytics.api._auth import Authenticator
from banking_analytics.api._gate import (
    AuthenticationGate,
    audit_failures,
    audit_failures_periodically,
)
from banking_analytics.api._idempotency import IdempotencyStore
from banking_analytics.api._json import JSONBody
from banking_analytics.api._limits import BodySizeLimit
from banking_analytics.api._problems import PROBLEM_MEDIA_TYPE, Problem, install_handlers
from banking_analytics.api._ratelimit import FailedAuthentications, RateLimiter
from banking_analytics.api._settings import ApiSettings
from banking_analytics.api._stream import StreamHub
from banking_analytics.api.routes import (
    admin,
    alerts,
    backtests,
    behavior,
    connections,
    dashboard,
    deliveries,
    events,
    funnels,
    health,
    insights,
    metrics,
    notification_policy,
    paths,
    performance,
    receivers,
    retention,
    revenue,
    revenue_impact,
    rules,
    silences,
    slos,
    stream,
    users,
    webhooks,
)
from banking_analytics.ingest import PlaidItems
from banking_analytics.metrics import QueryBudget, restrict_timezones

if TYPE_CHECKING:
    from banking_analytics.monitor import BackgroundEvaluator
    from banking_analytics.web import WebSettings

__all__ = ["API_PREFIX", "create_app"]

API_PREFIX = "/api/banking-analytics"

_ERRORS = {
    status: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}}
    for status in (400, 401, 403, 404, 413, 422, 429, 503)
}
_log = logging.getLogger("banking_analytics.api")


def _problems_as_problem_json(app: FastAPI) -> None:
    """Document error bodies under ``application/problem+json``, the type they are sent as
    (FastAPI files a response model under the route's own media type)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for operations in schema["paths"].values():
            for operation in operations.values():
                for response in operation.get("responses", {}).values():
                    content = response.get("content", {})
                    if PROBLEM_MEDIA_TYPE in content and "application/json" in content:
                        content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _tokens(settings: ApiSettings) -> UserTokenVerifier | None:
    if settings.jwt_hs256_secret is None and settings.jwt_rs256_public_key is None:
        return None
    return UserTokenVerifier(
        hs256_secret=(
            settings.jwt_hs256_secret.get_secret_value() if settings.jwt_hs256_secret else None
        ),
        rs256_public_key=settings.jwt_rs256_public_key,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        max_lifetime_seconds=settings.jwt_max_lifetime_seconds,
    )


def _rule_evaluator(
    analytics: BankingPerformanceAnalytics, settings: ApiSettings, hub: StreamHub
) -> BackgroundEvaluator:
    """The alert rules' evaluator, started: it runs beside the server until shutdown, its
    notifier after each cycle, and each cycle's transitions reach this server's event
    streams at once."""
    from banking_analytics.monitor import BackgroundEvaluator, Notifier, Sender

    notifier = Notifier(analytics.monitor, Sender(allowed=settings.notify_networks()))
    evaluator = BackgroundEvaluator(
        analytics.monitor,
        on_cycle=hub.wake_threadsafe,
        notifier=notifier,
        lease=timedelta(seconds=settings.rule_lease_seconds),
    )
    evaluator.start()
    return evaluator


def create_app(
    settings: ApiSettings | None = None,
    *,
    analytics: BankingPerformanceAnalytics | None = None,
    web: WebSettings | None = None,
) -> FastAPI:
    """The API over the store ``settings.db`` (or over ``analytics``, left open at shutdown),
    and the web app beside it (``web``: its settings, by default from ``BA_WEB_*``)."""
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = analytics is None
        opened = analytics or BankingPerformanceAnalytics.open(
            settings.db, query_workers=settings.query_workers
        )
        refused = restrict_timezones(opened.engine.timezone_names())
        if refused:
            _log.info("timezones the store's engine does not know: %s", ", ".join(sorted(refused)))
        keys = KeyStore(opened.engine, cache_seconds=settings.key_cache_seconds)
        opened.engine.statement_timeout = settings.statement_timeout_seconds
        audit = AuditLog(opened.engine)
        failures = FailedAuthentications(
            settings.auth_failures_per_minute, settings.auth_failure_burst
        )
        app.state.settings = settings
        app.state.analytics = opened
        app.state.keys = keys
        app.state.audit = audit
        app.state.auth_failures = failures
        app.state.idempotency = IdempotencyStore(
            opened.engine, timedelta(hours=settings.idempotency_retention_hours)
        )
        app.state.plaid_keys = settings.plaid_verification_keys()
        app.state.plaid_items = PlaidItems(opened.engine)
        app.state.authenticator = Authenticator(keys, _tokens(settings))
        app.state.rate_limiter = RateLimiter(
            settings.rate_limit_per_second, settings.rate_limit_burst
        )
        app.state.query_budget = QueryBudget(settings.query_max_cells)
        app.state.admission = AdmissionGate(
            settings.query_concurrency, settings.query_queue, settings.query_queue_seconds
        )
        # Everything alive now lives as long as the server: keep it out of the cyclic
        # collector's full passes, which would otherwise pause random requests (~70 ms).
        gc.collect()
        gc.freeze()
        # The threads running the synchronous routes share the GIL with the event loop,
        # which serves every connection and /healthz: anyio's default of 40 makes it
        # wait its turn behind dozens (benchmarks/http.py, http_health).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        period = settings.auth_failure_audit_seconds
        auditor = asyncio.create_task(audit_failures_periodically(audit, failures, period))
        hub = app.state.stream_hub = StreamHub(opened, settings)
        await hub.start()
        evaluator = _rule_evaluator(opened, settings, hub) if settings.evaluate_rules else None
        try:
            yield
        finally:
            if evaluator is not None:
                await anyio.to_thread.run_sync(evaluator.stop)
            await hub.close()
            auditor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await auditor
            audit_failures(audit, failures, period)
            keys.close()
            if owned:
                opened.close()

    app = FastAPI(
        title="banking-analytics",
        version=__version__,
        summary="Bank-integration health, feature usage and subscription-revenue analytics",
        lifespan=lifespan,
        default_response_class=JSONBody,
        responses=_ERRORS,  # type: ignore[arg-type]
        # The docs pages are the web app's: their assets from an installed package, not a CDN.
        docs_url=None,
        redoc_url=None,
    )
    install_handlers(app)
    _problems_as_problem_json(app)
    # The last added runs first: CORS answers preflights, the gate checks credentials
    # before the body is read, and only then is the body's size counted.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        AuthenticationGate,
        prefix=API_PREFIX,
        public_paths=frozenset(
            {API_PREFIX + webhooks.STRIPE_PATH, API_PREFIX + webhooks.PLAID_PATH}
        ),
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Retry-After", "Idempotent-Replayed"],
            max_age=600,
        )
    # Outermost: the access log times the whole request, refusals included.
    app.add_middleware(AccessLog)
    api = APIRouter(prefix=API_PREFIX)
    routers = (
        performance,
        revenue,
        revenue_impact,
        behavior,
        dashboard,
        metrics,
        events,
        users,
        admin,
        connections,
    )
    monitoring = (
        rules,
        slos,
        alerts,
        backtests,
        insights,
        receivers,
        notification_policy,
        silences,
        deliveries,
        stream,
    )
    behaviour_flows = (funnels, retention, paths)
    for module in (*routers, *behaviour_flows, *monitoring, webhooks):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(health.router)
    # Imported here: the web app builds on this package (its auth, problems, JSON).
    from banking_analytics.web import mount_web

    mount_web(app, web)
    return app

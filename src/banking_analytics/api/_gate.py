"""The authentication gate: who is asking is settled before a byte of the body is read.

FastAPI reads and parses a request's body before it resolves the route's
dependencies, so a check made there comes after an anonymous client has sent
megabytes. This ASGI middleware checks the ``Authorization`` header of every
request under the API prefix first, and answers a missing or bad credential
with 401 and ``Connection: close`` without reading the body. An address with
too many recent failures is answered 429 with ``Retry-After`` before its
credentials are looked at (see :class:`FailedAuthentications`); its failures are
audited in aggregate by :func:`audit_failures_periodically`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from banking_analytics.access import AuditLog
from banking_analytics.api._auth import Authenticator, bearer_token
from banking_analytics.api._problems import ProblemError, problem_response
from banking_analytics.api._ratelimit import FailedAuthentications
from banking_analytics.store import StoreUnavailableError

__all__ = ["AuthenticationGate", "audit_failures", "audit_failures_periodically"]

_log = logging.getLogger("banking_analytics.api")
_UNKNOWN_ADDRESS = "unknown"


class AuthenticationGate:
    """ASGI middleware authenticating requests under ``prefix`` before the app runs; the
    caller is handed to the route's access check in ``scope["state"]["principal"]``.

    ``public_paths`` (exact paths) are let through unauthenticated: routes whose callers
    cannot send our credentials and which prove who they are otherwise (Stripe's
    webhooks are signed); their routes declare the ``public`` policy.
    """

    def __init__(
        self, app: ASGIApp, prefix: str, public_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.prefix = prefix
        self.public_paths = public_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        gated = (path == self.prefix or path.startswith(self.prefix + "/")) and (
            path not in self.public_paths
        )
        if scope["type"] != "http" or not gated:
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        failures: FailedAuthentications = state.auth_failures
        authenticator: Authenticator = state.authenticator
        address = scope["client"][0] if scope.get("client") else _UNKNOWN_ADDRESS
        wait = failures.refused_for(address)
        if wait is not None:
            detail = f"too many failed authentications from {address}; retry in {wait} s"
            await self._refuse(scope, receive, send, 429, detail, {"Retry-After": str(wait)})
            return
        header = _header(scope["headers"], b"authorization")
        try:
            if authenticator.keys_stale:
                # A store read on the event loop would stall every connection (and
                # /healthz) for as long as a busy store takes: read in a thread.
                await run_in_threadpool(authenticator.refresh_keys)
            principal = authenticator.authenticate(bearer_token(header))
        except ProblemError as exc:
            failures.failed(address)
            await self._refuse(scope, receive, send, exc.status, exc.detail, exc.headers)
            return
        except StoreUnavailableError as exc:  # the key cache could not be refreshed
            detail = f"the store is unavailable: {exc}"
            await self._refuse(scope, receive, send, 503, detail, {"Retry-After": "5"})
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        detail: str,
        headers: Mapping[str, str],
    ) -> None:
        # Closing the connection is what spares reading the body: kept alive, the server
        # would have to read (and drop) it to find the next request.
        response = problem_response(
            scope["path"], status, detail, headers={**headers, "Connection": "close"}
        )
        await response(scope, receive, send)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def audit_failures(audit: AuditLog, failures: FailedAuthentications, period: float) -> None:
    """One audit entry per address that failed to authenticate since the last call."""
    for address, (failed, refused) in sorted(failures.drain().items()):
        audit.record(
            actor=f"address:{address}",
            actor_role="anonymous",
            action="authentication_failures",
            outcome="rate_limited" if refused else "denied",
            client_ip=None if address == _UNKNOWN_ADDRESS else address,
            details={"failed": failed, "refused": refused, "period_seconds": period},
        )


async def audit_failures_periodically(
    audit: AuditLog, failures: FailedAuthentications, period: float
) -> None:
    """Every ``period`` seconds, audit the failures since the last time (until cancelled)."""
    while True:
        await asyncio.sleep(period)
        try:
            await run_in_threadpool(audit_failures, audit, failures, period)
        except StoreUnavailableError:
            # The server must not stop over a store that is briefly away; the drained
            # counts are lost, and the log says so.
            _log.warning("failed authentications of the last %g s were not audited", period)

"""One access-log line per HTTP request: method, path, status, duration, caller.

The caller is the key id (``key:<id>``) or end user (``user:<id>``) the
authentication gate settled, ``-`` for requests without one (the web app's pages,
``/healthz``, refused credentials): never a secret. The query string is left out
(it may carry a user's filter values; the route is what an operator looks for).
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from banking_analytics.api._auth import Principal

__all__ = ["ACCESS_LOGGER", "AccessLog"]

#: The logger of the access lines (level INFO); ``banking-analytics serve`` prints it.
ACCESS_LOGGER = logging.getLogger("banking_analytics.api.access")


class AccessLog:
    """ASGI middleware logging each HTTP request once its response has been sent (or has
    failed: status 500 if none was started)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            principal = scope.get("state", {}).get("principal")
            caller = principal.actor if isinstance(principal, Principal) else "-"
            ACCESS_LOGGER.info(
                "%s %s %d %.1f ms %s",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
                caller,
            )

"""Request bodies larger than the limit answer 413 before they are read whole."""

from __future__ import annotations

import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from banking_analytics.api._problems import problem_response

__all__ = ["BodySizeLimit"]


class _BodyTooLargeError(Exception):
    pass


class BodySizeLimit:
    """ASGI middleware: refuses a declared ``Content-Length`` above ``max_bytes`` without
    calling the app, and stops a body sent without one as soon as it passes the limit
    (the app's own answer to the cut-off body is then dropped)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            scope["path"],
            413,
            f"the request body is larger than the limit of {self.max_bytes} bytes",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
        received = 0
        refused = False

        async def counted() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes and not refused:
                    refused = True
                    await self._refuse(scope, receive, send)
                    raise _BodyTooLargeError
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        with contextlib.suppress(_BodyTooLargeError):
            await self.app(scope, counted, unless_refused)

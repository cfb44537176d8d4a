"""Every error the API returns is an RFC 9457 problem: ``application/problem+json``.

``detail`` is one sentence a person can act on and names the field at fault;
``errors`` lists each field's problem when there are several.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from banking_analytics.api._json import dumps
from banking_analytics.metrics import QueryError
from banking_analytics.store import StatementTimeoutError, StoreUnavailableError

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "FieldProblem",
    "Problem",
    "ProblemError",
    "install_handlers",
    "problem_body",
    "problem_response",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
_log = logging.getLogger("banking_analytics.api")


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldProblem] | None = None


class ProblemError(Exception):
    """Raise to answer with a problem; ``headers`` go on the response (``Retry-After``...)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[FieldProblem] = (),
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})
        self.errors = list(errors)


def problem_body(
    instance: str | None, status: int, detail: str, errors: Sequence[FieldProblem] = ()
) -> bytes:
    """The JSON of a problem document."""
    problem = Problem(
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=instance,
        errors=list(errors) or None,
    )
    return dumps(problem.model_dump(exclude_none=True))


def problem_response(
    instance: str,
    status: int,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[FieldProblem] = (),
) -> Response:
    return Response(
        problem_body(instance, status, detail, errors),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def _location(loc: Sequence[int | str]) -> str:
    # ("body", "events", 3, "value") -> "events[3].value"; the part (body/query/...) is
    # said apart so "query.limit" and "body.limit" stay distinct.
    where, *path = loc if loc else ("request",)
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return f"{name} ({where})" if name else str(where)


def _validation_problems(exc: RequestValidationError) -> list[FieldProblem]:
    return [
        FieldProblem(field=_location(tuple(e.get("loc", ()))), message=str(e.get("msg", "")))
        for e in exc.errors()
    ]


def install_handlers(app: FastAPI) -> None:
    """Answer every failure, including unexpected ones, with a problem document."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return problem_response(
            request.url.path, exc.status, exc.detail, headers=exc.headers, errors=exc.errors
        )

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = _validation_problems(exc)
        detail = "; ".join(f"{p.field}: {p.message}" for p in problems[:3])
        if len(problems) > 3:
            detail += f"; and {len(problems) - 3} more"
        return problem_response(request.url.path, 422, detail, errors=problems)

    async def on_query_error(request: Request, exc: Exception) -> Response:
        return problem_response(request.url.path, 422, str(exc))

    async def on_store_unavailable(request: Request, exc: Exception) -> Response:
        # Nothing of the request was stored: it may be sent again as it is.
        return problem_response(
            request.url.path, 503, f"the store is unavailable: {exc}", headers={"Retry-After": "5"}
        )

    async def on_statement_timeout(request: Request, exc: Exception) -> Response:
        # Nothing was changed; the same query may succeed when the store is less busy,
        # and a narrower one (shorter window, coarser bucket, filters) sooner.
        return problem_response(
            request.url.path,
            503,
            f"{exc} and was stopped; narrow it (a shorter window, a coarser bucket, a filter) "
            "or try again later",
            headers={"Retry-After": "5"},
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem_response(request.url.path, exc.status_code, detail, headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        _log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            request.url.path, 500, "an internal error occurred; it has been logged"
        )

    handlers: dict[Any, Any] = {
        ProblemError: on_problem,
        RequestValidationError: on_validation,
        QueryError: on_query_error,
        StoreUnavailableError: on_store_unavailable,
        StatementTimeoutError: on_statement_timeout,
        HTTPException: on_http,
        Exception: on_unexpected,
    }
    for exc_type, handler in handlers.items():
        app.add_exception_handler(exc_type, handler)

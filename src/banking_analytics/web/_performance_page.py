"""The performance dashboard and an institution's drill-down: pages and their data.

The page convention (docs/web.md): one route module, one template and one data
endpoint per dashboard. A page is rendered with its first answer inside it (one
round trip to first paint); the page then polls its data endpoint, with the same
query string, for fresher figures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from banking_analytics._facade import BankingPerformanceAnalytics
from banking_analytics.api._json import JSONBody
from banking_analytics.api._problems import ProblemError
from banking_analytics.api.deps import Admitted
from banking_analytics.metrics import QueryError
from banking_analytics.web._access import SignedIn, SignedInData
from banking_analytics.web._filters import FilterError, Filters
from banking_analytics.web._performance_data import institution_data, performance_data
from banking_analytics.web._settings import WebSettings
from banking_analytics.web._templates import WebProblemError, page, script_json

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
Institution = Path(max_length=128, pattern=r"^[A-Za-z0-9_.:@+=/\-]+$")


def _filters(request: Request) -> Filters:
    return Filters.read(dict(request.query_params))


async def _answer(
    request: Request, compute: Callable[[BankingPerformanceAnalytics, Filters], dict[str, Any]]
) -> tuple[Filters, dict[str, Any]]:
    """The filters of the request and the data they ask for; bad filters raise
    :class:`FilterError`, and a question the store refuses, :class:`QueryError`."""
    filters = _filters(request)
    analytics: BankingPerformanceAnalytics = request.app.state.analytics
    data = await run_in_threadpool(compute, analytics, filters)
    return filters, data


async def _page(
    request: Request,
    session: Any,
    template: str,
    compute: Callable[[BankingPerformanceAnalytics, Filters], dict[str, Any]],
    **context: Any,
) -> Response:
    settings: WebSettings = request.app.state.web_settings
    try:
        filters, data = await _answer(request, compute)
    except (FilterError, QueryError) as exc:
        raise WebProblemError(422, "These filters cannot be shown", str(exc)) from None
    return page(
        request,
        template,
        filters=filters,
        session=session,
        data=data,
        data_json=script_json(data),
        data_url=f"{request.url.path}/data",
        poll_seconds=settings.poll_seconds,
        **context,
    )


async def _data(
    request: Request,
    compute: Callable[[BankingPerformanceAnalytics, Filters], dict[str, Any]],
) -> JSONBody:
    try:
        _, data = await _answer(request, compute)
    except (FilterError, QueryError) as exc:
        raise ProblemError(422, str(exc)) from None
    return JSONBody(data, headers={"Cache-Control": "no-store"})


@router.get("/")
async def home() -> Response:
    return RedirectResponse("/performance", 303)


@router.get("/performance")
async def performance(request: Request, session: SignedIn, _: Admitted) -> Response:
    """The performance dashboard."""
    return await _page(request, session, "performance.html", performance_data)


@router.get("/performance/data")
async def performance_figures(request: Request, _s: SignedInData, _: Admitted) -> JSONBody:
    """The performance dashboard's figures, as the page draws them."""
    return await _data(request, performance_data)


def _of(institution: str) -> Callable[[BankingPerformanceAnalytics, Filters], dict[str, Any]]:
    return lambda analytics, filters: institution_data(analytics, institution, filters)


@router.get("/performance/institutions/{institution}")
async def institution_page(
    request: Request, session: SignedIn, _: Admitted, institution: str = Institution
) -> Response:
    """One institution's drill-down."""
    return await _page(
        request, session, "institution.html", _of(institution), institution=institution
    )


@router.get("/performance/institutions/{institution}/data")
async def institution_figures(
    request: Request, _s: SignedInData, _: Admitted, institution: str = Institution
) -> JSONBody:
    return await _data(request, _of(institution))

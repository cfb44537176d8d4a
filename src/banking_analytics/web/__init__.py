"""The web app: signed-in dashboards served beside the API by the same server.

Pages are rendered on the server (Jinja2) and drawn with plotly.js from the
installed ``plotly`` package; the API docs' assets come from an installed package
too, so nothing is fetched from another site. ``mount_web`` adds the pages to the
API's app; docs/web.md says how a dashboard is added.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.responses import RedirectResponse, Response

from banking_analytics.web._access import SignInRequiredError
from banking_analytics.web._assets import router as _assets
from banking_analytics.web._performance_page import router as _performance
from banking_analytics.web._settings import WebSettings
from banking_analytics.web._signin import router as _signin
from banking_analytics.web._templates import WebProblemError, problem_page

__all__ = ["WebSettings", "mount_web"]


def mount_web(app: FastAPI, settings: WebSettings | None = None) -> None:
    """Serve the web app's pages, its static files and the offline API docs from ``app``
    (made with ``docs_url=None, redoc_url=None``)."""
    settings = settings or WebSettings()
    app.state.web_settings = settings
    for router in (_assets, _signin, _performance):
        app.include_router(router)

    async def sign_in_first(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequiredError)
        return RedirectResponse(f"/signin?next={exc.next_url}", 303)

    async def show_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WebProblemError)
        return problem_page(request, exc)

    app.add_exception_handler(SignInRequiredError, sign_in_first)
    app.add_exception_handler(WebProblemError, show_problem)

"""Rendering pages: one Jinja2 environment (HTML autoescaped), a page response with the
headers every page carries, and the problem page of a request that cannot be answered."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

__all__ = ["PAGE_HEADERS", "WebProblemError", "page", "problem_page", "script_json"]

_HERE = Path(__file__).parent
#: Scripts and styles only from this server; plotly.js sets inline styles on its charts.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class WebProblemError(Exception):
    """A request a page cannot answer: shown as a page saying why, with its status."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def script_json(value: Any) -> str:
    """JSON safe to place inside a ``<script type="application/json">`` element."""
    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A rendered page; ``context`` reaches the template beside ``request``."""
    html = _environment().get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def problem_page(request: Request, problem: WebProblemError, **context: Any) -> HTMLResponse:
    return page(request, "problem.html", problem.status, problem=problem, **context)

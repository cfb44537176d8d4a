"""Files the pages load, all from this server: the app's own scripts and styles,
plotly.js from the installed ``plotly`` package, and the API docs' Swagger UI from
the installed ``fastapi_offline`` package (no CDN: machines may be offline). There is
no ReDoc page: its sidebar loads a logo from its maker's CDN."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import FileResponse, HTMLResponse, Response

from banking_analytics.api._problems import ProblemError

__all__ = ["ASSETS", "router"]

router = APIRouter(include_in_schema=False)
_STATIC = Path(__file__).parent / "static"
_PLOTLY = Path(str(files("plotly"))) / "package_data" / "plotly.min.js"
_DOCS = Path(str(files("fastapi_offline"))) / "static"
#: Every file served under /static, by its public name.
ASSETS: dict[str, Path] = {
    **{f.name: f for f in _STATIC.iterdir() if f.is_file()},
    "plotly.min.js": _PLOTLY,
    "swagger-ui-bundle.js": _DOCS / "swagger-ui-bundle.js",
    "swagger-ui.css": _DOCS / "swagger-ui.css",
    "favicon.png": _DOCS / "favicon.png",
}


@router.get("/static/{name}")
async def asset(name: str) -> Response:
    path = ASSETS.get(name)
    if path is None:
        raise ProblemError(404, f"no static file {name!r}")
    # Cached an hour: a new release's files are fetched again soon after an upgrade.
    return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} - API docs",
        swagger_js_url="/static/swagger-ui-bundle.js",
        swagger_css_url="/static/swagger-ui.css",
        swagger_favicon_url="/static/favicon.png",
        # No badge from the online validator: the page fetches nothing from elsewhere.
        swagger_ui_parameters={"validatorUrl": None},
    )

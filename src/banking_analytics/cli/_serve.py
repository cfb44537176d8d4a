"""``banking-analytics serve``: the REST API over a store, through uvicorn."""

from __future__ import annotations

import copy
import os
import socket
from typing import TYPE_CHECKING, Annotated, Any

import typer

from banking_analytics.cli import DEFAULT_DB, DbOption, _open, app, fail, out, store_shown

if TYPE_CHECKING:
    from banking_analytics._facade import BankingPerformanceAnalytics
    from banking_analytics.api import ApiSettings

# The web stack (FastAPI, pydantic, uvicorn, PyJWT) is imported only by the commands
# that serve: every other command starts a quarter of a second sooner without it.

__all__ = ["check_port", "serve", "serve_store"]

HostOption = Annotated[str, typer.Option(help="Address to listen on", envvar="BA_HOST")]
WorkersOption = Annotated[
    int,
    typer.Option(
        min=1,
        max=64,
        help="Server processes; above 1 needs a PostgreSQL store (one process holds a DuckDB file)",
        envvar="BA_WORKERS",
    ),
]
PortOption = Annotated[
    int, typer.Option(min=1, max=65535, help="Port to listen on", envvar="BA_PORT")
]


def _settings(db: str, **given: object) -> ApiSettings:
    from pydantic import ValidationError

    from banking_analytics.api import ApiSettings

    try:
        return ApiSettings(db=db, **given)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise fail(f"BA_{where.upper()}: {first['msg']}") from None


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, with the project's loggers (the access lines of
    ``banking_analytics.api.access``, one per request, and the warnings) on its stderr handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["banking_analytics"] = {
        "handlers": ["default"],
        "level": "INFO",
        "propagate": False,
    }
    return config


def _run(target: object, host: str, port: int, **options: object) -> None:
    import uvicorn

    uvicorn.run(
        target,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_level="info",
        # uvicorn's own access line has no caller; the app writes one that has.
        access_log=False,
        log_config=_log_config(),
        **options,  # type: ignore[arg-type]
    )


def check_port(host: str, port: int) -> None:
    """Fail in one line (exit 2) if nothing can listen on ``host:port``, e.g. it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        # As uvicorn binds (SO_REUSEADDR): a port left in TIME_WAIT is free.
        with socket.create_server((host, port), family=family):
            pass
    except OSError as exc:
        raise fail(
            f"cannot serve on {host}:{port}: {exc.strerror or exc}; another server may be "
            "using it: stop it, or choose another port (--port 8001; make demo PORT=8001)"
        ) from None


def serve_store(
    analytics: BankingPerformanceAnalytics,
    db: str,
    host: str,
    port: int,
    *,
    admin_key: str | None,
) -> None:
    """Serve an open store until interrupted; print ``admin_key`` (the demo's) first, if any."""
    from banking_analytics.api import API_PREFIX, create_app, uvicorn_options

    # One process serves the store: it evaluates the alert rules too.
    settings = _settings(db, evaluate_rules=True)
    base = f"http://{host}:{port}"
    if admin_key is not None:
        out.print(
            f"\n[bold]Admin API key[/]: {admin_key}\n"
            f"Web app:   {base}/  (sign in with the key above)\n"
            f"API docs:  {base}/docs\n"
            f"Try:       curl -H 'Authorization: Bearer {admin_key}' "
            f"'{base}{API_PREFIX}/performance/connection?time_period=24h'\n"
            f"           curl -H 'Authorization: Bearer {admin_key}' "
            f"'{base}{API_PREFIX}/dashboard/performance'",
            soft_wrap=True,
        )
    shown = store_shown(analytics.engine.url)
    out.print(f"Serving {shown} on {base} (web app: {base}/, docs: {base}/docs); Ctrl-C stops")
    _run(create_app(settings, analytics=analytics), host, port, **uvicorn_options(settings))


@app.command()
def serve(
    db: DbOption = DEFAULT_DB,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    workers: WorkersOption = 1,
) -> None:
    """Serve the REST API (OpenAPI docs at /docs) and the web app (at /).

    Settings: BA_* and BA_WEB_* environment variables."""
    check_port(host, port)
    if workers == 1:
        with _open(db, announce=False) as analytics:
            serve_store(analytics, db, host, port, admin_key=None)
        return
    if not db.startswith(("postgresql://", "postgres://")):
        raise fail("--workers above 1 needs a PostgreSQL store: one process holds a DuckDB file")
    settings = _settings(db)
    with _open(db, announce=False) as analytics:
        shown = (
            analytics.engine.url
        )  # the store answers and its tables exist before the workers start
    # Each worker builds its own app from the environment (create_app reads BA_*).
    os.environ["BA_DB"] = db
    out.print(f"Serving {shown} on http://{host}:{port} with {workers} workers; Ctrl-C stops")
    out.print("Alert rules are evaluated by `banking-analytics monitor`: run it beside them.")
    _run(
        "banking_analytics.api:create_app",
        host,
        port,
        factory=True,
        workers=workers,
        # By name: each worker builds it from the same BA_* environment.
        http="banking_analytics.api._connections:EnvironmentProtocol",
        timeout_keep_alive=settings.keep_alive_seconds,
    )

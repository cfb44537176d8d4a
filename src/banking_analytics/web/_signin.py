"""Signing in with an API key (analyst or admin) and signing out."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from banking_analytics.api._auth import Authenticator
from banking_analytics.api._problems import ProblemError
from banking_analytics.api._ratelimit import FailedAuthentications
from banking_analytics.web._access import SignedIn, current_session, sessions_of
from banking_analytics.web._sessions import CSRF_COOKIE, SESSION_COOKIE, WEB_ROLES, same_token
from banking_analytics.web._templates import WebProblemError, page

__all__ = ["check_origin", "router", "safe_next"]

router = APIRouter(include_in_schema=False)
_HOME = "/performance"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return _HOME
    return target


def check_origin(request: Request) -> None:
    """A form posted from another site is refused (browsers send ``Origin`` with POSTs)."""
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.url.netloc}"
    if origin is not None and origin != own:
        raise WebProblemError(403, "Refused", "This form was sent from another site.")


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """A cookie scripts cannot read, sent only to this site, over HTTPS when served so."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="strict",
        path="/",
    )


def _form(
    request: Request, status: int = 200, error: str | None = None, next_url: str | None = None
) -> Response:
    token = secrets.token_urlsafe(32)
    response = page(
        request,
        "signin.html",
        status,
        csrf=token,
        error=error,
        next_url=safe_next(next_url or request.query_params.get("next")),
    )
    _set_cookie(response, request, CSRF_COOKIE, token, 3600)
    return response


@router.get("/signin")
async def signin_form(request: Request) -> Response:
    if await current_session(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), 303)
    return _form(request)


@router.post("/signin")
async def signin(
    request: Request,
    key: Annotated[str, Form(max_length=256)] = "",
    csrf: Annotated[str, Form(max_length=256)] = "",
    next_url: Annotated[str, Form(alias="next", max_length=2048)] = "",
) -> Response:
    """Check the key (a 401 form when unknown, 403 for an ingest key), then start a session."""
    check_origin(request)
    if not same_token(csrf, request.cookies.get(CSRF_COOKIE)):
        raise WebProblemError(
            403,
            "Refused",
            "The sign-in form had expired or was not this site's: open the sign-in page again.",
        )
    failures: FailedAuthentications = request.app.state.auth_failures
    address = request.client.host if request.client else "unknown"
    wait = failures.refused_for(address)
    if wait is not None:
        return _form(request, 429, f"Too many failed sign-ins: try again in {wait} s.", next_url)
    authenticator: Authenticator = request.app.state.authenticator
    if authenticator.keys_stale:
        await run_in_threadpool(authenticator.refresh_keys)
    try:
        principal = authenticator.authenticate(key.strip() or None)
    except ProblemError:
        failures.failed(address)
        return _form(request, 401, "That key is unknown, revoked or expired.", next_url)
    if principal.role not in WEB_ROLES or principal.key_id is None:
        return _form(
            request,
            403,
            "This key may not sign in: the web app is for analyst and admin keys "
            "(an ingest key only sends events).",
            next_url,
        )
    sessions = sessions_of(request)
    session_id, _ = await run_in_threadpool(sessions.create, principal.key_id, principal.role)
    response = RedirectResponse(safe_next(next_url), 303)
    _set_cookie(response, request, SESSION_COOKIE, session_id, int(sessions.lifetime_seconds))
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.post("/signout")
async def signout(
    request: Request,
    session: SignedIn,
    csrf: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    """End the session (its cookie signs no one in any more) and forget the cookie."""
    check_origin(request)
    if not same_token(csrf, session.csrf):
        raise WebProblemError(403, "Refused", "The sign-out form was not this page's: reload it.")
    await run_in_threadpool(sessions_of(request).end, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/signin", 303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response

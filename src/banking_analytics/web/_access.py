"""Who is signed in: the session a request's cookie names, its key checked again."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from banking_analytics._facade import BankingPerformanceAnalytics
from banking_analytics.access import KeyStore
from banking_analytics.api._auth import Principal
from banking_analytics.api._problems import ProblemError
from banking_analytics.web._sessions import (
    SESSION_COOKIE,
    WEB_ROLES,
    Session,
    SessionStore,
    session_store,
)
from banking_analytics.web._settings import WebSettings
from banking_analytics.web._templates import WebProblemError

__all__ = ["SignInRequiredError", "SignedIn", "SignedInData", "current_session", "sessions_of"]


class SignInRequiredError(Exception):
    """No session: the page redirects to the sign-in form, coming back to ``next`` after."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def sessions_of(request: Request) -> SessionStore:
    """The app's sessions, in the store it serves."""
    settings: WebSettings = request.app.state.web_settings
    analytics: BankingPerformanceAnalytics = request.app.state.analytics
    return session_store(request.app.state, analytics.engine, settings.session_hours * 3600)


async def current_session(request: Request) -> Session | None:
    """The request's live session (its key still active), or None."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    sessions = sessions_of(request)
    session = await run_in_threadpool(sessions.get, session_id)
    if session is None:
        return None
    keys: KeyStore = request.app.state.keys
    if keys.stale:
        await run_in_threadpool(keys.refresh)
    key = keys.active_key(session.key_id)
    if key is None or key.role not in WEB_ROLES:
        # The key was revoked or expired since: its sessions end.
        await run_in_threadpool(sessions.end, session_id)
        return None
    # For the access log, as the API's gate does.
    request.state.principal = Principal(role=key.role, key_id=key.key_id)
    return session


async def _page_session(request: Request) -> Session:
    session = await current_session(request)
    if session is not None:
        return session
    if request.cookies.get(SESSION_COOKIE):
        raise WebProblemError(
            401,
            "Signed out",
            "Your session has ended or is not valid (signed out, expired, or its key "
            "revoked): sign in again.",
        )
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    raise SignInRequiredError(quote(target, safe="/"))


async def _data_session(request: Request) -> Session:
    session = await current_session(request)
    if session is None:
        raise ProblemError(401, "sign in to the web app first (no live session)")
    return session


#: A page's signed-in person; without a session, the sign-in page.
SignedIn = Annotated[Session, Depends(_page_session)]
#: A data endpoint's signed-in person; without a session, 401 problem+json.
SignedInData = Annotated[Session, Depends(_data_session)]

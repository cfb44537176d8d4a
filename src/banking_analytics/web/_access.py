"""Who is signed in: the session a request's cookie names, its key checked again."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from banking_analytics.api._auth import Authenticator
from banking_analytics.api._problems import ProblemError
from banking_analytics.web._sessions import SESSION_COOKIE, WEB_ROLES, Session, SessionStore
from banking_analytics.web._templates import WebProblemError

__all__ = ["SignInRequiredError", "SignedIn", "SignedInData", "current_session"]


class SignInRequiredError(Exception):
    """No session: the page redirects to the sign-in form, coming back to ``next`` after."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


async def current_session(request: Request) -> Session | None:
    """The request's live session (its key still active), or None."""
    sessions: SessionStore = request.app.state.web_sessions
    session_id = request.cookies.get(SESSION_COOKIE)
    session = sessions.get(session_id)
    if session is None:
        return None
    authenticator: Authenticator = request.app.state.authenticator
    if authenticator.keys_stale:
        await run_in_threadpool(authenticator.refresh_keys)
    try:
        principal = authenticator.authenticate(session.token)
    except ProblemError:  # the key was revoked or expired since: its sessions end
        sessions.end(session_id)
        return None
    request.state.principal = principal  # for the access log, as the API's gate does
    return session if principal.role in WEB_ROLES else None


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

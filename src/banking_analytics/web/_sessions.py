"""Sign-in sessions of the web app, kept server-side, and their CSRF tokens.

A person signs in with an API key of the analyst or admin role; the server keeps
the session (the key, its role, a CSRF token, an expiry) in memory and hands the
browser only a random session id, in a cookie that is HttpOnly, SameSite=Strict,
Secure over HTTPS and expires with the session. Every request re-checks the key,
so revoking it ends its sessions; signing out forgets the session at once.
Sessions live in the serving process: a restart signs everyone out.

State-changing forms carry a CSRF token: the session's own, or, before signing
in, one also set in a cookie (double submit), compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from banking_analytics.access import Role

__all__ = ["CSRF_COOKIE", "SESSION_COOKIE", "Session", "SessionStore", "same_token"]

SESSION_COOKIE = "ba_session"
CSRF_COOKIE = "ba_csrf"
#: The roles that may sign in to the web app (an ingest key only sends events).
WEB_ROLES = frozenset({Role.ADMIN, Role.ANALYST})


def same_token(given: str | None, expected: str | None) -> bool:
    """Whether two tokens are present and equal, compared in constant time."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def _digest(session_id: str) -> str:
    # Held by digest: the ids in memory are not cookies that would let one in.
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in person: the key they signed in with, its role and id, and the CSRF
    token their forms carry."""

    token: str = field(repr=False)
    key_id: str
    role: Role
    csrf: str = field(repr=False)
    expires_at: float


class SessionStore:
    """Sessions by id, each lasting ``lifetime_seconds`` from sign-in; thread-safe."""

    def __init__(self, lifetime_seconds: float) -> None:
        self.lifetime_seconds = lifetime_seconds
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, token: str, key_id: str, role: Role) -> tuple[str, Session]:
        """A new session for a checked key: its id (the cookie's value) and itself."""
        session_id = secrets.token_urlsafe(32)
        session = Session(
            token=token,
            key_id=key_id,
            role=role,
            csrf=secrets.token_urlsafe(32),
            expires_at=time.time() + self.lifetime_seconds,
        )
        now = time.time()
        with self._lock:
            self._sessions = {k: s for k, s in self._sessions.items() if s.expires_at > now} | {
                _digest(session_id): session
            }
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of that id; None if unknown, ended or expired."""
        if not session_id:
            return None
        session = self._sessions.get(_digest(session_id))
        if session is None or session.expires_at <= time.time():
            return None
        return session

    def end(self, session_id: str | None) -> None:
        """Forget a session (signing out): its cookie no longer signs anyone in."""
        if session_id:
            with self._lock:
                self._sessions.pop(_digest(session_id), None)

"""Sign-in sessions of the web app, kept in the store, and their CSRF tokens.

A person signs in with an API key of the analyst or admin role; the server keeps
the session in the store's ``web_sessions`` table and hands the browser only a
random session id (256 bits), in a cookie that is HttpOnly, SameSite=Strict,
Secure over HTTPS and expires with the session. The table holds the id's SHA-256
(whoever reads the store holds no cookie that signs in), the key's id and role,
the session's CSRF token and its expiry; never the key itself. Every request
reads the session by its hash and checks its key again (revoking the key ends its
sessions), so any server process on the same store knows every session, and a
restart signs no one out. Signing out deletes the row; expired rows are deleted
whenever someone signs in.

State-changing forms carry a CSRF token: the session's own, or, before signing
in, one also set in a cookie (double submit), compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlglot
from sqlglot import exp
from starlette.datastructures import State

from banking_analytics.access import Role
from banking_analytics.events import Kind
from banking_analytics.store import Column, Engine, TableDef
from banking_analytics.store.statements import column, insert_row, select_all, table

__all__ = [
    "CSRF_COOKIE",
    "SESSION_COOKIE",
    "WEB_SESSIONS",
    "Session",
    "SessionStore",
    "same_token",
    "session_store",
]

SESSION_COOKIE = "ba_session"
CSRF_COOKIE = "ba_csrf"
#: The roles that may sign in to the web app (an ingest key only sends events).
WEB_ROLES = frozenset({Role.ADMIN, Role.ANALYST})

WEB_SESSIONS = TableDef(
    "web_sessions",
    (
        Column("session_hash", Kind.TEXT, nullable=False),
        Column("key_id", Kind.TEXT, nullable=False),
        Column("role", Kind.TEXT, nullable=False),
        Column("csrf", Kind.TEXT, nullable=False),
        Column("created_at", Kind.TIMESTAMP, nullable=False),
        Column("expires_at", Kind.TIMESTAMP, nullable=False),
    ),
    lookup_columns=("session_hash",),
)


def same_token(given: str | None, expected: str | None) -> bool:
    """Whether two tokens are present and equal, compared in constant time."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in person: the id and role of the key they signed in with, the CSRF token
    their forms carry, and when the session ends (UTC)."""

    key_id: str
    role: Role
    csrf: str = field(repr=False)
    expires_at: datetime


class SessionStore:
    """Sessions in ``engine``'s store, each lasting ``lifetime_seconds`` from sign-in.

    Thread-safe; several processes may share one store (PostgreSQL).
    """

    def __init__(self, engine: Engine, lifetime_seconds: float) -> None:
        engine.migrate([WEB_SESSIONS])
        self.engine = engine
        self.lifetime_seconds = lifetime_seconds
        dialect = engine.dialect
        hash_is = column("session_hash").eq(exp.Placeholder())
        self._sql_insert = insert_row(WEB_SESSIONS).sql(dialect)
        self._sql_live = (
            select_all(WEB_SESSIONS)
            .where(hash_is)
            .where(column("expires_at") > exp.Placeholder())
            .sql(dialect)
        )
        self._sql_end = sqlglot.delete(table(WEB_SESSIONS), where=hash_is).sql(dialect)
        self._sql_purge = sqlglot.delete(
            table(WEB_SESSIONS), where=column("expires_at") <= exp.Placeholder()
        ).sql(dialect)

    def create(self, key_id: str, role: Role) -> tuple[str, Session]:
        """A new session for a checked key: its id (the cookie's value) and itself. Sessions
        expired by now are deleted in the same transaction."""
        session_id = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        session = Session(
            key_id=key_id,
            role=role,
            csrf=secrets.token_urlsafe(32),
            expires_at=now + timedelta(seconds=self.lifetime_seconds),
        )
        row = {
            "session_hash": _digest(session_id),
            "key_id": key_id,
            "role": role.value,
            "csrf": session.csrf,
            "created_at": now,
            "expires_at": session.expires_at,
        }
        with self.engine.begin() as tx:
            tx.execute(self._sql_purge, [now])
            tx.execute(self._sql_insert, [row[name] for name in WEB_SESSIONS.column_names])
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of that id; None if unknown, ended or expired."""
        if not session_id or len(session_id) > 128:
            return None
        rows = self.engine.query(self._sql_live, [_digest(session_id), datetime.now(UTC)])
        if not rows.num_rows:
            return None
        row = rows.to_pylist()[0]
        return Session(row["key_id"], Role(row["role"]), row["csrf"], row["expires_at"])

    def end(self, session_id: str | None) -> None:
        """Delete a session (signing out): its cookie no longer signs anyone in, on any
        process serving the store."""
        if session_id:
            with self.engine.begin() as tx:
                tx.execute(self._sql_end, [_digest(session_id)])


_made = threading.Lock()


def session_store(state: State, engine: Engine, lifetime_seconds: float) -> SessionStore:
    """The app's session store over ``engine`` (made, and its table created, on first use:
    the store opens when the app starts serving)."""
    store = getattr(state, "web_sessions", None)
    if isinstance(store, SessionStore) and store.engine is engine:
        return store
    with _made:
        store = getattr(state, "web_sessions", None)
        if not (isinstance(store, SessionStore) and store.engine is engine):
            store = SessionStore(engine, lifetime_seconds)
            state.web_sessions = store
        return store

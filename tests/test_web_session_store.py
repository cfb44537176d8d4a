"""Web sessions live in the store: a server started later, or another one serving the same
store, knows them; signing out ends them everywhere; the store keeps no cookie; expired
ones are deleted. On both engines, over real HTTP (no browser: these are cookies)."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from api_server import issue_key, running
from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.access import Role
from banking_analytics.api import ApiSettings
from banking_analytics.web._sessions import WEB_SESSIONS, SessionStore


def _sign_in(base: str, key: str) -> str:
    """Sign in through the form; the session cookie's value."""
    with httpx.Client(base_url=base) as client:
        form = client.get("/signin")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        answer = client.post("/signin", data={"key": key, "csrf": token[1]})
        assert answer.status_code == 303, answer.text
        return str(client.cookies["ba_session"])


def _signed_in(base: str, session: str) -> bool:
    """Whether the server knows the session: its sign-in page sends a signed-in person on."""
    answer = httpx.get(f"{base}/signin", cookies={"ba_session": session})
    assert answer.status_code in (200, 303), answer.text
    return answer.status_code == 303


def _sign_out(base: str, session: str) -> None:
    with httpx.Client(base_url=base, cookies={"ba_session": session}) as client:
        page = client.get("/performance?period=1h")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None, page.text[:500]
        answer = client.post("/signout", data={"csrf": token[1]})
        assert answer.status_code == 303, answer.text


def test_a_session_outlives_a_restart_and_is_known_to_every_server(store_url: str) -> None:
    key = issue_key(store_url, Role.ANALYST, "web sessions")
    settings = ApiSettings(db=store_url, key_cache_seconds=0)
    with running(settings) as first:
        session = _sign_in(first, key)
        assert _signed_in(first, session)
    # A restart: a new server (new process state) on the same store.
    with running(settings) as restarted:
        assert _signed_in(restarted, session)
        if store_url.startswith("postgresql"):
            # Two servers at once (a DuckDB file has one process): one signs out, the
            # other no longer knows the session.
            with running(settings) as other:
                assert _signed_in(other, session)
                _sign_out(other, session)
                assert not _signed_in(other, session)
                assert not _signed_in(restarted, session)
        else:
            _sign_out(restarted, session)
            assert not _signed_in(restarted, session)


def test_the_store_keeps_a_hash_and_deletes_expired_sessions(store_url: str) -> None:
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        brief = SessionStore(analytics.engine, lifetime_seconds=0.2)
        expired, _ = brief.create("key1", Role.ANALYST)
        time.sleep(0.3)
        assert brief.get(expired) is None
        sessions = SessionStore(analytics.engine, lifetime_seconds=3600)
        live, session = sessions.create("key2", Role.ADMIN)
        assert sessions.get(live) == session
        stored = analytics.engine.query(f"SELECT * FROM {WEB_SESSIONS.name}").to_pylist()
        # The expired session went when the next one began; the row holds no cookie.
        assert [row["key_id"] for row in stored] == ["key2"]
        assert live not in str(stored)
        assert stored[0]["csrf"] == session.csrf
        sessions.end(live)
        assert sessions.get(live) is None
        assert analytics.engine.query(f"SELECT * FROM {WEB_SESSIONS.name}").num_rows == 0


@pytest.mark.parametrize("cookie", ["", "x" * 200, "not-a-session"])
def test_an_unknown_cookie_is_no_session(cookie: str) -> None:
    with BankingPerformanceAnalytics.open("duckdb:///:memory:") as analytics:
        assert SessionStore(analytics.engine, 60).get(cookie) is None

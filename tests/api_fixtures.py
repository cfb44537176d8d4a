"""Fixtures of the API tests: a live server over a fresh store, keys per role, user tokens."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import jwt
import pytest

from api_server import running
from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.access import KeyStore, Role
from banking_analytics.api import ApiSettings

JWT_SECRET = "test-secret-that-is-at-least-32-bytes-long!"


@dataclass
class LiveAPI:
    """A served API over a fresh store, with one key per role and end-user tokens."""

    url: str
    analytics: BankingPerformanceAnalytics
    keys: dict[str, str]
    client: httpx.Client

    def as_key(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def as_user(self, user_id: str, **claims: object) -> dict[str, str]:
        payload = {"sub": user_id, "exp": int(time.time()) + 600, **claims}
        return {"Authorization": f"Bearer {jwt.encode(payload, JWT_SECRET, algorithm='HS256')}"}


def api_settings(analytics: BankingPerformanceAnalytics, **overrides: object) -> ApiSettings:
    values: dict[str, object] = {
        "db": analytics.engine.url,
        "jwt_hs256_secret": JWT_SECRET,
        "rate_limit_per_second": 1000,
        "rate_limit_burst": 1000,
        # The authorisation matrix sends an anonymous request to every route: more than the
        # default burst of failed authentications once there are over 20 routes.
        "auth_failure_burst": 1000,
        "key_cache_seconds": 0,
        **overrides,
    }
    return ApiSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def live_api(analytics: BankingPerformanceAnalytics) -> Iterator[LiveAPI]:
    """The REST API served by uvicorn over HTTP on loopback, on each engine."""
    store = KeyStore(analytics.engine)
    keys = {role.value: store.create(f"test {role.value}", role).secret for role in Role}
    with (
        running(api_settings(analytics), analytics=analytics) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        yield LiveAPI(url, analytics, keys, client)

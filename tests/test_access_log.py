"""``banking-analytics serve`` writes one access line per request: method, path, status,
duration and the caller's key id, never the key."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from api_server import Server, issue_key
from banking_analytics.access import Role

pytestmark = pytest.mark.duckdb

LINE = re.compile(r"(GET|POST) (\S+) (\d{3}) (\d+\.\d) ms (\S+)$")


def test_each_request_is_one_line_naming_the_key_id(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path}/store.duckdb"
    key = issue_key(url, Role.ANALYST, "logged")
    token = re.fullmatch(r"ba_live_([a-z2-7]{16})_(\S+)", key)
    assert token is not None
    key_id, secret = token.groups()
    log = tmp_path / "server.log"
    server = Server(url, log)
    server.start()
    try:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.url, timeout=30) as client:
            client.get("/api/banking-analytics/performance/connection?time_period=24h",
                       headers=headers)  # fmt: skip
            client.get("/api/banking-analytics/admin/keys", headers=headers)  # 403: analyst
            client.get("/api/banking-analytics/performance/connection")  # 401: no key
            client.get("/signin")
    finally:
        server.stop()
    text = log.read_text()
    assert key not in text
    assert secret not in text  # not even the secret half
    lines = [m.groups() for m in map(LINE.search, text.splitlines()) if m is not None]
    requests = [(method, path, status, caller) for method, path, status, _, caller in lines]
    assert requests[-4:] == [
        ("GET", "/api/banking-analytics/performance/connection", "200", f"key:{key_id}"),
        ("GET", "/api/banking-analytics/admin/keys", "403", f"key:{key_id}"),
        ("GET", "/api/banking-analytics/performance/connection", "401", "-"),
        ("GET", "/signin", "200", "-"),
    ]
    assert "?time_period" not in text

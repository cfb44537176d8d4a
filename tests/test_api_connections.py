"""Connection hygiene over real sockets against a real uvicorn server (``banking-analytics
serve``'s protocol and limits): slow, oversized, anonymous and greedy clients are cut
off, and a legitimate client is served meanwhile.

Most of this happens before the app touches a store, so those tests run on a DuckDB
store only; what writes to the store (the audit of failed authentications) runs on
both engines.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api_fixtures import api_settings
from api_server import running
from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.access import AuditLog, KeyStore, Role

PREFIX = "/api/banking-analytics"
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
#: Scheduling on a shared, loaded machine: how late past its deadline a close may come.
SLACK = 8.0


@pytest.fixture
def duckdb_analytics(tmp_path: Path) -> Iterator[BankingPerformanceAnalytics]:
    with BankingPerformanceAnalytics.open(f"duckdb:///{tmp_path}/store.duckdb") as analytics:
        yield analytics


def _key(analytics: BankingPerformanceAnalytics, role: Role) -> str:
    return KeyStore(analytics.engine).create(f"test {role.value}", role).secret


def _address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


def _exchange(base: str, request: bytes, timeout: float = 30.0) -> tuple[bytes, bool]:
    """Send ``request`` on a fresh socket; what came back, and whether the server closed."""
    with socket.create_connection(_address(base), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return answer, False
            if not chunk:
                return answer, True
            answer += chunk


def _status_and_type(answer: bytes) -> tuple[int, str]:
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    lines = head.split("\r\n")
    types = [line.split(":", 1)[1].strip() for line in lines if line.startswith("content-type:")]
    return int(lines[0].split()[1]), types[0] if types else ""


# -- authentication before the body ---------------------------------------------------------


@pytest.mark.parametrize("authorization", [b"", b"Authorization: Bearer ba_live_wrong\r\n"])
def test_a_large_body_is_not_read_before_its_credentials_are_refused(
    duckdb_analytics: BankingPerformanceAnalytics, authorization: bytes
) -> None:
    # 8 MB declared and none of it sent: a server that read the body first would wait
    # for it (the socket times out); this one answers 401 at once and hangs up.
    request = (
        f"POST {PREFIX}/events/batch HTTP/1.1\r\nHost: t\r\n".encode()
        + authorization
        + b"Content-Type: application/json\r\nContent-Length: 8000000\r\n\r\n"
    )
    with running(api_settings(duckdb_analytics), analytics=duckdb_analytics) as base:
        answer, closed = _exchange(base, request)
    assert _status_and_type(answer) == (401, "application/problem+json")
    assert b"www-authenticate: bearer" in answer.lower()
    assert closed


# -- header and body deadlines --------------------------------------------------------------


async def _trickle(host: str, port: int, head: bytes, every: float) -> tuple[float, bytes]:
    """Open a connection, send ``head``, then a byte every ``every`` s until the server
    hangs up; the seconds that took and what it answered."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(head)
    answer = b""

    async def read_all() -> None:
        nonlocal answer
        while chunk := await reader.read(65536):
            answer += chunk

    reading = asyncio.ensure_future(read_all())
    try:
        while not reading.done():
            await asyncio.wait({reading}, timeout=every)
            if not reading.done() and not writer.is_closing():
                try:
                    writer.write(b"x")
                    await writer.drain()
                except ConnectionError:
                    break
        await asyncio.wait_for(reading, timeout=5)
    except (ConnectionError, TimeoutError):
        pass
    finally:
        writer.close()
    return time.monotonic() - started, answer


async def _served_meanwhile(base: str, key: str, until: asyncio.Task[object]) -> list[int]:
    """A legitimate client asking for a report, one request after another, until ``until``."""
    statuses = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while not until.done():
            response = await client.get(
                f"{PREFIX}/performance/connection", headers={"Authorization": f"Bearer {key}"}
            )
            statuses.append(response.status_code)
            await asyncio.sleep(0.1)
    return statuses


def test_slow_trickles_are_closed_within_the_deadlines_while_a_client_is_served(
    duckdb_analytics: BankingPerformanceAnalytics,
) -> None:
    ingest = _key(duckdb_analytics, Role.INGEST)
    analyst = _key(duckdb_analytics, Role.ANALYST)
    settings = api_settings(
        duckdb_analytics,
        header_timeout_seconds=HEADER_TIMEOUT,
        body_timeout_seconds=BODY_TIMEOUT,
    )
    # 75 trickle their headers a byte at a time, 75 their body (after valid credentials).
    head_trickle = f"GET {PREFIX}/performance/connection HTTP/1.1\r\nHost: t\r\nX-Slow: ".encode()
    body_trickle = (
        f"POST {PREFIX}/events/batch HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {ingest}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    ).encode()

    async def scenario(base: str) -> tuple[list[tuple[float, bytes]], list[int]]:
        host, port = _address(base)
        trickles = asyncio.gather(
            *(_trickle(host, port, head_trickle, 0.5) for _ in range(75)),
            *(_trickle(host, port, body_trickle, 0.5) for _ in range(75)),
        )
        served = asyncio.ensure_future(_served_meanwhile(base, analyst, trickles))
        closed = await trickles
        return closed, await served

    with running(settings, analytics=duckdb_analytics) as base:
        closed, statuses = asyncio.run(scenario(base))
    assert len(closed) == 150
    for seconds, answer in closed[:75]:
        assert seconds < HEADER_TIMEOUT + SLACK
        assert _status_and_type(answer) == (408, "application/problem+json")
        assert b"headers did not arrive within 1 s" in answer
    for seconds, answer in closed[75:]:
        assert seconds < BODY_TIMEOUT + SLACK
        assert _status_and_type(answer) == (408, "application/problem+json")
        assert b"body did not arrive within 2 s" in answer
    assert statuses
    assert set(statuses) == {200}


def test_connections_with_unfinished_headers_are_closed(
    duckdb_analytics: BankingPerformanceAnalytics,
) -> None:
    settings = api_settings(duckdb_analytics, header_timeout_seconds=HEADER_TIMEOUT)
    with running(settings, analytics=duckdb_analytics) as base:
        sockets = [socket.create_connection(_address(base), timeout=30) for _ in range(100)]
        try:
            for i, sock in enumerate(sockets):
                # Some never send a byte; the others stop before the blank line.
                if i % 2:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
            assert httpx.get(f"{base}/healthz").status_code == 200
            started = time.monotonic()
            answers = []
            for sock in sockets:
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
                answers.append(answer)
            waited = time.monotonic() - started
        finally:
            for sock in sockets:
                sock.close()
    assert waited < HEADER_TIMEOUT + SLACK
    assert all(_status_and_type(a) == (408, "application/problem+json") for a in answers)


# -- per-address connection cap -------------------------------------------------------------


def test_connections_per_client_address_are_capped(
    duckdb_analytics: BankingPerformanceAnalytics,
) -> None:
    settings = api_settings(duckdb_analytics, max_connections_per_client=5)
    with running(settings, analytics=duckdb_analytics) as base:
        held = [socket.create_connection(_address(base), timeout=30) for _ in range(5)]
        try:
            answer, closed = _exchange(base, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            assert _status_and_type(answer) == (429, "application/problem+json")
            assert b"retry-after: 1" in answer.lower()
            assert closed
            held.pop().close()
            deadline = time.monotonic() + 30
            while True:  # the server sees the close on its next turn of the loop
                answer, _ = _exchange(base, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", 2)
                # Nothing within 2 s (a loaded machine) is not an answer yet: ask again.
                admitted = bool(answer) and _status_and_type(answer)[0] == 200
                if admitted or time.monotonic() > deadline:
                    break
            assert admitted, answer
        finally:
            for sock in held:
                sock.close()


# -- malformed requests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_line", "detail"),
    [
        (b"GET /api/banking-analytics/metrics a b HTTP/1.1", b"not valid HTTP/1.1"),
        (b"GET /healthz\x01 HTTP/1.1", b"not valid HTTP/1.1"),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1", b"longer than 16384 bytes"),
    ],
    ids=["raw-space", "control-character", "70000-character-path"],
)
def test_malformed_requests_get_a_problem_document(
    duckdb_analytics: BankingPerformanceAnalytics, request_line: bytes, detail: bytes
) -> None:
    with running(api_settings(duckdb_analytics), analytics=duckdb_analytics) as base:
        answer, closed = _exchange(base, request_line + b"\r\nHost: t\r\n\r\n")
    assert _status_and_type(answer) == (400, "application/problem+json")
    assert detail in answer
    assert closed


# -- liveness and readiness -----------------------------------------------------------------


def test_liveness_answers_without_the_store_and_readiness_waits_only_so_long(
    duckdb_analytics: BankingPerformanceAnalytics, monkeypatch: pytest.MonkeyPatch
) -> None:
    def hung(sql: str, params: object = ()) -> None:
        time.sleep(3)

    settings = api_settings(duckdb_analytics, readiness_timeout_seconds=0.5)
    with running(settings, analytics=duckdb_analytics) as base:
        monkeypatch.setattr(duckdb_analytics.engine, "query", hung)
        assert httpx.get(f"{base}/healthz").status_code == 200
        ready = httpx.get(f"{base}/readyz", timeout=30)
        monkeypatch.undo()
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
        assert "did not answer within 0.5 s" in ready.json()["detail"]
        assert httpx.get(f"{base}/readyz").status_code == 200


# -- failed authentication: limited per address, audited in aggregate ------------------------


def test_failed_authentications_are_rate_limited_and_audited_per_address(
    analytics: BankingPerformanceAnalytics,
) -> None:
    good = _key(analytics, Role.ANALYST)
    settings = api_settings(
        analytics,
        auth_failures_per_minute=1,
        auth_failure_burst=3,
        auth_failure_audit_seconds=3600,  # only the flush at shutdown writes
    )
    url = f"{PREFIX}/metrics"
    with running(settings, analytics=analytics) as base, httpx.Client(base_url=base) as client:
        bad = [client.get(url, headers={"Authorization": "Bearer ba_live_nope"}) for _ in range(5)]
        blocked_good = client.get(url, headers={"Authorization": f"Bearer {good}"})
    assert [r.status_code for r in bad] == [401, 401, 401, 429, 429]
    assert int(bad[3].headers["retry-after"]) >= 1
    assert "too many failed authentications" in bad[3].json()["detail"]
    # While the address is refused, even good credentials wait: a guesser cannot tell.
    assert blocked_good.status_code == 429
    entries = AuditLog(analytics.engine).entries(action="authentication_failures")
    assert len(entries) == 1
    (entry,) = entries
    assert (entry.actor, entry.actor_role, entry.outcome) == (
        "address:127.0.0.1",
        "anonymous",
        "rate_limited",
    )
    assert entry.client_ip == "127.0.0.1"
    assert entry.details == {"failed": 3, "refused": 3, "period_seconds": 3600}
    # Nothing per request: the 401s and 429s made no entries of their own.
    assert len(AuditLog(analytics.engine).entries(limit=1000)) == 1

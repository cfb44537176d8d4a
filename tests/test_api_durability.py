"""Acknowledged means durable, over HTTP too: SIGKILL the server mid-stream, restart, retry.

``banking-analytics serve`` runs as a subprocess on a fresh store. Client threads
post batches with client-side event ids and note which were answered with a 2xx;
after enough acknowledgements the server is killed with SIGKILL while other
batches are in flight. Restarted on the same store, it gets every batch that
had no 2xx again, with the same ids. Every acknowledged event must then be
stored exactly once, and every retried event answered accepted or duplicate.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_server import Server, issue_key
from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.access import Role
from sample_events import behavior_events

BATCH_PATH = "/api/banking-analytics/events/batch"
BATCH_EVENTS = 100
# Enough that some are in flight at the kill and a good many are retried after it.
BATCHES = 150
WORKERS = 4
ACKED_BATCHES_BEFORE_KILL = 40


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[Server]:
    """Not started yet; stopped at the end whatever happened (its log shown on failure)."""
    served = Server(store_url, tmp_path / "server.log")
    try:
        yield served
    finally:
        served.stop()


def ingest_key(store_url: str) -> str:
    return issue_key(store_url, Role.INGEST, "durability test")


@dataclass
class Stream:
    """Which batches the client saw acknowledged (a 2xx) and which not, up to the kill."""

    acknowledged: list[int] = field(default_factory=list)
    unacknowledged: list[int] = field(default_factory=list)
    killed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[BaseException] = field(default_factory=list)


def stream_until_killed(
    server: Server, key: str, batches: list[list[dict[str, Any]]], kill_after: int
) -> Stream:
    """``WORKERS`` threads post batches; the one that sees the ``kill_after``-th 2xx kills
    the server (SIGKILL) while the others' batches are in flight; none starts after that."""
    stream = Stream()
    queue = iter(range(len(batches)))
    headers = {"Authorization": f"Bearer {key}"}

    def work() -> None:
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            while True:
                with stream.lock:
                    i = None if stream.killed else next(queue, None)
                if i is None:
                    return
                try:
                    ok = client.post(BATCH_PATH, json={"events": batches[i]}).is_success
                except httpx.TransportError:
                    ok = False
                with stream.lock:
                    (stream.acknowledged if ok else stream.unacknowledged).append(i)
                    if ok and not stream.killed and len(stream.acknowledged) >= kill_after:
                        server.kill()
                        stream.killed = True

    def guarded() -> None:
        try:
            work()
        except BaseException as exc:  # surfaced in the main thread
            stream.errors.append(exc)

    threads = [threading.Thread(target=guarded) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if stream.errors:
        raise stream.errors[0]
    return stream


def stored_copies(store_url: str) -> dict[str, int]:
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        rows = analytics.engine.query(
            "SELECT CAST(event_id AS VARCHAR) AS id, count(*) AS n FROM behavior_events GROUP BY 1"
        ).to_pydict()
    return dict(zip(rows["id"], rows["n"], strict=True))


def test_sigkill_over_http_loses_no_acknowledged_event(store_url: str, server: Server) -> None:
    key = ingest_key(store_url)
    batches = [behavior_events(BATCH_EVENTS) for _ in range(BATCHES)]
    server.start()
    stream = stream_until_killed(server, key, batches, ACKED_BATCHES_BEFORE_KILL)
    assert server.proc is not None
    assert server.proc.wait(30) == -signal.SIGKILL, server.log.read_text()
    assert stream.killed, f"only {len(stream.acknowledged)} batches acknowledged"

    # Restarted on the same store (DuckDB replays its WAL), every batch that had no
    # 2xx goes again with the same ids: each event is new, or a duplicate of one
    # committed before the kill whose answer never arrived.
    server.start()
    retried_statuses: list[str] = []
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        for i in stream.unacknowledged:
            answer = client.post(BATCH_PATH, json={"events": batches[i]})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["accepted"] + body["duplicate"] == len(batches[i]), body
            retried_statuses += [r["status"] for r in body["results"]]
            sent = [e["event_id"] for e in batches[i]]
            assert [r["event_id"] for r in body["results"]] == sent
    server.stop()
    assert set(retried_statuses) <= {"accepted", "duplicate"}

    copies = stored_copies(store_url)
    acknowledged = [e["event_id"] for i in stream.acknowledged for e in batches[i]]
    retried = [e["event_id"] for i in stream.unacknowledged for e in batches[i]]
    log = server.log.read_text()
    lost = [x for x in acknowledged if x not in copies]
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged events lost\n{log}"
    assert all(x in copies for x in retried), "a retried event is not stored"
    twice = {x: n for x, n in copies.items() if n != 1}
    assert not twice, f"{len(twice)} events stored more than once"
    # Nothing else was sent: the store holds exactly the acknowledged and retried events.
    assert set(copies) == set(acknowledged) | set(retried)
    assert len(acknowledged) >= ACKED_BATCHES_BEFORE_KILL * BATCH_EVENTS

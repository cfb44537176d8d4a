"""The event stream over real HTTP (uvicorn), on every engine: transitions as evaluations
record them, resuming after an event id without loss or repeat, heartbeats, who may
listen, metric answers that follow the data, the bounds, and a shutdown that ends open
streams."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_fixtures import LiveAPI, api_settings
from api_server import running
from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.access import KeyStore, Role
from banking_analytics.api._stream import Subscriber, Transition
from banking_analytics.monitor import AlertState, Rule
from banking_analytics.monitor._store import HistoryRow
from sse_client import Event, events
from test_monitor_evaluate import EVENTS_AT, MINUTE, RULE, T0, attempts, hand_worked

STREAM = "/api/banking-analytics/stream"
#: Short heartbeats and reads of the store, so the tests wait little; three streams a key;
#: replays of at most five transitions.
SETTINGS = {
    "stream_heartbeat_seconds": 0.2,
    "stream_poll_seconds": 0.05,
    "stream_max_connections_per_key": 3,
    "stream_replay_limit": 5,
}


@pytest.fixture
def stream_api(analytics: BankingPerformanceAnalytics) -> Iterator[LiveAPI]:
    store = KeyStore(analytics.engine)
    keys = {role.value: store.create(f"test {role.value}", role).secret for role in Role}
    with (
        running(api_settings(analytics, **SETTINGS), analytics=analytics) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        yield LiveAPI(url, analytics, keys, client)


@contextmanager
def stream(
    api: LiveAPI, headers: dict[str, str] | None = None, **params: Any
) -> Iterator[Iterator[Event]]:
    """An open stream as analyst (headers added); its events, heartbeats left out."""
    with api.client.stream(
        "GET", STREAM, params=params, headers={**api.as_key("analyst"), **(headers or {})}
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield (e for e in events(response) if e.type != "comment")


def take(stream: Iterator[Event], n: int) -> list[Event]:
    return [next(stream) for _ in range(n)]


def stored_transitions(analytics: BankingPerformanceAnalytics) -> list[HistoryRow]:
    return analytics.monitor.store.transitions_after(0, 1000)


def as_seen(row: HistoryRow) -> tuple[str, str, dict[str, str], str, str, str]:
    at = row.evaluated_at.isoformat()
    return (str(row.history_id), row.rule_name, dict(row.labels), at, row.previous_state, row.state)


def seen(event: Event) -> tuple[str | None, str, dict[str, str], str, str, str]:
    d = event.data
    assert event.type == "alert"
    assert d["id"] == int(event.id or "-1")
    return (event.id, d["rule"], d["labels"], d["evaluated_at"], d["previous_state"], d["state"])


def test_transitions_arrive_as_recorded_and_a_stream_resumes_without_loss_or_repeat(
    stream_api: LiveAPI,
) -> None:
    api, monitor = stream_api, stream_api.analytics.monitor
    api.analytics.ingest(hand_worked())
    monitor.apply([Rule.from_dict(RULE)], "test")  # for 2m: pending, then firing
    with stream(api) as live:
        monitor.evaluate(T0 + 30 * MINUTE)
        first = stored_transitions(api.analytics)
        # ins_a and ins_b breach, ins_c has too few attempts: all pending for 2m.
        assert [(dict(r.labels), r.state, r.observation) for r in first] == [
            ({"institution": "ins_a"}, "pending", "breach"),
            ({"institution": "ins_b"}, "pending", "breach"),
            ({"institution": "ins_c"}, "pending", "nodata"),
        ]
        assert [seen(e) for e in take(live, 3)] == [as_seen(r) for r in first]
        monitor.evaluate(T0 + 31 * MINUTE)  # no change: nothing is sent
        monitor.evaluate(T0 + 32 * MINUTE)  # ins_a and ins_b fire, ins_c is nodata
        [firing_a] = take(live, 1)
    # Disconnected after the first firing: the others, and what comes next, are replayed.
    monitor.apply([Rule.from_dict({**RULE, "critical": 0.3})], "test")  # resets all three
    every = stored_transitions(api.analytics)
    assert [(r.state, r.observation) for r in every[3:]] == [
        ("firing", "breach"),
        ("firing", "breach"),
        ("nodata", "nodata"),
        *3 * [("inactive", "reset")],
    ]
    assert [r.history_id for r in every] == sorted({r.history_id for r in every})
    assert seen(firing_a) == as_seen(every[3])
    with stream(api, headers={"Last-Event-ID": firing_a.id or ""}) as resumed:
        assert [seen(e) for e in take(resumed, 5)] == [as_seen(r) for r in every[4:]]
        monitor.evaluate(T0 + 33 * MINUTE)  # pending again, under the new version
        latest = stored_transitions(api.analytics)[len(every) :]
        assert [r.state for r in latest] == ["pending"] * 3
        assert [seen(e) for e in take(resumed, 3)] == [as_seen(r) for r in latest]
    # Without an id a stream starts from now: nothing recorded before is replayed.
    with stream(api) as fresh:
        monitor.apply([Rule.from_dict(RULE)], "test")  # resets the three pending
        newest = stored_transitions(api.analytics)[-3:]
        assert [r.observation for r in newest] == ["reset"] * 3
        assert [seen(e) for e in take(fresh, 3)] == [as_seen(r) for r in newest]
    # A replay (asked for by the query parameter here) holds at most five transitions
    # (in these settings): then a gap event says what it left out.
    with stream(api, last_event_id=0) as from_start:
        *replayed, gap = take(from_start, 6)
    assert [seen(e) for e in replayed] == [as_seen(r) for r in every[:5]]
    assert (gap.type, gap.data["after"]) == ("gap", every[4].history_id)


def problem(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    detail: str = response.json()["detail"]
    return detail


def test_only_analysts_and_admins_may_listen_and_bad_requests_are_problems(
    stream_api: LiveAPI,
) -> None:
    api = stream_api
    get = api.client.get
    assert "API key or user token" in problem(get(STREAM), 401)
    assert "ingest role may not" in problem(get(STREAM, headers=api.as_key("ingest")), 403)
    assert "user role may not" in problem(get(STREAM, headers=api.as_user("u1")), 403)
    analyst = api.as_key("analyst")
    assert "Last-Event-ID" in problem(get(STREAM, headers={**analyst, "Last-Event-ID": "x"}), 422)
    answer = get(STREAM, params={"last_event_id": -1}, headers=analyst)
    problem(answer, 422)
    answer = get(STREAM, params={"query": '{"metrics": []}'}, headers=analyst)
    problem(answer, 422)
    assert answer.json()["errors"][0]["field"].startswith("query")
    unknown = get(STREAM, params={"query": json.dumps({"metrics": ["nope"]})}, headers=analyst)
    assert "nope" in problem(unknown, 422)
    many = [json.dumps({"metrics": ["connection_success_rate"]})] * 9
    assert "at most 8" in problem(get(STREAM, params={"query": many}, headers=analyst), 422)


def test_heartbeats_keep_an_idle_stream_alive_and_streams_per_key_are_bounded(
    stream_api: LiveAPI,
) -> None:
    api = stream_api
    with api.client.stream("GET", STREAM, headers=api.as_key("admin")) as response:
        assert response.status_code == 200
        received = events(response)
        assert [next(received) for _ in range(3)] == [Event("comment", None, "heartbeat")] * 3
    with stream(api), stream(api), stream(api):
        refused = api.client.get(STREAM, headers=api.as_key("analyst"))
        assert "3 open streams" in problem(refused, 429)
        assert refused.headers["retry-after"] == "5"
        # Another key has its own count.
        with stream(api, headers=api.as_key("admin")):
            pass
    # Closed streams give their places back.
    with stream(api), stream(api), stream(api):
        pass


def test_a_followed_metric_query_answers_again_when_events_are_ingested(
    stream_api: LiveAPI,
) -> None:
    api = stream_api
    api.analytics.ingest(hand_worked())
    query = {
        "metrics": ["connection_success_rate"],
        "dimensions": ["institution"],
        "start": T0.isoformat(),
        "end": (T0 + 30 * MINUTE).isoformat(),
    }

    def by_institution(answer: dict[str, Any]) -> dict[str, float]:
        return {
            row["dimensions"]["institution"]: row["values"]["connection_success_rate"]["value"]
            for row in answer["rows"]
        }

    with stream(api, query=json.dumps(query)) as live:
        [first] = take(live, 1)
        assert first.type == "metric"
        assert first.data["query"] == 0
        assert by_institution(first.data["answer"]) == {
            "ins_a": pytest.approx(22 / 25),
            "ins_b": pytest.approx(8 / 20),
            "ins_c": None,  # 5 attempts: under the metric's sample of 20
        }
        # ins_c: 15 failures more (20 counted attempts, 5 successful).
        api.analytics.ingest(attempts("ins_c", EVENTS_AT, institution=15))
        [update] = take(live, 1)
    assert update.type == "metric"
    assert by_institution(update.data["answer"])["ins_c"] == pytest.approx(5 / 20)
    # The same answer as the query endpoint gives.
    answered = api.client.post(
        "/api/banking-analytics/metrics/query", json=query, headers=api.as_key("analyst")
    )
    assert update.data["answer"] == answered.json()


def test_a_shutdown_ends_open_streams(tmp_path: Path) -> None:
    analytics = BankingPerformanceAnalytics.open(f"duckdb:///{tmp_path}/store.duckdb")
    key = KeyStore(analytics.engine).create("analyst", Role.ANALYST).secret
    with running(api_settings(analytics, **SETTINGS), analytics=analytics) as url:
        client = httpx.Client(base_url=url, timeout=60)
        request = client.build_request("GET", STREAM, headers={"Authorization": f"Bearer {key}"})
        response = client.send(request, stream=True)
        received = events(response)
        assert next(received).type == "comment"
    # The server has stopped (running() returned): the stream ended with it, after at
    # most the heartbeats already sent (had it gone on, 50 more would come).
    rest = list(itertools.islice(received, 50))
    assert len(rest) < 50
    assert all(e.type == "comment" for e in rest)
    response.close()
    client.close()
    analytics.close()


def test_a_slow_client_is_cut_off_once_its_queue_is_full() -> None:
    state = AlertState.INACTIVE
    row = HistoryRow("r", 1, (), T0, "ok", state, state, None, None, None, None, False, 1)

    async def scenario() -> tuple[list[Any] | None, bool, list[Any] | None]:
        subscriber = Subscriber("key:k", 2, follows_metrics=False)
        subscriber.offer(Transition(row))
        subscriber.offer(Transition(row))
        first = await subscriber.take(1, None)
        for _ in range(3):
            subscriber.offer(Transition(row))
        return first, subscriber.overflowed, await subscriber.take(1, None)

    first, overflowed, after = asyncio.run(scenario())
    assert first is not None
    assert len(first) == 2
    assert overflowed
    assert after == []  # nothing held for it any more

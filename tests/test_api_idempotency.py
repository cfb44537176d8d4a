"""``Idempotency-Key`` with Stripe's semantics, and per-key rate limiting, over real HTTP."""

from __future__ import annotations

import pytest

from api_fixtures import LiveAPI, api_settings
from api_server import running
from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.access import KeyStore, Role
from banking_analytics.api._idempotency import IDEMPOTENCY_TABLE

BATCH = "/api/banking-analytics/events/batch"


def _events(n: int, action: str = "view_report") -> list[dict[str, object]]:
    # No event ids: only the idempotency key can make a retry safe.
    return [
        {"event_type": "behavior", "user_id": f"u{i}", "feature": "goal_setting", "action": action}
        for i in range(n)
    ]


def _stored(api: LiveAPI) -> int:
    return int(
        api.analytics.engine.query("SELECT count(*) AS n FROM behavior_events")["n"][0].as_py()
    )


def test_same_key_and_request_answer_the_first_response_again(live_api: LiveAPI) -> None:
    headers = {**live_api.as_key("ingest"), "Idempotency-Key": "order-1"}
    first = live_api.client.post(BATCH, json={"events": _events(5)}, headers=headers)
    again = live_api.client.post(BATCH, json={"events": _events(5)}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert _stored(live_api) == 5


def test_same_key_with_another_request_is_refused(live_api: LiveAPI) -> None:
    headers = {**live_api.as_key("ingest"), "Idempotency-Key": "order-2"}
    assert live_api.client.post(BATCH, json={"events": _events(2)}, headers=headers).is_success
    other = live_api.client.post(BATCH, json={"events": _events(3)}, headers=headers)
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["detail"]
    assert _stored(live_api) == 2


def test_keys_are_scoped_per_caller(live_api: LiveAPI) -> None:
    body = {"events": _events(2)}
    for role in ("ingest", "admin"):
        headers = {**live_api.as_key(role), "Idempotency-Key": "shared-name"}
        response = live_api.client.post(BATCH, json=body, headers=headers)
        assert response.status_code == 200
        assert "idempotent-replayed" not in response.headers
    # Different callers, different derived ids: both batches are stored.
    assert _stored(live_api) == 4


def test_a_retry_after_a_lost_response_stores_nothing_twice(live_api: LiveAPI) -> None:
    """The crash window: events committed, response never stored (we delete it)."""
    headers = {**live_api.as_key("ingest"), "Idempotency-Key": "crash-1"}
    first = live_api.client.post(BATCH, json={"events": _events(4)}, headers=headers).json()
    with live_api.analytics.engine.begin() as tx:
        tx.execute(f'DELETE FROM "{IDEMPOTENCY_TABLE.name}"')
    retry = live_api.client.post(BATCH, json={"events": _events(4)}, headers=headers).json()
    assert retry["duplicate"] == 4
    assert [r["event_id"] for r in retry["results"]] == [r["event_id"] for r in first["results"]]
    assert _stored(live_api) == 4


def test_a_request_that_ran_is_replayed_even_when_it_was_rejected(live_api: LiveAPI) -> None:
    headers = {**live_api.as_key("ingest"), "Idempotency-Key": "bad-1"}
    # The request model accepts it; ingestion rejects it (properties over 16 KiB).
    body = {
        "metric_type": "connection_latency",
        "feature": "account_linking",
        "value": 120.0,
        "properties": {"note": "x" * 20_000},
    }
    url = "/api/banking-analytics/performance/metric"
    first = live_api.client.post(url, json=body, headers=headers)
    again = live_api.client.post(url, json=body, headers=headers)
    assert first.status_code == again.status_code == 422
    assert "properties" in first.json()["detail"]
    assert again.headers["idempotent-replayed"] == "true"


def test_a_request_refused_before_it_ran_is_not_kept(live_api: LiveAPI) -> None:
    """As Stripe: parameters that fail validation do not use up the key."""
    headers = {**live_api.as_key("ingest"), "Idempotency-Key": "typo-1"}
    url = "/api/banking-analytics/performance/metric"
    body = {"metric_type": "connection_latency", "feature": "account_linking", "value": 120.0}
    typo = live_api.client.post(url, json={**body, "feature": "acount_linking"}, headers=headers)
    assert typo.status_code == 422
    fixed = live_api.client.post(url, json=body, headers=headers)
    assert fixed.status_code == 201
    assert "idempotent-replayed" not in fixed.headers


def test_rate_limit_answers_429_with_retry_after(analytics: BankingPerformanceAnalytics) -> None:
    key = KeyStore(analytics.engine).create("limited", Role.ANALYST).secret
    settings = api_settings(analytics, rate_limit_per_second=0.5, rate_limit_burst=3)
    with running(settings, analytics=analytics) as url:
        import httpx

        with httpx.Client(base_url=url) as client:
            headers = {"Authorization": f"Bearer {key}"}
            statuses = [
                client.get("/api/banking-analytics/metrics", headers=headers).status_code
                for _ in range(5)
            ]
            assert statuses[:3] == [200, 200, 200]
            assert statuses[3:] == [429, 429]
            limited = client.get("/api/banking-analytics/metrics", headers=headers)
            assert limited.headers["content-type"] == "application/problem+json"
            assert 1 <= int(limited.headers["retry-after"]) <= 2


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
def test_unusable_idempotency_keys_are_refused(live_api: LiveAPI, key: str) -> None:
    headers = {**live_api.as_key("ingest"), "Idempotency-Key": key}
    response = live_api.client.post(BATCH, json={"events": _events(1)}, headers=headers)
    assert response.status_code == 422
    assert _stored(live_api) == 0

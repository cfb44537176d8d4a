"""Receivers, the notification policy, silences and deliveries over real HTTP, on every
engine: who may do what, secrets shown once, refusals as problems, audit."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from api_fixtures import LiveAPI
from banking_analytics.monitor import Notifier, RetryPolicy, Sender, parse_networks
from notify_receiver import receiving
from test_monitor_api import audited
from test_monitor_notify import FIRED, fire

API = "/api/banking-analytics"
# The routes' HTTP behaviour is checked on one engine (``store_url`` "duckdb"): what they
# store is tested on both (tests/test_monitor_notify.py, and the deliveries below).


@pytest.mark.parametrize("store_url", ["duckdb"], indirect=True)
def test_receivers_are_written_by_admins_and_their_secret_is_shown_once(
    live_api: LiveAPI,
) -> None:
    api = live_api
    url = f"{API}/receivers/ops"
    body = {"kind": "webhook", "url": "https://93.184.215.14/hooks/alerts"}
    assert api.client.put(url, json=body, headers=api.as_key("analyst")).status_code == 403
    made = api.client.put(url, json=body, headers=api.as_key("admin"))
    assert made.status_code == 200, made.text
    secret = made.json()["secret"]
    assert secret.startswith("bawh_")
    assert len(secret) > 40
    assert api.analytics.monitor.notifications.receiver("ops").secret == secret  # type: ignore[union-attr]
    # Never again: not when read, not when changed.
    read = api.client.get(url, headers=api.as_key("analyst")).json()
    assert read["secret"] is None
    assert secret not in api.client.get(f"{API}/receivers", headers=api.as_key("analyst")).text
    changed = api.client.put(
        url, json={**body, "send_resolved": False}, headers=api.as_key("admin")
    ).json()
    assert (changed["secret"], changed["send_resolved"]) == (None, False)
    assert api.analytics.monitor.notifications.receiver("ops").secret == secret  # type: ignore[union-attr]
    rotated = api.client.put(url, json={**body, "rotate_secret": True}, headers=api.as_key("admin"))
    assert rotated.json()["secret"] not in (None, secret)
    assert [e["details"]["secret_issued"] for e in reversed(audited(api, "put_receiver"))] == [
        True,
        False,
        True,
    ]
    # A Slack URL is its secret: only its origin is shown.
    slack = api.client.put(
        f"{API}/receivers/chat",
        json={"kind": "slack", "url": "https://93.184.215.14/services/T0/B0/XYZ"},
        headers=api.as_key("admin"),
    ).json()
    assert (slack["url"], slack["secret"]) == ("https://93.184.215.14/…", None)


@pytest.mark.parametrize("store_url", ["duckdb"], indirect=True)
def test_a_url_the_ssrf_rule_refuses_is_a_problem_saying_why(live_api: LiveAPI) -> None:
    api = live_api
    for url, reason in [
        ("http://127.0.0.1:9/hook", "127.0.0.1 is a loopback address"),
        ("http://169.254.169.254/latest", "169.254.169.254 is a link-local address"),
        ("http://[::ffff:10.0.0.1]/x", "::ffff:10.0.0.1 is a private address"),
        ("file:///etc/passwd", "is not an http(s) URL with a host"),
    ]:
        answer = api.client.put(
            f"{API}/receivers/bad",
            json={"kind": "webhook", "url": url},
            headers=api.as_key("admin"),
        )
        assert answer.status_code == 422, url
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["detail"].startswith("url (body): "), answer.text
        assert reason in answer.json()["detail"]
    assert api.client.get(f"{API}/receivers/bad", headers=api.as_key("admin")).status_code == 404


@pytest.mark.parametrize("store_url", ["duckdb"], indirect=True)
def test_the_policy_names_existing_receivers_and_bad_matchers_are_problems(
    live_api: LiveAPI,
) -> None:
    api = live_api
    policy_url = f"{API}/notification-policy"
    assert api.client.get(policy_url, headers=api.as_key("analyst")).status_code == 404
    bad = api.client.put(
        policy_url,
        json={
            "receiver": "ops",
            "group_wait": "soon",
            "routes": [{"receiver": "ops", "matchers": ['severity=~"("', "no quotes here"]}],
            "extra": 1,
        },
        headers=api.as_key("admin"),
    )
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == [
        "extra",
        "group_wait",
        "routes[0].matchers[0]",
        "routes[0].matchers[1]",
    ]
    assert "does not compile" in bad.json()["errors"][2]["message"]
    missing = api.client.put(policy_url, json={"receiver": "ops"}, headers=api.as_key("admin"))
    assert (missing.status_code, missing.json()["detail"]) == (
        422,
        "receiver (body): no receiver named ops",
    )
    api.client.put(
        f"{API}/receivers/ops",
        json={"kind": "webhook", "url": "https://93.184.215.14/h"},
        headers=api.as_key("admin"),
    )
    assert (
        api.client.put(
            policy_url, json={"receiver": "ops"}, headers=api.as_key("analyst")
        ).status_code
        == 403
    )
    put = api.client.put(
        policy_url,
        json={"receiver": "ops", "routes": [{"receiver": "ops", "matchers": ['team="x"']}]},
        headers=api.as_key("admin"),
    )
    assert put.status_code == 200, put.text
    read = api.client.get(policy_url, headers=api.as_key("analyst")).json()
    assert read["version"] == 1
    assert read["policy"]["group_wait"] == "30s"  # Alertmanager's defaults, written out
    assert read["policy"]["repeat_interval"] == "4h"
    assert read["policy"]["routes"][0]["matchers"] == ['team="x"']
    assert read["policy"]["inhibit_rules"][0]["source_matchers"] == ['severity="critical"']
    # A receiver the policy routes to cannot be deleted.
    assert api.client.delete(f"{API}/receivers/ops", headers=api.as_key("admin")).status_code == 409


@pytest.mark.parametrize("store_url", ["duckdb"], indirect=True)
def test_silences_are_made_and_expired_by_admins_audited_and_read_by_analysts(
    live_api: LiveAPI,
) -> None:
    api = live_api
    now = datetime.now(UTC)
    body = {
        "matchers": ['institution=~"ins_(a|b)"', 'severity="warning"'],
        "ends_at": (now + timedelta(hours=2)).isoformat(),
        "comment": "Chase maintenance window",
    }
    assert (
        api.client.post(f"{API}/silences", json=body, headers=api.as_key("analyst")).status_code
        == 403
    )
    made = api.client.post(f"{API}/silences", json=body, headers=api.as_key("admin"))
    assert made.status_code == 201, made.text
    silence = made.json()
    assert (silence["status"], silence["created_by"], silence["matchers"]) == (
        "active",
        api.client.get(f"{API}/silences/{silence['id']}", headers=api.as_key("analyst")).json()[
            "created_by"
        ],
        body["matchers"],
    )
    listed = api.client.get(f"{API}/silences", headers=api.as_key("analyst")).json()
    assert [s["id"] for s in listed] == [silence["id"]]

    for wrong, field in [
        ({**body, "matchers": ['institution=~"("']}, "matchers"),
        ({**body, "ends_at": (now - timedelta(minutes=1)).isoformat()}, "ends_at"),
    ]:
        answer = api.client.post(f"{API}/silences", json=wrong, headers=api.as_key("admin"))
        assert answer.status_code == 422, answer.text
        assert [e["field"] for e in answer.json()["errors"]] == [field]
    assert (
        api.client.post(
            f"{API}/silences", json={**body, "matchers": []}, headers=api.as_key("admin")
        ).status_code
        == 422
    )
    assert (
        api.client.post(
            f"{API}/silences", json={**body, "comment": ""}, headers=api.as_key("admin")
        ).status_code
        == 422
    )

    expired = api.client.delete(f"{API}/silences/{silence['id']}", headers=api.as_key("admin"))
    assert expired.status_code == 200
    assert (expired.json()["status"], expired.json()["expired_by"]) == (
        "expired",
        silence["created_by"],
    )
    assert api.client.get(f"{API}/silences", headers=api.as_key("analyst")).json() == []
    kept = api.client.get(
        f"{API}/silences", params={"expired": "true"}, headers=api.as_key("analyst")
    )
    assert [s["id"] for s in kept.json()] == [silence["id"]]
    assert api.client.delete(f"{API}/silences/nope", headers=api.as_key("admin")).status_code == 404
    assert [e["action"] for e in audited(api, "create_silence")] == ["create_silence"]
    assert [e["outcome"] for e in audited(api, "expire_silence")] == ["not_found", "ok"]


def test_deliveries_and_each_try_are_read_by_analysts(live_api: LiveAPI) -> None:
    api = live_api
    with receiving() as hook:
        hook.statuses = [500, 200]
        api.client.put(
            f"{API}/receivers/ops",
            json={"kind": "webhook", "url": "https://93.184.215.14/h"},
            headers=api.as_key("admin"),
        )
        store = api.analytics.monitor.notifications
        # The receiver moved to loopback behind the API's back (the allow-list here admits it).
        stored = store.receiver("ops")
        assert stored is not None
        store.put_receiver(replace(stored, url=hook.url))
        api.client.put(
            f"{API}/notification-policy",
            json={"receiver": "ops", "group_wait": "0"},
            headers=api.as_key("admin"),
        )
        fire(api.analytics)
        sender = Sender(allowed=parse_networks(["127.0.0.1/32"]), retry=RetryPolicy(max_attempts=2))
        dispatcher = Notifier(api.analytics.monitor, sender)
        [first] = dispatcher.tick(FIRED)
        assert first.next_try_at is not None
        dispatcher.tick(first.next_try_at)

        assert api.client.get(f"{API}/deliveries", headers=api.as_key("ingest")).status_code == 403
        listed = api.client.get(f"{API}/deliveries", headers=api.as_key("analyst")).json()
        assert [(d["receiver"], d["state"], d["attempts"], d["status_code"]) for d in listed] == [
            ("ops", "delivered", 2, 200)
        ]
        detail = api.client.get(
            f"{API}/deliveries/{listed[0]['delivery_id']}", headers=api.as_key("analyst")
        ).json()
        assert [(t["attempt"], t["outcome"], t["status_code"]) for t in detail["tries"]] == [
            (1, "retry", 500),
            (2, "delivered", 200),
        ]
        assert detail["tries"][0]["error"] == "HTTP 500: "
        assert detail["payload"]["status"] == "firing"
        assert detail["group_key"] == '[-1,"ops",[["alertname","success_low"]]]'
        none = api.client.get(
            f"{API}/deliveries", params={"state": "dead"}, headers=api.as_key("analyst")
        )
        assert none.json() == []
        assert (
            api.client.get(f"{API}/deliveries/nope", headers=api.as_key("analyst")).status_code
            == 404
        )

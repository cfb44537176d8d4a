"""Rules and alerts over real HTTP, on every engine: who may do what, versions and audit,
bad rules as problems, current alerts and their history."""

from __future__ import annotations

from typing import Any

from api_fixtures import LiveAPI
from test_monitor_evaluate import MINUTE, RULE, T0, hand_worked


def iso(minutes: int) -> str:
    """The JSON spelling of T0 + minutes."""
    return (T0 + minutes * MINUTE).isoformat().replace("+00:00", "Z")


RULES = "/api/banking-analytics/rules"
ALERTS = "/api/banking-analytics/alerts"


def audited(api: LiveAPI, action: str) -> list[dict[str, Any]]:
    answer = api.client.get(
        "/api/banking-analytics/admin/audit", params={"action": action}, headers=api.as_key("admin")
    )
    entries: list[dict[str, Any]] = answer.json()["entries"]
    return entries


def test_admins_write_rules_analysts_read_them_and_every_change_is_versioned_and_audited(
    live_api: LiveAPI,
) -> None:
    api, body = live_api, {k: v for k, v in RULE.items() if k != "name"}
    url = f"{RULES}/success_low"
    for role in ("analyst", "ingest"):
        assert api.client.put(url, json=body, headers=api.as_key(role)).status_code == 403
    assert api.client.get(RULES, headers=api.as_key("ingest")).status_code == 403
    assert api.client.get(RULES, headers=api.as_user("u1")).status_code == 403
    assert api.client.get(RULES).status_code == 401

    created = api.client.put(url, json=body, headers=api.as_key("admin"))
    assert created.status_code == 200, created.text
    assert {k: created.json()[k] for k in ("name", "version", "change")} == {
        "name": "success_low",
        "version": 1,
        "change": "created",
    }
    assert created.json()["definition"] == {**RULE, "interval": "1m"}
    again = api.client.put(url, json=body, headers=api.as_key("admin")).json()
    assert (again["version"], again["change"]) == (1, "unchanged")
    changed = api.client.put(url, json={**body, "critical": 0.3}, headers=api.as_key("admin"))
    assert (changed.json()["version"], changed.json()["change"]) == (2, "updated")

    listed = api.client.get(RULES, headers=api.as_key("analyst")).json()
    assert [(r["name"], r["version"], r["definition"]["critical"]) for r in listed] == [
        ("success_low", 2, 0.3)
    ]
    versions = api.client.get(f"{url}/versions", headers=api.as_key("analyst")).json()
    assert [(v["version"], v["change"]) for v in versions] == [(2, "updated"), (1, "created")]
    assert [(e["object_id"], e["details"]) for e in reversed(audited(api, "put_alert_rule"))] == [
        ("success_low", {"version": 1, "change": "created"}),
        ("success_low", {"version": 1, "change": "unchanged"}),
        ("success_low", {"version": 2, "change": "updated"}),
    ]

    deleted = api.client.delete(url, headers=api.as_key("admin"))
    assert (deleted.json()["version"], deleted.json()["definition"]) == (3, None)
    assert api.client.get(url, headers=api.as_key("analyst")).status_code == 404
    assert api.client.delete(url, headers=api.as_key("admin")).status_code == 404
    assert [e["outcome"] for e in audited(api, "delete_alert_rule")] == ["not_found", "ok"]

    # A bad rule is a problem naming each field.
    answer = api.client.put(
        f"{RULES}/bad",
        json={"metric": "nope", "window": "1y", "condition": "below", "critical": "x"},
        headers=api.as_key("admin"),
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert [(e["field"], e["message"]) for e in answer.json()["errors"]] == [
        ("metric", "unknown metric 'nope'; see GET .../metrics"),
        ("window", "a duration like 30s, 5m, 1h30m or 2d, got '1y'"),
        ("critical", "a number, got 'x'"),
    ]
    mismatch = api.client.put(
        f"{RULES}/one", json={**RULE, "name": "other"}, headers=api.as_key("admin")
    )
    assert mismatch.status_code == 422
    assert mismatch.json()["detail"] == "name (body): 'other' differs from the path's 'one'"
    assert (
        api.client.put(f"{RULES}/Bad-Name", json=RULE, headers=api.as_key("admin")).status_code
        == 422
    )
    assert (
        api.client.get(f"{RULES}/none/versions", headers=api.as_key("analyst")).status_code == 404
    )


def test_alerts_and_their_history_are_read_by_analysts(live_api: LiveAPI) -> None:
    api = live_api
    api.analytics.ingest(hand_worked())
    api.client.put(f"{RULES}/success_low", json=RULE, headers=api.as_key("admin"))
    for minute in (30, 31, 32):
        api.analytics.monitor.evaluate(T0 + minute * MINUTE)

    assert api.client.get(ALERTS, headers=api.as_key("ingest")).status_code == 403
    current = api.client.get(ALERTS, headers=api.as_key("analyst"))
    assert current.status_code == 200, current.text
    assert [(a["labels"]["institution"], a["state"], a["severity"]) for a in current.json()] == [
        ("ins_a", "firing", "warning"),
        ("ins_b", "firing", "critical"),
        ("ins_c", "nodata", None),
    ]
    firing = api.client.get(
        ALERTS, params={"state": "firing", "rule": "success_low"}, headers=api.as_key("analyst")
    ).json()
    assert [a["labels"]["institution"] for a in firing] == ["ins_a", "ins_b"]
    assert firing[1]["annotations"] == {"summary": "ins_b: 40%"}
    assert firing[1]["fired_at"] == iso(32)
    first = api.client.get(ALERTS, params={"limit": 2}, headers=api.as_key("analyst")).json()
    assert [a["labels"]["institution"] for a in first] == ["ins_a", "ins_b"]
    too_many = api.client.get(ALERTS, params={"limit": 10**6}, headers=api.as_key("analyst"))
    assert too_many.status_code == 422

    history = api.client.get(
        f"{ALERTS}/history", params={"rule": "success_low"}, headers=api.as_key("analyst")
    ).json()
    assert [(h["evaluated_at"], h["labels"], h["previous_state"], h["state"]) for h in history] == [
        (iso(32), {"institution": i}, "pending", s)
        for i, s in (("ins_a", "firing"), ("ins_b", "firing"), ("ins_c", "nodata"))
    ] + [(iso(30), {"institution": i}, "inactive", "pending") for i in ("ins_a", "ins_b", "ins_c")]
    every = api.client.get(
        f"{ALERTS}/history",
        params={"transitions_only": "false", "limit": 4},
        headers=api.as_key("analyst"),
    ).json()
    assert len(every) == 4
    bad = api.client.get(
        f"{ALERTS}/history",
        params={"since": T0.isoformat(), "until": T0.isoformat()},
        headers=api.as_key("analyst"),
    )
    assert bad.status_code == 422
    assert bad.json()["detail"] == "since (query): must be before until"

"""SLOs over real HTTP, on every engine: who may do what, versions and audit, bad SLOs as
problems, names shared with rules, and an SLO's burn rates, budget and alerts."""

from __future__ import annotations

from api_fixtures import LiveAPI
from test_monitor_api import audited
from test_monitor_evaluate import RULE
from test_monitor_slo import NOW, SLO, world

SLOS = "/api/banking-analytics/slos"
BODY = {k: v for k, v in SLO.items() if k != "name"}
RULE_BODY = {k: v for k, v in RULE.items() if k != "name"}


def test_admins_write_slos_analysts_read_them_and_every_change_is_versioned_and_audited(
    live_api: LiveAPI,
) -> None:
    api = live_api
    url = f"{SLOS}/link_success"
    for role in ("analyst", "ingest"):
        assert api.client.put(url, json=BODY, headers=api.as_key(role)).status_code == 403
    assert api.client.get(SLOS, headers=api.as_key("ingest")).status_code == 403
    assert api.client.get(SLOS, headers=api.as_user("u1")).status_code == 403
    assert api.client.get(SLOS).status_code == 401

    created = api.client.put(url, json=BODY, headers=api.as_key("admin"))
    assert created.status_code == 200, created.text
    assert created.json() == {
        "name": "link_success",
        "version": 1,
        "change": "created",
        "changed_at": created.json()["changed_at"],
        "changed_by": created.json()["changed_by"],
        "definition": {**SLO, "period": "30d", "interval": "1m"},
    }
    again = api.client.put(url, json=BODY, headers=api.as_key("admin")).json()
    assert (again["version"], again["change"]) == (1, "unchanged")
    changed = api.client.put(url, json={**BODY, "objective": 0.995}, headers=api.as_key("admin"))
    assert (changed.json()["version"], changed.json()["change"]) == (2, "updated")
    listed = api.client.get(SLOS, headers=api.as_key("analyst")).json()
    assert [(s["name"], s["version"], s["definition"]["objective"]) for s in listed] == [
        ("link_success", 2, 0.995)
    ]
    versions = api.client.get(f"{url}/versions", headers=api.as_key("analyst")).json()
    assert [(v["version"], v["change"]) for v in versions] == [(2, "updated"), (1, "created")]
    assert [(e["object_id"], e["details"]) for e in reversed(audited(api, "put_slo"))] == [
        ("link_success", {"version": 1, "change": "created"}),
        ("link_success", {"version": 1, "change": "unchanged"}),
        ("link_success", {"version": 2, "change": "updated"}),
    ]

    # Rules and SLOs share names: neither route reaches the other kind.
    rules = "/api/banking-analytics/rules"
    taken = api.client.put(f"{rules}/link_success", json=RULE_BODY, headers=api.as_key("admin"))
    assert taken.status_code == 409
    assert taken.headers["content-type"] == "application/problem+json"
    assert "is the name of an SLO" in taken.json()["detail"]
    assert api.client.get(f"{rules}/link_success", headers=api.as_key("admin")).status_code == 404
    assert api.client.get(rules, headers=api.as_key("admin")).json() == []
    api.client.put(f"{rules}/success_low", json=RULE_BODY, headers=api.as_key("admin"))
    assert api.client.get(f"{SLOS}/success_low", headers=api.as_key("admin")).status_code == 404
    assert (
        api.client.get(f"{SLOS}/success_low/versions", headers=api.as_key("admin")).status_code
        == 404
    )
    assert api.client.delete(f"{SLOS}/success_low", headers=api.as_key("admin")).status_code == 404
    assert (
        api.client.put(f"{SLOS}/success_low", json=BODY, headers=api.as_key("admin")).status_code
        == 409
    )

    deleted = api.client.delete(url, headers=api.as_key("admin"))
    assert (deleted.json()["version"], deleted.json()["definition"]) == (3, None)
    assert api.client.get(url, headers=api.as_key("analyst")).status_code == 404
    assert api.client.delete(url, headers=api.as_key("admin")).status_code == 404
    outcomes = [(e["object_id"], e["outcome"]) for e in reversed(audited(api, "delete_slo"))]
    assert outcomes == [
        ("success_low", "not_found"),
        ("link_success", "ok"),
        ("link_success", "not_found"),
    ]

    answer = api.client.put(
        f"{SLOS}/bad",
        json={"sli": "connection_attempts", "objective": 2, "period": "1y"},
        headers=api.as_key("admin"),
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in answer.json()["errors"]] == ["sli", "objective", "period"]
    mismatch = api.client.put(
        f"{SLOS}/one", json={**BODY, "name": "other"}, headers=api.as_key("admin")
    )
    assert mismatch.status_code == 422


def test_an_slo_shows_its_burn_rates_budget_and_alerts(live_api: LiveAPI) -> None:
    api = live_api
    api.analytics.ingest(world())
    api.client.put(f"{SLOS}/link_success", json=BODY, headers=api.as_key("admin"))
    api.analytics.monitor.evaluate(NOW)
    at = NOW.isoformat().replace("+00:00", "Z")

    shown = api.client.get(f"{SLOS}/link_success", params={"at": at}, headers=api.as_key("analyst"))
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["error_budget"] == 0.01
    assert body["evaluated_at"] == at
    assert [p["burn_rate_threshold"] for p in body["burn_rates"]] == [14.4, 6.0, 3.0, 1.0]
    by_name = {i["labels"]["institution"]: i for i in body["instances"]}
    ins_a = by_name["ins_a"]
    assert (ins_a["events"], ins_a["bad_events"]) == (2450, 19)
    assert ins_a["budget_remaining"] == 1 - ins_a["budget_consumed"]
    assert round(ins_a["budget_consumed"], 6) == round(19 / 2450 / 0.01, 6)
    assert ins_a["burning"] == [False, False, True, True]
    assert (ins_a["alert_state"], ins_a["alert_severity"]) == ("firing", "warning")
    assert {w["window"]: w["events"] for w in ins_a["windows"]} == {
        "5m": 50,
        "30m": 150,
        "1h": 150,
        "2h": 150,
        "6h": 250,
        "1d": 250,
        "3d": 450,
    }
    assert by_name["ins_b"]["budget_remaining"] is None
    first = api.client.get(
        f"{SLOS}/link_success", params={"at": at, "limit": 1}, headers=api.as_key("analyst")
    ).json()
    assert [i["labels"] for i in first["instances"]] == [{"institution": "ins_a"}]
    too_many = api.client.get(
        f"{SLOS}/link_success", params={"limit": 10**6}, headers=api.as_key("analyst")
    )
    assert too_many.status_code == 422

    # Its burn-rate alerts are alerts like any rule's.
    alerts = api.client.get(
        "/api/banking-analytics/alerts",
        params={"rule": "link_success"},
        headers=api.as_key("analyst"),
    ).json()
    assert [(a["labels"]["institution"], a["state"], a["severity"]) for a in alerts] == [
        ("ins_a", "firing", "warning"),
        ("ins_b", "nodata", None),
        ("ins_c", "firing", "critical"),
    ]

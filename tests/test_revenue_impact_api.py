"""The revenue-impact routes over real HTTP: who may read them, audit, bad input."""

from __future__ import annotations

from typing import Any

import pytest

from api_fixtures import LiveAPI
from test_revenue_impact import WINDOW, stored

IMPACT = "/api/banking-analytics/revenue/impact"
RECOMMENDATIONS = "/api/banking-analytics/revenue/recommendations"
ROI = "/api/banking-analytics/revenue/roi"
PERIOD = {"start": WINDOW.start.isoformat(), "end": WINDOW.end.isoformat()}


@pytest.fixture
def api(live_api: LiveAPI) -> LiveAPI:
    stored(live_api.analytics)
    return live_api


def audited(api: LiveAPI, action: str) -> list[dict[str, Any]]:
    answer = api.client.get(
        "/api/banking-analytics/admin/audit", params={"action": action}, headers=api.as_key("admin")
    )
    assert answer.status_code == 200
    entries: list[dict[str, Any]] = answer.json()["entries"]
    return entries


def test_an_analyst_reads_the_impact_and_the_read_is_audited(api: LiveAPI) -> None:
    answer = api.client.get(
        IMPACT, params={**PERIOD, "feature": "spending_analysis"}, headers=api.as_key("analyst")
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["total_revenue"] == [
        {"currency": "EUR", "amount": 500},
        {"currency": "USD", "amount": 2600},
    ]
    assert [f["feature"] for f in body["features"]] == ["spending_analysis"]
    assert body["features"][0]["attributed"] == {
        "upgrades": 1,
        "mrr": [{"currency": "USD", "amount": 1000}],
    }
    assert body["features"][0]["effect"]["status"] == "insufficient_data"
    [entry] = audited(api, "read_revenue_impact")
    assert entry["actor_role"] == "analyst"
    assert entry["details"]["feature"] == "spending_analysis"


@pytest.mark.parametrize("path", [IMPACT, RECOMMENDATIONS])
def test_ingest_keys_and_end_users_may_not_read_revenue(api: LiveAPI, path: str) -> None:
    assert api.client.get(path, params=PERIOD, headers=api.as_key("ingest")).status_code == 403
    assert api.client.get(path, params=PERIOD, headers=api.as_user("u1")).status_code == 403
    assert api.client.get(path, params=PERIOD).status_code == 401
    assert audited(api, "read_revenue_impact") == []


def test_recommendations_need_evidence(api: LiveAPI) -> None:
    """Too few conversions for any effect: nothing to recommend, and it says so by an empty
    list rather than a guess."""
    answer = api.client.get(RECOMMENDATIONS, params=PERIOD, headers=api.as_key("admin"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["recommendations"] == []
    assert len(audited(api, "read_revenue_recommendations")) == 1


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"feature": "budget_tracking", "cost": 100}, 422, "exactly one"),
        (
            {
                "feature": "budget_tracking",
                "cost": 100,
                "adoption_points": 5,
                "success_rate_to": 0.9,
            },
            422,
            "exactly one",
        ),
        ({"feature": "budget_tracking", "cost": -1, "adoption_points": 5}, 422, "cost"),
        (
            {"feature": "budget_tracking", "cost": 100, "adoption_points": 101},
            422,
            "adoption_points",
        ),
        ({"feature": "nope", "cost": 100, "adoption_points": 5}, 422, "feature"),
        ({"feature": "budget_tracking", "cost": 100, "adoption_points": 5, "x": 1}, 422, "x"),
        (
            {"feature": "budget_tracking", "cost": 100, "adoption_points": 5, "horizon_months": 0},
            422,
            "horizon_months",
        ),
        (
            {
                "feature": "budget_tracking",
                "cost": 100,
                "adoption_points": 5,
                "start": "2026-11-01T00:00:00Z",
            },
            422,
            "start and end",
        ),
        (
            {
                "feature": "budget_tracking",
                "cost": 100,
                "adoption_points": 5,
                "start": "2026-11-02T00:00:00Z",
                "end": "2026-11-01T00:00:00Z",
            },
            422,
            "start/end",
        ),
        (
            {
                "feature": "budget_tracking",
                "cost": 100,
                "adoption_points": 5,
                "start": "0001-01-01T00:00:00Z",
                "end": "2026-11-01T00:00:00Z",
            },
            422,
            "start",
        ),
        # Valid, but there is no effect estimate to project from.
        ({"feature": "budget_tracking", "cost": 100, "adoption_points": 5}, 422, "insufficient"),
        (
            {"feature": "budget_tracking", "cost": 100, "adoption_points": 5, "time_period": "x"},
            422,
            "time_period",
        ),
    ],
)
def test_bad_roi_requests_are_problems(
    api: LiveAPI, body: dict[str, object], status: int, says: str
) -> None:
    answer = api.client.post(
        ROI,
        json={**body, "time_period": body.get("time_period", "90d")},
        headers=api.as_key("analyst"),
    )
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert says in answer.text


def test_an_ingest_key_may_not_ask_for_roi(api: LiveAPI) -> None:
    body = {"feature": "budget_tracking", "cost": 100, "adoption_points": 5}
    assert api.client.post(ROI, json=body, headers=api.as_key("ingest")).status_code == 403

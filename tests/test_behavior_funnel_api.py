"""The funnel, retention and paths routes over real HTTP: JSON definitions in, shapes out,
analysts and admins only, bad definitions as RFC 9457 problems.

Routing does not depend on the engine (the figures are tested on both elsewhere): one
engine suffices.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from api_fixtures import LiveAPI
from behavior_flows_fixtures import store

PREFIX = "/api/banking-analytics/behavior"
T0 = datetime(2026, 10, 5, tzinfo=UTC)
RANGE = {"date_from": T0.isoformat(), "date_to": (T0 + timedelta(days=7)).isoformat()}
LINK = {"event_type": "behavior", "feature": "account_linking", "action": "open"}
VIEW = {"event_type": "behavior", "feature": "spending_analysis", "action": "view"}


def event(user: str, step: dict[str, str], hours: int) -> dict[str, object]:
    return {
        **step,
        "event_id": str(uuid.uuid4()),
        "user_id": user,
        "occurred_at": (T0 + timedelta(hours=hours)).isoformat(),
    }


@pytest.mark.duckdb
@pytest.mark.parametrize("store_url", ["duckdb"], indirect=True)
def test_funnel_retention_and_paths_over_http(live_api: LiveAPI) -> None:
    store(
        live_api.analytics,
        [event("u1", LINK, 1), event("u1", VIEW, 2), event("u2", LINK, 1), event("u1", VIEW, 30)],
    )
    analyst = live_api.as_key("analyst")
    funnel = {"steps": [LINK, VIEW], **RANGE, "conversion_window": "P14D"}
    answer = live_api.client.post(f"{PREFIX}/funnels", json=funnel, headers=analyst)
    assert answer.status_code == 200, answer.text
    steps = answer.json()["series"][0]["steps"]
    assert [s["users"] for s in steps] == [2, 1]
    assert steps[1]["median_seconds_from_previous"] == 3600

    page = live_api.client.post(
        f"{PREFIX}/funnels/users", params={"step": 1}, json=funnel, headers=analyst
    )
    assert page.status_code == 200, page.text
    assert page.json()["users"] == ["u2"]

    retention = {
        "start_event": LINK,
        "return_event": VIEW,
        "interval": "day",
        "criterion": "on_or_after",
        **RANGE,
    }
    grid = live_api.client.post(f"{PREFIX}/retention", json=retention, headers=analyst)
    assert grid.status_code == 200, grid.text
    assert [c["users"] for c in grid.json()["cohorts"][0]["cells"][:3]] == [2, 1, 0]

    # An hour between the two: one session only with a gap longer than the default 30 min.
    session = {**RANGE, "session_gap": "PT2H"}
    paths = live_api.client.post(f"{PREFIX}/paths", json=session, headers=analyst)
    assert paths.status_code == 200, paths.text
    assert paths.json()["transitions"] == [
        {
            "step": 1,
            "source": "account_linking/open",
            "target": "spending_analysis/view",
            "transitions": 1,
        }
    ]

    # An end user, an ingest key: refused. A bad definition: a problem naming the part.
    for headers in (live_api.as_user("u1"), live_api.as_key("ingest")):
        refused = live_api.client.post(f"{PREFIX}/funnels", json=funnel, headers=headers)
        assert refused.status_code == 403
    too_long = {**funnel, "steps": [LINK] * 11}
    bad = live_api.client.post(f"{PREFIX}/funnels", json=too_long, headers=analyst)
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert "2 to 10 steps" in bad.text
    unknown = {**funnel, "steps": [LINK, {**VIEW, "colour": "red"}]}
    assert (
        live_api.client.post(f"{PREFIX}/funnels", json=unknown, headers=analyst).status_code == 422
    )
    no_column = {**funnel, "breakdown": "nope"}
    answer = live_api.client.post(f"{PREFIX}/funnels", json=no_column, headers=analyst)
    assert answer.status_code == 422
    assert "not a column" in answer.text

"""The behaviour routes over real HTTP: the hand-worked answers, bounds as problems, and who
may read what (analysts and admins everything; an end user only their own sessions and
engagement)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from api_fixtures import LiveAPI
from test_behavior_handworked import AUG10, EVENTS, JUNE1, MAY4

API = "/api/banking-analytics"
MAY = {"start": MAY4.isoformat(), "end": (MAY4 + timedelta(days=1)).isoformat()}
AUGUST = {"start": AUG10.isoformat(), "end": (AUG10 + timedelta(days=6)).isoformat()}
JUNE = {
    "date_from": JUNE1.isoformat(),
    "date_to": (JUNE1 + timedelta(days=5)).isoformat(),
}


@pytest.fixture
def api(live_api: LiveAPI) -> LiveAPI:
    assert all(r.status == "accepted" for r in live_api.analytics.ingest(EVENTS))
    return live_api


def test_analysts_read_every_answer_and_end_users_only_their_own(api: LiveAPI) -> None:
    analyst = api.as_key("analyst")
    get = api.client.get
    sessions = get(f"{API}/behavior/sessions", params=MAY, headers=analyst)
    assert sessions.status_code == 200, sessions.text
    assert sessions.json()["overall"]["sessions"] == 4
    merged = get(f"{API}/behavior/sessions", params={**MAY, "gap_minutes": 60}, headers=analyst)
    assert merged.json()["overall"]["sessions"] == 3
    devices = get(f"{API}/behavior/devices", params=MAY, headers=analyst).json()
    assert (devices["users_with_device"], devices["multi_device_users"]) == (2, 1)
    engagement = get(f"{API}/behavior/engagement", params=AUGUST, headers=analyst).json()
    assert [p["dau"] for p in engagement["series"]] == [2, 1, 1, 1, 0, 0]
    only_goals = get(
        f"{API}/behavior/engagement",
        params={**AUGUST, "feature": "goal_setting"},
        headers=analyst,
    ).json()
    assert [p["dau"] for p in only_goals["series"]] == [0, 1, 1, 0, 0, 0]
    lifecycle = api.client.post(f"{API}/behavior/lifecycle", json=JUNE, headers=analyst)
    assert lifecycle.status_code == 200, lifecycle.text
    assert [p["dormant"] for p in lifecycle.json()["points"]] == [0, -1, -2, -1, -1]
    sticky = api.client.post(
        f"{API}/behavior/stickiness", json={**JUNE, "interval": "week"}, headers=analyst
    )
    assert [p["users"] for p in sticky.json()["points"]] == [4]
    admin = api.as_key("admin")
    analysis = get(f"{API}/behavior/analysis", params=AUGUST, headers=admin)
    assert analysis.status_code == 200, analysis.text
    assert analysis.json()["engagement"]["users"] == 3
    dashboard = get(f"{API}/dashboard/behavior", params=AUGUST, headers=analyst)
    assert dashboard.status_code == 200, dashboard.text
    assert dashboard.json()["headline"]["mau"] == 3
    # An end user reads their own sessions and engagement, and only theirs.
    mine = api.as_user("split")
    sessions = api.client.get(f"{API}/users/split/sessions", params=MAY, headers=mine)
    assert sessions.status_code == 200, sessions.text
    assert [s["events"] for s in sessions.json()["sessions"]] == [2, 1]
    page = api.client.get(
        f"{API}/users/split/sessions", params={**MAY, "limit": 1, "offset": 1}, headers=mine
    )
    assert [s["events"] for s in page.json()["sessions"]] == [1]
    engagement = api.client.get(
        f"{API}/users/e1/engagement", params=AUGUST, headers=api.as_user("e1")
    )
    assert engagement.status_code == 200, engagement.text
    assert engagement.json()["active_days"] == 3
    # Another user's data answers exactly as a user with no data would for them: 404.
    for path in ("users/client/sessions", "users/e1/engagement"):
        assert api.client.get(f"{API}/{path}", params=MAY, headers=mine).status_code == 404
    # An analyst reads anyone's.
    theirs = api.client.get(
        f"{API}/users/client/sessions", params=MAY, headers=api.as_key("analyst")
    )
    assert theirs.json()["total"] == 2


#: Out-of-bounds queries: (method, path, request arguments, what the problem names).
OUT_OF_BOUNDS = [
    (
        "post",
        "behavior/stickiness",
        {"json": {**JUNE, "date_to": "2027-07-07T00:00:00Z"}},
        "at most 400",
    ),
    ("post", "behavior/lifecycle", {"json": {**JUNE, "timezone": "Mars/Base"}}, "timezone"),
    ("post", "behavior/lifecycle", {"json": {**JUNE, "breakdown": "device"}}, "breakdown"),
    ("get", "behavior/sessions", {"params": {**MAY, "gap_minutes": 0}}, "gap_minutes"),
    ("get", "behavior/sessions", {"params": {"time_period": "9999d"}}, "at most"),
    (
        "get",
        "behavior/engagement",
        {"params": {**MAY, "feature": ["goal_setting"] * 26}},
        "feature",
    ),
    ("get", "behavior/engagement", {"params": {**MAY, "timezone": "Nowhere"}}, "timezone"),
    ("get", "users/split/sessions", {"params": {**MAY, "limit": 1001}}, "limit"),
]
#: Every route that reads everyone's behaviour.
EVERYONES = [
    ("get", "behavior/sessions"),
    ("get", "behavior/devices"),
    ("get", "behavior/engagement"),
    ("get", "behavior/analysis"),
    ("get", "dashboard/behavior"),
    ("post", "behavior/stickiness"),
    ("post", "behavior/lifecycle"),
]


# Checked before the store is read: once, on DuckDB (a live server costs seconds to start).
@pytest.mark.parametrize("store_url", ["duckdb"], indirect=True)
def test_bounds_are_problems_and_only_analysts_read_everyones_behaviour(api: LiveAPI) -> None:
    for method, path, request_args, says in OUT_OF_BOUNDS:
        answer = getattr(api.client, method)(
            f"{API}/{path}", headers=api.as_key("analyst"), **request_args
        )
        assert answer.status_code == 422, (path, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert says in answer.text, (path, answer.text)
    for method, path in EVERYONES:
        send = getattr(api.client, method)
        body = {"json": JUNE} if method == "post" else {}
        assert send(f"{API}/{path}", headers=api.as_user("split"), **body).status_code == 403
        assert send(f"{API}/{path}", headers=api.as_key("ingest"), **body).status_code == 403
        assert send(f"{API}/{path}", **body).status_code == 401

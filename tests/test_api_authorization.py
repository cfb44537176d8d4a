"""The authorisation matrix: every route x every kind of caller x own/other object.

The routes come from the app's own OpenAPI document, where each operation
publishes its policy (``x-access``); a route cannot even be made without one.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter

from api_fixtures import LiveAPI
from banking_analytics.api import create_app
from banking_analytics.api._auth import PolicedRoute

CALLERS = ["anonymous", "admin", "analyst", "ingest", "own_user", "other_user"]
USER = "alice"
#: A body that passes validation, for routes whose answer depends on the body's user.
VALID_BODIES: dict[str, dict[str, Any]] = {
    "/api/banking-analytics/user/behavior": {
        "user_id": USER,
        "feature": "goal_setting",
        "action": "open",
    },
}


def _routes() -> list[tuple[str, str, dict[str, Any]]]:
    """Every operation of the app with its published access policy (``x-access``)."""
    paths = create_app().openapi()["paths"]
    return sorted(
        (method.upper(), path, operation["x-access"])
        for path, operations in paths.items()
        for method, operation in operations.items()
    )


def test_a_route_without_an_access_policy_cannot_be_made() -> None:
    router = APIRouter(route_class=PolicedRoute)
    with pytest.raises(TypeError, match="declares no access policy"):

        @router.get("/unguarded")
        def unguarded() -> None:
            pass


def _expected(policy: dict[str, Any], caller: str) -> set[int] | None:
    """The statuses allowed for this caller, or None when the caller is admitted."""
    if not policy["authenticated"]:
        return None
    if caller == "anonymous":
        return {401}
    if caller in ("own_user", "other_user"):
        if not policy["end_user_own_objects"]:
            return {403}
        return {404} if caller == "other_user" else None
    return None if caller in policy["roles"] else {403}


# Routing and policies do not depend on the engine: one engine suffices.
@pytest.mark.duckdb
@pytest.mark.parametrize("store_url", ["duckdb"], indirect=True)
def test_every_route_admits_exactly_its_callers(live_api: LiveAPI) -> None:
    checked = 0
    for method, path, policy in _routes():
        for caller in CALLERS:
            headers = (
                {}
                if caller == "anonymous"
                else live_api.as_user(USER if caller == "own_user" else "mallory")
                if caller.endswith("user")
                else live_api.as_key(caller)
            )
            url = path.replace("{user_id}", USER).replace("{key_id}", "nosuchkey")
            body = VALID_BODIES.get(path)
            if caller == "other_user" and body is not None:
                # The other user names alice's id in the body: that object is not theirs.
                headers = live_api.as_user("mallory")
            with live_api.client.stream(method, url, headers=headers, json=body) as response:
                # An event stream never ends: its status is checked, its body left unread.
                endless = response.headers.get("content-type", "").startswith("text/event-stream")
                text = "(an event stream)" if endless else response.read().decode()
            expected = _expected(policy, caller)
            if expected is None:
                assert response.status_code not in (401, 403), (method, path, caller, text)
                if caller == "own_user" and policy["authenticated"]:
                    # A public route has no objects of the caller's (the Stripe webhook,
                    # not configured here, answers 404 to everyone).
                    assert response.status_code != 404, (method, path, text)
            else:
                assert response.status_code in expected, (method, path, caller, text)
            assert response.status_code < 500, (method, path, caller, text)
            checked += 1
    assert checked >= len(CALLERS) * 15

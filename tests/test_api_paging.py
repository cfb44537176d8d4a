"""List routes page through one dependency (``api.routes._params.page_limit``): a ``limit``
above the server's ``max_page_size`` is a 422 problem naming it on every one of them, and
receivers, rules and SLOs are read a page at a time (``limit``, ``offset``), by name, on
every engine."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from api_fixtures import LiveAPI, api_settings
from api_server import running
from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.access import KeyStore, Role
from banking_analytics.monitor import Rule, Slo
from test_monitor_evaluate import RULE
from test_monitor_slo import SLO

API = "/api/banking-analytics"
#: Every route whose ``limit`` the server's page size bounds.
LIMITED = [
    "alerts",
    "alerts/history",
    "silences",
    "deliveries",
    "admin/audit",
    "slos/no_such_slo",  # label sets of one SLO: checked before the SLO is looked up
    "receivers",
    "rules",
    "slos",
]
#: Pages of two: small enough that three items take two pages.
PAGE_SIZE = 2


@pytest.fixture
def small_pages(
    analytics: BankingPerformanceAnalytics,
) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    """A server whose pages hold at most two items, and an admin key's headers."""
    admin = KeyStore(analytics.engine).create("test admin", Role.ADMIN).secret
    settings = api_settings(analytics, max_page_size=PAGE_SIZE)
    with (
        running(settings, analytics=analytics) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        yield client, {"Authorization": f"Bearer {admin}"}


# The refusal is the API's, not the store's: one engine is enough.
@pytest.mark.parametrize("store_url", ["duckdb"], indirect=True)
def test_a_limit_above_the_page_size_is_a_problem_on_every_list_route(
    small_pages: tuple[httpx.Client, dict[str, str]],
) -> None:
    client, admin = small_pages
    for route in LIMITED:
        url = f"{API}/{route}"
        refused = client.get(url, params={"limit": PAGE_SIZE + 1}, headers=admin)
        assert refused.status_code == 422, (route, refused.text)
        assert refused.headers["content-type"] == "application/problem+json", route
        assert refused.json()["detail"] == "limit (query): at most 2", route
        # The schema's own bound, below it: still a problem naming the field.
        assert client.get(url, params={"limit": 0}, headers=admin).status_code == 422, route
        # The page size itself is allowed (the one SLO asked for does not exist: 404).
        allowed = client.get(url, params={"limit": PAGE_SIZE}, headers=admin)
        assert allowed.status_code == (404 if route == "slos/no_such_slo" else 200), route
        # Authentication comes first: an anonymous caller learns nothing about limits.
        assert client.get(url, params={"limit": PAGE_SIZE + 1}).status_code == 401, route
    # Past the largest offset: refused by the schema, never a database error.
    too_far = client.get(f"{API}/receivers", params={"offset": 10**9 + 1}, headers=admin)
    assert too_far.status_code == 422
    assert too_far.headers["content-type"] == "application/problem+json"


def _names(api: LiveAPI, route: str, **params: int) -> list[str]:
    answer = api.client.get(f"{API}/{route}", params=params, headers=api.as_key("analyst"))
    assert answer.status_code == 200, answer.text
    return [item["name"] for item in answer.json()]


def test_receivers_are_read_a_page_at_a_time_by_name(live_api: LiveAPI) -> None:
    api = live_api
    # Made out of order: the pages follow the names, not the order of making.
    for name in ("ops-c", "ops-a", "ops-b"):
        made = api.client.put(
            f"{API}/receivers/{name}",
            json={"kind": "webhook", "url": f"https://93.184.215.14/hooks/{name}"},
            headers=api.as_key("admin"),
        )
        assert made.status_code == 200, made.text
    assert _names(api, "receivers", limit=2) == ["ops-a", "ops-b"]
    assert _names(api, "receivers", limit=2, offset=2) == ["ops-c"]
    assert _names(api, "receivers", limit=2, offset=3) == []
    assert _names(api, "receivers", offset=1) == ["ops-b", "ops-c"]  # 100 by default
    # Every page is read from the store, so the pages agree with one whole reading.
    store = api.analytics.monitor.notifications
    assert [r.name for r in store.receivers(limit=1, offset=1)] == ["ops-b"]
    assert [r.name for r in store.receivers()] == ["ops-a", "ops-b", "ops-c"]


def test_rules_and_slos_are_read_a_page_at_a_time_by_name_each_kind_apart(
    live_api: LiveAPI,
) -> None:
    api = live_api
    # One namespace, names interleaved: alpha, beta and delta are SLOs; charlie, echo and
    # foxtrot rules. A page of one kind never counts the other's.
    made = [Slo.from_dict({**SLO, "name": n}) for n in ("delta", "alpha", "beta")]
    made += [Rule.from_dict({**RULE, "name": n}) for n in ("foxtrot", "charlie", "echo")]
    api.analytics.monitor.apply(made, "test")
    assert _names(api, "slos", limit=2) == ["alpha", "beta"]
    assert _names(api, "slos", limit=2, offset=2) == ["delta"]
    assert _names(api, "rules", limit=2) == ["charlie", "echo"]
    assert _names(api, "rules", limit=2, offset=2) == ["foxtrot"]
    assert _names(api, "rules", limit=2, offset=4) == []
    # A deleted SLO leaves the pages; the rest move up.
    api.analytics.monitor.delete("alpha", Slo, "test")
    assert _names(api, "slos", limit=2) == ["beta", "delta"]
    assert _names(api, "slos", limit=2, offset=2) == []


#: Every route that pages by ``offset`` (method, path, extra query, JSON body).
FUNNEL = {
    "steps": [{"event_type": "behavior"}, {"event_type": "behavior"}],
    "date_from": "2026-11-01T00:00:00+00:00",
    "date_to": "2026-11-08T00:00:00+00:00",
}
OFFSET_ROUTES: list[tuple[str, str, dict[str, object], object]] = [
    ("GET", "connections/items", {}, None),
    ("GET", "revenue/movements", {}, None),
    ("GET", "performance/institution-health", {}, None),
    ("GET", "users/u1/sessions", {}, None),
    ("POST", "behavior/funnels/users", {"step": 1}, FUNNEL),
    ("GET", "receivers", {}, None),
]


@pytest.mark.parametrize("store_url", ["duckdb", "postgres"], indirect=True)
def test_an_offset_past_the_largest_is_a_problem_and_the_largest_an_empty_page(
    small_pages: tuple[httpx.Client, dict[str, str]],
) -> None:
    """A 64-bit OFFSET is the engines' limit: 10^20 used to reach the database (a 500);
    every offset route now refuses past ``MAX_OFFSET`` and answers an empty page at it."""
    client, admin = small_pages
    for method, route, extra, body in OFFSET_ROUTES:
        url = f"{API}/{route}"
        for offset in (10**9 + 1, 10**20):
            refused = client.request(
                method, url, params={**extra, "offset": offset}, json=body, headers=admin
            )
            assert refused.status_code == 422, (route, refused.text)
            assert refused.headers["content-type"] == "application/problem+json", route
            assert "offset" in refused.json()["detail"], route
        largest = client.request(
            method, url, params={**extra, "offset": 10**9}, json=body, headers=admin
        )
        assert largest.status_code == 200, (route, largest.text)


@pytest.mark.parametrize("store_url", ["duckdb"], indirect=True)
def test_a_request_naming_no_limit_gets_the_smaller_of_the_default_and_the_page_size(
    small_pages: tuple[httpx.Client, dict[str, str]],
) -> None:
    """A server whose pages are smaller than a route's default (100) still answers a
    request without ``limit``, a page of its page size."""
    client, admin = small_pages
    for name in ("ops-a", "ops-b", "ops-c"):
        made = client.put(
            f"{API}/receivers/{name}",
            json={"kind": "webhook", "url": f"https://93.184.215.14/hooks/{name}"},
            headers=admin,
        )
        assert made.status_code in (200, 201), made.text
    for route in LIMITED:
        answer = client.get(f"{API}/{route}", headers=admin)
        assert answer.status_code == (404 if route == "slos/no_such_slo" else 200), route
    names = [r["name"] for r in client.get(f"{API}/receivers", headers=admin).json()]
    assert names == ["ops-a", "ops-b"]

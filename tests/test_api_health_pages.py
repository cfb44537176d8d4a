"""``GET /performance/institution-health`` answers a page of products at a time: with
``include_history`` 20 by default, 50 at most, so a week of 15-minute states per product
cannot make a 15 MB answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from api_fixtures import LiveAPI
from banking_analytics.simulate import SimulationConfig, run_simulation
from banking_analytics.vocabulary import EventType

PATH = "/api/banking-analytics/performance/institution-health"
END = datetime(2026, 11, 20, tzinfo=UTC)


def simulate(live_api: LiveAPI) -> None:
    def sink(event_type: EventType, chunk: pa.Table) -> None:
        live_api.analytics.ingest_arrow(chunk, event_type=event_type)

    run_simulation(SimulationConfig(users=400, days=8, seed=5, end=END), sink)


def get(live_api: LiveAPI, **params: Any) -> Any:
    answer = live_api.client.get(
        PATH, params={"end": END.isoformat(), **params}, headers=live_api.as_key("analyst")
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def key(product: dict[str, Any]) -> tuple[str, str, str]:
    return product["institution_id"], product["aggregator"], product["product"]


def test_history_comes_in_pages_that_add_up_to_the_whole(live_api: LiveAPI) -> None:
    simulate(live_api)
    whole = get(live_api)  # without history: every product on one page
    total = whole["total_products"]
    assert len(whole["products"]) == total > 45  # enough for three pages of 20
    assert whole["next_offset"] is None
    pages, offset = [], 0
    while offset is not None:
        page = get(live_api, include_history="true", offset=offset)
        assert page["total_products"] == total
        assert page["institutions"] == whole["institutions"]
        pages.append(page["products"])
        offset = page["next_offset"]
    # ceil(total / 20) pages of 20 but the last, in the order of the whole answer.
    assert [len(p) for p in pages] == [20] * (total // 20) + ([total % 20] if total % 20 else [])
    paged = [product for page in pages for product in page]
    assert [key(p) for p in paged] == [key(p) for p in whole["products"]]
    assert [p["state"] for p in paged] == [p["state"] for p in whole["products"]]
    assert all(len(p["history"]) == 7 * 96 for p in paged)  # a week of 15-minute states
    small = get(live_api, include_history="true", limit=3, offset=total - 2)
    assert [key(p) for p in small["products"]] == [key(p) for p in whole["products"][-2:]]
    assert small["next_offset"] is None
    assert get(live_api, limit=5, offset=5)["next_offset"] == 10


def test_pages_beyond_the_bounds_are_refused(live_api: LiveAPI) -> None:
    analyst = live_api.as_key("analyst")
    for params in (
        {"include_history": "true", "limit": "51"},
        {"limit": "1001"},
        {"limit": "0"},
        {"offset": "-1"},
    ):
        answer = live_api.client.get(PATH, params=params, headers=analyst)
        assert answer.status_code == 422, (params, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert "limit" in answer.text or "offset" in answer.text

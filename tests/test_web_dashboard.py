"""The performance dashboard and an institution's drill-down, in a real browser over a
simulated store: figures as the API gives them, filters in the URL, live updates,
insufficient data, CSV, layouts, keyboard use, and nothing fetched from elsewhere."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from playwright.sync_api import expect

from banking_analytics.access import Role
from web_fixtures import (
    DATES,
    DOWN,
    HOSTILE,
    HOSTILE_NAME,
    SPARSE,
    WINDOW,
    Site,
    Watched,
    attempt,
    sign_in,
)

API = "/api/banking-analytics"


def percent(value: float) -> str:
    """A ratio as the page writes it: 91.3 %."""
    return f"{value * 100:.1f} %"


def millis(value: float) -> str:
    """A duration as the page writes it: 12,257 ms (half away from zero, as Intl does)."""
    return f"{int(value + 0.5):,} ms"


def tile_value(tab: Watched, tile: str) -> str:
    return tab.page.inner_text(f"#tile-{tile} .value")


def tile_detail(tab: Watched, tile: str) -> dict[str, str]:
    terms = tab.page.locator(f"#tile-{tile} dt").all_inner_texts()
    values = tab.page.locator(f"#tile-{tile} dd").all_inner_texts()
    return dict(zip(terms, values, strict=True))


def page_data(tab: Watched) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(tab.page.inner_text("#page-data"))
    return data


def test_the_tiles_show_the_figures_the_api_gives(tab: Watched, site: Site) -> None:
    sign_in(tab, site, path=f"/performance?{urlencode(DATES)}")
    answer = site.api.get(
        f"{API}/dashboard/performance", params=WINDOW, headers=site.as_key(Role.ANALYST)
    )
    assert answer.status_code == 200, answer.text
    dashboard = answer.json()
    success = dashboard["connection"]["success_rate"]
    latency = dashboard["connection"]["latency"]
    assert tile_value(tab, "success_rate") == percent(success["average"])
    assert tile_detail(tab, "success_rate") == {
        "success": percent(success["breakdown"]["success"]),
        "institution errors": percent(success["breakdown"]["error_institution"]),
        "aggregator errors": percent(success["breakdown"]["error_aggregator"]),
    }
    assert tile_value(tab, "latency") == millis(latency["p95_ms"])
    assert tile_detail(tab, "latency") == {
        "p50": millis(latency["p50_ms"]),
        "p95": millis(latency["p95_ms"]),
        "p99": millis(latency["p99_ms"]),
    }
    errors = dashboard["errors"]["connection"]
    assert tile_value(tab, "error_rate") == percent(errors["error_rate"])
    assert tile_detail(tab, "error_rate") == {
        "failures": f"{errors['failures']:,}",
        "attempts": f"{errors['total']:,}",
    }
    # The change against the previous period, in percentage points, with its direction.
    change = (success["average"] - success["previous_period"]) * 100
    arrow = "▲ +" if change > 0 else "▼ \u2212"  # a minus sign, as the page writes
    assert tab.page.inner_text("#tile-success_rate .change").startswith(
        f"{arrow}{abs(change):.1f} pp vs previous period"
    )
    # Sync freshness: the analysis's states at the window's end (7 days back).
    fresh = site.api.get(
        f"{API}/performance/sync-freshness",
        params={"lookback": "7d", "end": WINDOW["end"]},
        headers=site.as_key(Role.ANALYST),
    )
    if fresh.status_code == 200:
        states = fresh.json()["states"]
        assert tile_detail(tab, "freshness") == {
            state.lower(): f"{states[state]:,}" for state in ("NORMAL", "DELAYED", "STOPPED")
        }
        assert tile_value(tab, "freshness") == percent(states["NORMAL"] / sum(states.values()))


def test_filtered_tiles_and_charts_match_the_metric_api(tab: Watched, site: Site) -> None:
    sign_in(tab, site, path=f"/performance?{urlencode({**DATES, 'aggregator': 'mx'})}")
    answer = site.api.post(
        f"{API}/metrics/query",
        json={
            "metrics": ["connection_success_rate", "connection_latency_p95_ms"],
            **WINDOW,
            "filters": {"aggregator": "mx"},
        },
        headers=site.as_key(Role.ANALYST),
    )
    assert answer.status_code == 200, answer.text
    (row,) = answer.json()["rows"]
    assert tile_value(tab, "success_rate") == percent(
        row["values"]["connection_success_rate"]["value"]
    )
    assert tile_value(tab, "latency") == millis(row["values"]["connection_latency_p95_ms"]["value"])
    # The error-category chart: failures per category and day, as the metric API counts them.
    data = page_data(tab)
    assert data["bucket"] == "day"
    chart = next(c for c in data["charts"] if c["id"] == "errors_by_category")
    by_day = site.api.post(
        f"{API}/metrics/query",
        json={
            "metrics": ["connection_failures"],
            **WINDOW,
            "dimensions": ["error_category"],
            "bucket": "day",
            "filters": {"aggregator": "mx", "outcome": "failure"},
        },
        headers=site.as_key(Role.ANALYST),
    ).json()
    expected: dict[tuple[str, str], int] = {}
    for r in by_day["rows"]:
        key = (r["bucket"][:10], r["dimensions"]["error_category"] or "uncategorised")
        expected[key] = expected.get(key, 0) + r["values"]["connection_failures"]["value"]
    shown = {
        (x[:10], s["name"]): v
        for s in chart["series"]
        for x, v in zip(chart["x"], s["values"], strict=True)
        if v
    }
    assert shown == {k: v for k, v in expected.items() if v}
    assert sum(shown.values()) > 0


def test_a_filter_change_goes_into_the_url_and_back_restores_it(tab: Watched, site: Site) -> None:
    sign_in(tab, site, path=f"/performance?{urlencode(DATES)}")
    before = tile_value(tab, "success_rate")
    with tab.page.expect_navigation():
        tab.page.select_option("#f-aggregator", "plaid")
    assert "aggregator=plaid" in tab.page.url
    tab.page.wait_for_selector("#tile-success_rate")
    plaid = tile_value(tab, "success_rate")
    assert plaid != before
    with tab.page.expect_navigation():
        tab.page.select_option("#f-period", "7d")
    assert "period=7d" in tab.page.url
    assert "aggregator=plaid" in tab.page.url
    assert "start=" not in tab.page.url  # a custom range's dates leave with it
    tab.page.go_back()
    tab.page.wait_for_selector("#tile-success_rate")
    assert "aggregator=plaid" in tab.page.url
    assert "period=custom" in tab.page.url
    assert tab.page.input_value("#f-aggregator") == "plaid"
    assert tab.page.input_value("#f-period") == "custom"
    assert tile_value(tab, "success_rate") == plaid
    tab.page.go_back()
    tab.page.wait_for_selector("#tile-success_rate")
    assert tab.page.input_value("#f-aggregator") == ""
    assert tile_value(tab, "success_rate") == before


def test_a_planted_down_institution_shows_down_and_opens_its_drill_down(
    tab: Watched, site: Site
) -> None:
    sign_in(tab, site, path=f"/performance?{urlencode(DATES)}")
    row = tab.page.locator(f"#institutions tr[data-institution='{DOWN}']")
    # The state is written, with an icon: colour is not its only carrier.
    assert row.locator("td.state").inner_text() == "✕ DOWN"
    first = tab.page.locator("#institutions tbody tr").first
    assert first.get_attribute("data-institution") == DOWN  # worst first
    row.locator("a").click()
    tab.page.wait_for_selector("#failures tbody tr")
    assert tab.page.url.startswith(f"{site.url}/performance/institutions/{DOWN}?")
    assert "period=custom" in tab.page.url
    assert tab.page.inner_text("#institution-name") == DOWN
    codes = tab.page.locator("#failures tbody td code").all_inner_texts()
    assert codes == ["INSTITUTION_DOWN"] * 20  # the 20 most recent of 30 failures
    assert tile_value(tab, "success_rate") == "0.0 %"
    assert tab.page.locator("#products td.state").all_inner_texts() == ["✕ DOWN"]
    assert tab.page.locator("#products td.num").first.inner_text() == "0.0 %"  # 0 of 30


def test_a_product_window_with_too_few_attempts_shows_no_rate(tab: Watched, site: Site) -> None:
    sign_in(tab, site, path=f"/performance/institutions/{SPARSE}?{urlencode(DATES)}")
    cells = tab.page.locator("#products tbody tr td:nth-child(5)").all_inner_texts()
    assert cells
    assert all(text.startswith("Insufficient data") for text in cells)


def test_too_few_attempts_say_insufficient_data_never_zero(tab: Watched, site: Site) -> None:
    sign_in(tab, site, path=f"/performance?{urlencode({**DATES, 'institution': SPARSE})}")
    text = tile_value(tab, "success_rate")
    assert text == "Insufficient data (n = 3 < 20)"
    assert "%" not in text
    assert tile_value(tab, "latency").startswith("Insufficient data")
    assert "0.0 %" not in tab.page.inner_text("#tiles")


def test_the_table_sorts_and_searches(tab: Watched, site: Site) -> None:
    sign_in(tab, site, path=f"/performance?{urlencode(DATES)}")
    rows = tab.page.locator("#institutions tbody tr")
    total = rows.count()
    tab.page.fill("#institution-search", "finicity")
    assert 0 < rows.count() < total
    assert all("finicity" in t for t in rows.locator("td:nth-child(2)").all_inner_texts())
    tab.page.fill("#institution-search", "")
    tab.page.click("th button[data-sort='sample_size']")
    samples = [int(t.replace(",", "")) for t in rows.locator("td:nth-child(7)").all_inner_texts()]
    assert samples == sorted(samples)
    tab.page.click("th button[data-sort='sample_size']")
    samples = [int(t.replace(",", "")) for t in rows.locator("td:nth-child(7)").all_inner_texts()]
    assert samples == sorted(samples, reverse=True)
    header = tab.page.locator("th:has(button[data-sort='sample_size'])")
    assert header.get_attribute("aria-sort") == "descending"


def test_each_chart_downloads_its_data_as_csv(tab: Watched, site: Site) -> None:
    sign_in(tab, site, path=f"/performance?{urlencode(DATES)}")
    data = page_data(tab)
    for chart in data["charts"]:
        with tab.page.expect_download() as download:
            tab.page.click(f"#chart-{chart['id']} button.csv")
        assert download.value.suggested_filename == f"{chart['id']}.csv"
        path = download.value.path()
        rows = list(csv.reader(io.StringIO(path.read_text())))
        assert rows[0] == ["x", *(s["name"] for s in chart["series"])]
        assert [r[0] for r in rows[1:]] == [str(x) for x in chart["x"]]
        for i, series in enumerate(chart["series"], start=1):
            assert [float(r[i]) if r[i] else None for r in rows[1:]] == series["values"]
    # And the page's data is the data endpoint's, for the same filters.
    fetched = tab.page.evaluate(
        "async (q) => (await fetch('/performance/data?' + q)).json()", urlencode(DATES)
    )
    assert [c["series"] for c in fetched["charts"]] == [c["series"] for c in data["charts"]]


def test_new_events_show_up_without_a_reload(tab: Watched, site: Site) -> None:
    sign_in(tab, site, path="/performance?period=1h")
    assert tile_detail(tab, "error_rate")["attempts"] == "0"
    expect(tab.page.locator("#live-text")).to_have_text(re.compile(r"^Updated \d+ s ago$"))
    now = datetime.now(UTC)
    events = [attempt("ins_live", now - timedelta(seconds=30 + i), "success") for i in range(25)]
    sent = site.api.post(
        f"{API}/events/batch", json={"events": events}, headers=site.as_key(Role.INGEST)
    )
    assert sent.status_code in (200, 207), sent.text
    navigations: list[str] = []
    tab.page.on("framenavigated", lambda frame: navigations.append(frame.url))
    expect(tab.page.locator("#tile-error_rate dd").last).to_have_text("25", timeout=10_000)
    assert tile_value(tab, "success_rate") == "100.0 %"
    assert navigations == []  # figures changed in place
    # A server that stops answering shows as stale, not as current figures.
    tab.page.route("**/performance/data*", lambda route: route.abort())
    expect(tab.page.locator("#live")).to_have_class(re.compile(r"\bstale\b"), timeout=10_000)
    assert tab.page.inner_text("#live-text").startswith("Stale: updated")
    tab.page.unroute("**/performance/data*")
    tab.failed.clear()
    tab.errors.clear()


def test_a_phone_screen_has_no_horizontal_scroll(tab: Watched, site: Site) -> None:
    tab.page.set_viewport_size({"width": 390, "height": 844})
    sign_in(tab, site, path=f"/performance?{urlencode(DATES)}")
    for path in (f"/performance?{urlencode(DATES)}", f"/performance/institutions/{DOWN}"):
        tab.page.goto(f"{site.url}{path}")
        tab.page.wait_for_selector("#tile-success_rate")
        width = tab.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390


def test_the_keyboard_reaches_the_filters_and_the_table(tab: Watched, site: Site) -> None:
    sign_in(tab, site, path=f"/performance?{urlencode(DATES)}")
    tab.page.locator("body").focus()
    reached: list[str] = []
    for _ in range(150):
        tab.page.keyboard.press("Tab")
        reached.append(
            tab.page.evaluate(
                "(() => { const e = document.activeElement; return e.id || e.dataset.sort"
                " || e.closest('tr')?.dataset.institution || e.tagName; })()"
            )
        )
    assert {"f-period", "f-feature", "f-aggregator", "f-timezone"} <= set(reached)
    assert "institution-search" in reached
    assert "institution" in reached  # the table's sort buttons
    # A table row's link opens the drill-down from the keyboard.
    while tab.page.evaluate("document.activeElement.closest('tbody') === null"):
        tab.page.keyboard.press("Tab")
    with tab.page.expect_navigation():
        tab.page.keyboard.press("Enter")
    assert "/performance/institutions/" in tab.page.url


def test_bad_filters_give_a_page_saying_why(tab: Watched, site: Site) -> None:
    sign_in(tab, site)
    for query, words in [
        ("period=fortnight", "period: 'fortnight' is not one of"),
        ("period=custom&start=2026-11-19&end=2026-11-01", "ends before it starts"),
        ("period=custom&start=yesterday&end=2026-11-01", "is not a date"),
        ("aggregator=acme", "is not an aggregator"),
        ("timezone=Mars/Olympus", "is not an IANA timezone"),
    ]:
        answer = tab.page.goto(f"{site.url}/performance?{query}")
        assert answer is not None
        assert answer.status == 422
        assert words in tab.page.inner_text("#problem-detail")
    tab.errors.clear()  # each 422 document is logged as a failed resource


def test_markup_in_a_filter_is_shown_as_text(tab: Watched, site: Site) -> None:
    sign_in(tab, site)
    dialogs: list[str] = []
    tab.page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    answer = tab.page.goto(f"{site.url}/performance?{urlencode({**DATES, 'institution': hostile})}")
    assert answer is not None
    assert answer.status == 422
    assert hostile in tab.page.inner_text("#problem-detail")
    assert tab.page.locator("img[src=x]").count() == 0
    assert dialogs == []
    tab.errors.clear()  # the 422 document is logged as a failed resource


def test_the_api_docs_load_from_this_server(tab: Watched, site: Site) -> None:
    tab.page.goto(f"{site.url}/docs")
    tab.page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    assert tab.page.locator(".opblock").count() > 10


def test_institutions_show_by_name_and_markup_in_a_name_stays_text(
    tab: Watched, site: Site
) -> None:
    dialogs: list[str] = []
    tab.page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    sign_in(tab, site, path=f"/performance?{urlencode(DATES)}")
    health = site.api.get(
        f"{API}/performance/institution-health",
        params={"lookback": "7d", "end": WINDOW["end"]},
        headers=site.as_key(Role.ANALYST),
    ).json()
    names = {i["institution_id"]: i["institution_name"] for i in health["institutions"]}
    # Simulated institutions are named by their events; planted ones without a name are not.
    assert names[HOSTILE] == HOSTILE_NAME
    assert names[DOWN] is None
    assert all(name for key, name in names.items() if not key.startswith("ins_planted"))
    # The table shows each institution's name (its id where it has none), as text.
    rows = tab.page.locator("#institutions tbody tr")
    shown = {
        str(row.get_attribute("data-institution")): row.locator("a").inner_text()
        for row in rows.all()
    }
    assert shown == {key: names[key] or key for key in shown}
    assert shown[HOSTILE] == HOSTILE_NAME
    # The chart of the lowest success rates names its bars, and a bar's tooltip too.
    chart = tab.page.locator("#chart-lowest_success_by_institution")
    expect(chart.locator(".xtick text").first).to_be_visible()
    assert HOSTILE_NAME in chart.locator(".xtick text").all_text_contents()
    data = next(c for c in page_data(tab)["charts"] if c["id"] == "lowest_success_by_institution")
    # The bar sits under plotly's drag layer, which takes the pointer and shows the tooltip.
    chart.locator(".point path").nth(data["x"].index(HOSTILE_NAME)).hover(force=True)
    expect(chart.locator(".hoverlayer")).to_contain_text(HOSTILE_NAME)
    # The drill-down's title and its series are the name.
    with tab.page.expect_navigation():
        tab.page.locator(f"#institutions tr[data-institution='{HOSTILE}'] a").click()
    tab.page.wait_for_selector("#tile-success_rate")
    assert tab.page.inner_text("#institution-name") == HOSTILE_NAME
    assert tab.page.title().startswith(HOSTILE_NAME)
    series = next(c for c in page_data(tab)["charts"] if c["id"] == "success_over_time")
    assert [s["name"] for s in series["series"]] == [HOSTILE_NAME]
    # Nothing in the name ran or became an element.
    assert tab.page.evaluate("window.__xss") is None
    assert tab.page.locator("img[src=x]").count() == 0
    assert dialogs == []

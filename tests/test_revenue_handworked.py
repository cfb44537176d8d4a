"""The revenue ledger against hand-worked cases from the vendors' own examples, on every
engine: normalisation to the cent, movements per customer, churn rates, policies,
discounts, exchange rates, and the API's access rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api_fixtures import LiveAPI
from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.analytics.revenue import ChurnRecognition, RevenuePolicy
from banking_analytics.ingest import EventStatus
from banking_analytics.metrics import QueryError, TimeWindow

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PREFIX = "/api/banking-analytics"
YEAR = TimeWindow(T0, T0 + timedelta(days=365))


def event(customer: str, sub: str, day: float, kind: str, status: str, **fields: Any) -> dict:
    """A subscription snapshot ``day`` days after T0 (USD, monthly, one seat by default)."""
    return {
        "event_type": "subscription",
        "event_id": str(uuid.uuid4()),
        "user_id": customer,
        "subscription_id": sub,
        "occurred_at": (T0 + timedelta(days=day)).isoformat(),
        "kind": kind,
        "status": status,
        "plan": fields.pop("plan", "premium"),
        "tier": fields.pop("tier", "premium"),
        "unit_amount": fields.pop("unit_amount", 1000),
        "interval": fields.pop("interval", "month"),
        "currency": fields.pop("currency", "USD"),
        **fields,
    }


def store(analytics: BankingPerformanceAnalytics, events: list[dict]) -> None:
    results = analytics.ingest(events)
    assert {r.status for r in results} == {EventStatus.ACCEPTED}, [r.reason for r in results]


def mrr_after(analytics: BankingPerformanceAnalytics, **policy: Any) -> dict[str, int]:
    """Each customer's MRR after every movement in the year."""
    found: dict[str, int] = {}
    for m in analytics.revenue.movements(YEAR, policy=RevenuePolicy(**policy)):
        found[m.customer] = m.mrr_after
    return found


@pytest.mark.parametrize(
    ("unit_amount", "interval", "interval_count", "quantity", "expected"),
    [
        (9900, "month", 1, 1, 9900),  # profitable's cases
        (118800, "year", 1, 1, 9900),
        (29700, "month", 3, 1, 9900),  # quarterly
        (50000, "year", 1, 4, 16667),  # ChartMogul: 4 x Gold yearly $500 -> $166.67
        (12000, "year", 1, 3, 3000),
        (2500, "week", 1, 1, 10833),  # x 52/12 = 10833.33
        (2500, "week", 2, 1, 5417),  # 5416.67
        (100, "day", 1, 1, 3042),  # x 365/12 = 3041.67
        (10000, "year", 1, 1, 833),  # 833.33
        (1, "year", 1, 1, 0),  # 0.083: rounds to nothing
    ],
)
def test_the_monthly_normalisation_to_the_cent(
    analytics: BankingPerformanceAnalytics,
    unit_amount: int,
    interval: str,
    interval_count: int,
    quantity: int,
    expected: int,
) -> None:
    store(
        analytics,
        [
            event(
                "c",
                "s",
                1,
                "subscribed",
                "active",
                unit_amount=unit_amount,
                interval=interval,
                interval_count=interval_count,
                quantity=quantity,
            )
        ],
    )
    assert mrr_after(analytics).get("c", 0) == expected


def test_mixed_intervals_and_discounts_sum_per_customer(
    analytics: BankingPerformanceAnalytics,
) -> None:
    """5000/month + 12000/year -> 6000 (profitable); ProfitWell: $120/year with 10% off -> $9;
    a flat 200 off a 1000 monthly price -> 800."""
    store(
        analytics,
        [
            event("mixed", "m1", 1, "subscribed", "active", unit_amount=5000),
            event("mixed", "m2", 1, "subscribed", "active", unit_amount=12000, interval="year"),
            event(
                "pw",
                "p",
                1,
                "subscribed",
                "active",
                unit_amount=12000,
                interval="year",
                discount_percent=10.0,
            ),
            event("flat", "f", 1, "subscribed", "active", discount_amount=200),
        ],
    )
    assert mrr_after(analytics) == {"mixed": 6000, "pw": 900, "flat": 800}


def test_a_customers_lifecycle_is_classified_per_customer(
    analytics: BankingPerformanceAnalytics,
) -> None:
    """ChartMogul's lifecycle: two subscriptions; cancelling one is contraction, the other
    churn; coming back is reactivation (reachable: dbt_stripe's CASE order made it not)."""
    store(
        analytics,
        [
            event(
                "c",
                "gold",
                1,
                "subscribed",
                "active",
                unit_amount=50000,
                interval="year",
                quantity=4,
            ),
            event("c", "silver", 10, "subscribed", "active", unit_amount=3000, quantity=2),
            event("c", "silver", 40, "canceled", "canceled", unit_amount=3000, quantity=2),
            event(
                "c",
                "gold",
                70,
                "canceled",
                "canceled",
                unit_amount=50000,
                interval="year",
                quantity=4,
            ),
            event("c", "again", 100, "reactivated", "active", unit_amount=3000),
        ],
    )
    moves = analytics.revenue.movements(YEAR)
    assert [(m.kind, m.amount, m.mrr_after) for m in moves] == [
        ("new", 16667, 16667),
        ("expansion", 6000, 22667),
        ("contraction", -6000, 16667),
        ("churn", -16667, 0),
        ("reactivation", 3000, 3000),
    ]
    series = analytics.revenue.mrr(YEAR, bucket="month")
    for point in series.points:
        moved = point.new + point.expansion + point.contraction + point.churn + point.reactivation
        assert point.mrr_start + moved == point.mrr_end
    april = series.points[3]
    assert (april.reactivation, april.reactivated_customers, april.mrr_end) == (3000, 1, 3000)
    # subscribed (Jan: 2), reactivated (Apr: 1): the billing system's upgrade events.
    upgrades = analytics.revenue.metrics(["subscription_upgrades"], YEAR, bucket="month")
    assert [r.figures["subscription_upgrades"] for r in upgrades.rows][:5] == [2, 0, 0, 1, 0]


def test_gross_and_net_mrr_churn_from_the_vendor_example(
    analytics: BankingPerformanceAnalytics,
) -> None:
    """ChartMogul: start MRR $100 (four customers: 10 + 40 + 25 + 25), then churn 10,
    contraction 10, expansion 10 -> gross MRR churn 20%, net 10%."""
    start = [
        event(f"c{i}", f"s{i}", 1, "subscribed", "active", unit_amount=amount)
        for i, amount in enumerate((1000, 4000, 2500, 2500))
    ]
    february = [
        event("c0", "s0", 35, "canceled", "canceled", unit_amount=1000),
        event("c1", "s1", 36, "downgraded", "active", unit_amount=3000),
        event("c2", "s2", 37, "upgraded", "active", unit_amount=3500),
    ]
    store(analytics, start + february)
    result = analytics.revenue.metrics(
        ["gross_mrr_churn_rate", "net_mrr_churn_rate", "nrr", "grr", "quick_ratio", "mrr"],
        TimeWindow(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)),
    )
    [row] = result.rows
    assert row.figures["gross_mrr_churn_rate"] == pytest.approx(0.20)
    assert row.figures["net_mrr_churn_rate"] == pytest.approx(0.10)
    assert row.figures["nrr"] == pytest.approx(0.90)
    assert row.figures["grr"] == pytest.approx(0.80)
    assert row.figures["quick_ratio"] == pytest.approx(1000 / 2000)
    assert row.figures["mrr"] == 9000


@pytest.mark.parametrize(("count_joined", "expected"), [(False, 0.10), (True, 0.11)])
def test_customer_churn_with_and_without_the_customers_who_joined_that_month(
    analytics: BankingPerformanceAnalytics, count_joined: bool, expected: float
) -> None:
    """ChartMogul: 100 customers at the start, 11 cancel, one of whom joined that month ->
    10% by default; 11% when joiners who churn count (Baremetrics, Stripe)."""
    events = [event(f"c{i}", f"s{i}", 1, "subscribed", "active") for i in range(100)]
    events += [event(f"c{i}", f"s{i}", 40, "canceled", "canceled") for i in range(10)]
    events += [
        event("late", "late", 33, "subscribed", "active"),
        event("late", "late", 50, "canceled", "canceled"),
    ]
    store(analytics, events)
    result = analytics.revenue.metrics(
        ["churn_rate"],
        TimeWindow(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)),
        policy=RevenuePolicy(count_joined_and_churned=count_joined),
    )
    assert result.metrics == ["customer_churn_rate"]
    assert result.rows[0].figures["customer_churn_rate"] == pytest.approx(expected)


def test_cohort_retention_caps_each_customer_at_their_starting_mrr(
    analytics: BankingPerformanceAnalytics,
) -> None:
    """ChartMogul's cohort tables by hand: a January cohort of two ($100 and $50), one
    expanding, contracting, churning and coming back above their start; gross retention
    counts each customer up to their starting MRR, net counts everything."""
    store(
        analytics,
        [
            event("a", "a1", 1, "subscribed", "active", unit_amount=10000),
            event("b", "b1", 5, "subscribed", "active", unit_amount=5000),
            event("b", "b1", 36, "payment_succeeded", "active", unit_amount=5000),
            event("a", "a1", 40, "upgraded", "active", unit_amount=15000),
            event("c", "c1", 45, "subscribed", "active", unit_amount=2000),
            event("a", "a1", 70, "downgraded", "active", unit_amount=8000),
            event("a", "a1", 100, "canceled", "canceled", unit_amount=8000),
            event("a", "a2", 130, "reactivated", "active", unit_amount=12000),
        ],
    )
    january, february = analytics.revenue.cohorts(YEAR).cohorts[:2]
    assert (january.customers, january.starting_mrr) == (2, 15000)
    # End of Jan, Feb (a 150 > 100), Mar (a 80), Apr (a churned), May (a back at 120).
    assert january.customers_retained[:5] == [2, 2, 2, 1, 2]
    assert january.mrr[:5] == [15000, 20000, 13000, 5000, 17000]
    assert january.gross_mrr_retention[:5] == [1.0, 1.0, 13000 / 15000, 5000 / 15000, 1.0]
    assert january.net_mrr_retention[1] == 20000 / 15000
    assert (february.start, february.customers, february.mrr[:2]) == (
        datetime(2026, 2, 1, tzinfo=UTC),
        1,
        [2000, 2000],
    )


def test_a_discount_that_ends_is_an_expansion(analytics: BankingPerformanceAnalytics) -> None:
    """ProfitWell: $10 monthly with 10% off is $9 while it lasts, $10 after; a once
    discount lasts one billing period, a repeating one its months."""
    store(
        analytics,
        [
            event(
                "rep",
                "r",
                1,
                "subscribed",
                "active",
                discount_percent=10.0,
                discount_duration="repeating",
                discount_months=3,
            ),
            event(
                "once",
                "o",
                1,
                "subscribed",
                "active",
                discount_amount=500,
                discount_duration="once",
            ),
            event("forever", "f", 1, "subscribed", "active", discount_percent=10.0),
        ],
    )
    moves = {(m.customer, m.kind): m for m in analytics.revenue.movements(YEAR)}
    assert moves[("rep", "new")].amount == 900
    assert moves[("rep", "expansion")].amount == 100
    assert moves[("rep", "expansion")].at == datetime(2026, 4, 2, tzinfo=UTC)
    assert moves[("once", "expansion")].at == datetime(2026, 2, 2, tzinfo=UTC)
    assert moves[("once", "expansion")].amount == 500
    assert ("forever", "expansion") not in moves


def test_churn_at_period_end_and_past_due_grace(analytics: BankingPerformanceAnalytics) -> None:
    """A cancellation paid through a later period end churns then under ``period_end``
    (at once by default); a subscription past due for longer than the grace churns when
    the grace ends, and comes back as a reactivation when paid."""
    store(
        analytics,
        [
            event("paid", "p", 1, "subscribed", "active"),
            event(
                "paid",
                "p",
                10,
                "canceled",
                "canceled",
                period_end=(T0 + timedelta(days=31)).isoformat(),
            ),
            event("late", "l", 1, "subscribed", "active"),
            event("late", "l", 31, "payment_failed", "past_due"),
            event("late", "l", 34, "payment_failed", "past_due"),
            event("late", "l", 60, "payment_succeeded", "active", amount=1000),
        ],
    )

    def churn_times(**policy: Any) -> dict[str, list[tuple[str, float]]]:
        found: dict[str, list[tuple[str, float]]] = {}
        for m in analytics.revenue.movements(YEAR, policy=RevenuePolicy(**policy)):
            found.setdefault(m.customer, []).append((m.kind, (m.at - T0).days))
        return found

    assert churn_times() == {"paid": [("new", 1), ("churn", 10)], "late": [("new", 1)]}
    at_end = churn_times(churn_recognition=ChurnRecognition.PERIOD_END)
    assert at_end["paid"] == [("new", 1), ("churn", 31)]
    graced = churn_times(past_due_grace_days=14)
    assert graced["late"] == [("new", 1), ("churn", 45), ("reactivation", 60)]


@pytest.mark.parametrize("free_are_customers", [False, True])
def test_a_customer_moved_to_a_free_plan(
    analytics: BankingPerformanceAnalytics, free_are_customers: bool
) -> None:
    """A paying customer given a 100% discount in February, cancelled in March. By default
    MRR -> 0 is churn and the customer is gone (ProfitWell, Baremetrics, Stripe); with free
    customers counted (ChartMogul's default) it is a contraction, the customer stays until
    the cancellation (a churn of nothing). A $0 plan never paid for is a lead either way."""
    store(
        analytics,
        [
            event("paid", "p", 1, "subscribed", "active"),
            event("paid", "p", 40, "downgraded", "active", discount_percent=100.0),
            event("paid", "p", 75, "canceled", "canceled", discount_percent=100.0),
            event("lead", "f", 5, "subscribed", "active", unit_amount=0),
        ],
    )
    policy = RevenuePolicy(free_customers_are_customers=free_are_customers)
    moves = [
        (m.customer, m.kind, m.amount, (m.at - T0).days)
        for m in analytics.revenue.movements(YEAR, policy=policy)
    ]
    series = analytics.revenue.mrr(YEAR, policy=policy)
    customers = [p.customers_end for p in series.points[:3]]
    churned = [p.churned_customers for p in series.points[:3]]
    contraction = [p.contraction for p in series.points[:3]]
    if free_are_customers:
        assert moves == [
            ("paid", "new", 1000, 1),
            ("paid", "contraction", -1000, 40),
            ("paid", "churn", 0, 75),
        ]
        assert (customers, churned, contraction) == ([1, 1, 0], [0, 0, 1], [0, -1000, 0])
    else:
        assert moves == [("paid", "new", 1000, 1), ("paid", "churn", -1000, 40)]
        assert (customers, churned, contraction) == ([1, 0, 0], [0, 1, 0], [0, 0, 0])
    assert [p.mrr_end for p in series.points[:3]] == [1000, 0, 0]


def test_out_of_order_and_duplicate_events_give_the_same_ledger(
    analytics: BankingPerformanceAnalytics,
) -> None:
    """The same history sent in order (customer a) and reversed, then again (duplicates
    by event id; customer b) gives the same movements."""

    def history(customer: str) -> list[dict]:
        return [
            event(customer, f"{customer}-s", 1, "subscribed", "active"),
            event(customer, f"{customer}-s", 20, "upgraded", "active", unit_amount=2000),
            event(
                customer,
                f"{customer}-s",
                20,
                "payment_succeeded",
                "active",
                unit_amount=2000,
                amount=2000,
            ),
            event(customer, f"{customer}-s", 50, "canceled", "canceled", unit_amount=2000),
        ]

    store(analytics, history("a"))
    shuffled = history("b")[::-1]
    store(analytics, shuffled)
    repeated = analytics.ingest(shuffled)
    assert {r.status for r in repeated} == {EventStatus.DUPLICATE}
    moves: dict[str, list[tuple[str, int, datetime]]] = {}
    for m in analytics.revenue.movements(YEAR):
        moves.setdefault(m.customer, []).append((m.kind, m.amount, m.at))
    assert moves["a"] == moves["b"]
    assert [k for k, _, _ in moves["a"]] == ["new", "expansion", "churn"]


def test_money_in_another_currency_needs_a_rate(analytics: BankingPerformanceAnalytics) -> None:
    """An EUR event is quarantined, naming the field, until EUR has a rate; then MRR is
    converted at the rate valid when the subscription started, and a subscription older
    than every rate is an error naming the currency and the date."""
    [refused] = analytics.ingest([event("e", "eu", 40, "subscribed", "active", currency="EUR")])
    assert refused.status is EventStatus.REJECTED
    assert "currency" in str(refused.reason)
    analytics.load_exchange_rates(
        [
            {"currency": "EUR", "valid_from": "2026-02-01", "rate": "1.10"},
            {"currency": "EUR", "valid_from": "2026-03-01", "rate": "1.20"},
            {"currency": "JPY", "valid_from": "2026-01-01", "rate": "0.0067"},
        ]
    )
    store(
        analytics,
        [
            event("e", "eu", 40, "subscribed", "active", currency="EUR", unit_amount=1000),
            event("e", "eu", 70, "upgraded", "active", currency="EUR", unit_amount=2000),
            event("y", "jp", 40, "subscribed", "active", currency="JPY", unit_amount=1500),
        ],
    )
    assert mrr_after(analytics) == {"e": 2200, "y": 1005}  # 1500 yen x 0.0067 = $10.05
    store(analytics, [event("old", "old", 2, "subscribed", "active", currency="EUR")])
    with pytest.raises(QueryError, match=r"EUR from 2026-01-03"):
        analytics.revenue.mrr(YEAR)


def test_a_loaded_rate_never_changes(analytics: BankingPerformanceAnalytics) -> None:
    rate = {"currency": "GBP", "valid_from": "2026-01-01", "rate": "1.25"}
    assert analytics.load_exchange_rates([rate]) == 1
    assert analytics.load_exchange_rates([rate]) == 0
    with pytest.raises(ValueError, match=r"already 1\.25"):
        analytics.load_exchange_rates([{**rate, "rate": "1.3"}])


def test_revenue_over_http_is_for_analysts_and_admins_and_is_audited(live_api: LiveAPI) -> None:
    store(live_api.analytics, [event("c", "s", 1, "subscribed", "active", unit_amount=2500)])
    client = live_api.client
    params = {"start": T0.isoformat(), "end": (T0 + timedelta(days=59)).isoformat()}
    mrr = client.get(f"{PREFIX}/revenue/mrr", params=params, headers=live_api.as_key("analyst"))
    assert mrr.status_code == 200, mrr.text
    assert [p["mrr_end"] for p in mrr.json()["points"]] == [2500, 2500]
    assert mrr.json()["currency"] == "USD"
    pages = [
        client.get(
            f"{PREFIX}/revenue/movements",
            params={**params, "limit": 1, "offset": offset},
            headers=live_api.as_key("analyst"),
        ).json()
        for offset in (0, 1)
    ]
    assert [[m["kind"] for m in page] for page in pages] == [["new"], []]
    too_many = client.get(
        f"{PREFIX}/revenue/movements", params={"limit": 10_001}, headers=live_api.as_key("admin")
    )
    assert too_many.status_code == 422
    for denied in (live_api.as_key("ingest"), live_api.as_user("c")):
        assert client.get(f"{PREFIX}/revenue/mrr", headers=denied).status_code in (403, 404)
    metrics = client.get(
        f"{PREFIX}/revenue/metrics",
        params={**params, "metric": ["churn_rate", "ltv", "revenue_per_user"]},
        headers=live_api.as_key("admin"),
    )
    assert metrics.status_code == 200, metrics.text
    assert metrics.json()["metrics"] == ["customer_churn_rate", "ltv", "arpu"]
    unknown = client.get(
        f"{PREFIX}/revenue/metrics", params={"metric": "bogus"}, headers=live_api.as_key("admin")
    )
    assert unknown.status_code == 422
    assert unknown.headers["content-type"].startswith("application/problem+json")
    rates = client.post(
        f"{PREFIX}/revenue/exchange-rates",
        json={"rates": [{"currency": "EUR", "valid_from": "2026-01-01", "rate": "1.1"}]},
        headers=live_api.as_key("analyst"),
    )
    assert rates.status_code == 403
    dashboard = client.get(
        f"{PREFIX}/dashboard/revenue", params=params, headers=live_api.as_key("analyst")
    )
    assert dashboard.status_code == 200, dashboard.text
    assert set(dashboard.json()) == {"mrr", "metrics", "features", "cohorts"}
    # The same figures through the metric layer's generic query, by the spec's names too.
    query = client.post(
        f"{PREFIX}/metrics/query",
        json={
            "metrics": ["mrr", "churn_rate"],
            "start": params["start"],
            "end": params["end"],
            "bucket": "month",
            "dimensions": ["currency"],
        },
        headers=live_api.as_key("analyst"),
    )
    assert query.status_code == 200, query.text
    rows = query.json()["rows"]
    assert [r["values"]["mrr"]["value"] for r in rows] == [2500, 2500]
    assert [r["dimensions"] for r in rows] == [{"currency": "USD"}] * 2
    no_bucket = client.post(
        f"{PREFIX}/metrics/query",
        json={"metrics": ["mrr"], "filters": {"currency": "USD"}},
        headers=live_api.as_key("analyst"),
    )
    assert no_bucket.status_code == 422
    assert "choose a bucket" in no_bucket.json()["detail"]
    audit = client.get(f"{PREFIX}/admin/audit", headers=live_api.as_key("admin")).json()
    entries = audit["entries"] if isinstance(audit, dict) else audit
    actions = [e["action"] for e in entries]
    assert {"read_mrr", "read_revenue_metrics", "read_revenue_dashboard"} <= set(actions)
    # The metric query's revenue read is audited as one too.
    assert actions.count("read_revenue_metrics") == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("interval", "fortnight"),
        ("unit_amount", -100),
        ("discount_percent", 120.0),
        ("currency", "CHF"),  # no rate to USD
        ("discount_duration", "sometimes"),
    ],
)
def test_bad_subscription_events_are_quarantined_naming_the_field(
    analytics: BankingPerformanceAnalytics, field: str, value: object
) -> None:
    """Refused into quarantine with a reason naming the field; what was stored stays."""
    store(analytics, [event("c", "s", 1, "subscribed", "active")])
    before = analytics.revenue.movements(YEAR)
    [result] = analytics.ingest([event("c", "s", 2, "upgraded", "active", **{field: value})])
    assert result.status is EventStatus.REJECTED
    assert str(result.reason).startswith(f"{field}:"), result.reason
    assert analytics.info().quarantined == 1
    assert analytics.revenue.movements(YEAR) == before


def test_a_paid_period_may_end_after_receipt(analytics: BankingPerformanceAnalytics) -> None:
    """A cancellation paid through a date weeks ahead is stored (a planned end is no
    clock reading), and keeps its MRR until then under ``period_end``."""
    now = datetime.now(UTC)
    ahead = now + timedelta(days=20)
    store(
        analytics,
        [
            event("c", "s", 0, "subscribed", "active")
            | {"occurred_at": (now - timedelta(days=9)).isoformat()},
            event("c", "s", 0, "canceled", "canceled", period_end=ahead.isoformat())
            | {"occurred_at": (now - timedelta(days=2)).isoformat()},
        ],
    )
    window = TimeWindow(now - timedelta(days=30), now + timedelta(days=30))
    policy = RevenuePolicy(churn_recognition=ChurnRecognition.PERIOD_END)
    moves = analytics.revenue.movements(window, policy=policy)
    assert [(m.kind, m.at) for m in moves] == [
        ("new", now - timedelta(days=9)),
        ("churn", ahead),
    ]


def test_money_is_reported_in_the_currency_ingestion_checks(store_url: str) -> None:
    """A store whose reporting currency is EUR: USD needs a rate to EUR, and MRR is in EUR."""
    from banking_analytics.ingest import IngestLimits

    limits = IngestLimits(reporting_currency="EUR")
    with BankingPerformanceAnalytics.open(store_url, limits=limits) as analytics:
        [refused] = analytics.ingest([event("us", "u", 1, "subscribed", "active")])
        assert refused.status is EventStatus.REJECTED
        analytics.load_exchange_rates(
            [{"currency": "USD", "valid_from": "2025-01-01", "rate": "0.9"}]
        )
        store(
            analytics,
            [
                event("us", "u", 1, "subscribed", "active", unit_amount=1000),
                event("eu", "e", 1, "subscribed", "active", unit_amount=1000, currency="EUR"),
            ],
        )
        series = analytics.revenue.mrr(YEAR)
        assert series.currency == "EUR"
        assert series.points[0].mrr_end == 900 + 1000


def test_a_discount_and_a_grace_period_ending_at_once_are_one_change(
    analytics: BankingPerformanceAnalytics,
) -> None:
    """A one-month discount from 2 January and a past-due run from 30 January with three
    days' grace both end at 2 February 00:00: one churn of the discounted MRR, never twice
    (found by the property test: MRR went below zero)."""
    discount = {"discount_percent": 10.0, "discount_duration": "repeating", "discount_months": 1}
    store(
        analytics,
        [
            event("c", "s", 1, "subscribed", "active", **discount),
            event("c", "s", 29, "payment_failed", "past_due", **discount),
        ],
    )
    moves = analytics.revenue.movements(YEAR, policy=RevenuePolicy(past_due_grace_days=3))
    assert [(m.kind, m.amount, m.at) for m in moves] == [
        ("new", 900, T0 + timedelta(days=1)),
        ("churn", -900, datetime(2026, 2, 2, tzinfo=UTC)),
    ]


def test_snapshots_at_one_instant_go_by_event_id_whatever_their_arrival(
    analytics: BankingPerformanceAnalytics,
) -> None:
    """Two snapshots of a subscription at one instant, received together: the one with
    the higher event id is the later, whichever was sent first (each customer's $10
    snapshot is sent first). The ledger sorts by time alone and takes such subscriptions
    again in the exact order: without that, the order of arrival would decide."""
    events = []
    pairs = (("lo1", True), ("lo2", True), ("hi1", False), ("hi2", False))
    for n, (customer, ten_first) in enumerate(pairs):
        ids = {
            "low": f"00000000-0000-4000-8000-{n:012x}",
            "high": f"ffffffff-0000-4000-8000-{n:012x}",
        }
        ten, twenty = ("low", "high") if ten_first else ("high", "low")
        events += [
            event(customer, f"{customer}-s", 1, "subscribed", "active", event_id=ids[ten]),
            event(
                customer,
                f"{customer}-s",
                1,
                "upgraded",
                "active",
                unit_amount=2000,
                event_id=ids[twenty],
            ),
        ]
    store(analytics, events)
    assert mrr_after(analytics) == {"lo1": 2000, "lo2": 2000, "hi1": 1000, "hi2": 1000}


def test_a_snapshot_followed_at_its_own_instant_leaves_what_it_started_with(
    analytics: BankingPerformanceAnalytics,
) -> None:
    """With no grace, a failed payment churns at once; paid again at the same instant (a
    later event id), the subscription never stopped: no movement at all (c). Alone, the
    failure is a churn (d). Found by the property test: the past-due snapshot handed on
    the MRR it had just before its own instant, and c's MRR went to -$10."""
    t = 40

    def history(customer: str, paid_again: bool) -> list[dict]:
        ids = [f"00000000-0000-4000-8000-{customer * 11}{n}" for n in range(3)]
        events = [
            event(customer, f"{customer}-s", 1, "subscribed", "active", event_id=ids[0]),
            event(customer, f"{customer}-s", t, "payment_failed", "past_due", event_id=ids[1]),
        ]
        if paid_again:
            events.append(
                event(customer, f"{customer}-s", t, "payment_succeeded", "active", event_id=ids[2])
            )
        return events

    store(analytics, history("c", paid_again=True) + history("d", paid_again=False))
    moves: dict[str, list[tuple[str, int, datetime]]] = {}
    for m in analytics.revenue.movements(YEAR, policy=RevenuePolicy(past_due_grace_days=0)):
        moves.setdefault(m.customer, []).append((m.kind, m.amount, m.at))
    day = T0 + timedelta(days=1)
    assert moves["c"] == [("new", 1000, day)]
    assert moves["d"] == [("new", 1000, day), ("churn", -1000, T0 + timedelta(days=t))]


def used(user: str, day: float, feature: str) -> dict[str, Any]:
    """A behaviour event: ``user`` used ``feature`` ``day`` days after T0."""
    return {
        "event_type": "behavior",
        "event_id": str(uuid.uuid4()),
        "user_id": user,
        "feature": feature,
        "action": "open",
        "occurred_at": (T0 + timedelta(days=day)).isoformat(),
    }


def test_trials_conversion_adoption_and_feature_revenue_by_hand(
    analytics: BankingPerformanceAnalytics,
) -> None:
    """January, worked by hand:

    - trials: t1 pays 5 days after its trial starts, t2 40 days after, t3 never; t4's
      payment of 0 is no first invoice. Trial-to-paid 1/4 within 14 days, 2/4 ever.
    - active users (a behaviour event in January): a, b, c, d, t1. a and b use budget
      tracking, c and t1 spending analysis, d both. Adoption of budget tracking 3/5.
    - free to paid: d paid since December (not free at January's start); a and c start
      paying in January, b does not, t1 pays on 6 January: 3 of the 4 free users convert;
      per feature, budget tracking 1 of 2 (a; d was paying), spending analysis 2 of 2.
    - feature revenue: a's subscription credits budget tracking (+1000 new), c's credits
      spending analysis (+2000 new, then +1000 expansion in January).
    """
    dec = -20.0
    trial = {"status": "trialing", "unit_amount": 1500}
    events = [
        event("t1", "t1", 1, "trial_started", **trial),
        event("t1", "t1", 6, "payment_succeeded", "active", unit_amount=1500, amount=1500),
        event("t2", "t2", 2, "trial_started", **trial),
        event("t2", "t2", 42, "payment_succeeded", "active", unit_amount=1500, amount=1500),
        event("t3", "t3", 3, "trial_started", **trial),
        event("t4", "t4", 4, "trial_started", **trial),
        event("t4", "t4", 5, "payment_succeeded", "trialing", unit_amount=1500, amount=0),
        event("d", "d", dec, "subscribed", "active", unit_amount=500),
        event("a", "a", 10, "subscribed", "active", attributed_feature="budget_tracking"),
        event(
            "c",
            "c",
            11,
            "subscribed",
            "active",
            unit_amount=2000,
            attributed_feature="spending_analysis",
        ),
        event(
            "c",
            "c",
            20,
            "upgraded",
            "active",
            unit_amount=3000,
            attributed_feature="spending_analysis",
        ),
    ]
    for user, feature in [
        ("a", "budget_tracking"),
        ("b", "budget_tracking"),
        ("d", "budget_tracking"),
        ("c", "spending_analysis"),
        ("t1", "spending_analysis"),
        ("d", "spending_analysis"),
    ]:
        events.append(used(user, 3, feature))
    store(analytics, events)
    january = TimeWindow(T0, T0 + timedelta(days=31))

    def overall(name: str, **options: Any) -> object:
        (row,) = analytics.revenue.metrics([name], january, **options).rows
        return row.figures[name]

    def per_feature(name: str) -> dict[str | None, object]:
        rows = analytics.revenue.metrics([name], january, by_feature=True).rows
        return {r.feature: r.figures[name] for r in rows}

    assert overall("trial_to_paid") == pytest.approx(2 / 4)
    assert overall("trial_to_paid", trial_days=14) == pytest.approx(1 / 4)
    assert overall("free_to_paid_conversion") == pytest.approx(3 / 4)
    conversion = per_feature("free_to_paid_conversion")
    assert conversion["budget_tracking"] == pytest.approx(1 / 2)
    assert conversion["spending_analysis"] == pytest.approx(2 / 2)
    adoption = per_feature("feature_adoption")
    assert adoption["budget_tracking"] == pytest.approx(3 / 5)
    assert adoption["spending_analysis"] == pytest.approx(3 / 5)
    revenue = per_feature("feature_revenue")
    assert revenue["budget_tracking"] == 1000
    assert revenue["spending_analysis"] == 3000

"""Revenue impact of the banking features: figures by hand on both engines, the arithmetic of
ROI to the minor unit, and the upgrade model against the effects the simulator planted."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from api_fixtures import api_settings
from api_server import running
from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.access import KeyStore, Role
from banking_analytics.analytics.revenue import (
    MIN_ADOPTER_CONVERSIONS,
    RevenueImpactAnalysis,
    appraise,
    monthly_mrr,
    uplift_path,
)
from banking_analytics.api.routes.revenue_impact import RoiIn
from banking_analytics.metrics import TimeWindow
from banking_analytics.simulate import GroundTruth, SimulationConfig, run_simulation
from banking_analytics.vocabulary import EventType

START = datetime(2026, 11, 1, tzinfo=UTC)
WINDOW = TimeWindow(START, START + timedelta(days=10))


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> str:
    """A moment ``day`` days after the window's start (negative: before it)."""
    return (START + timedelta(days=day, hours=hour, minutes=minute, seconds=second)).isoformat()


def link(user: str, when: str) -> dict[str, object]:
    return {
        "event_type": "connection_attempt",
        "user_id": user,
        "occurred_at": when,
        "attempt_id": f"att-{user}-{when}",
        "aggregator": "plaid",
        "institution_id": "ins_3",
        "feature": "account_linking",
        "flow": "new",
        "started_at": when,
        "outcome": "success",
    }


def use(user: str, feature: str, when: str) -> dict[str, object]:
    return {
        "event_type": "behavior",
        "user_id": user,
        "feature": feature,
        "action": "open",
        "occurred_at": when,
    }


def subscription(user: str, kind: str, when: str, **fields: object) -> dict[str, object]:
    return {
        "event_type": "subscription",
        "user_id": user,
        "kind": kind,
        "occurred_at": when,
        "subscription_id": f"sub-{user}",
        "plan": "premium",
        "tier": "premium",
        "unit_amount": 1000,
        "interval": "month",
        "currency": "USD",
        "status": "active",
        **fields,
    }


def story() -> list[dict[str, object]]:
    """The hand-worked history (window: the 10 days from 2026-11-01).

    u1 links on day 0, uses spending analysis (day 0) and budget tracking (day 2), and
    subscribes on day 4 (1000 a month, credited by the host to spending analysis, from the
    paywall), pays 1000 and is refunded 400 on day 6. u2 links on day 1, uses budget
    tracking (day 1) and goal setting (day 3), is last seen on day 5 and never converts.
    u3 linked before the window; uses bill reminders exactly 30 days before upgrading (in
    the attribution window), credit monitoring a second earlier (out of it), spending
    analysis on day 1 and tax optimisation at the very moment of the upgrade (not before
    it); upgrades on day 7 to 12000 a year with 10% off (MRR 900), from an email. u4 pays
    2000 USD, u5 500 EUR.
    """
    return [
        link("u1", at(0, 10)),
        use("u1", "spending_analysis", at(0, 12)),
        use("u1", "budget_tracking", at(2, 9)),
        subscription(
            "u1",
            "subscribed",
            at(4, 8),
            attributed_feature="spending_analysis",
            attribution_source="paywall",
        ),
        subscription("u1", "payment_succeeded", at(4, 8, 1), amount=1000),
        subscription("u1", "refunded", at(6), amount=400, status="canceled"),
        link("u2", at(1, 7)),
        use("u2", "budget_tracking", at(1, 13)),
        use("u2", "goal_setting", at(3, 10)),
        use("u2", "budget_tracking", at(5, 18)),
        link("u3", at(-12)),
        use("u3", "credit_monitoring", at(-23, second=-1)),
        use("u3", "bill_reminders", at(-23)),
        use("u3", "spending_analysis", at(1)),
        use("u3", "tax_optimization", at(7)),
        subscription(
            "u3",
            "upgraded",
            at(7),
            unit_amount=12000,
            interval="year",
            discount_percent=10.0,
            attribution_source="email",
        ),
        subscription("u4", "payment_succeeded", at(2), amount=2000),
        subscription("u5", "payment_succeeded", at(3), amount=500, currency="EUR"),
    ]


def stored(analytics: BankingPerformanceAnalytics) -> BankingPerformanceAnalytics:
    """The story in the store (money in EUR needs a rate to the reporting currency first)."""
    analytics.load_exchange_rates([{"currency": "EUR", "valid_from": "2026-01-01", "rate": "1.1"}])
    results = analytics.ingest(story())
    assert all(r.status.value == "accepted" for r in results), results
    return analytics


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        ((50_000, 4, "year", 1, None, None), 16_667),  # 4 seats at 500 a year: 166.67
        ((12_000, 1, "year", 1, 10.0, None), 900),  # 120 a year with 10% off: 9
        ((2_000, None, "month", None, None, None), 2_000),
        ((29_700, 1, "month", 3, None, None), 9_900),  # quarterly
        ((2_500, 1, "week", 1, None, None), 10_833),  # 2500·52/12 = 10833.3
        ((100, 1, "day", 1, None, None), 3_042),  # 100·365/12 = 3041.7
        ((1_000, 1, "month", 1, None, 200), 800),  # a flat 2.00 off
        ((1_000, 1, "month", 1, 50.0, 600), 0),  # never below zero
        ((999, 1, "month", 1, 50.0, None), 499),  # 499.5 off rounds up to 500
    ],
)
def test_monthly_mrr_follows_the_ledger_rules(
    price: tuple[int, int | None, str, int | None, float | None, int | None], expected: int
) -> None:
    assert monthly_mrr(*price) == expected


def test_revenue_adoption_and_attribution_by_hand(analytics: BankingPerformanceAnalytics) -> None:
    impact = RevenueImpactAnalysis(stored(analytics).metrics).analyze(WINDOW)
    money = {m.currency: m.amount for m in impact.total_revenue}
    assert money == {"USD": 1000 + 2000 - 400, "EUR": 500}
    per_payment = {m.currency: m.amount for m in impact.average_revenue_per_transaction}
    assert per_payment == {"USD": 1500, "EUR": 500}
    assert impact.transactions == 3
    assert impact.active_users == 3  # u1, u2, u3 used a feature in the window
    # Paid conversions: u1's subscription only (an upgrade is not a new customer).
    assert [(m.currency, m.amount) for m in impact.new_customer_mrr] == [("USD", 1000)]
    features = {f.feature: f for f in impact.features}
    assert features["spending_analysis"].adopters == 2
    assert features["spending_analysis"].adoption_rate == pytest.approx(2 / 3)
    assert features["budget_tracking"].adopters == 2
    assert features["goal_setting"].adopters == 1
    assert features["credit_monitoring"].adopters == 0  # used before the window only

    def credited(feature: str, how: str) -> tuple[int, list[tuple[str, int]]]:
        revenue = features[feature][how]
        return revenue.upgrades, [(m.currency, m.amount) for m in revenue.mrr]

    assert credited("spending_analysis", "attributed") == (1, [("USD", 1000)])
    # u1: spending (day 0) then budget (day 2) before subscribing.
    assert credited("spending_analysis", "first_touch") == (1, [("USD", 1000)])
    assert credited("budget_tracking", "last_touch") == (1, [("USD", 1000)])
    # u3: bill reminders exactly 30 days before is in; credit monitoring a second earlier
    # is out; tax optimisation at the upgrade's instant is not before it.
    assert credited("bill_reminders", "first_touch") == (1, [("USD", 900)])
    assert credited("spending_analysis", "last_touch") == (1, [("USD", 900)])
    assert credited("credit_monitoring", "first_touch") == (0, [])
    assert credited("tax_optimization", "last_touch") == (0, [])
    sources = {(s.source, s.feature): s for s in impact.conversion_sources}
    assert set(sources) == {("paywall", "spending_analysis"), ("email", None)}
    assert sources[("paywall", "spending_analysis")].conversion_rate == pytest.approx(1 / 2)
    assert sources[("email", None)].conversion_rate == pytest.approx(1 / 3)
    assert [(m.currency, m.amount) for m in sources[("email", None)].mrr] == [("USD", 900)]


def test_the_upgrade_models_risk_set_by_hand(analytics: BankingPerformanceAnalytics) -> None:
    """u1 is at risk on days 1-4 (converting on day 4), u2 on days 2-5 (last seen); u3
    linked before the window and is left out."""
    model = RevenueImpactAnalysis(stored(analytics).metrics).upgrade_model(WINDOW)
    assert model.users == 2
    assert model.adopters["spending_analysis"] == 1
    assert model.adopters["budget_tracking"] == 2
    assert model.adopters["goal_setting"] == 1
    spending = model.effects["spending_analysis"]
    # Adopted from the day after first use: u1's four days; u2's four are not.
    assert (spending.adopter_days, spending.adopter_conversions) == (4, 1)
    assert (spending.non_adopter_days, spending.non_adopter_conversions) == (4, 0)
    budget = model.effects["budget_tracking"]
    # u1 from day 3 (2 days, converting on the second), u2 from day 2 (4 days).
    assert (budget.adopter_days, budget.adopter_conversions) == (6, 1)
    assert (budget.non_adopter_days, budget.non_adopter_conversions) == (2, 0)
    goal = model.effects["goal_setting"]
    assert (goal.adopter_days, goal.adopter_conversions) == (2, 0)
    # Far below the minimum: no ratio is estimated.
    assert spending.adopter_conversions < MIN_ADOPTER_CONVERSIONS
    assert spending.hazard_ratio is None
    assert not spending.sufficient


def test_model_days_run_from_the_windows_start_and_the_link_flow_is_no_use(
    analytics: BankingPerformanceAnalytics,
) -> None:
    """A window starting at 18:00 UTC has days from 18:00 to 18:00. u6 opens the link widget
    (an account-linking behaviour event) at 18:00 on day 0 and links at 18:05; views their
    linked accounts on day 2 (Nov 3, 20:00) and uses budget tracking on day 2 too (Nov 4,
    10:00, a calendar day later); starts a trial on day 3 (Nov 5, 12:00). At risk on days
    1-3, converting on day 3; both features adopted from day 3. Counted by calendar days,
    budget tracking would be adopted a day later, and the widget's open would make account
    linking adopted from the first day."""
    start = datetime(2026, 11, 1, 18, tzinfo=UTC)
    results = analytics.ingest(
        [
            use("u6", "account_linking", start.isoformat()),
            link("u6", (start + timedelta(minutes=5)).isoformat()),
            use("u6", "account_linking", datetime(2026, 11, 3, 20, tzinfo=UTC).isoformat()),
            use("u6", "budget_tracking", datetime(2026, 11, 4, 10, tzinfo=UTC).isoformat()),
            subscription(
                "u6",
                "trial_started",
                datetime(2026, 11, 5, 12, tzinfo=UTC).isoformat(),
                status="trialing",
            ),
        ]
    )
    assert all(r.status.value == "accepted" for r in results), results
    window = TimeWindow(start, start + timedelta(days=10))
    model = RevenueImpactAnalysis(analytics.metrics).upgrade_model(window)
    assert model.users == 1
    for feature in ("account_linking", "budget_tracking"):
        effect = model.effects[feature]
        assert (effect.adopter_days, effect.adopter_conversions) == (1, 1), feature
        assert (effect.non_adopter_days, effect.non_adopter_conversions) == (2, 0), feature
        assert model.adopters[feature] == 1
    assert model.effects["goal_setting"].adopter_days == 0


def test_appraisal_by_hand_to_the_minor_unit() -> None:
    """Cost 1,000.00; cash 300.00, 400.00, 500.00 in months 1-3; 12% a year."""
    appraisal = appraise(
        100_000, [Decimal(30_000), Decimal(40_000), Decimal(50_000)], Decimal("0.12")
    )
    assert appraisal.total_uplift == 120_000
    assert appraisal.roi == pytest.approx(0.2)
    assert appraisal.payback_months == 3  # 300, 700, 1200 >= 1000
    # 30000/1.12^(1/12) + 40000/1.12^(2/12) + 50000/1.12^(3/12) - 100000, in floats:
    # 29718.40 + 39251.65 + 48603.37 - 100000 = 17573.42 -> 17573.
    npv = sum(c / 1.12 ** (m / 12) for m, c in ((1, 30_000), (2, 40_000), (3, 50_000)))
    assert appraisal.npv == round(npv - 100_000) == 17_573
    never = appraise(100_000, [Decimal(10_000)] * 3, Decimal(0))
    assert (never.payback_months, never.roi, never.npv) == (None, -0.7, -70_000)
    with pytest.raises(ValueError, match="cost"):
        appraise(0, [Decimal(1)], Decimal(0))


def test_uplift_path_against_the_formula() -> None:
    """100 new adopters, h0 = 0.001 a day, HR 2, ARPA 10.00: extra(m) = 100·(e^(-D·h0) -
    e^(-2·D·h0)), D = m·30.4375 days."""
    path = uplift_path(Decimal(100), Decimal("0.001"), Decimal(2), Decimal(1000), 3)
    for m, value in enumerate(path, start=1):
        days = m * 365.25 / 12
        expected = 100 * (math.exp(-days * 0.001) - math.exp(-2 * days * 0.001)) * 1000
        assert float(value) == pytest.approx(expected, rel=1e-12)
    assert round(path[0]) == 2908  # 100·(0.9700211 - 0.9409410)·1000


# -- the planted effects --------------------------------------------------------------------

#: A world small enough for the suite (about 1.75M events, ~10 s to simulate).
PLANTED = SimulationConfig(users=10_000, days=90, seed=7, end=datetime(2026, 11, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def planted_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, GroundTruth]:
    """The planted world in a DuckDB file, simulated once for the tests below."""
    url = f"duckdb:///{tmp_path_factory.mktemp('planted')}/planted.duckdb"
    with BankingPerformanceAnalytics.open(url) as analytics:

        def sink(event_type: EventType, chunk: pa.Table) -> None:
            analytics.ingest_arrow(chunk, event_type=event_type)

        truth = run_simulation(PLANTED, sink)
    return url, truth


PLANTED_WINDOW = TimeWindow(PLANTED.end - timedelta(days=PLANTED.days), PLANTED.end)


@pytest.mark.slow
@pytest.mark.duckdb
def test_the_model_recovers_the_planted_upgrade_effects(
    planted_store: tuple[str, GroundTruth],
) -> None:
    """Tolerance, on this 10,000-user, 90-day world: every feature has an estimate (account
    linking counts from its first use after the link; a quarter of the users turn
    transactions on after it or never); at least eight of the ten 95% intervals cover the
    planted ratio (a 95% interval misses one time in twenty: three misses or more out of
    ten happen about once in a hundred worlds); the estimates rank like the planted ratios
    (Spearman >= 0.8); and the three largest planted effects are the three largest
    estimates."""
    url, truth = planted_store
    with BankingPerformanceAnalytics.open(url) as analytics:
        model = RevenueImpactAnalysis(analytics.metrics).upgrade_model(PLANTED_WINDOW)
    planted = truth.feature_upgrade_effects
    estimated = {f: e for f, e in model.effects.items() if e.hazard_ratio is not None}
    assert set(estimated) == set(planted)
    covered = [
        f
        for f, e in estimated.items()
        if e.ci_low is not None and e.ci_high is not None and e.ci_low <= planted[f] <= e.ci_high
    ]
    assert len(covered) >= 8, covered
    names = sorted(estimated)
    truth_ranks = _ranks([planted[f] for f in names])
    estimate_ranks = _ranks([estimated[f].hazard_ratio or 0.0 for f in names])
    assert _spearman(truth_ranks, estimate_ranks) >= 0.8
    top = sorted(planted, key=planted.__getitem__)[-3:]
    assert set(sorted(estimated, key=lambda f: estimated[f].hazard_ratio or 0.0)[-3:]) == set(top)


@pytest.mark.slow
@pytest.mark.duckdb
def test_recommendations_and_roi_over_http_on_the_planted_world(
    planted_store: tuple[str, GroundTruth],
) -> None:
    """Every recommended feature has an interval above 1, ranks follow the expected gain, and
    an ROI projection's figures are the appraisal of its own monthly uplift."""
    url, _ = planted_store
    period = {"start": PLANTED_WINDOW.start.isoformat(), "end": PLANTED_WINDOW.end.isoformat()}
    with BankingPerformanceAnalytics.open(url) as analytics:
        key = KeyStore(analytics.engine).create("analyst", Role.ANALYST).secret
        headers = {"Authorization": f"Bearer {key}"}
        with (
            running(api_settings(analytics), analytics=analytics) as base,
            httpx.Client(base_url=base, timeout=120, headers=headers) as client,
        ):
            ranked = client.get("/api/banking-analytics/revenue/recommendations", params=period)
            body = {
                "feature": "budget_tracking",
                "cost": 500_000,
                "adoption_points": 10,
                "horizon_months": 6,
                "discount_rate": "0.10",
                **period,
            }
            roi = client.post("/api/banking-analytics/revenue/roi", json=body)
    assert ranked.status_code == 200, ranked.text
    recommendations = ranked.json()["recommendations"]
    assert recommendations, "the planted effects give something to recommend"
    gains = [r["expected_mrr_gain"] for r in recommendations]
    assert gains == sorted(gains, reverse=True)
    assert [r["rank"] for r in recommendations] == list(range(1, len(gains) + 1))
    for r in recommendations:
        assert r["evidence"]["ci_low"] > 1
        assert r["expected_mrr_gain_low"] <= r["expected_mrr_gain"] <= r["expected_mrr_gain_high"]
        assert r["feature"].replace("_", " ") in r["recommendation"]
    assert roi.status_code == 200, roi.text
    projection = roi.json()
    assumptions = projection["assumptions"]
    assert (assumptions["feature"], assumptions["cost"]) == ("budget_tracking", 500_000)
    assert len(projection["monthly_mrr_uplift"]) == 6
    # The money follows from the echoed assumptions: recompute the path and its appraisal.
    path = uplift_path(
        Decimal(repr(assumptions["new_adopters"])),
        Decimal(repr(assumptions["baseline_daily_hazard"])),
        Decimal(repr(assumptions["hazard_ratio"])),
        Decimal(assumptions["arpa"]),
        6,
    )
    assert projection["monthly_mrr_uplift"] == [round(v) for v in path]
    appraisal = appraise(500_000, path, Decimal("0.10"))
    assert projection["npv"] == appraisal.npv
    assert projection["total_uplift"] == appraisal.total_uplift
    assert projection["payback_months"] == appraisal.payback_months


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    for rank, index in enumerate(order):
        ranks[index] = float(rank)
    return ranks


def _spearman(a: list[float], b: list[float]) -> float:
    n = len(a)
    return 1 - 6 * sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) / (n * (n * n - 1))


# -- docs/revenue-impact.md -------------------------------------------------------------------

DOC = Path(__file__).resolve().parent.parent / "docs" / "revenue-impact.md"


def _blocks(language: str) -> list[str]:
    fence = f"```{language}\n"
    return [b.split("```", 1)[0] for b in DOC.read_text().split(fence)[1:]]


def test_the_docs_examples_run_as_written(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        stored(analytics)
    blocks = _blocks("python")
    assert len(blocks) == 2
    for number, block in enumerate(blocks, 1):
        code = block.replace("duckdb:///data/analytics.duckdb", store_url)
        exec(compile(code, f"docs/revenue-impact.md example {number}", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "[Money(currency='EUR', amount=500), Money(currency='USD', amount=2600)] "
        "[Money(currency='EUR', amount=500), Money(currency='USD', amount=1500)]"
    )
    assert "spending_analysis 2 insufficient_data None" in lines
    # The appraisal the docs state in words: payback in month 3, ROI 0.2, NPV 175.73.
    assert lines[-1] == "3 0.2 17573"


def test_the_docs_roi_body_is_a_valid_request() -> None:
    [body] = _blocks("json")
    request = RoiIn.model_validate_json(body)
    assert (request.adoption_points, request.success_rate_to) == (10, None)

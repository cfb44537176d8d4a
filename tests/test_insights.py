"""Automated insights on every engine: the statistics and the decomposition worked by hand,
a planted drop at one institution named with its error category and share (checked against
pandas), folding, stability, the other kinds, recommendations, and a simulated outage."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from statsmodels.stats.proportion import proportions_ztest

from api_fixtures import LiveAPI
from banking_analytics import BankingPerformanceAnalytics, EventStatus, EventType
from banking_analytics.metrics import TimeWindow
from banking_analytics.monitor import (
    Insight,
    InsightEngine,
    InsightSettings,
    OptimizationReport,
    bonferroni_z,
    decompose_kinds,
    decompose_rate,
    two_proportion_test,
)
from banking_analytics.simulate import GroundTruth, SimulationConfig, run_simulation

NOW = datetime(2026, 11, 10, 16, 0, tzinfo=UTC)
#: The current window is [14:00, 16:00); the baseline the day before it.
CURRENT = NOW - timedelta(minutes=90)
BASELINE = NOW - timedelta(hours=12)

# -- the statistics, by hand ------------------------------------------------------------------


def test_two_proportion_test_matches_a_hand_worked_value_and_statsmodels() -> None:
    # 4 of 100 failed before, 29 of 100 now: pooled 33/200 = 0.165,
    # sd = √(0.165·0.835·(1/100 + 1/100)) = 0.0524929, z = 0.25 / 0.0524929 = 4.76254.
    z, p = two_proportion_test(4, 100, 29, 100)
    assert z == pytest.approx(4.76254, abs=1e-4)
    assert p == pytest.approx(math.erfc(4.76254 / math.sqrt(2)), rel=1e-3)
    reference_z, reference_p = proportions_ztest([29, 4], [100, 100])
    assert (z, p) == pytest.approx((reference_z, reference_p), rel=1e-9)
    assert two_proportion_test(0, 50, 0, 80) == (0.0, 1.0)
    # Bonferroni: one test is the plain 1.96; five tests at 0.05 are each at 0.01.
    assert bonferroni_z(1) == pytest.approx(1.959964, abs=1e-6)
    assert bonferroni_z(5) == pytest.approx(2.575829, abs=1e-6)


def test_rate_and_mix_effects_add_up_to_the_change_and_find_the_mix_shift() -> None:
    # A keeps its 5% failure rate, B its 20%; B's share of the events grows from 20% to 60%
    # and C appears with 10 events, 5 failed. f0 = 8/100 = 0.08, f1 = (2+12+5)/110.
    baseline = {"A": (80, 4), "B": (20, 4)}
    current = {"A": (40, 2), "B": (60, 12), "C": (10, 5)}
    parts = {p.segment: p for p in decompose_rate(baseline, current)}
    w1 = {"A": 40 / 110, "B": 60 / 110, "C": 10 / 110}
    # No rate changed: every part is mix, (w1 - w0)·(r0 + r1)/2.
    assert parts["A"].rate_effect == pytest.approx(0)
    assert parts["A"].mix_effect == pytest.approx((w1["A"] - 0.8) * 0.05)
    assert parts["B"].mix_effect == pytest.approx((w1["B"] - 0.2) * 0.2)
    assert parts["C"].rate_effect == pytest.approx(0)
    assert parts["C"].mix_effect == pytest.approx(w1["C"] * 0.5)
    delta = 19 / 110 - 0.08
    assert sum(p.contribution for p in parts.values()) == pytest.approx(delta)
    # B explains most of the change although A had as many failures before.
    assert [p.segment for p in decompose_rate(baseline, current)] == ["B", "C", "A"]
    assert parts["B"].share(delta) == pytest.approx((w1["B"] - 0.2) * 0.2 / delta)


def test_rate_effects_when_the_mix_is_unchanged_and_kinds_of_failure() -> None:
    # Chase, hand-worked: 50 + 50 attempts in each window; account_linking 2 → 3 failures,
    # transaction_sync 2 → 26. Weights stay ½: all rate, 0.5·(0.06-0.04) and 0.5·(0.52-0.04).
    parts = decompose_rate(
        {"account_linking": (50, 2), "transaction_sync": (50, 2)},
        {"account_linking": (50, 3), "transaction_sync": (50, 26)},
    )
    assert [(p.segment, p.rate_effect, p.mix_effect) for p in parts] == [
        ("transaction_sync", pytest.approx(0.24), pytest.approx(0)),
        ("account_linking", pytest.approx(0.01), pytest.approx(0)),
    ]
    assert parts[0].share(0.25) == pytest.approx(0.96)
    # By kind: institution 3 → 24 of 100, aggregator 1 → 5: 0.21 and 0.04 of the 0.25.
    kinds = decompose_kinds(
        100, 100, {"institution": 3, "aggregator": 1}, {"institution": 24, "aggregator": 5}
    )
    assert [(k.segment, k.contribution) for k in kinds] == [
        ("institution", pytest.approx(0.21)),
        ("aggregator", pytest.approx(0.04)),
    ]


# -- hand-worked worlds -----------------------------------------------------------------------

CODES = {"institution": "INSTITUTION_DOWN", "aggregator": "API_ERROR"}


def attempt(
    institution: str,
    outcome: str,
    category: str | None,
    at: datetime,
    *,
    feature: str = "account_linking",
    aggregator: str = "plaid",
    latency_ms: float = 1500.0,
    name: str | None = None,
) -> dict[str, Any]:
    key = uuid.uuid4().hex[:12]
    event: dict[str, Any] = {
        "event_type": "connection_attempt",
        "event_id": str(uuid.uuid4()),
        "occurred_at": at.isoformat(),
        "user_id": f"u_{key}",
        "attempt_id": f"a_{key}",
        "aggregator": aggregator,
        "institution_id": institution,
        "feature": feature,
        "flow": "new",
        "started_at": at.isoformat(),
        "outcome": outcome,
        "latency_ms": latency_ms,
    }
    if category is not None:
        event |= {"error_category": category, "error_code": CODES[category]}
    if name is not None:
        event["institution_name"] = name
    return event


def batch(institution: str, at: datetime, **kw: Any) -> list[dict[str, Any]]:
    """``success=n, institution_errors=n, aggregator_errors=n`` attempts (a second apart)
    and the other fields of :func:`attempt`."""
    kinds = {
        "success": None,
        "institution_errors": "institution",
        "aggregator_errors": "aggregator",
    }
    counts = {k: kw.pop(k) for k in kinds if k in kw}
    events = []
    for kind, n in counts.items():
        category = kinds[kind]
        outcome = "success" if kind == "success" else "failure"
        events += [attempt(institution, outcome, category, at, **kw) for _ in range(n)]
    return [
        {**e, "occurred_at": (at + i * timedelta(seconds=1)).isoformat()}
        for i, e in enumerate(events)
    ]


def chase_world() -> list[dict[str, Any]]:
    """Chase (plaid): 96 of 100 links before, 71 of 100 now; the drop is institution errors
    (INSTITUTION_DOWN) on transaction_sync. Wells Fargo (plaid) steady at 95 of 100."""
    chase = {"name": "Chase", "aggregator": "plaid"}
    return (
        batch("ins_chase", BASELINE, success=48, institution_errors=1, aggregator_errors=1, **chase)
        + batch(
            "ins_chase",
            BASELINE,
            success=48,
            institution_errors=2,
            feature="transaction_sync",
            **chase,
        )
        + batch(
            "ins_chase", CURRENT, success=47, institution_errors=1, aggregator_errors=2, **chase
        )
        + batch(
            "ins_chase",
            CURRENT,
            success=24,
            institution_errors=23,
            aggregator_errors=3,
            feature="transaction_sync",
            **chase,
        )
        + batch("ins_wells", BASELINE, success=95, institution_errors=5, name="Wells Fargo")
        + batch("ins_wells", CURRENT, success=95, institution_errors=5, name="Wells Fargo")
    )


def report_of(analytics: BankingPerformanceAnalytics) -> OptimizationReport:
    return analytics.monitor.insights(now=NOW, window="2h", baseline="1d")


def ingest(analytics: BankingPerformanceAnalytics, events: list[dict[str, Any]]) -> None:
    assert {r.status for r in analytics.ingest(events)} == {EventStatus.ACCEPTED}


def pandas_drop(events: list[dict[str, Any]], institution: str) -> dict[str, float]:
    """The failure-rate change at one institution and each error category's part of it."""
    frame = pd.DataFrame(events)
    frame = frame[frame["institution_id"] == institution]
    frame["current"] = pd.to_datetime(frame["occurred_at"]) >= NOW - timedelta(hours=2)
    sizes = frame.groupby("current").size()
    failed = frame[frame["outcome"] == "failure"]
    by = failed.groupby(["current", "error_category"]).size().unstack(fill_value=0)
    part = (by.loc[True] / sizes[True]) - (by.loc[False] / sizes[False])
    return {"delta": float(part.sum()), **{k: float(v) for k, v in part.items()}}


def test_a_planted_drop_is_the_top_insight_with_its_category_share_and_feature(
    analytics: BankingPerformanceAnalytics,
) -> None:
    events = chase_world()
    ingest(analytics, events)
    report = report_of(analytics)
    top = report.insights[0]
    assert top.statement == (
        "Chase's link success rate fell from 96% to 71% since 14:00 UTC; 84% of the drop is "
        "institution errors (INSTITUTION_DOWN), 96% of it on transaction_sync."
    )
    assert top.kind == "success_rate_drop"
    evidence = top.evidence
    assert evidence.subject == {"institution": "ins_chase"}
    assert (evidence.baseline_value, evidence.current_value) == pytest.approx((0.96, 0.71))
    assert (evidence.baseline_sample, evidence.current_sample) == (100, 100)
    assert evidence.z == pytest.approx(4.76254, abs=1e-4)
    expected = pandas_drop(events, "ins_chase")
    parts = {(b.dimension, b.value): b for b in evidence.breakdown}
    assert parts[("error_category", "institution")].share == pytest.approx(
        expected["institution"] / expected["delta"]
    )
    assert parts[("error_category", "aggregator")].share == pytest.approx(
        expected["aggregator"] / expected["delta"]
    )
    assert parts[("error_code", "institution:INSTITUTION_DOWN")].share == pytest.approx(0.84)
    assert parts[("feature", "transaction_sync")].rate_effect == pytest.approx(0.24)
    # Size x confidence: 25 failures beyond the baseline's 4%, all but certain.
    assert top.size == pytest.approx(25)
    assert top.score == pytest.approx(25 * (1 - evidence.p_value))
    # The query behind it answers the same figure.
    link = top.queries[0]
    assert link.path == "/api/banking-analytics/metrics/query"
    asked = analytics.query_metrics(
        link.body["metrics"],
        TimeWindow(
            datetime.fromisoformat(link.body["start"]), datetime.fromisoformat(link.body["end"])
        ),
        filters=link.body["filters"],
    )
    assert asked.single().number("connection_success_rate") == pytest.approx(0.71)


def test_one_statement_per_finding_and_the_same_list_every_run(
    analytics: BankingPerformanceAnalytics,
) -> None:
    ingest(analytics, chase_world())
    first, second = report_of(analytics), report_of(analytics)
    assert first == second
    drops = [i for i in first.insights if i.kind == "success_rate_drop"]
    # Plaid's drop and transaction_sync's are Chase's: folded into it, not stated again.
    assert [i.evidence.subject for i in drops] == [{"institution": "ins_chase"}]
    # Without folding (no part can explain more than all of a change) all three are stated.
    unfolded = InsightEngine(analytics.metrics, InsightSettings(explains=1.01)).report(
        now=NOW, window="2h", baseline="1d"
    )
    stated = {
        tuple(i.evidence.subject.items()): i.id
        for i in unfolded.insights
        if i.kind == "success_rate_drop"
    }
    assert set(stated) == {
        (("institution", "ins_chase"),),
        (("aggregator", "plaid"),),
        (("feature", "transaction_sync"),),
    }
    assert drops[0].related == sorted(
        stated[k] for k in ((("aggregator", "plaid"),), (("feature", "transaction_sync"),))
    )
    recommendations = {r.kind: r for r in first.recommendations}
    incident = recommendations["institution_incident"]
    assert incident.insight == drops[0].id
    assert incident.action == (
        "Treat Chase as an institution incident (INSTITUTION_DOWN): tell affected users it is "
        "the bank's outage, hold automatic retries and re-check when its errors stop."
    )
    # Institution errors rose from 3% to 24% of 100 attempts: 21 failures to win back.
    assert incident.expected_gain == pytest.approx(21)


def test_a_slowdown_of_the_same_outage_is_part_of_its_statement(
    analytics: BankingPerformanceAnalytics,
) -> None:
    # Chase's attempts now take 4 s instead of 1.5 s; Wells Fargo's still 1.5 s. Plaid's p95
    # rises with them (to 4 s), all of it Chase's slow attempts.
    events = [
        {**e, "latency_ms": 4000.0}
        if e["institution_id"] == "ins_chase" and e["occurred_at"] >= CURRENT.isoformat()
        else e
        for e in chase_world()
    ]
    ingest(analytics, events)
    [top] = report_of(analytics).insights
    assert top.statement == (
        "Chase's link success rate fell from 96% to 71% since 14:00 UTC; 84% of the drop is "
        "institution errors (INSTITUTION_DOWN), 96% of it on transaction_sync; its p95 link "
        "latency rose from 1.5 s to 4.0 s."
    )
    assert sorted(r.split(":")[0] for r in top.related) == [
        "latency_increase",
        "latency_increase",
        "success_rate_drop",
        "success_rate_drop",
    ]


def sync_run(institution: str, connection: str, at: datetime, failed: bool) -> dict[str, Any]:
    """A transaction refresh expected every 6 hours."""
    return {
        "event_type": "sync_run",
        "event_id": str(uuid.uuid4()),
        "occurred_at": at.isoformat(),
        "user_id": f"u_{connection}",
        "connection_id": connection,
        "aggregator": "plaid",
        "institution_id": institution,
        "feature": "transaction_sync",
        "trigger": "scheduled",
        "started_at": at.isoformat(),
        "outcome": "failure" if failed else "success",
        "expected_interval_s": 6 * 3600,
        **({"error_category": "institution", "error_code": "INSTITUTION_DOWN"} if failed else {}),
    }


def test_a_link_and_a_sync_drop_with_one_cause_and_the_staleness_it_leaves_are_one_finding(
    analytics: BankingPerformanceAnalytics,
) -> None:
    # Chase's 100 connections refresh once in each window: 2 fail before, 40 now. Those 40
    # last refreshed 12 h before NOW (over 1.5 x 6 h: delayed); Wells Fargo's 50 did now.
    events = chase_world()
    for i in range(100):
        events.append(sync_run("ins_chase", f"c{i}", BASELINE + timedelta(seconds=i), i < 2))
        events.append(sync_run("ins_chase", f"c{i}", CURRENT + timedelta(seconds=i), i >= 60))
    for i in range(50):
        for at in (BASELINE, CURRENT):
            events.append(sync_run("ins_wells", f"w{i}", at + timedelta(seconds=i), False))
    ingest(analytics, events)
    report = report_of(analytics)
    [drop] = [i for i in report.insights if i.kind == "success_rate_drop"]
    # 38 more failed refreshes outweigh 25 more failed links: the sync drop states both.
    assert drop.statement == (
        "Chase's sync success rate fell from 98% to 60% since 14:00 UTC; all of the drop is "
        "institution errors (INSTITUTION_DOWN); its link success rate fell too, from 96% to 71%; "
        "40 of its 100 connections are stale."
    )
    assert drop.size == pytest.approx(38)
    # Folded into it: Chase's link drop, plaid's and transaction_sync's drops of links and of
    # refreshes, and Chase's stale connections.
    assert sorted(r.split(":")[0] for r in drop.related) == [
        *["success_rate_drop"] * 5,
        "sync_freshness",
    ]
    assert [i.kind for i in report.insights] == ["success_rate_drop"]
    [incident] = [r for r in report.recommendations if r.kind == "institution_incident"]
    assert incident.insight == drop.id


def test_an_institution_whose_connections_stopped_refreshing(
    analytics: BankingPerformanceAnalytics,
) -> None:
    # Chase's 30 connections last refreshed in the baseline, 12 h before NOW (delayed: over
    # 1.5 x their 6 h), 5 of them never (stopped); Wells Fargo's 40 refreshed 1.5 h before.
    events = [
        sync_run("ins_chase", f"c{i}", BASELINE + timedelta(seconds=i), i < 5) for i in range(30)
    ]
    events += [
        sync_run("ins_wells", f"w{i}", CURRENT + timedelta(seconds=i), False) for i in range(40)
    ]
    ingest(analytics, events)
    [stale] = report_of(analytics).insights
    assert stale.statement == (
        "ins_chase: 30 of 30 connections (100%) have not refreshed in over 1.5x their expected "
        "interval (5 stopped) at 16:00 UTC, against 0% at other institutions."
    )
    assert stale.size == pytest.approx(30)
    z, p = two_proportion_test(0, 40, 30, 30)
    assert (stale.evidence.z, stale.evidence.p_value) == pytest.approx((z, p))
    assert stale.queries[0].path == "/api/banking-analytics/performance/sync-freshness"
    freshness = analytics.sync_freshness("26h", now=NOW)
    assert freshness["states"] == {"NORMAL": 40, "DELAYED": 25, "STOPPED": 5}


def other_world() -> list[dict[str, Any]]:
    """Bank of America through plaid (60 of 100 succeed) and mx (97 of 100), steady; Citi
    through finicity, its latencies 1000 + 10·i ms before and 3000 + 10·i now; budget_tracking
    failing 30 of 300 times on android and 10 of 300 on ios."""
    events = []
    for at in (BASELINE, CURRENT):
        events += batch("ins_boa", at, success=60, institution_errors=40, name="Bank of America")
        events += batch("ins_boa", at, success=97, institution_errors=3, aggregator="mx")
    for at, base in ((BASELINE, 1000.0), (CURRENT, 3000.0)):
        events += [
            attempt(
                "ins_citi",
                "success",
                None,
                at + timedelta(seconds=i),
                aggregator="finicity",
                latency_ms=base + 10 * i,
                name="Citi",
            )
            for i in range(100)
        ]
    for platform, failures in (("android", 30), ("ios", 10)):
        for i in range(300):
            key = uuid.uuid4().hex[:10]
            at = BASELINE + timedelta(minutes=i)
            events.append(
                {
                    "event_type": "behavior",
                    "event_id": str(uuid.uuid4()),
                    "occurred_at": at.isoformat(),
                    "user_id": f"u_{key}",
                    "feature": "budget_tracking",
                    "action": "open",
                    "success": i >= failures,
                    "platform": platform,
                }
            )
    return events


def test_latency_platform_gaps_and_routing(analytics: BankingPerformanceAnalytics) -> None:
    ingest(analytics, other_world())
    report = report_of(analytics)
    by_kind: dict[str, list[Insight]] = {}
    for insight in report.insights:
        by_kind.setdefault(insight.kind, []).append(insight)
    assert set(by_kind) == {"latency_increase", "platform_gap"}
    # Nearest-rank p95 of 100 values is the 95th: 1940 ms before, 3940 now; values above
    # 1940: 5 before, all 100 now. Finicity's rise is Citi's: one statement.
    [latency] = by_kind["latency_increase"]
    assert latency.statement == (
        "p95 link latency at Citi doubled from 1.9 s to 3.9 s since 14:00 UTC; 100% of "
        "attempts took longer than the baseline's p95 (5.0% before)."
    )
    assert latency.evidence.compared == {
        "threshold_ms": 1940.0,
        "baseline_slower": 5,
        "current_slower": 100,
    }
    assert latency.size == pytest.approx(95)
    assert len(latency.related) == 1
    [gap] = by_kind["platform_gap"]
    assert gap.statement.startswith(
        "budget_tracking fails 3.0x as often on android (10% of 300 interactions) as on ios "
        "(3.3% of 300)"
    )
    low, high = gap.evidence.interval or [0.0, 0.0]
    assert 0 < low < 2 / 30 < high  # one pair compared: the plain 95% Newcombe interval
    assert gap.size == pytest.approx((30 - 10) / 300 * 300)
    [route] = [r for r in report.recommendations if r.kind == "route_links"]
    assert route.action == (
        "Route new links for Bank of America from plaid to mx, whose link success rate there "
        "is 97% (against 60% through plaid)."
    )
    # 37 points on the 100 attempts through plaid in the current window.
    assert route.expected_gain == pytest.approx(37)
    assert {r.kind for r in report.recommendations} == {
        "route_links",
        "investigate_latency",
        "investigate_platform",
    }


# -- a simulated world with a planted outage -----------------------------------------------------

END = datetime(2026, 11, 20, tzinfo=UTC)
#: Five planted outages; the first (a "down" one at a small institution, two hours on the
#: third day) overlaps no other.
WORLD = SimulationConfig(users=2000, days=4, seed=4, end=END)


@pytest.fixture(scope="module")
def world() -> tuple[GroundTruth, list[tuple[EventType, pa.Table]]]:
    chunks: list[tuple[EventType, pa.Table]] = []
    truth = run_simulation(WORLD, lambda kind, chunk: chunks.append((kind, chunk)))
    return truth, chunks


def test_the_top_insight_names_the_planted_outage_and_its_error_category(
    analytics: BankingPerformanceAnalytics,
    world: tuple[GroundTruth, list[tuple[EventType, pa.Table]]],
) -> None:
    truth, chunks = world
    for kind, chunk in chunks:
        assert analytics.ingest_arrow(chunk, event_type=kind).count(EventStatus.REJECTED) == 0
    names = {i.institution_id: i.name for i in truth.institutions}
    alone = [
        o
        for o in truth.outages
        if o.severity == "down"
        and not any(p is not o and p.start < o.end and o.start < p.end for p in truth.outages)
    ]
    assert alone
    for outage in alone:
        report = analytics.monitor.insights(
            window=TimeWindow(outage.start, outage.end), baseline="1d"
        )
        top = report.insights[0]
        assert top.kind == "success_rate_drop", top.statement
        # The institution is the subject, or explains most of a wider drop (a small bank's
        # own traffic over two hours can be under the minimum sample).
        institutions = [b for b in top.evidence.breakdown if b.dimension == "institution"]
        assert top.evidence.subject == {"institution": outage.institution_id} or (
            institutions[0].value == outage.institution_id and institutions[0].share >= 0.5
        ), top.statement
        assert names[outage.institution_id] in top.statement
        categories = [b for b in top.evidence.breakdown if b.dimension == "error_category"]
        assert categories[0].value == "institution"
        assert categories[0].share >= 0.5
        assert "of the drop is institution errors" in top.statement


# -- the API ------------------------------------------------------------------------------------

INSIGHTS = "/api/banking-analytics/insights"
OPTIMIZATION = "/api/banking-analytics/dashboard/optimization"
PARAMS = {"window": "2h", "baseline": "1d", "end": NOW.isoformat()}


def test_insights_and_the_optimization_dashboard_over_http(live_api: LiveAPI) -> None:
    api = live_api
    ingest(api.analytics, chase_world())
    for role in ("analyst", "admin"):
        answer = api.client.get(INSIGHTS, params=PARAMS, headers=api.as_key(role))
        assert answer.status_code == 200, answer.text
    listed = answer.json()
    assert set(listed) == {"current", "baseline", "insights"}
    assert listed["current"]["start"] == "2026-11-10T14:00:00Z"
    assert listed["baseline"]["start"] == "2026-11-09T14:00:00Z"
    library = report_of(api.analytics)
    assert [i["statement"] for i in listed["insights"]] == [i.statement for i in library.insights]
    top = listed["insights"][0]
    assert top["id"] == library.insights[0].id
    assert top["queries"][0]["body"]["filters"] == {"institution": "ins_chase"}
    board = api.client.get(OPTIMIZATION, params=PARAMS, headers=api.as_key("analyst")).json()
    assert board["insights"] == listed["insights"]
    assert [r["kind"] for r in board["recommendations"]] == [
        r.kind for r in library.recommendations
    ]
    assert board["recommendations"][0]["insight"] == top["id"]

    for url in (INSIGHTS, OPTIMIZATION):
        assert api.client.get(url, params=PARAMS, headers=api.as_key("ingest")).status_code == 403
        assert api.client.get(url, params=PARAMS, headers=api.as_user("u1")).status_code == 403
        assert api.client.get(url, params=PARAMS).status_code == 401


def test_bad_insight_requests_are_problems(live_api: LiveAPI) -> None:
    api = live_api
    for params, message in (
        ({"window": "2 hours"}, "time_period '2 hours' is not understood"),
        ({"baseline": "120d"}, "baseline: at most 90d"),
        ({"limit": "0"}, "limit"),
        ({"end": "2026-11-10T16:00:00"}, "give a UTC offset"),
    ):
        answer = api.client.get(INSIGHTS, params=params, headers=api.as_key("analyst"))
        assert answer.status_code == 422, (params, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert message in answer.text, answer.text


def test_an_empty_store_has_nothing_to_say(analytics: BankingPerformanceAnalytics) -> None:
    report = analytics.monitor.insights(now=NOW)
    assert (report.insights, report.recommendations) == ([], [])
    assert report.current.start == NOW - timedelta(hours=6)
    assert report.baseline.start == NOW - timedelta(days=7, hours=6)


def test_a_recovery_is_not_an_insight(analytics: BankingPerformanceAnalytics) -> None:
    # Chase's world the other way round: 71% before, 96% now.
    events = []
    for event in chase_world():
        at = datetime.fromisoformat(event["occurred_at"])
        origin, target = (BASELINE, CURRENT) if at < CURRENT else (CURRENT, BASELINE)
        moved = (target + (at - origin)).isoformat()
        events.append({**event, "occurred_at": moved, "started_at": moved})
    ingest(analytics, events)
    now = analytics.query_metrics(
        ["connection_success_rate"],
        TimeWindow(NOW - timedelta(hours=2), NOW),
        filters={"institution": "ins_chase"},
    )
    assert now.single().number("connection_success_rate") == pytest.approx(0.96)
    assert report_of(analytics).insights == []

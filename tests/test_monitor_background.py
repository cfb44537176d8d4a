"""Rules on their intervals, on every engine: the scheduler under a controllable clock,
the background thread, the evaluator inside a served API, and the simulator's planted
outages raising critical alerts for the right institutions, in time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from api_fixtures import api_settings
from api_server import running
from banking_analytics import BankingPerformanceAnalytics, EventStatus
from banking_analytics.monitor import (
    BackgroundEvaluator,
    Rule,
    RuleEvaluation,
    Scheduler,
    latest_tick,
)
from banking_analytics.simulate import GroundTruth, SimulationConfig, run_simulation
from banking_analytics.vocabulary import EventType
from test_monitor_evaluate import RULE, T0, hand_worked

MINUTE = timedelta(minutes=1)


def test_latest_tick_is_the_last_multiple_of_the_interval() -> None:
    at = datetime(2026, 11, 2, 12, 7, 31, tzinfo=UTC)
    assert latest_tick(at, MINUTE) == datetime(2026, 11, 2, 12, 7, tzinfo=UTC)
    assert latest_tick(at, 5 * MINUTE) == datetime(2026, 11, 2, 12, 5, tzinfo=UTC)
    assert latest_tick(at, timedelta(hours=1)) == datetime(2026, 11, 2, 12, tzinfo=UTC)
    assert latest_tick(at.replace(minute=5, second=0), 5 * MINUTE) == at.replace(minute=5, second=0)


def test_each_rule_is_evaluated_once_per_tick_of_its_interval_across_restarts(
    analytics: BankingPerformanceAnalytics,
) -> None:
    analytics.ingest(hand_worked())
    monitor = analytics.monitor
    monitor.apply(
        [
            Rule.from_dict(RULE),  # every minute
            Rule.from_dict({**RULE, "name": "every_five", "interval": "5m"}),
        ],
        "test",
    )
    scheduler = Scheduler(monitor, owner="replica-1")

    def run(at: datetime) -> list[tuple[str, timedelta]]:
        return [(r.rule_name, r.evaluated_at - T0) for r in scheduler.run_due(at)]

    start = T0 + 30 * MINUTE
    assert run(start + timedelta(seconds=20)) == [
        ("every_five", 30 * MINUTE),
        ("success_low", 30 * MINUTE),
    ]
    assert run(start + timedelta(seconds=50)) == []
    assert run(start + timedelta(minutes=1, seconds=5)) == [("success_low", 31 * MINUTE)]
    # Ticks missed are not made up for: the next evaluation is at the latest tick.
    assert run(start + timedelta(minutes=7, seconds=59)) == [
        ("every_five", 35 * MINUTE),
        ("success_low", 37 * MINUTE),
    ]
    # A new scheduler (a restart of the same replica, holding its leases) knows from the
    # store what was evaluated.
    scheduler = Scheduler(monitor, owner="replica-1")
    assert run(start + timedelta(minutes=7, seconds=59)) == []
    assert run(start + timedelta(minutes=8)) == [("success_low", 38 * MINUTE)]
    # A changed rule is a new version: evaluated at the next chance.
    monitor.apply(
        [Rule.from_dict({**RULE, "name": "every_five", "interval": "5m", "for": "0"})], "t"
    )
    assert run(start + timedelta(minutes=8, seconds=1)) == [("every_five", 35 * MINUTE)]


def test_the_background_thread_runs_cycles_until_stopped(
    analytics: BankingPerformanceAnalytics,
) -> None:
    analytics.ingest(hand_worked())
    analytics.monitor.apply([Rule.from_dict({**RULE, "for": "0"})], "test")
    clock = iter(T0 + (30 + k) * MINUTE for k in range(1000))
    cycles: list[list[RuleEvaluation]] = []
    three = threading.Event()

    def seen(reports: list[RuleEvaluation]) -> None:
        cycles.append(reports)
        if len(cycles) == 3:
            three.set()

    evaluator = BackgroundEvaluator(
        analytics.monitor, period_seconds=0.01, clock=lambda: next(clock), on_cycle=seen
    )
    evaluator.start()
    assert three.wait(30)
    evaluator.stop()
    assert [[r.evaluated_at - T0 for r in c] for c in cycles[:3]] == [
        [30 * MINUTE],
        [31 * MINUTE],
        [32 * MINUTE],
    ]
    assert {a.state for a in analytics.monitor.alerts()} == {"firing", "nodata"}


def test_a_served_api_evaluates_the_rules_in_the_background(
    analytics: BankingPerformanceAnalytics,
) -> None:
    # The events and the rule lie around now: the server's evaluator runs by the wall clock.
    now = datetime.now(UTC)
    events = [{**e, "occurred_at": (now - 5 * MINUTE).isoformat()} for e in hand_worked()]
    analytics.ingest(events)
    analytics.monitor.apply([Rule.from_dict({**RULE, "for": "0"})], "test")
    with running(api_settings(analytics, evaluate_rules=True), analytics=analytics):
        evaluated = threading.Event()
        for _ in range(600):  # waits for the server's thread, not for a time to pass
            if analytics.monitor.alerts():
                evaluated.set()
                break
            evaluated.wait(0.05)
        assert evaluated.is_set()
    states = {a.labels["institution"]: a.state for a in analytics.monitor.alerts()}
    assert states == {"ins_a": "firing", "ins_b": "firing", "ins_c": "nodata"}


# -- planted outages ---------------------------------------------------------------------------

END = datetime(2026, 11, 20, tzinfo=UTC)
WORLD = SimulationConfig(users=3000, days=3, seed=3, end=END)
#: A sync-based institution rule sized for the small world's traffic (~20-40 refreshes an
#: hour per institution): the success rate of refreshes over two hours, evaluated hourly.
OUTAGE_RULE = {
    "name": "institution_sync_success_low",
    "metric": "sync_success_rate",
    "window": "2h",
    "by": ["institution"],
    "condition": "below",
    "warning": 0.8,
    "critical": 0.5,
    "for": "1h",
    "keep_firing_for": "1h",
    "interval": "1h",
}
INTERVAL, FOR = timedelta(hours=1), timedelta(hours=1)
#: Evaluated over the last day and a half of the world (where its outages are planted).
SPAN = timedelta(hours=36)


@pytest.fixture(scope="module")
def world() -> tuple[GroundTruth, list[tuple[EventType, pa.Table]]]:
    """The small simulated world, made once and stored into each engine's store."""
    chunks: list[tuple[EventType, pa.Table]] = []
    truth = run_simulation(WORLD, lambda kind, chunk: chunks.append((kind, chunk)))
    return truth, chunks


@pytest.fixture
def outage_store(
    analytics: BankingPerformanceAnalytics,
    world: tuple[GroundTruth, list[tuple[EventType, pa.Table]]],
) -> GroundTruth:
    truth, chunks = world
    for kind, chunk in chunks:
        assert analytics.ingest_arrow(chunk, event_type=kind).count(EventStatus.REJECTED) == 0
    return truth


def test_planted_outages_raise_critical_alerts_for_the_right_institution_in_time(
    analytics: BankingPerformanceAnalytics, outage_store: GroundTruth
) -> None:
    truth = outage_store
    down = [
        o
        for o in truth.outages
        if o.severity == "down" and o.feature in ("all", "transaction_sync")
    ]
    assert down, "the world has no outage of severity down"
    monitor = analytics.monitor
    monitor.apply([Rule.from_dict(OUTAGE_RULE)], "test")
    scheduler = Scheduler(monitor)
    critical: dict[str, list[datetime]] = {}
    at = END - SPAN
    while at <= END:  # a controllable clock, from tick to tick (states change only then)
        for report in scheduler.run_due(at):
            assert report.error is None
        for alert in monitor.alerts():
            if alert.state in ("firing", "recovering") and alert.severity == "critical":
                critical.setdefault(alert.labels["institution"], []).append(at)
        at += INTERVAL

    for outage in down:
        deadline = outage.start + 2 * INTERVAL + FOR
        assert outage.end >= deadline, "an outage shorter than the detection bound"
        fired = [
            t for t in critical.get(outage.institution_id, []) if outage.start <= t <= deadline
        ]
        assert fired, (
            f"{outage.institution_id}: down from {outage.start}, no critical alert by {deadline}"
        )
    # Quiet periods raise none: no critical alert but during an outage of the institution,
    # or as long after it as the window, keep_firing_for and a tick can hold it.
    lag = timedelta(hours=2) + timedelta(hours=1) + INTERVAL
    for institution, times in critical.items():
        windows = [(o.start, o.end + lag) for o in truth.outages if o.institution_id == institution]
        assert all(any(s <= t <= e for s, e in windows) for t in times), (institution, times)
    troubled = {o.institution_id for o in truth.outages}
    healthy = {i.institution_id for i in truth.institutions if i.sync_success_rate >= 0.9}
    assert sorted(set(critical) & (healthy - troubled)) == []
    assert set(critical) <= troubled

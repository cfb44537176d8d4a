"""The anomaly detector and the default institution success-rate rules against the
simulator's planted outages, on every engine: precision and recall of their firing
periods against the ground truth's outage windows, and their detection delay (printed;
docs/monitoring.md quotes them).

Scoring, per rule and per institution:

* an outage is **detected** when a firing episode of that institution overlaps
  ``[start, end + GRACE)``; its **delay** is the first such episode's start - the
  outage's start (negative when it was already firing);
* **recall** = detected outages ÷ planted outages that hit the rule's traffic (link
  attempts: outages of every feature or of account linking; syncs: of every feature or
  of transaction sync);
* **precision** = episodes that overlap an outage window (plus GRACE) of their
  institution ÷ all episodes of the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from statistics import median

import pyarrow as pa
import pytest

from banking_analytics import BankingPerformanceAnalytics, EventStatus, EventType
from banking_analytics.monitor import BacktestView, Rule, default_rules
from banking_analytics.simulate import OutageWindow, SimulationConfig, run_simulation

END = datetime(2026, 11, 20, tzinfo=UTC)
#: Five weeks: the anomaly rule's four weeks of baseline exist for the outages, which the
#: simulator plants in the later two thirds of the window.
WORLD = SimulationConfig(users=6000, days=35, seed=3, end=END)
#: How long after an outage's end a firing still counts as detecting it (an hourly
#: detector judges an hour after it ends; a 30-minute window holds an outage 30 minutes on).
GRACE = timedelta(hours=2)
SYNCS = {"all", "transaction_sync"}
LINKS = {"all", "account_linking"}
SYNC_ANOMALY = {
    "name": "sync_success_anomaly",
    "metric": "sync_success_rate",
    "window": "1h",
    "by": ["institution"],
    "condition": "anomaly",
    "interval": "1h",
    "anomaly": {"direction": "down"},
}


@dataclass(frozen=True)
class Score:
    rule: str
    planted: int
    detected: int
    down_planted: int
    down_detected: int
    episodes: int
    true_episodes: int
    delays: tuple[timedelta, ...]

    @property
    def recall(self) -> float:
        return self.detected / self.planted if self.planted else float("nan")

    @property
    def down_recall(self) -> float:
        return self.down_detected / self.down_planted if self.down_planted else float("nan")

    @property
    def precision(self) -> float:
        return self.true_episodes / self.episodes if self.episodes else float("nan")

    def line(self) -> str:
        delay = "-" if not self.delays else f"{median(self.delays).total_seconds() / 60:.0f} min"
        return (
            f"{self.rule}: recall {self.detected}/{self.planted} "
            f"(down {self.down_detected}/{self.down_planted}), precision "
            f"{self.true_episodes}/{self.episodes}, median delay {delay}"
        )


def score(view: BacktestView, outages: list[OutageWindow]) -> Score:
    """Precision, recall and delay of a backtest's episodes (see the module)."""
    until = view.until
    spans = {
        instance.labels["institution"]: [(e.start, e.end or until) for e in instance.episodes]
        for instance in view.firing
    }

    def overlaps(span: tuple[datetime, datetime], outage: OutageWindow) -> bool:
        return span[0] < outage.end + GRACE and outage.start < span[1]

    detected, delays = [], []
    for outage in outages:
        hits = [s for s in spans.get(outage.institution_id, []) if overlaps(s, outage)]
        if hits:
            detected.append(outage)
            delays.append(min(s[0] for s in hits) - outage.start)
    everything = [(k, s) for k, found in spans.items() for s in found]
    true = [
        (k, s)
        for k, s in everything
        if any(o.institution_id == k and overlaps(s, o) for o in outages)
    ]
    down = [o for o in outages if o.severity == "down"]
    return Score(
        view.rule,
        len(outages),
        len(detected),
        len(down),
        sum(o.severity == "down" for o in detected),
        len(everything),
        len(true),
        tuple(delays),
    )


@pytest.mark.slow
def test_the_anomaly_detector_and_default_rules_on_planted_outages(store_url: str) -> None:
    with BankingPerformanceAnalytics.open(store_url) as analytics:

        def sink(event_type: EventType, chunk: pa.Table) -> None:
            outcome = analytics.ingest_arrow(chunk, event_type=event_type)
            assert outcome.count(EventStatus.REJECTED) == 0

        truth = run_simulation(WORLD, sink)
    outages = list(truth.outages)
    since = min(o.start for o in outages) - timedelta(days=1)
    until = min(max(o.end for o in outages) + timedelta(days=1), END)
    step = timedelta(minutes=30)
    rules = {rule.name: rule for rule in default_rules()}
    checked = [
        (Rule.from_dict(SYNC_ANOMALY), None, SYNCS),
        (rules["institution_success_rate_low"], step, LINKS),
        (rules["institution_sync_success_rate_low"], step, SYNCS),
    ]
    scores = {}
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        for rule, every, features in checked:
            view = analytics.monitor.backtest(rule, since, until, every)
            assert view.errors == 0
            hit = [o for o in outages if o.feature in features]
            scores[rule.name] = score(view, hit)
    print(f"\n{len(outages)} planted outages, {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M}")
    for found in scores.values():
        print(found.line())
    anomaly = scores["sync_success_anomaly"]
    # Stated floors (this world, both engines): the detector finds every "down" outage
    # that hits syncs, and at least half its firing episodes are planted outages.
    assert anomaly.down_planted >= 1
    assert anomaly.down_recall == 1.0
    assert anomaly.precision >= 0.5
    assert all(delay <= timedelta(hours=3) for delay in anomaly.delays)
    # The default sync rule finds every outage that hits syncs, each of its episodes one.
    syncs = scores["institution_sync_success_rate_low"]
    assert syncs.recall == 1.0
    assert syncs.precision == 1.0
    assert median(syncs.delays) <= timedelta(hours=1), syncs.delays
    assert all(delay <= timedelta(hours=4) for delay in syncs.delays), syncs.delays

"""Several evaluators on one store: a lease per rule. Two processes on the PostgreSQL
server evaluate the same rules on a clock the test moves: each tick of each rule is
recorded once, and when one process is killed the other takes its rules over as its
leases run out. In-process, on every engine: a tick recorded by another evaluator is
not recorded again, and leases pass to another owner only once they run out."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.monitor import Rule, RuleLeases
from test_monitor_evaluate import MINUTE, RULE, T0, hand_worked

CHILD = str(Path(__file__).with_name("lease_child.py"))
LEASE = timedelta(minutes=3)
RULES = [f"rule_{i}" for i in range(4)]


class Evaluator:
    """``lease_child.py`` in a process of its own; its lines read by a thread."""

    def __init__(self, url: str, clock: Path, owner: str) -> None:
        self.owner = owner
        self.proc = subprocess.Popen(
            [sys.executable, CHILD, url, str(clock), owner, str(LEASE.total_seconds())],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.evaluated: list[tuple[str, datetime]] = []
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, out: IO[str]) -> None:
        for line in out:
            self.lines.put(json.loads(line))

    def cycle_at(self, at: datetime) -> None:
        """Wait for its cycle at ``at`` (the clock was set to it) to be done."""
        while True:
            # A generous bound: only a process that died or hung reaches it.
            line = self.lines.get(timeout=120)
            self.evaluated += [(r, datetime.fromisoformat(t)) for r, t in line["evaluated"]]
            if datetime.fromisoformat(line["at"]) == at:
                return

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._reader.join()  # to the end of its output
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def test_two_processes_record_each_tick_once_and_one_takes_over_when_the_other_dies(
    postgres_store_url: str, tmp_path: Path
) -> None:
    url = postgres_store_url
    with BankingPerformanceAnalytics.open(url) as analytics:
        analytics.ingest(hand_worked())
        analytics.monitor.apply([Rule.from_dict({**RULE, "name": n}) for n in RULES], "test")
    clock = tmp_path / "clock"

    def move_to(minutes: int, *evaluators: Evaluator) -> None:
        at = T0 + minutes * MINUTE
        clock.write_text(at.isoformat())
        for evaluator in evaluators:
            evaluator.cycle_at(at)

    move_to(30)
    one, two = Evaluator(url, clock, "one"), Evaluator(url, clock, "two")
    try:
        for minute in range(30, 36):
            move_to(minute, one, two)
        with BankingPerformanceAnalytics.open(url) as analytics:
            holders = {
                row["rule_name"]: (row["owner"], row["expires_at"])
                for row in analytics.engine.query("SELECT * FROM alert_rule_leases").to_pylist()
            }
        assert set(holders) == set(RULES)
        # Kill the holder of rule_0 (with whatever else it holds); the other goes on.
        dead_owner = holders["rule_0"][0]
        dead, alive = (one, two) if dead_owner == "one" else (two, one)
        dead.kill()
        orphaned = {rule for rule, (owner, _) in holders.items() if owner == dead_owner}
        runs_out = {holders[rule][1] for rule in orphaned}
        for minute in range(36, 42):
            move_to(minute, alive)
    finally:
        for evaluator in (one, two):
            evaluator.kill()

    # While both ran, each tick of each rule was evaluated by exactly one of them.
    both = [(r, t) for r, t in one.evaluated + two.evaluated if t <= T0 + 35 * MINUTE]
    assert sorted(both) == sorted((r, T0 + m * MINUTE) for r in RULES for m in range(30, 36))
    # The survivor took the dead one's rules when their leases ran out (one lease period
    # at most after the last tick the dead one evaluated), and evaluated every tick since.
    [expiry] = runs_out
    assert T0 + 35 * MINUTE < expiry <= T0 + 35 * MINUTE + LEASE
    after = sorted((r, t) for r, t in alive.evaluated if t > T0 + 35 * MINUTE)
    kept = set(RULES) - orphaned
    expected = [(r, T0 + m * MINUTE) for r in kept for m in range(36, 42)]
    expected += [(r, t) for r in orphaned for t in _ticks(expiry, T0 + 41 * MINUTE)]
    assert after == sorted(expected)
    # And the store's history agrees: no instance recorded twice at one tick.
    with BankingPerformanceAnalytics.open(url) as analytics:
        rows = analytics.monitor.store.history(transitions_only=False, limit=10_000)
    recorded = Counter((h.rule_name, h.labels, h.evaluated_at) for h in rows)
    assert recorded, "nothing was recorded"
    assert [key for key, n in recorded.items() if n > 1] == []
    assert {(r, t) for r, _, t in recorded} == set(both) | set(after)


def _ticks(start: datetime, end: datetime) -> list[datetime]:
    return [start + k * MINUTE for k in range((end - start) // MINUTE + 1)]


def test_a_tick_another_evaluator_recorded_is_not_recorded_again(
    analytics: BankingPerformanceAnalytics,
) -> None:
    analytics.ingest(hand_worked())
    monitor = analytics.monitor
    monitor.apply([Rule.from_dict(RULE)], "test")
    at = T0 + 30 * MINUTE
    assert [r.rule_name for r in monitor.evaluate(at, once_per_tick=True)] == ["success_low"]
    # A second evaluator whose lease ran out mid-evaluation would save the same tick.
    assert monitor.evaluate(at, once_per_tick=True) == []
    rows = monitor.history(transitions_only=False)
    assert len(rows) == 3
    # An evaluation asked for by hand at the same time is recorded (the default).
    assert len(monitor.evaluate(at)) == 1
    assert len(monitor.history(transitions_only=False)) == 6


def test_a_lease_passes_to_another_owner_only_once_it_runs_out(
    analytics: BankingPerformanceAnalytics,
) -> None:
    engine, lease = analytics.engine, timedelta(seconds=30)
    first, second = RuleLeases(engine, "first", lease), RuleLeases(engine, "second", lease)
    at = T0
    assert first.hold(["a", "b"], at) == {"a", "b"}
    assert second.hold(["a", "b", "c"], at) == {"c"}
    # Renewed once half the period has gone: still the first's 20 s later, and after.
    assert first.hold(["a", "b"], at + timedelta(seconds=20)) == {"a", "b"}
    assert second.hold(["a", "b"], at + timedelta(seconds=45)) == set()
    # Not renewed (the first stopped): the second takes them when they run out.
    assert second.hold(["a", "b"], at + timedelta(seconds=50)) == {"a", "b"}
    assert first.hold(["a", "b"], at + timedelta(seconds=51)) == set()
    # Released: free at once.
    second.release()
    assert first.hold(["a", "b", "c"], at + timedelta(seconds=52)) == {"a", "b", "c"}

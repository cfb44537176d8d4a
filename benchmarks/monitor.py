"""One evaluation cycle of 200 alert rules (about 2,000 instances) over the dashboard's
~10M-event world on DuckDB: the evaluator with the metric cache, cold, against the naive
way, each rule's query run uncached one by one.

The rules are a realistic mix: rates, latencies, counts and a freshness age over the
connection, sync and behaviour events, cut by institution, aggregator, feature or platform
(or not at all), over 30 minutes to a day; some compare with the window before; and, as
rule sets do, some rules ask the same question as another with other thresholds or
as a ``no_data`` rule, which the cache answers once. Both sides run the whole cycle
(read the instances, run the queries, advance every instance, store them and the
history), interleaved over one open store, each from an empty result cache with the
statements compiled afresh; they must reach the same states.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.metrics import CATALOG, MetricService, Ratio, Rolling, Unit
from banking_analytics.metrics._compile import _compile_shape
from banking_analytics.monitor import (
    AlertStore,
    Compare,
    Evaluator,
    Rule,
    RuleError,
    StoredRule,
)
from benchmarks.run import (
    DASHBOARD_USERS,
    END,
    RUNS,
    BenchmarkError,
    Context,
    Measurement,
    Sample,
    repeat,
    simulate_store,
)

RULES = 200
#: Of them, rules asking another's question (other thresholds, or no_data).
SHARED = 40
SEED = 17
WINDOWS = ("30m", "1h", "6h", "1d")
#: Each cut with how many rules use it: ~50 institutions x 24 + 5 aggregators x 50 + ...
CUTS: tuple[tuple[tuple[str, ...], int], ...] = (
    (("institution",), 24),
    (("aggregator",), 50),
    (("feature",), 46),
    (("aggregator", "feature"), 10),
    (("platform",), 10),
    ((), 20),
)


def _metrics() -> list[str]:
    """Every catalogue metric a rule may watch: computed over one event source, not a
    rolling count (which needs a day bucket)."""
    return [
        m.name
        for m in CATALOG.values()
        if m.source is not None
        and not isinstance(m.measure, Rolling)
        and m.unit is not Unit.MINOR_UNITS
        and m.name != "new_users"
    ]


def _rule(name: str, metric: str, by: tuple[str, ...], window: str, rng: random.Random) -> Rule:
    found = CATALOG[metric]
    base: dict[str, Any] = {"name": name, "metric": metric, "window": window, "by": list(by)}
    if found.unit is Unit.TIMESTAMP:
        return Rule.from_dict({**base, "condition": "above", "warning": "2h", "critical": "6h"})
    if rng.random() < 0.15:
        return Rule.from_dict(
            {**base, "condition": "above", "compare": "change_percent", "critical": 50}
        )
    if isinstance(found.measure, Ratio) and found.unit is Unit.RATIO:
        if found.higher_is_better:
            return Rule.from_dict({**base, "condition": "below", "warning": 0.9, "critical": 0.5})
        return Rule.from_dict({**base, "condition": "above", "warning": 0.05, "critical": 0.2})
    return Rule.from_dict({**base, "condition": "above", "critical": 10**9, "for": "5m"})


def rule_set() -> list[Rule]:
    """200 rules: 160 questions of their own, 40 asking one of theirs again."""
    rng = random.Random(SEED)
    metrics = _metrics()
    rules: list[Rule] = []
    for by, count in CUTS:
        made = 0
        while made < count * (RULES - SHARED) // RULES:
            metric, window = rng.choice(metrics), rng.choice(WINDOWS)
            try:
                rules.append(_rule(f"r{len(rules):03d}", metric, by, window, rng))
            except RuleError:
                continue  # a cut this metric's source does not have
            made += 1
    while len(rules) < RULES - SHARED:
        rules.append(_rule(f"r{len(rules):03d}", "connection_success_rate", (), "1h", rng))
    for index in range(SHARED):
        twin = rules[rng.randrange(RULES - SHARED)].as_dict()
        twin["name"] = f"r{RULES - SHARED + index:03d}"
        if index % 2:
            for key in ("warning", "critical", "compare", "for"):
                twin.pop(key, None)
            twin["condition"] = "no_data"
        else:
            twin["annotations"] = {"summary": "{{ $labels.institution }}: {{ $value }}"}
            twin["labels"] = {"team": "second"}
        rules.append(Rule.from_dict(twin))
    return rules


def _cycle(
    analytics: BankingPerformanceAnalytics,
    stored: list[StoredRule],
    cache_size: int,
    states: list[dict[tuple[str, tuple[tuple[str, str], ...]], str]],
    events: int,
) -> Sample:
    """One cold cycle: statements compiled afresh, results cached (or not) from empty."""
    _compile_shape.cache_clear()
    metrics = MetricService(analytics.engine, cache_size=cache_size)
    store = AlertStore(analytics.engine)
    evaluator = Evaluator(metrics, store)
    started = time.perf_counter()
    evaluator.evaluate(stored, END)
    seconds = time.perf_counter() - started
    states.append({(i.rule_name, i.labels): i.state.state.value for i in store.instances()})
    return Sample(seconds, events)


def monitor(ctx: Context) -> tuple[list[Measurement], list[str]]:
    users = DASHBOARD_USERS // 10 if ctx.quick else DASHBOARD_USERS
    ctx.reporter.start("monitor", 2 + 2 * RUNS)
    url = f"duckdb:///{ctx.tmp}/monitor.duckdb"
    events = simulate_store(ctx, url, users)
    rules = rule_set()
    with BankingPerformanceAnalytics.open(url) as analytics:
        stored = analytics.monitor.apply(rules, "benchmark")
        # The first cycle makes the instances; the measured ones advance them.
        first = analytics.monitor.evaluate(END, stored)
        errors = [r for r in first if r.error]
        if errors:
            raise BenchmarkError(f"monitor: {errors[0].rule_name}: {errors[0].error}")
        instances = sum(r.instances for r in first)
        ctx.reporter.step(f"{len(rules)} rules, {instances:,} instances")
        states: dict[str, list[dict[Any, str]]] = {"cached": [], "naive": []}
        shared = _shared_statements(analytics, stored)

        def cached(_: Path) -> Sample:
            return _cycle(analytics, stored, 512, states["cached"], events)

        def naive(_: Path) -> Sample:
            return _cycle(analytics, stored, 0, states["naive"], events)

        ours: list[Sample] = []
        theirs: list[Sample] = []
        for _ in range(RUNS):
            ours += repeat(ctx, "monitor cached", cached, runs=1)
            theirs += repeat(ctx, "monitor naive", naive, runs=1)
    reference = states["cached"][0]
    for side, found in states.items():
        if any(s != reference for s in found):
            raise BenchmarkError(f"monitor: the {side} cycle reached other states")
    mine = Measurement(
        "one cycle, metric cache (cold: empty, statements compiled afresh)",
        tuple(ours),
        max_seconds=None if ctx.quick else 1.0,
        show_rate=False,
    )
    naive_measure = Measurement(
        "baseline: one cycle, each rule's query run uncached, one by one",
        tuple(theirs),
        show_rate=False,
    )
    notes = [
        f"{events:,} events over 90 days (`simulate --users {users:,}`); {len(rules)} rules "
        f"({len(rules) - SHARED} questions of their own, {SHARED} asking one of theirs again "
        f"with other thresholds or as no_data), {instances:,} instances, evaluated at the "
        f"world's end; {shared} of the cycle's statements repeat another's. Both sides run "
        "the whole cycle (instances read, queries, state machines, instances and history "
        "written) and reached the same states.",
        f"The naive way takes {naive_measure.seconds / mine.seconds:.2f}x the cached cycle's "
        f"time ({naive_measure.seconds:.2f} s against {mine.seconds:.2f} s; target ≤ 1 s).",
    ]
    return [mine, naive_measure], notes


def _shared_statements(analytics: BankingPerformanceAnalytics, stored: list[StoredRule]) -> int:
    """How many statements of a cycle are the same as another's (the cache's saving)."""
    metrics = MetricService(analytics.engine)
    seen: set[tuple[str, tuple[object, ...]]] = set()
    total = 0
    for one in stored:
        rule = one.rule
        assert isinstance(rule, Rule)
        query = rule.query(END)
        asked = [query]
        if rule.compare is not Compare.VALUE:
            asked.append(query.with_window(query.window.previous()))
        for query in asked:
            for statement in metrics.compile(query):
                total += 1
                seen.add((statement.sql, statement.params))
    return total - len(seen)

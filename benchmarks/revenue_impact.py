"""The upgrade model over a 100,000-user simulated world: its time and peak memory, and how
well it recovers the upgrade effects the simulator planted.

    python -m benchmarks.revenue_impact URL START END   (one cold run; prints JSON)

Each run is a fresh process that opens the store and fits the model (the SQL that builds
the cells, then the GLM). It also fits an *oracle*: the same statement with each feature's
adoption day taken from the simulator's own adoption times (``build_world``: link time +
adoption delay; add-product features at their successful add-product attempt) instead of
the first behaviour event: the difference between the two is what observing adoption
only at first use costs. The oracle is hand-written DuckDB over a table of those times.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from sqlglot import exp

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.analytics.revenue import RevenueImpactAnalysis
from banking_analytics.analytics.revenue._effect_model import Cells, Effect, fit_effects
from banking_analytics.analytics.revenue._impact import FEATURES
from banking_analytics.analytics.revenue._impact_sql import model_cells
from banking_analytics.metrics import TimeWindow, renderer_for
from banking_analytics.simulate import GroundTruth, SimulationConfig
from banking_analytics.simulate._world import build_world
from benchmarks.run import (
    END,
    RUNS,
    BenchmarkError,
    Context,
    Measurement,
    Sample,
    parse_count,
    repeat,
    run_command,
)

USERS = 100_000
DAYS = 90
SEED = 7
#: Product features: adopted when their add-product flow succeeds (no delay from the link).
_PRODUCTS = ("investment_tracking", "credit_monitoring")


def _effects(effects: dict[str, Effect]) -> dict[str, list[float | None]]:
    return {f: [e.hazard_ratio, e.ci_low, e.ci_high] for f, e in effects.items()}


def _oracle_firsts() -> exp.Query:
    """Per user, each feature's true adoption day (``f0``...): adopted on day d when the
    simulator's adoption time is at most d's start, i.e. ``ceil(t / 86400) - 1 < d``."""
    columns = []
    for i, feature in enumerate(FEATURES):
        moment = f"products.p{i}" if feature in _PRODUCTS else f"links.lt + truth.d{i}"
        columns.append(f"CAST(CEIL(({moment}) / 86400) AS BIGINT) - 1 AS f{i}")
    products = ", ".join(
        f"MIN(epoch(occurred_at)) FILTER (WHERE feature = '{f}') AS p{FEATURES.index(f)}"
        for f in _PRODUCTS
    )
    sql = f"""
        SELECT links.user_id, {", ".join(columns)}
        FROM (SELECT user_id, MIN(epoch(occurred_at)) AS lt FROM connection_attempt_events
              WHERE flow = 'new' AND outcome = 'success' GROUP BY user_id) AS links
        JOIN truth USING (user_id)
        LEFT JOIN (SELECT user_id, {products} FROM connection_attempt_events
                   WHERE flow = 'add_product' AND outcome = 'success' GROUP BY user_id)
             AS products USING (user_id)
    """
    return exp.maybe_parse(sql, dialect="duckdb")  # type: ignore[return-value]


def oracle(path: str, window: TimeWindow, config: SimulationConfig) -> dict[str, Effect]:
    """The model's effects with the simulator's true adoption days (see the module)."""
    world = build_world(config)
    delays = world.users.adopt_delay
    truth = pa.table(
        {
            "user_id": world.users.ids,
            # Never adopted (an infinite delay): null.
            **{
                f"d{i}": pa.array(delays[:, i], mask=~np.isfinite(delays[:, i]))
                for i in range(len(FEATURES))
            },
        }
    )
    renderer = renderer_for("duckdb")
    query = model_cells(renderer, FEATURES)
    [firsts] = [cte for cte in query.find_all(exp.CTE) if cte.alias == "firsts"]
    firsts.set("this", _oracle_firsts())
    sql = renderer.sql(query)
    s, e = window.start, window.end
    # The statement's placeholders with the first-use CTE's two (the window) left out.
    params = [e, s, s, e, s, e, s, e, e, s, e]
    with duckdb.connect(path) as con:
        con.register("truth", truth)
        cells = con.execute(sql, params).to_arrow_table().to_pylist()
    table = Cells.from_rows(cells, len(FEATURES))
    return dict(zip(FEATURES, fit_effects(table), strict=True))


def main(argv: list[str]) -> int:
    url, start, end = argv[0], datetime.fromisoformat(argv[1]), datetime.fromisoformat(argv[2])
    window = TimeWindow(start, end)
    with BankingPerformanceAnalytics.open(url) as analytics:
        clock = time.perf_counter()
        model = RevenueImpactAnalysis(analytics.metrics).upgrade_model(window)
        seconds = time.perf_counter() - clock
    answer: dict[str, Any] = {
        "seconds": seconds,
        "users": model.users,
        "cells": model.cells,
        "effects": _effects(model.effects),
    }
    if len(argv) > 3:
        config = SimulationConfig(users=int(argv[3]), days=DAYS, seed=SEED, end=end)
        answer["oracle"] = _effects(oracle(url.removeprefix("duckdb:///"), window, config))
    print(json.dumps(answer))
    return 0


def _covers(estimate: list[float | None], planted: float) -> bool:
    _, low, high = estimate
    return low is not None and high is not None and low <= planted <= high


def _top3(effects: dict[str, list[float | None]]) -> set[str]:
    known = {f: e[0] for f, e in effects.items() if e[0] is not None}
    return set(sorted(known, key=known.__getitem__)[-3:])


def _show(estimate: list[float | None]) -> str:
    ratio, low, high = estimate
    if ratio is None or low is None or high is None:
        return "insufficient data"
    return f"{ratio:.2f} [{low:.2f}, {high:.2f}]"


def revenue_impact(ctx: Context) -> tuple[list[Measurement], list[str]]:
    users = USERS // 10 if ctx.quick else USERS
    ctx.reporter.start("revenue_impact", 2 + RUNS)
    url = f"duckdb:///{ctx.tmp}/impact.duckdb"
    manifest = ctx.tmp / "truth.json"
    cmd = [
        str(Path(sys.executable).with_name("banking-analytics")),
        "simulate",
        *("--users", str(users), "--days", str(DAYS), "--seed", str(SEED)),
        *("--end", END.isoformat(), "--manifest", str(manifest), "--db", url),
    ]
    seconds, _, stdout = run_command(cmd, ctx.tmp)
    events = parse_count(r"stored\s+([\d,]+)\s+events", stdout)
    ctx.reporter.step(f"simulated {events:,} events ({users:,} users) in {seconds:.0f} s")
    truth = GroundTruth.read(manifest)
    start = END - timedelta(days=DAYS)
    answers: list[dict[str, Any]] = []

    def once(run_dir: Path) -> Sample:
        module = [sys.executable, "-m", "benchmarks.revenue_impact"]
        _, rss, out = run_command([*module, url, start.isoformat(), END.isoformat()], run_dir)
        answers.append(json.loads(out.strip().splitlines()[-1]))
        return Sample(answers[-1]["seconds"], events, rss)

    samples = repeat(ctx, "upgrade model", once)
    module = [sys.executable, "-m", "benchmarks.revenue_impact"]
    _, _, out = run_command([*module, url, start.isoformat(), END.isoformat(), str(users)], ctx.tmp)
    checked = json.loads(out.strip().splitlines()[-1])
    ctx.reporter.step("fitted the oracle (true adoption days)")
    if any(a["effects"] != answers[0]["effects"] for a in answers):
        raise BenchmarkError("the runs fitted different effects on the same store")
    planted = truth.feature_upgrade_effects
    effects, oracle_effects = answers[0]["effects"], checked["oracle"]
    covered = [f for f in FEATURES if _covers(effects[f], planted[f])]
    oracle_covered = [f for f in FEATURES if _covers(oracle_effects[f], planted[f])]
    top = set(sorted(planted, key=planted.__getitem__)[-3:])
    measurement = Measurement(
        "upgrade model (SQL cells + cloglog GLM), cold process",
        tuple(samples),
        max_seconds=None if ctx.quick else 30,
        show_rate=False,
    )
    notes = [
        f"World: `simulate --users {users:,} --days {DAYS} --seed {SEED}` ({events:,} events); "
        f"model over the users who linked in the 90 days: {answers[0]['users']:,} users, "
        f"{answers[0]['cells']:,} cells. Seconds are the model's (SQL + fit) inside each "
        "process; peak RSS the whole process's.",
        f"95% intervals covering the planted ratio: {len(covered)} of 10 "
        f"({', '.join(covered)}); target ≥ 8. Three largest planted ({', '.join(sorted(top))}) "
        f"= three largest estimates: {_top3(effects) == top}.",
        f"Oracle (the same model and risk set, adoption days from the simulator's true adoption "
        f"times): {len(oracle_covered)} of 10 cover; three largest match: "
        f"{_top3(oracle_effects) == top}. The gap is the lag between adopting a feature and "
        "its first recorded use, which the product can only see.",
        "Per feature (planted: first-use estimate; oracle): "
        + "; ".join(
            f"{f} {planted[f]:g}: {_show(effects[f])}; {_show(oracle_effects[f])}" for f in FEATURES
        )
        + ".",
    ]
    return [measurement], notes


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

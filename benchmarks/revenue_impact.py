"""The upgrade model over a 100,000-user simulated world: its time and peak memory, and how
well it recovers the upgrade effects the simulator planted.

    python -m benchmarks.revenue_impact URL START END   (one cold run; prints JSON)

Each run is a fresh process that opens the store and fits the model (the SQL that builds
the cells, then the GLM). The simulator plants each feature's effect from the user's first
use of it, which the data shows: the estimates are checked against the planted ratios.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.analytics.revenue import RevenueImpactAnalysis
from banking_analytics.analytics.revenue._effect_model import Effect
from banking_analytics.analytics.revenue._impact import FEATURES
from banking_analytics.metrics import TimeWindow
from banking_analytics.simulate import GroundTruth
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


def _effects(effects: dict[str, Effect]) -> dict[str, list[float | None]]:
    return {f: [e.hazard_ratio, e.ci_low, e.ci_high] for f, e in effects.items()}


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
    if any(a["effects"] != answers[0]["effects"] for a in answers):
        raise BenchmarkError("the runs fitted different effects on the same store")
    planted = truth.feature_upgrade_effects
    effects = answers[0]["effects"]
    covered = [f for f in FEATURES if _covers(effects[f], planted[f])]
    top = set(sorted(planted, key=planted.__getitem__)[-3:])
    measurement = Measurement(
        "upgrade model (SQL cells + cloglog GLM), cold process",
        tuple(samples),
        max_seconds=None if ctx.quick else 30,
        show_rate=False,
    )
    notes = [
        f"World: `simulate --users {users:,} --days {DAYS} --seed {SEED} --end "
        f"{END.isoformat()}` ({events:,} events); "
        f"model over the users who linked in the 90 days: {answers[0]['users']:,} users, "
        f"{answers[0]['cells']:,} cells. Seconds are the model's (SQL + fit) inside each "
        "process; peak RSS the whole process's.",
        f"95% intervals covering the planted ratio: {len(covered)} of 10 "
        f"({', '.join(covered)}); target ≥ 8. Three largest planted ({', '.join(sorted(top))}) "
        f"= three largest estimates: {_top3(effects) == top}.",
        "Per feature (planted: estimate [95% interval]): "
        + "; ".join(f"{f} {planted[f]:g}: {_show(effects[f])}" for f in FEATURES)
        + ".",
    ]
    return [measurement], notes


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The performance dashboard's queries, through the metric layer or recomputed in pandas.

    python -m benchmarks.dashboard URL {engine,engine-loaded,engine-full,pandas,warm} \
        --period 90d --now ISO

Runs in its own process (so the parent can read its peak memory) and prints
one JSON line. ``engine`` and ``pandas`` compute the set the target is set for,
``engine-full`` the whole ``performance_dashboard`` (sync freshness too). Each
prints ``seconds`` spent computing (cold: a
freshly opened store and an empty result cache), ``load_seconds`` (pandas only:
reading the two tables into DataFrames, not counted in ``seconds``), and a few
headline figures the parent compares between the variants. ``engine-loaded`` is
the engine's side of pandas' "tables already in memory": the same set computed
once, untimed, through another handle on the store (so DuckDB holds the blocks in
its buffer pool, as pandas holds its DataFrames), then timed through a handle
whose result cache is empty, with the compiled statements forgotten, so every
statement is compiled and runs again. ``warm``: the first
and the median of 20 repeated ``analyze_connection_performance(period)`` calls,
then whether one new event changes the answer (the cache must not serve it).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.analytics import (
    PRODUCTS,
    STEP,
    WARM_UP_STEPS,
    HealthThresholds,
    PerformanceNamespace,  # noqa: F401  # imported before the clock, like every other module
    judge_steps,
)
from banking_analytics.metrics import TimeWindow, parse_time_period
from banking_analytics.metrics._compile import _compile_shape
from banking_analytics.metrics._service import _versions_sql
from banking_analytics.metrics._statement import _render

HEALTH_LOOKBACK = timedelta(days=7)
INSTITUTION = {"institution"}
AGGREGATOR = {"aggregator", "network_timeout"}
CLIENT = {"integration", "rate_limited"}


#: The set the target is set for: success rate with breakdown, latency percentiles, error
#: rates by category, per feature, per institution, hourly series, institution health.
TARGET_PARTS = ("connection", "hourly", "errors", "institution_health")


def engine_dashboard(
    analytics: BankingPerformanceAnalytics, window: TimeWindow, parts: tuple[str, ...] | None
) -> dict[str, Any]:
    board = analytics.performance_dashboard(window, health_lookback="7d", parts=parts)
    latency = board["connection"]["latency"]
    return {
        "success_rate": board["connection"]["success_rate"]["average"],
        "p95_ms": latency["p95_ms"],
        "institutions": len(board["connection"]["by_institution"]),
        "health_entries": len(board["institution_health"]["products"]),
    }


def nearest_rank(frame: pd.DataFrame, keys: list[str], value: str, q: float) -> pd.Series:
    """Per group, the ceil(q·n)-th smallest non-null ``value`` (n = the group's count)."""
    valid = frame.dropna(subset=[value]).sort_values([*keys, value] if keys else [value])
    if not keys:
        n = len(valid)
        return pd.Series([valid[value].iloc[math.ceil(q * n) - 1] if n else np.nan])
    grouped = valid.groupby(keys, sort=False)
    rank = grouped.cumcount() + 1
    size = grouped[value].transform("size")
    picked = valid[rank == np.ceil(q * size)]
    return picked.set_index(keys)[value]


def connection_figures(a: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    failure = a.outcome == "failure"
    flags = pd.DataFrame(
        {
            "success": a.outcome == "success",
            "institution_failure": failure & a.error_category.isin(INSTITUTION),
            "aggregator_failure": failure & a.error_category.isin(AGGREGATOR),
            "user": failure & (a.error_category == "user_action_required"),
            "client": failure & a.error_category.isin(CLIENT),
            "abandoned": a.outcome == "abandoned",
            "pending": a.outcome == "pending",
            "attempts": True,
        }
    )
    flags["health"] = flags.success | flags.institution_failure | flags.aggregator_failure
    frame = pd.concat([a[keys], flags], axis=1)
    sums = frame.groupby(keys).sum() if keys else frame.sum().to_frame().T
    sums["success_rate"] = sums.success / sums.health
    sums["institution_share"] = sums.institution_failure / sums.health
    completed = a.assign(latency=a.latency_ms.where(a.outcome.isin(["success", "failure"])))
    for q in (0.5, 0.95, 0.99):
        picked = nearest_rank(completed, keys, "latency", q)
        sums[f"p{round(q * 100)}"] = picked if keys else picked.iloc[0]
    sums["mean_ms"] = completed.groupby(keys).latency.mean() if keys else completed.latency.mean()
    return sums


def pandas_dashboard(
    attempts: pd.DataFrame, syncs: pd.DataFrame, window: TimeWindow
) -> dict[str, Any]:
    inside = attempts[(attempts.occurred_at >= window.start) & (attempts.occurred_at < window.end)]
    previous = window.previous()
    before = attempts[
        (attempts.occurred_at >= previous.start) & (attempts.occurred_at < previous.end)
    ]
    overall = connection_figures(inside, [])
    connection_figures(before, [])
    success_only = inside.assign(latency=inside.latency_ms.where(inside.outcome == "success"))
    for q in (0.5, 0.95, 0.99):
        nearest_rank(success_only, [], "latency", q)
    sessions = inside.link_session_id.nunique()
    linked = inside.link_session_id[inside.outcome == "success"].nunique()
    by = {
        key: connection_figures(inside, [column])
        for key, column in (
            ("aggregator", "aggregator"),
            ("institution", "institution_id"),
            ("feature", "feature"),
        )
    }
    for bucket in ("D", "h"):
        connection_figures(inside.assign(bucket=inside.occurred_at.dt.floor(bucket)), ["bucket"])
    sync_inside = syncs[(syncs.occurred_at >= window.start) & (syncs.occurred_at < window.end)]
    for frame in (inside, sync_inside):
        failed = frame[frame.outcome == "failure"]
        failed.groupby("error_category", dropna=False).size() / len(frame)
    health = pandas_health(attempts, syncs, window.end)
    return {
        "success_rate": float(overall.success_rate.iloc[0]),
        "p95_ms": float(overall.p95.iloc[0]),
        "link_conversion": linked / sessions if sessions else None,
        "institutions": len(by["institution"]),
        "health_entries": health,
    }


def pandas_health(attempts: pd.DataFrame, syncs: pd.DataFrame, end: datetime) -> int:
    start = end - HEALTH_LOOKBACK - WARM_UP_STEPS * STEP
    steps = int((end - start) / STEP)
    frames = []
    for frame, product in ((attempts, None), (syncs, "feature")):
        part = frame[(frame.occurred_at >= start) & (frame.occurred_at < end)]
        ok = part.outcome.isin(["success", "partial"])
        bad = (part.outcome == "failure") & part.error_category.isin(INSTITUTION | AGGREGATOR)
        counted = pd.DataFrame(
            {
                "institution": part.institution_id,
                "aggregator": part.aggregator,
                "product": (
                    part.feature.map({f.value: p.value for f, p in PRODUCTS.items()})
                    if product
                    else "item_logins"
                ),
                "step": ((part.occurred_at - start) / STEP).astype(int),
                "successes": ok.astype(int),
                "total": (ok | bad).astype(int),
            }
        )
        frames.append(counted)
    counts = pd.concat(frames).groupby(["institution", "aggregator", "product", "step"]).sum()
    entities = counts.index.droplevel("step").unique()
    grid_s = np.zeros((len(entities), steps), dtype=np.int64)
    grid_n = np.zeros_like(grid_s)
    rows = entities.get_indexer(counts.index.droplevel("step"))
    cols = counts.index.get_level_values("step").to_numpy()
    np.add.at(grid_s, (rows, cols), counts.successes.to_numpy())
    np.add.at(grid_n, (rows, cols), counts.total.to_numpy())
    judge_steps(grid_s, grid_n, HealthThresholds())
    return len(entities)


def load(analytics: BankingPerformanceAnalytics) -> tuple[pd.DataFrame, pd.DataFrame]:
    def table(name: str, columns: str) -> pd.DataFrame:
        frame: pd.DataFrame = analytics.engine.query(f"SELECT {columns} FROM {name}").to_pandas()
        return frame

    attempts = table(
        "connection_attempt_events",
        "occurred_at, outcome, error_category, latency_ms, link_session_id, aggregator, "
        "institution_id, feature",
    )
    syncs = table(
        "sync_run_events",
        "occurred_at, outcome, error_category, institution_id, aggregator, feature, "
        "connection_id, expected_interval_s",
    )
    return attempts, syncs


def warm(analytics: BankingPerformanceAnalytics, window: TimeWindow) -> dict[str, Any]:
    started = time.perf_counter()
    first = analytics.analyze_connection_performance(window)
    cold = time.perf_counter() - started
    runs = []
    for _ in range(20):
        started = time.perf_counter()
        again = analytics.analyze_connection_performance(window)
        runs.append(time.perf_counter() - started)
    analytics.record_connection_attempt(
        user_id="bench",
        attempt_id="bench-1",
        aggregator="plaid",
        institution_id="ins_bench",
        feature="account_linking",
        flow="new",
        started_at=(window.end - timedelta(minutes=2)).isoformat(),
        occurred_at=(window.end - timedelta(minutes=1)).isoformat(),
        outcome="success",
        latency_ms=1000.0,
    )
    after = analytics.analyze_connection_performance(window)
    return {
        "cold": cold,
        "seconds": float(np.median(runs)),
        "same_while_unchanged": again == first,
        "changed_by_new_event": after["attempts"] == first["attempts"] + 1,
    }


def _clock_start() -> float:
    """Start the clock after a full garbage collection, as pyperf and timeit do.

    A fresh process has never collected the objects its imports made (here about
    90,000); its first full collection (40-50 ms on this kind of machine) would
    otherwise fall on whichever side happens to allocate first after start-up. The
    collector stays on while the clock runs.
    """
    gc.collect()
    return time.perf_counter()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dashboard")
    parser.add_argument("url")
    parser.add_argument(
        "variant", choices=["engine", "engine-loaded", "engine-full", "pandas", "warm"]
    )
    parser.add_argument("--period", default="90d")
    parser.add_argument("--now", required=True, type=datetime.fromisoformat)
    args = parser.parse_args(argv)
    window = parse_time_period(args.period, args.now)
    # pyarrow loads its pandas shim on first converting a Python value (0.2 s when pandas
    # is installed, as in the dev environment); that is import time, not query time.
    pa.scalar("warm-up")
    with BankingPerformanceAnalytics.open(args.url) as analytics:
        if args.variant == "warm":
            print(json.dumps(warm(analytics, window)))
            return 0
        load_seconds = None
        if args.variant.startswith("engine"):
            parts = None if args.variant == "engine-full" else TARGET_PARTS
            if args.variant == "engine-loaded":
                # A second handle shares the open database (and its buffer pool) but
                # not the result cache.
                with BankingPerformanceAnalytics.open(args.url) as loader:
                    engine_dashboard(loader, window, parts)
                # Compiled statements are forgotten too: only the data stays loaded.
                _compile_shape.cache_clear()
                _render.cache_clear()
                _versions_sql.cache_clear()
            started = _clock_start()
            figures = engine_dashboard(analytics, window, parts)
        else:
            started = time.perf_counter()
            attempts, syncs = load(analytics)
            load_seconds = time.perf_counter() - started
            started = _clock_start()
            figures = pandas_dashboard(attempts, syncs, window)
        seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "load_seconds": load_seconds, **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

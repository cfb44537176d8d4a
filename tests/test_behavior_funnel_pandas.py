"""An ordered funnel with a breakdown over a simulated world, against pandas, on every engine.

The pandas version chains each step-1 event to the next step's first later event with
``merge_asof`` (forward, exact matches excluded: times are distinct per user), keeps
each user's best path, labels it by the start's platform (the two commonest kept)
and aggregates: an independent route to the same figures.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.analytics.behavior import EventStep, FunnelQuery
from behavior_flows_fixtures import (  # noqa: F401 (a fixture)
    NODES,
    WORLD_START,
    module_analytics,
    module_world,
    nearest_rank,
)

STEPS = ["L", "S", "B"]
WINDOW = timedelta(days=3)
KEPT = 2


def pandas_funnel(world: pd.DataFrame) -> dict[str | None, dict[str, object]]:
    by_kind = {k: world[world.kind == k].sort_values("t") for k in STEPS}
    paths = by_kind["L"][["user", "t", "platform"]].rename(columns={"t": "t1"})
    paths["prev"] = paths["t1"]
    for i, kind in enumerate(STEPS[1:], 2):
        nexts = by_kind[kind][["user", "t"]].rename(columns={"t": f"t{i}"})
        alive = paths.prev.notna()  # a path that found no previous step finds no more
        chained = pd.merge_asof(
            paths[alive].sort_values("prev"),
            nexts.assign(at=nexts[f"t{i}"]).sort_values("at"),
            left_on="prev",
            right_on="at",
            by="user",
            direction="forward",
            allow_exact_matches=False,
        ).drop(columns="at")
        paths = pd.concat([chained, paths[~alive].assign(**{f"t{i}": pd.NaT})])
        paths[f"t{i}"] = pd.to_datetime(paths[f"t{i}"], utc=True)
        paths["prev"] = paths[f"t{i}"]
    reached = 1
    for i in range(2, len(STEPS) + 1):
        reached = reached + ((paths[f"t{i}"] - paths["t1"]) <= WINDOW).astype(int)
    paths["steps"] = reached
    best = paths.sort_values(["user", "steps", "t1"], ascending=[True, False, True])
    best = best.drop_duplicates("user")
    counts = best.dropna(subset=["platform"]).groupby("platform").size().reset_index(name="n")
    kept = set(counts.sort_values(["n", "platform"], ascending=[False, True]).platform[:KEPT])
    best["label"] = [
        "(none)" if p is None or pd.isna(p) else p if p in kept else "(other)"
        for p in best.platform
    ]
    found: dict[str | None, dict[str, object]] = {}
    for label, group in [(None, best), *best.groupby("label")]:
        seconds = {
            i: ((group[f"t{i}"] - group[f"t{i - 1}"]).dt.total_seconds())[group.steps >= i]
            for i in range(2, len(STEPS) + 1)
        }
        converted = (group["t3"] - group["t1"]).dt.total_seconds()[group.steps == 3]
        found[label] = {
            "users": [int((group.steps >= i).sum()) for i in range(1, len(STEPS) + 1)],
            "medians": [nearest_rank(list(seconds[i]), 0.5) for i in seconds],
            "means": [seconds[i].mean() if len(seconds[i]) else None for i in seconds],
            "p90": nearest_rank(list(converted), 0.9),
        }
    return found


def test_ordered_funnel_with_breakdown_equals_pandas(
    module_analytics: BankingPerformanceAnalytics,  # noqa: F811
    module_world: pd.DataFrame,  # noqa: F811
) -> None:
    query = FunnelQuery(
        steps=tuple(EventStep("behavior", *NODES[k]) for k in STEPS),
        conversion_window=WINDOW,
        breakdown="platform",
        breakdown_limit=KEPT,
        date_from=WORLD_START,
        date_to=WORLD_START + timedelta(days=40),
    )
    expected = pandas_funnel(module_world)
    got = {
        s.breakdown_value: {
            "users": [st.users for st in s.steps],
            "medians": [st.median_seconds_from_previous for st in s.steps[1:]],
            "means": [st.mean_seconds_from_previous for st in s.steps[1:]],
            "p90": s.time_to_convert.percentiles["p90"],
        }
        for s in module_analytics.funnel(query).series
    }
    assert set(got) == set(expected)
    for label, figures in expected.items():
        assert got[label]["users"] == figures["users"], label
        assert got[label]["medians"] == figures["medians"], label
        assert got[label]["means"] == pytest.approx(figures["means"]), label
        assert got[label]["p90"] == figures["p90"], label
    assert expected[None]["users"][2] > 5  # the world makes a funnel worth comparing

"""Retention grids over a simulated world, against pandas, on every engine.

Start event: linking opened; return event: spending analysis viewed; London weeks.
pandas numbers each event's week from its local date, builds the cohorts (every week
with a start event, or the first one's), and counts returns with group-bys.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.analytics.behavior import (
    EventStep,
    RetentionCriterion,
    RetentionKind,
    RetentionQuery,
)
from behavior_flows_fixtures import (  # noqa: F401 (a fixture)
    NODES,
    WORLD_START,
    module_analytics,
    module_world,
)

ZONE = "Europe/London"
START = WORLD_START + timedelta(days=2)  # some first starts fall before the range
END = START + timedelta(weeks=3, days=2)


def week(times: pd.Series) -> pd.Series:
    local = times.dt.tz_convert(ZONE).dt.tz_localize(None).dt.normalize()
    return (local - pd.to_timedelta(local.dt.day_of_week, unit="D")).map(
        lambda d: d.toordinal() // 7
    )


def pandas_grid(
    world: pd.DataFrame, kind: RetentionKind, criterion: RetentionCriterion
) -> list[tuple[int, list[int]]]:
    inside = world[(world.t >= START) & (world.t < END)]
    first, last = week(pd.Series([START, END - timedelta(microseconds=1)]))
    starts = world[(world.kind == "L") & (world.t < END)]
    if kind is RetentionKind.RECURRING:
        starts = starts[starts.t >= START]
        cohorts = starts.assign(cohort=week(starts.t))[["user", "cohort"]].drop_duplicates()
    else:
        firsts = starts.groupby("user").t.min().reset_index()
        firsts = firsts[firsts.t >= START]
        cohorts = firsts.assign(cohort=week(firsts.t))[["user", "cohort"]]
    returns = inside[inside.kind == "S"]
    returns = returns.assign(period=week(returns.t))[["user", "period"]].drop_duplicates()
    pairs = cohorts.merge(returns, on="user")
    pairs = pairs[pairs.period > pairs.cohort].assign(n=lambda p: p.period - p.cohort)
    if criterion is RetentionCriterion.ON_OR_AFTER:
        pairs = pairs.groupby(["user", "cohort"]).n.max().reset_index()
    grid = []
    for c in range(first, last + 1):
        size = int((cohorts.cohort == c).sum())
        mine = pairs[pairs.cohort == c]
        cells = [size]
        for n in range(1, last - c + 1):
            hits = mine.n == n if criterion is RetentionCriterion.ON else mine.n >= n
            cells.append(int(hits.sum()))
        grid.append((size, cells))
    return grid


@pytest.mark.parametrize("kind", list(RetentionKind))
@pytest.mark.parametrize("criterion", list(RetentionCriterion))
def test_weekly_grid_equals_pandas(
    module_analytics: BankingPerformanceAnalytics,  # noqa: F811
    module_world: pd.DataFrame,  # noqa: F811
    kind: RetentionKind,
    criterion: RetentionCriterion,
) -> None:
    result = module_analytics.retention(
        RetentionQuery(
            date_from=START,
            date_to=END,
            interval="week",  # type: ignore[arg-type]
            timezone=ZONE,
            start_event=EventStep("behavior", *NODES["L"]),
            return_event=EventStep("behavior", *NODES["S"]),
            kind=kind,
            criterion=criterion,
        )
    )
    got = [(c.users, [cell.users for cell in c.cells]) for c in result.cohorts]
    expected = pandas_grid(module_world, kind, criterion)
    assert got == expected
    assert sum(size for size, _ in expected) > 10
    assert any(cells[1] for _, cells in expected[:-1])  # someone returns

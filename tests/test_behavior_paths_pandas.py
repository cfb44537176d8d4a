"""Top paths over a simulated world, against pandas, on every engine.

pandas sessionises with group-wise shifts (session ids where sent, else a 30-minute
gap), drops back-to-back repeats, numbers the steps and counts next-step pairs.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.analytics.behavior import PathsQuery
from behavior_flows_fixtures import (  # noqa: F401 (a fixture)
    NODES,
    WORLD_START,
    module_analytics,
    module_world,
)

GAP = timedelta(minutes=30)
LIMIT = 12


def pandas_paths(world: pd.DataFrame, start_point: str | None, max_steps: int) -> list[tuple]:
    frame = world.assign(node=world.kind.map(lambda k: "/".join(NODES[k])))
    frame = frame.sort_values(["user", "t"])
    no_id = frame.session_id.isna()
    # Events without an id: a new session after a gap of 30 minutes or more.
    loose = frame[no_id].copy()
    gap = loose.groupby("user").t.diff()
    loose["session"] = (gap.isna() | (gap >= GAP)).groupby(loose.user).cumsum().astype(str)
    with_id = frame[~no_id].assign(session=lambda f: "id:" + f.session_id)
    frame = pd.concat([loose, with_id]).sort_values(["user", "session", "t"])
    keys = [frame.user, frame.session]
    frame = frame[frame.node != frame.groupby(keys).node.shift()]
    frame = frame.assign(idx=frame.groupby(["user", "session"]).cumcount() + 1)
    if start_point is not None:
        anchor = frame[frame.node == start_point].groupby(["user", "session"]).idx.min()
        frame = frame.join(anchor.rename("anchor"), on=["user", "session"]).dropna(subset="anchor")
        frame = frame[frame.idx >= frame.anchor].assign(idx=lambda f: f.idx - f.anchor + 1)
    frame = frame[frame.idx <= max_steps]
    frame = frame.assign(target=frame.groupby(["user", "session"]).node.shift(-1)).dropna(
        subset="target"
    )
    counts = frame.groupby(["idx", "node", "target"]).size().reset_index(name="n")
    counts = counts.sort_values(["n", "idx", "node", "target"], ascending=[False, True, True, True])
    return [(int(r.idx), r.node, r.target, int(r.n)) for r in counts.head(LIMIT).itertuples()]


@pytest.mark.parametrize(("start_point", "max_steps"), [(None, 5), ("/".join(NODES["S"]), 3)])
def test_top_transitions_equal_pandas(
    module_analytics: BankingPerformanceAnalytics,  # noqa: F811
    module_world: pd.DataFrame,  # noqa: F811
    start_point: str | None,
    max_steps: int,
) -> None:
    result = module_analytics.paths(
        PathsQuery(
            date_from=WORLD_START,
            date_to=WORLD_START + timedelta(days=40),
            start_point=start_point,
            max_steps=max_steps,
            limit=LIMIT,
        )
    )
    got = [(t.step, t.source, t.target, t.transitions) for t in result.transitions]
    assert got == pandas_paths(module_world, start_point, max_steps)
    assert len(got) == LIMIT
